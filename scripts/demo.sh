#!/usr/bin/env bash
# The main job end to end on embedded defaults, through the service:
# builds a real nginx image (Debian bookworm, image_filter/xslt/geoip
# modules installed but not enabled) as an OCI layout, starts `vexxy serve`
# (SQLite and a local evidence directory under ./vexxy-demo/service, one
# in-process worker), creates an organisation and an API key, submits the
# image with the real Grype report of the official nginx image, waits,
# prints the VEX summary, downloads every output (OpenVEX, CycloneDX VEX,
# CSAF, evidence, execution profile, runtime SBOM, Markdown/HTML report)
# into ./vexxy-demo/ (or $1) and stops the service. Needs root.
#
#   scripts/demo.sh --cli [DIR]   the same analysis with `vexxy analyze`, no service
set -euo pipefail
cd "$(dirname "$0")/.."
mode=service
if [[ "${1:-}" == "--cli" ]]; then
  mode=cli
  shift
fi
out="${1:-vexxy-demo}"

scripts/ensure-deps.sh
scripts/build-test-images.sh --with-archives --only nginx
images="$(scripts/build-test-images.sh --print-dir)"
cargo build --release --locked -q -p vexxy
vexxy="$PWD/target/release/vexxy"
# The real Grype report is of the official nginx image, another image than
# the one built here: --allow-report-mismatch decides it about the versions
# installed in this one (the summary lists what differed). With a report of
# your own image, leave the flag off: a report of another image is refused.
report=../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json
# The layout names its image docker.io/vexxy-test/nginx, so the VEX product
# is pkg:oci/nginx@sha256:<manifest digest>: what Trivy computes for the image
# once pushed to any registry path ending in /nginx.
image="oci:$images/nginx/oci:latest"
duration="${DEFAULT_ANALYSIS_DURATION:-30s}"

if [[ "$mode" == cli ]]; then
  "$vexxy" analyze "$image" --scan "$report" --allow-report-mismatch --duration "$duration" --out "$out"
  "$vexxy" vex validate "$out/vex.openvex.json"
  echo "outputs in $out/ (report: $out/report.html)"
  echo "to apply it: push the image (skopeo copy --preserve-digests) to REGISTRY/…/nginx, then"
  echo "  trivy image --vex $out/vex.openvex.json REGISTRY/…/nginx  (by registry reference, not --input; docs/vex-outputs.md)"
  exit 0
fi

mkdir -p "$out"
data="$out/service"
export VEXXY_DATA_DIR="$data"
log="$out/service.log"
"$vexxy" serve --listen 127.0.0.1:0 --allow-local-images "$images" >"$out/service.addr" 2>"$log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [[ -s "$out/service.addr" ]] && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 3; }
  sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$out/service.addr")"
echo "vexxy serve on $url (SQLite and evidence in $data)"

org=demo-$(date +%s)
"$vexxy" admin create-org "$org" --tier enterprise >/dev/null
export VEXXY_API_KEY="$("$vexxy" admin create-key "$org" 2>/dev/null)"
export VEXXY_SERVER="$url"

"$vexxy" submit "$image" --scan "$report" --allow-report-mismatch --duration "$duration" --wait -o "$out/vex.openvex.json"
job="$(curl -fsS -H "authorization: Bearer $VEXXY_API_KEY" "$url/api/v1/analysis?status=complete&per_page=1" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["job_id"])')"
for file in vex.cdx.json vex.csaf.json evidence.json profile.json sbom.runtime.cdx.json report.md report.html; do
  "$vexxy" results "$job" --artifact "$file" -o "$out/$file"
done
"$vexxy" vex validate "$out/vex.openvex.json"
echo "outputs in $out/ (report: $out/report.html); job $job; service log: $log"
echo "to apply it: push the image (skopeo copy --preserve-digests) to REGISTRY/…/nginx, then"
echo "  trivy image --vex $out/vex.openvex.json REGISTRY/…/nginx  (by registry reference, not --input; docs/vex-outputs.md)"
