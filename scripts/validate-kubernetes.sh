#!/usr/bin/env bash
# Renders every overlay under deploy/kubernetes/overlays with `kubectl
# kustomize` and validates every object offline: Kubernetes kinds against the
# schemas PyPI kubernetes-validate ships (strict: unknown fields are errors),
# for each version in K8S_VERSIONS; ServiceMonitor against the schema vendored
# in deploy/kubernetes/schemas (written from the prometheus-operator CRD); any
# other kind is an error. It also checks what the manifests claim about vexxy
# against the code (every environment variable a vexxy container sets is one
# vexxy reads, every flag exists, the probe paths are routes) and two rules of
# docs/kubernetes.md (only sandbox hosts are privileged; no sandbox host runs
# under gVisor). Then a self-test: every object of deploy/kubernetes/tests/broken
# must be rejected, for the reason it names. One line per overlay; exits 1 on any error.
#
# Needs the pinned kubectl (VEXXY_KUBECTL, default: the one
# scripts/ensure-deps.sh installs in the tools cache) and kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSIONS="${K8S_VERSIONS:-1.32.0 1.37.0}"
KUBECTL_VERSION=1.37.1
tools="${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}/tools"
kubectl="${VEXXY_KUBECTL:-$tools/kubectl-$KUBECTL_VERSION/kubectl}"
if [[ ! -x "$kubectl" ]]; then
  echo "validate-kubernetes: no kubectl at $kubectl; run scripts/ensure-deps.sh (or set VEXXY_KUBECTL)" >&2
  exit 1
fi
if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  echo "validate-kubernetes: python3 cannot import kubernetes_validate; run scripts/ensure-deps.sh" >&2
  exit 1
fi

root=deploy/kubernetes
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT

# check.py MODE NAME FILE: MODE valid (every object must pass and follow the
# rules) or broken (every object must be rejected, with an error containing
# its annotation vexxy.dev/expect-match).
cat >"$rendered/check.py" <<'PY'
import glob, json, os, re, sys

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

mode, name, path = sys.argv[1:4]
versions = os.environ["K8S_VERSIONS"].split()
root = "deploy/kubernetes"

# Custom resources: (apiVersion, kind) -> vendored JSON schema.
crd_schemas = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"):
        f"{root}/schemas/servicemonitor-monitoring.coreos.com-v1.json",
}

def ident(doc):
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"

