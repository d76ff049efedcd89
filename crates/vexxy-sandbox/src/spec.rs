//! The OCI runtime spec (`config.json`) of a sandbox.

use std::path::Path;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::{
    config::{Limits, ProcessConfig, CPU_PERIOD_US},
    host::CgroupLayout,
    seccomp::default_seccomp_profile,
    user::ResolvedUser,
    SandboxError,
};

/// The OCI version runc 1.1 implements.
const OCI_VERSION: &str = "1.0.2";

/// Docker's default capability set.
pub(crate) const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths hidden from the container (`runc spec` defaults plus Docker's
/// powercap).
pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths mounted read-only (`runc spec` defaults).
pub(crate) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Open files allowed to the workload (at most our own hard limit).
const NOFILE: u64 = 65536;

/// What the spec is made from.
#[derive(Debug)]
pub(crate) struct SpecInput<'a> {
    pub(crate) process: &'a ProcessConfig,
    pub(crate) user: &'a ResolvedUser,
    pub(crate) limits: &'a Limits,
    pub(crate) hostname: &'a str,
    /// `/vexxy/<id>`
    pub(crate) cgroups_path: &'a str,
    pub(crate) cgroups: &'a CgroupLayout,
    /// Our own hard `RLIMIT_NOFILE` (`None`: unlimited).
    pub(crate) nofile_hard: Option<u64>,
    /// Host file bind-mounted read-only on /etc/hosts.
    pub(crate) hosts_file: &'a Path,
    /// Host file bind-mounted read-only on /etc/hostname.
    pub(crate) hostname_file: &'a Path,
}

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, SandboxError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(spec_err)
}

fn spec_err(e: oci_spec::OciSpecError) -> SandboxError {
    SandboxError::InvalidConfig(format!("oci runtime spec: {e}"))
}

