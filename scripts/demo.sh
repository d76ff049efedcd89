#!/usr/bin/env bash
# The main job end to end on embedded defaults: builds a real nginx image
# rootfs (Debian bookworm, image_filter/xslt/geoip modules installed but not
# enabled), decides the real Grype report of the official nginx image
# against it, and writes OpenVEX, CycloneDX VEX, CSAF VEX and the evidence
# JSON into ./vexxy-demo/ (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-vexxy-demo}"

scripts/ensure-deps.sh
scripts/build-test-images.sh --only nginx
images="$(scripts/build-test-images.sh --print-dir)"
cargo build --release --locked -q -p vexxy
vexxy=target/release/vexxy

reports=../shared/testdata/scanner-reports
product='nginx@sha256:fb39280b7b9eba5727c884a3c7810002e69e8f961cc373b89c92f14961d903a0'
mkdir -p "$out"
for fmt in openvex cyclonedx csaf; do
  "$vexxy" vex --quiet --summary none \
    --scan "$reports/dimpact_nginx-latest_2025-06-08_grype.json" \
    --rootfs "$images/nginx/rootfs" --image-config "$images/nginx/config.json" \
    --product "$product" --format "$fmt" -o "$out/nginx.$fmt.json"
done
"$vexxy" vex \
  --scan "$reports/dimpact_nginx-latest_2025-06-08_grype.json" \
  --rootfs "$images/nginx/rootfs" --image-config "$images/nginx/config.json" \
  --product "$product" --evidence-out "$out/nginx.evidence.json" -o "$out/nginx.openvex.json"
"$vexxy" vex validate "$out/nginx.openvex.json"
echo "outputs in $out/"
