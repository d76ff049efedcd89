//! Package catalogers for a root filesystem with the files each package
//! owns.
//!
//! [`catalog`] runs every cataloger on an unpacked image and merges their
//! packages into one [`Inventory`] whose source is
//! [`InventorySource::RootFs`]:
//!
//! - **dpkg**: `/var/lib/dpkg/status`, the distroless
//!   `/var/lib/dpkg/status.d/*`, and the per-package file lists in
//!   `/var/lib/dpkg/info/`, plus the image's `os-release`;
//! - **apk**: `/lib/apk/db/installed`;
//! - **rpm**: the sqlite `rpmdb.sqlite` (Berkeley DB and ndb databases are
//!   reported as unsupported);
//! - **Python**: `*.dist-info` and `*.egg-info` in every `site-packages` and
//!   `dist-packages` directory;
//! - **npm**: `node_modules/**/package.json` at package roots;
//! - **Ruby** gems: `specifications/*.gemspec` in every gem home;
//! - **PHP** Composer packages: `vendor/composer/installed.json`;
//! - **Go** binaries (`.go.buildinfo`) and **Rust** binaries built with
//!   cargo-auditable (`.dep-v0`);
//! - **Java** archives (`.jar`, `.war`, `.ear`, one level of nesting).
//!
//! The merged list holds the operating-system packages first (dpkg, apk,
//! rpm), then Python, npm, Ruby, PHP, Go, Rust and Java packages, each
//! group sorted;
//! since the first owner of a path wins in [`Inventory::owner_of`], a file
//! both dpkg and a Python `RECORD` list belongs to the dpkg package.
//! Only the dpkg cataloger fails on a malformed database (as it always
//! has); the others turn malformed input into warnings naming the file.
//! See `docs/catalogers.md` for what each one supports.
//!
//! Invariants of the dpkg cataloger:
//! - only installed packages are listed (`Status: <want> ok installed`;
//!   status.d stanzas, which carry no status, count as installed);
//! - every package's `files` holds each non-directory path its file list
//!   names, as listed **and** in canonical form (parent directory resolved
//!   beneath the root, final component kept), so that
//!   [`Inventory::owner_of`] answers for `/usr/lib/...` on a merged-usr
//!   image whose packages list `/lib/...`; a listed path that does not exist
//!   is kept as listed;
//! - purls are spelled as Syft spells them:
//!   `pkg:deb/<distro id>/<name>@<version>?arch=<arch>&distro=<id>-<version_id>`
//!   plus `upstream=<source>[@<source version>]` when the `Source:` field
//!   names another source or a source version;
//! - packages are sorted by name then architecture, so output is stable;
//! - every read is bounded, and errors name the file and the line.
//!
//! It never follows a symlink out of the image (all access goes through
//! [`RootFs`]), never writes to the image, and never runs the image's
//! `dpkg` or any other program.

mod apk;
mod binaries;
mod binfile;
mod control;
mod files;
mod gem;
mod golang;
mod java;
mod npm;
mod os_release;
mod php;
mod python;
mod rpm;
mod walk;

pub use apk::{APK_INSTALLED, APK_LIMIT};
pub use binaries::{BINARY_MAX_SIZE, DEP_V0_INFLATED_LIMIT, DEP_V0_LIMIT, GO_BUILDINFO_LIMIT};
pub use gem::{GEMSPEC_LIMIT, GEM_MAX_PACKAGES};
pub use java::{
    JAVA_ARCHIVE_LIMIT, JAVA_MAX_NESTED, JAVA_NESTED_LIMIT, JAVA_NESTED_TOTAL_LIMIT,
    NESTED_SEPARATOR,
};
pub use npm::{NPM_MANIFEST_LIMIT, NPM_MAX_PACKAGES};
pub use php::{COMPOSER_INSTALLED_LIMIT, COMPOSER_MAX_PACKAGES};
pub use python::{PYTHON_METADATA_LIMIT, PYTHON_RECORD_LIMIT};
pub use rpm::{RPM_DB_LIMIT, RPM_SQLITE, RPM_UNSUPPORTED};
pub use walk::{WALK_MAX_DEPTH, WALK_MAX_ENTRIES};

use std::collections::{BTreeMap, BTreeSet, HashSet};

use vexxy_model::{Ecosystem, Inventory, InventorySource, Package, Purl, SourcePackage};
use vexxy_rootfs::{EntryKind, RootFs, RootFsError};

use crate::files::{is_not_found, FileResolver};

