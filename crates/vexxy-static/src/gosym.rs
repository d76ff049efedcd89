//! Functions of a Go binary, from its pclntab.
//!
//! Every Go binary carries the runtime's function table (the "pclntab"): the
//! entry address and name of every function linked in, exported or not. The
//! runtime needs it for stack traces and the garbage collector, so
//! `go build -ldflags='-s -w'` (which drops `.symtab` and DWARF) keeps it.
//! This module reads it, so the functions an advisory names (the Go
//! vulnerability database's `ecosystem_specific.imports[].symbols`) can be
//! looked up in stripped binaries too, and gives each function's file offset
//! for a uprobe.
//!
//! Formats read: Go 1.16–1.17 (magic `0xfffffffa`), 1.18–1.19 (`0xfffffff0`)
//! and 1.20+ (`0xfffffff1`). The table is found through the `.gopclntab`
//! section, else the `runtime.pclntab` symbol, else by its magic and a
//! header that checks out in a read-only loadable segment (binaries whose
//! section headers were removed).
//!
//! Names: the pclntab spells a method `pkg.(*T).M` (pointer receiver) or
//! `pkg.T.M`, a generic instantiation `pkg.F[...]`; OSV spells `pkg.T.M`
//! and `pkg.F`. [`qualified`] maps the first to the second.

use std::path::Path;

use goblin::elf::{program_header::PT_LOAD, Elf};
use vexxy_model::{FunctionResolution, FunctionSite};

/// Largest binary read.
const MAX_BINARY_BYTES: u64 = 1 << 30;
/// Largest function count accepted from a header.
const MAX_FUNCTIONS: u64 = 1 << 22;
/// Longest function name read; a longer one skips its function.
const MAX_NAME_BYTES: usize = 4 << 10;
/// Most name bytes read from one table (repeats included); past it the
/// functions read so far are kept.
const MAX_TOTAL_NAME_BYTES: usize = 64 << 20;
/// Most magic hits whose functions are read when no section or symbol
/// locates the table.
const MAX_MAGIC_CANDIDATES: usize = 8;

const MAGIC_116: u32 = 0xffff_fffa;
const MAGIC_118: u32 = 0xffff_fff0;
const MAGIC_120: u32 = 0xffff_fff1;

/// One function of a Go binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoFunction {
    /// The name as the pclntab spells it (`golang.org/x/net/html.(*Tokenizer).Next`).
    pub name: String,
    /// Entry virtual address.
    pub entry: u64,
    /// Entry file offset (where a uprobe attaches).
    pub offset: u64,
}

/// The pclntab's function list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFunctions {
    /// The pclntab version, as the Go release that introduced it (`1.16`,
    /// `1.18`, `1.20`).
    pub version: &'static str,
    /// Where the table was found (`.gopclntab`, `runtime.pclntab`, `magic`).
    pub found_by: &'static str,
    functions: Vec<GoFunction>,
}

/// Why a binary's functions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GoSymError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The file is larger than the limit.
    #[error("{path}: {size} bytes is over the {MAX_BINARY_BYTES}-byte limit")]
    TooLarge { path: String, size: u64 },
    /// Not an ELF file.
    #[error("{path}: not an ELF file: {reason}")]
    NotElf { path: String, reason: String },
    /// No pclntab anywhere: not a Go binary (or one older than Go 1.16).
    #[error("{path}: no go pclntab (not a go 1.16+ binary)")]
    NoPclntab { path: String },
    /// The pclntab is there but inconsistent.
    #[error("{path}: malformed go pclntab: {reason}")]
    Malformed { path: String, reason: String },
}

