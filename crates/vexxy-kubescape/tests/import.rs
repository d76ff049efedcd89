//! Kubescape objects read and converted into vexxy's model.
//!
//! The fixtures under `tests/fixtures/` are written from Kubescape's
//! published sources (formats and field names only):
//! - github.com/kubescape/storage `pkg/apis/softwarecomposition/v1beta1/types.go`
//!   (ApplicationProfile, ContainerProfile, ExecCalls, OpenCalls,
//!   SBOMSyftFiltered, OpenVulnerabilityExchangeContainer), `register.go`
//!   (API group `spdx.softwarecomposition.kubescape.io`, version `v1beta1`),
//!   `syfttypes.go` and the examples `artifacts/sbomsyft/01-syft-nginx-crd.yaml`
//!   and `artifacts/openvulnerabilityexchangecontainer/example-01.yaml`;
//! - github.com/kubescape/k8s-interface `instanceidhandler/v1/helpers/keys.go`
//!   (the `kubescape.io/…` annotation and label keys) and
//!   `instanceidhandler/v1/containerinstance` (the instance id format);
//! - github.com/kubescape/node-agent `pkg/containerprofilemanager/v1/monitoring.go`
//!   (what a ContainerProfile's metadata carries) and
//!   `pkg/objectcache/shared_container_data.go` (the learning-period label);
//! - github.com/kubescape/kubevuln `core/services/scan.go` (`filterSBOM`:
//!   what an SBOMSyftFiltered keeps) and `adapters/v1/container_profile.go`.

use std::path::{Path, PathBuf};

use vexxy_kubescape::{
    import, parse, read, ContainerKind, ImportError, Kind, KubescapeError, Object,
};
use vexxy_model::{Decider, EvidenceSource, ProfileSource, Status};

