#!/usr/bin/env python3
"""The peer for vexxy's throughput benchmark: a straightforward Python
implementation of the seed workflow's generate_vex loop.

For every image directory under DATA (each holding `grype.json` and
`sbom.cdx.json`), it reads the Grype report and the SBOM, decides each
finding with the seed's two hard-coded rules (kernel CVEs on header packages
are not_affected / vulnerable_code_not_present; a package missing from the
SBOM is not_affected / component_not_present; everything else is
under_investigation), keeps one statement per vulnerability, and writes an
OpenVEX 0.2.0 document to OUT/<image>.openvex.json.

Usage: peer_generate_vex.py DATA OUT
Prints the number of findings and statements and the elapsed seconds.
"""
import json
import os
import sys
import time

KERNEL_HEADER_PREFIXES = ("linux-headers-", "linux-kbuild-", "linux-doc-", "linux-source-")
KERNEL_HEADER_NAMES = {"linux-libc-dev", "kernel-headers", "linux-headers"}


def is_kernel_headers(name):
    return name in KERNEL_HEADER_NAMES or name.startswith(KERNEL_HEADER_PREFIXES)


def generate_vex(report, installed, now):
    target = report["source"]["target"]
    name = target["userInput"].split(":")[0].split("/")[-1]
    digest = target["repoDigests"][0].split("@")[1]
    product = {"@id": "pkg:oci/%s@%s" % (name, digest.replace(":", "%3A")), "hashes": {"sha-256": digest.split(":")[1]}}
    statements = {}
    for match in report["matches"]:
        vuln = match["vulnerability"]["id"]
        pkg = match["artifact"]["name"]
        purl = match["artifact"].get("purl", "").split("?")[0]
        if is_kernel_headers(pkg):
            st = {"status": "not_affected", "justification": "vulnerable_code_not_present"}
        elif pkg not in installed:
            st = {"status": "not_affected", "justification": "component_not_present"}
        else:
            st = {"status": "under_investigation"}
        prev = statements.get(vuln)
        if prev is not None:
            prev["products"][0]["subcomponents"].append({"@id": purl})
            if st["status"] != "not_affected":
                prev.pop("justification", None)
                prev["status"] = st["status"]
            continue
        st["vulnerability"] = {"name": vuln}
        st["products"] = [dict(product, subcomponents=[{"@id": purl}])]
        statements[vuln] = st
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "urn:peer:%s" % digest,
        "author": "peer",
        "timestamp": now,
        "version": 1,
        "statements": [statements[k] for k in sorted(statements)],
    }


def main():
    data, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    now = "2026-01-01T00:00:00Z"
    started = time.perf_counter()
    findings = statements = 0
    for image in sorted(os.listdir(data)):
        d = os.path.join(data, image)
        with open(os.path.join(d, "grype.json")) as f:
            report = json.load(f)
        with open(os.path.join(d, "sbom.cdx.json")) as f:
            sbom = json.load(f)
        installed = {c["name"] for c in sbom.get("components", [])}
        doc = generate_vex(report, installed, now)
        findings += len(report["matches"])
        statements += len(doc["statements"])
        with open(os.path.join(out, image + ".openvex.json"), "w") as f:
            json.dump(doc, f, indent=2)
    elapsed = time.perf_counter() - started
    print(json.dumps({"findings": findings, "statements": statements, "seconds": elapsed}))


if __name__ == "__main__":
    main()
