//! The functions an advisory names, resolved against the ELF objects of the
//! finding's package: where each is defined, or that none of the package's
//! objects defines any ([`vexxy_model::NamedFunctions`]).
//!
//! Names come from two places ([`SymbolOrigin`]): structured OSV records
//! (exact, the advisory's own) and the description's prose
//! ([`crate::advisory_text::function_names`], candidates that may be wrong).
//! Each object is read through a [`FunctionIndex`] chosen by its kind
//! ([`ObjectKind`], [`index_object`]): a C/C++ ELF object by its symbol
//! tables (`.dynsym`, and `.symtab` when it was not stripped), a Go binary
//! by its pclntab ([`crate::gosym`]).
//!
//! `complete` (in [`FunctionResolution::Absent`]) is true only when every
//! object searched had a full symbol table: a stripped Debian library has
//! only `.dynsym`, where an internal (static or hidden) function is
//! invisible, so its absence there proves little.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use goblin::elf::{
    sym::{STT_FUNC, STT_GNU_IFUNC},
    Elf,
};
use vexxy_model::{
    Finding, FunctionResolution, FunctionSite, Inventory, NamedFunctions, PackageRef, SymbolOrigin,
};
use vexxy_rootfs::RootFs;

use crate::advisory_text::function_names;

/// Largest object read for its symbols.
const MAX_OBJECT_BYTES: u64 = 512 << 20;
/// Most objects of one package searched; a package with more is unresolved.
const MAX_OBJECTS_PER_PACKAGE: usize = 2_000;

/// The names one finding's advisory gives, before resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidates {
    /// The finding's vulnerability id.
    pub vulnerability: String,
    /// The finding's package.
    pub package: PackageRef,
    pub origin: SymbolOrigin,
    /// Deduplicated, sorted.
    pub names: Vec<String>,
}

/// Names mined from each finding's description, one entry per
/// (vulnerability, package) whose description names any.
pub fn mined(findings: &[Finding]) -> Vec<Candidates> {
    let mut by_key: BTreeMap<(String, String), Candidates> = BTreeMap::new();
    for f in findings {
        let Some(text) = f.vulnerability.description.as_deref() else {
            continue;
        };
        let names = function_names(text);
        if names.is_empty() {
            continue;
        }
        let key = (f.vulnerability.id.clone(), f.package.name.clone());
        let entry = by_key.entry(key).or_insert_with(|| Candidates {
            vulnerability: f.vulnerability.id.clone(),
            package: f.package.clone(),
            origin: SymbolOrigin::AdvisoryText,
            names: Vec::new(),
        });
        entry.names.extend(names);
        entry.names.sort();
        entry.names.dedup();
    }
    by_key.into_values().collect()
}

/// `structured` (OSV) candidates, and the `mined` ones for the
/// (vulnerability, package) pairs no structured record covers: an
/// advisory's own list beats names guessed from its prose.
pub fn merge(structured: Vec<Candidates>, mined: Vec<Candidates>) -> Vec<Candidates> {
    let covered: BTreeSet<(String, String)> = structured
        .iter()
        .map(|c| (c.vulnerability.clone(), c.package.name.clone()))
        .collect();
    let mut out = structured;
    out.extend(
        mined
            .into_iter()
            .filter(|c| !covered.contains(&(c.vulnerability.clone(), c.package.name.clone()))),
    );
    out
}

/// What kind of object a file is, which decides how its functions are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// A C/C++ ELF object: symbol tables.
    Elf,
    /// A Go binary (`.gopclntab` or `.go.buildinfo`): its pclntab lists
    /// every function even when stripped.
    Go,
}

/// What one object can tell about function names.
pub trait FunctionIndex {
    /// Where `name` is defined in this object (`object` is its image path).
    fn sites(&self, object: &str, name: &str) -> Vec<FunctionSite>;
    /// True when internal functions are listed too (a full `.symtab`, a Go
    /// pclntab): then a name not found is not defined at all.
    fn complete(&self) -> bool;
}

/// The defined functions of an ELF object's symbol tables.
#[derive(Debug, Default)]
pub struct ElfFunctions {
    /// Function names (version suffix removed), `.dynsym` and `.symtab`.
    names: BTreeSet<String>,
    /// The object has a `.symtab` defining functions (not stripped).
    full_symtab: bool,
}

