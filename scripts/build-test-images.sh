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
readonly ALL_IMAGES=(nginx nginx-imagefilter python-flask redis tz-ca-reader node-service java-service go-vulnerable)
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

# A non-HTTP server whose executed path is a symlink into another
# package's binary: Debian's redis-server ships /usr/bin/redis-server as a
# symlink to redis-check-rdb, which redis-tools ships.
recipe_redis() {
    local out=$1
    mmdebstrap_minbase "$out/rootfs" redis-server
    [[ -L "$out/rootfs/usr/bin/redis-server" ]] || die "redis-server is no longer a symlink in $SUITE"
    write_config "$out/config.json" 6379/tcp redis-server --bind 0.0.0.0 --port 6379 --protected-mode no --save '' --appendonly no --daemonize no
}

# A service that reads data packages with security relevance on every
# request: the time zone database and the CA bundle.
recipe_tz-ca-reader() {
    local out=$1
    mmdebstrap_minbase "$out/rootfs" python3,tzdata,ca-certificates
    mkdir -p "$out/rootfs/app"
    cat >"$out/rootfs/app/server.py" <<'PY'
"""vexxy test service: each request reads tzdata and the CA bundle."""
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo
from datetime import datetime

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        now = datetime.now(ZoneInfo("Europe/Berlin"))
        ctx = ssl.create_default_context(cafile=CA_BUNDLE)
        body = f"{now.isoformat()} {len(ctx.get_ca_certs())} CAs\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
PY
    write_config "$out/config.json" 8080/tcp python3 /app/server.py
}

# A Node service with npm dependencies in node_modules, installed from the
# npm registry with the host's npm (lifecycle scripts off): express serves
# every request, lodash is installed but never required.
recipe_node-service() {
    local out=$1 npm_cache
    command -v npm >/dev/null 2>&1 || die "node-service needs the host's npm"
    mmdebstrap_minbase "$out/rootfs" nodejs
    mkdir -p "$out/rootfs/app"
    cat >"$out/rootfs/app/package.json" <<'JSON'
{
  "name": "vexxy-node-service",
  "version": "1.0.0",
  "private": true,
  "main": "server.js",
  "dependencies": {
    "express": "4.21.2",
    "lodash": "4.17.21"
  }
}
JSON
    cat >"$out/rootfs/app/server.js" <<'JS'
// vexxy test service: express answers every request; lodash is a
// dependency the service never requires.
"use strict";
const express = require("express");

const app = express();
app.get("/", (req, res) => res.json({ service: "vexxy-node-service", express: require("express/package.json").version }));
app.get("/hello/:name", (req, res) => res.type("text/plain").send(`hello ${req.params.name}\n`));
app.listen(8080, "0.0.0.0");
JS
    npm_cache=$(mktemp -d)
    (
        cd "$out/rootfs/app"
        npm install --package-lock-only --omit=dev --ignore-scripts --no-audit --no-fund --cache "$npm_cache"
        npm ci --omit=dev --ignore-scripts --no-audit --no-fund --cache "$npm_cache"
    )
    rm -rf "$npm_cache"
    [[ -f "$out/rootfs/app/node_modules/express/package.json" && -f "$out/rootfs/app/node_modules/lodash/package.json" ]] ||
        die "node-service: npm ci did not install express and lodash"
    write_config "$out/config.json" 8080/tcp node /app/server.js
}

# A Java service (the JDK's com.sun.net.httpserver) compiled with the
# host's javac against Debian's commons-lang3, which it uses on every
# request. commons-cli is on the classpath but none of its classes is ever
# loaded (the JVM's service-loader scans still open it); commons-io is
# installed and on no classpath. Nested archives, fat-jar style: the
# service's own jar carries BOOT-INF/lib/nested-lib-1.0.0.jar (its outer
# jar is opened), /app/unused-bundle.jar carries
# BOOT-INF/lib/bundled-lib-1.0.0.jar (its outer jar is never opened).
recipe_java-service() {
    local out=$1 src lib
    command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1 || die "java-service needs the host's javac and jar"
    mmdebstrap_minbase "$out/rootfs" default-jre-headless,libcommons-lang3-java,libcommons-cli-java,libcommons-io-java
    src=$(mktemp -d)
    mkdir -p "$src/classes" "$out/rootfs/app"
    cat >"$src/Server.java" <<'JAVA'
import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import org.apache.commons.lang3.StringUtils;

/** vexxy test service: every request goes through commons-lang3. */
public class Server {
    public static void main(String[] args) throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", 8080), 0);
        server.createContext("/", exchange -> {
            String path = exchange.getRequestURI().getPath();
            byte[] body = (StringUtils.capitalize("hello") + " " + StringUtils.reverse(path) + "\n")
                .getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "text/plain");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
    }
}
JAVA
    javac --release 17 -cp "$out/rootfs/usr/share/java/commons-lang3.jar" -d "$src/classes" "$src/Server.java"
    for lib in nested-lib bundled-lib; do
        mkdir -p "$src/$lib/META-INF/maven/com.example.vexxy/$lib"
        printf 'groupId=com.example.vexxy\nartifactId=%s\nversion=1.0.0\n' "$lib" \
            >"$src/$lib/META-INF/maven/com.example.vexxy/$lib/pom.properties"
        mkdir -p "$src/$lib-outer/BOOT-INF/lib"
        jar --create --file "$src/$lib-outer/BOOT-INF/lib/$lib-1.0.0.jar" -C "$src/$lib" .
    done
    cp -r "$src/classes/." "$src/nested-lib-outer/"
    jar --create --file "$out/rootfs/app/service.jar" --main-class Server -C "$src/nested-lib-outer" .
    jar --create --file "$out/rootfs/app/unused-bundle.jar" -C "$src/bundled-lib-outer" .
    rm -rf "$src"
    write_config "$out/config.json" 8080/tcp java -cp /app/service.jar:/usr/share/java/commons-lang3.jar:/usr/share/java/commons-cli.jar Server
}