const DIGEST: &str = "sha256:f466f670b9d6f0b1341d62f8201a5fa1781de2c7f2e37fd3f9b9ef1a61b143d5";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn objects(name: &str) -> Vec<Object> {
    read(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn application_profile_yaml_and_json_read_alike() {
    let yaml = objects("nginx-applicationprofile.yaml");
    let json = objects("nginx-applicationprofile.json");
    assert_eq!(yaml.len(), 1);
    let strip = |o: &Object| match o {
        Object::Profile(p) => {
            let mut p = p.clone();
            p.meta.origin.clear();
            p
        }
        other => panic!("not a profile: {other:?}"),
    };
    assert_eq!(strip(&yaml[0]), strip(&json[0]));
    let Object::Profile(p) = &yaml[0] else {
        unreachable!()
    };
    assert_eq!(p.meta.kind, Kind::ApplicationProfile);
    assert_eq!(
        p.meta.title(),
        "ApplicationProfile default/replicaset-nginx-7d9f8c6b5"
    );
    assert_eq!(
        p.meta.get(vexxy_kubescape::keys::INSTANCE_ID),
        Some("apiVersion-apps/v1/namespace-default/kind-ReplicaSet/name-nginx-7d9f8c6b5/containerName-nginx")
    );
    assert_eq!(p.containers.len(), 2);
    let nginx = &p.containers[0];
    assert_eq!(nginx.kind, ContainerKind::Container);
    assert_eq!(nginx.name, "nginx");
    assert_eq!(nginx.image_digest().as_deref(), Some(DIGEST));
    assert_eq!(nginx.execs[0].path, "/usr/sbin/nginx");
    assert_eq!(nginx.execs[0].args, ["nginx", "-g", "daemon off;"]);
    assert!(nginx
        .opens
        .iter()
        .any(|o| o.path == "/usr/lib/x86_64-linux-gnu/libssl.so.3"
            && o.flags == ["O_RDONLY", "O_CLOEXEC"]));
    let init = &p.containers[1];
    assert_eq!(init.kind, ContainerKind::InitContainer);
    assert_eq!(init.name, "prepare");
    assert!(init.opens.is_empty(), "opens: null reads as none");
}

#[test]
fn application_profile_becomes_an_execution_profile() {
    let imported = import(&objects("nginx-applicationprofile.yaml")).expect("import");
    assert!(imported.statements.is_empty());
    assert_eq!(imported.profiles.len(), 1, "one image");
    let profile = &imported.profiles[0];
    // the whole profile, as a stable text snapshot
    insta::assert_snapshot!("nginx_applicationprofile", describe(profile));
    assert_eq!(profile.run.source, ProfileSource::Kubescape);
    assert_eq!(profile.run.image_digest.as_deref(), Some(DIGEST));
    // opened shared objects stay opened files: Kubescape records no mappings
    assert!(profile.loaded_libraries.is_empty());
    assert!(profile
        .files
        .iter()
        .any(|f| f.path == "/usr/lib/x86_64-linux-gnu/libtiff.so.6.0.0"));
    // files are sorted: `touched` searches them
    assert!(profile.touched("/etc/nginx/nginx.conf"));
    assert!(profile.touched("/usr/sbin/nginx") || profile.executables[0].path == "/bin/sh");
}

/// The profile as lines: run, spans, executables, files, lost events.
fn describe(p: &vexxy_model::ExecutionProfile) -> String {
    let mut out = vec![
        format!("image: {}", p.run.image),
        format!("digest: {:?}", p.run.image_digest),
        format!("source: {}", p.run.source),
        format!("started_at: {}", p.run.started_at),
        format!("duration_ms: {}", p.run.duration_ms),
    ];
    for s in &p.run.spans {
        out.push(format!(
            "span: {} | {} | {} | {} ms",
            s.source, s.target, s.started_at, s.duration_ms
        ));
    }
    for e in &p.executables {
        out.push(format!("exec: {} ({}x)", e.path, e.count));
    }
    for f in &p.files {
        out.push(format!("open: {} ({}x)", f.path, f.opens));
    }
    out.push(format!("lost: {:?}", p.lost));
    out.join("\n")
}

#[test]
fn container_profile_partial_and_collapsed_paths_weaken_absence() {
    let imported = import(&objects("nginx-containerprofile.yaml")).expect("import");
    let profile = &imported.profiles[0];
    insta::assert_snapshot!("nginx_containerprofile", describe(profile));
    // partial: the container started before the node agent
    assert_eq!(
        profile.lost.map_full.get("kubescape: partial profiles"),
        Some(&1)
    );
    // `/usr/lib/x86_64-linux-gnu/*` hides which libraries were opened
    assert_eq!(
        profile
            .lost
            .map_full
            .get("kubescape: collapsed paths where code lives"),
        Some(&1)
    );
    assert_eq!(profile.lost.truncated_paths, 1);
    assert_eq!(profile.run.duration_ms, 300_000, "learning period 5m");
}

#[test]
fn filtered_sbom_adds_use_to_the_profile_of_its_image() {
    let sbom = objects("nginx-sbomsyftfiltered.yaml");
    let Object::Sbom(s) = &sbom[0] else {
        panic!("not an sbom: {sbom:?}")
    };
    assert_eq!(s.image_digest.as_deref(), Some(DIGEST));
    assert_eq!(s.files, ["/usr/lib/x86_64-linux-gnu/libtiff.so.6.0.0"]);
    assert_eq!(s.packages.len(), 1);
    assert_eq!(s.packages[0].name, "libtiff6");

    // alone it is no evidence of non-use: refused
    let err = import(&sbom).expect_err("an sbom alone");
    assert!(
        matches!(err, ImportError::SbomWithoutProfile { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("nginx-sbomsyftfiltered.yaml"),
        "{err}"
    );

    // with the container profile, its files count as used
    let mut all = objects("nginx-containerprofile.yaml");
    all.extend(sbom);
    let imported = import(&all).expect("import");
    assert!(imported.profiles[0].touched("/usr/lib/x86_64-linux-gnu/libtiff.so.6.0.0"));
}

#[test]
fn vex_container_statements_are_existing_statements_or_claims() {
    let imported = import(&objects("nginx-vex.yaml")).expect("import");
    assert!(imported.profiles.is_empty());
    // `affected` is respected as an existing statement; `not_affected` is
    // only a claim: vexxy decides that finding from its own evidence
    assert_eq!(imported.statements.len(), 1);
    assert_eq!(imported.claims.len(), 1);
    let s: Vec<_> = imported.statements.iter().chain(&imported.claims).collect();
    assert_eq!(s[0].vulnerability_id, "CVE-2023-52355");
    assert_eq!(s[0].verdict.status(), Status::Affected);
    assert_eq!(
        s[0].product
            .digest
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some(DIGEST)
    );
    // the package Kubescape names becomes the subcomponent
    assert_eq!(s[0].subcomponents.len(), 1);
    assert_eq!(s[0].subcomponents[0].name(), "libtiff6");
    assert_eq!(s[1].verdict.status(), Status::NotAffected);
    for st in &s {
        assert!(
            (st.verdict.confidence.get() - vexxy_kubescape::STATEMENT_CONFIDENCE).abs() < 1e-9,
            "an unsigned third-party statement is not certain"
        );
        // a tool's statement, not a person's, and it says where it came from
        assert_eq!(
            st.verdict.decided_by,
            Decider::Imported {
                author: "Kubescape vulnerability scanner".to_owned()
            }
        );
        assert!(st
            .verdict
            .evidence
            .iter()
            .any(|e| e.provider == vexxy_kubescape::KUBESCAPE
                && e.source
                    == EvidenceSource::ExistingVex(
                        "https://openvex.dev/docs/public/vex-0d5c8f2a".to_owned()
                    )));
    }
}

#[test]
fn lists_of_several_kinds_and_images() {
    let list = objects("list.yaml");
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0].meta().origin,
        format!("{}: items[0]", fixture("list.yaml").display())
    );
    let Object::Profile(p) = &list[0] else {
        panic!()
    };
    assert_eq!(
        p.containers.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [
            ContainerKind::Container,
            ContainerKind::Container,
            ContainerKind::EphemeralContainer
        ]
    );
    let imported = import(&list).expect("import");
    // a bare `sha256:` image id is a runtime's config digest: no manifest digest
    let digests: Vec<_> = imported
        .profiles
        .iter()
        .map(|p| p.run.image_digest.clone())
        .collect();
    assert_eq!(
        digests,
        [
            None,
            Some(
                "sha256:0000000000000000000000000000000000000000000000000000000000000001"
                    .to_owned()
            )
        ]
    );
    assert_eq!(imported.profiles[1].run.spans.len(), 2, "web and debugger");
    assert_eq!(
        imported.profiles[1].run.duration_ms, 0,
        "no learning period recorded"
    );
}

#[test]
fn typed_list_kinds_are_lists_too() {
    let text = r#"{"apiVersion":"spdx.softwarecomposition.kubescape.io/v1beta1","kind":"ContainerProfileList","metadata":{},"items":[{"apiVersion":"spdx.softwarecomposition.kubescape.io/v1beta1","kind":"ContainerProfile","metadata":{"name":"a"},"spec":{"execs":[{"path":"/bin/true"}],"opens":null}}]}"#;
    let objects = parse(text.as_bytes(), Path::new("cp.json")).expect("parse");
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].meta().kind, Kind::ContainerProfile);
}

