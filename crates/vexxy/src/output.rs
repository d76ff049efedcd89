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
    #[test]
    fn special_files_are_written_through_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            println!("SKIP: mkfifo unavailable");
            return;
        }
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
