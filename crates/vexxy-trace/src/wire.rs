//! Decoding of the records and map keys the BPF side writes.
//!
//! No layout is written down here: the structs are the types libbpf-cargo
//! generates into the skeleton from the BPF object's BTF (`skel::types`,
//! from `src/bpf/trace.h`), and so are the constants (the enums of
//! `trace.h`). `read_struct!` fills a generated type field by field, each
//! from the offset the compiler gave it: safe code, because the generated
//! types implement no `Plain`-like trait to cast bytes into, and the crate
//! allows `unsafe` in the generated skeleton alone. A record too short for
//! its type, or of an unknown type, is rejected, never trusted. The bytes
//! are the kernel's, so native-endian.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vexxy_model::{SocketAddress, SocketOp};

use crate::skel::types::{self, event_kind, net_op, path_flag};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A plain value read from the bytes of a record.
pub(crate) trait FromBytes: Sized {
    /// Reads the value at the start of `bytes`; `None` when too short.
    fn read(bytes: &[u8]) -> Option<Self>;
}

macro_rules! from_ne_bytes {
    ($($t:ty),*) => {$(
        impl FromBytes for $t {
            fn read(bytes: &[u8]) -> Option<Self> {
                Some(<$t>::from_ne_bytes(bytes.get(..size_of::<$t>())?.try_into().ok()?))
            }
        }
    )*};
}
from_ne_bytes!(u8, i8, u16, u32, i32, u64);

impl<T: FromBytes + Copy + Default, const N: usize> FromBytes for [T; N] {
    fn read(bytes: &[u8]) -> Option<Self> {
        let mut out = [T::default(); N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = T::read(bytes.get(i.checked_mul(size_of::<T>())?..)?)?;
        }
        Some(out)
    }
}

/// Reads the generated type `types::$ty` from `$bytes`, every field at its
/// own offset (`offset_of!`) and of its own type. The struct expression names
/// every field, so a field added to, renamed in or removed from the C
/// struct fails to compile here rather than being read wrong.
macro_rules! read_struct {
    ($ty:ident, $bytes:expr, { $($field:ident),* $(,)? }) => {{
        let bytes: &[u8] = $bytes;
        (|| -> Option<types::$ty> {
            if bytes.len() < size_of::<types::$ty>() {
                return None;
            }
            Some(types::$ty {
                $($field: FromBytes::read(bytes.get(offset_of!(types::$ty, $field)..)?)?,)*
            })
        })()
    }};
}

/// Where a ring-buffer record's body starts: records are built in
/// `struct scratch`, header first, body in `data`.
pub(crate) const EVENT_BODY: usize = offset_of!(types::scratch, data);

/// Reads a `u64` map value or key.
pub(crate) fn read_u64(bytes: &[u8]) -> Option<u64> {
    u64::read(bytes)
}

/// The identity of a file in the kernel's aggregation map: the values of a
/// `types::file_key`, hashable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub(crate) dentry: u64,
    pub(crate) ino: u64,
    pub(crate) name_hash: u32,
    pub(crate) kind: u32,
    pub(crate) slot: u32,
}

impl From<types::file_key> for FileKey {
    fn from(k: types::file_key) -> Self {
        let types::file_key {
            dentry,
            ino,
            name_hash,
            kind,
            slot,
            pad: _,
        } = k;
        Self {
            dentry,
            ino,
            name_hash,
            kind,
            slot,
        }
    }
}

impl FileKey {
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        read_struct!(file_key, bytes, { dentry, ino, name_hash, kind, slot, pad }).map(Self::from)
    }
}

/// One key of the `failed` map: a failed-open name's hash in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FailedKey {
    pub(crate) hash: u64,
    pub(crate) slot: u32,
}

impl FailedKey {
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        read_struct!(failed_key, bytes, { hash, slot, pad }).map(|k| Self {
            hash: k.hash,
            slot: k.slot,
        })
    }
}

/// One key of the `symbol_calls` map: a probe's cookie in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SymbolKey {
    pub(crate) slot: u32,
    pub(crate) cookie: u32,
}

