//! A stored job becomes an analysis request: typed data for the analysis
//! library, no command line and no scratch files in between.
//!
//! A tenant names the image, so the host is guarded here: registry
//! references are accepted, local images (`oci:`, `oci-archive:`,
//! `docker-archive:`) only beneath a directory the operator allows (after
//! resolving symlinks and `..`), `dir:` never.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use vexxy_analyze::{
    AnalysisRequest, AnalyzeError, Caches, DecideSettings, Findings, ImageRequest, ImageSource,
    ReevaluateRequest, RunSettings, SandboxLimits, TestScript, WindowPolicy,
};

use crate::api::{Document, JobSpec};

/// How this service runs analyses (the operator's settings).
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisSettings {
    /// Blob, rootfs and profile caches (shared by the workers of a host)
    /// and the scratch directory.
    pub caches: Caches,
    /// Directories beneath which local images may be analysed (canonical
    /// paths); empty: registry references only.
    pub allowed_local_roots: Vec<PathBuf>,
    /// Registries (host:port) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Registry connect and read timeout (default 30 s / 120 s).
    pub registry_timeout: Option<Duration>,
    /// The egress policy of registry pulls (the registry, its token
    /// service, redirects, foreign layer URLs). The service always sets
    /// one (the default: the deny-list, no host allow-list); `None` would
    /// contact whatever a tenant names.
    pub egress: Option<vexxy_egress::EgressPolicy>,
    /// Sandbox limits of every run.
    pub limits: SandboxLimits,
    /// Hard limit on one traced run.
    pub run_timeout: Duration,
    /// The OCI runtime.
    pub runtime: PathBuf,
    /// A fixed document timestamp instead of now (tests that compare
    /// documents).
    pub timestamp: Option<time::OffsetDateTime>,
}

impl Default for AnalysisSettings {
    /// `vexxy analyze`'s defaults, caches in the temporary directory.
    fn default() -> Self {
        let run = RunSettings::default();
        Self {
            caches: Caches::at(std::env::temp_dir().join("vexxy-cache")),
            allowed_local_roots: Vec::new(),
            insecure_registries: Vec::new(),
            registry_timeout: None,
            egress: Some(vexxy_egress::EgressPolicy::new()),
            limits: run.limits,
            run_timeout: run.timeout,
            runtime: run.runtime,
            timestamp: None,
        }
    }
}

/// The image a job names, admitted and fetched as the service fetches.
fn image_request(
    spec: &JobSpec,
    settings: &AnalysisSettings,
) -> Result<ImageRequest, AnalyzeError> {
    let mut image = ImageRequest::parse(&admit_reference(
        &spec.image_ref,
        &settings.allowed_local_roots,
    )?)?;
    // the tenant's image is reported under the reference the tenant gave
    image.reference.clone_from(&spec.image_ref);
    image.name.clone_from(&spec.image_name);
    image
        .insecure_registries
        .clone_from(&settings.insecure_registries);
    image.registry_timeout = settings.registry_timeout;
    // a tenant's pull never uses the operator's registry logins (the
    // worker's docker config): anonymous here; the worker puts in the
    // organisation's own login for the registry, if it has one
    // (`tenant::pull_credentials`)
    image.credentials = vexxy_analyze::Credentials::Anonymous;
    check_registry(&spec.image_ref, settings)?;
    image.egress.clone_from(&settings.egress);
    Ok(image)
}

/// The timestamp of a job's documents.
fn timestamp(settings: &AnalysisSettings) -> time::OffsetDateTime {
    settings.timestamp.unwrap_or_else(|| {
        let now = time::OffsetDateTime::now_utc();
        now.replace_nanosecond(0).unwrap_or(now)
    })
}

/// The request a job stands for.
pub fn request(
    spec: &JobSpec,
    settings: &AnalysisSettings,
) -> Result<AnalysisRequest, AnalyzeError> {
    let image = image_request(spec, settings)?;
    let expected_digest = spec
        .image_digest
        .as_deref()
        .map(|d| {
            d.trim()
                .parse()
                .map_err(|e| AnalyzeError::bad_input(format!("image_digest: {e}")))
        })
        .transpose()?;
    let findings = findings(spec)?;
    let run = RunSettings {
        duration: Duration::from_secs(spec.duration_secs),
        window: if spec.fixed_window {
            WindowPolicy::Fixed
        } else {
            WindowPolicy::default()
        },
        timeout: settings.run_timeout,
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: spec
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ports: spec.ports.clone(),
        test_script: spec.test_script.as_ref().map(|s| TestScript {
            name: "test_script".to_owned(),
            content: s.clone().into_bytes(),
        }),
        limits: settings.limits.clone(),
        runtime: settings.runtime.clone(),
        ..RunSettings::default()
    };
    let timestamp = timestamp(settings);
    Ok(AnalysisRequest {
        image,
        expected_digest,
        run,
        findings,
        decide: DecideSettings::at(timestamp),
        // a scheduled re-run runs the image again
        reuse_profile: spec.rerun.is_none(),
        allow_report_mismatch: spec.allow_report_mismatch,
    })
}

