//! The rpm database in its sqlite form (`rpmdb.sqlite`, rpm ≥ 4.16: table
//! `Packages(hnum, blob)`), each blob an rpm header: a big-endian index
//! count and data length, that many 16-byte index entries (tag, type,
//! offset, count) and the data store they point into.
//!
//! The database is read through [`RootFs`] with a size bound and opened in
//! memory (sqlite never touches the image). The Berkeley DB `Packages` and
//! the ndb `Packages.db` formats are not supported: finding one is a warning.

use std::collections::BTreeSet;

use rusqlite::{Connection, OpenFlags, MAIN_DB};
use vexxy_model::{Ecosystem, Package, Purl, SourcePackage};
use vexxy_rootfs::RootFs;

use crate::{files::FileResolver, Distro};

/// Where rpm keeps its sqlite database (older and newer layouts).
pub const RPM_SQLITE: [&str; 2] = [
    "/var/lib/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
];
/// Unsupported rpm databases: Berkeley DB and ndb.
pub const RPM_UNSUPPORTED: [&str; 4] = [
    "/var/lib/rpm/Packages",
    "/var/lib/rpm/Packages.db",
    "/usr/lib/sysimage/rpm/Packages",
    "/usr/lib/sysimage/rpm/Packages.db",
];
/// Largest rpm sqlite database read (512 MiB).
pub const RPM_DB_LIMIT: u64 = 512 << 20;
/// Largest header blob parsed (64 MiB).
const BLOB_LIMIT: usize = 64 << 20;
/// Most index entries in one header.
const MAX_ENTRIES: usize = 1 << 16;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_ARCH: u32 = 1022;
const TAG_OLDFILENAMES: u32 = 1027;
const TAG_SOURCERPM: u32 = 1044;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// Whether the image has an rpm database of any kind.
pub(crate) fn present(root: &RootFs) -> bool {
    RPM_SQLITE
        .iter()
        .chain(RPM_UNSUPPORTED.iter())
        .any(|p| root.exists(p))
}

/// The fields of one header that vexxy uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) release: String,
    pub(crate) epoch: Option<u32>,
    pub(crate) arch: Option<String>,
    pub(crate) source_rpm: Option<String>,
    pub(crate) files: Vec<String>,
}

