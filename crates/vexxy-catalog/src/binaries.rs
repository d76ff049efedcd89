//! Packages compiled into binaries: Go modules from the build info
//! (`.go.buildinfo`) and Rust crates recorded by cargo-auditable
//! (`.dep-v0`: zlib-compressed JSON). Each package owns the binary.

use std::io::Read;

use vexxy_model::{Ecosystem, Package, Purl};
use vexxy_rootfs::{Entry, EntryKind, RootFs};

use crate::{
    binfile::{self, ImageFile},
    files::FileResolver,
    golang::{self, BuildInfoError},
};

/// Smallest file probed for an ELF header.
const MIN_BINARY: u64 = 64;
/// Largest binary probed (bigger files are skipped silently: they are
/// outside what any package manager ships as one executable).
pub const BINARY_MAX_SIZE: u64 = 2 << 30;
/// Most bytes of a `.go.buildinfo` section read.
pub const GO_BUILDINFO_LIMIT: u64 = 8 << 20;
/// Most compressed bytes of a `.dep-v0` section read.
pub const DEP_V0_LIMIT: u64 = 8 << 20;
/// Most bytes a `.dep-v0` section may decompress to.
pub const DEP_V0_INFLATED_LIMIT: u64 = 64 << 20;

const GO_SECTION: &str = ".go.buildinfo";
const RUST_SECTION: &str = ".dep-v0";

/// Catalogs Go and cargo-auditable Rust binaries among the walked files.
pub(crate) fn catalog(
    root: &RootFs,
    entries: &[Entry],
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> (Vec<Package>, Vec<Package>) {
    let mut go = Vec::new();
    let mut rust = Vec::new();
    for entry in entries {
        if entry.kind != EntryKind::File
            || entry.size < MIN_BINARY
            || entry.size > BINARY_MAX_SIZE
            || skipped(&entry.path)
        {
            continue;
        }
        let Ok(file) = ImageFile::open(root, &entry.path) else {
            continue;
        };
        let Ok(head) = file.head(64) else { continue };
        if !binfile::is_elf(&head) {
            continue;
        }
        let sections = match binfile::sections(&file, &head, &[GO_SECTION, RUST_SECTION]) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("{}: {e}", entry.path));
                continue;
            }
        };
        let mut owned = std::collections::BTreeSet::new();
        if !sections.is_empty() {
            resolver.add(&entry.path, &mut owned);
        }
        for section in sections {
            let (result, into) = if section.name == GO_SECTION {
                (go_packages(&file, &section, &entry.path), &mut go)
            } else {
                (rust_packages(&file, &section, &entry.path), &mut rust)
            };
            match result {
                Ok(packages) => into.extend(packages.into_iter().map(|mut p| {
                    p.files.clone_from(&owned);
                    p
                })),
                Err(e) => warnings.push(e),
            }
        }
    }
    (go, rust)
}

/// Paths that never hold executables worth probing (documentation,
/// locales, headers, time zones, the dpkg database).
fn skipped(path: &str) -> bool {
    const DIRS: [&str; 7] = [
        "/usr/share/doc/",
        "/usr/share/man/",
        "/usr/share/locale/",
        "/usr/share/zoneinfo/",
        "/usr/share/i18n/",
        "/usr/include/",
        "/var/lib/dpkg/",
    ];
    const EXTS: [&str; 14] = [
        ".py", ".pyc", ".txt", ".gz", ".h", ".mo", ".html", ".json", ".conf", ".jar", ".js", ".md",
        ".xml", ".pem",
    ];
    DIRS.iter().any(|d| path.starts_with(d)) || EXTS.iter().any(|e| path.ends_with(e))
}

fn go_packages(
    file: &ImageFile,
    section: &binfile::Section,
    path: &str,
) -> Result<Vec<Package>, String> {
    let data = file
        .read_at(section.offset, section.size.min(GO_BUILDINFO_LIMIT))
        .map_err(|e| format!("{path}: {GO_SECTION} section: {e}"))?;
    let info = match golang::parse(&data) {
        Ok(info) => info,
        Err(BuildInfoError::NoMagic) => return Err(format!("{path}: {GO_SECTION} section without the build-info magic")),
        Err(BuildInfoError::PointerFormat) => {
            return Err(format!(
                "{path}: go build info in the pre-1.18 pointer format is not supported; its modules are not cataloged"
            ))
        }
        Err(BuildInfoError::Malformed(m)) => return Err(format!("{path}: malformed go build info: {m}")),
    };
    let mut out = Vec::new();
    for module in info.main.iter().chain(info.deps.iter()) {
        let version = if module.version.is_empty() {
            golang::DEVEL
        } else {
            module.version.as_str()
        };
        match go_purl(&module.path, version) {
            Ok(purl) => {
                let mut p = Package::new(&module.path, version, Ecosystem::Go);
                p.purl = Some(purl);
                out.push(p);
            }
            Err(e) => return Err(format!("{path}: go module {:?}: {e}", module.path)),
        }
    }
    // The standard library, so Go runtime advisories match.
    let std_version = info.go_version.trim_start_matches("go");
    let purl = Purl::new("golang", None, "stdlib", Some(std_version))
        .map_err(|e| format!("{path}: {e}"))?;
    let mut std = Package::new("stdlib", &info.go_version, Ecosystem::Go);
    std.purl = Some(purl);
    out.push(std);
    Ok(out)
}

