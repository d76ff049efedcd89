//! The ELF objects of a root filesystem and the dependency graph the
//! dynamic linker would build from them.

use std::{
    cell::RefCell,
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    panic::{catch_unwind, AssertUnwindSafe},
};

use goblin::elf::{header, program_header, Elf};
use rayon::prelude::*;
use vexxy_rootfs::{normalize, EntryKind, RootFs};

use crate::{ldconfig, StaticError};

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// The smallest possible ELF file (an ELF32 header).
const MIN_ELF_BYTES: u64 = 52;
/// Bound on (object, inherited RPATH chain) pairs explored during
/// resolution; only reached by pathological RPATH graphs.
const MAX_RESOLUTION_STATES: usize = 200_000;
/// Top-level directories that are virtual filesystems in a running system.
const SKIPPED_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];
/// The `PATH` of a container whose image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How to scan a root filesystem.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// The environment of the image's process (`LD_LIBRARY_PATH` is used).
    pub env: Vec<(String, String)>,
    /// Files larger than this are not parsed (ELF ones are listed in
    /// [`ElfGraph::skipped`]).
    pub max_file_bytes: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            max_file_bytes: 512 << 20,
        }
    }
}

/// The ELF file type (`e_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElfKind {
    /// `ET_REL`: an object file.
    Relocatable,
    /// `ET_EXEC`: a fixed-address executable.
    Executable,
    /// `ET_DYN`: a shared object or position-independent executable.
    SharedObject,
    /// `ET_CORE`.
    Core,
    /// Any other value.
    Other(u16),
}

impl ElfKind {
    fn from_e_type(t: u16) -> Self {
        match t {
            header::ET_REL => Self::Relocatable,
            header::ET_EXEC => Self::Executable,
            header::ET_DYN => Self::SharedObject,
            header::ET_CORE => Self::Core,
            other => Self::Other(other),
        }
    }
}

/// One ELF file of the image, keyed by its canonical path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfObject {
    /// Canonical absolute path in the image.
    pub path: String,
    /// Symlinks in the image that resolve to this object, sorted.
    pub aliases: Vec<String>,
    /// The ELF file type.
    pub kind: ElfKind,
    /// `ELFCLASS64` (true) or `ELFCLASS32`.
    pub is_64: bool,
    /// Byte order.
    pub little_endian: bool,
    /// `e_machine`.
    pub machine: u16,
    /// `PT_INTERP`, the program interpreter.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` names, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` entries (split on `:`), unexpanded.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries (split on `:`), unexpanded.
    pub runpath: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// Whether the dynamic symbol table imports `dlopen` or `dlmopen`.
    pub imports_dlopen: bool,
}

impl ElfObject {
    /// An executable: `ET_EXEC`, or `ET_DYN` with a program interpreter.
    pub fn is_executable(&self) -> bool {
        self.kind == ElfKind::Executable
            || (self.kind == ElfKind::SharedObject && self.interpreter.is_some())
    }

    /// A shared object that is not also an executable.
    pub fn is_shared_library(&self) -> bool {
        self.kind == ElfKind::SharedObject && self.interpreter.is_none()
    }

    fn same_abi(&self, other: &ElfObject) -> bool {
        self.is_64 == other.is_64
            && self.machine == other.machine
            && self.little_endian == other.little_endian
    }

    /// `DT_RPATH` counts only when there is no `DT_RUNPATH`.
    fn effective_rpath(&self) -> bool {
        !self.rpath.is_empty() && self.runpath.is_empty()
    }

    fn dir(&self) -> &str {
        match self.path.rsplit_once('/') {
            Some(("", _)) | None => "/",
            Some((d, _)) => d,
        }
    }
}

/// The ELF objects of an image and their resolved dependencies.
#[derive(Clone, Debug, Default)]
pub struct ElfGraph {
    objects: Vec<ElfObject>,
    /// Canonical paths and aliases to object indices.
    index: HashMap<String, usize>,
    deps: Vec<BTreeSet<usize>>,
    unresolved: Vec<(String, String)>,
    warnings: Vec<String>,
    skipped: Vec<String>,
}

