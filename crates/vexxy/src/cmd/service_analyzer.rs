//! The service's [`Analyzer`]: a job runs the very code `vexxy analyze`
//! runs, in-process. The job becomes an `analyze` command line parsed by
//! the CLI's own parser, so a job and `vexxy analyze` with the same flags
//! are one analysis, defaults included; what the job submitted (report,
//! SBOM, test script) is written into a scratch directory of its own,
//! removed when the job ends however it ends.
//!
//! A tenant names the image, so the host is guarded here: registry
//! references are accepted, local images (`oci:`, `oci-archive:`,
//! `docker-archive:`) only beneath a directory the operator allows (after
//! resolving symlinks and `..`), `dir:` never.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{Context, Result};
use clap::Parser;
use vexxy_image::ImageSource;
use vexxy_server::{
    AnalysisConfig, AnalysisError, AnalysisJob, AnalysisOutput, Analyzer, JobControl,
};

use super::analyze::{self, files, Hooks};
use crate::{
    cli::{AnalyzeArgs, Cli, Command},
    exit::{self, Exit},
};

/// How the service runs analyses.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ServiceAnalyzerOptions {
    /// Where each job gets its scratch directory (created when missing).
    pub(crate) work_root: PathBuf,
    /// Directories beneath which local images (`oci:DIR`, `oci-archive:FILE`,
    /// `docker-archive:FILE`) may be analysed; empty: registry references only.
    pub(crate) allowed_local_roots: Vec<PathBuf>,
    /// Registries (host:port) reached over plain HTTP.
    pub(crate) insecure_registries: Vec<String>,
    /// Sandbox CPU limit in cores.
    pub(crate) cpus: f64,
    /// Sandbox memory limit in bytes.
    pub(crate) memory_bytes: u64,
    /// Sandbox process limit.
    pub(crate) pids: u64,
    /// Hard limit on one traced run (at most 900 s).
    pub(crate) run_timeout: Duration,
    /// A fixed document timestamp (RFC 3339) instead of now; for tests
    /// that compare documents.
    #[doc(hidden)]
    pub(crate) timestamp: Option<String>,
}

impl Default for ServiceAnalyzerOptions {
    /// `vexxy analyze`'s defaults, scratch space in the temporary directory.
    fn default() -> Self {
        Self {
            work_root: std::env::temp_dir().join("vexxy-jobs"),
            allowed_local_roots: Vec::new(),
            insecure_registries: Vec::new(),
            cpus: 1.0,
            memory_bytes: 1 << 30,
            pids: 512,
            run_timeout: vexxy_run::DEFAULT_TIMEOUT,
            timestamp: None,
        }
    }
}

/// Runs jobs with `vexxy analyze`'s pipeline.
#[derive(Debug)]
pub(crate) struct ServiceAnalyzer {
    options: ServiceAnalyzerOptions,
    /// `allowed_local_roots`, canonical.
    roots: Vec<PathBuf>,
}

/// Where a job's files are.
#[derive(Debug)]
struct JobFiles {
    out: PathBuf,
    scan: Option<PathBuf>,
    sbom: Option<PathBuf>,
    test_script: Option<PathBuf>,
}

/// How far the whole analysis is when a phase (by its progress name) starts.
fn phase_percent(name: &str) -> Option<u8> {
    Some(match name {
        "reading inputs" => 2,
        "pulling image" | "reading image" => 5,
        "unpacking layers" => 15,
        "cataloging packages" => 25,
        "analysing ELF dependencies" => 32,
        "evaluating configuration rules" => 38,
        "loading the tracer, creating the sandbox" => 42,
        "waiting for ports" => 48,
        "probing over HTTP" => 52,
        "running the test script" => 56,
        "observing the workload" => 60,
        "collecting the trace" => 85,
        "tearing down the sandbox" => 88,
        "deciding" => 92,
        "writing outputs" => 96,
        _ => return None,
    })
}

