//! Writing results: atomically to a file, or to stdout.

use std::{
    fs,
    io::{self, Write},
    path::Path,
};

use anyhow::Context;

/// Writes `content` to `path` atomically (a temporary file beside it, synced,
/// then renamed), or to stdout when `path` is `None` or `-`. A failure leaves
/// no partial file behind.
pub(crate) fn write(path: Option<&Path>, content: &[u8]) -> anyhow::Result<()> {
    match path {
        None => write_stdout(content),
        Some(p) if p.as_os_str() == "-" => write_stdout(content),
        Some(p) => write_atomic(p, content, None),
    }
}

fn write_stdout(content: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(content).context("writing to stdout")?;
    if !content.ends_with(b"\n") {
        out.write_all(b"\n").context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")
}

/// Atomic write with an optional Unix mode for the new file.
///
/// A target that exists and is not a regular file (`/dev/null`, a FIFO, a
/// terminal) is written to directly: renaming over it would replace the
/// device node itself.
pub(crate) fn write_atomic(path: &Path, content: &[u8], mode: Option<u32>) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(meta) = fs::metadata(path) {
        if meta.is_dir() {
            anyhow::bail!("writing {}: is a directory", path.display());
        }
        if !meta.is_file() {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            f.write_all(content)
                .and_then(|()| {
                    if content.ends_with(b"\n") {
                        Ok(())
                    } else {
                        f.write_all(b"\n")
                    }
                })
                .with_context(|| format!("writing {}", path.display()))?;
            return Ok(());
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.vexxy-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> io::Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        if let Some(m) = mode {
            opts.mode(m);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(content)?;
        if !content.ends_with(b"\n") {
            f.write_all(b"\n")?;
        }
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// Writes a new file (it must not exist) and syncs it.
pub(crate) fn write_new(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let result = (|| -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        f.write_all(content)?;
        if !content.ends_with(b"\n") {
            f.write_all(b"\n")?;
        }
        f.sync_all()
    })();
    result.with_context(|| format!("writing {}", path.display()))
}

/// Replaces the directory `dir` by one `fill` writes: `fill` gets a new
/// sibling directory (with the old one's mode and owner); once it
/// succeeded, the new directory takes `dir`'s place in one atomic exchange
/// (or rename, when `dir` does not exist yet), then the entries of the old
/// directory for which `keep` says yes are moved over and the old one is
/// removed. On any failure before the exchange `dir` is untouched and the
/// new directory is gone; a failure while moving entries over keeps the
/// old directory (its path is in the error), never deletes it.
///
/// A `dir` that holds this process' working directory (`--out .`) cannot
/// be swapped from under it: its files are then replaced one by one
/// (each atomically), after all of them were written beside them.
pub(crate) fn replace_dir(
    dir: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    use std::os::unix::fs::{chown, MetadataExt as _, PermissionsExt as _};

    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let old_meta = match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Some(m),
        Ok(_) => anyhow::bail!("{}: exists and is not a directory", dir.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    // `--out .` and friends: the directory by its real name
    let canonical;
    let dir = if old_meta.is_some() {
        canonical = fs::canonicalize(dir).with_context(|| format!("reading {}", dir.display()))?;
        canonical.as_path()
    } else {
        dir
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).with_context(|| {
        format!(
            "creating the output directory's parent {}",
            parent.display()
        )
    })?;
    let name = dir
        .file_name()
        .with_context(|| format!("{}: not a directory name", dir.display()))?
        .to_string_lossy()
        .into_owned();
    let new = tempfile::Builder::new()
        .prefix(&format!(".{name}.vexxy-new-"))
        .tempdir_in(parent)
        .with_context(|| format!("creating a directory beside {}", dir.display()))?;
    // the outputs keep the directory's mode and owner (`sudo vexxy analyze
    // --out results` must not hand a user's directory to root)
    let mode = old_meta.as_ref().map_or(0o755, |m| m.mode() & 0o7777);
    fs::set_permissions(new.path(), fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", new.path().display()))?;
    if let Some(m) = &old_meta {
        // as root this restores the owner; as anyone else it is a no-op or refused
        let _ = chown(new.path(), Some(m.uid()), Some(m.gid()));
    }
    fill(new.path())?;
    // the directory itself: a crash after the exchange must not lose names
    fs::File::open(new.path())
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", new.path().display()))?;
    if old_meta.is_none() {
        let staged = new.keep();
        return fs::rename(&staged, dir).with_context(|| {
            let _ = fs::remove_dir_all(&staged);
            format!("moving the outputs into {}", dir.display())
        });
    }
    let holds_cwd = std::env::current_dir().is_ok_and(|cwd| cwd.starts_with(dir));
    if holds_cwd {
        return replace_files(dir, new, &keep);
    }
    renameat_with(CWD, new.path(), CWD, dir, RenameFlags::EXCHANGE)
        .with_context(|| format!("putting the outputs in place of {}", dir.display()))?;
    // `new` now names the old directory: carry over what is not ours, then drop it
    let old = new.keep();
    let carried = (|| -> anyhow::Result<()> {
        for entry in fs::read_dir(&old)? {
            let entry = entry?;
            let file_name = entry.file_name();
            if file_name.to_str().is_none_or(&keep) {
                let to = dir.join(&file_name);
                fs::rename(entry.path(), &to)
                    .with_context(|| format!("keeping {} in {}", to.display(), dir.display()))?;
            }
        }
        Ok(())
    })();
    match carried {
        Ok(()) => fs::remove_dir_all(&old)
            .with_context(|| format!("removing the earlier outputs of {}", dir.display())),
        Err(e) => Err(e.context(format!(
            "the new outputs are in {}; the earlier directory, with files not carried over, is kept at {}",
            dir.display(),
            old.display()
        ))),
    }
}

/// The in-place way of [`replace_dir`]: each staged file renamed over its
/// namesake in `dir`, then earlier artifacts (`!keep`) this run did not
/// write removed.
fn replace_files(
    dir: &Path,
    staged: tempfile::TempDir,
    keep: &impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let mut written = std::collections::BTreeSet::new();
    for entry in fs::read_dir(staged.path())
        .with_context(|| format!("listing {}", staged.path().display()))?
    {
        let entry = entry.with_context(|| format!("listing {}", staged.path().display()))?;
        let to = dir.join(entry.file_name());
        fs::rename(entry.path(), &to).with_context(|| format!("writing {}", to.display()))?;
        written.insert(entry.file_name());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let file_name = entry.file_name();
        let ours = file_name.to_str().is_some_and(|n| !keep(n));
        if ours && !written.contains(&file_name) {
            fs::remove_file(entry.path())
                .with_context(|| format!("removing the stale {}", entry.path().display()))?;
        }
    }
    staged
        .close()
        .with_context(|| format!("removing the staging directory of {}", dir.display()))
}

/// Prints text to stdout. A closed pipe (`vexxy … | head`) is not an error
/// worth a panic: the reader has what it wanted.
pub(crate) fn print(text: &str) {
    let mut out = io::stdout().lock();
    let result = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if let Err(e) = result {
        if e.kind() != io::ErrorKind::BrokenPipe {
            tracing::warn!("writing to stdout: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renaming over a FIFO (or `/dev/null`) would replace the node; the
    /// content must go through it instead.
    fn tree_hash(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
            .expect("list")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).expect("read"),
                )
            })
            .collect();
        all.sort();
        all
    }

    #[test]
    fn a_replaced_directory_keeps_foreign_files_and_drops_stale_artifacts() {
        let t = tempfile::tempdir().expect("tempdir");
        let out = t.path().join("out");
        fs::create_dir(&out).expect("mkdir");
        fs::write(out.join("notes.txt"), b"mine").expect("write");
        fs::write(out.join("vex.openvex.json"), b"old").expect("write");
        replace_dir(
            &out,
            |d| write_new(&d.join("profile.json"), b"{}"),
            |name| name != "vex.openvex.json",
        )
        .expect("replace");
        assert_eq!(
            tree_hash(&out),
            vec![
                ("notes.txt".to_owned(), b"mine".to_vec()),
                ("profile.json".to_owned(), b"{}\n".to_vec())
            ]
        );
        assert_eq!(
            fs::read_dir(t.path()).expect("list").count(),
            1,
            "no leftovers"
        );
    }

    /// On a full filesystem the earlier outputs stay exactly as they were.
    #[test]
    fn a_failed_write_leaves_the_previous_directory_untouched() {
        if !vexxy_testkit::require_root("mounting a small tmpfs") {
            return;
        }
        let small = vexxy_testkit::Tmpfs::mount("256k");
        let mnt = small.path();
        let out = mnt.join("out");
        fs::create_dir(&out).expect("mkdir");
        fs::write(out.join("vex.openvex.json"), vec![b'a'; 60 << 10]).expect("write");
        fs::write(out.join("report.md"), b"# earlier").expect("write");
        let before = tree_hash(&out);
        let err = replace_dir(
            &out,
            |d| {
                write_new(&d.join("vex.openvex.json"), &vec![b'b'; 100 << 10])?;
                write_new(&d.join("report.html"), &vec![b'c'; 200 << 10])
            },
            |_| true,
        )
        .expect_err("the disk is full");
        assert!(format!("{err:#}").contains("report.html"), "{err:#}");
        assert_eq!(tree_hash(&out), before, "the earlier outputs changed");
        let left: Vec<_> = fs::read_dir(mnt).expect("list").collect();
        assert_eq!(left.len(), 1, "a temporary directory was left: {left:?}");
    }

    #[test]
    fn special_files_are_written_through_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe");
        if vexxy_testkit::require_program("mkfifo", "coreutils").is_none() {
            return;
        }
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(&fifo).expect("read fifo"))
        };
        write_atomic(&fifo, b"through the pipe", None).expect("write");
        assert_eq!(reader.join().expect("reader"), b"through the pipe\n");
        assert!(fs::symlink_metadata(&fifo)
            .expect("stat")
            .file_type()
            .is_fifo());
        assert!(
            write_atomic(dir.path(), b"x", None).is_err(),
            "a directory is refused"
        );
        // a regular file is replaced atomically as before
        let file = dir.path().join("out.json");
        write_atomic(&file, b"{}", None).expect("write");
        assert_eq!(fs::read(&file).expect("read"), b"{}\n");
    }
}
