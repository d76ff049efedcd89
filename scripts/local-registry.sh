#!/usr/bin/env bash
# Starts or stops a throwaway local OCI registry (Debian's `docker-registry`,
# i.e. CNCF distribution) on 127.0.0.1 for trying `vexxy-registry` by hand.
#
#   scripts/local-registry.sh start [--port N] [--auth USER:PASS] [--push NAME]...
#   scripts/local-registry.sh stop
#   scripts/local-registry.sh status
#
# State (config, storage, htpasswd, pid, log) lives in
#   ${VEXXY_REGISTRY_DIR:-${XDG_RUNTIME_DIR:-/tmp}/vexxy-registry}
# `--auth` enables htpasswd basic auth (needs `htpasswd` from apache2-utils).
# `--push NAME` copies the test image NAME (nginx, python-flask) from the
# cache built by scripts/build-test-images.sh --with-archives, with skopeo.
# The registry speaks plain HTTP: pass its host:port as an insecure registry.
# Needs: apt-get install docker-registry skopeo [apache2-utils].
set -euo pipefail

state="${VEXXY_REGISTRY_DIR:-${XDG_RUNTIME_DIR:-/tmp}/vexxy-registry}"
cache="${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}"

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

running() { [[ -f "$state/pid" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null; }

cmd_start() {
  local port=5000 auth="" pushes=()
  while (($#)); do
    case "$1" in
      --port) port="$2"; shift 2 ;;
      --auth) auth="$2"; shift 2 ;;
      --push) pushes+=("$2"); shift 2 ;;
      -h|--help) usage ;;
      *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
  done
  command -v docker-registry >/dev/null || { echo "docker-registry not installed (apt-get install docker-registry)" >&2; exit 1; }
  if running; then echo "already running (pid $(cat "$state/pid")); stop it first" >&2; exit 1; fi
  mkdir -p "$state/storage"
  local auth_yaml=""
  if [[ -n "$auth" ]]; then
    command -v htpasswd >/dev/null || { echo "htpasswd not installed (apt-get install apache2-utils)" >&2; exit 1; }
    htpasswd -Bbn "${auth%%:*}" "${auth#*:}" > "$state/htpasswd"
    auth_yaml=$'auth:\n  htpasswd:\n    realm: vexxy-local\n    path: '"$state/htpasswd"
  fi
  cat > "$state/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $state/storage
http:
  addr: 127.0.0.1:$port
  secret: vexxy-local-secret
$auth_yaml
EOF
  docker-registry serve "$state/config.yml" > "$state/registry.log" 2>&1 &
  echo $! > "$state/pid"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    running || { cat "$state/registry.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "registry listening on 127.0.0.1:$port (pid $(cat "$state/pid"), state in $state)"
  local creds=()
  [[ -n "$auth" ]] && creds=(--dest-creds "$auth")
  for name in "${pushes[@]}"; do
    local layout="$cache/test-images/$name/oci"
    [[ -f "$layout/index.json" ]] || { echo "no OCI layout at $layout (run scripts/build-test-images.sh --with-archives)" >&2; exit 1; }
    skopeo copy --quiet --preserve-digests --dest-tls-verify=false "${creds[@]}" \
      "oci:$layout:latest" "docker://127.0.0.1:$port/$name:latest"
    echo "pushed 127.0.0.1:$port/$name:latest"
  done
}

cmd_stop() {
  if running; then
    kill "$(cat "$state/pid")"
    echo "stopped pid $(cat "$state/pid")"
  else
    echo "not running"
  fi
  rm -f "$state/pid"
}

cmd_status() {
  if running; then echo "running (pid $(cat "$state/pid"))"; else echo "not running"; fi
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h|--help|"") usage ;;
  *) echo "unknown command: $1" >&2; usage 2 ;;
esac
