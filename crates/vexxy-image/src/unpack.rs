//! Safe application of image layers into a target directory.
//!
//! Every path is resolved beneath the target with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so a symlink planted
//! by an earlier entry or layer resolves as it would inside a `chroot` and
//! never leads out of the target; final components are created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` (or the `*at` call that never follows),
//! after removing whatever was there.

use std::{
    cell::Cell,
    collections::{BTreeMap, HashSet},
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Write},
    os::fd::{AsFd, OwnedFd},
    path::Path,
    rc::Rc,
};

use rustix::{
    fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags},
    io::Errno,
};
use vexxy_model::Digest;

use crate::{cache::HashReader, BlobCache, Image, ImageError, Layer};

/// Bounds (and one policy switch) for [`unpack`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed layer bytes (tar headers included) over all layers.
    pub max_total_bytes: u64,
    /// Size of one file.
    pub max_file_bytes: u64,
    /// Tar entries over all layers.
    pub max_entries: u64,
    /// Length of an entry name or link target, in bytes.
    pub max_path_len: usize,
    /// Keep setuid/setgid bits on files and directories (dropped by default;
    /// the report's [`FileMeta::mode`] always has the image's mode).
    pub keep_setid_bits: bool,
}

impl Default for Limits {
    /// 16 GiB in total, 4 GiB per file, 2,000,000 entries, 4096-byte paths,
    /// setuid/setgid bits dropped.
    fn default() -> Self {
        Self {
            max_total_bytes: 16 << 30,
            max_file_bytes: 4 << 30,
            max_entries: 2_000_000,
            max_path_len: 4096,
            keep_setid_bits: false,
        }
    }
}

/// What a path in the unpacked tree is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory (also one created implicitly as a missing parent).
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier regular file.
    HardLink,
}

/// Owner and mode of a path as the image states them (nothing is chowned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileMeta {
    /// The kind of entry.
    pub kind: EntryKind,
    /// Numeric owner from the tar header.
    pub uid: u32,
    /// Numeric group from the tar header.
    pub gid: u32,
    /// Permission bits from the tar header (`0o7777` mask, setid bits included).
    pub mode: u32,
}

/// What [`unpack`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Layers applied.
    pub layers: usize,
    /// Tar entries read (all kinds).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Bytes of file content written.
    pub bytes_written: u64,
    /// Uncompressed layer bytes read (tar headers included).
    pub uncompressed_bytes: u64,
    /// Whiteouts (`.wh.NAME`) applied.
    pub whiteouts: u64,
    /// Opaque directory markers (`.wh..wh..opq`) applied.
    pub opaque_dirs: u64,
    /// Entries naming a path already written by the same layer (the later wins).
    pub duplicates: u64,
    /// Character and block devices skipped.
    pub skipped_devices: u64,
    /// Fifos skipped.
    pub skipped_fifos: u64,
    /// Other entries skipped (AUFS metadata, unknown entry types, hard links to themselves).
    pub skipped_other: u64,
    /// Files and directories whose setuid/setgid bits were dropped.
    pub setid_bits_dropped: u64,
    /// Every path of the final tree (`/usr/bin/env`) with owner and mode.
    pub owners: BTreeMap<String, FileMeta>,
}