/// The distinctive value of `malformed/opens-not-sequence.yaml`.
const DISTINCTIVE: &str = "VEXXY-DISTINCTIVE-VALUE-7f3a9c1e-never-echo-file-content";

/// Every malformed input fails naming the file and the field.
#[test]
fn malformed_objects_name_the_file_and_the_field() {
    let table: &[(&str, &str, &str)] = &[
        (
            "wrong-kind.yaml",
            "kind",
            "not a kind vexxy reads (expected ApplicationProfile, ",
        ),
        ("missing-spec.yaml", "spec", "missing"),
        (
            "path-not-string.yaml",
            "spec.containers[0].opens[2].path",
            "invalid type: integer, expected a string",
        ),
        (
            "bad-apiversion.yaml",
            "apiVersion",
            "expected spdx.softwarecomposition.kubescape.io/v1beta1 (another api group or version)",
        ),
        (
            "relative-exec.json",
            "spec.execs[1].path",
            "expected an absolute path",
        ),
        (
            "list-item-bad.yaml",
            "items[1].spec.initContainers[0].opens[0]",
            "missing field `path`",
        ),
        (
            "syft-file-not-string.yaml",
            "spec.syft.files[0].location.path",
            "expected a string",
        ),
        (
            "not-an-object.yaml",
            "(document root)",
            "expected a kubernetes object",
        ),
        (
            "opens-not-sequence.yaml",
            "spec.containers[0].opens",
            "invalid type: string, expected a sequence",
        ),
    ];
    for (name, field, message) in table {
        let path = fixture(&format!("malformed/{name}"));
        let err = read(&path).expect_err(name);
        let text = err.to_string();
        assert_eq!(err.field(), Some(*field), "{name}: {text}");
        assert!(
            text.starts_with(&format!("{}: {field}: ", path.display())),
            "{name}: {text}"
        );
        assert!(text.contains(message), "{name}: {text}");
        // the file's values are never echoed
        for value in [
            "NetworkNeighborhood",
            "softwarecomposition.kubescape.io/v1\"",
            "\"nginx\"",
            "`5`",
            DISTINCTIVE,
        ] {
            assert!(!text.contains(value), "{name}: echoes {value}: {text}");
        }
        let said = &text[path.display().to_string().len() + field.len() + 4..];
        assert!(
            !said.starts_with(char::is_uppercase),
            "{name}: lowercase: {text}"
        );
    }
}