/// The mounts: `runc spec` defaults (with nosuid/noexec/nodev on /proc, as
/// Docker), read-only /sys and cgroup, and read-only /etc/hosts and
/// /etc/hostname.
fn mounts(input: &SpecInput<'_>) -> Result<Vec<Mount>, SandboxError> {
    let p = Path::new;
    Ok(vec![
        mount("/proc", "proc", p("proc"), &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            p("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            p("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            p("shm"),
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            p("mqueue"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            p("sysfs"),
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            p("cgroup"),
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
        mount(
            "/etc/hosts",
            "bind",
            input.hosts_file,
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        )?,
        mount(
            "/etc/hostname",
            "bind",
            input.hostname_file,
            &["rbind", "ro", "nosuid", "nodev", "noexec"],
        )?,
    ])
}

/// Builds the runtime spec; the bundle's `rootfs` is the overlay mount.
pub(crate) fn build_spec(input: &SpecInput<'_>) -> Result<Spec, SandboxError> {
    let caps: std::collections::HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(std::collections::HashSet::new())
        .ambient(std::collections::HashSet::new())
        .build()
        .map_err(spec_err)?;
    let mut user = UserBuilder::default()
        .uid(input.user.uid)
        .gid(input.user.gid);
    if !input.user.additional_gids.is_empty() {
        user = user.additional_gids(input.user.additional_gids.clone());
    }
    let nofile = input.nofile_hard.map_or(NOFILE, |h| h.min(NOFILE));
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user.build().map_err(spec_err)?)
        .args(input.process.args.clone())
        .env(input.process.env_strings())
        .cwd(&input.process.cwd)
        .capabilities(capabilities)
        .no_new_privileges(true)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(nofile)
            .soft(nofile)
            .build()
            .map_err(spec_err)?])
        .build()
        .map_err(spec_err)?;

    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|t| {
        LinuxNamespaceBuilder::default()
            .typ(t)
            .build()
            .map_err(spec_err)
    })
    .collect::<Result<Vec<_>, _>>()?;

    let memory_limit = i64::try_from(input.limits.memory_bytes)
        .map_err(|_| SandboxError::InvalidConfig("memory limit too large".into()))?;
    let mut memory = LinuxMemoryBuilder::default().limit(memory_limit);
    // memory+swap = memory: no swap. Only where the host accounts swap, or
    // runc fails writing memory.memsw.limit_in_bytes.
    let v2_memory = input.cgroups.v2_controllers.iter().any(|c| c == "memory");
    if input.cgroups.memsw || (v2_memory && input.cgroups.unified_only) {
        memory = memory.swap(memory_limit);
    }
    let pids = i64::try_from(input.limits.pids)
        .map_err(|_| SandboxError::InvalidConfig("pids limit too large".into()))?;
    let resources = LinuxResourcesBuilder::default()
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(spec_err)?])
        .memory(memory.build().map_err(spec_err)?)
        .cpu(
            LinuxCpuBuilder::default()
                .quota(input.limits.cpu_quota_us())
                .period(CPU_PERIOD_US)
                .build()
                .map_err(spec_err)?,
        )
        .pids(
            LinuxPidsBuilder::default()
                .limit(pids)
                .build()
                .map_err(spec_err)?,
        )
        .build()
        .map_err(spec_err)?;

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(input.cgroups_path)
        .resources(resources)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        )
        .seccomp(default_seccomp_profile()?)
        .build()
        .map_err(spec_err)?;

    SpecBuilder::default()
        .version(OCI_VERSION)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()
                .map_err(spec_err)?,
        )
        .mounts(mounts(input)?)
        .process(process)
        .hostname(input.hostname)
        .linux(linux)
        .build()
        .map_err(spec_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_spec(layout: CgroupLayout) -> serde_json::Value {
        let process =
            ProcessConfig::from_image_config(&[], &["nginx".to_string()], &[], None, None);
        let user = ResolvedUser {
            uid: 33,
            gid: 33,
            additional_gids: vec![4],
        };
        let limits = Limits {
            cpus: 0.5,
            memory_bytes: 64 << 20,
            pids: 64,
            scratch_bytes: 1 << 20,
        };
        let spec = build_spec(&SpecInput {
            process: &process,
            user: &user,
            limits: &limits,
            hostname: "box",
            cgroups_path: "/vexxy/abc",
            cgroups: &layout,
            nofile_hard: Some(20000),
            hosts_file: Path::new("/s/hosts"),
            hostname_file: Path::new("/s/hostname"),
        })
        .expect("spec");
        serde_json::to_value(&spec).expect("json")
    }

    #[test]
    fn spec_isolates() {
        let v = input_spec(CgroupLayout {
            memsw: true,
            ..CgroupLayout::default()
        });
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .iter()
            .map(|n| n["type"].as_str().expect("type"))
            .collect();
        for want in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
            assert!(ns.contains(&want), "{want} in {ns:?}");
        }
        assert!(!ns.contains(&"user"));
        let p = &v["process"];
        assert_eq!(p["terminal"], false);
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(p["user"]["uid"], 33);
        assert_eq!(p["user"]["additionalGids"][0], 4);
        assert_eq!(p["env"][0], format!("PATH={}", crate::config::DEFAULT_PATH));
        for set in ["bounding", "effective", "permitted"] {
            let mut caps: Vec<&str> = p["capabilities"][set]
                .as_array()
                .expect("caps")
                .iter()
                .map(|c| c.as_str().expect("cap"))
                .collect();
            caps.sort_unstable();
            assert_eq!(
                caps,
                [
                    "CAP_AUDIT_WRITE",
                    "CAP_CHOWN",
                    "CAP_DAC_OVERRIDE",
                    "CAP_FOWNER",
                    "CAP_FSETID",
                    "CAP_KILL",
                    "CAP_MKNOD",
                    "CAP_NET_BIND_SERVICE",
                    "CAP_NET_RAW",
                    "CAP_SETFCAP",
                    "CAP_SETGID",
                    "CAP_SETPCAP",
                    "CAP_SETUID",
                    "CAP_SYS_CHROOT"
                ]
            );
        }
        assert_eq!(p["capabilities"]["inheritable"], serde_json::json!([]));
        assert_eq!(p["capabilities"]["ambient"], serde_json::json!([]));
        let l = &v["linux"];
        assert_eq!(p["rlimits"][0]["hard"], 20000);
        assert_eq!(l["cgroupsPath"], "/vexxy/abc");
        assert_eq!(l["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(l["resources"]["memory"]["swap"], 64 << 20);
        assert_eq!(l["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(l["resources"]["cpu"]["period"], 100_000);
        assert_eq!(l["resources"]["pids"]["limit"], 64);
        assert_eq!(l["resources"]["devices"][0]["allow"], false);
        assert_eq!(
            l["maskedPaths"].as_array().expect("masked").len(),
            MASKED_PATHS.len()
        );
        assert!(l["readonlyPaths"]
            .as_array()
            .expect("ro")
            .iter()
            .any(|p| p == "/proc/sys"));
        assert_eq!(l["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let mounts = v["mounts"].as_array().expect("mounts");
        let sys = mounts
            .iter()
            .find(|m| m["destination"] == "/sys")
            .expect("sys");
        assert!(sys["options"]
            .as_array()
            .expect("o")
            .iter()
            .any(|o| o == "ro"));
        let cg = mounts
            .iter()
            .find(|m| m["destination"] == "/sys/fs/cgroup")
            .expect("cgroup");
        assert!(cg["options"]
            .as_array()
            .expect("o")
            .iter()
            .any(|o| o == "ro"));
        assert_eq!(v["root"]["path"], "rootfs");
        assert_eq!(v["hostname"], "box");
    }

    #[test]
    fn no_swap_limit_without_swap_accounting() {
        let v = input_spec(CgroupLayout::default());
        assert!(v["linux"]["resources"]["memory"]["swap"].is_null());
    }
}