impl ElfFunctions {
    /// Indexes a parsed ELF object.
    pub fn of(elf: &Elf<'_>) -> Self {
        let mut names = BTreeSet::new();
        let mut full_symtab = false;
        for (syms, strtab, is_symtab) in [
            (&elf.dynsyms, &elf.dynstrtab, false),
            (&elf.syms, &elf.strtab, true),
        ] {
            for sym in syms.iter() {
                let ty = sym.st_type();
                if !(ty == STT_FUNC || ty == STT_GNU_IFUNC) || sym.st_shndx == 0 {
                    continue;
                }
                let Some(name) = strtab.get_at(sym.st_name) else {
                    continue;
                };
                let name = name.split('@').next().unwrap_or(name);
                if name.is_empty() {
                    continue;
                }
                full_symtab |= is_symtab;
                names.insert(name.to_owned());
            }
        }
        Self { names, full_symtab }
    }

    fn defines(&self, name: &str) -> Vec<String> {
        if !name.contains("::") {
            return if self.names.contains(name) {
                vec![name.to_owned()]
            } else {
                Vec::new()
            };
        }
        // C++ `A::b`: an Itanium-mangled nested name `_ZN[rVKRO]*1A1bE…`
        let mut nested = String::new();
        for part in name.split("::") {
            nested.push_str(&part.len().to_string());
            nested.push_str(part);
        }
        nested.push('E');
        self.names
            .range::<str, _>((std::ops::Bound::Included("_ZN"), std::ops::Bound::Unbounded))
            .take_while(|s| s.starts_with("_ZN"))
            .filter(|s| {
                s["_ZN".len()..]
                    .trim_start_matches(['r', 'V', 'K', 'R', 'O'])
                    .starts_with(&nested)
            })
            .cloned()
            .collect()
    }
}

impl FunctionIndex for ElfFunctions {
    fn sites(&self, object: &str, name: &str) -> Vec<FunctionSite> {
        self.defines(name)
            .into_iter()
            .map(|symbol| FunctionSite {
                object: object.to_owned(),
                symbol,
                offset: None,
            })
            .collect()
    }

    fn complete(&self) -> bool {
        self.full_symtab
    }
}

/// The kind of a parsed ELF object.
pub fn object_kind(elf: &Elf<'_>) -> ObjectKind {
    let go = elf.section_headers.iter().any(|s| {
        matches!(
            elf.shdr_strtab.get_at(s.sh_name),
            Some(".gopclntab" | ".go.buildinfo" | ".data.rel.ro.gopclntab")
        )
    });
    if go {
        ObjectKind::Go
    } else {
        ObjectKind::Elf
    }
}

/// The index for one object (`bytes`, parsed as `elf`), by its kind: a Go
/// binary is read through its pclntab ([`crate::gosym::GoFunctions`]: every
/// function linked in, stripped or not, matched in OSV's spelling
/// `pkg.Type.Method`), falling back to its symbol tables when no pclntab
/// parses; any other object through its symbol tables (or its pclntab,
/// when it defines no symbol and has one).
pub fn index_object(bytes: &[u8], elf: &Elf<'_>) -> Box<dyn FunctionIndex> {
    match object_kind(elf) {
        ObjectKind::Go => match crate::gosym::GoFunctions::parse(bytes) {
            Ok(go) => Box::new(go),
            Err(_) => Box::new(ElfFunctions::of(elf)),
        },
        ObjectKind::Elf => {
            let symbols = ElfFunctions::of(elf);
            // a Go binary stripped of its section headers defines no
            // symbol at all, but its pclntab is still there
            if symbols.names.is_empty() {
                if let Ok(go) = crate::gosym::GoFunctions::parse(bytes) {
                    return Box::new(go);
                }
            }
            Box::new(symbols)
        }
    }
}

/// One object read: its index, or why it could not be read.
type Indexed = Result<Box<dyn FunctionIndex>, String>;

/// Resolves each candidate list against the ELF objects its package owns
/// (the inventory's file lists, canonicalised through the image's
/// symlinks). Nothing from the image is executed; unreadable objects make a
/// finding [`FunctionResolution::Unresolved`] unless a name was found
/// elsewhere.
pub fn resolve(
    root: &RootFs,
    inventory: &Inventory,
    candidates: &[Candidates],
) -> Vec<NamedFunctions> {
    let mut cache: HashMap<String, Indexed> = HashMap::new();
    let mut objects_of: HashMap<String, Result<Vec<String>, String>> = HashMap::new();
    let mut out = Vec::new();
    for c in candidates {
        let resolution = match inventory.find(&c.package) {
            None => FunctionResolution::Unresolved {
                reason: format!("{} is not in the image's inventory", c.package.name),
            },
            Some(p) => {
                let objects = objects_of
                    .entry(p.name.clone())
                    .or_insert_with(|| package_objects(root, &p.files))
                    .clone();
                match objects {
                    Err(reason) => FunctionResolution::Unresolved { reason },
                    Ok(objects) if objects.is_empty() => FunctionResolution::Unresolved {
                        reason: format!("{} owns no ELF object", p.name),
                    },
                    Ok(objects) => {
                        for o in &objects {
                            cache
                                .entry(o.clone())
                                .or_insert_with(|| read_index(root, o));
                        }
                        let indexed: Vec<(&String, &Indexed)> =
                            objects.iter().map(|o| (o, &cache[o])).collect();
                        resolve_in(&indexed, &c.names)
                    }
                }
            }
        };
        out.push(NamedFunctions {
            vulnerability: c.vulnerability.clone(),
            package: c.package.name.clone(),
            origin: c.origin,
            names: c.names.clone(),
            resolution,
        });
    }
    out
}

