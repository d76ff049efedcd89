//! The default seccomp profile (`seccomp/default.json`), turned into the OCI
//! form for the host architecture.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompBuilder,
    LinuxSyscallBuilder,
};
use serde::Deserialize;

use crate::SandboxError;

/// The profile data, kept in a file so it can be reviewed as a whole.
const PROFILE: &str = include_str!("../seccomp/default.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProfileFile {
    #[allow(dead_code)]
    comment: String,
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    /// host architecture (`std::env::consts::ARCH`) → filter architectures
    architectures: BTreeMap<String, Vec<Arch>>,
    syscalls: Vec<RuleFile>,
    /// Calls no rule may allow (checked by the tests).
    #[allow(dead_code)]
    must_block: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleFile {
    names: Vec<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    args: Vec<LinuxSeccompArg>,
    errno_ret: Option<u32>,
    /// Only on these host architectures (all when empty).
    #[serde(default)]
    arches: Vec<String>,
    #[allow(dead_code)]
    comment: Option<String>,
}

fn parse() -> Result<ProfileFile, SandboxError> {
    serde_json::from_str(PROFILE).map_err(|e| {
        SandboxError::InvalidConfig(format!(
            "built-in seccomp profile seccomp/default.json: {e}"
        ))
    })
}

/// The default seccomp profile for the host architecture: an allowlist
/// modelled on moby's default (see `docs/sandbox.md`); everything else
/// fails with EPERM, `clone3` with ENOSYS, `clone` with namespace flags
/// with EPERM.
pub fn default_seccomp_profile() -> Result<LinuxSeccomp, SandboxError> {
    profile_for(std::env::consts::ARCH)
}

fn profile_for(arch: &str) -> Result<LinuxSeccomp, SandboxError> {
    let file = parse()?;
    let build_err =
        |e: oci_spec::OciSpecError| SandboxError::InvalidConfig(format!("seccomp profile: {e}"));
    let mut syscalls = Vec::new();
    for rule in file.syscalls {
        if !rule.arches.is_empty() && !rule.arches.iter().any(|a| a == arch) {
            continue;
        }
        let mut b = LinuxSyscallBuilder::default()
            .names(rule.names)
            .action(rule.action);
        if !rule.args.is_empty() {
            b = b.args(rule.args);
        }
        if let Some(errno) = rule.errno_ret {
            b = b.errno_ret(errno);
        }
        syscalls.push(b.build().map_err(build_err)?);
    }
    let mut b = LinuxSeccompBuilder::default()
        .default_action(file.default_action)
        .syscalls(syscalls);
    if let Some(errno) = file.default_errno_ret {
        b = b.default_errno_ret(errno);
    }
    if let Some(arches) = file.architectures.get(arch) {
        b = b.architectures(arches.clone());
    }
    b.build().map_err(build_err)
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxSeccompOperator;

    use super::*;

    /// Syscalls the isolation requirements say must be blocked.
    const REQUIRED_BLOCKED: &[&str] = &[
        "mount",
        "umount2",
        "pivot_root",
        "unshare",
        "setns",
        "bpf",
        "perf_event_open",
        "kexec_load",
        "init_module",
        "finit_module",
        "delete_module",
        "keyctl",
        "add_key",
        "request_key",
        "open_by_handle_at",
        "reboot",
        "swapon",
        "swapoff",
        "syslog",
        "iopl",
        "ioperm",
        "clock_settime",
        "settimeofday",
        "userfaultfd",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "acct",
        "quotactl",
    ];

    #[test]
    fn profile_parses_for_both_architectures() {
        for arch in ["x86_64", "aarch64"] {
            let p = profile_for(arch).expect("profile");
            assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
            assert_eq!(p.default_errno_ret(), Some(1));
            assert!(!p.architectures().as_ref().expect("arches").is_empty());
        }
        let x86 = profile_for("x86_64").expect("x86");
        assert_eq!(
            x86.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        let names = |p: &LinuxSeccomp| -> Vec<String> {
            p.syscalls()
                .iter()
                .flatten()
                .flat_map(|s| s.names().clone())
                .collect()
        };
        assert!(names(&x86).contains(&"arch_prctl".to_string()));
        let arm = profile_for("aarch64").expect("arm");
        assert!(!names(&arm).contains(&"arch_prctl".to_string()));
        assert!(names(&arm).contains(&"set_tls".to_string()));
    }

    #[test]
    fn required_calls_are_not_allowed() {
        let file = parse().expect("parse");
        for name in REQUIRED_BLOCKED {
            assert!(
                file.must_block.iter().any(|n| n == name),
                "{name} not in mustBlock"
            );
        }
        for rule in &file.syscalls {
            for name in &rule.names {
                if rule.action == LinuxSeccompAction::ScmpActAllow {
                    assert!(!file.must_block.contains(name), "{name} is allowed");
                }
            }
        }
    }

    #[test]
    fn clone_and_clone3_like_docker() {
        let p = profile_for("x86_64").expect("profile");
        let rules: Vec<_> = p.syscalls().iter().flatten().collect();
        let clone3 = rules
            .iter()
            .find(|r| r.names().iter().any(|n| n == "clone3"))
            .expect("clone3");
        assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3.errno_ret(), Some(38));
        let clone = rules
            .iter()
            .find(|r| r.names().iter().any(|n| n == "clone"))
            .expect("clone");
        let arg = &clone.args().as_ref().expect("args")[0];
        assert_eq!(arg.index(), 0);
        assert_eq!(arg.value(), 0x7E02_0000);
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        // clone is allowed only through that masked rule
        assert_eq!(
            rules
                .iter()
                .filter(|r| r.names().iter().any(|n| n == "clone"))
                .count(),
            1
        );
    }

    #[test]
    fn essential_calls_are_allowed() {
        let p = profile_for("x86_64").expect("profile");
        let allowed: Vec<String> = p
            .syscalls()
            .iter()
            .flatten()
            .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
            .flat_map(|r| r.names().clone())
            .collect();
        for name in [
            "execve",
            "openat",
            "read",
            "write",
            "mmap",
            "futex",
            "epoll_wait",
            "accept4",
            "sendfile",
            "setuid",
            "setgroups",
            "wait4",
            "rt_sigreturn",
            "exit_group",
            "vfork",
            "chroot",
            "prctl",
            "getrandom",
            "statx",
            "rseq",
        ] {
            assert!(allowed.iter().any(|a| a == name), "{name} must be allowed");
        }
    }
}