impl GoFunctions {
    /// Reads the binary at `path` (a host path).
    pub fn read(path: &Path) -> Result<Self, GoSymError> {
        let shown = path.display().to_string();
        let io = |source| GoSymError::Io {
            path: shown.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_BINARY_BYTES {
            return Err(GoSymError::TooLarge { path: shown, size });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::parse(&bytes).map_err(|e| e.at(&shown))
    }

    /// Parses an ELF image held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let elf = Elf::parse(bytes).map_err(|e| ParseError::NotElf(e.to_string()))?;
        let loads: Vec<(u64, u64, u64, u64)> = elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == PT_LOAD)
            .map(|p| (p.p_vaddr, p.p_memsz, p.p_offset, p.p_filesz))
            .collect();
        let to_offset = |vaddr: u64| {
            loads
                .iter()
                .find(|(va, _, _, filesz)| vaddr >= *va && vaddr - *va < *filesz)
                .map(|(va, _, off, _)| vaddr - va + off)
        };
        let text_start = elf
            .section_headers
            .iter()
            .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".text"))
            .map(|s| s.sh_addr);
        let little = elf.little_endian;

        // 1. the section
        let mut candidates: Vec<(usize, &'static str)> = Vec::new();
        for s in &elf.section_headers {
            if elf.shdr_strtab.get_at(s.sh_name) == Some(".gopclntab") {
                if let Ok(off) = usize::try_from(s.sh_offset) {
                    candidates.push((off, ".gopclntab"));
                }
            }
        }
        // 2. the symbol
        for sym in elf.syms.iter() {
            if elf.strtab.get_at(sym.st_name) == Some("runtime.pclntab") {
                if let Some(off) = to_offset(sym.st_value).and_then(|o| usize::try_from(o).ok()) {
                    candidates.push((off, "runtime.pclntab"));
                }
            }
        }
        let mut last_error = None;
        for (off, found_by) in candidates {
            match Table::parse(bytes, off, little, text_start) {
                Ok(table) => return table.functions(bytes, found_by, &to_offset),
                Err(e) => last_error = Some(e),
            }
        }
        // 3. the magic, in the file range of any loadable segment, 8-byte
        // aligned as the linker places it; a hit counts only when its
        // header and every function entry check out
        let mut tried = 0usize;
        'segments: for p in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
            let (Ok(start), Ok(len)) = (usize::try_from(p.p_offset), usize::try_from(p.p_filesz))
            else {
                continue;
            };
            let end = start.saturating_add(len).min(bytes.len());
            let mut at = start.next_multiple_of(8);
            while at + 8 <= end {
                let word = read_u32(bytes, at, little);
                if matches!(word, Some(MAGIC_116 | MAGIC_118 | MAGIC_120)) {
                    if let Ok(table) = Table::parse(bytes, at, little, text_start) {
                        if tried >= MAX_MAGIC_CANDIDATES {
                            break 'segments;
                        }
                        tried += 1;
                        if let Ok(found) = table.functions(bytes, "magic", &to_offset) {
                            if !found.functions.is_empty() {
                                return Ok(found);
                            }
                        }
                    }
                }
                at += 8;
            }
        }
        Err(last_error.unwrap_or(ParseError::NoPclntab))
    }

    /// Every function, sorted by name.
    pub fn functions(&self) -> impl Iterator<Item = &GoFunction> {
        self.functions.iter()
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.functions.len()
    }

    /// True when the table lists no function.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// The functions whose OSV-qualified name ([`qualified`]) is `wanted`:
    /// a method may appear twice (`pkg.T.M` and its pointer wrapper
    /// `pkg.(*T).M`), a generic function once per instantiation shape.
    pub fn find(&self, wanted: &str) -> Vec<&GoFunction> {
        self.functions
            .iter()
            .filter(|f| qualified(&f.name) == wanted)
            .collect()
    }
}

/// Parse errors of an in-memory image (no path yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    NotElf(String),
    NoPclntab,
    Malformed(String),
}

impl ParseError {
    fn at(self, path: &str) -> GoSymError {
        let path = path.to_owned();
        match self {
            Self::NotElf(reason) => GoSymError::NotElf { path, reason },
            Self::NoPclntab => GoSymError::NoPclntab { path },
            Self::Malformed(reason) => GoSymError::Malformed { path, reason },
        }
    }
}

