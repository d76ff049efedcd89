#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds the test images
# (cached outside the repo), runs every test, then the benchmarks once.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
# A clean checkout gains nothing from incremental state, and it is the
# largest part of a debug target directory.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
echo "test: $(df -h --output=avail . | tail -1 | tr -d ' ') free on the disk holding the checkout"
scripts/validate-kubernetes.sh
scripts/build-test-images.sh --with-archives
export VEXXY_CACHE_DIR="${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}"

cargo build --workspace --all-targets --locked
cargo test --workspace --locked 2>&1 | tee /tmp/vexxy-test.log
cargo bench -p vexxy --bench vex_throughput --locked
cargo bench -p vexxy --bench sbom_vs_syft --locked
cargo bench -p vexxy --bench reevaluate --locked
cargo bench -p vexxy --bench service_load --locked
cargo bench -p vexxy --bench hostile_body --locked
cargo bench -p vexxy --bench service_redecide --locked
cargo bench -p vexxy --bench analyses_per_hour --locked
cargo bench -p vexxy-web --bench render --locked
cargo bench -p vexxy-run --bench tracer_overhead --locked