/// The request of a re-decision (`spec.reevaluate_from`): the job's
/// report decided against `profile`, the execution profile an earlier
/// analysis of the image stored, without running the image.
pub fn reevaluate_request(
    spec: &JobSpec,
    settings: &AnalysisSettings,
    profile: vexxy_model::ExecutionProfile,
    profile_origin: String,
) -> Result<ReevaluateRequest, AnalyzeError> {
    Ok(ReevaluateRequest {
        profile,
        profile_origin,
        image: image_request(spec, settings)?,
        findings: findings(spec)?,
        decide: DecideSettings::at(timestamp(settings)),
        allow_report_mismatch: spec.allow_report_mismatch,
    })
}

/// The job's report or SBOM, parsed from the bytes that were submitted
/// (also at submission, where a bad one is refused).
pub fn findings(spec: &JobSpec) -> Result<Findings, AnalyzeError> {
    Ok(match (&spec.scan_report, &spec.sbom) {
        (Some(report), _) => match parse("scan_report", report)? {
            vexxy_ingest::Input::Report(r) => Findings::Report(r),
            vexxy_ingest::Input::Sbom(s) => {
                return Err(AnalyzeError::bad_input(format!(
                    "scan_report: is an SBOM ({}), not a scanner report; submit it as sbom",
                    s.format
                )))
            }
        },
        (None, Some(sbom)) => match parse("sbom", sbom)? {
            vexxy_ingest::Input::Sbom(s) => Findings::Sbom(s),
            vexxy_ingest::Input::Report(r) => {
                return Err(AnalyzeError::bad_input(format!(
                    "sbom: is a scanner report ({}), not an SBOM; submit it as scan_report",
                    r.format
                )))
            }
        },
        (None, None) => Findings::None,
    })
}

fn parse(field: &str, doc: &Document) -> Result<vexxy_ingest::Input, AnalyzeError> {
    Ok(vexxy_ingest::parse(
        doc.json().as_bytes(),
        Path::new(field),
    )?)
}

/// Refuses, before any connection and without DNS, a registry reference
/// whose registry the egress policy refuses by name alone: an address on
/// the deny-list (`127.0.0.1:5000/…`, `169.254.169.254/…`), a `localhost`
/// name, a host missing from the host allow-list. A name passing here is
/// resolved and checked when the pull starts, and every connection again.
/// Local image names are left to [`admit_reference`].
pub(crate) fn check_registry(
    reference: &str,
    settings: &AnalysisSettings,
) -> Result<(), AnalyzeError> {
    let Some(policy) = &settings.egress else {
        return Ok(());
    };
    match ImageRequest::parse(reference).map(|r| r.source) {
        Ok(ImageSource::Registry { reference: name }) => {
            vexxy_registry::admit(&name, policy, &settings.insecure_registries)
                .map_err(AnalyzeError::from)
        }
        _ => Ok(()),
    }
}