/// The header of a pclntab at a file offset.
struct Table {
    version: &'static str,
    little: bool,
    ptr: usize,
    nfunc: usize,
    text_start: u64,
    /// Absolute file offsets.
    funcnametab: usize,
    functab: usize,
}

impl Table {
    fn parse(
        bytes: &[u8],
        at: usize,
        little: bool,
        text_section: Option<u64>,
    ) -> Result<Self, ParseError> {
        let bad = |m: &str| ParseError::Malformed(m.to_owned());
        let magic = read_u32(bytes, at, little).ok_or_else(|| bad("truncated header"))?;
        let version = match magic {
            MAGIC_116 => "1.16",
            MAGIC_118 => "1.18",
            MAGIC_120 => "1.20",
            _ => return Err(bad("unknown magic")),
        };
        let head = bytes
            .get(at..at + 8)
            .ok_or_else(|| bad("truncated header"))?;
        if head[4] != 0 || head[5] != 0 || !matches!(head[6], 1 | 2 | 4) {
            return Err(bad("bad header"));
        }
        let ptr = usize::from(head[7]);
        if ptr != 4 && ptr != 8 {
            return Err(bad("bad pointer size"));
        }
        let word = |i: usize| -> Result<u64, ParseError> {
            read_uint(bytes, at + 8 + i * ptr, ptr, little).ok_or_else(|| bad("truncated header"))
        };
        let nfunc = word(0)?;
        if nfunc == 0 || nfunc > MAX_FUNCTIONS {
            return Err(bad("implausible function count"));
        }
        let rel = |v: u64| -> Result<usize, ParseError> {
            usize::try_from(v)
                .ok()
                .and_then(|v| at.checked_add(v))
                .filter(|v| *v < bytes.len())
                .ok_or_else(|| bad("table offset out of the file"))
        };
        let (text_start, funcnametab, functab) = if version == "1.16" {
            (0, rel(word(2)?)?, rel(word(6)?)?)
        } else {
            let in_table = word(2)?;
            // a position-independent binary leaves the field to a relocation
            let text = if in_table != 0 {
                in_table
            } else {
                text_section.ok_or_else(|| bad("no text start"))?
            };
            (text, rel(word(3)?)?, rel(word(7)?)?)
        };
        Ok(Self {
            version,
            little,
            ptr,
            nfunc: usize::try_from(nfunc).map_err(|_| bad("function count"))?,
            text_start,
            funcnametab,
            functab,
        })
    }