/// An index entry.
struct IndexEntry {
    tag: u32,
    ty: u32,
    offset: usize,
    count: usize,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Parses a header blob as stored in the database (no lead, no magic).
pub(crate) fn parse_header(blob: &[u8]) -> Result<Header, String> {
    if blob.len() > BLOB_LIMIT {
        return Err(format!("header of {} bytes is too large", blob.len()));
    }
    let il = be32(blob, 0).ok_or("header shorter than 8 bytes")? as usize;
    let dl = be32(blob, 4).ok_or("header shorter than 8 bytes")? as usize;
    if il > MAX_ENTRIES {
        return Err(format!("{il} index entries is too many"));
    }
    let data_start = 8 + il * 16;
    let data = data_start
        .checked_add(dl)
        .and_then(|end| blob.get(data_start..end))
        .ok_or_else(|| {
            format!(
                "{il} entries and {dl} data bytes do not fit in {} bytes",
                blob.len()
            )
        })?;
    let mut entries = Vec::with_capacity(il);
    for i in 0..il {
        let at = 8 + i * 16;
        let field = |k: usize| be32(blob, at + 4 * k).ok_or("truncated index entry");
        entries.push(IndexEntry {
            tag: field(0)?,
            ty: field(1)?,
            offset: field(2)? as usize,
            count: field(3)? as usize,
        });
    }
    let find = |tag: u32| entries.iter().find(|e| e.tag == tag);
    let strings = |tag: u32| -> Result<Option<Vec<String>>, String> {
        let Some(e) = find(tag) else { return Ok(None) };
        let n = match e.ty {
            TYPE_STRING => 1,
            TYPE_STRING_ARRAY | TYPE_I18NSTRING => e.count,
            other => return Err(format!("tag {tag} has type {other}, not a string")),
        };
        if n > dl {
            return Err(format!("tag {tag}: {n} strings in {dl} data bytes"));
        }
        let mut out = Vec::with_capacity(n);
        let mut pos = e.offset;
        for _ in 0..n {
            let rest = data
                .get(pos..)
                .ok_or_else(|| format!("tag {tag}: offset {pos} beyond the data"))?;
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| format!("tag {tag}: unterminated string"))?;
            out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            pos += end + 1;
        }
        Ok(Some(out))
    };
    let string = |tag: u32| -> Result<Option<String>, String> {
        Ok(strings(tag)?.and_then(|v| v.into_iter().next()))
    };
    let ints = |tag: u32| -> Result<Option<Vec<u32>>, String> {
        let Some(e) = find(tag) else { return Ok(None) };
        if e.ty != TYPE_INT32 {
            return Err(format!("tag {tag} has type {}, not int32", e.ty));
        }
        let bytes = e
            .count
            .checked_mul(4)
            .and_then(|len| data.get(e.offset..e.offset.checked_add(len)?))
            .ok_or_else(|| format!("tag {tag}: {} integers beyond the data", e.count))?;
        Ok(Some(
            bytes
                .chunks_exact(4)
                .filter_map(|c| c.try_into().ok().map(u32::from_be_bytes))
                .collect(),
        ))
    };
    let name = string(TAG_NAME)?
        .filter(|n| !n.is_empty())
        .ok_or("no name")?;
    let version = string(TAG_VERSION)?
        .filter(|v| !v.is_empty())
        .ok_or("no version")?;
    let release = string(TAG_RELEASE)?.unwrap_or_default();
    let epoch = ints(TAG_EPOCH)?.and_then(|v| v.first().copied());
    let arch = string(TAG_ARCH)?.filter(|a| !a.is_empty());
    let source_rpm = string(TAG_SOURCERPM)?.filter(|s| !s.is_empty() && s != "(none)");
    let mut files = Vec::new();
    match (
        strings(TAG_BASENAMES)?,
        strings(TAG_DIRNAMES)?,
        ints(TAG_DIRINDEXES)?,
    ) {
        (Some(base), Some(dirs), Some(idx)) => {
            if base.len() != idx.len() {
                return Err(format!(
                    "{} basenames but {} dir indexes",
                    base.len(),
                    idx.len()
                ));
            }
            for (b, i) in base.iter().zip(idx) {
                let dir = dirs
                    .get(i as usize)
                    .ok_or_else(|| format!("dir index {i} out of {} dirnames", dirs.len()))?;
                files.push(format!("{dir}{b}"));
            }
        }
        (None, _, _) => {
            if let Some(old) = strings(TAG_OLDFILENAMES)? {
                files = old;
            }
        }
        _ => return Err("basenames without dirnames or dir indexes".to_owned()),
    }
    Ok(Header {
        name,
        version,
        release,
        epoch,
        arch,
        source_rpm,
        files,
    })
}