/// Layer compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub(crate) fn sniff(magic: &[u8]) -> Self {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }

    fn from_media_type(m: &str) -> Self {
        if m.ends_with("gzip") {
            Self::Gzip
        } else if m.ends_with("zstd") {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// Counts bytes read and fails once a budget is spent (flagging it, so the
/// error can be told from a broken stream whatever wraps it).
struct Budget<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded.set(true);
            return Err(crate::error::said("uncompressed size limit exceeded"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Applies the image's layers, lowest first, into `target`, which must not
/// exist or be an empty directory.
///
/// Each layer blob is re-verified against its digest before it is read, and
/// its uncompressed stream against its `diff_id` (when the config lists one)
/// as it is applied. Device nodes and fifos are skipped, ownership is
/// recorded in the report and not applied, setuid/setgid bits are dropped
/// unless [`Limits::keep_setid_bits`]. Nothing is created outside `target`.
/// On any error the partially written tree is removed (`target` is left
/// absent, or empty when it existed before).
pub fn unpack(
    image: &Image,
    cache: &BlobCache,
    target: &Path,
    limits: &Limits,
) -> Result<UnpackReport, ImageError> {
    let existed = prepare_target(target)?;
    let result = unpack_into(image, cache, target, limits);
    if result.is_err() {
        let _ = fs::remove_dir_all(target);
        if existed {
            let _ = fs::create_dir(target);
        }
    }
    result
}

fn prepare_target(target: &Path) -> Result<bool, ImageError> {
    let bad = |reason: &str| ImageError::BadTarget {
        path: target.to_owned(),
        reason: reason.to_owned(),
    };
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => {
            let mut entries = fs::read_dir(target).map_err(|e| ImageError::io(target, e))?;
            if entries.next().is_some() {
                return Err(bad("not empty"));
            }
            Ok(true)
        }
        Ok(_) => Err(bad("exists and is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(target).map_err(|e| ImageError::io(target, e))?;
            Ok(false)
        }
        Err(e) => Err(ImageError::io(target, e)),
    }
}

fn unpack_into(
    image: &Image,
    cache: &BlobCache,
    target: &Path,
    limits: &Limits,
) -> Result<UnpackReport, ImageError> {
    let root = rustix::fs::open(
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ImageError::io(target, e.into()))?;
    let mut applier = Applier {
        root,
        limits,
        report: UnpackReport::default(),
        layer_paths: HashSet::new(),
        layer: None,
        buf: vec![0u8; 1 << 20],
        budget_left: limits.max_total_bytes,
    };
    for layer in &image.layers {
        applier.apply_layer(cache, layer)?;
        applier.report.layers += 1;
    }
    applier.finish_modes()?;
    Ok(applier.report)
}

struct Applier<'a> {
    root: OwnedFd,
    limits: &'a Limits,
    report: UnpackReport,
    /// Paths written by the current layer, with all their ancestors.
    layer_paths: HashSet<Vec<u8>>,
    layer: Option<Digest>,
    buf: Vec<u8>,
    budget_left: u64,
}

/// Splits a tar name into components beneath the root: `""` and `.` are
/// dropped, `..` pops; `None` when a `..` would climb above the root.
fn normalise(raw: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(comps.iter().map(|c| c.len() + 1).sum());
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    out
}

fn key_of(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel))
}

/// Removes `key` and everything beneath it from the owners map.
fn forget_subtree(map: &mut BTreeMap<String, FileMeta>, key: &str) {
    map.remove(key);
    let lo = format!("{key}/");
    let hi = format!("{key}0"); // '0' is the byte after '/'
    let doomed: Vec<String> = map.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in doomed {
        map.remove(&k);
    }
}

fn openat2_retry(
    dir: impl AsFd,
    path: &[u8],
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(&dir, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN | Errno::INTR) if tries < 16 => tries += 1,
            other => return other,
        }
    }
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Kind of what exists at `name` in `dir` (not following a symlink).
fn existing(dir: &OwnedFd, name: &[u8]) -> Result<Option<FileType>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes whatever is at `name` in `dir`, recursively for a directory,
/// never following a symlink.
fn remove_any(dir: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
    match existing(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => remove_tree(dir, name),
        Some(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty()),
    }
}

fn list_dir(dir: &OwnedFd) -> Result<Vec<(Vec<u8>, FileType)>, Errno> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let mut ft = entry.file_type();
        if ft == FileType::Unknown {
            ft = existing(dir, name)?.unwrap_or(FileType::Unknown);
        }
        out.push((name.to_vec(), ft));
    }
    Ok(out)
}