# A Go HTTP service built with the host's Debian golang against Debian's
# golang-golang-x-net-dev (golang.org/x/net 0.7.0, vulnerable to
# GO-2023-1988 and GO-2023-2102), vendored into a module build so the
# binary's build info records golang.org/x/net v0.7.0. Every request is
# parsed and rendered with x/net/html (html.Render is entered); x/net/http2
# is configured for TLS connections only and the service listens in plain
# HTTP, so http2.(*Server).ServeConn is linked but never entered. The binary
# keeps its symbol table.
recipe_go-vulnerable() {
    local out=$1 src gocode=/usr/share/gocode/src/golang.org/x
    command -v go >/dev/null 2>&1 || die "go-vulnerable needs the host's go (golang-go)"
    [[ -f $gocode/net/html/render.go && -f $gocode/text/go.mod ]] ||
        die "go-vulnerable needs golang-golang-x-net-dev on the host"
    dpkg-query -W -f='${Version}' golang-golang-x-net-dev | grep -q '^1:0\.7\.0' ||
        die "go-vulnerable needs golang-golang-x-net-dev 0.7.0 (the vulnerable version)"
    mmdebstrap_minbase "$out/rootfs" netbase
    src=$(mktemp -d)
    mkdir -p "$src/vendor/golang.org/x" "$out/rootfs/app"
    cp -rL "$gocode/net" "$src/vendor/golang.org/x/net"
    cp -rL "$gocode/text" "$src/vendor/golang.org/x/text"
    cat >"$src/go.mod" <<'MOD'
module example.com/vexxy-go-vulnerable

go 1.19

require (
	golang.org/x/net v0.7.0
	golang.org/x/text v0.7.0
)
MOD
    cat >"$src/vendor/modules.txt" <<'TXT'
# golang.org/x/net v0.7.0
## explicit; go 1.17
golang.org/x/net/html
golang.org/x/net/html/atom
golang.org/x/net/http/httpguts
golang.org/x/net/http2
golang.org/x/net/http2/hpack
golang.org/x/net/idna
# golang.org/x/text v0.7.0
## explicit; go 1.17
golang.org/x/text/secure/bidirule
golang.org/x/text/transform
golang.org/x/text/unicode/bidi
golang.org/x/text/unicode/norm
TXT
    cat >"$src/main.go" <<'GO'
// vexxy test service: every request is parsed and rendered with
// golang.org/x/net/html; HTTP/2 from golang.org/x/net/http2 is configured
// for TLS connections only and the service listens in plain HTTP, so the
// HTTP/2 server code is linked but no connection ever reaches it.
package main

import (
	"bytes"
	"log"
	"net/http"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/http2"
)

func page(w http.ResponseWriter, r *http.Request) {
	doc, err := html.Parse(strings.NewReader("<html><head><title>vexxy</title></head><body><p>" +
		html.EscapeString(r.URL.Path) + "</p></body></html>"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var out bytes.Buffer
	if err := html.Render(&out, doc); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(out.Bytes())
}

func main() {
	srv := &http.Server{Addr: "0.0.0.0:8080", Handler: http.HandlerFunc(page)}
	if err := http2.ConfigureServer(srv, &http2.Server{}); err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.ListenAndServe())
}
GO
    (
        cd "$src"
        env GOFLAGS=-mod=vendor GOPROXY=off GO111MODULE=on CGO_ENABLED=0 \
            GOCACHE="$src/.cache" GOPATH="$src/.gopath" HOME="$src" \
            go build -trimpath -o "$out/rootfs/app/server" .
    )
    rm -rf "$src"
    go version -m "$out/rootfs/app/server" | grep -q 'dep[[:space:]]*golang.org/x/net[[:space:]]*v0.7.0' ||
        die "go-vulnerable: the build info does not record golang.org/x/net v0.7.0"
    write_config "$out/config.json" 8080/tcp /app/server
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
