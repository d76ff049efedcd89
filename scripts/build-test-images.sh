#!/usr/bin/env bash
# Builds real Debian bookworm test images for vexxy's integration tests.
#
# The images live in a cache outside the repository:
#   ${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}/test-images/<name>/
# Each image directory holds `rootfs/` (the unpacked root filesystem),
# `config.json` (an OCI image config fragment), and a `stamp` file with the
# hash of the recipe that built it. With --with-archives it also holds
# `oci/` (OCI layout, tag `latest`), `image.oci.tar` and `image.docker.tar`.
#
# Idempotent: an image whose stamp matches the current recipe is left alone.
# A rebuild happens in a temporary directory beside the image and is renamed
# into place, so a reader never sees a half-built image.
#
# Usage: scripts/build-test-images.sh [--with-archives] [--only NAME]... [--print-dir]
# Needs root (mmdebstrap --mode=root). See docs/test-images.md.
set -euo pipefail

readonly RECIPE_VERSION=1
readonly SUITE=bookworm
readonly ALL_IMAGES=(nginx nginx-imagefilter python-flask)
readonly PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

cache_root() {
    printf '%s\n' "${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}/test-images"
}

log() { printf '[build-test-images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------- tools

ensure_tools() {
    local missing=() tool
    for tool in mmdebstrap umoci skopeo; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]} with apt-get"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

# The apt sources mmdebstrap uses: the host's Debian sources when present
# (they point at a reachable mirror), else the default mirror.
debian_sources() {
    if [[ -n "${VEXXY_DEBIAN_SOURCES:-}" ]]; then
        printf '%s\n' "$VEXXY_DEBIAN_SOURCES"
    elif [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        printf '%s\n' /etc/apt/sources.list.d/debian.sources
    elif [[ -s /etc/apt/sources.list ]]; then
        printf '%s\n' /etc/apt/sources.list
    else
        printf '%s\n' http://deb.debian.org/debian
    fi
}

# ---------------------------------------------------------------- helpers

json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

json_array() {
    local first=1 item
    printf '['
    for item in "$@"; do
        ((first)) || printf ','
        first=0
        json_str "$item"
    done
    printf ']'
}

# write_config FILE PORT ENTRYPOINT... : the OCI config fragment.
write_config() {
    local file=$1 port=$2
    shift 2
    {
        printf '{"Entrypoint":'
        json_array "$@"
        printf ',"Env":'
        json_array "$PATH_ENV"
        printf ',"ExposedPorts":{%s:{}}}\n' "$(json_str "$port")"
    } >"$file"
}

# mmdebstrap_minbase DIR PACKAGES : a merged-usr minbase bookworm rootfs.
mmdebstrap_minbase() {
    local dir=$1 packages=$2
    # The hook's "$1" is expanded by mmdebstrap (the chroot directory).
    # shellcheck disable=SC2016
    mmdebstrap --mode=root --variant=minbase --format=directory \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --include="$packages" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb "$1"/var/log/apt/* "$1"/var/log/dpkg.log' \
        "$SUITE" "$dir" "$(debian_sources)" </dev/null
}

# ---------------------------------------------------------------- recipes
# Each recipe_<name> gets an empty image directory and fills it. The stamp
# hash covers the recipe function, the helpers it calls and RECIPE_VERSION.

readonly NGINX_PACKAGES=nginx,libnginx-mod-http-image-filter,libnginx-mod-http-xslt-filter,libnginx-mod-http-geoip,curl,gettext-base,ca-certificates

recipe_nginx() {
    local out=$1 link
    mmdebstrap_minbase "$out/rootfs" "$NGINX_PACKAGES"
    # Install the dynamic modules but do not enable them: record each
    # enabling symlink (name and target) and remove it.
    : >"$out/removed-modules-enabled.txt"
    for link in "$out"/rootfs/etc/nginx/modules-enabled/*; do
        [[ -e "$link" || -L "$link" ]] || continue
        printf '%s\t%s\n' "${link##*/}" "$(readlink "$link")" >>"$out/removed-modules-enabled.txt"
        rm -f "$link"
    done
    write_config "$out/config.json" 80/tcp nginx -g 'daemon off;'
}