impl ElfGraph {
    /// Every object, sorted by path.
    pub fn objects(&self) -> &[ElfObject] {
        &self.objects
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no ELF object was found.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The object at a canonical path or one of its aliases.
    pub fn get(&self, path: &str) -> Option<&ElfObject> {
        self.index_of(path).map(|i| &self.objects[i])
    }

    /// Canonical paths of the objects `path` depends on directly (resolved
    /// `DT_NEEDED` and `PT_INTERP`), sorted.
    pub fn dependencies(&self, path: &str) -> Vec<&str> {
        let Some(i) = self.index_of(path) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self.deps[i]
            .iter()
            .map(|&d| self.objects[d].path.as_str())
            .collect();
        out.sort_unstable();
        out
    }

    /// `(needed name, canonical path of the object needing it)` pairs the
    /// search could not resolve, sorted.
    pub fn unresolved(&self) -> &[(String, String)] {
        &self.unresolved
    }

    /// Malformed ELF files and other oddities met while scanning.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// ELF files not parsed because they exceed [`ScanOptions::max_file_bytes`].
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    pub(crate) fn index_of(&self, path: &str) -> Option<usize> {
        self.index.get(path).copied()
    }

    pub(crate) fn deps_of(&self, i: usize) -> &BTreeSet<usize> {
        &self.deps[i]
    }
}

/// Scans a root filesystem for ELF objects and resolves their dependencies.
///
/// Only files whose first four bytes are `\x7fELF` are read in full. A
/// malformed ELF file becomes a warning; errors are reserved for a root
/// filesystem that cannot be read at all.
pub fn scan(root: &RootFs, opts: &ScanOptions) -> Result<ElfGraph, StaticError> {
    // Fail early on an unreadable root rather than returning an empty graph.
    root.read_dir("/")?;
    let entries: Vec<_> = root
        .walk("/")
        .into_iter()
        .filter(|e| {
            !SKIPPED_DIRS
                .iter()
                .any(|d| e.path == *d || e.path.starts_with(&format!("{d}/")))
        })
        .collect();

    enum Found {
        Object(Box<ElfObject>),
        Malformed(String),
        Large(String),
        NotElf,
    }
    let found: Vec<Found> = entries
        .par_iter()
        .filter(|e| e.kind == EntryKind::File && e.size >= MIN_ELF_BYTES)
        .map(|e| {
            if !has_elf_magic(root, &e.path) {
                return Found::NotElf;
            }
            if e.size > opts.max_file_bytes {
                return Found::Large(e.path.clone());
            }
            match root.read(&e.path, opts.max_file_bytes) {
                Ok(bytes) => match parse_object(&e.path, &bytes) {
                    Ok(o) => Found::Object(Box::new(o)),
                    Err(w) => Found::Malformed(w),
                },
                Err(err) => Found::Malformed(err.to_string()),
            }
        })
        .collect();

    let mut graph = ElfGraph::default();
    for f in found {
        match f {
            Found::Object(o) => graph.objects.push(*o),
            Found::Malformed(w) => graph.warnings.push(w),
            Found::Large(p) => graph.skipped.push(p),
            Found::NotElf => {}
        }
    }
    graph.objects.sort_by(|a, b| a.path.cmp(&b.path));
    for (i, o) in graph.objects.iter().enumerate() {
        graph.index.insert(o.path.clone(), i);
    }

    // Symlinks that resolve to an object are aliases of it.
    let aliases: Vec<(String, usize)> = entries
        .par_iter()
        .filter(|e| e.kind == EntryKind::Symlink)
        .filter_map(|e| {
            let target = root.canonical(&e.path).ok()?;
            graph.index.get(&target).map(|&i| (e.path.clone(), i))
        })
        .collect();
    for (alias, i) in aliases {
        graph.objects[i].aliases.push(alias.clone());
        graph.index.insert(alias, i);
    }
    for o in &mut graph.objects {
        o.aliases.sort();
    }

    resolve_all(root, opts, &mut graph);
    graph.warnings.sort();
    graph.skipped.sort();
    Ok(graph)
}

/// The program interpreter (`PT_INTERP`) of one file of the image, when it
/// is a dynamically linked ELF executable no larger than `max_bytes`.
pub fn interpreter_of(root: &RootFs, path: &str, max_bytes: u64) -> Option<String> {
    if !has_elf_magic(root, path) {
        return None;
    }
    let bytes = root.read(path, max_bytes).ok()?;
    parse_object(path, &bytes).ok()?.interpreter
}

/// Reads the first bytes of a regular file to see whether it is ELF.
pub(crate) fn has_elf_magic(root: &RootFs, path: &str) -> bool {
    read_prefix(root, path, 4).is_some_and(|b| b.as_slice() == ELF_MAGIC)
}

/// Reads up to `n` leading bytes of a regular file of the image. The path
/// is resolved by [`RootFs`] (beneath the root); only regular files are
/// opened, so a FIFO in the image cannot block us.
pub(crate) fn read_prefix(root: &RootFs, path: &str, n: u64) -> Option<Vec<u8>> {
    root.read_prefix(path, n).ok()
}

fn parse_object(path: &str, bytes: &[u8]) -> Result<ElfObject, String> {
    let parsed = catch_unwind(AssertUnwindSafe(|| Elf::parse(bytes)));
    let elf = match parsed {
        Ok(Ok(elf)) => elf,
        Ok(Err(e)) => return Err(format!("{path}: malformed elf: {e}")),
        Err(_) => return Err(format!("{path}: malformed elf: the parser gave up")),
    };
    let split = |v: &[&str]| -> Vec<String> {
        v.iter()
            .flat_map(|s| s.split(':'))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let imports_dlopen = elf.dynsyms.iter().any(|s| {
        s.st_shndx == 0 && matches!(elf.dynstrtab.get_at(s.st_name), Some("dlopen" | "dlmopen"))
    });
    // goblin only keeps the last PT_INTERP; glibc uses the first, and
    // real files have one.
    let interpreter = elf
        .program_headers
        .iter()
        .any(|ph| ph.p_type == program_header::PT_INTERP)
        .then(|| elf.interpreter.map(str::to_owned))
        .flatten();
    Ok(ElfObject {
        path: path.to_owned(),
        aliases: Vec::new(),
        kind: ElfKind::from_e_type(elf.header.e_type),
        is_64: elf.is_64,
        little_endian: elf.little_endian,
        machine: elf.header.e_machine,
        interpreter,
        needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
        soname: elf.soname.map(str::to_owned),
        imports_dlopen,
    })
}

/// Per-machine names: multiarch triplet, `$LIB` values, `$PLATFORM`.
struct Abi {
    triplet: Option<&'static str>,
    lib: &'static [&'static str],
    platform: &'static str,
    lib64: bool,
}

fn abi_of(o: &ElfObject) -> Abi {
    match (o.machine, o.is_64) {
        (header::EM_X86_64, true) => Abi {
            triplet: Some("x86_64-linux-gnu"),
            lib: &["lib/x86_64-linux-gnu", "lib64"],
            platform: "x86_64",
            lib64: true,
        },
        (header::EM_AARCH64, true) => Abi {
            triplet: Some("aarch64-linux-gnu"),
            lib: &["lib/aarch64-linux-gnu", "lib64"],
            platform: "aarch64",
            lib64: true,
        },
        (header::EM_386, false) => Abi {
            triplet: Some("i386-linux-gnu"),
            lib: &["lib/i386-linux-gnu", "lib"],
            platform: "i686",
            lib64: false,
        },
        (header::EM_ARM, false) => Abi {
            triplet: Some("arm-linux-gnueabihf"),
            lib: &["lib/arm-linux-gnueabihf", "lib"],
            platform: "v7l",
            lib64: false,
        },
        (header::EM_PPC64, true) => Abi {
            triplet: Some("powerpc64le-linux-gnu"),
            lib: &["lib/powerpc64le-linux-gnu", "lib64"],
            platform: "power8",
            lib64: true,
        },
        (header::EM_S390, true) => Abi {
            triplet: Some("s390x-linux-gnu"),
            lib: &["lib/s390x-linux-gnu", "lib64"],
            platform: "s390x",
            lib64: true,
        },
        (header::EM_RISCV, true) => Abi {
            triplet: Some("riscv64-linux-gnu"),
            lib: &["lib/riscv64-linux-gnu", "lib64"],
            platform: "riscv64",
            lib64: true,
        },
        _ => Abi {
            triplet: None,
            lib: &["lib"],
            platform: "",
            lib64: o.is_64,
        },
    }
}

/// The built-in trusted directories for an object's ABI, in search order.
fn default_dirs(o: &ElfObject) -> Vec<String> {
    let abi = abi_of(o);
    let mut dirs = Vec::new();
    if let Some(t) = abi.triplet {
        dirs.push(format!("/lib/{t}"));
        dirs.push(format!("/usr/lib/{t}"));
    }
    dirs.push("/lib".to_owned());
    dirs.push("/usr/lib".to_owned());
    if abi.lib64 {
        dirs.push("/lib64".to_owned());
        dirs.push("/usr/lib64".to_owned());
    }
    dirs
}

/// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` (bare or braced) in one
/// search-path entry or `DT_NEEDED` name. `$LIB` may stand for several
/// directories, so several expansions can come back.
fn expand_dst(s: &str, o: &ElfObject) -> Vec<String> {
    if !s.contains('$') {
        return vec![s.to_owned()];
    }
    let abi = abi_of(o);
    let mut out = vec![String::new()];
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        for acc in &mut out {
            acc.push_str(&rest[..pos]);
        }
        let after = &rest[pos + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let values: Vec<String> = match name {
            "ORIGIN" => vec![o.dir().to_owned()],
            "LIB" => abi.lib.iter().map(|l| (*l).to_owned()).collect(),
            "PLATFORM" => vec![abi.platform.to_owned()],
            // An unknown token: glibc refuses the whole entry.
            _ => return Vec::new(),
        };
        out = out
            .iter()
            .flat_map(|acc| values.iter().map(move |v| format!("{acc}{v}")))
            .collect();
        rest = &after[len..];
    }
    for acc in &mut out {
        acc.push_str(rest);
    }
    out
}

struct Resolver<'a> {
    root: &'a RootFs,
    graph: &'a ElfGraph,
    ld_library_path: Vec<String>,
    cache: Option<ldconfig::LdCache>,
    conf_dirs: Vec<String>,
    canonical_dirs: RefCell<HashMap<String, Option<String>>>,
}

