//! The sandbox against the real kernel and runc, on the Debian nginx (and
//! python) rootfs built by `scripts/build-test-images.sh`.
//!
//! Needs root, runc and the test images: where one is missing a test
//! prints `SKIP` outside CI and fails in CI (`vexxy_testkit_host`'s gates).
//! Tests run in parallel: each sandbox has its own id, and the tests
//! checking what is left on the host look at their own sandbox only.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use vexxy_sandbox::{reap_leftovers, ExitStatus, Sandbox, SandboxConfig};
use vexxy_testkit_host::*;

/// The gate of every test here: sandboxes can run, and the test image
/// `name` is built; its rootfs.
fn sandbox_with(name: &str) -> Option<PathBuf> {
    if !require_sandbox() {
        return None;
    }
    image_rootfs(name)
}

#[test]
fn echo_exit_code_and_output_are_captured() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    let t = Instant::now();
    let (status, out, err, report) = run(
        config(&["sh", "-c", "echo hello from $(hostname); echo oops >&2"]),
        Duration::from_secs(20),
    );
    assert_eq!(status, Some(ExitStatus::Exited(0)), "stderr: {err}");
    assert_eq!(out, "hello from vexxy-sandbox\n");
    assert_eq!(err, "oops\n");
    assert!(report.is_clean());
    println!(
        "echo: {:?} total, teardown {:?}",
        t.elapsed(),
        report.elapsed
    );
}

#[test]
fn nonzero_exit_code_is_reported() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    let (status, _, err, _) = run(config(&["sh", "-c", "exit 7"]), Duration::from_secs(20));
    assert_eq!(status, Some(ExitStatus::Exited(7)), "stderr: {err}");
    // a command that does not exist fails at create, with runc's reason
    let e = Sandbox::create(config(&["/no/such/binary"])).expect_err("missing binary");
    assert!(e.to_string().contains("/no/such/binary"), "{e}");
}

#[test]
fn nginx_serves_inside_the_netns_only() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    let token = format!("vexxy-token-{}", std::process::id());
    let script = format!("echo {token} > /var/www/html/index.html && exec nginx -g 'daemon off;'");
    let mut sb = Sandbox::create(config(&["sh", "-c", &script])).expect("create");
    let ns = sb.net_namespace_path();
    // created but not started: nothing listens yet
    assert!(in_netns(&ns, || http_get(80)).is_err());
    sb.start().expect("start");
    let body = poll(Duration::from_secs(10), || {
        in_netns(&ns, || http_get(80).ok())
    })
    .unwrap_or_else(|| panic!("nginx did not answer; stderr: {}", sb.stderr_tail(4096)));
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(&token), "{body}");
    // the host network namespace does not reach it
    match http_get(80) {
        Ok(resp) => assert!(
            !resp.contains(&token),
            "sandbox nginx reachable from the host"
        ),
        Err(e) => println!("host 127.0.0.1:80: {e} (as expected)"),
    }
    let report = sb.teardown().expect("clean teardown");
    assert!(report.elapsed < Duration::from_secs(5), "{report:?}");
}

#[test]
fn network_is_loopback_only() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    let host_ip = host_ip();
    let targets: Vec<String> = ["10.255.255.1".to_string()]
        .into_iter()
        .chain(host_ip.map(|ip| ip.to_string()))
        .collect();
    let mut script =
        String::from("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sed 's/^/IFACE /'; ");
    for ip in &targets {
        script.push_str(&format!(
            "bash -c 'exec 3<>/dev/tcp/{ip}/80' 2>&1 && echo CONNECTED {ip} || echo REFUSED {ip}; "
        ));
    }
    script.push_str("echo DONE; exec sleep 60");
    let mut sb = Sandbox::create(config(&["sh", "-c", &script])).expect("create");
    sb.start().expect("start");
    let out = poll(Duration::from_secs(10), || {
        let o = sb.stdout_tail(1 << 16);
        o.contains("DONE").then_some(o)
    })
    .unwrap_or_else(|| panic!("no DONE; stderr {}", sb.stderr_tail(4096)));
    // only the loopback interface
    let ifaces: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("IFACE "))
        .collect();
    assert_eq!(ifaces, ["lo"], "{out}");
    for ip in &targets {
        assert!(out.contains(&format!("REFUSED {ip}")), "{out}");
        assert!(!out.contains(&format!("CONNECTED {ip}")), "{out}");
    }
    assert!(out.contains("Network is unreachable"), "{out}");
    // and from a host thread that joined the sandbox's network namespace
    let ns = sb.net_namespace_path();
    for ip in &targets {
        let addr: SocketAddr = format!("{ip}:80").parse().expect("addr");
        let err = in_netns(&ns, || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        })
        .expect_err("must not connect");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::NetworkUnreachable,
            "{ip}: {err}"
        );
    }
    if host_ip.is_none() {
        println!("note: the host has no non-loopback IPv4 route; only 10.255.255.1 checked");
    }
    sb.teardown().expect("clean teardown");
}

