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
pub(crate) fn write_atomic(path: &Path, content: &[u8], mode: Option<u32>) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
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