def schema_errors(doc):
    """Why doc does not validate (empty: it does), and against what."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in crd_schemas:
        with open(crd_schemas[key]) as f:
            schema = json.load(f)
        v = jsonschema.Draft202012Validator(schema)
        errs = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
        return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errs], \
            os.path.basename(crd_schemas[key])
    out = []
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except SchemaNotFoundError:
            out.append(f"no schema for {key[0]} {key[1]} in Kubernetes {version} "
                       f"(neither core nor vendored in {root}/schemas): not validated")
        except ValidationError as e:
            where = ".".join(map(str, e.absolute_path)) or "<root>"
            out.append(f"Kubernetes {version}: {where}: {e.message}")
    return out, None

# What vexxy reads: environment variables and long flags named in its CLI and
# its object-store settings; the routes it serves.
sources = "".join(open(p).read() for p in
                  glob.glob("crates/vexxy/src/**/*.rs", recursive=True)
                  + glob.glob("crates/vexxy-store/src/**/*.rs", recursive=True))
routes = open("crates/vexxy-server/src/routes.rs").read()

def pod_spec(doc):
    spec = doc.get("spec") or {}
    if doc.get("kind") in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
        return (spec.get("template") or {}).get("spec") or {}
    return None

def rule_errors(doc):
    spec = pod_spec(doc)
    if spec is None:
        return []
    out = []
    labels = (doc.get("metadata") or {}).get("labels") or {}
    sandbox_host = labels.get("vexxy.dev/sandbox-host") == "true"
    if sandbox_host and spec.get("runtimeClassName"):
        out.append(f"a sandbox host runs under runtimeClassName {spec['runtimeClassName']}: "
                   "vexxy's sandbox and eBPF tracer need the node's kernel (docs/kubernetes.md, gVisor)")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        sc = c.get("securityContext") or {}
        if sc.get("privileged") and not sandbox_host:
            out.append(f"container {c['name']} is privileged but the workload is not labelled "
                       "vexxy.dev/sandbox-host (only sandbox hosts may be)")
        if c.get("image", "").split("@")[0].split(":")[0].rsplit("/", 1)[-1] != "vexxy":
            continue
        for env in c.get("env", []):
            if f'"{env["name"]}"' not in sources:
                out.append(f"container {c['name']}: env {env['name']} is read nowhere in "
                           "crates/vexxy or crates/vexxy-store")
        for arg in c.get("args", []):
            if arg.startswith("--"):
                field = arg[2:].split("=", 1)[0].replace("-", "_")
                if not re.search(rf"\b{field}\s*:", sources):
                    out.append(f"container {c['name']}: flag {arg.split('=')[0]} is not a field of "
                               "vexxy's CLI (crates/vexxy/src)")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            p = ((c.get(probe) or {}).get("httpGet") or {}).get("path")
            if p and f'.route("{p}"' not in routes:
                out.append(f"container {c['name']}: {probe} path {p} is not a route of "
                           "crates/vexxy-server/src/routes.rs")
    return out

with open(path) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
if not docs:
    sys.exit(f"validate-kubernetes: {name}: rendered no objects")

failed = False
checked_against = set()
for doc in docs:
    errs, vendored = schema_errors(doc)
    if vendored:
        checked_against.add(f"{ident(doc)} against {vendored}")
    errs += rule_errors(doc)
    if mode == "valid":
        for e in errs:
            print(f"validate-kubernetes: {name}: {ident(doc)}: {e}", file=sys.stderr)
        failed |= bool(errs)
    else:
        notes = (doc.get("metadata") or {}).get("annotations") or {}
        expect, match = notes.get("vexxy.dev/expect", ""), notes.get("vexxy.dev/expect-match")
        if not match:
            print(f"validate-kubernetes: {name}: {ident(doc)} has no vexxy.dev/expect-match annotation",
                  file=sys.stderr)
            failed = True
        elif not any(match in e for e in errs):
            got = "; ".join(errs) or "accepted"
            print(f"validate-kubernetes: {name}: {ident(doc)} must be {expect} (an error naming "
                  f"{match!r}), got: {got}", file=sys.stderr)
            failed = True
if failed:
    sys.exit(1)
if mode == "valid":
    extra = f"; {', '.join(sorted(checked_against))}" if checked_against else ""
    print(f"validate-kubernetes: {name}: {len(docs)} objects valid against Kubernetes "
          f"{', '.join(versions)} (strict){extra}")
else:
    print(f"validate-kubernetes: {name}: all {len(docs)} broken objects rejected")
PY

export K8S_VERSIONS
status=0
overlays=("$root"/overlays/*/)
if ((${#overlays[@]} == 0)); then
  echo "validate-kubernetes: no overlays under $root/overlays" >&2
  exit 1
fi
for dir in "${overlays[@]}"; do
  name="overlays/$(basename "$dir")"
  out="$rendered/$(basename "$dir").yaml"
  if ! "$kubectl" kustomize "$dir" >"$out" 2>"$rendered/err"; then
    echo "validate-kubernetes: $name: kubectl kustomize failed: $(cat "$rendered/err")" >&2
    status=1
    continue
  fi
  python3 "$rendered/check.py" valid "$name" "$out" || status=1
done

# The negative check: a validation that accepts everything is no check.
if ! "$kubectl" kustomize "$root/tests/broken" >"$rendered/broken.yaml" 2>"$rendered/err"; then
  echo "validate-kubernetes: tests/broken: kubectl kustomize failed: $(cat "$rendered/err")" >&2
  status=1
else
  python3 "$rendered/check.py" broken "self-test (tests/broken)" "$rendered/broken.yaml" || status=1
fi
exit $status