#[test]
fn privileged_operations_fail() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    let script = r#"
        mount -t tmpfs none /mnt 2>&1 && echo MOUNT_OK || echo MOUNT_FAIL
        unshare -n true 2>&1 && echo UNSHARE_OK || echo UNSHARE_FAIL
        (echo evil > /proc/sys/kernel/hostname) 2>&1 && echo HOSTNAME_OK || echo HOSTNAME_FAIL
        hostname evil 2>&1 && echo SETHOSTNAME_OK || echo SETHOSTNAME_FAIL
        for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do
            [ -e "$f" ] && { (echo $$ > "$f") 2>/dev/null && echo "CGMOVE_OK $f" || echo "CGMOVE_FAIL $f"; }
        done
        mkdir /sys/fs/cgroup/pids/escape 2>&1 && echo CGMKDIR_OK || echo CGMKDIR_FAIL
        (echo 1 > /sys/kernel/mm/ksm/run) 2>&1 && echo SYSWRITE_OK || echo SYSWRITE_FAIL
        for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do
            [ -e "$f" ] && echo "MASKED $f $(wc -c < "$f")"
        done
        [ -z "$(ls -A /sys/firmware)" ] && echo FIRMWARE_EMPTY
        grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status
        echo END
    "#;
    let (status, out, err, _) = run(config(&["sh", "-c", script]), Duration::from_secs(20));
    assert_eq!(status, Some(ExitStatus::Exited(0)), "{out}\n{err}");
    for op in [
        "MOUNT",
        "UNSHARE",
        "HOSTNAME",
        "SETHOSTNAME",
        "CGMKDIR",
        "SYSWRITE",
    ] {
        assert!(
            out.contains(&format!("{op}_FAIL")),
            "{op} must fail:\n{out}"
        );
        assert!(!out.contains(&format!("{op}_OK")), "{op} must fail:\n{out}");
    }
    assert!(out.contains("CGMOVE_FAIL"), "{out}");
    assert!(!out.contains("CGMOVE_OK"), "{out}");
    // masked paths read as empty
    let masked: Vec<&str> = out.lines().filter(|l| l.starts_with("MASKED ")).collect();
    assert!(!masked.is_empty(), "{out}");
    assert!(masked.iter().all(|l| l.ends_with(" 0")), "{out}");
    assert!(out.contains("FIRMWARE_EMPTY"), "{out}");
    // Docker's default capability set: 0xa80425fb; no new privileges; seccomp filter mode
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("END"), "{out}");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn seccomp_blocks_dangerous_calls_and_python_runs() {
    let Some(rootfs) = sandbox_with("python-flask") else {
        return;
    };
    let script = r#"
import ctypes, errno, os, socket, subprocess, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
blocked = {"mount": 165, "umount2": 166, "pivot_root": 155, "unshare": 272, "setns": 308,
    "bpf": 321, "perf_event_open": 298, "kexec_load": 246, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "keyctl": 250, "add_key": 248,
    "request_key": 249, "open_by_handle_at": 304, "reboot": 169, "swapon": 167,
    "swapoff": 168, "syslog": 103, "iopl": 172, "ioperm": 173, "clock_settime": 227,
    "settimeofday": 164, "userfaultfd": 323, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "acct": 163, "quotactl": 179}
bad = []
for name, nr in blocked.items():
    ctypes.set_errno(0)
    r = libc.syscall(nr, 0, 0, 0, 0, 0, 0)
    e = ctypes.get_errno()
    if r != -1 or e != errno.EPERM:
        bad.append(f"{name}:{r}/{e}")
print("BAD", bad)
ctypes.set_errno(0)
r = libc.syscall(435, 0, 0)
print("CLONE3", r, ctypes.get_errno())
CLONE_NEWNET = 0x40000000
ctypes.set_errno(0)
r = libc.syscall(56, CLONE_NEWNET | 17, 0, 0, 0, 0)
print("CLONE_NEWNET", r, ctypes.get_errno())
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept(); c.sendall(b"ping")
print("LOOPBACK", a.recv(4).decode())
t = threading.Thread(target=lambda: print("THREAD ok")); t.start(); t.join()
print("SUBPROCESS", subprocess.run(["sh", "-c", "echo ok"], capture_output=True, text=True).stdout.strip())
import flask
print("FLASK", flask.__name__)
"#;
    let (status, out, err, _) = run(
        config_in(&rootfs, &["python3", "-c", script]),
        Duration::from_secs(30),
    );
    assert_eq!(status, Some(ExitStatus::Exited(0)), "{out}\n{err}");
    assert!(out.contains("BAD []"), "{out}");
    assert!(
        out.contains("CLONE3 -1 38"),
        "clone3 must fail with ENOSYS: {out}"
    );
    assert!(
        out.contains("CLONE_NEWNET -1 1"),
        "clone(CLONE_NEWNET) must fail with EPERM: {out}"
    );
    for want in ["LOOPBACK ping", "THREAD ok", "SUBPROCESS ok", "FLASK flask"] {
        assert!(out.contains(want), "{want}: {out}\n{err}");
    }
}

