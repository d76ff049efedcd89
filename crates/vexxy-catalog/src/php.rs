//! Installed PHP Composer packages: `<vendor dir>/composer/installed.json`,
//! in Composer 1's form (a top-level array of packages) and Composer 2's
//! (`{"packages": [...]}`). Each package owns every file under its install
//! directory: Composer 2's `install-path` (relative to `vendor/composer/`),
//! else `<vendor dir>/<name>`. An install path that leaves the vendor
//! directory, or names the vendor directory itself or `vendor/composer`, owns
//! nothing (a hostile `installed.json` cannot claim the image's files);
//! metapackages (no install path) own nothing either.

use std::collections::BTreeSet;

use vexxy_model::{Ecosystem, Package, Purl};
use vexxy_rootfs::{Entry, EntryKind, RootFs};

use crate::{files::FileResolver, walk::below};

/// Largest `installed.json` read (32 MiB).
pub const COMPOSER_INSTALLED_LIMIT: u64 = 32 << 20;
/// Most packages read from one `installed.json`.
pub const COMPOSER_MAX_PACKAGES: usize = 20_000;

const INSTALLED: &str = "/composer/installed.json";

/// Catalogs the Composer packages among the walked entries.
pub(crate) fn catalog(
    root: &RootFs,
    entries: &[Entry],
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let mut out = Vec::new();
    for entry in entries {
        if entry.kind != EntryKind::File || !entry.path.ends_with(INSTALLED) {
            continue;
        }
        let vendor = &entry.path[..entry.path.len() - INSTALLED.len()];
        if vendor.is_empty() {
            continue;
        }
        let bytes = match root.read(&entry.path, COMPOSER_INSTALLED_LIMIT) {
            Ok(b) => b,
            Err(e) => {
                warnings.push(format!("cannot read {}: {e}", entry.path));
                continue;
            }
        };
        let records = match parse_installed(&bytes) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!("{}: {e}", entry.path));
                continue;
            }
        };
        if records.len() > COMPOSER_MAX_PACKAGES {
            warnings.push(format!(
                "{}: only the first {COMPOSER_MAX_PACKAGES} of {} packages read",
                entry.path,
                records.len()
            ));
        }
        for (index, record) in records.into_iter().take(COMPOSER_MAX_PACKAGES).enumerate() {
            let record = match record {
                Ok(r) => r,
                Err(field) => {
                    warnings.push(format!(
                        "{}: packages[{index}]: {field}; skipped",
                        entry.path
                    ));
                    continue;
                }
            };
            let Some((namespace, short)) = record.name.split_once('/') else {
                continue; // checked by the parser
            };
            let purl = match Purl::new("composer", Some(namespace), short, Some(&record.version)) {
                Ok(p) => p,
                Err(e) => {
                    warnings.push(format!("{}: packages[{index}]: {e}", entry.path));
                    continue;
                }
            };
            let mut files = BTreeSet::new();
            match install_dir(vendor, &record) {
                Some(dir) => {
                    for e in below(entries, &dir) {
                        if e.kind != EntryKind::Dir {
                            resolver.add(&e.path, &mut files);
                        }
                    }
                }
                None if record.install_path.is_some() => warnings.push(format!(
                    "{}: packages[{index}].install-path leaves {vendor}; it owns no files",
                    entry.path
                )),
                None => {}
            }
            let mut p = Package::new(
                record.name,
                record.version,
                Ecosystem::from_purl_type("composer"),
            );
            p.purl = Some(purl);
            p.files = files;
            out.push(p);
        }
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out
}

/// One package of `installed.json`.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    name: String,
    version: String,
    /// `install-path`: `Some(None)` when present but null (metapackages).
    install_path: Option<Option<String>>,
    kind: Option<String>,
}

/// The package records of an `installed.json`, each parsed or the name of
/// its bad field; an error when the document is not one of the two forms.
fn parse_installed(bytes: &[u8]) -> Result<Vec<Result<Record, String>>, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("invalid json: {}", e.to_string().to_lowercase()))?;
    let list = match &value {
        serde_json::Value::Array(list) => list,
        serde_json::Value::Object(map) => match map.get("packages") {
            Some(serde_json::Value::Array(list)) => list,
            Some(_) => return Err("packages: not an array".to_owned()),
            None => return Err("no packages array".to_owned()),
        },
        _ => return Err("neither an array nor an object with packages".to_owned()),
    };
    Ok(list.iter().map(record).collect())
}

fn record(value: &serde_json::Value) -> Result<Record, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match value.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(format!("{key}: not a string")),
        }
    };
    if !value.is_object() {
        return Err("not an object".to_owned());
    }
    let name = text("name")?.ok_or("name: missing")?;
    let version = text("version")?.ok_or("version: missing")?;
    let bad = |s: &str| s.is_empty() || s.contains(|c: char| c.is_whitespace() || c.is_control());
    let Some((vendor, short)) = name.split_once('/') else {
        return Err("name: not vendor/name".to_owned());
    };
    if bad(&name) || vendor.is_empty() || short.is_empty() || short.contains('/') {
        return Err("name: not vendor/name".to_owned());
    }
    if bad(&version) {
        return Err("version: invalid".to_owned());
    }
    let install_path = match value.get("install-path") {
        None => None,
        Some(_) => Some(text("install-path")?),
    };
    Ok(Record {
        name,
        version,
        install_path,
        kind: text("type")?,
    })
}

