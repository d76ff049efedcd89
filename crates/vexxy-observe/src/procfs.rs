//! What a container had already done when the observer attached: the
//! programs its processes run, the files they map executable and the files
//! they hold open, read from `/proc`. The tracer sees only what happens
//! after it is armed; a server started hours ago loaded its libraries long
//! before, so without this snapshot an observation would miss them.
//!
//! The reads go through [`Proc`], so the logic is tested on a fake.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use vexxy_model::{NetworkUse, ProcessRecord, SocketAddress, SocketOp};

/// The `/proc` reads the observer needs, one method per file.
pub trait Proc {
    /// Every pid of the host.
    fn pids(&self) -> io::Result<Vec<u32>>;
    /// The inode of `pid`'s PID namespace.
    fn pid_namespace(&self, pid: u32) -> io::Result<u64>;
    /// `/proc/PID/status`.
    fn status(&self, pid: u32) -> io::Result<String>;
    /// `/proc/PID/maps`.
    fn maps(&self, pid: u32) -> io::Result<String>;
    /// `/proc/PID/exe`'s target.
    fn exe(&self, pid: u32) -> io::Result<String>;
    /// The targets of `/proc/PID/fd/*`.
    fn fds(&self, pid: u32) -> io::Result<Vec<String>>;
    /// `/proc/PID/cmdline`, split at NULs.
    fn cmdline(&self, pid: u32) -> io::Result<Vec<String>>;
    /// `/proc/PID/mountinfo`.
    fn mountinfo(&self, pid: u32) -> io::Result<String>;
    /// `/proc/PID/net/tcp` and `tcp6` (the sockets of its network namespace).
    fn tcp(&self, pid: u32) -> io::Result<(String, String)>;
    /// The pids in a cgroup (`cgroup.procs` of the directory).
    fn cgroup_pids(&self, cgroup: &Path) -> io::Result<Vec<u32>>;
}

/// The real `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostProc;

fn proc_path(pid: u32, what: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{what}"))
}

fn link_text(path: &Path) -> io::Result<String> {
    Ok(std::fs::read_link(path)?.to_string_lossy().into_owned())
}

impl Proc for HostProc {
    fn pids(&self) -> io::Result<Vec<u32>> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc")? {
            if let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    fn pid_namespace(&self, pid: u32) -> io::Result<u64> {
        vexxy_trace::pid_namespace_inode(pid)
    }

    fn status(&self, pid: u32) -> io::Result<String> {
        std::fs::read_to_string(proc_path(pid, "status"))
    }

    fn maps(&self, pid: u32) -> io::Result<String> {
        std::fs::read_to_string(proc_path(pid, "maps"))
    }

    fn exe(&self, pid: u32) -> io::Result<String> {
        link_text(&proc_path(pid, "exe"))
    }

    fn fds(&self, pid: u32) -> io::Result<Vec<String>> {
        let mut targets = Vec::new();
        for entry in std::fs::read_dir(proc_path(pid, "fd"))? {
            // an fd closed between the listing and the read is no loss
            if let Ok(target) = link_text(&entry?.path()) {
                targets.push(target);
            }
        }
        Ok(targets)
    }

    fn cmdline(&self, pid: u32) -> io::Result<Vec<String>> {
        let raw = std::fs::read(proc_path(pid, "cmdline"))?;
        Ok(raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect())
    }

    fn mountinfo(&self, pid: u32) -> io::Result<String> {
        std::fs::read_to_string(proc_path(pid, "mountinfo"))
    }

    fn tcp(&self, pid: u32) -> io::Result<(String, String)> {
        let v4 = std::fs::read_to_string(proc_path(pid, "net/tcp"))?;
        let v6 = std::fs::read_to_string(proc_path(pid, "net/tcp6")).unwrap_or_default();
        Ok((v4, v6))
    }

    fn cgroup_pids(&self, cgroup: &Path) -> io::Result<Vec<u32>> {
        let text = std::fs::read_to_string(cgroup.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }
}

/// What the processes of one PID namespace had done when the snapshot was
/// taken. Paths are as the container sees them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Programs running: path → processes running it.
    pub executed: BTreeMap<String, u64>,
    /// Files mapped executable: path → processes mapping it.
    pub mapped: BTreeMap<String, u64>,
    /// Regular files held open: path → descriptors.
    pub opened: BTreeMap<String, u64>,
    /// The processes, by their pid inside the namespace.
    pub processes: Vec<ProcessRecord>,
    /// Listening TCP sockets of the namespace's network.
    pub listening: Vec<NetworkUse>,
    /// The host pids of the namespace's processes.
    pub host_pids: Vec<u32>,
}