/// `pkg:golang/<module path up to the last slash>/<last element>@<version>`.
pub(crate) fn go_purl(module: &str, version: &str) -> Result<Purl, vexxy_model::PurlError> {
    let (namespace, name) = match module.rsplit_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, module),
    };
    Purl::new("golang", namespace, name, Some(version))
}

fn rust_packages(
    file: &ImageFile,
    section: &binfile::Section,
    path: &str,
) -> Result<Vec<Package>, String> {
    if section.size > DEP_V0_LIMIT {
        return Err(format!(
            "{path}: {RUST_SECTION} section of {} bytes is more than the limit of {DEP_V0_LIMIT}",
            section.size
        ));
    }
    let data = file
        .read_at(section.offset, section.size)
        .map_err(|e| format!("{path}: {RUST_SECTION} section: {e}"))?;
    parse_dep_v0(&data).map_err(|e| format!("{path}: {RUST_SECTION} section: {e}"))
}

/// Decompresses and reads cargo-auditable's dependency list. Build-time
/// dependencies (`"kind": "build"`) are left out: they are not linked in.
pub(crate) fn parse_dep_v0(compressed: &[u8]) -> Result<Vec<Package>, String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(DEP_V0_INFLATED_LIMIT + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("not zlib data: {e}"))?;
    if json.len() as u64 > DEP_V0_INFLATED_LIMIT {
        return Err(format!(
            "decompresses to more than {DEP_V0_INFLATED_LIMIT} bytes"
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| format!("invalid json: {e}"))?;
    let packages = value
        .get("packages")
        .and_then(serde_json::Value::as_array)
        .ok_or("no \"packages\" array")?;
    let mut out = Vec::with_capacity(packages.len());
    for (i, p) in packages.iter().enumerate() {
        let field = |key: &str| p.get(key).and_then(serde_json::Value::as_str);
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            return Err(format!("packages[{i}]: no name or version"));
        };
        if name.is_empty() || version.is_empty() {
            return Err(format!("packages[{i}]: empty name or version"));
        }
        if field("kind") == Some("build") {
            continue;
        }
        let purl = Purl::new("cargo", None, name, Some(version))
            .map_err(|e| format!("packages[{i}]: {e}"))?;
        let mut package = Package::new(name, version, Ecosystem::Cargo);
        package.purl = Some(purl);
        out.push(package);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("compress");
        e.finish().expect("finish")
    }

    #[test]
    fn dep_v0_table() {
        let ok = r#"{"packages":[{"name":"app","version":"0.1.0","source":"local","root":true,"dependencies":[1,2]},{"name":"serde","version":"1.0.200","source":"crates.io"},{"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"}]}"#;
        let got: Vec<String> = parse_dep_v0(&zlib(ok.as_bytes()))
            .expect("parses")
            .iter()
            .map(|p| p.purl.as_ref().map(ToString::to_string).unwrap_or_default())
            .collect();
        assert_eq!(got, ["pkg:cargo/app@0.1.0", "pkg:cargo/serde@1.0.200"]);
        for (name, data, needle) in [
            ("not zlib", b"{}".to_vec(), "not zlib"),
            ("not json", zlib(b"nope"), "invalid json"),
            ("no packages", zlib(b"{\"x\":1}"), "no \"packages\""),
            (
                "no version",
                zlib(br#"{"packages":[{"name":"a"}]}"#),
                "packages[0]: no name or version",
            ),
            (
                "empty name",
                zlib(br#"{"packages":[{"name":"","version":"1"}]}"#),
                "packages[0]: empty",
            ),
        ] {
            let err = parse_dep_v0(&data).expect_err(name);
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn go_purls_split_the_module_path() {
        for (module, version, want) in [
            (
                "github.com/sirupsen/logrus",
                "v1.9.3",
                "pkg:golang/github.com/sirupsen/logrus@v1.9.3",
            ),
            ("example", "(devel)", "pkg:golang/example@%28devel%29"),
            (
                "golang.org/x/net",
                "v0.0.0-2023+incompatible",
                "pkg:golang/golang.org/x/net@v0.0.0-2023%2Bincompatible",
            ),
        ] {
            assert_eq!(go_purl(module, version).expect(module).to_string(), want);
        }
    }
}
