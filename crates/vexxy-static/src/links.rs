//! The image's symlinks and hard links, for attributing a used path to
//! every package that owns a name of the same file.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use vexxy_model::ImageLinks;
use vexxy_rootfs::{EntryKind, RootFs};

/// At most this many symlinks are recorded; an image with more (a hostile
/// one) keeps the first ones in path order and is marked truncated
/// ([`ImageLinks::truncated`]), so the engine caps every runtime absence
/// claim: a use through an unrecorded link would go unseen.
pub const MAX_SYMLINKS: usize = 200_000;

/// Every symlink and every multiply-linked regular file of the image.
pub fn links(root: &RootFs) -> ImageLinks {
    let mut symlinks = Vec::new();
    let mut truncated = false;
    let mut by_inode: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for entry in root.walk("/") {
        match entry.kind {
            EntryKind::Symlink if symlinks.len() >= MAX_SYMLINKS => truncated = true,
            EntryKind::Symlink => {
                if let Ok(target) = root.read_link(&entry.path) {
                    symlinks.push((entry.path, target));
                }
            }
            EntryKind::File => {
                if let Ok(meta) = root.link_metadata(&entry.path) {
                    if meta.nlink() > 1 {
                        by_inode
                            .entry((meta.dev(), meta.ino()))
                            .or_default()
                            .push(entry.path);
                    }
                }
            }
            _ => {}
        }
    }
    let groups = by_inode.into_values().filter(|g| g.len() > 1);
    let links = ImageLinks::new(symlinks, groups);
    if truncated {
        links.truncated_at_limit()
    } else {
        links
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn finds_symlinks_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("etc/alternatives")).unwrap();
        std::fs::write(r.join("usr/bin/redis-check-rdb"), b"\x7fELF").unwrap();
        symlink("redis-check-rdb", r.join("usr/bin/redis-server")).unwrap();
        std::fs::write(r.join("usr/bin/mawk"), b"x").unwrap();
        symlink("/usr/bin/mawk", r.join("etc/alternatives/awk")).unwrap();
        symlink("/etc/alternatives/awk", r.join("usr/bin/awk")).unwrap();
        std::fs::write(r.join("usr/bin/perl"), b"p").unwrap();
        std::fs::hard_link(r.join("usr/bin/perl"), r.join("usr/bin/perl5.36.0")).unwrap();
        let root = RootFs::open(r).unwrap();
        let l = links(&root);
        assert_eq!(
            l.resolve("/usr/bin/redis-server").path,
            "/usr/bin/redis-check-rdb"
        );
        let awk = l.resolve("/usr/bin/awk");
        assert_eq!(awk.path, "/usr/bin/mawk");
        assert_eq!(awk.via, ["/usr/bin/awk", "/etc/alternatives/awk"]);
        assert_eq!(l.hardlinks_of("/usr/bin/perl5.36.0"), ["/usr/bin/perl"]);
    }
}
