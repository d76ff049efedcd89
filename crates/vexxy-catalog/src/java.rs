//! Java archives (`.jar`, `.war`, `.ear`): Maven coordinates from
//! `META-INF/maven/<group>/<artifact>/pom.properties`, else a name and
//! version from `META-INF/MANIFEST.MF` and the file name; archives nested
//! one level deep (`BOOT-INF/lib/*.jar`, `WEB-INF/lib/*.jar`, …) are read
//! the same way.
//!
//! Ownership, which drives the runtime evidence:
//! - a package of an archive on disk owns the archive's path and every
//!   symlink in the image that resolves to it (Debian's
//!   `/usr/share/java/commons-lang3-3.12.0.jar → commons-lang3.jar`: a
//!   class path may name either);
//! - a package of a nested archive owns the outer archive's path too (its
//!   bytes are only reachable by reading the outer archive, so the outer
//!   archive never opened proves the nested one unused) and, as a marker,
//!   the virtual path `<outer>!/<entry>` (never a path a process opens: it
//!   tells the runtime evidence that an opened outer archive does not show
//!   which nested archives the class loader read; see
//!   [`NESTED_SEPARATOR`]).

use std::{
    collections::{BTreeSet, HashSet},
    io::{Cursor, Read},
};

use vexxy_model::{Ecosystem, Package, Purl};
use vexxy_rootfs::{Entry, EntryKind, RootFs};

use crate::{files::FileResolver, walk::file_name};

/// Largest archive read (256 MiB).
pub const JAVA_ARCHIVE_LIMIT: u64 = 256 << 20;
/// Largest nested archive read, uncompressed (64 MiB).
pub const JAVA_NESTED_LIMIT: u64 = 64 << 20;
/// Most nested archives read from one archive.
pub const JAVA_MAX_NESTED: usize = 4_096;
/// Most uncompressed bytes of nested archives read from one archive (1 GiB).
pub const JAVA_NESTED_TOTAL_LIMIT: u64 = 1 << 30;
/// Largest manifest or `pom.properties` read, uncompressed (1 MiB).
const SMALL_ENTRY_LIMIT: u64 = 1 << 20;
/// Most zip entries looked at in one archive.
const MAX_ENTRIES: usize = 500_000;

const EXTENSIONS: [&str; 3] = [".jar", ".war", ".ear"];

/// Separates an outer archive's path from a nested archive's entry name in
/// the virtual path a nested archive's package owns:
/// `/app/app.jar!/BOOT-INF/lib/snakeyaml-2.2.jar` (the JDK's `jar:` URL
/// notation).
pub const NESTED_SEPARATOR: &str = "!/";

/// Maven coordinates of one package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Coordinates {
    pub(crate) group: String,
    pub(crate) artifact: String,
    pub(crate) version: String,
}

/// Catalogs the Java archives among the walked entries.
pub(crate) fn catalog(
    root: &RootFs,
    entries: &[Entry],
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let mut out = Vec::new();
    let links = archive_links(root, entries);
    for entry in entries {
        if entry.kind != EntryKind::File || !is_archive_name(&entry.path) {
            continue;
        }
        if entry.size > JAVA_ARCHIVE_LIMIT {
            warnings.push(format!(
                "{}: archive of {} bytes is more than the limit of {JAVA_ARCHIVE_LIMIT}; not cataloged",
                entry.path, entry.size
            ));
            continue;
        }
        let bytes = match root.read(&entry.path, JAVA_ARCHIVE_LIMIT) {
            Ok(b) => b,
            Err(e) => {
                warnings.push(format!("cannot read {}: {e}", entry.path));
                continue;
            }
        };
        let coordinates = archive_packages(&bytes, &entry.path, warnings);
        let mut files = BTreeSet::new();
        resolver.add(&entry.path, &mut files);
        if let Some(linked) = links.get(entry.path.as_str()) {
            for link in linked {
                resolver.add(link, &mut files);
            }
        }
        for (c, inner) in coordinates {
            match Purl::new("maven", Some(&c.group), &c.artifact, Some(&c.version)) {
                Ok(purl) => {
                    let mut p = Package::new(&c.artifact, &c.version, Ecosystem::Maven);
                    p.purl = Some(purl);
                    p.files.clone_from(&files);
                    if let Some(inner) = inner {
                        p.files
                            .insert(format!("{}{NESTED_SEPARATOR}{inner}", entry.path));
                    }
                    out.push(p);
                }
                Err(e) => warnings.push(format!("{}: {e}", entry.path)),
            }
        }
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out
}

/// Symlinks with an archive's name, by the archive path they resolve to
/// (links to links included; a link out of the image or into a loop is
/// left out).
fn archive_links<'e>(
    root: &RootFs,
    entries: &'e [Entry],
) -> std::collections::HashMap<String, Vec<&'e str>> {
    let mut out: std::collections::HashMap<String, Vec<&'e str>> = std::collections::HashMap::new();
    for e in entries {
        if e.kind == EntryKind::Symlink && is_archive_name(&e.path) {
            if let Ok(target) = root.canonical(&e.path) {
                if target != e.path {
                    out.entry(target).or_default().push(&e.path);
                }
            }
        }
    }
    out
}