/// The dpkg status database.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// The directory of per-package status files used by distroless images.
pub const DPKG_STATUS_D: &str = "/var/lib/dpkg/status.d";
/// The directory of per-package file lists (`<name>[:<arch>].list`).
pub const DPKG_INFO: &str = "/var/lib/dpkg/info";

/// Largest status database read (64 MiB).
pub const STATUS_LIMIT: u64 = 64 << 20;
/// Largest single status.d entry or file list read (16 MiB).
pub const LIST_LIMIT: u64 = 16 << 20;
/// Largest os-release file read (64 KiB).
pub const OS_RELEASE_LIMIT: u64 = 64 << 10;
/// Most entries read from `status.d`.
pub const STATUS_D_MAX_ENTRIES: usize = 100_000;

/// The operating system an image says it is, from `os-release(5)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distro {
    /// `ID`, e.g. `debian` (`linux` when absent, as the format specifies).
    pub id: String,
    /// `VERSION_ID`, e.g. `12`.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`, e.g. `bookworm`.
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub pretty_name: Option<String>,
}

/// What [`catalog`] found in a root filesystem.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// The installed packages, with [`InventorySource::RootFs`].
    pub inventory: Inventory,
    /// The distribution from `/etc/os-release` or `/usr/lib/os-release`.
    pub distro: Option<Distro>,
    /// Things that did not stop cataloging but make the result less
    /// complete (no dpkg database, a package without a file list, …).
    pub warnings: Vec<String>,
}

/// Why a root filesystem could not be cataloged.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A database file exists but cannot be read (too large, not a regular
    /// file, a symlink loop, an I/O error).
    #[error("cannot read {path}: {source}")]
    Read {
        /// Image path of the file.
        path: String,
        /// What went wrong.
        #[source]
        source: RootFsError,
    },
    /// A database file is not what dpkg writes.
    #[error("{path} line {line}: {reason}")]
    Malformed {
        /// Image path of the file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl CatalogError {
    /// Whether the image's content is at fault (malformed or hostile
    /// database files), as opposed to the host failing to read it.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Malformed { .. } => true,
            Self::Read { source, .. } => matches!(
                source,
                RootFsError::TooLarge { .. }
                    | RootFsError::NotAFile { .. }
                    | RootFsError::SymlinkLoop { .. }
                    | RootFsError::NotADirectory(_)
            ),
        }
    }
}

/// Catalogs every package of a root filesystem: dpkg, apk, rpm, Python,
/// npm, Ruby gems, PHP Composer packages, Go and Rust binaries, Java
/// archives.
///
/// A root filesystem without any operating-system package database gives a
/// warning; a dpkg database that exists but cannot be read or parsed is an
/// error. Problems with the other catalogers' inputs are warnings naming the
/// file.
pub fn catalog(root: &RootFs) -> Result<Catalog, CatalogError> {
    let mut warnings = Vec::new();
    let distro = read_distro(root, &mut warnings);
    let mut resolver = FileResolver::new(root);
    let (mut packages, found_dpkg) =
        dpkg_packages(root, distro.as_ref(), &mut resolver, &mut warnings)?;
    let found_apk = apk::present(root);
    let found_rpm = rpm::present(root);
    if !(found_dpkg || found_apk || found_rpm) {
        warnings.push(format!(
            "no dpkg database ({DPKG_STATUS} or {DPKG_STATUS_D}): no debian packages cataloged"
        ));
    }
    if found_apk {
        packages.extend(apk::catalog(
            root,
            distro.as_ref(),
            &mut resolver,
            &mut warnings,
        ));
    }
    if found_rpm {
        packages.extend(rpm::catalog(
            root,
            distro.as_ref(),
            &mut resolver,
            &mut warnings,
        ));
    }
    let entries = walk::walk(root, &mut warnings);
    packages.extend(python::catalog(
        root,
        &entries,
        &mut resolver,
        &mut warnings,
    ));
    packages.extend(npm::catalog(root, &entries, &mut resolver, &mut warnings));
    let gems = gem::catalog(root, &entries, &packages, &mut resolver, &mut warnings);
    packages.extend(gems);
    packages.extend(php::catalog(root, &entries, &mut resolver, &mut warnings));
    let (go, rust) = binaries::catalog(root, &entries, &mut resolver, &mut warnings);
    packages.extend(go);
    packages.extend(rust);
    packages.extend(java::catalog(root, &entries, &mut resolver, &mut warnings));
    let packages = merge_copies(packages);
    Ok(Catalog {
        inventory: Inventory::new(InventorySource::RootFs, packages),
        distro,
        warnings,
    })
}