/// The host pids whose PID namespace is `namespace`.
pub fn pids_in_namespace(proc: &dyn Proc, namespace: u64) -> io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = proc
        .pids()?
        .into_iter()
        // a process that exited since the listing is simply not a member
        .filter(|pid| proc.pid_namespace(*pid).is_ok_and(|ns| ns == namespace))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// Takes the snapshot of the namespace `namespace`, whose processes the
/// host sees as `pids`.
pub fn snapshot(proc: &dyn Proc, pids: &[u32]) -> Snapshot {
    let mut snap = Snapshot {
        host_pids: pids.to_vec(),
        ..Snapshot::default()
    };
    let mut host_to_ns: BTreeMap<u32, u32> = BTreeMap::new();
    for &pid in pids {
        // each read may fail because the process has just exited: what it
        // did is then lost to the snapshot, as it would be to any observer
        let Ok(status) = proc.status(pid) else {
            continue;
        };
        let fields = StatusFields::parse(&status);
        if let Ok(exe) = proc.exe(pid) {
            if let Some(path) = usable_path(&exe) {
                *snap.executed.entry(path.to_owned()).or_default() += 1;
            }
        }
        if let Ok(maps) = proc.maps(pid) {
            let mine: BTreeSet<&str> = executable_mappings(&maps).collect();
            for path in mine {
                *snap.mapped.entry(path.to_owned()).or_default() += 1;
            }
        }
        if let Ok(fds) = proc.fds(pid) {
            for target in &fds {
                if let Some(path) = usable_path(target) {
                    if !path.starts_with("/dev/") && !path.starts_with("/proc/") {
                        *snap.opened.entry(path.to_owned()).or_default() += 1;
                    }
                }
            }
        }
        let execs = proc
            .exe(pid)
            .ok()
            .and_then(|e| usable_path(&e).map(str::to_owned))
            .into_iter()
            .collect();
        let ns_pid = fields.ns_pid.unwrap_or(pid);
        host_to_ns.insert(pid, ns_pid);
        snap.processes.push(ProcessRecord {
            pid: ns_pid,
            ppid: fields.host_ppid.unwrap_or(0),
            execs,
            comm: fields.name,
            exit_code: None,
        });
    }
    // Parent pids are host pids in `status`; turn them into the
    // namespace's (0: a parent outside the namespace).
    for rec in &mut snap.processes {
        rec.ppid = host_to_ns.get(&rec.ppid).copied().unwrap_or(0);
    }
    snap.processes.sort_by_key(|p| p.pid);
    snap.processes.dedup_by_key(|p| p.pid);
    if let Some(first) = pids.first() {
        if let Ok((v4, v6)) = proc.tcp(*first) {
            snap.listening = listening_sockets(&v4, false)
                .chain(listening_sockets(&v6, true))
                .map(|address| NetworkUse {
                    op: SocketOp::Bind,
                    address,
                    ok: 1,
                    failed: 0,
                })
                .collect();
            snap.listening.sort_by(|a, b| a.address.cmp(&b.address));
            snap.listening.dedup_by(|a, b| a.address == b.address);
        }
    }
    snap
}

/// A path the kernel printed, or `None` for what is not a file of the
/// container (`socket:[…]`, `pipe:[…]`, `anon_inode:…`, `[heap]`, a path
/// of a deleted file).
fn usable_path(text: &str) -> Option<&str> {
    if !text.starts_with('/') || text.ends_with(" (deleted)") {
        return None;
    }
    Some(text)
}

/// The files an address space maps executable, from `/proc/PID/maps`.
fn executable_mappings(maps: &str) -> impl Iterator<Item = &str> {
    maps.lines().filter_map(|line| {
        let mut parts = line.splitn(6, ' ');
        let _range = parts.next()?;
        let perms = parts.next()?;
        let _offset = parts.next()?;
        let _dev = parts.next()?;
        let _inode = parts.next()?;
        let path = parts.next()?.trim_start();
        (perms.as_bytes().get(2) == Some(&b'x'))
            .then_some(path)
            .and_then(usable_path)
    })
}

/// The fields of `/proc/PID/status` the snapshot uses.
#[derive(Debug, Default)]
struct StatusFields {
    name: String,
    /// The pid in the innermost namespace (`NSpid`'s last value).
    ns_pid: Option<u32>,
    /// The parent's host pid (`PPid`), turned into the namespace's later.
    host_ppid: Option<u32>,
}

