//! Random access to the members of an image archive (a tar of an OCI layout
//! or a `docker save` tar), optionally gzip-compressed as a whole.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use crate::{
    cache::{copy_large, open_regular},
    BlobCache, ImageError,
};

/// Archives with more members than this are refused (an image archive holds
/// a handful of blobs; a hostile one could list millions of names).
const MAX_MEMBERS: usize = 100_000;
/// Symlink hops followed between archive members.
const MAX_HOPS: usize = 16;

#[derive(Clone, Debug)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// The members of an archive file, by normalised name.
#[derive(Debug)]
pub(crate) struct TarIndex {
    /// The archive as named by the caller (for messages).
    pub(crate) path: PathBuf,
    /// The file actually read (a decompressed temporary copy for `.tar.gz`).
    file: File,
    members: HashMap<String, Member>,
    _decompressed: Option<tempfile::NamedTempFile>,
}

fn normalise(name: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

impl TarIndex {
    /// Indexes an archive file; a gzip-compressed archive is first
    /// decompressed into a temporary file inside the cache.
    pub(crate) fn open(path: &Path, cache: &BlobCache) -> Result<Self, ImageError> {
        let arch_err = |cause: io::Error| ImageError::Archive {
            path: path.to_owned(),
            cause,
        };
        let mut file = open_regular(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::SourceNotFound {
                    path: path.to_owned(),
                }
            } else {
                ImageError::io(path, e)
            }
        })?;
        let mut magic = [0u8; 2];
        let n = file.read(&mut magic).map_err(|e| ImageError::io(path, e))?;
        file.rewind().map_err(|e| ImageError::io(path, e))?;
        let mut decompressed = None;
        if n == 2 && magic == [0x1f, 0x8b] {
            let tmp = cache.temp_file()?;
            let mut gz = flate2::read::MultiGzDecoder::new(BufReader::new(&file));
            copy_large(&mut gz, tmp.as_file()).map_err(arch_err)?;
            let mut f = tmp.reopen().map_err(|e| ImageError::io(tmp.path(), e))?;
            f.rewind().map_err(|e| ImageError::io(tmp.path(), e))?;
            file = f;
            decompressed = Some(tmp);
        }
        let mut members = HashMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            for entry in archive.entries_with_seek().map_err(arch_err)? {
                let entry = entry.map_err(arch_err)?;
                if members.len() >= MAX_MEMBERS {
                    return Err(arch_err(crate::error::said(format!(
                        "more than {MAX_MEMBERS} members"
                    ))));
                }
                let name = normalise(&String::from_utf8_lossy(&entry.path_bytes()));
                let kind = entry.header().entry_type();
                let member = if kind.is_file() || kind == tar::EntryType::Continuous {
                    Member::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    }
                } else if kind.is_symlink() {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let base = name.rsplit_once('/').map_or("", |(dir, _)| dir);
                    let joined = if target.starts_with('/') {
                        target
                    } else {
                        format!("{base}/{target}")
                    };
                    Member::Link(normalise(&joined))
                } else if kind.is_hard_link() {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    Member::Link(normalise(&target))
                } else {
                    continue;
                };
                // The last member of a name wins, as when tar extracts.
                members.insert(name, member);
            }
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            members,
            _decompressed: decompressed,
        })
    }

    fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = normalise(name);
        for _ in 0..MAX_HOPS {
            match self.members.get(&name)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link(target) => name = target.clone(),
            }
        }
        None
    }

    /// Opens a member: a reader over exactly its bytes, and its size.
    pub(crate) fn open_member(
        &self,
        name: &str,
    ) -> Result<Option<(impl Read + '_, u64)>, ImageError> {
        let Some((offset, size)) = self.locate(name) else {
            return Ok(None);
        };
        let mut f = &self.file;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| ImageError::io(&self.path, e))?;
        Ok(Some((
            BufReader::with_capacity(1 << 20, f.take(size)),
            size,
        )))
    }

    /// Reads a whole small member, refusing one over `limit` bytes.
    pub(crate) fn read_small(
        &self,
        name: &str,
        limit: u64,
        what: &'static str,
    ) -> Result<Option<Vec<u8>>, ImageError> {
        let Some((mut r, size)) = self.open_member(name)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(ImageError::TooLarge {
                location: self.location(name),
                what,
                size,
                limit,
            });
        }
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        r.read_to_end(&mut buf).map_err(|e| ImageError::Archive {
            path: self.path.clone(),
            cause: e,
        })?;
        Ok(Some(buf))
    }

    /// `archive.tar!member` for messages.
    pub(crate) fn location(&self, name: &str) -> String {
        format!("{}!{}", self.path.display(), name)
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn normalises_member_names() {
        assert_eq!(normalise("./blobs//sha256/x"), "blobs/sha256/x");
        assert_eq!(normalise("a/../../b"), "b");
        assert_eq!(normalise("/manifest.json"), "manifest.json");
    }
}