recipe_nginx-imagefilter() {
    local out=$1 base name target restored=0
    base="$(cache_root)/nginx"
    [[ -f "$base/stamp" ]] || die "nginx-imagefilter needs the nginx image first"
    cp -a "$base/rootfs" "$out/rootfs"
    # Restore only the image_filter module's enabling symlink.
    while IFS=$'\t' read -r name target; do
        if [[ "$name" == *image-filter* ]]; then
            ln -s "$target" "$out/rootfs/etc/nginx/modules-enabled/$name"
            restored=1
        fi
    done <"$base/removed-modules-enabled.txt"
    ((restored)) || die "no image-filter symlink recorded in $base/removed-modules-enabled.txt"
    write_config "$out/config.json" 80/tcp nginx -g 'daemon off;'
}

recipe_python-flask() {
    local out=$1
    mmdebstrap_minbase "$out/rootfs" python3,python3-flask,python3-requests,python3-yaml
    mkdir -p "$out/rootfs/app"
    cat >"$out/rootfs/app/app.py" <<'PY'
"""A tiny Flask app for vexxy's tests: uses flask and requests, never yaml."""
import requests
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return {"requests": requests.__version__}


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8080)
PY
    write_config "$out/config.json" 8080/tcp python3 /app/app.py
}

recipe_hash() {
    local name=$1
    {
        printf 'recipe-version %s suite %s\n' "$RECIPE_VERSION" "$SUITE"
        printf 'nginx-packages %s path %s\n' "$NGINX_PACKAGES" "$PATH_ENV"
        declare -f mmdebstrap_minbase write_config json_array json_str "recipe_$name"
        # A derived image changes when its base does.
        if [[ "$name" == nginx-imagefilter ]]; then
            recipe_hash nginx
        fi
    } | sha256sum | cut -d' ' -f1
}

# ---------------------------------------------------------------- archives

# build_archives NAME DIR : OCI layout + oci-archive + docker-archive.
build_archives() {
    local name=$1 dir=$2 tmp
    tmp="$dir/.archives.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    tar -C "$dir/rootfs" --numeric-owner --xattrs --sort=name -cf "$tmp/layer.tar" .
    umoci init --layout "$tmp/oci"
    umoci new --image "$tmp/oci:latest"
    umoci raw add-layer --image "$tmp/oci:latest" --history.created_by "vexxy build-test-images.sh $name" "$tmp/layer.tar"
    rm -f "$tmp/layer.tar"
    local args=(--image "$tmp/oci:latest" --config.env "$PATH_ENV" --config.exposedports "$(jq -r '.ExposedPorts | keys[0]' "$dir/config.json")")
    local ep
    while IFS= read -r ep; do
        args+=(--config.entrypoint "$ep")
    done < <(jq -r '.Entrypoint[]' "$dir/config.json")
    umoci config "${args[@]}"
    umoci gc --layout "$tmp/oci"
    skopeo copy --quiet "oci:$tmp/oci:latest" "oci-archive:$tmp/image.oci.tar:latest"
    skopeo copy --quiet "oci:$tmp/oci:latest" "docker-archive:$tmp/image.docker.tar:vexxy-test/$name:latest"
    rm -rf "$dir/oci" "$dir/image.oci.tar" "$dir/image.docker.tar"
    mv "$tmp/oci" "$dir/oci"
    mv "$tmp/image.oci.tar" "$dir/image.oci.tar"
    mv "$tmp/image.docker.tar" "$dir/image.docker.tar"
    rm -rf "$tmp"
}

archives_hash() {
    { recipe_hash "$1"; declare -f build_archives; } | sha256sum | cut -d' ' -f1
}

# ---------------------------------------------------------------- driver

build_image() {
    local name=$1 root dir want tmp start
    root=$(cache_root)
    dir="$root/$name"
    want=$(recipe_hash "$name")
    if [[ -f "$dir/stamp" && "$(cat "$dir/stamp")" == "$want" ]]; then
        log "$name: up to date"
    else
        log "$name: building"
        start=$SECONDS
        # We hold the lock: leftovers of an interrupted build can go.
        rm -rf "$root/.$name.tmp."* "$root/.$name.old."*
        tmp=$(mktemp -d "$root/.$name.tmp.XXXXXX")
        BUILD_TMP=$tmp
        chmod 755 "$tmp"
        # mmdebstrap wants a missing or empty target; recipes create rootfs/.
        "recipe_$name" "$tmp" >&2
        printf '%s\n' "$want" >"$tmp/stamp"
        if [[ -e "$dir" ]]; then
            mv "$dir" "$root/.$name.old.$$"
        fi
        mv "$tmp" "$dir"
        rm -rf "$root/.$name.old.$$"
        BUILD_TMP=
        log "$name: built in $((SECONDS - start)) s"
    fi
    printf '%s\n' "$dir/rootfs" "$dir/config.json"
}