#[test]
fn embedded_documents_name_the_object_field() {
    let path = fixture("malformed/vex-bad-status.yaml");
    let err = read(&path).expect_err("bad status");
    assert!(matches!(err, KubescapeError::Vex(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}: spec: /statements/0/status", path.display())),
        "{text}"
    );
    // what was expected, not the value found
    assert!(text.contains("unknown variant, expected one of"), "{text}");
    assert!(!text.contains("probably_fine"), "{text}");
    let path = fixture("malformed/not-yaml.yaml");
    let err = read(&path).expect_err("syntax");
    assert!(matches!(err, KubescapeError::Syntax { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with(&format!("{}: not valid yaml", path.display())));
}

#[test]
fn size_is_bounded_before_parsing() {
    let big = vec![b' '; usize::try_from(vexxy_kubescape::MAX_BYTES).unwrap() + 1];
    let err = parse(&big, Path::new("big.yaml")).expect_err("too large");
    assert!(matches!(err, KubescapeError::TooLarge { .. }), "{err}");
    assert!(err.to_string().starts_with("big.yaml: "), "{err}");
}

/// Errors name the field and what was expected, never the value found:
/// each document below puts a long distinctive string where it is wrong.
#[test]
fn errors_never_echo_the_values_of_the_file() {
    let head = |kind: &str| {
        format!("{{\"apiVersion\":\"spdx.softwarecomposition.kubescape.io/v1beta1\",\"kind\":\"{kind}\",\"metadata\":{{\"name\":\"x\"}}")
    };
    let v = DISTINCTIVE;
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("{{\"apiVersion\":\"{v}\",\"kind\":\"ContainerProfile\"}}"),
            "apiVersion",
            "expected spdx.softwarecomposition.kubescape.io/v1beta1",
        ),
        (
            format!("{{\"apiVersion\":\"spdx.softwarecomposition.kubescape.io/v1beta1\",\"kind\":\"{v}\"}}"),
            "kind",
            "not a kind vexxy reads",
        ),
        (
            format!("{},\"spec\":{{\"execs\":[{{\"path\":\"{v}\"}}]}}}}", head("ContainerProfile")),
            "spec.execs[0].path",
            "expected an absolute path",
        ),
        (
            format!("{},\"spec\":{{\"opens\":\"{v}\"}}}}", head("ContainerProfile")),
            "spec.opens",
            "invalid type: string, expected a sequence",
        ),
        (
            format!("{},\"spec\":{{\"execs\":[{{\"path\":\"/bin/sh\",\"args\":[\"sh\",{{\"{v}\":1}}]}}]}}}}", head("ContainerProfile")),
            "spec.execs[0].args[1]",
            "invalid type: map, expected a string",
        ),
        (
            format!("{},\"spec\":{{\"containers\":[{{\"name\":\"a\",\"opens\":[\"{v}\"]}}]}}}}", head("ApplicationProfile")),
            "spec.containers[0].opens[0]",
            "invalid type: string, expected a mapping",
        ),
        (
            // a value that quotes and says ", expected" itself
            format!("{},\"spec\":{{\"opens\":[{{\"path\":\"/x\",\"flags\":\"a \\\" b`, expected {v}\"}}]}}}}", head("ContainerProfile")),
            "spec.opens[0].flags",
            "invalid type: string, expected a sequence",
        ),
    ];
    for (text, field, message) in cases {
        let err = parse(text.as_bytes(), Path::new("p.json")).expect_err(&text);
        let said = err.to_string();
        assert_eq!(err.field(), Some(field), "{said}");
        assert!(said.contains(message), "{said}");
        assert!(
            !said.to_lowercase().contains(&v.to_lowercase()[..20]),
            "echoes the file's value: {said}"
        );
    }
}
