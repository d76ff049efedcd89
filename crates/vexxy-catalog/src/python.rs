//! Installed Python distributions: `*.dist-info/METADATA` with `RECORD`
//! (paths relative to the site directory) and `*.egg-info` (a directory
//! with `PKG-INFO` and, when pip installed it, `installed-files.txt` with
//! paths relative to the egg-info directory; or a single `PKG-INFO`-style
//! file), found in every `site-packages` and `dist-packages` directory.

use std::collections::BTreeSet;

use vexxy_model::{Ecosystem, Package, Purl};
use vexxy_rootfs::{Entry, EntryKind, RootFs};

use crate::{
    files::FileResolver,
    walk::{below, file_name, parent},
};

/// Largest `METADATA`/`PKG-INFO` read (8 MiB).
pub const PYTHON_METADATA_LIMIT: u64 = 8 << 20;
/// Largest `RECORD`/`installed-files.txt` read (16 MiB).
pub const PYTHON_RECORD_LIMIT: u64 = 16 << 20;

/// Catalogs the Python distributions among the walked entries.
pub(crate) fn catalog(
    root: &RootFs,
    entries: &[Entry],
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let mut out = Vec::new();
    for entry in entries {
        let name = file_name(&entry.path);
        let site = parent(&entry.path);
        if !matches!(file_name(site), "site-packages" | "dist-packages") {
            continue;
        }
        let result = match entry.kind {
            EntryKind::Dir if name.ends_with(".dist-info") => {
                dist_info(root, entries, &entry.path, site, resolver)
            }
            EntryKind::Dir if name.ends_with(".egg-info") => {
                egg_info_dir(root, entries, &entry.path, resolver)
            }
            EntryKind::File if name.ends_with(".egg-info") => {
                let mut files = BTreeSet::new();
                resolver.add(&entry.path, &mut files);
                read_metadata(root, &entry.path).map(|m| Some((m, files)))
            }
            _ => continue,
        };
        match result {
            Ok(Some(((name, version), files))) => {
                match Purl::new("pypi", None, &name, Some(&version)) {
                    Ok(purl) => {
                        let mut p = Package::new(name, version, Ecosystem::Python);
                        p.purl = Some(purl);
                        p.files = files;
                        out.push(p);
                    }
                    Err(e) => warnings.push(format!("{}: {e}", entry.path)),
                }
            }
            Ok(None) => {}
            Err(e) => warnings.push(e),
        }
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out
}

type Found = Option<((String, String), BTreeSet<String>)>;

fn dist_info(
    root: &RootFs,
    entries: &[Entry],
    dir: &str,
    site: &str,
    resolver: &mut FileResolver<'_>,
) -> Result<Found, String> {
    let metadata = format!("{dir}/METADATA");
    if !root.is_file(&metadata) {
        // A dist-info without METADATA is not an installed distribution.
        return Err(format!("{dir}: no METADATA file; skipped"));
    }
    let meta = read_metadata(root, &metadata)?;
    let mut files = BTreeSet::new();
    let record = format!("{dir}/RECORD");
    match root.read_to_string(&record, PYTHON_RECORD_LIMIT) {
        Ok(text) => {
            for line in text.lines() {
                let path = first_csv_field(line);
                let path = path.as_str();
                if !path.is_empty() {
                    resolver.add(&join(site, path), &mut files);
                }
            }
        }
        Err(e) if crate::files::is_not_found(&e) => own_dir(entries, dir, resolver, &mut files),
        Err(e) => return Err(format!("cannot read {record}: {e}")),
    }
    Ok(Some((meta, files)))
}

fn egg_info_dir(
    root: &RootFs,
    entries: &[Entry],
    dir: &str,
    resolver: &mut FileResolver<'_>,
) -> Result<Found, String> {
    let pkg_info = format!("{dir}/PKG-INFO");
    if !root.is_file(&pkg_info) {
        return Err(format!("{dir}: no PKG-INFO file; skipped"));
    }
    let meta = read_metadata(root, &pkg_info)?;
    let mut files = BTreeSet::new();
    own_dir(entries, dir, resolver, &mut files);
    let installed = format!("{dir}/installed-files.txt");
    match root.read_to_string(&installed, PYTHON_RECORD_LIMIT) {
        Ok(text) => {
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                resolver.add(&join(dir, line), &mut files);
            }
        }
        Err(e) if crate::files::is_not_found(&e) => {}
        Err(e) => return Err(format!("cannot read {installed}: {e}")),
    }
    Ok(Some((meta, files)))
}

