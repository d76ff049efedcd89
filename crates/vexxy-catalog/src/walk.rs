//! One bounded walk of the whole image, shared by the catalogers that look
//! for files by name (Python metadata, `node_modules`, Java archives,
//! binaries). Symlinks are listed but never followed, so a link cycle or a
//! link out of the image cannot lead the walk anywhere.

use vexxy_rootfs::{Entry, EntryKind, RootFs};

/// Most entries the walk lists before it stops (with a warning).
pub const WALK_MAX_ENTRIES: usize = 2_000_000;
/// Deepest directory level the walk descends to (deeper ones are skipped
/// with a warning).
pub const WALK_MAX_DEPTH: usize = 64;

/// Top-level directories that hold no packages in an unpacked image (and
/// are pseudo file systems in a running one).
const SKIPPED_TOP: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Every entry of the image except the skipped pseudo file systems, sorted
/// by path.
pub(crate) fn walk(root: &RootFs, warnings: &mut Vec<String>) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack: Vec<(String, usize)> = vec![("/".to_owned(), 0)];
    let mut too_deep = 0usize;
    let mut truncated = false;
    'dirs: while let Some((dir, depth)) = stack.pop() {
        // Directories found by the walk are real directories, not links, so
        // reading them resolves nothing outside the path already seen.
        let Ok(entries) = root.read_dir(&dir) else {
            continue;
        };
        for entry in entries.into_iter().rev() {
            if out.len() >= WALK_MAX_ENTRIES {
                truncated = true;
                break 'dirs;
            }
            if depth == 0 && SKIPPED_TOP.contains(&entry.path.as_str()) {
                continue;
            }
            if entry.kind == EntryKind::Dir {
                if depth + 1 < WALK_MAX_DEPTH {
                    stack.push((entry.path.clone(), depth + 1));
                } else {
                    too_deep += 1;
                }
            }
            out.push(entry);
        }
    }
    if truncated {
        warnings.push(format!(
            "image walk stopped after {WALK_MAX_ENTRIES} entries: language packages and binaries beyond it are not cataloged"
        ));
    }
    if too_deep > 0 {
        warnings.push(format!(
            "image walk: {too_deep} directories deeper than {WALK_MAX_DEPTH} levels not read"
        ));
    }
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The entries strictly below `dir` in a sorted entry list.
pub(crate) fn below<'a>(entries: &'a [Entry], dir: &str) -> &'a [Entry] {
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    let start = entries.partition_point(|e| e.path.as_str() < prefix.as_str());
    let len = entries[start..]
        .iter()
        .take_while(|e| e.path.starts_with(&prefix))
        .count();
    &entries[start..start + len]
}

/// The last path component.
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The parent directory of an absolute image path (`/` for top-level ones).
pub(crate) fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn walks_sorted_skips_pseudo_fs_and_slices_subtrees() {
        let dir = tempfile::tempdir().expect("tempdir");
        for p in ["a/b/c.txt", "a/bb.txt", "proc/1/status", "z.txt"] {
            let host = dir.path().join(p);
            fs::create_dir_all(host.parent().expect("parent")).expect("mkdir");
            fs::write(&host, b"x").expect("write");
        }
        std::os::unix::fs::symlink("/", dir.path().join("a/loop")).expect("symlink");
        let root = RootFs::open(dir.path()).expect("open");
        let mut warnings = Vec::new();
        let entries = walk(&root, &mut warnings);
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/a", "/a/b", "/a/b/c.txt", "/a/bb.txt", "/a/loop", "/z.txt"]
        );
        assert!(warnings.is_empty());
        let sub: Vec<&str> = below(&entries, "/a/b")
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(sub, ["/a/b/c.txt"]);
        assert_eq!(
            (file_name("/a/b"), parent("/a/b"), parent("/a")),
            ("b", "/a", "/")
        );
    }
}