impl Resolver<'_> {
    /// The object a candidate path names, if it exists and is ELF.
    fn lookup(&self, path: &str) -> Option<usize> {
        let path = normalize(path);
        if let Some(&i) = self.graph.index.get(&path) {
            return Some(i);
        }
        let (dir, name) = path.rsplit_once('/')?;
        let dir = if dir.is_empty() { "/" } else { dir };
        let canonical_dir = self
            .canonical_dirs
            .borrow_mut()
            .entry(dir.to_owned())
            .or_insert_with(|| self.root.canonical(dir).ok())
            .clone()?;
        let joined = if canonical_dir == "/" {
            format!("/{name}")
        } else {
            format!("{canonical_dir}/{name}")
        };
        self.graph.index.get(&joined).copied()
    }

    fn acceptable(&self, from: usize, cand: usize) -> bool {
        let c = &self.graph.objects[cand];
        c.kind == ElfKind::SharedObject && c.same_abi(&self.graph.objects[from])
    }

    fn search(&self, from: usize, dirs: &[String], name: &str) -> Option<usize> {
        let o = &self.graph.objects[from];
        for dir in dirs {
            for d in expand_dst(dir, o) {
                if !d.starts_with('/') {
                    continue;
                }
                if let Some(c) = self
                    .lookup(&format!("{d}/{name}"))
                    .filter(|&c| self.acceptable(from, c))
                {
                    return Some(c);
                }
            }
        }
        None
    }

    /// Resolves one `DT_NEEDED` name of `from`, with the objects whose
    /// `DT_RPATH` it inherits (its loaders, nearest first).
    fn resolve(&self, from: usize, name: &str, loaders: &[usize]) -> Option<usize> {
        let o = &self.graph.objects[from];
        if name.contains('/') {
            return expand_dst(name, o)
                .iter()
                .filter_map(|p| {
                    self.lookup(&if p.starts_with('/') {
                        p.clone()
                    } else {
                        format!("/{p}")
                    })
                })
                .find(|&c| self.acceptable(from, c));
        }
        if o.runpath.is_empty() {
            if let Some(c) = self.search(from, &o.rpath, name) {
                return Some(c);
            }
            for &l in loaders {
                let lo = &self.graph.objects[l];
                // The loader's own $ORIGIN applies to its entries.
                for dir in &lo.rpath {
                    for d in expand_dst(dir, lo) {
                        if let Some(c) = self
                            .lookup(&format!("{d}/{name}"))
                            .filter(|&c| self.acceptable(from, c))
                        {
                            return Some(c);
                        }
                    }
                }
            }
        }
        if let Some(c) = self.search(from, &self.ld_library_path, name) {
            return Some(c);
        }
        if let Some(c) = self.search(from, &o.runpath, name) {
            return Some(c);
        }
        match &self.cache {
            Some(cache) => {
                if let Some(c) = cache
                    .lookup(name)
                    .iter()
                    .filter_map(|p| self.lookup(p))
                    .find(|&c| self.acceptable(from, c))
                {
                    return Some(c);
                }
            }
            None => {
                if let Some(c) = self.search(from, &self.conf_dirs, name) {
                    return Some(c);
                }
            }
        }
        self.search(from, &default_dirs(o), name)
    }
}