impl StatusFields {
    fn parse(status: &str) -> Self {
        let mut f = Self::default();
        for line in status.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "Name" => value.clone_into(&mut f.name),
                "NSpid" => f.ns_pid = value.split_whitespace().last().and_then(|v| v.parse().ok()),
                "PPid" => f.host_ppid = value.parse().ok(),
                _ => {}
            }
        }
        f
    }
}

/// Listening sockets in `/proc/net/tcp{,6}` form (state `0A`).
fn listening_sockets(table: &str, v6: bool) -> impl Iterator<Item = SocketAddress> + '_ {
    table.lines().skip(1).filter_map(move |line| {
        let mut cols = line.split_whitespace();
        let _slot = cols.next()?;
        let local = cols.next()?;
        let _remote = cols.next()?;
        let state = cols.next()?;
        if state != "0A" {
            return None;
        }
        let (addr, port) = local.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let ip = if v6 {
            IpAddr::V6(parse_v6(addr)?)
        } else {
            IpAddr::V4(parse_v4(addr)?)
        };
        Some(SocketAddress::Inet(ip, port))
    })
}

/// A `/proc/net/tcp` IPv4 address: one host-order (little-endian here)
/// 32-bit word in hex.
fn parse_v4(hex: &str) -> Option<Ipv4Addr> {
    let word = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(word.to_le_bytes()))
}

