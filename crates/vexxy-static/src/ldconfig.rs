//! The dynamic linker's system search list: `/etc/ld.so.cache` in the
//! `glibc-ld.so.cache1.1` format, with `/etc/ld.so.conf` as the fallback.

use std::collections::{HashMap, HashSet};

use vexxy_rootfs::{normalize, RootFs};

use crate::glob;

const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_HEADER_LEN: usize = 48;
const NEW_ENTRY_LEN: usize = 24;
const OLD_ENTRY_LEN: usize = 12;
/// Upper bound on the size of a cache or configuration file we read.
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Nesting bound for `include` in `ld.so.conf`.
const MAX_INCLUDE_DEPTH: usize = 8;

/// The parsed `ld.so.cache`: library name to paths, in cache order.
#[derive(Debug, Default, Clone)]
pub(crate) struct LdCache {
    entries: HashMap<String, Vec<String>>,
}

impl LdCache {
    /// Paths the cache lists for a library name, best first.
    pub(crate) fn lookup(&self, name: &str) -> &[String] {
        self.entries
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Number of distinct names.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Parses a cache file; `None` when it is not in a format we know or is
/// truncated. Entries for `glibc-hwcaps` subdirectories are left out.
pub(crate) fn parse_cache(bytes: &[u8]) -> Option<LdCache> {
    let start = if bytes.starts_with(NEW_MAGIC) {
        0
    } else if bytes.starts_with(OLD_MAGIC) {
        // Old-format header (magic padded to 12 bytes, then nlibs) and its
        // entries, then the new format aligned to 8 bytes.
        let nlibs =
            usize::try_from(u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?)).ok()?;
        let end = 16usize.checked_add(nlibs.checked_mul(OLD_ENTRY_LEN)?)?;
        let aligned = end.checked_add(7)? & !7;
        if bytes.get(aligned..)?.starts_with(NEW_MAGIC) {
            aligned
        } else {
            return None;
        }
    } else {
        return None;
    };
    let new = bytes.get(start..)?;
    if new.len() < NEW_HEADER_LEN {
        return None;
    }
    // flags: 2 = little endian, 3 = big endian, 0 = not recorded.
    let big = new[28] == 3;
    let u32_at = |off: usize| -> Option<u32> {
        let b: [u8; 4] = new.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let u64_at = |off: usize| -> Option<u64> {
        let b: [u8; 8] = new.get(off..off.checked_add(8)?)?.try_into().ok()?;
        Some(if big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    };
    let nlibs = usize::try_from(u32_at(20)?).ok()?;
    let table_end = NEW_HEADER_LEN.checked_add(nlibs.checked_mul(NEW_ENTRY_LEN)?)?;
    if table_end > new.len() {
        return None;
    }
    let string_at = |off: u32| -> Option<String> {
        let rest = new.get(usize::try_from(off).ok()?..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok().map(str::to_owned)
    };
    let mut cache = LdCache::default();
    for i in 0..nlibs {
        let e = NEW_HEADER_LEN + i * NEW_ENTRY_LEN;
        let (key, value, hwcap) = (u32_at(e + 4)?, u32_at(e + 8)?, u64_at(e + 16)?);
        if hwcap != 0 {
            continue;
        }
        let (Some(key), Some(value)) = (string_at(key), string_at(value)) else {
            return None;
        };
        cache.entries.entry(key).or_default().push(value);
    }
    Some(cache)
}

/// Reads and parses `/etc/ld.so.cache`; `None` when absent or unparseable.
pub(crate) fn read_cache(root: &RootFs) -> Option<LdCache> {
    let bytes = root.read("/etc/ld.so.cache", MAX_CONFIG_BYTES).ok()?;
    parse_cache(&bytes)
}

/// The directories `/etc/ld.so.conf` lists, following `include` globs
/// (relative ones are relative to the including file's directory).
pub(crate) fn read_conf(root: &RootFs) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut seen = HashSet::new();
    read_conf_file(root, "/etc/ld.so.conf", 0, &mut seen, &mut dirs);
    let mut unique = HashSet::new();
    dirs.retain(|d| unique.insert(d.clone()));
    dirs
}

fn read_conf_file(
    root: &RootFs,
    path: &str,
    depth: usize,
    seen: &mut HashSet<String>,
    dirs: &mut Vec<String>,
) {
    if depth > MAX_INCLUDE_DEPTH {
        return;
    }
    let canonical = root.canonical(path).unwrap_or_else(|_| path.to_owned());
    if !seen.insert(canonical) {
        return;
    }
    let Ok(text) = root.read_to_string(path, MAX_CONFIG_BYTES) else {
        return;
    };
    let base = path
        .rsplit_once('/')
        .map(|(d, _)| if d.is_empty() { "/" } else { d })
        .unwrap_or("/");
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("include") => {
                for pattern in words {
                    let abs = if pattern.starts_with('/') {
                        pattern.to_owned()
                    } else {
                        format!("{base}/{pattern}")
                    };
                    for file in glob::expand(root, &abs) {
                        read_conf_file(root, &file, depth + 1, seen, dirs);
                    }
                }
            }
            Some("hwcap") => {}
            _ => {
                for dir in line
                    .split([' ', '\t', ':', ',', '='])
                    .filter(|d| d.starts_with('/'))
                {
                    dirs.push(normalize(dir));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_format(entries: &[(&str, &str, u64)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let strings_start = NEW_HEADER_LEN + entries.len() * NEW_ENTRY_LEN;
        let mut table = Vec::new();
        for (k, v, hwcap) in entries {
            let key = strings_start + strings.len();
            strings.extend_from_slice(k.as_bytes());
            strings.push(0);
            let value = strings_start + strings.len();
            strings.extend_from_slice(v.as_bytes());
            strings.push(0);
            table.extend_from_slice(&0x0303i32.to_le_bytes());
            table.extend_from_slice(&(key as u32).to_le_bytes());
            table.extend_from_slice(&(value as u32).to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&hwcap.to_le_bytes());
        }
        let mut out = NEW_MAGIC.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&[2, 0, 0, 0]);
        out.extend_from_slice(&[0; 16]);
        out.extend(table);
        out.extend(strings);
        out
    }

    #[test]
    fn parses_new_format_and_skips_hwcaps() {
        let bytes = new_format(&[
            ("libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1", 0),
            (
                "libz.so.1",
                "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libz.so.1",
                1 << 62,
            ),
            ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", 0),
        ]);
        let cache = parse_cache(&bytes).expect("parses");
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.lookup("libz.so.1"),
            ["/lib/x86_64-linux-gnu/libz.so.1".to_owned()]
        );
        assert!(cache.lookup("libnope.so").is_empty());
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(parse_cache(b"not a cache").is_none());
        let bytes = new_format(&[("libz.so.1", "/lib/libz.so.1", 0)]);
        assert!(parse_cache(&bytes[..NEW_HEADER_LEN + 10]).is_none());
        let mut old = OLD_MAGIC.to_vec();
        old.extend_from_slice(&[0, 0, 0, 0, 0]);
        assert!(parse_cache(&old).is_none());
    }

    #[test]
    fn parses_combined_old_and_new_format() {
        let new = new_format(&[("libz.so.1", "/lib/libz.so.1", 0)]);
        // Offsets in the new part are relative to the new header.
        let mut bytes = OLD_MAGIC.to_vec();
        bytes.push(0);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&[0; OLD_ENTRY_LEN]);
        while bytes.len() & 7 != 0 {
            bytes.push(0);
        }
        bytes.extend(new);
        let cache = parse_cache(&bytes).expect("parses");
        assert_eq!(cache.lookup("libz.so.1"), ["/lib/libz.so.1".to_owned()]);
    }
}