/// The reference to analyse: a registry reference as given; a local image
/// only beneath an allowed root, named by its canonical path (so what is
/// read is what was checked); `dir:` never.
pub(crate) fn admit_reference(reference: &str, roots: &[PathBuf]) -> Result<String, AnalyzeError> {
    let reject =
        |why: &str| AnalyzeError::bad_input(format!("image reference {reference:?}: {why}"));
    let source = ImageRequest::parse(reference)?.source;
    let beneath = |path: &Path| -> Result<String, AnalyzeError> {
        // one answer for "absent" and "elsewhere": no probing of the host
        let refused = || {
            reject(&format!(
                "{} is not an image beneath a directory this service reads local images from",
                path.display()
            ))
        };
        let canonical = std::fs::canonicalize(path).map_err(|_| refused())?;
        if !roots.iter().any(|root| canonical.starts_with(root)) {
            return Err(refused());
        }
        canonical
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| reject("the path is not UTF-8"))
    };
    let with_tag = |scheme: &str, path: String, tag: Option<&String>| {
        if path.contains(':') {
            return Err(reject("the path contains ':'"));
        }
        Ok(match tag {
            Some(t) => format!("{scheme}:{path}:{t}"),
            None => format!("{scheme}:{path}"),
        })
    };
    match &source {
        ImageSource::Registry { .. } => Ok(reference.to_owned()),
        ImageSource::Dir { .. } => Err(reject(
            "dir: root filesystems are not accepted; submit an image",
        )),
        ImageSource::OciLayout { dir, tag } => with_tag("oci", beneath(dir)?, tag.as_ref()),
        ImageSource::OciArchive { file, tag } => {
            with_tag("oci-archive", beneath(file)?, tag.as_ref())
        }
        ImageSource::DockerArchive { file } => Ok(format!("docker-archive:{}", beneath(file)?)),
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, os::unix::fs::symlink};

    use vexxy_analyze::ErrorKind;

    use super::*;

    fn spec(image_ref: &str) -> JobSpec {
        JobSpec {
            image_ref: image_ref.into(),
            image_digest: None,
            duration_secs: 30,
            fixed_window: false,
            environment: BTreeMap::new(),
            command: Vec::new(),
            test_script: None,
            ports: Vec::new(),
            scan_report: None,
            sbom: None,
            callback_url: None,
            image_name: None,
            allow_report_mismatch: false,
            sign: false,
            attach: false,
            reevaluate_from: None,
            rerun: None,
            production_profile: None,
            production_upload: None,
            production_upload_digests: Vec::new(),
            production_uploaded_by: None,
        }
    }

    #[test]
    fn jobs_become_typed_requests() {
        let mut s = spec("registry.example:5000/app:1");
        s.duration_secs = 90;
        s.environment.insert("A".into(), "1".into());
        s.environment.insert("B".into(), "x=y --z".into());
        s.command = vec!["-c".into(), "--flag".into(), "a b".into()];
        s.ports = vec![8080, 80];
        s.test_script = Some("true".into());
        s.image_digest = Some(format!("sha256:{}", "a".repeat(64)));
        let settings = AnalysisSettings {
            insecure_registries: vec!["registry.example:5000".into()],
            run_timeout: Duration::from_secs(600),
            timestamp: Some(time::macros::datetime!(2026-01-01 0:00 UTC)),
            ..AnalysisSettings::default()
        };
        let r = request(&s, &settings).unwrap();
        assert_eq!(r.image.reference, "registry.example:5000/app:1");
        assert_eq!(
            r.image.credentials,
            vexxy_analyze::Credentials::Anonymous,
            "never the operator's docker config"
        );
        assert_eq!(r.image.insecure_registries, ["registry.example:5000"]);
        assert_eq!(r.run.duration, Duration::from_secs(90));
        assert_eq!(r.run.window, WindowPolicy::default());
        assert_eq!(r.run.timeout, Duration::from_secs(600));
        assert_eq!(
            r.run.env,
            vec![("A".into(), "1".into()), ("B".into(), "x=y --z".into())]
        );
        assert_eq!(r.run.cmd.as_deref(), Some(&s.command[..]));
        assert_eq!(r.run.ports, [8080, 80]);
        assert_eq!(r.run.test_script.as_ref().unwrap().content, b"true");
        assert_eq!(
            r.expected_digest.unwrap().to_string(),
            format!("sha256:{}", "a".repeat(64))
        );
        assert_eq!(r.findings, Findings::None);
        assert_eq!(
            r.decide.timestamp,
            time::macros::datetime!(2026-01-01 0:00 UTC)
        );
        assert!(r.reuse_profile);
        // a scheduled re-run runs the image again
        s.rerun = Some(1);
        assert!(!request(&s, &settings).unwrap().reuse_profile);
        // config.fixed_window: the whole duration
        s.fixed_window = true;
        assert_eq!(
            request(&s, &settings).unwrap().run.window,
            WindowPolicy::Fixed
        );
    }

    #[test]
    fn registries_the_egress_policy_refuses_are_bad_input_before_any_connection() {
        let settings = AnalysisSettings::default();
        for refused in [
            "127.0.0.1:5000/app:1",
            "localhost:5000/app:1",
            "169.254.169.254/latest/meta-data:1",
            "10.0.0.7:5000/app:1",
            "docker://192.168.1.1/app:1",
        ] {
            let e = request(&spec(refused), &settings).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadInput, "{refused}: {e}");
            assert!(
                e.to_string().contains("this service does not contact"),
                "{e}"
            );
        }
        assert!(request(&spec("registry.example:5000/app:1"), &settings).is_ok());
        let r = request(&spec("nginx"), &settings).unwrap();
        assert_eq!(
            r.image.egress, settings.egress,
            "the policy travels with the request"
        );

        // an operator's local registry, exempt by address
        let local = AnalysisSettings {
            egress: Some(
                vexxy_egress::EgressPolicy::new()
                    .allow_addresses(["127.0.0.2/32"])
                    .unwrap(),
            ),
            ..AnalysisSettings::default()
        };
        assert!(request(&spec("127.0.0.2:5000/app:1"), &local).is_ok());
        assert!(request(&spec("127.0.0.3:5000/app:1"), &local).is_err());
        // a host allow-list
        let listed = AnalysisSettings {
            egress: Some(
                vexxy_egress::EgressPolicy::new()
                    .allow_hosts(["*.example.com"])
                    .unwrap(),
            ),
            ..AnalysisSettings::default()
        };
        assert!(request(&spec("r.example.com/app:1"), &listed).is_ok());
        let e = request(&spec("ghcr.io/app:1"), &listed).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput, "{e}");
    }

    #[test]
    fn bad_reports_are_bad_input_naming_the_field() {
        let mut s = spec("nginx");
        s.scan_report = Some(Document::try_from(r#"{"not": "a report"}"#.to_owned()).unwrap());
        let e = request(&s, &AnalysisSettings::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(e.to_string().contains("scan_report"), "{e}");
        let mut s = spec("nginx");
        s.image_digest = Some("sha256:nope".into());
        let e = request(&s, &AnalysisSettings::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
    }

    /// allowed/{layout/, image.tar, link-out -> ../outside/layout}, outside/layout/
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let allowed = t.path().join("allowed");
        std::fs::create_dir_all(allowed.join("layout")).unwrap();
        std::fs::create_dir_all(t.path().join("outside/layout")).unwrap();
        std::fs::write(allowed.join("image.tar"), b"").unwrap();
        std::fs::write(t.path().join("outside/image.tar"), b"").unwrap();
        symlink(t.path().join("outside/layout"), allowed.join("link-out")).unwrap();
        symlink(allowed.join("layout"), t.path().join("outside/link-in")).unwrap();
        let canonical = std::fs::canonicalize(&allowed).unwrap();
        (t, canonical)
    }

    #[test]
    fn local_images_only_beneath_allowed_roots() {
        let (t, allowed) = tree();
        let roots = vec![allowed.clone()];
        let a = allowed.display().to_string();
        let base = t.path().display().to_string();
        let ok = [
            (
                format!("oci:{a}/layout:latest"),
                format!("oci:{a}/layout:latest"),
            ),
            (format!("oci:{a}/layout"), format!("oci:{a}/layout")),
            (
                format!("oci:{a}/../allowed/layout:v1"),
                format!("oci:{a}/layout:v1"),
            ),
            (
                format!("oci:{base}/outside/link-in:x"),
                format!("oci:{a}/layout:x"),
            ),
            (
                format!("oci-archive:{a}/image.tar:t"),
                format!("oci-archive:{a}/image.tar:t"),
            ),
            (
                format!("docker-archive:{a}/image.tar"),
                format!("docker-archive:{a}/image.tar"),
            ),
            (
                "docker.io/library/nginx:1.27".to_owned(),
                "docker.io/library/nginx:1.27".to_owned(),
            ),
        ];
        for (given, want) in ok {
            assert_eq!(admit_reference(&given, &roots).unwrap(), want, "{given}");
        }
        let refused = [
            format!("oci:{a}/../outside/layout:latest"),
            format!("oci:{a}/link-out:latest"),
            format!("oci:{a}/link-out/../layout"),
            format!("oci:{base}/outside/layout"),
            format!("oci:{a}/missing"),
            format!("oci-archive:{base}/outside/image.tar"),
            format!("docker-archive:{a}/../outside/image.tar"),
            format!("dir:{a}/layout"),
            "oci:/etc:latest".to_owned(),
            "docker-archive:/etc/shadow".to_owned(),
            "not a reference".to_owned(),
        ];
        for given in refused {
            let e = admit_reference(&given, &roots).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadInput, "{given}");
            assert!(e.to_string().contains(&format!("{given:?}")), "{e}");
        }
        // no roots: registry references only
        assert!(admit_reference(&format!("oci:{a}/layout"), &[]).is_err());
        assert!(admit_reference("nginx", &[]).is_ok());
    }
}
