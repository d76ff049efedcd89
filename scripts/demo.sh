#!/usr/bin/env bash
# The main job end to end on embedded defaults: builds a real nginx image
# (Debian bookworm, image_filter/xslt/geoip modules installed but not
# enabled) as an OCI layout, then `vexxy analyze`s it against the real
# Grype report of the official nginx image: catalog, static evidence, a
# 30 s sandboxed, exercised, eBPF-traced run, verdicts, and every output
# (OpenVEX, CycloneDX VEX, CSAF, evidence, execution profile, runtime SBOM,
# Markdown/HTML report) in ./vexxy-demo/ (or $1). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-vexxy-demo}"

scripts/ensure-deps.sh
scripts/build-test-images.sh --with-archives --only nginx
images="$(scripts/build-test-images.sh --print-dir)"
cargo build --release --locked -q -p vexxy
vexxy=target/release/vexxy

reports=../shared/testdata/scanner-reports
"$vexxy" analyze "oci:$images/nginx/oci:latest" \
  --scan "$reports/dimpact_nginx-latest_2025-06-08_grype.json" \
  --duration "${DEFAULT_ANALYSIS_DURATION:-30s}" --out "$out"
"$vexxy" vex validate "$out/vex.openvex.json"
echo "outputs in $out/ (report: $out/report.html)"