/// One package per language-ecosystem identity: copies of the same
/// package (ecosystem, name, version and purl) installed at several places
/// (`lodash@4.17.21` under two apps' `node_modules`, a jar both on disk and
/// nested in a fat jar) become the first copy owning the files of all of
/// them. A finding names the package, not the copy, and the decision finds
/// one installed package per finding: with the copies apart, the use of the
/// second copy would not count for it. Operating-system packages are
/// unique by name and architecture already and are left alone.
fn merge_copies(packages: Vec<Package>) -> Vec<Package> {
    let mut out: Vec<Package> = Vec::with_capacity(packages.len());
    let mut index: std::collections::HashMap<(Ecosystem, String, String, String), usize> =
        std::collections::HashMap::new();
    for p in packages {
        if p.ecosystem.is_os() {
            out.push(p);
            continue;
        }
        let key = (
            p.ecosystem.clone(),
            p.name.clone(),
            p.version.clone(),
            p.purl.as_ref().map(ToString::to_string).unwrap_or_default(),
        );
        match index.get(&key) {
            Some(&i) => out[i].files.extend(p.files),
            None => {
                index.insert(key, out.len());
                out.push(p);
            }
        }
    }
    out
}

/// The dpkg packages, sorted by name, architecture and version, and whether
/// a dpkg database exists.
fn dpkg_packages(
    root: &RootFs,
    distro: Option<&Distro>,
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Package>, bool), CatalogError> {
    let (records, found) = read_records(root, warnings)?;
    let info = list_dir_names(root, DPKG_INFO)?;
    let mut packages = Vec::with_capacity(records.len());
    for record in records {
        let files = read_files(root, &record, &info, resolver, warnings)?;
        packages.push(to_package(record, files, distro)?);
    }
    packages.sort_by(|a, b| {
        (&a.name, &a.architecture, &a.version).cmp(&(&b.name, &b.architecture, &b.version))
    });
    Ok((packages, found))
}

fn read_distro(root: &RootFs, warnings: &mut Vec<String>) -> Option<Distro> {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        match root.read_to_string(path, OS_RELEASE_LIMIT) {
            Ok(text) => return Some(os_release::parse(&text)),
            Err(e) if is_not_found(&e) => continue,
            Err(e) => {
                warnings.push(format!("cannot read {path}: {e}"));
                continue;
            }
        }
    }
    warnings.push("no /etc/os-release or /usr/lib/os-release: distribution unknown".to_owned());
    None
}

/// One installed package as a database stanza describes it.
#[derive(Debug)]
struct Record {
    name: String,
    version: String,
    arch: Option<String>,
    source: Option<(String, Option<String>)>,
    /// Database file and line of the stanza, for messages.
    path: String,
    line: usize,
    /// Extra md5sums file to fall back on (status.d layouts).
    md5sums: Vec<String>,
}

fn read_records(
    root: &RootFs,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Record>, bool), CatalogError> {
    let mut records = Vec::new();
    let mut found = false;
    match root.read_to_string(DPKG_STATUS, STATUS_LIMIT) {
        Ok(text) => {
            found = true;
            parse_records(&text, DPKG_STATUS, true, &mut records)?;
        }
        Err(e) if is_not_found(&e) => {}
        Err(source) => {
            return Err(CatalogError::Read {
                path: DPKG_STATUS.to_owned(),
                source,
            })
        }
    }
    match root.read_dir(DPKG_STATUS_D) {
        Ok(entries) => {
            found = true;
            let names: HashSet<&str> = entries
                .iter()
                .filter_map(|e| e.path.rsplit('/').next())
                .collect();
            for entry in entries.iter().take(STATUS_D_MAX_ENTRIES) {
                let Some(file_name) = entry.path.rsplit('/').next() else {
                    continue;
                };
                if entry.kind == EntryKind::Dir
                    || file_name.ends_with(".md5sums")
                    || file_name.starts_with('.')
                {
                    continue;
                }
                let text = root
                    .read_to_string(&entry.path, LIST_LIMIT)
                    .map_err(|source| CatalogError::Read {
                        path: entry.path.clone(),
                        source,
                    })?;
                let start = records.len();
                parse_records(&text, &entry.path, false, &mut records)?;
                let md5 = format!("{file_name}.md5sums");
                if names.contains(md5.as_str()) {
                    for r in &mut records[start..] {
                        r.md5sums.push(format!("{DPKG_STATUS_D}/{md5}"));
                    }
                }
            }
            if entries.len() > STATUS_D_MAX_ENTRIES {
                warnings.push(format!(
                    "{DPKG_STATUS_D}: only the first {STATUS_D_MAX_ENTRIES} of {} entries read",
                    entries.len()
                ));
            }
        }
        Err(e) if is_not_found(&e) => {}
        Err(source) => {
            return Err(CatalogError::Read {
                path: DPKG_STATUS_D.to_owned(),
                source,
            })
        }
    }
    // The same package twice (status and status.d): keep the first.
    let mut seen = HashSet::new();
    records.retain(|r| {
        let fresh = seen.insert((r.name.clone(), r.arch.clone()));
        if !fresh {
            warnings.push(format!(
                "{} line {}: package {} ({}) listed again; keeping the first",
                r.path,
                r.line,
                r.name,
                r.arch.as_deref().unwrap_or("no architecture")
            ));
        }
        fresh
    });
    Ok((records, found))
}