/// The files of a metadata directory itself.
fn own_dir(
    entries: &[Entry],
    dir: &str,
    resolver: &mut FileResolver<'_>,
    files: &mut BTreeSet<String>,
) {
    for e in below(entries, dir) {
        if e.kind != EntryKind::Dir {
            resolver.add(&e.path, files);
        }
    }
}

/// `base/rel` normalised lexically (RECORD paths may climb out with `..`),
/// or `rel` itself when absolute.
fn join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        vexxy_rootfs::normalize(rel)
    } else {
        vexxy_rootfs::normalize(&format!("{base}/{rel}"))
    }
}

/// The first field of a CSV line (RECORD rows are `path,hash,size`; a path
/// with a comma or quote is quoted, quotes doubled).
fn first_csv_field(line: &str) -> String {
    let line = line.trim_end_matches('\r');
    let Some(rest) = line.strip_prefix('"') else {
        return line.split(',').next().unwrap_or_default().to_owned();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                out.push('"');
                chars.next();
            } else {
                break;
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Name (normalised as PEP 503 says) and version from core-metadata headers.
fn read_metadata(root: &RootFs, path: &str) -> Result<(String, String), String> {
    let text = root
        .read_to_string(path, PYTHON_METADATA_LIMIT)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_metadata(&text).map_err(|e| format!("{path}: {e}"))
}

pub(crate) fn parse_metadata(text: &str) -> Result<(String, String), String> {
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break; // end of the headers; the description follows
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "name" if name.is_none() => name = Some(value.trim().to_owned()),
            "version" if version.is_none() => version = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let name = name.filter(|n| !n.is_empty()).ok_or("no Name header")?;
    let version = version
        .filter(|v| !v.is_empty() && !v.contains(char::is_whitespace))
        .ok_or("no valid Version header")?;
    let normalized = normalize_name(&name);
    if normalized.is_empty()
        || normalized.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(format!(
            "invalid distribution name {:?}",
            crate::clip(&name)
        ));
    }
    Ok((normalized, version))
}

/// PEP 503: lowercase, runs of `-`, `_` and `.` become one `-`.
pub(crate) fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_metadata_and_records() {
        for (raw, want) in [
            ("Flask", "flask"),
            ("charset_normalizer", "charset-normalizer"),
            ("zope.interface", "zope-interface"),
            ("A__b-.C", "a-b-c"),
        ] {
            assert_eq!(normalize_name(raw), want);
        }
        assert_eq!(
            parse_metadata(
                "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\nSummary: x\n\nName: other\n"
            ),
            Ok(("pyyaml".into(), "6.0".into()))
        );
        for (text, needle) in [
            ("Version: 1\n", "no Name"),
            ("Name: a\n", "no valid Version"),
            ("Name: a\nVersion: 1 2\n", "no valid Version"),
            ("Name: a/b\nVersion: 1\n", "invalid distribution name"),
            ("\nName: a\nVersion: 1\n", "no Name"),
        ] {
            let err = parse_metadata(text).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        for (line, want) in [
            ("flask/__init__.py,sha256=x,10", "flask/__init__.py"),
            ("\"a,b\"\"c.py\",,", "a,b\"c.py"),
            ("", ""),
        ] {
            assert_eq!(first_csv_field(line), want);
        }
        assert_eq!(
            join("/usr/lib/python3/dist-packages", "../../../bin/flask"),
            "/usr/bin/flask"
        );
    }
}