/// The directory a package is installed in, inside `vendor` and neither
/// `vendor` nor `vendor/composer` itself; `None` for metapackages and for
/// install paths that leave the vendor directory.
fn install_dir(vendor: &str, record: &Record) -> Option<String> {
    let dir = match &record.install_path {
        Some(None) => return None,
        Some(Some(p)) if p.starts_with('/') => vexxy_rootfs::normalize(p),
        Some(Some(p)) => vexxy_rootfs::normalize(&format!("{vendor}/composer/{p}")),
        None if record.kind.as_deref() == Some("metapackage") => return None,
        None => format!("{vendor}/{}", record.name),
    };
    let inside = dir
        .strip_prefix(vendor)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| {
            !rest.is_empty() && rest != "composer" && !rest.starts_with("composer/")
        });
    inside.then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, install: Option<Option<&str>>, kind: Option<&str>) -> Record {
        Record {
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            install_path: install.map(|p| p.map(str::to_owned)),
            kind: kind.map(str::to_owned),
        }
    }

    #[test]
    fn install_dirs_stay_in_the_vendor_directory() {
        let v = "/var/www/app/vendor";
        for (r, want) in [
            (
                rec("monolog/monolog", Some(Some("../monolog/monolog")), None),
                Some("/var/www/app/vendor/monolog/monolog"),
            ),
            (rec("a/b", None, None), Some("/var/www/app/vendor/a/b")),
            (rec("a/meta", None, Some("metapackage")), None),
            (rec("a/meta", Some(None), None), None),
            (rec("a/b", Some(Some("../../../../etc")), None), None),
            (rec("a/b", Some(Some("..")), None), None),
            (rec("a/b", Some(Some("./")), None), None),
            (rec("a/b", Some(Some("../composer/x")), None), None),
            (
                rec("a/b", Some(Some("/var/www/app/vendor/a/b")), None),
                Some("/var/www/app/vendor/a/b"),
            ),
            (rec("a/b", Some(Some("/etc")), None), None),
        ] {
            assert_eq!(install_dir(v, &r).as_deref(), want, "{r:?}");
        }
    }

    #[test]
    fn reads_both_forms_and_names_bad_fields() {
        let v1 = br#"[{"name":"psr/log","version":"1.1.4","type":"library"}]"#;
        let got = parse_installed(v1).expect("v1");
        assert_eq!(got, [Ok(rec_v("psr/log", "1.1.4", None, Some("library")))]);
        let v2 = br#"{"packages":[
            {"name":"monolog/monolog","version":"2.9.1","install-path":"../monolog/monolog"},
            {"name":"bad","version":"1"},
            {"name":"a/b","version":7},
            {"name":"a/b/c","version":"1"},
            {"name":"a/b","version":"1 2"},
            3
        ],"dev":true}"#;
        let got = parse_installed(v2).expect("v2");
        assert_eq!(
            got,
            [
                Ok(rec_v(
                    "monolog/monolog",
                    "2.9.1",
                    Some(Some("../monolog/monolog")),
                    None
                )),
                Err("name: not vendor/name".to_owned()),
                Err("version: not a string".to_owned()),
                Err("name: not vendor/name".to_owned()),
                Err("version: invalid".to_owned()),
                Err("not an object".to_owned()),
            ]
        );
        for (bad, want) in [
            (&b"{"[..], "invalid json"),
            (b"{\"packages\":{}}", "packages: not an array"),
            (b"{}", "no packages array"),
            (b"\"x\"", "neither an array"),
        ] {
            let e = parse_installed(bad).expect_err("bad");
            assert!(e.starts_with(want), "{e}");
        }
    }

    #[test]
    fn install_path_warning_does_not_echo_the_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = dir.path().join("app/vendor/composer/installed.json");
        std::fs::create_dir_all(host.parent().expect("parent")).expect("mkdir");
        std::fs::write(
            &host,
            br#"{"packages":[{"name":"evil/secretname","version":"1.0.0","install-path":"../../../../etc"}]}"#,
        )
        .expect("write");
        let root = RootFs::open(dir.path()).expect("open");
        let mut warnings = Vec::new();
        let entries = crate::walk::walk(&root, &mut warnings);
        let mut resolver = FileResolver::new(&root);
        let got = catalog(&root, &entries, &mut resolver, &mut warnings);
        assert_eq!(got.len(), 1);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("packages[0]"), "{warnings:?}");
        assert!(warnings[0].contains("/app/vendor/composer/installed.json"));
        assert!(!warnings[0].contains("secretname"), "{warnings:?}");
    }

    fn rec_v(
        name: &str,
        version: &str,
        install: Option<Option<&str>>,
        kind: Option<&str>,
    ) -> Record {
        Record {
            version: version.to_owned(),
            ..rec(name, install, kind)
        }
    }
}
