//! Decoding of the byte layouts the BPF side writes (`src/bpf/trace.h`).
//!
//! Everything here is plain safe parsing of little-endian bytes: a record
//! that is too short or carries an unknown type is rejected, never trusted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vexxy_model::{SocketAddress, SocketOp};

// Mirrors of trace.h.
pub(crate) const EV_PATH: u32 = 1;
pub(crate) const EV_FAILED: u32 = 2;
pub(crate) const EV_EXEC: u32 = 3;
pub(crate) const EV_FORK: u32 = 4;
pub(crate) const EV_EXIT: u32 = 5;

#[cfg(test)]
pub(crate) const KIND_OPEN: u32 = 1;
pub(crate) const KIND_EXEC_MAP: u32 = 2;

pub(crate) const PATH_TRUNCATED: i32 = 1;

pub(crate) const ST_RINGBUF_LOST: u32 = 0;
pub(crate) const ST_FILES_FULL: u32 = 1;
pub(crate) const ST_FAILED_FULL: u32 = 2;
pub(crate) const ST_NET_FULL: u32 = 3;
pub(crate) const ST_PENDING_FULL: u32 = 4;
pub(crate) const ST_TRUNCATED: u32 = 5;
pub(crate) const ST_UNRESOLVED_FD: u32 = 6;
pub(crate) const ST_NO_TASK_STATE: u32 = 7;
pub(crate) const ST_COUNT: u32 = 8;

const HEADER_LEN: usize = 4 * 6 + 8 * 2 + 4 * 2 + 16;
const FILE_KEY_LEN: usize = 8 + 8 + 4 + 4;
const SOCKADDR_BUF: usize = 128;
const NET_KEY_LEN: usize = 1 + 1 + 2 + 2 + 2 + SOCKADDR_BUF;

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// The identity of a file in the kernel's aggregation map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub(crate) dentry: u64,
    pub(crate) ino: u64,
    pub(crate) name_hash: u32,
    pub(crate) kind: u32,
}

impl FileKey {
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < FILE_KEY_LEN {
            return None;
        }
        Some(Self {
            dentry: u64_at(bytes, 0),
            ino: u64_at(bytes, 8),
            name_hash: u32_at(bytes, 16),
            kind: u32_at(bytes, 20),
        })
    }
}

/// One ring-buffer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) kind: u32,
    pub(crate) pid: u32,
    pub(crate) ns_pid: u32,
    pub(crate) ns_ppid: u32,
    pub(crate) code: i32,
    pub(crate) a: u64,
    pub(crate) b: u64,
    pub(crate) c: u32,
    pub(crate) d: u32,
    pub(crate) comm: String,
    pub(crate) body: Vec<u8>,
}

impl Event {
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let kind = u32_at(bytes, 0);
        if !(EV_PATH..=EV_EXIT).contains(&kind) {
            return None;
        }
        let len = u32_at(bytes, 4) as usize;
        let body_end = HEADER_LEN.checked_add(len)?.min(bytes.len());
        let comm = &bytes[48..64];
        let comm_end = comm.iter().position(|b| *b == 0).unwrap_or(comm.len());
        Some(Self {
            kind,
            pid: u32_at(bytes, 8),
            ns_pid: u32_at(bytes, 12),
            ns_ppid: u32_at(bytes, 16),
            code: u32_at(bytes, 20) as i32,
            a: u64_at(bytes, 24),
            b: u64_at(bytes, 32),
            c: u32_at(bytes, 40),
            d: u32_at(bytes, 44),
            comm: String::from_utf8_lossy(&comm[..comm_end]).into_owned(),
            body: bytes[HEADER_LEN..body_end].to_vec(),
        })
    }

    /// The file key of an `EV_PATH` record.
    pub(crate) fn file_key(&self) -> FileKey {
        FileKey {
            dentry: self.a,
            ino: self.b,
            name_hash: self.c,
            kind: self.d,
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
        self.code & PATH_TRUNCATED != 0
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
    pub(crate) op: SocketOp,
    pub(crate) ok: bool,
    pub(crate) address: SocketAddress,
}

impl NetKey {
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < NET_KEY_LEN {
            return None;
        }
        let op = match bytes[0] {
            1 => SocketOp::Connect,
            2 => SocketOp::Bind,
            3 => SocketOp::Accept,
            _ => return None,
        };
        let family = u16::from_le_bytes([bytes[2], bytes[3]]);
        let port = u16::from_le_bytes([bytes[4], bytes[5]]);
        let addr = &bytes[8..8 + SOCKADDR_BUF];
        let address = match family {
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
            op,
            ok: bytes[1] != 0,
            address,
        })
    }
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Sums a per-CPU `u64` value.
pub(crate) fn sum_per_cpu(values: &[Vec<u8>]) -> u64 {
    values
        .iter()
        .filter(|v| v.len() >= 8)
        .map(|v| u64_at(v, 0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&(body.len() as u32).to_le_bytes());
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
        assert_eq!(ev.pid, 7);
        assert_eq!(
            ev.file_key(),
            FileKey {
                dentry: 0xdead,
                ino: 42,
                name_hash: 9,
                kind: KIND_OPEN
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
        let k = NetKey::decode(&key).unwrap();
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