/// Catalogs the rpm packages; problems become warnings naming the file.
pub(crate) fn catalog(
    root: &RootFs,
    distro: Option<&Distro>,
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    for path in RPM_UNSUPPORTED {
        if root.is_file(path) {
            warnings.push(format!(
                "{path}: berkeley db and ndb rpm databases are not supported; packages only recorded there are not cataloged"
            ));
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for path in RPM_SQLITE {
        let Ok(canonical) = root.canonical(path) else {
            continue;
        };
        if !seen.insert(canonical) {
            continue;
        }
        match read_sqlite(root, path) {
            Ok(headers) => {
                for (hnum, header) in headers {
                    match header {
                        Ok(h) if h.name == "gpg-pubkey" => {}
                        Ok(h) => out.push(to_package(h, distro, resolver)),
                        Err(e) => warnings.push(format!("{path}: package header {hnum}: {e}")),
                    }
                }
            }
            Err(e) => warnings.push(format!("{path}: {e}")),
        }
    }
    out.sort_by(|a, b| {
        (&a.name, &a.architecture, &a.version).cmp(&(&b.name, &b.architecture, &b.version))
    });
    out
}

type Headers = Vec<(i64, Result<Header, String>)>;

fn read_sqlite(root: &RootFs, path: &str) -> Result<Headers, String> {
    let mut bytes = root
        .read(path, RPM_DB_LIMIT)
        .map_err(|e| format!("cannot read: {e}"))?;
    if !bytes.starts_with(b"SQLite format 3\0") || bytes.len() < 100 {
        return Err("not an sqlite database".to_owned());
    }
    // A WAL-mode file (read/write versions 2) cannot be opened from
    // memory; as a plain byte image it reads like a rollback-journal one.
    if bytes[18] == 2 && bytes[19] == 2 {
        bytes[18] = 1;
        bytes[19] = 1;
    }
    let len = bytes.len();
    let mut conn = Connection::open_with_flags(
        ":memory:",
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("sqlite: {e}"))?;
    conn.deserialize_read_exact(MAIN_DB, bytes.as_slice(), len, true)
        .map_err(|e| format!("sqlite: {e}"))?;
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages")
        .map_err(|e| format!("sqlite: {e}"))?;
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .map_err(|e| format!("sqlite: {e}"))?;
    let mut out = Vec::new();
    for row in rows {
        let (hnum, blob) = row.map_err(|e| format!("sqlite: {e}"))?;
        out.push((hnum, parse_header(&blob)));
    }
    Ok(out)
}

fn to_package(h: Header, distro: Option<&Distro>, resolver: &mut FileResolver<'_>) -> Package {
    let evr = if h.release.is_empty() {
        h.version.clone()
    } else {
        format!("{}-{}", h.version, h.release)
    };
    let version = match h.epoch {
        Some(e) => format!("{e}:{evr}"),
        None => evr.clone(),
    };
    let namespace = distro.map(|d| {
        if d.id == "rhel" {
            "redhat"
        } else {
            d.id.as_str()
        }
    });
    let mut purl = Purl::new("rpm", namespace, &h.name, Some(&evr)).ok();
    if let Some(p) = purl.take() {
        let mut p = p;
        if let Some(a) = &h.arch {
            p = p.with_qualifier("arch", a);
        }
        if let Some(e) = h.epoch {
            p = p.with_qualifier("epoch", &e.to_string());
        }
        if let Some(s) = &h.source_rpm {
            p = p.with_qualifier("upstream", s);
        }
        if let Some(d) = distro {
            let value = match &d.version_id {
                Some(v) => format!("{}-{v}", d.id),
                None => d.id.clone(),
            };
            p = p.with_qualifier("distro", &value);
        }
        purl = Some(p);
    }
    let mut files = BTreeSet::new();
    for f in &h.files {
        resolver.add(f, &mut files);
    }
    let mut p = Package::new(&h.name, version, Ecosystem::Rpm);
    p.source = h.source_rpm.as_deref().and_then(source_of);
    p.architecture = h.arch;
    p.purl = purl;
    p.files = files;
    p
}

/// `openssl-3.0.7-27.el9.src.rpm` → (`openssl`, `3.0.7-27.el9`).
fn source_of(srpm: &str) -> Option<SourcePackage> {
    let stem = srpm
        .strip_suffix(".src.rpm")
        .or_else(|| srpm.strip_suffix(".nosrc.rpm"))?;
    let (rest, release) = stem.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    (!name.is_empty()).then(|| SourcePackage {
        name: name.to_owned(),
        version: Some(format!("{version}-{release}")),
    })
}

/// Builds a header blob from (tag, type, count, data) entries, for tests.
#[cfg(test)]
pub(crate) fn build_header(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut store = Vec::new();
    for (tag, ty, count, data) in entries {
        if *ty == TYPE_INT32 {
            while store.len() & 3 != 0 {
                store.push(0);
            }
        }
        for v in [*tag, *ty, store.len() as u32, *count] {
            index.extend_from_slice(&v.to_be_bytes());
        }
        store.extend_from_slice(data);
    }
    let mut blob = Vec::new();
    blob.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    blob.extend_from_slice(&(store.len() as u32).to_be_bytes());
    blob.extend_from_slice(&index);
    blob.extend_from_slice(&store);
    blob
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> (u32, Vec<u8>) {
        (TYPE_STRING, format!("{v}\0").into_bytes())
    }
    fn arr(v: &[&str]) -> (u32, Vec<u8>) {
        (
            TYPE_STRING_ARRAY,
            v.iter()
                .flat_map(|x| format!("{x}\0").into_bytes())
                .collect(),
        )
    }
    fn ints(v: &[u32]) -> (u32, Vec<u8>) {
        (TYPE_INT32, v.iter().flat_map(|x| x.to_be_bytes()).collect())
    }
    fn entry(tag: u32, (ty, data): (u32, Vec<u8>), count: u32) -> (u32, u32, u32, Vec<u8>) {
        (tag, ty, count, data)
    }

    #[test]
    fn parses_a_header() {
        let blob = build_header(&[
            entry(TAG_NAME, s("openssl-libs"), 1),
            entry(TAG_VERSION, s("3.0.7"), 1),
            entry(TAG_RELEASE, s("27.el9"), 1),
            entry(TAG_EPOCH, ints(&[1]), 1),
            entry(TAG_ARCH, s("x86_64"), 1),
            entry(TAG_SOURCERPM, s("openssl-3.0.7-27.el9.src.rpm"), 1),
            entry(
                TAG_BASENAMES,
                arr(&["libssl.so.3", "libcrypto.so.3", "README"]),
                3,
            ),
            entry(
                TAG_DIRNAMES,
                arr(&["/usr/lib64/", "/usr/share/doc/openssl/"]),
                2,
            ),
            entry(TAG_DIRINDEXES, ints(&[0, 0, 1]), 3),
        ]);
        let h = parse_header(&blob).expect("parses");
        assert_eq!(
            (
                h.name.as_str(),
                h.version.as_str(),
                h.release.as_str(),
                h.epoch,
                h.arch.as_deref()
            ),
            ("openssl-libs", "3.0.7", "27.el9", Some(1), Some("x86_64"))
        );
        assert_eq!(
            h.files,
            [
                "/usr/lib64/libssl.so.3",
                "/usr/lib64/libcrypto.so.3",
                "/usr/share/doc/openssl/README"
            ]
        );
        assert_eq!(
            source_of("openssl-3.0.7-27.el9.src.rpm"),
            Some(SourcePackage {
                name: "openssl".into(),
                version: Some("3.0.7-27.el9".into())
            })
        );
        assert_eq!(source_of("garbage"), None);
    }

    #[test]
    fn malformed_headers_are_errors() {
        let name = entry(TAG_NAME, s("a"), 1);
        let version = entry(TAG_VERSION, s("1"), 1);
        let mut lying = build_header(&[name.clone(), version.clone()]);
        lying[3] = 200; // 200 index entries claimed
        let mut unterminated = build_header(&[name.clone(), version.clone()]);
        let last = unterminated.len() - 1;
        unterminated[last] = b'x';
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "shorter than 8 bytes"),
            (
                "too many entries",
                vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
                "too many",
            ),
            ("lying counts", lying, "do not fit"),
            (
                "no name",
                build_header(std::slice::from_ref(&version)),
                "no name",
            ),
            (
                "no version",
                build_header(std::slice::from_ref(&name)),
                "no version",
            ),
            ("unterminated", unterminated, "unterminated string"),
            (
                "name is an int",
                build_header(&[entry(TAG_NAME, ints(&[1]), 1)]),
                "not a string",
            ),
            (
                "epoch beyond data",
                build_header(&[
                    name.clone(),
                    version.clone(),
                    entry(TAG_EPOCH, ints(&[1]), 9),
                ]),
                "beyond the data",
            ),
            (
                "dir index out of range",
                build_header(&[
                    name.clone(),
                    version.clone(),
                    entry(TAG_BASENAMES, arr(&["x"]), 1),
                    entry(TAG_DIRNAMES, arr(&["/"]), 1),
                    entry(TAG_DIRINDEXES, ints(&[5]), 1),
                ]),
                "dir index 5",
            ),
            (
                "index count mismatch",
                build_header(&[
                    name.clone(),
                    version.clone(),
                    entry(TAG_BASENAMES, arr(&["x", "y"]), 2),
                    entry(TAG_DIRNAMES, arr(&["/"]), 1),
                    entry(TAG_DIRINDEXES, ints(&[0]), 1),
                ]),
                "2 basenames but 1",
            ),
            (
                "huge string count",
                build_header(&[
                    name.clone(),
                    version.clone(),
                    entry(TAG_BASENAMES, arr(&["x"]), u32::MAX),
                ]),
                "strings in",
            ),
        ];
        for (what, blob, needle) in cases {
            let err = parse_header(&blob).expect_err(what);
            assert!(err.contains(needle), "{what}: {err}");
        }
    }
}