/// A `/proc/net/tcp6` address: four host-order 32-bit words in hex.
fn parse_v6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// The host directories of the container's root overlay (`lowerdir`s and
/// `upperdir`), from `mountinfo`: a file the kernel reached through the
/// overlay's layers (an `mprotect` of a mapped library) is reported under
/// one of them.
pub fn overlay_dirs(mountinfo: &str) -> Vec<String> {
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4);
        if mount_point != Some("/") {
            continue;
        }
        let mut right = right.splitn(3, ' ');
        if right.next() != Some("overlay") {
            return Vec::new();
        }
        let _source = right.next();
        let options = right.next().unwrap_or_default();
        let mut dirs = Vec::new();
        for option in options.split(',') {
            if let Some(lower) = option.strip_prefix("lowerdir=") {
                dirs.extend(lower.split(':').map(str::to_owned));
            } else if let Some(upper) = option.strip_prefix("upperdir=") {
                dirs.push(upper.to_owned());
            }
        }
        return dirs;
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `/proc`: per pid, its files.
    #[derive(Default)]
    struct FakeProc {
        procs: BTreeMap<u32, FakeProcess>,
    }

    #[derive(Default, Clone)]
    struct FakeProcess {
        ns: u64,
        status: String,
        maps: String,
        exe: String,
        fds: Vec<String>,
    }

    fn gone() -> io::Error {
        io::Error::from(io::ErrorKind::NotFound)
    }

    impl Proc for FakeProc {
        fn pids(&self) -> io::Result<Vec<u32>> {
            Ok(self.procs.keys().copied().collect())
        }
        fn pid_namespace(&self, pid: u32) -> io::Result<u64> {
            self.procs.get(&pid).map(|p| p.ns).ok_or_else(gone)
        }
        fn status(&self, pid: u32) -> io::Result<String> {
            self.procs
                .get(&pid)
                .map(|p| p.status.clone())
                .ok_or_else(gone)
        }
        fn maps(&self, pid: u32) -> io::Result<String> {
            self.procs
                .get(&pid)
                .map(|p| p.maps.clone())
                .ok_or_else(gone)
        }
        fn exe(&self, pid: u32) -> io::Result<String> {
            self.procs.get(&pid).map(|p| p.exe.clone()).ok_or_else(gone)
        }
        fn fds(&self, pid: u32) -> io::Result<Vec<String>> {
            self.procs.get(&pid).map(|p| p.fds.clone()).ok_or_else(gone)
        }
        fn cmdline(&self, _pid: u32) -> io::Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn mountinfo(&self, _pid: u32) -> io::Result<String> {
            Ok(String::new())
        }
        fn tcp(&self, _pid: u32) -> io::Result<(String, String)> {
            Ok((
                "  sl  local_address rem_address   st\n   0: 00000000:0050 00000000:0000 0A 0\n   1: 0100007F:1F90 0100007F:C350 01 0\n".into(),
                "  sl  local_address rem_address   st\n   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0\n".into(),
            ))
        }
        fn cgroup_pids(&self, _cgroup: &Path) -> io::Result<Vec<u32>> {
            Ok(Vec::new())
        }
    }

    fn nginx() -> FakeProc {
        let master = FakeProcess {
            ns: 7,
            status: "Name:\tnginx\nPPid:\t900\nNSpid:\t1000\t1\n".into(),
            maps: "\
5600-5610 r--p 00000000 00:28 1 /usr/sbin/nginx
5610-5620 r-xp 00010000 00:28 1 /usr/sbin/nginx
7f00-7f10 r-xp 00000000 00:28 2 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f10-7f20 r--p 00000000 00:28 3 /usr/share/zoneinfo/UTC
7f20-7f30 r-xp 00000000 00:00 0 
7f30-7f40 r-xp 00000000 00:28 4 /tmp/gone.so (deleted)
7ffd-7ffe r-xp 00000000 00:00 0                          [vdso]
"
            .into(),
            exe: "/usr/sbin/nginx".into(),
            fds: vec![
                "/dev/null".into(),
                "socket:[123]".into(),
                "/var/log/nginx/access.log".into(),
                "pipe:[5]".into(),
            ],
        };
        let worker = FakeProcess {
            status: "Name:\tnginx\nPPid:\t1000\nNSpid:\t1001\t2\n".into(),
            ..master.clone()
        };
        let other = FakeProcess {
            ns: 9,
            status: "Name:\tsshd\nPPid:\t1\nNSpid:\t50\n".into(),
            exe: "/usr/sbin/sshd".into(),
            ..FakeProcess::default()
        };
        FakeProc {
            procs: [(1000, master), (1001, worker), (50, other)].into(),
        }
    }

    #[test]
    fn the_snapshot_takes_only_the_namespace_s_processes_and_their_files() {
        let proc = nginx();
        let pids = pids_in_namespace(&proc, 7).unwrap();
        assert_eq!(pids, [1000, 1001]);
        let snap = snapshot(&proc, &pids);
        assert_eq!(
            snap.executed,
            BTreeMap::from([("/usr/sbin/nginx".to_owned(), 2)])
        );
        assert_eq!(
            snap.mapped.keys().collect::<Vec<_>>(),
            ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/sbin/nginx"],
            "executable file mappings only: no data file, anonymous, deleted or vdso mapping"
        );
        assert_eq!(snap.mapped["/usr/sbin/nginx"], 2, "once per process");
        assert_eq!(
            snap.opened,
            BTreeMap::from([("/var/log/nginx/access.log".to_owned(), 2)]),
            "regular files only, not devices, sockets or pipes"
        );
        let tree: Vec<(u32, u32)> = snap.processes.iter().map(|p| (p.pid, p.ppid)).collect();
        assert_eq!(tree, [(1, 0), (2, 1)], "pids and parents in the namespace");
        assert_eq!(snap.processes[0].comm, "nginx");
    }

    #[test]
    fn a_process_that_exits_during_the_snapshot_is_skipped() {
        let proc = nginx();
        let snap = snapshot(&proc, &[1000, 4242]);
        assert_eq!(snap.processes.len(), 1);
    }

    #[test]
    fn listening_sockets_are_read_from_the_namespace_s_tables() {
        let proc = nginx();
        let snap = snapshot(&proc, &[1000]);
        let addresses: Vec<String> = snap
            .listening
            .iter()
            .map(|n| match &n.address {
                SocketAddress::Inet(ip, port) => format!("{ip}:{port}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(addresses, ["0.0.0.0:80", ":::80"], "LISTEN rows only");
    }

    #[test]
    fn the_root_overlay_s_layers_come_from_mountinfo() {
        let info = "\
100 90 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/c/s/2/fs:/var/lib/c/s/1/fs,upperdir=/var/lib/c/s/3/fs,workdir=/var/lib/c/s/3/work
101 100 0:51 / /proc rw - proc proc rw
";
        assert_eq!(
            overlay_dirs(info),
            [
                "/var/lib/c/s/2/fs",
                "/var/lib/c/s/1/fs",
                "/var/lib/c/s/3/fs"
            ]
        );
        assert!(overlay_dirs("100 90 0:50 / / rw - ext4 /dev/vda rw\n").is_empty());
    }

    #[test]
    fn ipv4_words_are_little_endian() {
        assert_eq!(parse_v4("0100007F"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(parse_v6("zz"), None);
    }
}