impl SymbolKey {
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        read_struct!(symbol_key, bytes, { slot, cookie }).map(|k| Self {
            slot: k.slot,
            cookie: k.cookie,
        })
    }

    /// The key's bytes as the map holds them.
    pub(crate) fn encode(self) -> Vec<u8> {
        let mut out = vec![0u8; size_of::<types::symbol_key>()];
        out[offset_of!(types::symbol_key, slot)..][..4].copy_from_slice(&self.slot.to_ne_bytes());
        out[offset_of!(types::symbol_key, cookie)..][..4]
            .copy_from_slice(&self.cookie.to_ne_bytes());
        out
    }
}

/// The bytes of a `control` value.
pub(crate) fn encode_control(generation: u32, armed: u32) -> Vec<u8> {
    let mut out = vec![0u8; size_of::<types::control>()];
    out[offset_of!(types::control, generation)..][..4].copy_from_slice(&generation.to_ne_bytes());
    out[offset_of!(types::control, armed)..][..4].copy_from_slice(&armed.to_ne_bytes());
    out
}

/// The name of x86_64 syscall `nr` (`syscall_N` for a number the table
/// does not know), as the profile keys syscall counts.
pub(crate) fn syscall_name(nr: usize) -> String {
    syscalls::Sysno::new(nr).map_or_else(|| format!("syscall_{nr}"), |s| s.name().to_owned())
}

/// One ring-buffer record.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) header: types::event_header,
    /// `header.comm` up to its NUL.
    pub(crate) comm: String,
    pub(crate) body: Vec<u8>,
}

impl Event {
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let header = read_struct!(event_header, bytes, {
            r#type, len, slot, pad, pid, ns_pid, ns_ppid, code, a, b, c, d, comm,
        })?;
        if !(event_kind::EV_PATH.0..=event_kind::EV_SYMBOL.0).contains(&header.r#type) {
            return None;
        }
        let len = usize::try_from(header.len).ok()?;
        let body_end = EVENT_BODY.checked_add(len)?.min(bytes.len());
        let body = bytes.get(EVENT_BODY..body_end).unwrap_or_default().to_vec();
        let comm: Vec<u8> = header
            .comm
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| c.to_ne_bytes()[0])
            .collect();
        Some(Self {
            header,
            comm: String::from_utf8_lossy(&comm).into_owned(),
            body,
        })
    }

    /// The record's type.
    pub(crate) fn kind(&self) -> event_kind {
        event_kind(self.header.r#type)
    }

    /// The file key of an `EV_PATH` record.
    pub(crate) fn file_key(&self) -> FileKey {
        FileKey {
            dentry: self.header.a,
            ino: self.header.b,
            name_hash: self.header.c,
            kind: self.header.d,
            slot: self.header.slot,
        }
    }

    /// The path of an `EV_PATH`/`EV_EXEC` record: components arrive leaf
    /// first, each NUL-terminated.
    pub(crate) fn path(&self) -> String {
        components_to_path(&self.body)
    }

    /// The name of an `EV_FAILED` record.
    pub(crate) fn name(&self) -> String {
        let end = self
            .body
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(self.body.len());
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }

    pub(crate) fn truncated(&self) -> bool {
        self.header.code & path_flag::PATH_TRUNCATED.0 as i32 != 0
    }
}

/// Joins leaf-first, NUL-terminated components into an absolute path.
pub(crate) fn components_to_path(body: &[u8]) -> String {
    let mut parts: Vec<&[u8]> = body.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
    // A component read as "/" is a filesystem root's own name; skip it.
    parts.retain(|p| *p != b"/");
    parts.reverse();
    let mut path = String::with_capacity(body.len() + 1);
    for part in parts {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(part));
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// One key of the `net` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetKey {
    pub(crate) slot: u32,
    pub(crate) op: SocketOp,
    pub(crate) ok: bool,
    pub(crate) address: SocketAddress,
}