    fn functions(
        &self,
        bytes: &[u8],
        found_by: &'static str,
        to_offset: &dyn Fn(u64) -> Option<u64>,
    ) -> Result<GoFunctions, ParseError> {
        let bad = |m: String| ParseError::Malformed(m);
        // functab entries: (entry, funcoff) pairs, words of 4 bytes since
        // 1.18, pointer-sized before
        let field = if self.version == "1.16" { self.ptr } else { 4 };
        let mut functions = Vec::with_capacity(self.nfunc.min(1 << 16));
        let mut name_bytes = 0usize;
        for i in 0..self.nfunc {
            let at = self.functab + i * 2 * field;
            let (Some(entry_word), Some(funcoff)) = (
                read_uint(bytes, at, field, self.little),
                read_uint(bytes, at + field, field, self.little),
            ) else {
                return Err(bad(format!("function table entry {i} out of the file")));
            };
            let entry = if self.version == "1.16" {
                entry_word
            } else {
                self.text_start.wrapping_add(entry_word)
            };
            // the _func record: entry (pointer before 1.18, u32 after), then
            // the name offset (i32)
            let record = usize::try_from(funcoff)
                .ok()
                .and_then(|f| self.functab.checked_add(f))
                .ok_or_else(|| bad(format!("function {i}: record offset")))?;
            let name_field = if self.version == "1.16" { self.ptr } else { 4 };
            let nameoff = record
                .checked_add(name_field)
                .and_then(|at| read_u32(bytes, at, self.little))
                .ok_or_else(|| bad(format!("function {i}: record out of the file")))?;
            let name_at = self
                .funcnametab
                .checked_add(nameoff as usize)
                .ok_or_else(|| bad(format!("function {i}: name offset")))?;
            let name = match read_cstr(bytes, name_at) {
                CStr::Name(name) => Some(name),
                CStr::TooLong => None,
                CStr::Bad => {
                    return Err(bad(format!(
                        "function {i}: name out of the file or not utf-8"
                    )))
                }
            };
            name_bytes = name_bytes.saturating_add(name.map_or(MAX_NAME_BYTES, str::len) + 1);
            if name_bytes > MAX_TOTAL_NAME_BYTES {
                break;
            }
            let Some(name) = name else {
                continue;
            };
            if name.is_empty() {
                return Err(bad(format!("function {i}: empty name")));
            }
            let Some(offset) = to_offset(entry) else {
                return Err(bad(format!(
                    "function {i}: entry {entry:#x} outside every loadable segment"
                )));
            };
            functions.push(GoFunction {
                name: name.to_owned(),
                entry,
                offset,
            });
        }
        functions.sort();
        functions.dedup();
        Ok(GoFunctions {
            version: self.version,
            found_by,
            functions,
        })
    }
}

fn read_u32(bytes: &[u8], at: usize, little: bool) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    })
}

fn read_uint(bytes: &[u8], at: usize, size: usize, little: bool) -> Option<u64> {
    match size {
        4 => read_u32(bytes, at, little).map(u64::from),
        8 => {
            let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
            Some(if little {
                u64::from_le_bytes(b)
            } else {
                u64::from_be_bytes(b)
            })
        }
        _ => None,
    }
}

/// A NUL-terminated name in the file.
enum CStr<'a> {
    Name(&'a str),
    /// No NUL within [`MAX_NAME_BYTES`].
    TooLong,
    /// Out of the file, unterminated at its end, or not UTF-8.
    Bad,
}

fn read_cstr(bytes: &[u8], at: usize) -> CStr<'_> {
    let Some(rest) = bytes.get(at..) else {
        return CStr::Bad;
    };
    let window = &rest[..rest.len().min(MAX_NAME_BYTES + 1)];
    match window.iter().position(|b| *b == 0) {
        Some(end) => std::str::from_utf8(&rest[..end]).map_or(CStr::Bad, CStr::Name),
        None if rest.len() > MAX_NAME_BYTES => CStr::TooLong,
        None => CStr::Bad,
    }
}

/// The OSV spelling of a pclntab name: the import path (its `%2e` escapes
/// undone), a dot, the symbol with the pointer-receiver parentheses and
/// type arguments removed: `golang.org/x/net/html.(*Tokenizer).Next` →
/// `golang.org/x/net/html.Tokenizer.Next`, `pkg.Map[...]` → `pkg.Map`.
pub fn qualified(name: &str) -> String {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let Some(dot) = name[slash..].find('.').map(|i| slash + i) else {
        return name.to_owned();
    };
    let path = name[..dot].replace("%2e", ".");
    let mut symbol = String::with_capacity(name.len() - dot);
    let mut depth = 0usize;
    for c in name[dot + 1..].chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '(' | ')' | '*' if depth == 0 => {}
            _ if depth == 0 => symbol.push(c),
            _ => {}
        }
    }
    format!("{path}.{symbol}")
}

