//! Compiles the BPF programs with clang and generates their Rust skeleton.
//!
//! `vmlinux.h` (the kernel's types, for CO-RE) is generated from the running
//! kernel's BTF with bpftool, or taken from `VEXXY_VMLINUX_H` when set. The
//! programs relocate against whatever kernel loads them, so the header only
//! has to be close, not exact.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

const SRC: &str = "src/bpf/trace.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=src/bpf/trace.h");
    println!("cargo:rerun-if-env-changed=VEXXY_VMLINUX_H");

    let vmlinux = out.join("vmlinux.h");
    match env::var_os("VEXXY_VMLINUX_H") {
        Some(given) => {
            fs::copy(&given, &vmlinux).unwrap_or_else(|e| {
                panic!(
                    "cannot copy VEXXY_VMLINUX_H={}: {e}",
                    PathBuf::from(&given).display()
                )
            });
        }
        None => {
            let dumped = Command::new("bpftool")
                .args([
                    "btf",
                    "dump",
                    "file",
                    "/sys/kernel/btf/vmlinux",
                    "format",
                    "c",
                ])
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run bpftool to generate vmlinux.h ({e}); install it \
                         (apt-get install bpftool clang libelf-dev) or set VEXXY_VMLINUX_H"
                    )
                });
            if !dumped.status.success() {
                panic!(
                    "bpftool btf dump of /sys/kernel/btf/vmlinux failed: {}; set VEXXY_VMLINUX_H",
                    String::from_utf8_lossy(&dumped.stderr).trim()
                );
            }
            fs::write(&vmlinux, dumped.stdout).expect("write vmlinux.h into OUT_DIR");
        }
    }

    let arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86",
        Ok("aarch64") => "arm64",
        Ok(other) => panic!("the tracer has no syscall table for target arch {other}"),
        Err(_) => "x86",
    };
    let skel = out.join("trace.skel.rs");
    libbpf_cargo::SkeletonBuilder::new()
        .source(SRC)
        .clang_args([
            "-I".into(),
            out.clone().into_os_string(),
            "-Isrc/bpf".into(),
            format!("-D__TARGET_ARCH_{arch}").into(),
            "-O2".into(),
            "-g".into(),
            "-Wall".into(),
        ])
        .build_and_generate(&skel)
        .unwrap_or_else(|e| panic!("building {SRC} failed (is clang installed?): {e:#}"));
}