#[test]
fn fork_bomb_is_stopped_by_the_pids_limit() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    let mut c = config(&["sh", "-c", "bomb() { bomb | bomb & }; bomb; exec sleep 60"]);
    c.limits.pids = 64;
    let mut sb = Sandbox::create(c).expect("create");
    sb.start().expect("start");
    let cg = sb.cgroup_path();
    let events = cgroup_file("pids", &cg, "pids.events").expect("pids.events");
    let current = cgroup_file("pids", &cg, "pids.current").expect("pids.current");
    let hit = poll(Duration::from_secs(10), || {
        let ev = std::fs::read_to_string(&events).ok()?;
        let n: u64 = ev.split_whitespace().nth(1)?.parse().ok()?;
        (n > 0).then_some(n)
    });
    assert!(hit.is_some(), "the pids limit was never hit");
    for _ in 0..20 {
        let n: u64 = std::fs::read_to_string(&current)
            .expect("pids.current")
            .trim()
            .parse()
            .expect("number");
        assert!(n <= 64, "pids.current {n} above the limit");
        std::thread::sleep(Duration::from_millis(10));
    }
    // the init is still alive: the bomb did not take the sandbox down
    assert_eq!(sb.wait_exit(Instant::now()).expect("wait"), None);
    let t = Instant::now();
    let report = sb.teardown().expect("clean teardown");
    println!("fork bomb teardown: {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(10), "{report:?}");
}

#[test]
fn memory_hog_is_killed_by_the_memory_limit() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    let mut c = config(&["tail", "/dev/zero"]);
    c.limits.memory_bytes = 64 << 20;
    let mut sb = Sandbox::create(c).expect("create");
    sb.start().expect("start");
    let status = sb
        .wait_exit(Instant::now() + Duration::from_secs(30))
        .expect("wait");
    assert_eq!(
        status,
        Some(ExitStatus::Signaled(9)),
        "stderr: {}",
        sb.stderr_tail(4096)
    );
    if let Some(oom) = cgroup_file("memory", &sb.cgroup_path(), "memory.oom_control")
        .or_else(|| cgroup_file("memory", &sb.cgroup_path(), "memory.events"))
    {
        let text = std::fs::read_to_string(oom).expect("oom");
        let kills: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        assert!(kills >= 1, "no OOM kill recorded: {text}");
    }
    sb.teardown().expect("clean teardown");
}

