//! Read-only access to an untrusted root filesystem.
//!
//! An image's root filesystem is hostile input: its symlinks may point at
//! `/etc/shadow` of the host, its files may be enormous. [`RootFs`] resolves
//! every path the way the kernel would inside a `chroot` — absolute symlinks
//! restart at the image root, `..` never climbs above it — and bounds every
//! read. The resolver works on the directory tree as it is; it assumes nobody
//! changes the tree while we read it (vexxy extracts it itself and never runs
//! anything in it while analysing).

use std::{
    fs,
    io::{self, Read},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// Symlink hops allowed in one resolution, like Linux's `MAXSYMLINKS`.
const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum RootFsError {
    #[error("root filesystem {0}: not a directory")]
    NotADirectory(PathBuf),
    #[error("{path} in root filesystem {root}: too many levels of symbolic links")]
    SymlinkLoop { root: PathBuf, path: String },
    #[error("{path} in root filesystem {root}: not found")]
    NotFound { root: PathBuf, path: String },
    #[error("{path} in root filesystem {root}: {size} bytes is more than the limit of {limit}")]
    TooLarge {
        root: PathBuf,
        path: String,
        size: u64,
        limit: u64,
    },
    #[error("{path} in root filesystem {root}: not a regular file")]
    NotAFile { root: PathBuf, path: String },
    #[error("{path} in root filesystem {root}: {source}")]
    Io {
        root: PathBuf,
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The kind of a directory entry, without following symlinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One entry found by [`RootFs::walk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path inside the image, e.g. `/usr/lib/libc.so.6`.
    pub path: String,
    pub kind: EntryKind,
    /// Size in bytes for regular files, 0 otherwise.
    pub size: u64,
}

/// A root filesystem on disk, read with chroot semantics.
#[derive(Clone, Debug)]
pub struct RootFs {
    root: PathBuf,
    /// For a process's root: the directory held open, so that `root`
    /// (`/proc/self/fd/N`) keeps naming that root after the process exits
    /// and its pid is reused.
    _pinned: Option<std::sync::Arc<fs::File>>,
}

impl RootFs {
    /// Opens a directory as a root filesystem.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, RootFsError> {
        let root = root.as_ref();
        let meta = fs::metadata(root).map_err(|source| RootFsError::Io {
            root: root.to_owned(),
            path: "/".into(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(RootFsError::NotADirectory(root.to_owned()));
        }
        let root = fs::canonicalize(root).map_err(|source| RootFsError::Io {
            root: root.to_owned(),
            path: "/".into(),
            source,
        })?;
        Ok(Self {
            root,
            _pinned: None,
        })
    }

    /// The root filesystem of a running process (a container's), reached
    /// through `/proc/PID/root`. The path is kept as it is: canonicalising
    /// that link would name the reader's own root, and every read would
    /// then see the host's files instead of the container's.
    ///
    /// The directory is held open and named as `/proc/self/fd/N`, so the
    /// value keeps reading that container's files even after the process
    /// exits and its pid names another. The container may change its tree
    /// while it is read: callers read only what they would accept from the
    /// container itself.
    pub fn of_process(pid: u32) -> Result<Self, RootFsError> {
        use std::os::fd::AsRawFd;
        let link = PathBuf::from(format!("/proc/{pid}/root"));
        let dir = fs::File::open(&link).map_err(|source| RootFsError::Io {
            root: link.clone(),
            path: "/".into(),
            source,
        })?;
        let meta = dir.metadata().map_err(|source| RootFsError::Io {
            root: link.clone(),
            path: "/".into(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(RootFsError::NotADirectory(link));
        }
        Ok(Self {
            root: PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())),
            _pinned: Some(std::sync::Arc::new(dir)),
        })
    }

    /// The directory on the host.
    pub fn host_root(&self) -> &Path {
        &self.root
    }

    fn host(&self, components: &[String]) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(components);
        p
    }

    fn io_err(&self, path: &str, source: io::Error) -> RootFsError {
        if source.kind() == io::ErrorKind::NotFound {
            RootFsError::NotFound {
                root: self.root.clone(),
                path: path.to_owned(),
            }
        } else {
            RootFsError::Io {
                root: self.root.clone(),
                path: path.to_owned(),
                source,
            }
        }
    }

    /// Resolves an image path to its canonical image path, following every
    /// symlink (the last one too) beneath the root.
    pub fn canonical(&self, path: &str) -> Result<String, RootFsError> {
        self.resolve_components(path, true).map(|c| join_image(&c))
    }

    /// Like [`RootFs::canonical`] but leaves a final symlink unresolved.
    pub fn canonical_parent(&self, path: &str) -> Result<String, RootFsError> {
        self.resolve_components(path, false).map(|c| join_image(&c))
    }

    /// The host path an image path resolves to (following symlinks beneath the root).
    pub fn host_path(&self, path: &str) -> Result<PathBuf, RootFsError> {
        self.resolve_components(path, true).map(|c| self.host(&c))
    }

    fn resolve_components(
        &self,
        path: &str,
        follow_last: bool,
    ) -> Result<Vec<String>, RootFsError> {
        let mut pending: Vec<String> = components(path).rev().map(str::to_owned).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0usize;
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(comp);
            let is_last = pending.is_empty();
            if is_last && !follow_last {
                break;
            }
            let host = self.host(&resolved);
            let meta = match fs::symlink_metadata(&host) {
                Ok(m) => m,
                // A missing component: the rest cannot resolve either.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    resolved.extend(pending.into_iter().rev());
                    return Err(RootFsError::NotFound {
                        root: self.root.clone(),
                        path: join_image(&resolved),
                    });
                }
                Err(e) => return Err(self.io_err(path, e)),
            };
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(RootFsError::SymlinkLoop {
                        root: self.root.clone(),
                        path: path.to_owned(),
                    });
                }
                let target = fs::read_link(&host).map_err(|e| self.io_err(path, e))?;
                let target = target.to_string_lossy().into_owned();
                resolved.pop();
                if target.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(components(&target).rev().map(str::to_owned));
            }
        }
        Ok(resolved)
    }

    /// Metadata of the file an image path resolves to.
    pub fn metadata(&self, path: &str) -> Result<fs::Metadata, RootFsError> {
        let host = self.host_path(path)?;
        fs::symlink_metadata(&host).map_err(|e| self.io_err(path, e))
    }

    /// Metadata of `path` itself: its parent directories are resolved
    /// beneath the root, a final symlink is not followed.
    pub fn link_metadata(&self, path: &str) -> Result<fs::Metadata, RootFsError> {
        let host = self
            .resolve_components(path, false)
            .map(|c| self.host(&c))?;
        fs::symlink_metadata(&host).map_err(|e| self.io_err(path, e))
    }

    /// The target stored in the symlink `path` (parents resolved beneath
    /// the root), as text; not resolved.
    pub fn read_link(&self, path: &str) -> Result<String, RootFsError> {
        let host = self
            .resolve_components(path, false)
            .map(|c| self.host(&c))?;
        fs::read_link(&host)
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(|e| self.io_err(path, e))
    }

    /// Whether the path resolves to something that exists.
    pub fn exists(&self, path: &str) -> bool {
        self.metadata(path).is_ok()
    }

    /// Whether the path resolves to a regular file.
    pub fn is_file(&self, path: &str) -> bool {
        self.metadata(path).is_ok_and(|m| m.is_file())
    }

    /// Opens what `path` resolves to, refusing anything but a regular file
    /// (non-blocking, so a FIFO planted in the image cannot hang us).
    fn open_regular(&self, path: &str) -> Result<(fs::File, fs::Metadata), RootFsError> {
        let host = self.host_path(path)?;
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_nofollow() | libc_o_nonblock())
            .open(&host)
            .map_err(|e| self.io_err(path, e))?;
        let meta = file.metadata().map_err(|e| self.io_err(path, e))?;
        if !meta.is_file() {
            return Err(RootFsError::NotAFile {
                root: self.root.clone(),
                path: path.to_owned(),
            });
        }
        Ok((file, meta))
    }

    /// Reads a whole regular file of at most `limit` bytes.
    pub fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, RootFsError> {
        let (file, meta) = self.open_regular(path)?;
        if meta.len() > limit {
            return Err(RootFsError::TooLarge {
                root: self.root.clone(),
                path: path.to_owned(),
                size: meta.len(),
                limit,
            });
        }
        let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| self.io_err(path, e))?;
        if buf.len() as u64 > limit {
            return Err(RootFsError::TooLarge {
                root: self.root.clone(),
                path: path.to_owned(),
                size: buf.len() as u64,
                limit,
            });
        }
        Ok(buf)
    }

    /// Reads at most the first `n` bytes of a regular file (for magic-number
    /// checks); anything that is not a regular file is an error, so a FIFO
    /// planted in the image cannot block the reader.
    pub fn read_prefix(&self, path: &str, n: u64) -> Result<Vec<u8>, RootFsError> {
        let (file, meta) = self.open_regular(path)?;
        let mut buf = Vec::with_capacity(usize::try_from(n.min(meta.len())).unwrap_or(0));
        file.take(n)
            .read_to_end(&mut buf)
            .map_err(|e| self.io_err(path, e))?;
        Ok(buf)
    }

    /// Reads a text file (invalid UTF-8 is replaced) of at most `limit` bytes.
    pub fn read_to_string(&self, path: &str, limit: u64) -> Result<String, RootFsError> {
        self.read(path, limit)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Lists a directory (resolved beneath the root), sorted by name.
    pub fn read_dir(&self, path: &str) -> Result<Vec<Entry>, RootFsError> {
        let canonical = self.resolve_components(path, true)?;
        let host = self.host(&canonical);
        let base = join_image(&canonical);
        let mut out = Vec::new();
        for entry in fs::read_dir(&host).map_err(|e| self.io_err(path, e))? {
            let entry = entry.map_err(|e| self.io_err(path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata().map_err(|e| self.io_err(path, e))?;
            let ft = meta.file_type();
            let kind = kind_of(&ft);
            let child = if base == "/" {
                format!("/{name}")
            } else {
                format!("{base}/{name}")
            };
            out.push(Entry {
                path: child,
                kind,
                size: if kind == EntryKind::File {
                    meta.len()
                } else {
                    0
                },
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Every entry below `start` (not following symlinks), depth first,
    /// sorted. Unreadable directories are skipped.
    pub fn walk(&self, start: &str) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut stack = vec![start.to_owned()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = self.read_dir_nofollow(&dir) else {
                continue;
            };
            for e in entries.into_iter().rev() {
                if e.kind == EntryKind::Dir {
                    stack.push(e.path.clone());
                }
                out.push(e);
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    fn read_dir_nofollow(&self, dir: &str) -> Result<Vec<Entry>, RootFsError> {
        // Directories found by the walk are real directories (not symlinks),
        // so their image path is already canonical.
        let comps: Vec<String> = components(dir).map(str::to_owned).collect();
        let host = self.host(&comps);
        let base = join_image(&comps);
        let mut out = Vec::new();
        for entry in fs::read_dir(&host).map_err(|e| self.io_err(dir, e))? {
            let entry = entry.map_err(|e| self.io_err(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ft = entry.file_type().map_err(|e| self.io_err(dir, e))?;
            let kind = kind_of(&ft);
            let size = if kind == EntryKind::File {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            };
            let child = if base == "/" {
                format!("/{name}")
            } else {
                format!("{base}/{name}")
            };
            out.push(Entry {
                path: child,
                kind,
                size,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

fn kind_of(ft: &fs::FileType) -> EntryKind {
    if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else {
        // fifos, sockets, device nodes

        EntryKind::Other
    }
}

// O_NOFOLLOW and O_NONBLOCK on Linux (x86_64, aarch64 and most others share
// these values); kept local to avoid a libc dependency for two constants.
const fn libc_o_nofollow() -> i32 {
    0o400000
}
const fn libc_o_nonblock() -> i32 {
    0o4000
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

fn join_image(components: &[String]) -> String {
    if components.is_empty() {
        "/".to_owned()
    } else {
        let mut s = String::new();
        for c in components {
            s.push('/');
            s.push_str(c);
        }
        s
    }
}

/// Normalises an image path lexically (no symlinks): collapses `//`, `.`,
/// and `..` (never above `/`).
pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in components(path) {
        match c {
            "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    let owned: Vec<String> = out.into_iter().map(str::to_owned).collect();
    join_image(&owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, RootFs) {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).expect("mkdir");
        fs::write(r.join("usr/lib/x86_64-linux-gnu/libc.so.6"), b"ELF").expect("write");
        symlink("usr/lib", r.join("lib")).expect("symlink");
        symlink("/etc/shadow", r.join("usr/evil-abs")).expect("symlink");
        symlink("../../../../../../etc/passwd", r.join("usr/evil-rel")).expect("symlink");
        symlink("loop2", r.join("loop1")).expect("symlink");
        symlink("loop1", r.join("loop2")).expect("symlink");
        fs::create_dir_all(r.join("etc")).expect("mkdir");
        fs::write(r.join("etc/shadow"), b"image shadow").expect("write");
        fs::write(r.join("etc/passwd"), b"image passwd").expect("write");
        let fs = RootFs::open(r).expect("open");
        (dir, fs)
    }

    #[test]
    fn symlinks_resolve_beneath_the_root() {
        let (_d, r) = tree();
        for (input, want) in [
            (
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
            ),
            ("/usr/evil-abs", "/etc/shadow"),
            ("/usr/evil-rel", "/etc/passwd"),
            (
                "/../../lib/../lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
            ),
        ] {
            assert_eq!(r.canonical(input).expect(input), want, "{input}");
        }
        assert_eq!(
            r.read("/usr/evil-abs", 100).expect("reads"),
            b"image shadow"
        );
        assert_eq!(
            r.read("/usr/evil-rel", 100).expect("reads"),
            b"image passwd"
        );
    }

    #[test]
    fn loops_missing_and_large_files_are_errors() {
        let (_d, r) = tree();
        assert!(matches!(
            r.canonical("/loop1"),
            Err(RootFsError::SymlinkLoop { .. })
        ));
        assert!(matches!(
            r.read("/nope", 10),
            Err(RootFsError::NotFound { .. })
        ));
        assert!(matches!(
            r.read("/etc/shadow", 3),
            Err(RootFsError::TooLarge { .. })
        ));
        assert!(matches!(
            r.read("/etc", 3),
            Err(RootFsError::NotAFile { .. })
        ));
    }

    #[test]
    fn walk_lists_without_following_links() {
        let (_d, r) = tree();
        let paths: Vec<_> = r.walk("/").into_iter().map(|e| e.path).collect();
        assert!(paths.contains(&"/lib".to_owned()));
        assert!(paths.contains(&"/usr/lib/x86_64-linux-gnu/libc.so.6".to_owned()));
        assert!(!paths.iter().any(|p| p.starts_with("/lib/")));
    }

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize("//a/./b/../../../c"), "/c");
        assert_eq!(normalize(""), "/");
    }
}