fn is_archive_name(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// The packages of one archive and of the archives nested in it, each
/// once, with the entry name of the nested archive a package came from
/// (`None` for the outer archive's own). `label` names the archive in
/// warnings.
pub(crate) fn archive_packages(
    bytes: &[u8],
    label: &str,
    warnings: &mut Vec<String>,
) -> Vec<(Coordinates, Option<String>)> {
    let mut nested = Vec::new();
    let mut out: Vec<(Coordinates, Option<String>)> =
        match read_archive(bytes, label, Some(&mut nested), warnings) {
            Ok(c) => c.into_iter().map(|c| (c, None)).collect(),
            Err(e) => {
                warnings.push(format!("{label}: {e}"));
                return Vec::new();
            }
        };
    for (name, data) in nested {
        let inner = format!("{label}{NESTED_SEPARATOR}{name}");
        match read_archive(&data, &inner, None, warnings) {
            Ok(c) => out.extend(c.into_iter().map(|c| (c, Some(name.clone())))),
            Err(e) => warnings.push(format!("{inner}: {e}")),
        }
    }
    // The same coordinates twice (shaded copies): the outer archive's own
    // claim wins, else the first nested one.
    let mut seen = HashSet::new();
    out.retain(|(c, _)| seen.insert(c.clone()));
    out
}

/// Reads one archive. With `nested`, collects the archives inside it.
fn read_archive(
    bytes: &[u8],
    label: &str,
    mut nested: Option<&mut Vec<(String, Vec<u8>)>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Coordinates>, String> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a zip archive: {e}"))?;
    let mut manifest = None;
    let mut poms = Vec::new();
    let mut nested_total = 0u64;
    let count = zip.len();
    if count > MAX_ENTRIES {
        warnings.push(format!(
            "{label}: only the first {MAX_ENTRIES} of {count} entries read"
        ));
    }
    for i in 0..count.min(MAX_ENTRIES) {
        let mut file = match zip.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                warnings.push(format!("{label}: entry {i}: {e}"));
                continue;
            }
        };
        if file.is_dir() {
            continue;
        }
        let name = file.name().to_owned();
        let is_manifest = name.eq_ignore_ascii_case("META-INF/MANIFEST.MF");
        let is_pom = name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties");
        let is_nested = nested.is_some() && is_archive_name(&name);
        if !(is_manifest || is_pom || is_nested) {
            continue;
        }
        let limit = if is_nested {
            JAVA_NESTED_LIMIT
        } else {
            SMALL_ENTRY_LIMIT
        };
        if file.size() > limit {
            warnings.push(format!(
                "{label}!/{name}: {} bytes is more than the limit of {limit}; skipped",
                file.size()
            ));
            continue;
        }
        if is_nested {
            if let Some(list) = nested.as_deref() {
                if list.len() >= JAVA_MAX_NESTED
                    || nested_total + file.size() > JAVA_NESTED_TOTAL_LIMIT
                {
                    warnings.push(format!(
                        "{label}!/{name}: too many nested archives; skipped"
                    ));
                    continue;
                }
            }
        }
        let mut data = Vec::new();
        if let Err(e) = (&mut file).take(limit + 1).read_to_end(&mut data) {
            warnings.push(format!("{label}!/{name}: {e}"));
            continue;
        }
        if data.len() as u64 > limit {
            warnings.push(format!(
                "{label}!/{name}: more than {limit} bytes uncompressed; skipped"
            ));
            continue;
        }
        if is_manifest {
            manifest = Some(parse_manifest(&String::from_utf8_lossy(&data)));
        } else if is_pom {
            match parse_pom_properties(&String::from_utf8_lossy(&data)) {
                Some(c) => poms.push(c),
                None => warnings.push(format!(
                    "{label}!/{name}: no groupId, artifactId or version; skipped"
                )),
            }
        } else if let Some(list) = nested.as_deref_mut() {
            nested_total += data.len() as u64;
            list.push((name, data));
        }
    }
    let archive_name = file_name(label);
    let stem = archive_name
        .rsplit_once('.')
        .map_or(archive_name, |(stem, _)| stem);
    let from_file = split_file_name(stem);
    let pom_is_main = poms
        .iter()
        .any(|p| from_file.as_ref().is_some_and(|(n, _)| *n == p.artifact))
        || (poms.len() == 1 && from_file.is_none());
    if !pom_is_main && (poms.is_empty() || from_file.is_some()) {
        if let Some(c) = from_manifest(manifest.as_deref().unwrap_or_default(), stem, from_file) {
            poms.insert(0, c);
        }
    }
    Ok(poms)
}

