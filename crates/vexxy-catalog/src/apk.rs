//! The Alpine package database, `/lib/apk/db/installed`: blank-line
//! separated records of `K:value` lines — `P` name, `V` version, `A`
//! architecture, `o` origin (source package), `F` a directory, `R` a file
//! in the last `F` directory.

use std::collections::BTreeSet;

use vexxy_model::{Ecosystem, Package, Purl, SourcePackage};
use vexxy_rootfs::RootFs;

use crate::{files::FileResolver, Distro};

/// The apk database of installed packages.
pub const APK_INSTALLED: &str = "/lib/apk/db/installed";
/// Largest apk database read (64 MiB).
pub const APK_LIMIT: u64 = 64 << 20;

/// Whether the image has an apk database.
pub(crate) fn present(root: &RootFs) -> bool {
    root.exists(APK_INSTALLED)
}

#[derive(Default)]
struct Record {
    line: usize,
    name: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    origin: Option<String>,
    dir: String,
    files: Vec<String>,
}

/// Catalogs the apk packages; problems become warnings naming the file and line.
pub(crate) fn catalog(
    root: &RootFs,
    distro: Option<&Distro>,
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let text = match root.read_to_string(APK_INSTALLED, APK_LIMIT) {
        Ok(t) => t,
        Err(e) if crate::files::is_not_found(&e) => return Vec::new(),
        Err(e) => {
            warnings.push(format!("cannot read {APK_INSTALLED}: {e}"));
            return Vec::new();
        }
    };
    let mut records = Vec::new();
    let mut current: Option<Record> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            records.extend(current.take());
            continue;
        }
        let record = current.get_or_insert_with(|| Record {
            line: line_no,
            ..Record::default()
        });
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b':' {
            warnings.push(format!(
                "{APK_INSTALLED} line {line_no}: not a \"K:value\" line: {:?}",
                crate::clip(line)
            ));
            continue;
        }
        let value = &line[2..];
        match bytes[0] {
            b'P' => record.name = Some(value.to_owned()),
            b'V' => record.version = Some(value.to_owned()),
            b'A' => record.arch = Some(value.to_owned()),
            b'o' => record.origin = Some(value.to_owned()),
            b'F' => record.dir = value.trim_matches('/').to_owned(),
            b'R' => {
                let file = if record.dir.is_empty() {
                    format!("/{value}")
                } else {
                    format!("/{}/{value}", record.dir)
                };
                record.files.push(file);
            }
            _ => {}
        }
    }
    records.extend(current.take());

    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let (Some(name), Some(version)) = (
            r.name.filter(|n| crate::valid_name(n)),
            r.version.filter(|v| crate::valid_name(v)),
        ) else {
            warnings.push(format!(
                "{APK_INSTALLED} line {}: record without a valid package name (P:) or version (V:); skipped",
                r.line
            ));
            continue;
        };
        let namespace = distro.map_or("alpine", |d| d.id.as_str());
        let purl = Purl::new("apk", Some(namespace), &name, Some(&version));
        let Ok(mut purl) = purl else {
            continue;
        };
        if let Some(arch) = &r.arch {
            purl = purl.with_qualifier("arch", arch);
        }
        if let Some(d) = distro {
            let value = match &d.version_id {
                Some(v) => format!("{}-{v}", d.id),
                None => d.id.clone(),
            };
            purl = purl.with_qualifier("distro", &value);
        }
        if let Some(origin) = &r.origin {
            purl = purl.with_qualifier("upstream", origin);
        }
        let mut files = BTreeSet::new();
        for f in &r.files {
            resolver.add(f, &mut files);
        }
        let mut p = Package::new(&name, &version, Ecosystem::Apk);
        p.source = Some(SourcePackage {
            name: r.origin.clone().unwrap_or_else(|| name.clone()),
            version: Some(version.clone()),
        });
        p.architecture = r.arch;
        p.purl = Some(purl);
        p.files = files;
        out.push(p);
    }
    out.sort_by(|a, b| {
        (&a.name, &a.architecture, &a.version).cmp(&(&b.name, &b.architecture, &b.version))
    });
    out
}
