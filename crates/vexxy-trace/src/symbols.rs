//! Resolving `(library, symbol)` to the file offsets uprobes attach at.

use std::collections::BTreeMap;
use std::path::Path;

use goblin::elf::{program_header::PT_LOAD, sym::STT_FUNC, sym::STT_GNU_IFUNC, Elf};

use crate::TraceError;

/// Largest library the resolver reads.
const MAX_LIBRARY_BYTES: u64 = 512 << 20;

/// The defined function symbols of an ELF file and their file offsets.
#[derive(Debug, Default)]
pub struct SymbolTable {
    offsets: BTreeMap<String, u64>,
    /// Defined GNU indirect functions, left out of `offsets`.
    ifuncs: usize,
}

impl SymbolTable {
    /// Reads `path` and indexes its defined functions (`.dynsym`, and
    /// `.symtab` when present). Versioned names are indexed without the
    /// version; GNU indirect functions are left out (a probe on the resolver
    /// would count resolutions, not calls).
    pub fn read(path: &Path) -> Result<Self, TraceError> {
        let io = |source| TraceError::Library {
            path: path.to_owned(),
            reason: format!("{source}"),
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_LIBRARY_BYTES {
            return Err(TraceError::Library {
                path: path.to_owned(),
                reason: format!("{len} bytes is over the {MAX_LIBRARY_BYTES}-byte limit"),
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::parse(&bytes).map_err(|reason| TraceError::Library {
            path: path.to_owned(),
            reason,
        })
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let elf = Elf::parse(bytes).map_err(|e| format!("not an ELF file: {e}"))?;
        let loads: Vec<_> = elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == PT_LOAD)
            .collect();
        let to_offset = |vaddr: u64| {
            loads
                .iter()
                .find(|p| vaddr >= p.p_vaddr && vaddr < p.p_vaddr + p.p_memsz)
                .map(|p| vaddr - p.p_vaddr + p.p_offset)
        };
        let mut offsets = BTreeMap::new();
        let tables = [(&elf.dynsyms, &elf.dynstrtab), (&elf.syms, &elf.strtab)];
        // A name with an IFUNC definition under any version (glibc's memcpy
        // has an old plain one too) resolves through the IFUNC: leave it out.
        let ifuncs: std::collections::BTreeSet<&str> = tables
            .iter()
            .flat_map(|(syms, strtab)| {
                syms.iter()
                    .filter(|s| s.st_type() == STT_GNU_IFUNC)
                    .filter_map(|s| strtab.get_at(s.st_name))
                    .map(|n| n.split('@').next().unwrap_or(n))
            })
            .collect();
        for (syms, strtab) in tables {
            for sym in syms.iter() {
                if sym.st_type() != STT_FUNC || sym.st_shndx == 0 || sym.st_value == 0 {
                    continue;
                }
                let Some(name) = strtab.get_at(sym.st_name) else {
                    continue;
                };
                let name = name.split('@').next().unwrap_or(name);
                if name.is_empty() || ifuncs.contains(name) {
                    continue;
                }
                if let Some(offset) = to_offset(sym.st_value) {
                    offsets.entry(name.to_owned()).or_insert(offset);
                }
            }
        }
        let ifuncs = ifuncs.len();
        Ok(Self { offsets, ifuncs })
    }

    /// The file offset of `symbol`.
    pub fn offset(&self, symbol: &str) -> Option<u64> {
        self.offsets.get(symbol).copied()
    }

    /// Every exported function name, sorted.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.offsets.keys().map(String::as_str)
    }

    /// Number of functions indexed.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when the file defines GNU indirect functions, which cannot be
    /// probed: calls through them are never counted.
    pub fn has_ifuncs(&self) -> bool {
        self.ifuncs > 0
    }

    /// True when the file defines no function.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_libc_functions_and_skips_ifuncs() {
        let libc = Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6");
        if vexxy_testkit_host::require(libc.exists().then_some(()).ok_or("no glibc at that path"))
            .is_none()
        {
            return;
        }
        let table = SymbolTable::read(libc).unwrap();
        assert!(table.len() > 1000, "{} functions", table.len());
        assert!(table.offset("getpid").is_some());
        assert!(table.offset("fork").is_some());
        // memcpy is an IFUNC in glibc: a probe there counts resolutions only
        assert!(table.offset("memcpy").is_none());
        assert!(table.offset("no_such_function_anywhere").is_none());
    }

    #[test]
    fn rejects_non_elf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        let err = SymbolTable::read(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