/// The resolution of `names` over the objects of one package.
fn resolve_in(objects: &[(&String, &Indexed)], names: &[String]) -> FunctionResolution {
    let mut sites = Vec::new();
    let mut resolved: BTreeSet<&str> = BTreeSet::new();
    let mut unreadable = Vec::new();
    let mut complete = true;
    for (path, index) in objects {
        match index {
            Ok(index) => {
                complete &= index.complete();
                for n in names {
                    let found = index.sites(path, n);
                    if !found.is_empty() {
                        resolved.insert(n.as_str());
                    }
                    sites.extend(found);
                }
            }
            Err(e) => unreadable.push(e.clone()),
        }
    }
    if !sites.is_empty() {
        sites.sort();
        sites.dedup();
        let unresolved = names
            .iter()
            .filter(|n| !resolved.contains(n.as_str()))
            .cloned()
            .collect();
        return FunctionResolution::Present {
            sites,
            unresolved,
            unreadable,
        };
    }
    if !unreadable.is_empty() {
        return FunctionResolution::Unresolved {
            reason: format!(
                "{} of {} object(s) could not be read: {}",
                unreadable.len(),
                objects.len(),
                unreadable.join("; ")
            ),
        };
    }
    FunctionResolution::Absent {
        objects_searched: objects.iter().map(|(p, _)| (*p).clone()).collect(),
        complete,
    }
}

/// The canonical paths of the ELF files among `files`, sorted.
fn package_objects(root: &RootFs, files: &BTreeSet<String>) -> Result<Vec<String>, String> {
    let mut out = BTreeSet::new();
    for f in files {
        let Ok(canonical) = root.canonical(f) else {
            continue;
        };
        if out.contains(&canonical) || !root.is_file(&canonical) {
            continue;
        }
        match root.read_prefix(&canonical, 4) {
            Ok(magic) if magic == b"\x7fELF" => {
                out.insert(canonical);
            }
            _ => continue,
        }
        if out.len() > MAX_OBJECTS_PER_PACKAGE {
            return Err(format!(
                "the package owns more than {MAX_OBJECTS_PER_PACKAGE} ELF objects"
            ));
        }
    }
    Ok(out.into_iter().collect())
}