impl NetKey {
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let key = read_struct!(net_key, bytes, { op, ok, family, port, slot, addr })?;
        let op = match net_op(u32::from(key.op)) {
            net_op::OP_CONNECT => SocketOp::Connect,
            net_op::OP_BIND => SocketOp::Bind,
            net_op::OP_ACCEPT => SocketOp::Accept,
            _ => return None,
        };
        let port = key.port;
        let addr = &key.addr;
        let address = match key.family {
            AF_INET => SocketAddress::Inet(
                IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
                port,
            ),
            AF_INET6 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&addr[..16]);
                let v6 = Ipv6Addr::from(octets);
                // A v4-mapped peer (dual-stack listener) is reported as v4.
                let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
                SocketAddress::Inet(ip, port)
            }
            AF_UNIX => {
                let path = if addr[0] == 0 {
                    let end = addr[1..]
                        .iter()
                        .position(|b| *b == 0)
                        .map_or(addr.len(), |p| p + 1);
                    format!("@{}", String::from_utf8_lossy(&addr[1..end]))
                } else {
                    let end = addr.iter().position(|b| *b == 0).unwrap_or(addr.len());
                    String::from_utf8_lossy(&addr[..end]).into_owned()
                };
                SocketAddress::Unix(path)
            }
            other => SocketAddress::Other(other),
        };
        Some(Self {
            slot: u32::from(key.slot),
            op,
            ok: key.ok != 0,
            address,
        })
    }
}