impl ServiceAnalyzer {
    /// Checks the options, creates the work root and resolves the allowed
    /// roots (each must exist).
    pub(crate) fn new(options: ServiceAnalyzerOptions) -> Result<Self> {
        if !(options.cpus > 0.0 && options.cpus.is_finite()) {
            anyhow::bail!(
                "sandbox cpu limit {} is not a positive number",
                options.cpus
            );
        }
        if options.memory_bytes == 0 || options.pids == 0 {
            anyhow::bail!("sandbox memory and process limits must be above zero");
        }
        if options.run_timeout.is_zero() || options.run_timeout > vexxy_run::MAX_TIMEOUT {
            anyhow::bail!(
                "run timeout {} is not between 1 s and {} s",
                humantime::format_duration(options.run_timeout),
                vexxy_run::MAX_TIMEOUT.as_secs()
            );
        }
        std::fs::create_dir_all(&options.work_root).with_context(|| {
            format!(
                "creating the work directory {}",
                options.work_root.display()
            )
        })?;
        let roots = options
            .allowed_local_roots
            .iter()
            .map(|r| {
                std::fs::canonicalize(r)
                    .with_context(|| format!("allowed local image root {}", r.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { options, roots })
    }

    fn analyze_job(
        &self,
        job: &AnalysisJob,
        control: &JobControl,
    ) -> Result<AnalysisOutput, AnalysisError> {
        let reference = admit_reference(&job.image_ref, &self.roots)?;
        if let Some(d) = &job.image_digest {
            d.trim()
                .parse::<vexxy_model::Digest>()
                .map_err(|e| AnalysisError::Rejected(format!("expected image digest: {e}")))?;
        }
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{}-", safe_name(&job.id)))
            .tempdir_in(&self.options.work_root)
            .map_err(|e| {
                AnalysisError::Transient(format!(
                    "creating a scratch directory for job {} in {}: {e}",
                    job.id,
                    self.options.work_root.display()
                ))
            })?;
        let result = self.analyze_in(scratch.path(), &reference, job, control);
        let result =
            result.map_err(|e| map_error(&e, control.is_cancelled(), Some(scratch.path())));
        if let Err(e) = scratch.close() {
            tracing::warn!(job = %job.id, "removing the job's scratch directory: {e}");
        }
        result
    }

    fn analyze_in(
        &self,
        scratch: &Path,
        reference: &str,
        job: &AnalysisJob,
        control: &JobControl,
    ) -> Result<AnalysisOutput> {
        let write = |name: &str, bytes: &[u8]| -> Result<PathBuf> {
            let path = scratch.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        let files = JobFiles {
            out: scratch.join("out"),
            scan: job
                .scan_report
                .as_deref()
                .map(|b| write("scan-report.json", b))
                .transpose()?,
            sbom: job
                .sbom
                .as_deref()
                .map(|b| write("sbom.json", b))
                .transpose()?,
            test_script: job
                .config
                .test_script
                .as_deref()
                .map(|s| write("test-script.sh", s.as_bytes()))
                .transpose()?,
        };
        let argv =
            analyze_argv(reference, &job.config, &files, &self.options).map_err(exit::BadInput)?;
        let args = parse_analyze(argv)?;

        let reached = Arc::new(AtomicU8::new(0));
        let progress = control.clone();
        let observer: crate::progress::Observer = Arc::new(move |name: &str| {
            let percent = phase_percent(name).unwrap_or(0);
            let percent = reached.fetch_max(percent, Ordering::SeqCst).max(percent);
            progress.set_progress(name, percent);
        });
        let hooks = Hooks {
            quiet: true,
            print_summary: false,
            cancel: Some(control.cancel_flag()),
            observer: Some(observer),
            expect_digest: job.image_digest.clone(),
        };
        tracing::info!(job = %job.id, image = %reference, "analysis started");
        // never Exit::Undecided: the job does not ask for --fail-on-undecided
        analyze::analyze_with(&args, &hooks)?;

        let profile_path = files.out.join(files::PROFILE);
        let profile = vexxy_profile::read(&profile_path)
            .with_context(|| format!("reading back {}", profile_path.display()))?;
        let image_digest = profile.run.image_digest.clone();
        if let (Some(want), Some(got)) = (&job.image_digest, &image_digest) {
            if !want.trim().eq_ignore_ascii_case(got) {
                return Err(exit::BadInput(format!(
                    "image {} was analysed as {got}, not the expected {want}",
                    job.image_ref
                ))
                .into());
            }
        }
        let files = collect(&files.out)?;
        tracing::info!(job = %job.id, files = files.len(), "analysis finished");
        Ok(AnalysisOutput {
            image_digest,
            files,
        })
    }
}

impl Analyzer for ServiceAnalyzer {
    fn analyze(
        &self,
        job: &AnalysisJob,
        control: &JobControl,
    ) -> Result<AnalysisOutput, AnalysisError> {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.analyze_job(job, control)));
        let result = outcome.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            tracing::error!(job = %job.id, "the analysis panicked: {what}");
            Err(AnalysisError::Transient(format!(
                "internal error: the analysis of job {} panicked: {what}",
                job.id
            )))
        });
        // a job cancelled meanwhile is cancelled, whatever came of it
        if control.is_cancelled() {
            return Err(AnalysisError::Cancelled);
        }
        result
    }
}