#[test]
fn timeout_kills_and_tears_down_quickly() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    let mut sb = Sandbox::create(config(&["sleep", "1000"])).expect("create");
    sb.start().expect("start");
    let start = Instant::now();
    let status = sb
        .wait_exit(Instant::now() + Duration::from_secs(1))
        .expect("wait");
    assert_eq!(status, None);
    assert!(start.elapsed() >= Duration::from_secs(1));
    let pid = sb.init_pid();
    let t = Instant::now();
    let report = sb.teardown().expect("clean teardown");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "teardown took {:?}",
        t.elapsed()
    );
    assert_eq!(report.init_exit, Some(ExitStatus::Signaled(9)));
    // reaped: no zombie of ours remains under that pid
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(!stat.contains(") Z"), "{stat}");
}

#[test]
fn tracer_window_between_create_and_start() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    let mut sb = Sandbox::create(config(&["sh", "-c", "echo started"])).expect("create");
    // created: the init waits inside its namespaces, the workload has not run
    let ns = std::fs::metadata(format!("/proc/{}/ns/pid", sb.init_pid())).expect("ns");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&ns),
        sb.pid_namespace_inode()
    );
    let own = std::fs::metadata("/proc/self/ns/pid").expect("own ns");
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&own),
        sb.pid_namespace_inode()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(sb.stdout_tail(100), "");
    assert!(sb.lower_dir().join("etc/nginx/nginx.conf").is_file());
    assert!(sb.upper_dir().is_dir());
    sb.start().expect("start");
    let status = sb
        .wait_exit(Instant::now() + Duration::from_secs(10))
        .expect("wait");
    assert_eq!(status, Some(ExitStatus::Exited(0)));
    assert_eq!(sb.stdout_tail(100), "started\n");
    // the netns bind mount outlives the init
    assert!(in_netns(&sb.net_namespace_path(), || http_get(80)).is_err());
    sb.teardown().expect("clean teardown");
}

#[test]
fn image_layers_stay_read_only_and_the_host_is_unchanged() {
    let Some(rootfs) = sandbox_with("nginx") else {
        return;
    };
    let (before, files) = tree_digest(&rootfs);
    let mounts_before = mount_points();
    let script = "rm -rf /etc/nginx /usr/sbin/nginx && echo x > /etc/passwd && \
                  chmod 777 /bin/sh && chown 1:1 /etc/hostname.d 2>/dev/null; \
                  mkdir /newdir && touch /usr/lib/newfile && ln -s /x /etc/y && \
                  truncate -s 0 /usr/bin/tail && mv /var/www /var/www2 && \
                  ls /etc/nginx 2>/dev/null; echo WROTE";
    let c = config(&["sh", "-c", script]);
    let state_root = c.state_root.clone();
    let mut sb = Sandbox::create(c).expect("create");
    let upper = sb.upper_dir().to_owned();
    sb.start().expect("start");
    let status = sb
        .wait_exit(Instant::now() + Duration::from_secs(20))
        .expect("wait");
    assert_eq!(
        status,
        Some(ExitStatus::Exited(0)),
        "{}",
        sb.stderr_tail(4096)
    );
    assert_eq!(sb.stdout_tail(100), "WROTE\n");
    // the writes landed in the upper directory
    assert!(upper.join("newdir").is_dir());
    assert!(upper.join("etc/passwd").is_file());
    let id = sb.id().to_owned();
    // what the check after teardown looks for is seen while it exists
    let present = sandbox_leftovers(&state_root, &id);
    for kind in ["directory", "mount", "cgroup"] {
        assert!(
            present.iter().any(|l| l.starts_with(kind)),
            "no {kind} of sandbox {id} seen: {present:?}"
        );
    }
    let report = sb.teardown().expect("clean teardown");
    assert!(report.is_clean());

    let (after, _) = tree_digest(&rootfs);
    assert_eq!(before, after, "the lower rootfs ({files} entries) changed");
    assert!(rootfs.join("etc/nginx/nginx.conf").is_file());
    // nothing of this sandbox is left, and nothing else was unmounted
    // (other sandboxes, of this process or another, may come and go)
    let left = sandbox_leftovers(&state_root, &id);
    assert!(left.is_empty(), "sandbox {id} left {left:?}");
    let lost = mounts_lost_since(&mounts_before);
    assert!(lost.is_empty(), "mount points gone: {lost:?}");
}