build_image_archives() {
    local name=$1 dir want start
    dir="$(cache_root)/$name"
    want=$(archives_hash "$name")
    if [[ -f "$dir/archives.stamp" && "$(cat "$dir/archives.stamp")" == "$want" ]]; then
        log "$name archives: up to date"
    else
        log "$name archives: building"
        start=$SECONDS
        rm -f "$dir/archives.stamp"
        build_archives "$name" "$dir" >&2
        printf '%s\n' "$want" >"$dir/archives.stamp"
        log "$name archives: built in $((SECONDS - start)) s"
    fi
    name_layout "$name" "$dir/oci"
    printf '%s\n' "$dir/oci" "$dir/image.oci.tar" "$dir/image.docker.tar"
}

# name_layout NAME LAYOUT : names the layout's image as a registry would
# (`io.containerd.image.name`, as buildkit's OCI exporter writes it), so
# VEX about it names the product `pkg:oci/NAME@…` the way scanners see the
# image once pushed. Idempotent; index.json is replaced atomically.
name_layout() {
    local name=$1 layout=$2 want
    want="docker.io/vexxy-test/$name:latest"
    if [[ "$(jq -r '.manifests[0].annotations["io.containerd.image.name"] // ""' "$layout/index.json")" == "$want" ]]; then
        return
    fi
    jq -c --arg n "$want" '.manifests |= map(if .annotations["org.opencontainers.image.ref.name"] == "latest"
        then .annotations["io.containerd.image.name"] = $n else . end)' \
        "$layout/index.json" >"$layout/.index.json.tmp"
    mv "$layout/.index.json.tmp" "$layout/index.json"
}

BUILD_TMP=
cleanup() {
    if [[ -n "$BUILD_TMP" && -d "$BUILD_TMP" ]]; then
        rm -rf "$BUILD_TMP"
    fi
}
trap cleanup EXIT

main() {
    local with_archives=0 print_dir=0 only=() name
    while (($#)); do
        case $1 in
            --with-archives) with_archives=1 ;;
            --print-dir) print_dir=1 ;;
            --only)
                (($# >= 2)) || die "--only needs an image name"
                only+=("$2")
                shift
                ;;
            --only=*) only+=("${1#--only=}") ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown argument: $1 (try --help)" ;;
        esac
        shift
    done
    if ((print_dir)); then
        cache_root
        exit 0
    fi
    ((${#only[@]})) || only=("${ALL_IMAGES[@]}")
    for name in "${only[@]}"; do
        [[ " ${ALL_IMAGES[*]} " == *" $name "* ]] || die "unknown image $name (known: ${ALL_IMAGES[*]})"
    done
    ((EUID == 0)) || die "must run as root (mmdebstrap --mode=root)"

    local root
    root=$(cache_root)
    mkdir -p "$root"
    # One build at a time per cache directory.
    exec 9>"$root/.lock"
    flock 9
    ensure_tools
    command -v jq >/dev/null 2>&1 || ((!with_archives)) || die "--with-archives needs jq"

    # An image built from another (nginx-imagefilter) needs its base; the
    # base is built even when not asked for, but not printed.
    local ordered=()
    for name in "${ALL_IMAGES[@]}"; do
        if [[ " ${only[*]} " == *" $name "* ]]; then
            ordered+=("$name")
        elif [[ "$name" == nginx && " ${only[*]} " == *" nginx-imagefilter "* ]]; then
            build_image nginx >/dev/null
        fi
    done
    # Root filesystems first (other work waits on them), archives after.
    for name in "${ordered[@]}"; do
        build_image "$name"
    done
    if ((with_archives)); then
        for name in "${ordered[@]}"; do
            build_image_archives "$name"
        done
    fi
}

main "$@"
