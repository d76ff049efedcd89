//! The runtime-filtered inventory: the packages whose code a traced run
//! used, for an SBOM of what actually runs.
//!
//! Packages are identified by their index in [`Inventory::packages`], the
//! key the inventory itself uses for its name and path indexes: stable for
//! a given inventory, unique even when two packages share a purl (a
//! multi-arch `libc6`) or have none.

use std::collections::{BTreeSet, HashMap};

use vexxy_model::{ExecutionProfile, Inventory, Package};

/// File name endings of code that counts as used when a run opens it: the
/// language modules, scripts and bytecode of the decision engine's runtime
/// provider ("modules loaded"), plus shared objects and Node addons (a
/// program or library that is mapped or executed counts whatever its
/// name). Shared objects also count with a version suffix (`.so.6`).
pub const MODULE_EXTENSIONS: &[&str] = &[
    ".py", ".pyc", ".pl", ".pm", ".sh", ".rb", ".js", ".mjs", ".cjs", ".jar", ".class", ".war",
    ".ear", ".php", ".lua", ".tcl", ".wasm", ".so", ".node",
];

/// Directories of programs: a file there that is opened (a script read by
/// its interpreter) counts as code whatever its name.
const PROGRAM_DIRS: &[&str] = &[
    "/bin/",
    "/sbin/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/local/bin/",
    "/usr/local/sbin/",
    "/usr/libexec/",
    "/usr/lib/cgi-bin/",
];

/// Java archives: one archive may hold several packages, which all list it.
const ARCHIVE_EXTENSIONS: &[&str] = &[".jar", ".war", ".ear"];

/// Top-level directories that merged-`/usr` images link into `/usr`.
const MERGED_USR_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Finds the index of a package borrowed from an inventory.
#[derive(Debug)]
pub(crate) struct PackageIndex {
    by_address: HashMap<*const Package, usize>,
}

impl PackageIndex {
    pub(crate) fn new(inventory: &Inventory) -> Self {
        Self {
            by_address: inventory
                .packages()
                .iter()
                .enumerate()
                .map(|(i, p)| (std::ptr::from_ref(p), i))
                .collect(),
        }
    }

    /// The index of `p` when it is borrowed from the indexed inventory.
    pub(crate) fn index_of(&self, p: &Package) -> Option<usize> {
        self.by_address.get(&std::ptr::from_ref(p)).copied()
    }
}

/// The packages of `inventory` whose code the traced run used, as indexes
/// into [`Inventory::packages`].
///
/// A package counts when the run
/// - executed a file it owns, or the ELF interpreter of an executed file
///   ([`ExecutionProfile::executables`]);
/// - mapped a file it owns executable ([`ExecutionProfile::loaded_libraries`]:
///   shared libraries, `dlopen`ed plugins, programs and interpreters);
/// - opened a language module, script or shared object it owns
///   ([`ExecutionProfile::files`] whose name ends in one of
///   [`MODULE_EXTENSIONS`] or `.so.N`, or that lies in a program directory
///   such as `/usr/bin`). A `.pyc` counts for the
///   package owning it or, since Debian packages list only the sources and
///   byte-compile at install, for the owner of its source:
///   `dir/__pycache__/mod.cpython-311.pyc` maps to `dir/mod.py`, a legacy
///   `dir/mod.pyc` to `dir/mod.py`. A Java archive counts for every package
///   the archive holds.
///
/// Packages of which only data (configuration, locales, certificates,
/// documentation) was opened do not count. Owners are found with
/// [`Inventory::owner_of`] (the inventory holds each file as listed and in
/// canonical merged-`/usr` form); a path it does not know is retried with
/// `/usr` added or removed (`/lib/…` ↔ `/usr/lib/…`), for inventories read
/// from an SBOM that lists only one form.
pub fn runtime_used_packages(inventory: &Inventory, profile: &ExecutionProfile) -> BTreeSet<usize> {
    let index = PackageIndex::new(inventory);
    let archives = archive_owners(inventory);
    let mut used = BTreeSet::new();
    let mut add = |p: Option<&Package>| {
        if let Some(i) = p.and_then(|p| index.index_of(p)) {
            used.insert(i);
        }
    };
    let mut archive_members: Vec<usize> = Vec::new();
    for e in &profile.executables {
        add(owner(inventory, &e.path));
        if let Some(interp) = &e.interpreter {
            add(owner(inventory, interp));
        }
    }
    for l in &profile.loaded_libraries {
        add(owner(inventory, &l.path));
    }
    for f in &profile.files {
        let name = file_name(&f.path);
        if !is_module(name) && !PROGRAM_DIRS.iter().any(|d| f.path.starts_with(d)) {
            continue;
        }
        let direct = owner(inventory, &f.path);
        if direct.is_some() {
            add(direct);
        } else if let Some(source) = pyc_source(&f.path) {
            add(owner(inventory, &source));
        }
        if ARCHIVE_EXTENSIONS.iter().any(|x| name.ends_with(x)) {
            archive_members.extend(archives.get(f.path.as_str()).into_iter().flatten());
        }
    }
    used.extend(archive_members);
    used
}

