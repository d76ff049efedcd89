//! Which executables an image's entrypoint runs.

use std::os::unix::fs::PermissionsExt;

use vexxy_rootfs::{normalize, RootFs};

use crate::elf::{default_path, has_elf_magic, read_prefix};

/// How deep `#!` interpreters may nest (Linux allows a handful).
const MAX_SHEBANG_DEPTH: usize = 4;
/// The kernel reads at most this much of a `#!` line.
const SHEBANG_BYTES: u64 = 256;

/// The ELF executables an entrypoint command runs, as canonical image paths.
///
/// `argv[0]` is looked up through `PATH` (from `env`, or the usual
/// container default) when it has no `/`; a `#!` script contributes its
/// interpreter (and `/usr/bin/env X` contributes `X` too). Every later
/// argument word (split on whitespace and shell separators) that resolves
/// to an executable file of the image counts as well, so
/// `/docker-entrypoint.sh nginx -g 'daemon off;'` yields `/bin/dash` and
/// `/usr/sbin/nginx`. Over-approximating is deliberate: more entrypoints
/// only make more code count as reachable.
pub fn entrypoints(root: &RootFs, argv: &[String], env: &[(String, String)]) -> Vec<String> {
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(default_path(), |(_, v)| v.as_str());
    let mut out = Vec::new();
    let Some((first, rest)) = argv.split_first() else {
        return out;
    };
    if let Some(p) = find_program(root, first, path_var) {
        add_program(root, &p, path_var, 0, &mut out);
    }
    for arg in rest {
        for word in
            arg.split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '`'))
        {
            if word.is_empty() || word.starts_with('-') || word.contains('=') {
                continue;
            }
            if let Some(p) = find_program(root, word, path_var) {
                add_program(root, &p, path_var, 0, &mut out);
            }
        }
    }
    out
}

/// Resolves a command name like `execvp` does; the result is canonical.
fn find_program(root: &RootFs, name: &str, path_var: &str) -> Option<String> {
    if name.contains('/') {
        let abs = if name.starts_with('/') {
            normalize(name)
        } else {
            normalize(&format!("/{name}"))
        };
        return executable(root, &abs);
    }
    path_var
        .split(':')
        .filter(|d| d.starts_with('/'))
        .find_map(|d| executable(root, &format!("{d}/{name}")))
}

fn executable(root: &RootFs, path: &str) -> Option<String> {
    let meta = root.metadata(path).ok()?;
    if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
        root.canonical(path).ok()
    } else {
        None
    }
}

fn add_program(
    root: &RootFs,
    canonical: &str,
    path_var: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    if has_elf_magic(root, canonical) {
        if !out.iter().any(|p| p == canonical) {
            out.push(canonical.to_owned());
        }
        return;
    }
    if depth >= MAX_SHEBANG_DEPTH {
        return;
    }
    let Some(head) = read_prefix(root, canonical, SHEBANG_BYTES) else {
        return;
    };
    let Some(line) = head.strip_prefix(b"#!") else {
        return;
    };
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    let (interp, arg) = match line.split_once([' ', '\t']) {
        Some((i, a)) => (i, a.trim()),
        None => (line, ""),
    };
    let Some(interp_path) =
        find_program(root, interp, path_var).filter(|_| interp.starts_with('/'))
    else {
        return;
    };
    add_program(root, &interp_path, path_var, depth + 1, out);
    if interp.rsplit('/').next() == Some("env") {
        // `env [-S] [-i] [NAME=value]… program …`
        if let Some(prog) = arg
            .split_whitespace()
            .find(|w| !w.starts_with('-') && !w.contains('='))
            .and_then(|w| find_program(root, w, path_var))
        {
            add_program(root, &prog, path_var, depth + 1, out);
        }
    }
}