/// Not a test of its own: the body of the child process that
/// `leftovers_are_reaped_after_sigkill` starts (with `VEXXY_SANDBOX_CRASH_CHILD`
/// set) and SIGKILLs while it holds a running sandbox.
#[test]
fn crash_child_helper() {
    let Some(state_root) = std::env::var_os("VEXXY_SANDBOX_CRASH_CHILD") else {
        return;
    };
    let mut c: SandboxConfig = config(&["sleep", "1000"]);
    c.state_root = PathBuf::from(state_root);
    let mut sb = Sandbox::create(c).expect("create");
    sb.start().expect("start");
    println!(
        "SANDBOX {} {} {}",
        sb.id(),
        sb.init_pid(),
        sb.pid_namespace_inode()
    );
    std::thread::sleep(Duration::from_secs(120));
    drop(sb);
}

#[test]
fn leftovers_are_reaped_after_sigkill() {
    if sandbox_with("nginx").is_none() {
        return;
    }
    // A private state root, so no other test's create reaps it first.
    let state_root = PathBuf::from(format!("/run/vexxy-test-crash-{}", std::process::id()));
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "crash_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VEXXY_SANDBOX_CRASH_CHILD", &state_root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test crash_child_helper ... " first
            if let Some(at) = line.find("SANDBOX ") {
                let _ = tx.send(line[at + "SANDBOX ".len()..].to_owned());
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the child never reported its sandbox")
        });
    let mut f = line.split_whitespace();
    let id = f.next().expect("id").to_owned();
    let init_pid: u32 = f.next().expect("pid").parse().expect("pid");
    let pidns: u64 = f.next().expect("ns").parse().expect("ns");

    // Hold the PID namespace open so its inode cannot be reused by another
    // test's sandbox while we check it.
    let _ns = std::fs::File::open(format!("/proc/{init_pid}/ns/pid")).expect("pin pidns");
    child.kill().expect("SIGKILL the child");
    child.wait().expect("wait child");

    // everything is still there
    let dir = state_root.join("sandboxes").join(&id);
    assert!(dir.is_dir());
    assert!(mount_points()
        .iter()
        .any(|m| Path::new(m).starts_with(&dir)));
    assert!(cgroup_file("pids", &format!("/vexxy/{id}"), "cgroup.procs").is_some());
    assert!(Path::new(&format!("/proc/{init_pid}")).exists());

    let t = Instant::now();
    let reaped = reap_leftovers(&state_root).expect("reap");
    println!("reaped {reaped:?} in {:?}", t.elapsed());
    assert_eq!(reaped, vec![id.clone()]);

    assert!(!dir.exists(), "sandbox dir left");
    assert!(
        !state_root.join("runtime").join(&id).exists(),
        "runtime state left"
    );
    assert!(
        !mount_points()
            .iter()
            .any(|m| Path::new(m).starts_with(&dir)),
        "mounts left"
    );
    assert!(cgroup_file("pids", &format!("/vexxy/{id}"), "cgroup.procs").is_none());
    let alive_in_ns: Vec<u32> = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let ns = std::fs::metadata(format!("/proc/{p}/ns/pid"));
            let zombie = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
                .unwrap_or(true);
            ns.is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == pidns) && !zombie
        })
        .collect();
    assert!(
        alive_in_ns.is_empty(),
        "processes left in the pid namespace: {alive_in_ns:?}"
    );
    // a second reap finds nothing
    assert!(reap_leftovers(&state_root).expect("again").is_empty());
    let _ = std::fs::remove_dir_all(&state_root);
}