/// The error a failed analysis reports: bad input is final, anything
/// else may pass on another try, and a cancelled job is cancelled. The
/// job's scratch directory is left out of the message.
fn map_error(err: &anyhow::Error, cancelled: bool, scratch: Option<&Path>) -> AnalysisError {
    if cancelled {
        return AnalysisError::Cancelled;
    }
    let mut message = format!("{err:#}");
    if let Some(dir) = scratch {
        message = message.replace(&format!("{}/", dir.display()), "");
    }
    match exit::classify(err) {
        Exit::BadInput => AnalysisError::Rejected(message),
        _ => AnalysisError::Transient(message),
    }
}

/// The reference to analyse: a registry reference as given; a local image
/// only beneath an allowed root, named by its canonical path (so what is
/// read is what was checked); `dir:` never.
fn admit_reference(reference: &str, roots: &[PathBuf]) -> Result<String, AnalysisError> {
    let reject =
        |why: &str| AnalysisError::Rejected(format!("image reference {reference:?}: {why}"));
    let source: ImageSource = reference
        .parse()
        .map_err(|e: vexxy_image::ImageError| reject(&e.to_string()))?;
    let beneath = |path: &Path| -> Result<String, AnalysisError> {
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

/// `vexxy analyze` flags for a job. Values go as `--flag=VALUE` and the
/// image after `--`, so nothing a tenant sends is read as a flag.
fn analyze_argv(
    reference: &str,
    config: &AnalysisConfig,
    files: &JobFiles,
    options: &ServiceAnalyzerOptions,
) -> Result<Vec<OsString>, String> {
    let mut argv: Vec<OsString> = vec!["vexxy".into(), "analyze".into()];
    let mut flag = |name: &str, value: &dyn AsRef<std::ffi::OsStr>| {
        let mut s = OsString::from(format!("--{name}="));
        s.push(value.as_ref());
        argv.push(s);
    };
    flag("out", &files.out);
    flag(
        "duration",
        &humantime::format_duration(config.duration).to_string(),
    );
    flag(
        "timeout",
        &humantime::format_duration(options.run_timeout).to_string(),
    );
    flag("cpus", &options.cpus.to_string());
    flag("memory", &options.memory_bytes.to_string());
    flag("pids", &options.pids.to_string());
    for registry in &options.insecure_registries {
        flag("insecure-registry", registry);
    }
    if let Some(ts) = &options.timestamp {
        flag("timestamp", ts);
    }
    for (k, v) in &config.environment {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(format!(
                "environment variable {k:?}: a name must be non-empty without '=' or NUL, a value without NUL"
            ));
        }
        flag("env", &format!("{k}={v}"));
    }
    // `analyze` reads a single --cmd as a shell-quoted line: one word is
    // quoted so that it stays exactly that word
    match config.command.as_slice() {
        [] => {}
        [one] => {
            let quoted =
                shlex::try_quote(one).map_err(|_| format!("command word {one:?} contains NUL"))?;
            flag("cmd", &quoted.into_owned());
        }
        words => {
            for w in words {
                if w.contains('\0') {
                    return Err(format!("command word {w:?} contains NUL"));
                }
                flag("cmd", w);
            }
        }
    }
    for p in &config.ports {
        flag("port", &p.to_string());
    }
    if let Some(f) = &files.test_script {
        flag("test-script", f);
    }
    if let Some(f) = &files.scan {
        flag("scan", f);
    }
    if let Some(f) = &files.sbom {
        flag("sbom", f);
    }
    argv.push("--".into());
    argv.push(reference.into());
    Ok(argv)
}

/// The argv through the CLI's own parser.
fn parse_analyze(argv: Vec<OsString>) -> Result<AnalyzeArgs> {
    let cli = Cli::try_parse_from(argv).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("invalid analysis options");
        exit::BadInput(first.trim_start_matches("error: ").to_owned())
    })?;
    match cli.command {
        Command::Analyze(args) => Ok(*args),
        other => anyhow::bail!("internal error: the analysis argv parsed as {other:?}"),
    }
}