/// A copy of `inventory` holding only the packages at the indexes in
/// `keep` (with all their files), in their original order and with the
/// same source. Indexes out of range are ignored.
pub fn filter_inventory(inventory: &Inventory, keep: &BTreeSet<usize>) -> Inventory {
    let packages = inventory
        .packages()
        .iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, p)| p.clone())
        .collect();
    Inventory::new(inventory.source, packages)
}

/// The inventory of the packages whose code the run used
/// ([`runtime_used_packages`] then [`filter_inventory`]).
///
/// It is an ordinary [`Inventory`], so `vexxy_sbom::write_cyclonedx` (or
/// any other SBOM writer) writes it unchanged. That writer has no field for
/// a free-form note, so the document itself does not say it is filtered:
/// callers name the file for it (`sbom.runtime.cdx.json`) and say so in
/// their report.
pub fn runtime_inventory(inventory: &Inventory, profile: &ExecutionProfile) -> Inventory {
    filter_inventory(inventory, &runtime_used_packages(inventory, profile))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether a file name is a language module or shared object.
fn is_module(name: &str) -> bool {
    MODULE_EXTENSIONS.iter().any(|x| name.ends_with(x)) || is_versioned_so(name)
}

/// `libfoo.so.6`, `libfoo.so.6.0.1`.
fn is_versioned_so(name: &str) -> bool {
    name.split_once(".so.").is_some_and(|(stem, ver)| {
        !stem.is_empty()
            && !ver.is_empty()
            && ver
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The owner of `path`, or of its other merged-`/usr` spelling.
fn owner<'a>(inventory: &'a Inventory, path: &str) -> Option<&'a Package> {
    inventory
        .owner_of(path)
        .or_else(|| other_usr_form(path).and_then(|p| inventory.owner_of(&p)))
}

/// `/usr/lib/x` ↔ `/lib/x` (likewise `bin`, `sbin`, `lib32`, `lib64`,
/// `libx32`); `None` for any other path.
fn other_usr_form(path: &str) -> Option<String> {
    let (rest, add_usr) = match path.strip_prefix("/usr/") {
        Some(rest) => (rest, false),
        None => (path.strip_prefix('/')?, true),
    };
    let (top, tail) = rest.split_once('/')?;
    if !MERGED_USR_DIRS.contains(&top) || tail.is_empty() {
        return None;
    }
    Some(if add_usr {
        format!("/usr/{rest}")
    } else {
        format!("/{rest}")
    })
}

/// The Python source a compiled module was made from.
fn pyc_source(path: &str) -> Option<String> {
    let (dir, name) = path.rsplit_once('/')?;
    let stem = name.strip_suffix(".pyc")?;
    if stem.is_empty() {
        return None;
    }
    match dir.rsplit_once('/') {
        // PEP 3147: <dir>/__pycache__/<module>.<tag>[.opt-N].pyc; a module
        // name holds no dot, the tag is not empty.
        Some((parent, "__pycache__")) => {
            let (module, tag) = stem.split_once('.')?;
            (!module.is_empty() && !tag.is_empty()).then(|| format!("{parent}/{module}.py"))
        }
        _ => Some(format!("{dir}/{stem}.py")),
    }
}

/// Every package listing each Java archive.
fn archive_owners(inventory: &Inventory) -> HashMap<&str, Vec<usize>> {
    let mut m: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in inventory.packages().iter().enumerate() {
        for f in &p.files {
            if ARCHIVE_EXTENSIONS.iter().any(|x| f.ends_with(x)) {
                m.entry(f.as_str()).or_default().push(i);
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyc_sources() {
        assert_eq!(
            pyc_source("/usr/lib/python3/dist-packages/yaml/__pycache__/nodes.cpython-311.pyc")
                .as_deref(),
            Some("/usr/lib/python3/dist-packages/yaml/nodes.py")
        );
        assert_eq!(
            pyc_source("/app/__pycache__/main.cpython-312.opt-1.pyc").as_deref(),
            Some("/app/main.py")
        );
        assert_eq!(
            pyc_source("/opt/x/mod.pyc").as_deref(),
            Some("/opt/x/mod.py")
        );
        assert_eq!(pyc_source("/opt/x/__pycache__/.pyc"), None);
        assert_eq!(pyc_source("/opt/x/__pycache__/notag.pyc"), None);
        assert_eq!(pyc_source("mod.pyc"), None);
    }

    #[test]
    fn merged_usr_forms() {
        assert_eq!(
            other_usr_form("/usr/lib/x86_64-linux-gnu/libc.so.6").as_deref(),
            Some("/lib/x86_64-linux-gnu/libc.so.6")
        );
        assert_eq!(
            other_usr_form("/lib64/ld-linux-x86-64.so.2").as_deref(),
            Some("/usr/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(other_usr_form("/usr/share/doc/x"), None);
        assert_eq!(other_usr_form("/etc/passwd"), None);
        assert_eq!(other_usr_form("/lib"), None);
    }

    #[test]
    fn module_names() {
        for yes in [
            "a.py",
            "a.pyc",
            "libz.so",
            "libz.so.1",
            "libz.so.1.2.13",
            "x.mjs",
            "a.jar",
            "Foo.pm",
        ] {
            assert!(is_module(yes), "{yes}");
        }
        for no in [
            "nginx.conf",
            "a.so.conf",
            "libz.so.",
            "mime.types",
            "x.json",
            "a.pyi",
        ] {
            assert!(!is_module(no), "{no}");
        }
    }
}