fn resolve_all(root: &RootFs, opts: &ScanOptions, graph: &mut ElfGraph) {
    let ld_library_path = opts
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "LD_LIBRARY_PATH")
        .map(|(_, v)| {
            v.split([':', ';'])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let cache = ldconfig::read_cache(root);
    let conf_dirs = if cache.is_none() {
        ldconfig::read_conf(root)
    } else {
        Vec::new()
    };
    let n = graph.objects.len();
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut resolved: HashSet<(usize, usize)> = HashSet::new();
    let mut interp_ok: HashSet<usize> = HashSet::new();
    let mut warnings = Vec::new();
    {
        let r = Resolver {
            root,
            graph,
            ld_library_path,
            cache,
            conf_dirs,
            canonical_dirs: RefCell::new(HashMap::new()),
        };
        // Every object is first resolved on its own (as a program or a
        // dlopen'ed plugin would be); objects with an effective DT_RPATH then
        // pass it down to what they load, which may resolve differently.
        // Edges are the union over all such contexts.
        let mut queue: VecDeque<(usize, Vec<usize>)> = (0..n).map(|i| (i, Vec::new())).collect();
        let mut seen: HashSet<(usize, Vec<usize>)> = HashSet::new();
        while let Some((i, loaders)) = queue.pop_front() {
            if seen.len() >= MAX_RESOLUTION_STATES {
                warnings.push(format!(
                    "dependency resolution stopped after {MAX_RESOLUTION_STATES} rpath contexts; some edges may be missing"
                ));
                break;
            }
            if !seen.insert((i, loaders.clone())) {
                continue;
            }
            let o = &graph.objects[i];
            let mut child_loaders = loaders.clone();
            if o.effective_rpath() && !loaders.contains(&i) {
                child_loaders.insert(0, i);
            }
            for (k, name) in o.needed.iter().enumerate() {
                if let Some(t) = r.resolve(i, name, &loaders) {
                    deps[i].insert(t);
                    resolved.insert((i, k));
                    if !child_loaders.is_empty() {
                        queue.push_back((t, child_loaders.clone()));
                    }
                }
            }
            if loaders.is_empty() {
                if let Some(interp) = &o.interpreter {
                    if let Some(t) = r.lookup(interp).filter(|&t| graph.objects[t].same_abi(o)) {
                        deps[i].insert(t);
                        interp_ok.insert(i);
                    }
                }
            }
        }
    }
    let mut unresolved = Vec::new();
    for (i, o) in graph.objects.iter().enumerate() {
        for (k, name) in o.needed.iter().enumerate() {
            if !resolved.contains(&(i, k)) {
                unresolved.push((name.clone(), o.path.clone()));
            }
        }
        if let Some(interp) = o.interpreter.as_ref().filter(|_| !interp_ok.contains(&i)) {
            unresolved.push((interp.clone(), o.path.clone()));
        }
    }
    unresolved.sort();
    unresolved.dedup();
    graph.deps = deps;
    graph.unresolved = unresolved;
    graph.warnings.extend(warnings);
}

/// The default `PATH` of a container when the image sets none.
pub(crate) fn default_path() -> &'static str {
    DEFAULT_PATH
}