/// A Go binary's functions as the advisory-function resolver reads an
/// object ([`crate::functions`]): names are OSV-qualified, sites carry the
/// pclntab spelling and the file offset. The list is not called complete:
/// the pclntab has every function *linked in* (stripped or not), but the Go
/// compiler inlines small functions and the linker drops an out-of-line
/// copy nothing references, so a vulnerable function inlined at every call
/// site is in the binary without an entry of its own (its code sits in its
/// callers, recorded only in their inline trees, which are not read yet).
impl crate::functions::FunctionIndex for GoFunctions {
    fn sites(&self, object: &str, name: &str) -> Vec<FunctionSite> {
        self.find(name)
            .into_iter()
            .map(|f| FunctionSite {
                object: object.to_owned(),
                symbol: f.name.clone(),
                offset: Some(f.offset),
            })
            .collect()
    }

    fn complete(&self) -> bool {
        false
    }
}

/// True when `host_path` is an ELF file with a readable pclntab.
pub fn is_go(host_path: &Path) -> bool {
    GoFunctions::read(host_path).is_ok()
}

/// Resolves OSV-qualified `names` (`golang.org/x/net/html.Render`) in the Go
/// binary at `host_path`, which the image calls `object`. Every site found
/// carries its file offset, so a probe attaches whether or not the binary
/// kept its symbol table. `Absent` says no function of that name is linked
/// in; it is not `complete`, because a function inlined at every call site
/// has no entry of its own (see the [`crate::functions::FunctionIndex`]
/// impl).
pub fn resolve(host_path: &Path, object: &str, names: &[String]) -> FunctionResolution {
    let functions = match GoFunctions::read(host_path) {
        Ok(f) => f,
        Err(e) => {
            return FunctionResolution::Unresolved {
                reason: format!("{object}: {}", strip_host(&e.to_string(), host_path)),
            }
        }
    };
    resolve_in(&functions, object, names)
}

/// [`resolve`] on a table already read.
pub fn resolve_in(functions: &GoFunctions, object: &str, names: &[String]) -> FunctionResolution {
    let mut sites: Vec<FunctionSite> = names
        .iter()
        .flat_map(|n| functions.find(n))
        .map(|f| FunctionSite {
            object: object.to_owned(),
            symbol: f.name.clone(),
            offset: Some(f.offset),
        })
        .collect();
    sites.sort();
    sites.dedup();
    if sites.is_empty() {
        FunctionResolution::Absent {
            objects_searched: vec![object.to_owned()],
            complete: false,
        }
    } else {
        let unresolved = names
            .iter()
            .filter(|n| functions.find(n).is_empty())
            .cloned()
            .collect();
        FunctionResolution::Present {
            sites,
            unresolved,
            unreadable: Vec::new(),
        }
    }
}