/// A job id as a file-name prefix: its safe characters, else a hash.
fn safe_name(id: &str) -> String {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        id.to_owned()
    } else {
        use sha2::{Digest as _, Sha256};
        format!("job-{:x}", Sha256::digest(id.as_bytes()))[..20].to_owned()
    }
}

/// Every file of the output directory, by name.
fn collect(out: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(out).with_context(|| format!("listing {}", out.display()))? {
        let entry = entry.with_context(|| format!("listing {}", out.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let bytes = std::fs::read(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        files.insert(name, bytes);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::run as run_cmd;
    use std::os::unix::fs::symlink;

    fn config() -> AnalysisConfig {
        AnalysisConfig {
            duration: Duration::from_secs(30),
            environment: BTreeMap::new(),
            command: Vec::new(),
            test_script: None,
            ports: Vec::new(),
        }
    }

    fn job_files() -> JobFiles {
        JobFiles {
            out: PathBuf::from("/srv/j/out"),
            scan: None,
            sbom: None,
            test_script: None,
        }
    }

    fn parsed(
        reference: &str,
        config: &AnalysisConfig,
        files: &JobFiles,
        o: &ServiceAnalyzerOptions,
    ) -> AnalyzeArgs {
        parse_analyze(analyze_argv(reference, config, files, o).unwrap()).unwrap()
    }

    #[test]
    fn jobs_become_analyze_flags() {
        let mut c = config();
        c.duration = Duration::from_millis(90_500);
        c.environment.insert("A".into(), "1".into());
        c.environment.insert("B".into(), "x=y --z".into());
        c.command = vec!["-c".into(), "--flag".into(), "a b".into()];
        c.ports = vec![8080, 80];
        c.test_script = Some("true".into());
        let files = JobFiles {
            out: PathBuf::from("/w/j/out"),
            scan: Some(PathBuf::from("/w/j/scan-report.json")),
            sbom: None,
            test_script: Some(PathBuf::from("/w/j/test-script.sh")),
        };
        let o = ServiceAnalyzerOptions {
            insecure_registries: vec!["localhost:5000".into()],
            cpus: 2.5,
            memory_bytes: 512 << 20,
            pids: 100,
            run_timeout: Duration::from_secs(600),
            timestamp: Some("2026-01-01T00:00:00Z".into()),
            ..ServiceAnalyzerOptions::default()
        };
        let a = parsed("-weird:1", &c, &files, &o);
        assert_eq!(a.image, "-weird:1");
        assert_eq!(a.sandbox.duration, Duration::from_millis(90_500));
        assert_eq!(a.sandbox.timeout, Duration::from_secs(600));
        assert_eq!(a.sandbox.env, vec!["A=1", "B=x=y --z"]);
        assert_eq!(a.sandbox.cmd, vec!["-c", "--flag", "a b"]);
        assert_eq!(
            run_cmd::cmd_words(&a.sandbox.cmd).unwrap(),
            vec!["-c", "--flag", "a b"]
        );
        assert_eq!(a.sandbox.port, vec![8080, 80]);
        assert_eq!(a.sandbox.test_script, files.test_script);
        assert_eq!(a.sandbox.cpus, 2.5);
        assert_eq!(run_cmd::parse_size(&a.sandbox.memory).unwrap(), 512 << 20);
        assert_eq!(a.sandbox.pids, 100);
        assert_eq!(a.fetch.insecure_registry, vec!["localhost:5000"]);
        assert_eq!(a.decide.scan, files.scan);
        assert_eq!(a.decide.sbom, None);
        assert_eq!(a.decide.out, files.out);
        assert_eq!(a.decide.timestamp.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(!a.fresh && !a.decide.fail_on_undecided);
        assert_eq!(a.decide.author, "vexxy");
    }

    #[test]
    fn defaults_are_vexxy_analyzes() {
        let a = parsed(
            "nginx:1.27",
            &config(),
            &job_files(),
            &ServiceAnalyzerOptions::default(),
        );
        let cli =
            match Cli::try_parse_from(["vexxy", "analyze", "nginx:1.27", "--out", "/srv/j/out"])
                .unwrap()
                .command
            {
                Command::Analyze(a) => a,
                other => panic!("{other:?}"),
            };
        // with no env overrides set, every default matches the command line's
        assert_eq!(
            format!("{a:?}"),
            format!("{cli:?}").replace("memory: \"1g\"", "memory: \"1073741824\"")
        );
    }

    #[test]
    fn a_single_command_word_stays_one_word() {
        for word in ["nginx -g 'daemon off;'", "-x", "", "plain", "a\"b"] {
            let mut c = config();
            c.command = vec![word.to_owned()];
            let a = parsed(
                "nginx",
                &c,
                &job_files(),
                &ServiceAnalyzerOptions::default(),
            );
            assert_eq!(
                run_cmd::cmd_words(&a.sandbox.cmd).unwrap(),
                vec![word.to_owned()],
                "{word:?}"
            );
        }
    }

    #[test]
    fn bad_job_values_are_refused() {
        for (k, v) in [("", "x"), ("A=B", "x"), ("A", "nul\0")] {
            let mut c = config();
            c.environment.insert(k.into(), v.into());
            assert!(
                analyze_argv(
                    "nginx",
                    &c,
                    &job_files(),
                    &ServiceAnalyzerOptions::default()
                )
                .is_err(),
                "{k:?}={v:?}"
            );
        }
        let mut c = config();
        c.command = vec!["a".into(), "b\0".into()];
        assert!(analyze_argv(
            "nginx",
            &c,
            &job_files(),
            &ServiceAnalyzerOptions::default()
        )
        .is_err());
        // a scan report and an SBOM together: the parser's own rule
        let files = JobFiles {
            scan: Some("/a".into()),
            sbom: Some("/b".into()),
            ..job_files()
        };
        let err = parse_analyze(
            analyze_argv(
                "nginx",
                &config(),
                &files,
                &ServiceAnalyzerOptions::default(),
            )
            .unwrap(),
        )
        .unwrap_err();
        assert_eq!(exit::classify(&err), Exit::BadInput, "{err:#}");
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
            (
                "docker://nginx@sha256:".to_owned() + &"a".repeat(64),
                "docker://nginx@sha256:".to_owned() + &"a".repeat(64),
            ),
        ];
        for (given, want) in ok {
            assert_eq!(admit_reference(&given, &roots), Ok(want), "{given}");
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
            match admit_reference(&given, &roots) {
                Err(AnalysisError::Rejected(m)) => {
                    assert!(m.contains(&format!("{given:?}")), "{m}")
                }
                other => panic!("{given}: {other:?}"),
            }
        }
        // no roots: registry references only
        assert!(admit_reference(&format!("oci:{a}/layout"), &[]).is_err());
        assert!(admit_reference("nginx", &[]).is_ok());
    }

    #[test]
    fn allowed_roots_are_resolved_when_the_analyzer_is_made() {
        let (t, allowed) = tree();
        let link = t.path().join("roots-link");
        symlink(&allowed, &link).unwrap();
        let analyzer = ServiceAnalyzer::new(ServiceAnalyzerOptions {
            work_root: t.path().join("work"),
            allowed_local_roots: vec![link],
            ..ServiceAnalyzerOptions::default()
        })
        .unwrap();
        assert_eq!(analyzer.roots, vec![allowed]);
        assert!(t.path().join("work").is_dir());
        let err = ServiceAnalyzer::new(ServiceAnalyzerOptions {
            work_root: t.path().join("work"),
            allowed_local_roots: vec![t.path().join("absent")],
            ..ServiceAnalyzerOptions::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("absent"), "{err:#}");
    }

    #[test]
    fn errors_map_to_job_outcomes() {
        let bad: anyhow::Error =
            exit::BadInput("--scan /w/j-1/scan-report.json: not a report".into()).into();
        assert_eq!(
            map_error(&bad, false, Some(Path::new("/w/j-1"))),
            AnalysisError::Rejected("--scan scan-report.json: not a report".into())
        );
        let missing = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("opening x");
        assert!(matches!(
            map_error(&missing, false, None),
            AnalysisError::Rejected(_)
        ));
        let io = anyhow::Error::from(std::io::Error::other("disk full")).context("writing y");
        assert_eq!(
            map_error(&io, false, None),
            AnalysisError::Transient("writing y: disk full".into())
        );
        let run: anyhow::Error =
            anyhow::Error::from(vexxy_run::RunError::Cancelled).context("running x");
        assert!(matches!(
            map_error(&run, false, None),
            AnalysisError::Transient(_)
        ));
        for e in [bad, io, run, analyze::Cancelled.into()] {
            assert_eq!(map_error(&e, true, None), AnalysisError::Cancelled);
        }
    }

    #[test]
    fn rejected_jobs_leave_nothing_behind() {
        let t = tempfile::tempdir().unwrap();
        let work = t.path().join("work");
        let analyzer = ServiceAnalyzer::new(ServiceAnalyzerOptions {
            work_root: work.clone(),
            ..ServiceAnalyzerOptions::default()
        })
        .unwrap();
        let job = |image_ref: &str, digest: Option<&str>, env: Option<(&str, &str)>| AnalysisJob {
            id: "job/../1".into(),
            image_ref: image_ref.into(),
            image_digest: digest.map(str::to_owned),
            config: AnalysisConfig {
                environment: env
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                ..config()
            },
            scan_report: Some(b"{}".to_vec()),
            sbom: None,
        };
        let control = JobControl::new();
        for j in [
            job("dir:/", None, None),
            job("oci:/etc", None, None),
            job("nginx", Some("sha256:nope"), None),
            job("nginx", None, Some(("A=B", "c"))),
        ] {
            match analyzer.analyze(&j, &control) {
                Err(AnalysisError::Rejected(_)) => {}
                other => panic!("{j:?}: {other:?}"),
            }
        }
        assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
        control.cancel();
        assert_eq!(
            analyzer.analyze(&job("dir:/", None, None), &control),
            Err(AnalysisError::Cancelled)
        );
    }

    #[test]
    fn job_ids_name_scratch_directories_safely() {
        assert_eq!(safe_name("0190f-ab_c.1"), "0190f-ab_c.1");
        for id in ["", "../x", "a/b", ".hidden", &"x".repeat(65)] {
            let n = safe_name(id);
            assert!(n.starts_with("job-") && n.len() == 20, "{id:?} → {n}");
        }
    }

    #[test]
    fn every_phase_has_a_place_in_the_progress() {
        use vexxy_run::Phase as P;
        let run = [
            P::Preparing,
            P::WaitingForPorts,
            P::Probing,
            P::Script,
            P::Observing,
            P::Collecting,
            P::TearingDown,
        ];
        let mut last = phase_percent("evaluating configuration rules").unwrap();
        for p in run {
            let pct =
                phase_percent(run_cmd::phase_name(p)).unwrap_or_else(|| panic!("{p:?} unmapped"));
            assert!(pct > last, "{p:?}");
            last = pct;
        }
        assert!(phase_percent("deciding").unwrap() > last);
        assert!(phase_percent("writing outputs").unwrap() < 100);
    }

    // ---- the real pipeline: root, runc, eBPF and the nginx test image ----

    static REAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    const TIMESTAMP: &str = "2026-01-01T00:00:00Z";

    fn nginx_layout() -> Option<PathBuf> {
        vexxy_testkit::test_image("nginx").map(|d| d.join("oci"))
    }

    fn grype() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json",
        )
    }

    fn real_analyzer(work: &Path) -> ServiceAnalyzer {
        ServiceAnalyzer::new(ServiceAnalyzerOptions {
            work_root: work.to_path_buf(),
            allowed_local_roots: vec![vexxy_testkit::test_images_dir()],
            timestamp: Some(TIMESTAMP.into()),
            ..ServiceAnalyzerOptions::default()
        })
        .unwrap()
    }

    fn sandboxes() -> std::collections::BTreeSet<PathBuf> {
        std::fs::read_dir("/run/vexxy/sandboxes")
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_service_analysis_is_vexxy_analyze() {
        if vexxy_testkit::cannot_trace() {
            return;
        }
        let Some(layout) = nginx_layout() else { return };
        let _serial = REAL.lock().unwrap_or_else(|e| e.into_inner());
        let t = tempfile::tempdir().unwrap();
        let analyzer = real_analyzer(&t.path().join("work"));
        let canonical = std::fs::canonicalize(&layout).unwrap();

        // directly, as `vexxy analyze` with the same flags
        let direct_out = t.path().join("direct");
        let reference = format!("oci:{}:latest", canonical.display());
        let argv: Vec<OsString> = [
            "vexxy",
            "analyze",
            &reference,
            "--duration",
            "5s",
            "--timestamp",
            TIMESTAMP,
            // a real run here; the service's job then reuses its stored profile
            "--fresh",
            "--out",
        ]
        .iter()
        .map(OsString::from)
        .chain([
            direct_out.clone().into_os_string(),
            "--scan".into(),
            grype().into_os_string(),
        ])
        .collect();
        let args = parse_analyze(argv).unwrap();
        assert_eq!(
            analyze::analyze_with(
                &args,
                &Hooks {
                    quiet: true,
                    ..Hooks::default()
                }
            )
            .unwrap(),
            Exit::Done
        );

        let job = AnalysisJob {
            id: "same-as-cli".into(),
            image_ref: format!("oci:{}:latest", layout.display()),
            image_digest: None,
            config: AnalysisConfig {
                duration: Duration::from_secs(5),
                ..config()
            },
            scan_report: Some(std::fs::read(grype()).unwrap()),
            sbom: None,
        };
        let control = JobControl::new();
        let out = analyzer.analyze(&job, &control).unwrap();
        let statements = |bytes: &[u8]| -> serde_json::Value {
            serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["statements"].clone()
        };
        let direct = std::fs::read(direct_out.join(files::OPENVEX)).unwrap();
        assert_eq!(statements(&out.files[files::OPENVEX]), statements(&direct));
        assert!(statements(&direct)
            .as_array()
            .is_some_and(|s| !s.is_empty()));
        let mut want: Vec<String> = std::fs::read_dir(&direct_out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        want.sort();
        assert_eq!(out.files.keys().cloned().collect::<Vec<_>>(), want);
        let digest = out.image_digest.clone().expect("a pinned digest");
        let doc: serde_json::Value = serde_json::from_slice(&direct).unwrap();
        // the product is a purl: `sha256%3A<hex>`
        let hex = digest.trim_start_matches("sha256:");
        assert!(doc.to_string().contains(hex), "the product is {digest}");
        assert_eq!(control.progress(), Some(("writing outputs".to_owned(), 96)));
        assert_eq!(
            std::fs::read_dir(t.path().join("work")).unwrap().count(),
            0,
            "scratch left behind"
        );

        // a pinned digest that differs is refused before anything runs
        let wrong = AnalysisJob {
            image_digest: Some(format!("sha256:{}", "0".repeat(64))),
            ..job.clone()
        };
        let began = std::time::Instant::now();
        let control = JobControl::new();
        match analyzer.analyze(&wrong, &control) {
            Err(AnalysisError::Rejected(m)) => assert!(m.contains("not the expected"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(control
            .progress()
            .is_some_and(|(phase, _)| !phase.contains("sandbox") && !phase.contains("observing")));
        println!("digest mismatch refused in {:?}", began.elapsed());
        let right = AnalysisJob {
            image_digest: Some(digest.to_uppercase().replace("SHA256", "sha256")),
            ..job
        };
        assert_eq!(
            analyzer
                .analyze(&right, &JobControl::new())
                .unwrap()
                .image_digest,
            Some(digest)
        );
    }

    #[test]
    fn a_cancelled_job_stops_soon_and_leaves_no_sandbox() {
        if vexxy_testkit::cannot_trace() {
            return;
        }
        let Some(layout) = nginx_layout() else { return };
        let _serial = REAL.lock().unwrap_or_else(|e| e.into_inner());
        let t = tempfile::tempdir().unwrap();
        let analyzer = Arc::new(real_analyzer(&t.path().join("work")));
        let before = sandboxes();
        let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
        let job = AnalysisJob {
            id: "to-cancel".into(),
            image_ref: format!("oci:{}:latest", layout.display()),
            image_digest: None,
            config: AnalysisConfig {
                duration: Duration::from_secs(60),
                // a run configuration no stored profile has: the sandbox must run
                environment: [("VEXXY_TEST_NONCE".to_owned(), nonce)].into(),
                ..config()
            },
            scan_report: Some(std::fs::read(grype()).unwrap()),
            sbom: None,
        };
        let control = JobControl::new();
        let worker = {
            let (analyzer, control) = (Arc::clone(&analyzer), control.clone());
            std::thread::spawn(move || analyzer.analyze(&job, &control))
        };
        let run_phases = [
            "loading the tracer",
            "waiting for ports",
            "probing",
            "observing",
        ];
        let running = vexxy_testkit::poll(Duration::from_secs(180), || {
            control
                .progress()
                .filter(|(phase, _)| run_phases.iter().any(|p| phase.starts_with(p)))
        });
        assert!(
            running.is_some(),
            "the run never started: {:?}",
            control.progress()
        );
        std::thread::sleep(Duration::from_secs(2));
        let cancelled_at = std::time::Instant::now();
        control.cancel();
        let result = worker.join().unwrap();
        let took = cancelled_at.elapsed();
        println!("cancelled in {took:?} during {:?}", control.progress());
        assert_eq!(result, Err(AnalysisError::Cancelled));
        assert!(took < Duration::from_secs(20), "took {took:?} to stop");
        assert_eq!(sandboxes(), before, "a sandbox was left behind");
        assert_eq!(
            std::fs::read_dir(t.path().join("work")).unwrap().count(),
            0,
            "scratch left behind"
        );
    }
}
