//! Turns the paths a package manager lists into the file set of a
//! [`vexxy_model::Package`]: directories dropped, each file present both as
//! listed and in canonical form (parent directory resolved beneath the root,
//! final component kept), so owners can be looked up by canonical path.

use std::{
    collections::{BTreeSet, HashMap},
    fs, io,
    path::PathBuf,
};

use vexxy_rootfs::{RootFs, RootFsError};

/// Resolves listed paths against a root filesystem, caching the canonical
/// form of every parent directory it has seen.
#[derive(Debug)]
pub(crate) struct FileResolver<'a> {
    root: &'a RootFs,
    /// Listed parent directory → its canonical image path, or `None` when
    /// it does not resolve (missing, a loop, unreadable).
    parents: HashMap<String, Option<String>>,
}

/// What an image path turned out to be.
enum Kind {
    Missing,
    Directory,
    NotDirectory,
}

impl<'a> FileResolver<'a> {
    pub(crate) fn new(root: &'a RootFs) -> Self {
        Self {
            root,
            parents: HashMap::new(),
        }
    }

    /// Adds one listed path to `files`: nothing for a directory (or a
    /// symlink that resolves to one), the listed path alone when it does not
    /// exist, otherwise the listed path and its canonical form.
    pub(crate) fn add(&mut self, listed: &str, files: &mut BTreeSet<String>) {
        let listed = if needs_normalizing(listed) {
            vexxy_rootfs::normalize(listed)
        } else {
            listed.to_owned()
        };
        if listed == "/" {
            return;
        }
        let Some(slash) = listed.rfind('/') else {
            return;
        };
        let (parent, name) = (&listed[..slash], &listed[slash + 1..]);
        let parent = if parent.is_empty() { "/" } else { parent };
        let canonical_parent = match self.parents.get(parent) {
            Some(cached) => cached.clone(),
            None => {
                let resolved = self.root.canonical(parent).ok();
                self.parents.insert(parent.to_owned(), resolved.clone());
                resolved
            }
        };
        let Some(canonical_parent) = canonical_parent else {
            files.insert(listed);
            return;
        };
        let canonical = if canonical_parent == "/" {
            format!("/{name}")
        } else {
            format!("{canonical_parent}/{name}")
        };
        match self.kind(&canonical) {
            Kind::Directory => {}
            Kind::Missing => {
                files.insert(listed);
            }
            Kind::NotDirectory => {
                if canonical != listed {
                    files.insert(canonical);
                }
                files.insert(listed);
            }
        }
    }

    /// The kind of a path whose parent is already canonical: one `lstat` on
    /// the host, and a chroot-safe resolution only for symlinks.
    fn kind(&self, canonical: &str) -> Kind {
        let host: PathBuf = self
            .root
            .host_root()
            .join(canonical.trim_start_matches('/'));
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.is_dir() => Kind::Directory,
            Ok(meta) if meta.file_type().is_symlink() => match self.root.metadata(canonical) {
                Ok(target) if target.is_dir() => Kind::Directory,
                _ => Kind::NotDirectory,
            },
            Ok(_) => Kind::NotDirectory,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Kind::Missing,
            // Exists but cannot be inspected (permissions): not a directory
            // we can see into, so treat it as a file.
            Err(_) => Kind::NotDirectory,
        }
    }
}

fn needs_normalizing(path: &str) -> bool {
    !path.starts_with('/')
        || path.contains("//")
        || path.contains("/./")
        || path.contains("/../")
        || path.ends_with("/.")
        || path.ends_with("/..")
        || (path.len() > 1 && path.ends_with('/'))
}

/// Whether a rootfs error means "the file is not there".
pub(crate) fn is_not_found(e: &RootFsError) -> bool {
    matches!(e, RootFsError::NotFound { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn merged_usr_directories_and_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).expect("mkdir");
        fs::write(r.join("usr/lib/x86_64-linux-gnu/libz.so.1.2.13"), b"ELF").expect("write");
        symlink(
            "libz.so.1.2.13",
            r.join("usr/lib/x86_64-linux-gnu/libz.so.1"),
        )
        .expect("symlink");
        symlink("x86_64-linux-gnu", r.join("usr/lib/dirlink")).expect("symlink");
        symlink("/etc/nowhere", r.join("usr/lib/dangling")).expect("symlink");
        symlink("usr/lib", r.join("lib")).expect("symlink");
        let root = RootFs::open(r).expect("open");
        let mut resolver = FileResolver::new(&root);
        let cases: [(&str, &[&str]); 9] = [
            ("/.", &[]),
            ("/lib", &[]),
            ("/lib/x86_64-linux-gnu", &[]),
            (
                "/lib/x86_64-linux-gnu/libz.so.1.2.13",
                &[
                    "/lib/x86_64-linux-gnu/libz.so.1.2.13",
                    "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
                ],
            ),
            (
                "/lib/x86_64-linux-gnu/libz.so.1",
                &[
                    "/lib/x86_64-linux-gnu/libz.so.1",
                    "/usr/lib/x86_64-linux-gnu/libz.so.1",
                ],
            ),
            ("/usr/lib/dirlink", &[]),
            ("/lib/dangling", &["/lib/dangling", "/usr/lib/dangling"]),
            ("/lib/missing.so", &["/lib/missing.so"]),
            ("/nodir/x", &["/nodir/x"]),
        ];
        for (listed, want) in cases {
            let mut files = BTreeSet::new();
            resolver.add(listed, &mut files);
            let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(files, want, "{listed}");
        }
    }
}