/// Error text names the image path, not the host path it was read from.
fn strip_host(text: &str, host_path: &Path) -> String {
    let host = host_path.display().to_string();
    text.strip_prefix(&host).map_or_else(
        || text.to_owned(),
        |rest| rest.trim_start_matches(": ").to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_match_osv_spelling() {
        assert_eq!(
            qualified("golang.org/x/net/html.(*Tokenizer).Next"),
            "golang.org/x/net/html.Tokenizer.Next"
        );
        assert_eq!(
            qualified("golang.org/x/net/html.Render"),
            "golang.org/x/net/html.Render"
        );
        assert_eq!(
            qualified("gopkg.in/yaml%2ev3.Unmarshal"),
            "gopkg.in/yaml.v3.Unmarshal"
        );
        assert_eq!(qualified("example.com/m.Map[...]"), "example.com/m.Map");
        assert_eq!(
            qualified("example.com/m.(*List[...]).Push"),
            "example.com/m.List.Push"
        );
        assert_eq!(qualified("main.main"), "main.main");
        assert_eq!(
            qualified("net/http.(*Server).Serve"),
            "net/http.Server.Serve"
        );
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert!(matches!(
            GoFunctions::parse(b"not an elf at all"),
            Err(ParseError::NotElf(_))
        ));
        let mut fake = vec![0u8; 4096];
        fake[..4].copy_from_slice(b"\x7fELF");
        assert!(GoFunctions::parse(&fake).is_err());
        // a header with the magic and nonsense after it
        let mut header = MAGIC_120.to_le_bytes().to_vec();
        header.extend([0, 0, 1, 8]);
        header.extend(u64::MAX.to_le_bytes());
        assert!(Table::parse(&header, 0, true, None).is_err());
    }

    /// A Go 1.20 table of `nfunc` entries, function `i` at `text + i`,
    /// every entry sharing one `_func` record whose name is `name` (NUL
    /// added); offsets relative to the table's start.
    fn table_120(nfunc: u32, name: &[u8], funcoff_of_entry0: Option<u32>) -> Vec<u8> {
        let header = 8 + 8 * 8;
        let functab = header;
        let record = functab + nfunc as usize * 8;
        let funcnametab = record + 8;
        let mut t = MAGIC_120.to_le_bytes().to_vec();
        t.extend([0, 0, 1, 8]);
        for w in [
            u64::from(nfunc),
            0,
            0x10,
            funcnametab as u64,
            0,
            0,
            0,
            functab as u64,
        ] {
            t.extend(w.to_le_bytes());
        }
        for i in 0..nfunc {
            let funcoff = if i == 0 {
                funcoff_of_entry0.unwrap_or((record - functab) as u32)
            } else {
                (record - functab) as u32
            };
            t.extend(i.to_le_bytes());
            t.extend(funcoff.to_le_bytes());
        }
        t.extend(0u32.to_le_bytes()); // record: entry
        t.extend(0u32.to_le_bytes()); // record: name offset
        t.extend(name);
        t.push(0);
        while !t.len().is_multiple_of(8) {
            t.push(0);
        }
        t
    }

    fn read_table(t: &[u8]) -> Result<GoFunctions, ParseError> {
        let table = Table::parse(t, 0, true, None)?;
        table.functions(t, "test", &|v| Some(v))
    }

    #[test]
    fn overlong_names_are_skipped() {
        let long = vec![b'a'; MAX_NAME_BYTES + 1];
        let found = read_table(&table_120(64, &long, None)).unwrap();
        assert!(found.is_empty());
        let fits = vec![b'a'; MAX_NAME_BYTES];
        assert_eq!(read_table(&table_120(2, &fits, None)).unwrap().len(), 2);
    }

    #[test]
    fn name_bytes_are_capped_per_table() {
        // every entry repeats one ~4 KiB name: reading stops at the total
        let name = vec![b'a'; MAX_NAME_BYTES - 1];
        let nfunc = (MAX_TOTAL_NAME_BYTES / MAX_NAME_BYTES + 100) as u32;
        let found = read_table(&table_120(nfunc, &name, None)).unwrap();
        assert_eq!(found.len(), MAX_TOTAL_NAME_BYTES / MAX_NAME_BYTES);
    }

    #[test]
    fn record_offset_overflow_is_an_error() {
        // Go 1.16 layout: pointer-sized functab words, so a record offset
        // can reach the top of the address space
        let mut t = MAGIC_116.to_le_bytes().to_vec();
        t.extend([0, 0, 1, 8]);
        for w in [1u64, 0, 72, 0, 0, 0, 72, 0] {
            t.extend(w.to_le_bytes());
        }
        t.extend(0x10u64.to_le_bytes());
        // functab (72) + this is usize::MAX: the name field past it overflows
        t.extend((u64::MAX - 72).to_le_bytes());
        assert!(matches!(read_table(&t), Err(ParseError::Malformed(_))));
    }

    /// An ELF image with one loadable segment covering the file (vaddr ==
    /// offset), no sections, and `tables` after the headers.
    fn elf_with(tables: &[Vec<u8>]) -> Vec<u8> {
        let mut e = b"\x7fELF\x02\x01\x01".to_vec();
        e.resize(16, 0);
        e.extend(2u16.to_le_bytes()); // ET_EXEC
        e.extend(62u16.to_le_bytes()); // x86-64
        e.extend(1u32.to_le_bytes());
        e.extend(0u64.to_le_bytes()); // entry
        e.extend(64u64.to_le_bytes()); // phoff
        e.extend(0u64.to_le_bytes()); // shoff
        e.extend(0u32.to_le_bytes());
        for h in [64u16, 56, 1, 64, 0, 0] {
            e.extend(h.to_le_bytes());
        }
        let len = 64 + 56 + tables.iter().map(Vec::len).sum::<usize>() as u64;
        e.extend(PT_LOAD.to_le_bytes());
        e.extend(4u32.to_le_bytes());
        for w in [0u64, 0, 0, len, len, 0x1000] {
            e.extend(w.to_le_bytes());
        }
        for t in tables {
            e.extend(t);
        }
        e
    }

    #[test]
    fn magic_scan_tries_a_few_candidates() {
        let good = table_120(1, b"main.main", None);
        let bad = table_120(1, b"main.main", Some(0xffff_fff0));
        let mut tables = vec![bad.clone(); MAX_MAGIC_CANDIDATES - 1];
        tables.push(good.clone());
        let found = GoFunctions::parse(&elf_with(&tables)).unwrap();
        assert_eq!(found.found_by, "magic");
        assert_eq!(found.functions().next().unwrap().name, "main.main");
        let mut tables = vec![bad; MAX_MAGIC_CANDIDATES];
        tables.push(good);
        assert_eq!(
            GoFunctions::parse(&elf_with(&tables)),
            Err(ParseError::NoPclntab)
        );
    }

    /// Builds a small Go program twice (with symbols, and `-s -w`) with the
    /// installed toolchain; nothing is downloaded (GOPROXY=off, no deps).
    fn build_go(dir: &Path, stripped: bool) -> Option<std::path::PathBuf> {
        let go = Path::new("/usr/bin/go");
        vexxy_testkit::require(go.exists().then_some(()).ok_or("no /usr/bin/go"))?;
        std::fs::write(
            dir.join("go.mod"),
            "module example.com/gosymtest\n\ngo 1.16\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("main.go"),
            r#"package main

import (
	"fmt"
	"os"
)

type Greeter struct{ name string }

//go:noinline
func (g *Greeter) Greet() string { return "hello " + g.name }

//go:noinline
func (g Greeter) Plain() string { return g.name }

//go:noinline
func NeverCalled() { fmt.Println("never") }

func main() {
	g := &Greeter{name: os.Args[0]}
	fmt.Println(g.Greet(), g.Plain())
	if len(os.Args) > 5 {
		NeverCalled()
	}
}
"#,
        )
        .unwrap();
        let out = dir.join(if stripped { "stripped" } else { "full" });
        let mut cmd = std::process::Command::new(go);
        cmd.current_dir(dir)
            .env("GOPROXY", "off")
            .env("GOFLAGS", "-mod=mod")
            .env("GOCACHE", dir.join("cache"))
            .env("HOME", dir)
            .env("CGO_ENABLED", "0")
            .arg("build")
            .arg("-o")
            .arg(&out);
        if stripped {
            cmd.arg("-ldflags=-s -w");
        }
        let status = cmd.arg(".").status().unwrap();
        assert!(status.success(), "go build failed");
        Some(out)
    }

    fn check(path: &Path, expect_symtab: bool) {
        let bytes = std::fs::read(path).unwrap();
        let elf = Elf::parse(&bytes).unwrap();
        assert_eq!(!elf.syms.is_empty(), expect_symtab);
        let functions = GoFunctions::read(path).unwrap();
        assert!(functions.len() > 500, "{} functions", functions.len());
        // the table's entries agree with the symbol table where there is one
        if expect_symtab {
            let mut compared = 0;
            for sym in elf.syms.iter() {
                if let Some(name) = elf.strtab.get_at(sym.st_name) {
                    if name == "main.main" || name == "main.(*Greeter).Greet" {
                        let f = functions.functions().find(|f| f.name == name).unwrap();
                        assert_eq!(f.entry, sym.st_value, "{name}");
                        compared += 1;
                    }
                }
            }
            assert_eq!(compared, 2);
        }
        let names = vec![
            "example.com/gosymtest.Greeter.Greet".to_owned(),
            "example.com/gosymtest.NeverCalled".to_owned(),
        ];
        // a main package's symbols are spelled `main.`, not by module path
        let main_names = vec![
            "main.Greeter.Greet".to_owned(),
            "main.NeverCalled".to_owned(),
        ];
        assert!(matches!(
            resolve(path, "/app", &names),
            FunctionResolution::Absent {
                complete: false,
                ..
            }
        ));
        let FunctionResolution::Present { sites, .. } = resolve(path, "/app", &main_names) else {
            panic!("main functions not found")
        };
        let symbols: Vec<&str> = sites.iter().map(|s| s.symbol.as_str()).collect();
        assert_eq!(symbols, ["main.(*Greeter).Greet", "main.NeverCalled"]);
        for site in &sites {
            let off = usize::try_from(site.offset.unwrap()).unwrap();
            // amd64 Go functions start with a stack check or a frame setup:
            // never zero padding
            assert!(bytes[off..off + 4] != [0, 0, 0, 0], "{}", site.symbol);
        }
        let plain = functions.find("main.Greeter.Plain");
        assert!(!plain.is_empty());
    }

    #[test]
    fn reads_real_go_binaries_stripped_and_not() {
        let dir = tempfile::tempdir().unwrap();
        let Some(full) = build_go(dir.path(), false) else {
            return;
        };
        let stripped = build_go(dir.path(), true).unwrap();
        check(&full, true);
        check(&stripped, false);
        // same functions at the same addresses either way
        let a = GoFunctions::read(&full).unwrap();
        let b = GoFunctions::read(&stripped).unwrap();
        assert_eq!(a.version, "1.18");
        let greet = |t: &GoFunctions| t.find("main.Greeter.Greet")[0].offset;
        assert_eq!(greet(&a), greet(&b));
    }

    #[test]
    fn indexes_like_any_object_for_the_resolver() {
        use crate::functions::FunctionIndex;
        let dir = tempfile::tempdir().unwrap();
        let Some(stripped) = build_go(dir.path(), true) else {
            return;
        };
        let table = GoFunctions::read(&stripped).unwrap();
        // inlined-everywhere functions have no entry: never "complete"
        assert!(!table.complete());
        let sites = table.sites("/app/server", "main.Greeter.Greet");
        assert_eq!(sites.len(), 1, "{sites:?}");
        assert_eq!(sites[0].symbol, "main.(*Greeter).Greet");
        assert!(sites[0].offset.is_some());
        assert!(table.sites("/app/server", "main.Missing").is_empty());
    }

    #[test]
    fn finds_the_table_without_section_headers() {
        let dir = tempfile::tempdir().unwrap();
        let Some(full) = build_go(dir.path(), true) else {
            return;
        };
        let mut bytes = std::fs::read(&full).unwrap();
        // wipe the section header table fields (e_shoff, e_shnum, e_shstrndx)
        bytes[0x28..0x30].copy_from_slice(&0u64.to_le_bytes());
        bytes[0x3c..0x3e].copy_from_slice(&0u16.to_le_bytes());
        bytes[0x3e..0x40].copy_from_slice(&0u16.to_le_bytes());
        let no_sections = GoFunctions::parse(&bytes).unwrap();
        assert_eq!(no_sections.found_by, "magic");
        let with = GoFunctions::read(&full).unwrap();
        assert_eq!(with.found_by, ".gopclntab");
        assert_eq!(no_sections.len(), with.len());
        assert_eq!(
            no_sections.find("main.NeverCalled")[0].offset,
            with.find("main.NeverCalled")[0].offset
        );
    }
}