/// `commons-lang3-3.12.0` → (`commons-lang3`, `3.12.0`): split at the first
/// `-` followed by a digit.
fn split_file_name(stem: &str) -> Option<(String, String)> {
    let bytes = stem.as_bytes();
    let at = (2..bytes.len()).find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit())?;
    Some((stem[..at - 1].to_owned(), stem[at..].to_owned()))
}

fn manifest_value<'a>(manifest: &'a [(String, String)], key: &str) -> Option<&'a str> {
    manifest
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Coordinates from the manifest's main section and the file name; `None`
/// when no version is known.
fn from_manifest(
    manifest: &[(String, String)],
    stem: &str,
    from_file: Option<(String, String)>,
) -> Option<Coordinates> {
    let (file_artifact, file_version) = from_file.map_or((None, None), |(n, v)| (Some(n), Some(v)));
    let artifact = file_artifact
        .or_else(|| {
            [
                "Implementation-Title",
                "Bundle-SymbolicName",
                "Specification-Title",
            ]
            .iter()
            .filter_map(|k| manifest_value(manifest, k))
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            // A title that is prose ("Java Runtime Environment") names no
            // artifact; the file name does (`jrt-fs.jar`), as Syft names it.
            .find(|v| {
                !v.is_empty()
                    && !v.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/')
            })
        })
        .unwrap_or_else(|| stem.to_owned());
    let version = [
        "Implementation-Version",
        "Bundle-Version",
        "Specification-Version",
    ]
    .iter()
    .find_map(|k| manifest_value(manifest, k))
    .map(str::to_owned)
    .or(file_version)?;
    let group = manifest_value(manifest, "Implementation-Vendor-Id")
        .map(str::to_owned)
        .unwrap_or_else(|| artifact.clone());
    let valid = |s: &str| {
        !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/')
    };
    (valid(&artifact) && valid(&version) && valid(&group)).then_some(Coordinates {
        group,
        artifact,
        version,
    })
}

/// The main section of a manifest: `Key: value` lines, continuation lines
/// starting with one space, ending at the first blank line.
pub(crate) fn parse_manifest(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(more) = line.strip_prefix(' ') {
            if let Some((_, v)) = out.last_mut() {
                v.push_str(more);
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    for (_, v) in &mut out {
        *v = v.trim().to_owned();
    }
    out
}

/// `groupId`, `artifactId` and `version` of a `pom.properties`.
pub(crate) fn parse_pom_properties(text: &str) -> Option<Coordinates> {
    let (mut group, mut artifact, mut version) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once(['=', ':']) else {
            continue;
        };
        let v = v.trim().to_owned();
        match k.trim() {
            "groupId" => group = Some(v),
            "artifactId" => artifact = Some(v),
            "version" => version = Some(v),
            _ => {}
        }
    }
    let valid = |s: &String| {
        !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/')
    };
    Some(Coordinates {
        group: group.filter(valid)?,
        artifact: artifact.filter(valid)?,
        version: version.filter(valid)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_manifests_and_poms() {
        for (stem, want) in [
            ("libintl-0.21", Some(("libintl", "0.21"))),
            ("commons-lang3-3.12.0", Some(("commons-lang3", "3.12.0"))),
            ("foo-1.0-SNAPSHOT", Some(("foo", "1.0-SNAPSHOT"))),
            ("plain", None),
            ("-1", None),
        ] {
            let got = split_file_name(stem);
            assert_eq!(
                got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                want,
                "{stem}"
            );
        }
        let m = parse_manifest("Manifest-Version: 1.0\r\nImplementation-Title: long\r\n  er-name\r\nBundle-Version: 2.0\r\n\r\nName: x\r\nImplementation-Version: 9\r\n");
        assert_eq!(
            manifest_value(&m, "implementation-title"),
            Some("long er-name")
        );
        assert_eq!(manifest_value(&m, "Implementation-Version"), None);
        assert_eq!(
            from_manifest(&m, "thing", None),
            Some(Coordinates {
                group: "thing".into(),
                artifact: "thing".into(),
                version: "2.0".into()
            }),
            "a title with a space names no artifact: the file name does"
        );
        let m = parse_manifest(
            "Bundle-SymbolicName: org.example.lib;singleton:=true\nBundle-Version: 2.0\n",
        );
        assert_eq!(
            from_manifest(&m, "thing", None),
            Some(Coordinates {
                group: "org.example.lib".into(),
                artifact: "org.example.lib".into(),
                version: "2.0".into()
            })
        );
        assert_eq!(
            parse_pom_properties("#c\ngroupId=org.a\nartifactId = b\nversion:1.0\n"),
            Some(Coordinates {
                group: "org.a".into(),
                artifact: "b".into(),
                version: "1.0".into()
            })
        );
        assert_eq!(parse_pom_properties("groupId=org.a\nartifactId=b\n"), None);
        assert_eq!(
            parse_pom_properties("groupId=org a\nartifactId=b\nversion=1\n"),
            None
        );
    }
}