fn remove_tree(dir: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for (child, ft) in list_dir(&sub)? {
        if ft == FileType::Directory {
            remove_tree(&sub, &child)?;
        } else {
            rustix::fs::unlinkat(&sub, child.as_slice(), AtFlags::empty())?;
        }
    }
    drop(sub);
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

enum Refusal {
    Hostile(String),
    Io(io::Error),
}

impl From<Errno> for Refusal {
    fn from(e: Errno) -> Self {
        Refusal::Io(e.into())
    }
}

impl Applier<'_> {
    fn layer_digest(&self) -> Digest {
        self.layer
            .clone()
            .unwrap_or_else(|| Digest::from_sha256_bytes(&[0; 32]))
    }

    fn hostile(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::HostileEntry {
            layer: self.layer_digest(),
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    /// The target of a link entry, bounded like any path.
    fn link_target<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        name: &str,
        kind: &str,
    ) -> Result<Vec<u8>, ImageError> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| self.hostile(name, format!("{kind} without a target")))?
            .into_owned();
        if target.len() > self.limits.max_path_len {
            return Err(self.limit(name, "link target length", self.limits.max_path_len as u64));
        }
        Ok(target)
    }

    fn limit(&self, entry: &str, what: &'static str, limit: u64) -> ImageError {
        ImageError::LimitExceeded {
            layer: self.layer_digest(),
            entry: entry.to_owned(),
            what,
            limit,
        }
    }

    fn refusal(&self, entry: &str, r: Refusal) -> ImageError {
        match r {
            Refusal::Hostile(reason) => self.hostile(entry, reason),
            Refusal::Io(source) => ImageError::Apply {
                layer: self.layer_digest(),
                entry: entry.to_owned(),
                source,
            },
        }
    }

    fn mark_written(&mut self, rel: &[u8]) -> bool {
        let fresh = self.layer_paths.insert(rel.to_vec());
        let mut p = rel;
        while let Some(i) = p.iter().rposition(|b| *b == b'/') {
            p = &p[..i];
            if !self.layer_paths.insert(p.to_vec()) {
                break;
            }
        }
        fresh
    }

    fn apply_layer(&mut self, cache: &BlobCache, layer: &Layer) -> Result<(), ImageError> {
        self.layer = Some(layer.digest.clone());
        self.layer_paths.clear();
        let file = cache.get_checked(&layer.digest, Some(layer.size))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let magic = reader
            .fill_buf()
            .map_err(|e| ImageError::io(cache.blob_path(&layer.digest), e))?;
        let sniffed = Compression::sniff(magic);
        let declared = Compression::from_media_type(&layer.media_type);
        if sniffed == Compression::None && declared != Compression::None {
            return Err(ImageError::Tar {
                layer: layer.digest.clone(),
                entry: String::new(),
                cause: crate::error::said(format!(
                    "media type {} announces compression but the content has no gzip or zstd header",
                    layer.media_type
                )),
            });
        }
        let tar_err = |entry: &str, cause: io::Error| ImageError::Tar {
            layer: layer.digest.clone(),
            entry: entry.to_owned(),
            cause,
        };
        let decoded: Box<dyn Read> = match sniffed {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(reader).map_err(|e| tar_err("", e))?,
            ),
            Compression::None => Box::new(reader),
        };
        let exceeded = Rc::new(Cell::new(false));
        let budget = Budget {
            inner: decoded,
            left: self.budget_left,
            exceeded: exceeded.clone(),
        };
        let mut archive = tar::Archive::new(HashReader::new(budget));
        let mut last = String::new();
        let over = |last: &str, this: &Self| {
            this.limit(last, "uncompressed size", this.limits.max_total_bytes)
        };
        let entries = archive.entries().map_err(|e| tar_err("", e))?;
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(_) if exceeded.get() => return Err(over(&last, self)),
                Err(e) => return Err(tar_err(&last, e)),
            };
            last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            match self.apply_entry(&mut entry, &last) {
                Ok(()) => {}
                Err(_) if exceeded.get() => return Err(over(&last, self)),
                Err(e) => return Err(e),
            }
        }
        // Hash what follows the end-of-archive marker too: the diff_id covers the whole stream.
        let mut rest = archive.into_inner();
        if let Err(e) = io::copy(&mut rest, &mut io::sink()) {
            return Err(if exceeded.get() {
                over(&last, self)
            } else {
                tar_err(&last, e)
            });
        }
        let (diff_id, read) = rest.finish();
        self.budget_left -= read.min(self.budget_left);
        self.report.uncompressed_bytes += read;
        if let Some(expected) = &layer.diff_id {
            if expected != &diff_id {
                return Err(ImageError::DiffIdMismatch {
                    layer: layer.digest.clone(),
                    expected: expected.clone(),
                    actual: diff_id,
                });
            }
        }
        Ok(())
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), ImageError> {
        use tar::EntryType as T;
        self.report.entries += 1;
        if self.report.entries > self.limits.max_entries {
            return Err(self.limit(name, "entry count", self.limits.max_entries));
        }
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            self.report.skipped_other += 1;
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        if raw.len() > self.limits.max_path_len {
            return Err(self.limit(name, "path length", self.limits.max_path_len as u64));
        }
        if raw.contains(&0) {
            return Err(self.hostile(name, "nul byte in the name"));
        }
        let comps =
            normalise(&raw).ok_or_else(|| self.hostile(name, "path climbs above the root"))?;
        let header = entry.header();
        let mode = header.mode().map_err(|e| self.tar_io(name, e))? & 0o7777;
        // Ownership is only recorded: an empty or unparsable owner field counts as root.
        let uid = header
            .uid()
            .ok()
            .and_then(|u| u32::try_from(u).ok())
            .unwrap_or(0);
        let gid = header
            .gid()
            .ok()
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(0);

        let Some((&base, parent)) = comps.split_last() else {
            // The root itself ("./"): only its mode matters.
            if kind.is_dir() {
                self.report.owners.insert(
                    "/".to_owned(),
                    FileMeta {
                        kind: EntryKind::Dir,
                        uid,
                        gid,
                        mode,
                    },
                );
            } else {
                self.report.skipped_other += 1;
            }
            return Ok(());
        };

        // Whiteouts.
        if let Some(victim) = base.strip_prefix(b".wh.") {
            if victim == b".wh..opq" {
                self.report.opaque_dirs += 1;
                return self.opaque(parent).map_err(|r| self.refusal(name, r));
            }
            if victim.starts_with(b".wh.") {
                // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the tree.
                self.report.skipped_other += 1;
                return Ok(());
            }
            if victim.is_empty() || victim == b"." || victim == b".." {
                return Err(self.hostile(name, "whiteout of an invalid name"));
            }
            self.report.whiteouts += 1;
            return self
                .whiteout(parent, victim)
                .map_err(|r| self.refusal(name, r));
        }

        match kind {
            T::Char | T::Block => {
                self.report.skipped_devices += 1;
                return Ok(());
            }
            T::Fifo => {
                self.report.skipped_fifos += 1;
                return Ok(());
            }
            T::Regular | T::Continuous | T::GNUSparse | T::Directory | T::Symlink | T::Link => {}
            _ => {
                self.report.skipped_other += 1;
                return Ok(());
            }
        }
        let is_file = matches!(kind, T::Regular | T::Continuous | T::GNUSparse);
        if is_file && entry.size() > self.limits.max_file_bytes {
            return Err(self.limit(name, "file size", self.limits.max_file_bytes));
        }
        let rel = join(&comps);
        let key = key_of(&rel);
        if !self.mark_written(&rel) {
            self.report.duplicates += 1;
        }
        let parent_fd = self
            .resolve_dir(parent, true)
            .map_err(|r| self.refusal(name, r))?
            .ok_or_else(|| self.hostile(name, "parent directory missing"))?;
        let effective = if self.limits.keep_setid_bits {
            mode
        } else {
            mode & !0o6000
        };
        let meta = |kind| FileMeta {
            kind,
            uid,
            gid,
            mode,
        };
        match kind {
            T::Directory => {
                self.make_dir(&parent_fd, base)
                    .map_err(|r| self.refusal(name, r))?;
                if effective != mode {
                    self.report.setid_bits_dropped += 1;
                }
                self.report.dirs += 1;
                self.report.owners.insert(key, meta(EntryKind::Dir));
            }
            T::Symlink => {
                let target = self.link_target(entry, name, "symlink")?;
                if target.contains(&0) || target.is_empty() {
                    return Err(self.hostile(name, "invalid symlink target"));
                }
                self.replace(&parent_fd, base, &key)
                    .map_err(|r| self.refusal(name, r))?;
                rustix::fs::symlinkat(target.as_slice(), &parent_fd, base)
                    .map_err(|e| self.refusal(name, e.into()))?;
                self.report.symlinks += 1;
                self.report.owners.insert(key, meta(EntryKind::Symlink));
            }
            T::Link => {
                let target = self.link_target(entry, name, "hard link")?;
                let tcomps = normalise(&target)
                    .ok_or_else(|| self.hostile(name, "hard link target climbs above the root"))?;
                let Some((&tbase, tparent)) = tcomps.split_last() else {
                    return Err(self.hostile(name, "hard link to the root"));
                };
                if tcomps == comps {
                    self.report.skipped_other += 1;
                    return Ok(());
                }
                let missing = format!("hard link to missing file {}", key_of(&join(&tcomps)));
                let src_dir = match self
                    .resolve_dir(tparent, false)
                    .map_err(|r| self.refusal(name, r))?
                {
                    Some(fd) => fd,
                    None => return Err(self.hostile(name, missing)),
                };
                match existing(&src_dir, tbase).map_err(|e| self.refusal(name, e.into()))? {
                    None => return Err(self.hostile(name, missing)),
                    Some(FileType::Directory) => {
                        return Err(self.hostile(name, "hard link to a directory"))
                    }
                    Some(_) => {}
                }
                self.replace(&parent_fd, base, &key)
                    .map_err(|r| self.refusal(name, r))?;
                rustix::fs::linkat(&src_dir, tbase, &parent_fd, base, AtFlags::empty())
                    .map_err(|e| self.refusal(name, e.into()))?;
                self.report.hardlinks += 1;
                let linked = self.report.owners.get(&key_of(&join(&tcomps))).map_or(
                    meta(EntryKind::HardLink),
                    |m| FileMeta {
                        kind: EntryKind::HardLink,
                        ..*m
                    },
                );
                self.report.owners.insert(key, linked);
            }
            _ => {
                self.replace(&parent_fd, base, &key)
                    .map_err(|r| self.refusal(name, r))?;
                let fd = rustix::fs::openat(
                    &parent_fd,
                    base,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.refusal(name, e.into()))?;
                let mut out = File::from(fd);
                let written = self.copy_entry(entry, &mut out, name)?;
                rustix::fs::fchmod(&out, Mode::from_raw_mode(effective))
                    .map_err(|e| self.refusal(name, e.into()))?;
                if effective != mode {
                    self.report.setid_bits_dropped += 1;
                }
                self.report.files += 1;
                self.report.bytes_written += written;
                self.report.owners.insert(key, meta(EntryKind::File));
            }
        }
        Ok(())
    }

    fn tar_io(&self, name: &str, cause: io::Error) -> ImageError {
        ImageError::Tar {
            layer: self.layer_digest(),
            entry: name.to_owned(),
            cause,
        }
    }

    fn copy_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        out: &mut File,
        name: &str,
    ) -> Result<u64, ImageError> {
        let limit = self.limits.max_file_bytes;
        let mut total = 0u64;
        let mut buf = std::mem::take(&mut self.buf);
        let result = loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(self.tar_io(name, e)),
            };
            total += n as u64;
            if total > limit {
                break Err(self.limit(name, "file size", limit));
            }
            if let Err(e) = out.write_all(&buf[..n]) {
                break Err(self.refusal(name, Refusal::Io(e)));
            }
        };
        self.buf = buf;
        result
    }

    /// Removes what is at `base` (unless it is the same kind we keep), and forgets it.
    fn replace(&mut self, dir: &OwnedFd, base: &[u8], key: &str) -> Result<(), Refusal> {
        if existing(dir, base)?.is_some() {
            remove_any(dir, base)?;
            forget_subtree(&mut self.report.owners, key);
        }
        Ok(())
    }

    fn make_dir(&mut self, dir: &OwnedFd, base: &[u8]) -> Result<(), Refusal> {
        match existing(dir, base)? {
            Some(FileType::Directory) => Ok(()),
            Some(_) => {
                rustix::fs::unlinkat(dir, base, AtFlags::empty())?;
                Ok(rustix::fs::mkdirat(dir, base, Mode::from_raw_mode(0o700))?)
            }
            None => Ok(rustix::fs::mkdirat(dir, base, Mode::from_raw_mode(0o700))?),
        }
    }

    /// Opens a directory of the tree, resolved beneath the root (symlinks in
    /// it resolve as in a chroot). With `create`, missing directories are made.
    fn resolve_dir(&mut self, comps: &[&[u8]], create: bool) -> Result<Option<OwnedFd>, Refusal> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        let path = if comps.is_empty() {
            b".".to_vec()
        } else {
            join(comps)
        };
        match openat2_retry(&self.root, &path, flags, IN_ROOT) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) if create => self.create_dirs(comps).map(Some),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::NOTDIR) => Err(Refusal::Hostile(format!(
                "{} is not a directory",
                key_of(&path)
            ))),
            Err(Errno::LOOP) => Err(Refusal::Hostile(format!(
                "too many symlinks resolving {}",
                key_of(&path)
            ))),
            Err(Errno::NOSYS) => Err(Refusal::Io(io::Error::other(
                "openat2 is not available (linux 5.6 or later is needed)",
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn create_dirs(&mut self, comps: &[&[u8]]) -> Result<OwnedFd, Refusal> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        let mut cur = openat2_retry(&self.root, b".", flags, IN_ROOT)?;
        for i in 0..comps.len() {
            let prefix = join(&comps[..=i]);
            match openat2_retry(&self.root, &prefix, flags, IN_ROOT) {
                Ok(fd) => cur = fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, comps[i], Mode::from_raw_mode(0o700)) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => {
                            return Err(Refusal::Hostile(format!(
                                "{} is a symlink to a missing directory",
                                key_of(&prefix)
                            )))
                        }
                        Err(e) => return Err(e.into()),
                    }
                    self.mark_written(&prefix);
                    self.report.owners.insert(
                        key_of(&prefix),
                        FileMeta {
                            kind: EntryKind::Dir,
                            uid: 0,
                            gid: 0,
                            mode: 0o755,
                        },
                    );
                    self.report.dirs += 1;
                    cur = openat2_retry(&self.root, &prefix, flags, IN_ROOT)?;
                }
                Err(Errno::NOTDIR) => {
                    return Err(Refusal::Hostile(format!(
                        "{} is not a directory",
                        key_of(&prefix)
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(cur)
    }

    fn whiteout(&mut self, parent: &[&[u8]], victim: &[u8]) -> Result<(), Refusal> {
        let Some(dir) = self.resolve_dir(parent, false)? else {
            return Ok(());
        };
        remove_any(&dir, victim)?;
        let mut comps = parent.to_vec();
        comps.push(victim);
        forget_subtree(&mut self.report.owners, &key_of(&join(&comps)));
        Ok(())
    }

    /// Hides everything in `parent` that lower layers put there: every child
    /// not written by the current layer goes; written children that are
    /// directories are cleared the same way.
    fn opaque(&mut self, parent: &[&[u8]]) -> Result<(), Refusal> {
        let path = if parent.is_empty() {
            b".".to_vec()
        } else {
            join(parent)
        };
        let dir = match openat2_retry(
            &self.root,
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY,
            IN_ROOT,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(Errno::NOTDIR) => {
                return Err(Refusal::Hostile(format!(
                    "{} is not a directory",
                    key_of(&path)
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let rel = if parent.is_empty() { Vec::new() } else { path };
        self.clear_lower(&dir, &rel)
    }

    fn clear_lower(&mut self, dir: &OwnedFd, rel: &[u8]) -> Result<(), Refusal> {
        for (child, ft) in list_dir(dir)? {
            let mut child_rel = rel.to_vec();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(&child);
            if !self.layer_paths.contains(&child_rel) {
                remove_any(dir, &child)?;
                forget_subtree(&mut self.report.owners, &key_of(&child_rel));
            } else if ft == FileType::Directory {
                let sub = rustix::fs::openat(
                    dir,
                    child.as_slice(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.clear_lower(&sub, &child_rel)?;
            }
        }
        Ok(())
    }

    /// Gives directories their final modes (they were created `0700` so
    /// that read-only directories cannot block later entries), deepest first.
    fn finish_modes(&mut self) -> Result<(), ImageError> {
        let keep = self.limits.keep_setid_bits;
        for (key, meta) in self.report.owners.iter().rev() {
            if meta.kind != EntryKind::Dir {
                continue;
            }
            let mode = if keep { meta.mode } else { meta.mode & !0o6000 };
            let rel = key.trim_start_matches('/');
            let rel = if rel.is_empty() { "." } else { rel };
            let fd = match openat2_retry(
                &self.root,
                rel.as_bytes(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            ) {
                Ok(fd) => fd,
                // Non-UTF-8 names are keyed lossily; skip what cannot be found again.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(ImageError::io(key, e.into())),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|e| ImageError::io(key, e.into()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_beneath_the_root() {
        let n = |s: &str| {
            normalise(s.as_bytes()).map(|c| String::from_utf8_lossy(&join(&c)).into_owned())
        };
        assert_eq!(n("/etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(n("./a/./b/../c").as_deref(), Some("a/c"));
        assert_eq!(n("a/../../x"), None);
        assert_eq!(n("../x"), None);
        assert_eq!(n("./").as_deref(), Some(""));
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/"), Compression::None);
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            Compression::Zstd
        );
    }

    #[test]
    fn forgets_subtrees_only() {
        let m = FileMeta {
            kind: EntryKind::File,
            uid: 0,
            gid: 0,
            mode: 0o644,
        };
        let mut map: BTreeMap<String, FileMeta> = ["/a", "/a/b", "/a/b/c", "/a.txt", "/a0", "/ab"]
            .iter()
            .map(|k| ((*k).to_owned(), m))
            .collect();
        forget_subtree(&mut map, "/a");
        assert_eq!(
            map.keys().cloned().collect::<Vec<_>>(),
            vec!["/a.txt", "/a0", "/ab"]
        );
    }
}