fn read_index(root: &RootFs, path: &str) -> Indexed {
    let bytes = root
        .read(path, MAX_OBJECT_BYTES)
        .map_err(|e| format!("{path}: {e}"))?;
    let elf = Elf::parse(&bytes).map_err(|_| format!("{path}: not a readable ELF object"))?;
    Ok(index_object(&bytes, &elf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vexxy_model::{Ecosystem, Package, Severity, Vulnerability};

    fn finding(id: &str, package: &str, description: &str) -> Finding {
        Finding {
            vulnerability: Vulnerability {
                id: id.into(),
                aliases: Vec::new(),
                severity: Severity::Unknown,
                cvss: Vec::new(),
                description: Some(description.into()),
                data_source: None,
                urls: Vec::new(),
                epss: None,
                known_exploited: false,
            },
            package: PackageRef {
                name: package.into(),
                version: "1".into(),
                ecosystem: Ecosystem::Deb,
                purl: None,
                source_name: None,
            },
            fixed_versions: Vec::new(),
            fix_state: vexxy_model::FixState::Unknown,
            reported_by: None,
        }
    }

    #[test]
    fn mined_candidates_are_per_vulnerability_and_package_and_structured_ones_win() {
        let fs = [
            finding(
                "CVE-1",
                "zlib1g",
                "overflow in zipOpenNewFileInZip4_64 via a long filename",
            ),
            finding(
                "CVE-1",
                "zlib1g",
                "overflow in zipOpenNewFileInZip4_64 via a long filename",
            ),
            finding("CVE-2", "libc6", "a flaw in the glob implementation"),
            finding("CVE-3", "libxml2", "xmlUnlinkNode in tree.c"),
        ];
        let m = mined(&fs);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].names, ["zipOpenNewFileInZip4_64"]);
        let osv = Candidates {
            vulnerability: "CVE-3".into(),
            package: fs[3].package.clone(),
            origin: SymbolOrigin::Osv,
            names: vec!["xmlFreeNode".into()],
        };
        let merged = merge(vec![osv.clone()], m);
        assert_eq!(merged.len(), 2);
        assert!(merged.contains(&osv));
        assert!(merged
            .iter()
            .all(|c| c.vulnerability != "CVE-3" || c.origin == SymbolOrigin::Osv));
    }

    /// A copy of the host's libz (stripped: `.dynsym` only) and of the test
    /// binary itself (not stripped) in a rootfs, owned by two packages.
    #[test]
    fn resolves_against_the_objects_a_package_owns() {
        let libz = [
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "/lib/x86_64-linux-gnu/libz.so.1",
        ]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| p.exists());
        let Some(libz) = libz else {
            vexxy_testkit::skip_or_fail("no libz.so.1 on this host");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("usr/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::copy(libz, lib.join("libz.so.1.2.13")).unwrap();
        std::os::unix::fs::symlink("libz.so.1.2.13", lib.join("libz.so.1")).unwrap();
        std::fs::write(lib.join("README"), "not an object").unwrap();
        let me = std::env::current_exe().unwrap();
        std::fs::copy(&me, lib.join("tool")).unwrap();
        let root = RootFs::open(dir.path()).unwrap();
        let mut zlib = Package::new("zlib1g", "1", Ecosystem::Deb);
        zlib.files = [
            "/usr/lib/libz.so.1",
            "/usr/lib/libz.so.1.2.13",
            "/usr/lib/README",
        ]
        .map(String::from)
        .into();
        let mut tool = Package::new("tool", "1", Ecosystem::Deb);
        tool.files = ["/usr/lib/tool".to_owned()].into();
        let inv = Inventory::new(vexxy_model::InventorySource::RootFs, vec![zlib, tool]);
        let cand = |pkg: &str, names: &[&str]| Candidates {
            vulnerability: "CVE-X".into(),
            package: finding("CVE-X", pkg, "").package,
            origin: SymbolOrigin::AdvisoryText,
            names: names.iter().map(|s| (*s).to_owned()).collect(),
        };
        let got = resolve(
            &root,
            &inv,
            &[
                cand("zlib1g", &["zipOpenNewFileInZip4_64"]),
                cand("zlib1g", &["inflateGetHeader", "zipOpenNewFileInZip4_64"]),
                cand("tool", &["no_such_function_here"]),
                cand("absent-package", &["inflate"]),
            ],
        );
        // libz.so.1 is a symlink to the file: one object, searched once
        assert_eq!(
            got[0].resolution,
            FunctionResolution::Absent {
                objects_searched: vec!["/usr/lib/libz.so.1.2.13".into()],
                complete: false,
            }
        );
        // one name found is not all found: the other is reported unresolved
        assert_eq!(
            got[1].resolution,
            FunctionResolution::Present {
                sites: vec![FunctionSite {
                    object: "/usr/lib/libz.so.1.2.13".into(),
                    symbol: "inflateGetHeader".into(),
                    offset: None,
                }],
                unresolved: vec!["zipOpenNewFileInZip4_64".into()],
                unreadable: vec![],
            }
        );
        // a test binary keeps its .symtab: absence there is complete
        match &got[2].resolution {
            FunctionResolution::Absent { complete, .. } => assert!(*complete, "{got:?}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            got[3].resolution,
            FunctionResolution::Unresolved { .. }
        ));
    }

    #[test]
    fn cxx_names_match_their_mangled_nested_form() {
        let f = ElfFunctions {
            names: [
                "_ZN11JpegEncoder6EncodeERK5Image",
                "_ZNK7SRBRoot6addTagEPKc",
                "_ZN11JpegEncoder7EncodeXEv",
                "Encode",
            ]
            .map(String::from)
            .into(),
            full_symtab: false,
        };
        assert_eq!(
            f.defines("JpegEncoder::Encode"),
            ["_ZN11JpegEncoder6EncodeERK5Image"]
        );
        assert_eq!(f.defines("SRBRoot::addTag"), ["_ZNK7SRBRoot6addTagEPKc"]);
        assert!(f.defines("Jpeg::Encode").is_empty());
        assert_eq!(f.defines("Encode"), ["Encode"]);
    }
}