/// Reads the installed packages of one database file. `needs_status`: the
/// main status file says whether each package is installed; status.d
/// entries have no `Status:` and are installed unless they say otherwise.
fn parse_records(
    text: &str,
    path: &str,
    needs_status: bool,
    out: &mut Vec<Record>,
) -> Result<(), CatalogError> {
    let malformed = |line: usize, reason: String| CatalogError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    };
    let stanzas = control::parse(text).map_err(|e| malformed(e.line, e.reason))?;
    for stanza in stanzas {
        let Some(package) = stanza.get("Package") else {
            return Err(malformed(stanza.line, "field without a package".to_owned()));
        };
        let name = package.value;
        if !valid_name(name) {
            return Err(malformed(
                package.line,
                format!("invalid package name {:?}", clip(name)),
            ));
        }
        let installed = match stanza.get("Status") {
            Some(status) => {
                let words: Vec<&str> = status.value.split_whitespace().collect();
                if words.len() != 3 {
                    return Err(malformed(
                        status.line,
                        format!(
                            "package {name}: status {:?} is not three words",
                            clip(status.value)
                        ),
                    ));
                }
                words[1] == "ok" && words[2] == "installed"
            }
            None => !needs_status,
        };
        if !installed {
            continue;
        }
        let version = match stanza.get("Version") {
            Some(v) if !v.value.is_empty() && !v.value.contains(char::is_whitespace) => v.value,
            Some(v) => {
                return Err(malformed(
                    v.line,
                    format!("package {name}: invalid version {:?}", clip(v.value)),
                ));
            }
            None => {
                return Err(malformed(
                    stanza.line,
                    format!("installed package {name} has no version"),
                ))
            }
        };
        let arch = stanza
            .get("Architecture")
            .map(|a| a.value)
            .filter(|a| !a.is_empty());
        if let Some(a) = arch {
            if !valid_name(a) {
                return Err(malformed(
                    stanza.line,
                    format!("package {name}: invalid architecture {:?}", clip(a)),
                ));
            }
        }
        let source = match stanza.get("Source") {
            Some(s) => Some(parse_source(s.value).ok_or_else(|| {
                malformed(
                    s.line,
                    format!("package {name}: invalid source field {:?}", clip(s.value)),
                )
            })?),
            None => None,
        };
        out.push(Record {
            name: name.to_owned(),
            version: version.to_owned(),
            arch: arch.map(str::to_owned),
            source,
            path: path.to_owned(),
            line: stanza.line,
            md5sums: Vec::new(),
        });
    }
    Ok(())
}

/// `name` or `name (version)`.
fn parse_source(value: &str) -> Option<(String, Option<String>)> {
    let (name, version) = match value.split_once('(') {
        Some((name, rest)) => {
            let version = rest.trim().strip_suffix(')')?.trim();
            if version.is_empty() || version.contains(char::is_whitespace) {
                return None;
            }
            (name.trim(), Some(version.to_owned()))
        }
        None => (value.trim(), None),
    };
    valid_name(name).then(|| (name.to_owned(), version))
}

/// Package and architecture names: non-empty, no whitespace, no `/`, no
/// control characters (they end up in paths and purls).
fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/')
}

fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Names of the entries of a database directory (empty when missing).
fn list_dir_names(root: &RootFs, dir: &str) -> Result<HashSet<String>, CatalogError> {
    match root.read_dir(dir) {
        Ok(entries) => Ok(entries
            .into_iter()
            .filter(|e| e.kind != EntryKind::Dir)
            .filter_map(|e| e.path.rsplit('/').next().map(str::to_owned))
            .collect()),
        Err(e) if is_not_found(&e) => Ok(HashSet::new()),
        Err(source) => Err(CatalogError::Read {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// The files a package owns, from `info/<name>[:<arch>].list`, else the
/// md5sums files (which list regular files only, without the leading `/`).
fn read_files(
    root: &RootFs,
    record: &Record,
    info: &HashSet<String>,
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> Result<BTreeSet<String>, CatalogError> {
    let mut stems = Vec::with_capacity(2);
    if let Some(arch) = &record.arch {
        stems.push(format!("{}:{arch}", record.name));
    }
    stems.push(record.name.clone());
    let mut files = BTreeSet::new();
    for stem in &stems {
        let list = format!("{stem}.list");
        if info.contains(&list) {
            let path = format!("{DPKG_INFO}/{list}");
            let text = read_list(root, &path)?;
            for line in text.lines() {
                let line = line.trim_end_matches('\r');
                if !line.is_empty() {
                    resolver.add(line, &mut files);
                }
            }
            return Ok(files);
        }
    }
    let mut md5sums: Vec<String> = stems
        .iter()
        .map(|s| format!("{s}.md5sums"))
        .filter(|f| info.contains(f))
        .map(|f| format!("{DPKG_INFO}/{f}"))
        .collect();
    md5sums.extend(record.md5sums.iter().cloned());
    if let Some(path) = md5sums.first() {
        let text = read_list(root, path)?;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((_, file)) = line.split_once(char::is_whitespace) else {
                return Err(CatalogError::Malformed {
                    path: path.clone(),
                    line: index + 1,
                    reason: format!("not a checksum line: {:?}", clip(line)),
                });
            };
            let file = file.trim_start();
            let file = if file.starts_with('/') {
                file.to_owned()
            } else {
                format!("/{file}")
            };
            resolver.add(&file, &mut files);
        }
        return Ok(files);
    }
    warnings.push(format!(
        "{} line {}: no file list for package {}; it owns no files in the inventory",
        record.path, record.line, record.name
    ));
    Ok(files)
}

fn read_list(root: &RootFs, path: &str) -> Result<String, CatalogError> {
    root.read_to_string(path, LIST_LIMIT)
        .map_err(|source| CatalogError::Read {
            path: path.to_owned(),
            source,
        })
}

fn to_package(
    record: Record,
    files: BTreeSet<String>,
    distro: Option<&Distro>,
) -> Result<Package, CatalogError> {
    let purl = deb_purl(&record, distro).map_err(|e| CatalogError::Malformed {
        path: record.path.clone(),
        line: record.line,
        reason: e.to_string(),
    })?;
    let source = match &record.source {
        Some((name, version)) => SourcePackage {
            name: name.clone(),
            version: Some(version.clone().unwrap_or_else(|| record.version.clone())),
        },
        // Without `Source:` the source package has the binary's name and version.
        None => SourcePackage {
            name: record.name.clone(),
            version: Some(record.version.clone()),
        },
    };
    let mut package = Package::new(record.name, record.version, Ecosystem::Deb);
    package.purl = Some(purl);
    package.source = Some(source);
    package.architecture = record.arch;
    package.files = files;
    Ok(package)
}

/// `pkg:deb/<id>/<name>@<version>?arch=…&distro=<id>-<version_id>&upstream=…`
fn deb_purl(record: &Record, distro: Option<&Distro>) -> Result<Purl, vexxy_model::PurlError> {
    let mut qualifiers = BTreeMap::new();
    if let Some(arch) = &record.arch {
        qualifiers.insert("arch", arch.clone());
    }
    if let Some(d) = distro {
        let value = match &d.version_id {
            Some(v) => format!("{}-{v}", d.id),
            None => d.id.clone(),
        };
        qualifiers.insert("distro", value);
    }
    if let Some((name, version)) = &record.source {
        match version {
            Some(v) => {
                qualifiers.insert("upstream", format!("{name}@{v}"));
            }
            None if *name != record.name => {
                qualifiers.insert("upstream", name.clone());
            }
            None => {}
        }
    }
    let mut purl = Purl::new(
        "deb",
        distro.map(|d| d.id.as_str()),
        &record.name,
        Some(&record.version),
    )?;
    for (key, value) in qualifiers {
        purl = purl.with_qualifier(key, &value);
    }
    Ok(purl)
}