/// Sums a per-CPU `u64` value.
pub(crate) fn sum_per_cpu(values: &[Vec<u8>]) -> u64 {
    values.iter().filter_map(|v| read_u64(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV_PATH: u32 = event_kind::EV_PATH.0;
    const EV_FAILED: u32 = event_kind::EV_FAILED.0;
    const KIND_OPEN: u32 = types::file_kind::KIND_OPEN.0;
    const NET_KEY_LEN: usize = size_of::<types::net_key>();

    fn header(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&(body.len() as u32).to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes()); // slot
        b.extend_from_slice(&0u32.to_le_bytes());
        for v in [7u32, 1, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&2i32.to_le_bytes());
        b.extend_from_slice(&0xdeadu64.to_le_bytes());
        b.extend_from_slice(&42u64.to_le_bytes());
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&KIND_OPEN.to_le_bytes());
        let mut comm = [0u8; 16];
        comm[..5].copy_from_slice(b"nginx");
        b.extend_from_slice(&comm);
        b.extend_from_slice(body);
        b
    }

    /// The Rust view of the wire (the types generated from BTF, read at
    /// their `offset_of!`) against the compiler's own sizes and offsets,
    /// which the object carries in `.rodata` (`wire_layout` in
    /// trace.bpf.c), and against the key and value sizes libbpf gives the
    /// maps. Opening the object loads nothing into the kernel, so this
    /// needs no privileges.
    #[test]
    fn generated_types_match_the_compiled_layout() {
        use libbpf_rs::skel::SkelBuilder;

        let mut storage = std::mem::MaybeUninit::uninit();
        let open = crate::skel::TraceSkelBuilder::default()
            .open(&mut storage)
            .expect("open the BPF object");
        let rodata = open
            .maps
            .rodata_data
            .as_deref()
            .expect("the object's .rodata");
        let l = &rodata.wire_layout;
        let n = |v: u32| usize::try_from(v).unwrap();

        macro_rules! same_layout {
            ($ty:ident, $size:ident, { $($field:ident => $c:ident),* $(,)? }) => {
                assert_eq!(n(l.$size), size_of::<types::$ty>(), concat!("size of ", stringify!($ty)));
                $(assert_eq!(
                    n(l.$c),
                    offset_of!(types::$ty, $field),
                    concat!("offset of ", stringify!($ty), ".", stringify!($field)),
                );)*
            };
        }
        same_layout!(event_header, event_header_size, {
            r#type => event_header_type,
            len => event_header_len,
            slot => event_header_slot,
            pid => event_header_pid,
            ns_pid => event_header_ns_pid,
            ns_ppid => event_header_ns_ppid,
            code => event_header_code,
            a => event_header_a,
            b => event_header_b,
            c => event_header_c,
            d => event_header_d,
            comm => event_header_comm,
        });
        same_layout!(file_key, file_key_size, {
            dentry => file_key_dentry,
            ino => file_key_ino,
            name_hash => file_key_name_hash,
            kind => file_key_kind,
            slot => file_key_slot,
        });
        same_layout!(failed_key, failed_key_size, {
            hash => failed_key_hash,
            slot => failed_key_slot,
        });
        same_layout!(symbol_key, symbol_key_size, {
            slot => symbol_key_slot,
            cookie => symbol_key_cookie,
        });
        same_layout!(control, control_size, {
            generation => control_generation,
            armed => control_armed,
        });
        same_layout!(net_key, net_key_size, {
            op => net_key_op,
            ok => net_key_ok,
            family => net_key_family,
            port => net_key_port,
            slot => net_key_slot,
            addr => net_key_addr,
        });
        assert_eq!(n(l.event_body), EVENT_BODY);
        // The BPF side sends `sizeof(struct event_header) + len` bytes from
        // the start of `struct scratch`: the body must follow the header.
        assert_eq!(EVENT_BODY, size_of::<types::event_header>());
        // `Event::decode` accepts kinds up to EV_SYMBOL, and `read_out`
        // reads the counters below ST_COUNT: the last of each, in C.
        assert_eq!(l.event_kind, event_kind::EV_SYMBOL);
        assert_eq!(l.stat_index, types::stat_index::ST_COUNT);

        let maps = &open.maps;
        let sizes = |m: &libbpf_rs::OpenMapMut<'_>| (n(m.key_size()), n(m.value_size()));
        assert_eq!(sizes(&maps.files), (size_of::<types::file_key>(), 8));
        assert_eq!(sizes(&maps.net), (size_of::<types::net_key>(), 8));
        assert_eq!(sizes(&maps.failed), (size_of::<types::failed_key>(), 8));
        assert_eq!(sizes(&maps.stats), (4, 8));
        assert_eq!(sizes(&maps.syscalls), (4, 8));
        assert_eq!(
            sizes(&maps.symbol_calls),
            (size_of::<types::symbol_key>(), 8)
        );
        assert_eq!(sizes(&maps.targets), (4, 4));
        assert_eq!(sizes(&maps.control), (4, size_of::<types::control>()));
        assert_eq!(
            n(maps.scratch_map.value_size()),
            size_of::<types::scratch>()
        );
        assert_eq!(
            n(maps.stats.max_entries()),
            n(types::stat_index::ST_COUNT.0) * crate::hub::MAX_SLOTS
        );
        assert_eq!(
            n(maps.syscalls.max_entries()),
            crate::hub::MAX_SYSCALLS * crate::hub::MAX_SLOTS
        );
        assert_eq!(n(maps.targets.max_entries()), crate::hub::MAX_SLOTS);
    }

    /// A record read through the generated type gives back every field
    /// written at the offsets the compiler chose.
    #[test]
    fn reads_every_field_at_its_generated_offset() {
        let mut rec = vec![0u8; EVENT_BODY + 3];
        let mut put = |at: usize, bytes: &[u8]| rec[at..at + bytes.len()].copy_from_slice(bytes);
        put(
            offset_of!(types::event_header, r#type),
            &event_kind::EV_EXIT.0.to_ne_bytes(),
        );
        put(offset_of!(types::event_header, len), &3u32.to_ne_bytes());
        put(offset_of!(types::event_header, slot), &5u32.to_ne_bytes());
        put(offset_of!(types::event_header, pid), &11u32.to_ne_bytes());
        put(
            offset_of!(types::event_header, ns_pid),
            &12u32.to_ne_bytes(),
        );
        put(
            offset_of!(types::event_header, ns_ppid),
            &13u32.to_ne_bytes(),
        );
        put(
            offset_of!(types::event_header, code),
            &(-14i32).to_ne_bytes(),
        );
        put(offset_of!(types::event_header, a), &15u64.to_ne_bytes());
        put(offset_of!(types::event_header, b), &16u64.to_ne_bytes());
        put(offset_of!(types::event_header, c), &17u32.to_ne_bytes());
        put(offset_of!(types::event_header, d), &18u32.to_ne_bytes());
        put(offset_of!(types::event_header, comm), b"sh\0");
        put(EVENT_BODY, b"x\0y");
        let ev = Event::decode(&rec).unwrap();
        let h = ev.header;
        assert_eq!(ev.kind(), event_kind::EV_EXIT);
        assert_eq!(
            (h.len, h.pid, h.ns_pid, h.ns_ppid, h.code, h.a, h.b, h.c, h.d),
            (3, 11, 12, 13, -14, 15, 16, 17, 18)
        );
        assert_eq!(ev.comm, "sh");
        assert_eq!(h.slot, 5);
        assert_eq!(ev.body, b"x\0y");
        assert!(Event::decode(&rec[..EVENT_BODY - 1]).is_none());
    }

    #[test]
    fn path_components_arrive_leaf_first() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"libc.so.6\0x86_64-linux-gnu\0lib\0usr\0",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
            ),
            (b"", "/"),
            (b"etc\0", "/etc"),
            (b"a\0/\0", "/a"),
        ];
        for (body, want) in cases {
            assert_eq!(components_to_path(body), *want);
        }
    }

    #[test]
    fn decodes_a_path_event() {
        let ev = Event::decode(&header(EV_PATH, b"nginx.conf\0nginx\0etc\0")).unwrap();
        assert_eq!(ev.path(), "/etc/nginx/nginx.conf");
        assert_eq!(ev.comm, "nginx");
        assert_eq!(ev.header.pid, 7);
        assert_eq!(
            ev.file_key(),
            FileKey {
                dentry: 0xdead,
                ino: 42,
                name_hash: 9,
                kind: KIND_OPEN,
                slot: 3,
            }
        );
        assert!(!ev.truncated());
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert!(Event::decode(&[0u8; 10]).is_none());
        assert!(Event::decode(&header(99, b"")).is_none());
        // a length past the record is clamped, not trusted
        let mut rec = header(EV_FAILED, b"abc\0");
        rec[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(Event::decode(&rec).unwrap().name(), "abc");
    }

    #[test]
    fn decodes_socket_addresses() {
        let mut key = vec![0u8; NET_KEY_LEN];
        key[0] = 1;
        key[1] = 1;
        key[2..4].copy_from_slice(&AF_INET.to_le_bytes());
        key[4..6].copy_from_slice(&80u16.to_le_bytes());
        key[8..12].copy_from_slice(&[127, 0, 0, 1]);
        key[6..8].copy_from_slice(&2u16.to_le_bytes());
        let k = NetKey::decode(&key).unwrap();
        assert_eq!(k.slot, 2);
        assert_eq!(k.op, SocketOp::Connect);
        assert!(k.ok);
        assert_eq!(
            k.address,
            SocketAddress::Inet("127.0.0.1".parse().unwrap(), 80)
        );

        let mut unix = vec![0u8; NET_KEY_LEN];
        unix[0] = 2;
        unix[2..4].copy_from_slice(&AF_UNIX.to_le_bytes());
        unix[8..9].copy_from_slice(&[0]);
        unix[9..13].copy_from_slice(b"abst");
        assert_eq!(
            NetKey::decode(&unix).unwrap().address,
            SocketAddress::Unix("@abst".into())
        );

        let mut mapped = vec![0u8; NET_KEY_LEN];
        mapped[0] = 3;
        mapped[2..4].copy_from_slice(&AF_INET6.to_le_bytes());
        mapped[8 + 10] = 0xff;
        mapped[8 + 11] = 0xff;
        mapped[8 + 12..8 + 16].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(
            NetKey::decode(&mapped).unwrap().address,
            SocketAddress::Inet("10.0.0.2".parse().unwrap(), 0)
        );
        assert!(NetKey::decode(&[1u8; 4]).is_none());
    }
}
