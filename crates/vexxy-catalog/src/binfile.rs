//! Ranged, bounded reads of one image file and a minimal ELF section-header
//! reader: enough to find named sections (`.go.buildinfo`, `.dep-v0`) and
//! read them without loading a whole binary.
//!
//! The file is located with [`RootFs::host_path`] (chroot semantics) and
//! opened with `O_NOFOLLOW`, so the final component cannot be a symlink
//! swapped in after resolution; every read is at most the size the caller
//! asks for, and every header field is checked against the file size.

use std::{
    fs,
    io::{self, Read},
    os::unix::fs::{FileExt, OpenOptionsExt},
};

use vexxy_rootfs::RootFs;

/// Most section headers read from one ELF file.
const MAX_SECTIONS: u64 = 65_536;
/// Largest section-name string table read.
const MAX_SHSTRTAB: u64 = 4 << 20;

/// An open regular file of the image.
#[derive(Debug)]
pub(crate) struct ImageFile {
    file: fs::File,
    len: u64,
}

impl ImageFile {
    /// Opens an image path that must resolve to a regular file.
    pub(crate) fn open(root: &RootFs, path: &str) -> Result<Self, String> {
        let host = root.host_path(path).map_err(|e| e.to_string())?;
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NOFOLLOW | O_NONBLOCK)
            .open(&host)
            .map_err(|e| format!("{path}: {e}"))?;
        let meta = file.metadata().map_err(|e| format!("{path}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{path}: not a regular file"));
        }
        Ok(Self {
            file,
            len: meta.len(),
        })
    }

    /// Reads `len` bytes at `offset`; both must lie within the file.
    pub(crate) fn read_at(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "range beyond end of file")
            })?;
        let size = usize::try_from(end - offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
        let mut buf = vec![0u8; size];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Reads up to `max` bytes from the start (fewer for a shorter file).
    pub(crate) fn head(&self, max: u64) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        (&self.file).take(max.min(self.len)).read_to_end(&mut buf)?;
        Ok(buf)
    }
}

const O_NOFOLLOW: i32 = 0o400000;
const O_NONBLOCK: i32 = 0o4000;

/// One ELF section: name, file offset and size (NOBITS sections excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub(crate) name: String,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

/// Whether a file starts with the ELF magic.
pub(crate) fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// A little- or big-endian reader of fixed-size fields.
#[derive(Clone, Copy)]
struct Endian {
    big: bool,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(u64::from(if self.big {
            u16::from_be_bytes(s)
        } else {
            u16::from_le_bytes(s)
        }))
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(u64::from(if self.big {
            u32::from_be_bytes(s)
        } else {
            u32::from_le_bytes(s)
        }))
    }
    fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(if self.big {
            u64::from_be_bytes(s)
        } else {
            u64::from_le_bytes(s)
        })
    }
}

/// Layout of one ELF class.
struct Layout {
    wide: bool,
    endian: Endian,
}

impl Layout {
    fn word(&self, b: &[u8], at32: usize, at64: usize) -> Option<u64> {
        if self.wide {
            self.endian.u64(b, at64)
        } else {
            self.endian.u32(b, at32)
        }
    }
}

/// The sections of an ELF file whose names are in `wanted`. `head` must
/// hold at least the first 64 bytes of the file.
pub(crate) fn sections(
    file: &ImageFile,
    head: &[u8],
    wanted: &[&str],
) -> Result<Vec<Section>, String> {
    let bad = |what: &str| format!("malformed elf header: {what}");
    if !is_elf(head) || head.len() < 52 {
        return Err(bad("too short"));
    }
    let wide = match head[4] {
        1 => false,
        2 => true,
        _ => return Err(bad("unknown class")),
    };
    let endian = match head[5] {
        1 => Endian { big: false },
        2 => Endian { big: true },
        _ => return Err(bad("unknown byte order")),
    };
    if wide && head.len() < 64 {
        return Err(bad("too short"));
    }
    let l = Layout { wide, endian };
    let shoff = l
        .word(head, 0x20, 0x28)
        .ok_or_else(|| bad("section table offset"))?;
    let (entsize_at, num_at, strndx_at) = if wide {
        (0x3a, 0x3c, 0x3e)
    } else {
        (0x2e, 0x30, 0x32)
    };
    let entsize = endian
        .u16(head, entsize_at)
        .ok_or_else(|| bad("section entry size"))?;
    let mut shnum = endian
        .u16(head, num_at)
        .ok_or_else(|| bad("section count"))?;
    let mut strndx = endian
        .u16(head, strndx_at)
        .ok_or_else(|| bad("string table index"))?;
    if shoff == 0 {
        // No section headers (stripped with sstrip and the like).
        return Ok(Vec::new());
    }
    let min_entsize = if wide { 64 } else { 40 };
    if entsize < min_entsize {
        return Err(bad("section entry size too small"));
    }
    if shnum == 0 || strndx == 0xffff {
        // Extended numbering: the real values live in section 0.
        let first = file
            .read_at(shoff, entsize)
            .map_err(|_| bad("section table beyond end of file"))?;
        if shnum == 0 {
            shnum = l.word(&first, 20, 32).ok_or_else(|| bad("section 0"))?;
        }
        if strndx == 0xffff {
            strndx = endian
                .u32(&first, if wide { 40 } else { 24 })
                .ok_or_else(|| bad("section 0"))?;
        }
    }
    if shnum > MAX_SECTIONS {
        return Err(bad("too many sections"));
    }
    let table = file
        .read_at(shoff, shnum * entsize)
        .map_err(|_| bad("section table beyond end of file"))?;
    let entry = |i: u64| -> Option<(u64, u64, u64, u64)> {
        let at = usize::try_from(i * entsize).ok()?;
        let name = endian.u32(&table, at)?;
        let ty = endian.u32(&table, at + 4)?;
        let offset = l.word(&table, at + 16, at + 24)?;
        let size = l.word(&table, at + 20, at + 32)?;
        Some((name, ty, offset, size))
    };
    if strndx >= shnum {
        return Err(bad("string table index out of range"));
    }
    let (_, _, str_off, str_size) = entry(strndx).ok_or_else(|| bad("string table entry"))?;
    let names = file
        .read_at(str_off, str_size.min(MAX_SHSTRTAB))
        .map_err(|_| bad("section names beyond end of file"))?;
    let mut out = Vec::new();
    for i in 0..shnum {
        let Some((name_off, ty, offset, size)) = entry(i) else {
            return Err(bad("section entry"));
        };
        const SHT_NOBITS: u64 = 8;
        if ty == SHT_NOBITS {
            continue;
        }
        let Some(rest) = usize::try_from(name_off).ok().and_then(|o| names.get(o..)) else {
            continue;
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let Ok(name) = std::str::from_utf8(&rest[..end]) else {
            continue;
        };
        if wanted.contains(&name) {
            out.push(Section {
                name: name.to_owned(),
                offset,
                size,
            });
        }
    }
    Ok(out)
}
