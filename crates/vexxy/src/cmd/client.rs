//! The vexxy service's client: `vexxy submit`, `status`, `results` and
//! `cancel` against the REST API (`/api/v1`). Blocking HTTP with ureq;
//! request and response bodies are the server's own wire types
//! ([`vexxy_server::api`]), so the two cannot drift apart.
//!
//! Exit codes: 5 when the service reports the job failed or was cancelled,
//! 6 when it refuses the request (401, 403, 429), 2 for a request it calls
//! wrong (400, 404, 409, 410, 422), 3 when it cannot be reached or fails.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};
use vexxy_server::api::{
    CancelResponse, Document, JobStatus, Results, SubmitConfig, SubmitRequest, SubmitResponse,
};

use crate::{
    cli::{CancelArgs, ResultsArgs, ServerArgs, StatusArgs, SubmitArgs},
    exit::{BadInput, Exit},
    output,
};

/// Largest JSON answer read (results carry the VEX document).
pub(crate) const MAX_JSON_BYTES: u64 = 256 << 20;
/// Largest artifact downloaded.
const MAX_ARTIFACT_BYTES: u64 = 2 << 30;
/// Largest report, SBOM or script sent.
const MAX_UPLOAD_BYTES: u64 = 256 << 20;
/// Status requests that may fail in a row while waiting before giving up.
const POLL_FAILURES_TOLERATED: u32 = 5;

/// What the service (or the way to it) answered when it was not success;
/// each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The service refused the request: API key, tier or quota (401, 403, 429).
    #[error("{0}")]
    Refused(String),
    /// The service reports the job failed or was cancelled.
    #[error("{0}")]
    JobFailed(String),
    /// The service calls the request wrong (400, 404, 409, 410, 422, other 4xx).
    #[error("{0}")]
    BadRequest(String),
    /// The service failed (5xx) or answered something unreadable.
    #[error("{0}")]
    Service(String),
    /// The service could not be reached.
    #[error("{what}: cannot reach the service at {url}")]
    Transport {
        what: String,
        url: String,
        #[source]
        source: ureq::Error,
    },
}

impl ApiError {
    pub(crate) fn exit(&self) -> Exit {
        match self {
            Self::Refused(_) => Exit::Refused,
            Self::JobFailed(_) => Exit::JobFailed,
            Self::BadRequest(_) => Exit::BadInput,
            Self::Service(_) | Self::Transport { .. } => Exit::Internal,
        }
    }

    /// Worth asking again (while polling).
    fn is_transient(&self) -> bool {
        matches!(self, Self::Service(_) | Self::Transport { .. })
    }
}

/// The exit code a job status stands for, once the job is finished.
pub(crate) fn terminal_exit(status: &str) -> Option<Exit> {
    match status {
        "complete" => Some(Exit::Done),
        "failed" | "cancelled" => Some(Exit::JobFailed),
        _ => None,
    }
}

/// The error an unsuccessful HTTP answer stands for, from its status and
/// the service's `{"code", "message", …}` body.
pub(crate) fn api_error(what: &str, status: u16, body: &[u8]) -> ApiError {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let number = |k: &str| {
        parsed
            .as_ref()
            .and_then(|m| m.get(k))
            .and_then(Value::as_u64)
    };
    let code = field("code").unwrap_or_else(|| format!("http_{status}"));
    let message = field("message").unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            text.chars().take(200).collect()
        }
    });
    let text = format!("{what}: the service answered {status} {code}: {message}");
    match status {
        401 | 403 => ApiError::Refused(text),
        429 => {
            let used = number("used").map_or_else(|| "?".to_owned(), |n| n.to_string());
            let limit = number("limit").map_or_else(|| "?".to_owned(), |n| n.to_string());
            ApiError::Refused(format!("{text} (used {used}, limit {limit})"))
        }
        409 if field("status").as_deref().and_then(terminal_exit) == Some(Exit::JobFailed) => {
            ApiError::JobFailed(format!(
                "{text} (the job {})",
                field("status").unwrap_or_default()
            ))
        }
        400..=499 => ApiError::BadRequest(text),
        _ => ApiError::Service(text),
    }
}

/// A connection to the service.
#[derive(Debug)]
pub(crate) struct Client {
    agent: ureq::Agent,
    base: String,
    key: String,
}

impl Client {
    pub(crate) fn new(args: &ServerArgs) -> Result<Self> {
        let base = args.server.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(BadInput(format!(
                "--server {:?} is not an http:// or https:// URL",
                args.server
            ))
            .into());
        }
        if args.api_key.trim().is_empty() {
            return Err(BadInput("--api-key (VEXXY_API_KEY) is empty".into()).into());
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_global(Some(Duration::from_secs(600)))
            .user_agent(concat!("vexxy/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build();
        Ok(Self {
            agent: config.into(),
            base,
            key: args.api_key.trim().to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request; `(status, body)` whatever the status, transport
    /// failures as [`ApiError::Transport`]. A body goes with POST and PUT.
    pub(crate) fn request(
        &self,
        what: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let url = self.url(path);
        let transport = |source: ureq::Error| ApiError::Transport {
            what: what.to_owned(),
            url: url.clone(),
            source,
        };
        let auth = format!("Bearer {}", self.key);
        let response = match (method, body) {
            ("POST", Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .send(body),
            ("PUT", Some(body)) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .send(body),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .header("Accept", "application/json")
                .call(),
            _ => self.agent.get(&url).header("Authorization", &auth).call(),
        }
        .map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(transport)?;
        Ok((status, bytes))
    }

    /// The answer (one of the server's wire types) with one of the `ok`
    /// statuses, else the error it stands for. `body` is sent as JSON.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        what: &str,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
        ok: &[u16],
    ) -> Result<(u16, T), ApiError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ApiError::Service(format!("{what}: encoding the request: {e}")))?;
        let (status, bytes) = self.request(what, method, path, body.as_deref(), MAX_JSON_BYTES)?;
        if !ok.contains(&status) {
            return Err(api_error(what, status, &bytes));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::Service(format!(
                "{what}: the service answered {status} with something this client cannot read: {e}"
            ))
        })?;
        Ok((status, value))
    }

    fn status(&self, id: &str) -> Result<JobStatus, ApiError> {
        self.json(
            &format!("asking for the status of job {id}"),
            "GET",
            &format!("/api/v1/analysis/{}/status", path_segment(id)),
            NO_BODY,
            &[200],
        )
        .map(|(_, v)| v)
    }

    fn results(&self, id: &str) -> Result<Results, ApiError> {
        self.json(
            &format!("fetching the results of job {id}"),
            "GET",
            &format!("/api/v1/analysis/{}/results", path_segment(id)),
            NO_BODY,
            &[200],
        )
        .map(|(_, v)| v)
    }
}

/// No request body (GET, DELETE).
pub(crate) const NO_BODY: Option<&()> = None;

/// A job id as one URL path segment (ids are plain, but a stray `/` or
/// `?` must not change which resource is asked for).
pub(crate) fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    // `.` and `..` would be resolved away as path segments
    let dots_only = id.bytes().all(|b| b == b'.');
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-_~".contains(&b) || (b == b'.' && !dots_only) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the submission sends besides the image: files read and checked.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Uploads {
    pub(crate) scan_report: Option<Value>,
    pub(crate) sbom: Option<Value>,
    pub(crate) test_script: Option<String>,
}

impl Uploads {
    fn read(args: &SubmitArgs) -> Result<Self> {
        Ok(Self {
            scan_report: args
                .scan
                .as_deref()
                .map(|p| read_json_file(p, "--scan"))
                .transpose()?,
            sbom: args
                .sbom
                .as_deref()
                .map(|p| read_json_file(p, "--sbom"))
                .transpose()?,
            test_script: args
                .test_script
                .as_deref()
                .map(|p| {
                    let bytes = read_limited(p, "--test-script")?;
                    String::from_utf8(bytes).map_err(|_| {
                        anyhow::Error::from(BadInput(format!(
                            "--test-script {}: is not UTF-8 text",
                            p.display()
                        )))
                    })
                })
                .transpose()?,
        })
    }
}

fn read_limited(path: &Path, flag: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| BadInput(format!("{flag} {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_UPLOAD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| BadInput(format!("{flag} {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_UPLOAD_BYTES {
        return Err(BadInput(format!(
            "{flag} {}: larger than {} MiB",
            path.display(),
            MAX_UPLOAD_BYTES >> 20
        ))
        .into());
    }
    Ok(bytes)
}

fn read_json_file(path: &Path, flag: &str) -> Result<Value> {
    let bytes = read_limited(path, flag)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| BadInput(format!("{flag} {}: is not JSON: {e}", path.display())).into())
}

/// The body of `POST /api/v1/analysis/submit`.
pub(crate) fn submit_body(args: &SubmitArgs, uploads: Uploads) -> Result<SubmitRequest> {
    let mut config = SubmitConfig::default();
    if let Some(d) = args.duration {
        if d.is_zero() {
            return Err(BadInput("--duration must be at least one second".into()).into());
        }
        // whole seconds, rounded up
        config.analysis_duration = Some(d.as_secs() + u64::from(d.subsec_nanos() > 0));
    }
    if !args.env.is_empty() {
        let mut env = BTreeMap::new();
        for kv in &args.env {
            let (k, v) = kv
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| BadInput(format!("--env {kv:?} is not KEY=VALUE")))?;
            env.insert(k.to_owned(), v.to_owned());
        }
        config.environment = Some(env);
    }
    if !args.cmd.is_empty() {
        config.command = Some(cmd_words(&args.cmd)?);
    }
    config.test_script = uploads.test_script;
    if !args.port.is_empty() {
        config.ports = Some(args.port.clone());
    }
    config.image_name.clone_from(&args.name);
    if args.allow_report_mismatch {
        config.allow_report_mismatch = Some(true);
    }
    if args.sign {
        config.sign = Some(true);
    }
    if args.attach {
        config.attach = Some(true);
    }
    if args.fixed_window {
        config.fixed_window = Some(true);
    }
    Ok(SubmitRequest {
        image_ref: args.image.clone(),
        image_digest: args.image_digest.clone(),
        config: Some(config),
        scan_report: uploads
            .scan_report
            .as_ref()
            .map(Document::try_from)
            .transpose()?,
        sbom: uploads.sbom.as_ref().map(Document::try_from).transpose()?,
        callback_url: args.callback_url.clone(),
    })
}

/// `--cmd` as `vexxy analyze` reads it: each flag a word, a single flag a
/// shell-quoted line.
fn cmd_words(flags: &[String]) -> Result<Vec<String>> {
    if let [one] = flags {
        shlex::split(one)
            .filter(|w| !w.is_empty())
            .ok_or_else(|| BadInput(format!("--cmd {one:?}: empty or unbalanced quotes")).into())
    } else {
        Ok(flags.to_vec())
    }
}

pub(crate) fn submit(args: &SubmitArgs, quiet: bool) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let body = submit_body(args, Uploads::read(args)?)?;
    let (code, answer): (u16, SubmitResponse) = client.json(
        &format!("submitting {}", args.image),
        "POST",
        "/api/v1/analysis/submit",
        Some(&body),
        &[200, 201, 202],
    )?;
    let id = answer.job_id.clone();
    if id.is_empty() {
        return Err(ApiError::Service(format!(
            "submitting {}: the service answered {code} without a job_id",
            args.image
        ))
        .into());
    }
    if !quiet {
        eprintln!(
            "job {id}: {}, about {} min{}",
            answer.status,
            answer.estimated_duration_minutes,
            if answer.deduplicated {
                " (an identical earlier submission)"
            } else {
                ""
            }
        );
    }
    if !args.wait {
        if args.json {
            output::print(&format!("{}\n", pretty(&answer)?));
        } else {
            output::print(&format!("{id}\n"));
        }
        return Ok(Exit::Done);
    }
    wait(&client, &id, args.poll_interval, args.wait_timeout, quiet)?;
    let results = client.results(&id)?;
    // with --json alone, stdout gets the results (the document is in them)
    if !(args.json && args.output.is_none()) {
        write_vex(&results, args.output.as_deref(), quiet)?;
    }
    if args.json {
        output::print(&format!("{}\n", pretty(&results)?));
    }
    if !quiet {
        eprintln!("{}", summary_line(&id, &results));
    }
    Ok(Exit::Done)
}

/// Polls until the job finishes; phase changes go to stderr.
fn wait(client: &Client, id: &str, every: Duration, timeout: Duration, quiet: bool) -> Result<()> {
    let began = Instant::now();
    let mut last: Option<(String, Option<String>)> = None;
    let mut failures = 0;
    loop {
        match client.status(id) {
            Ok(s) => {
                failures = 0;
                let now = (s.status.clone(), s.current_phase.clone());
                if !quiet && last.as_ref() != Some(&now) {
                    eprintln!("{}", status_line(id, &s));
                }
                match terminal_exit(&s.status) {
                    Some(Exit::Done) => return Ok(()),
                    Some(_) => {
                        let why = s
                            .error
                            .as_deref()
                            .map_or_else(String::new, |e| format!(": {e}"));
                        return Err(
                            ApiError::JobFailed(format!("job {id} {}{why}", s.status)).into()
                        );
                    }
                    None => {}
                }
                last = Some(now);
            }
            Err(e) if e.is_transient() && failures < POLL_FAILURES_TOLERATED => {
                failures += 1;
                tracing::warn!("{e}; asking again");
            }
            Err(e) => return Err(e.into()),
        }
        if began.elapsed() >= timeout {
            return Err(ApiError::Service(format!(
                "job {id} did not finish within {}; it goes on: `vexxy status {id}`",
                humantime::format_duration(timeout)
            ))
            .into());
        }
        std::thread::sleep(every.min(timeout.saturating_sub(began.elapsed())));
    }
}

/// `JOB: running, observing the workload (60%)`.
fn status_line(id: &str, s: &JobStatus) -> String {
    let mut line = format!("{id}: {}", s.status);
    if let Some(phase) = &s.current_phase {
        line.push_str(&format!(", {phase}"));
    }
    if let Ok(p) = u64::try_from(s.progress_percent) {
        line.push_str(&format!(" ({p}%)"));
    }
    line
}

fn summary_line(id: &str, results: &Results) -> String {
    let s = &results.summary;
    format!(
        "job {id}: {}{}: {} vulnerabilities: not_affected {}, affected {}, fixed {}, under_investigation {}",
        results.image_ref,
        results
            .image_digest
            .as_deref()
            .filter(|d| !d.is_empty())
            .map_or_else(String::new, |d| format!("@{d}")),
        s.total,
        s.not_affected,
        s.affected,
        s.fixed,
        s.under_investigation,
    )
}

pub(crate) fn pretty(v: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(v).context("encoding JSON")
}

/// The VEX document of a results answer to `path` (stdout when `None`).
fn write_vex(results: &Results, path: Option<&Path>, quiet: bool) -> Result<()> {
    match &results.vex_document {
        Some(doc) if !doc.is_null() => {
            let mut text = pretty(doc)?;
            text.push('\n');
            output::write(path, text.as_bytes())
                .with_context(|| "writing the VEX document".to_owned())
        }
        _ => {
            if !quiet {
                eprintln!("the image had no findings: there is no VEX document to write");
            }
            Ok(())
        }
    }
}

pub(crate) fn status(args: &StatusArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let s = client.status(&args.id)?;
    if args.json {
        output::print(&format!("{}\n", pretty(&s)?));
    } else {
        let mut text = status_line(&args.id, &s);
        text.push('\n');
        for (key, value) in [
            ("image_ref", Some(s.image_ref.clone())),
            ("image_digest", s.image_digest.clone()),
            ("attempts", Some(s.attempts.to_string())),
            ("error", s.error.clone()),
            ("created_at", Some(s.created_at.clone())),
            ("started_at", s.started_at.clone()),
            ("completed_at", s.completed_at.clone()),
        ] {
            if let Some(v) = value {
                text.push_str(&format!("  {key}: {v}\n"));
            }
        }
        output::print(&text);
    }
    Ok(match terminal_exit(&s.status) {
        Some(Exit::JobFailed) => Exit::JobFailed,
        _ => Exit::Done,
    })
}

pub(crate) fn results(args: &ResultsArgs, quiet: bool) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let results = client.results(&args.id)?;
    if args.json {
        let text = format!("{}\n", pretty(&results)?);
        output::write(args.output.as_deref(), text.as_bytes())?;
        return Ok(Exit::Done);
    }
    let Some(wanted) = &args.artifact else {
        write_vex(&results, args.output.as_deref(), quiet)?;
        if !quiet {
            eprintln!("{}", summary_line(&args.id, &results));
        }
        return Ok(Exit::Done);
    };
    let links = &results.links;
    let path = artifact_path(links, wanted).ok_or_else(|| {
        BadInput(format!(
            "job {} has no artifact {wanted:?}; it has: {}",
            args.id,
            links.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let what = format!("downloading {wanted} of job {}", args.id);
    let (code, bytes) = client.request(&what, "GET", &path, None, MAX_ARTIFACT_BYTES)?;
    if code != 200 {
        return Err(api_error(&what, code, &bytes).into());
    }
    output::write(args.output.as_deref(), &bytes).with_context(|| format!("writing {wanted}"))?;
    Ok(Exit::Done)
}

/// The service path of an artifact named by its link name or file name.
/// Only paths on the service itself: the API key goes with the request.
fn artifact_path(links: &BTreeMap<String, String>, wanted: &str) -> Option<String> {
    links
        .iter()
        .find(|(name, path)| *name == wanted || path.rsplit('/').next() == Some(wanted))
        .map(|(_, path)| path.clone())
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
}

pub(crate) fn cancel(args: &CancelArgs) -> Result<Exit> {
    let client = Client::new(&args.server)?;
    let (_, answer): (u16, CancelResponse) = client.json(
        &format!("cancelling job {}", args.id),
        "DELETE",
        &format!("/api/v1/analysis/{}", path_segment(&args.id)),
        NO_BODY,
        &[200, 202],
    )?;
    output::print(&format!(
        "{}: {}\n",
        args.id,
        match answer.status.as_str() {
            "" => "cancelled",
            s => s,
        }
    ));
    Ok(Exit::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    /// The body as it goes on the wire.
    fn wire(body: &SubmitRequest) -> Value {
        serde_json::to_value(body).unwrap()
    }

    fn submit_args(argv: &[&str]) -> SubmitArgs {
        let mut full = vec!["vexxy", "submit", "--api-key", "k"];
        full.extend_from_slice(argv);
        match crate::cli::Cli::try_parse_from(full).unwrap().command {
            crate::cli::Command::Submit(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn submit_body_carries_every_flag() {
        let args = submit_args(&[
            "nginx:1.27",
            "--duration",
            "1m",
            "-e",
            "A=1",
            "-e",
            "B=x=y",
            "--cmd",
            "nginx",
            "--cmd",
            "-g",
            "--cmd",
            "daemon off;",
            "--port",
            "80",
            "--port",
            "8080",
            "--callback-url",
            "https://example.test/hook",
            "--image-digest",
            "sha256:aa",
            "--fixed-window",
        ]);
        let body = submit_body(
            &args,
            Uploads {
                scan_report: Some(json!({"matches": []})),
                sbom: None,
                test_script: Some("curl $VEXXY_TARGET_URL\n".into()),
            },
        )
        .unwrap();
        assert_eq!(
            wire(&body),
            json!({
                "image_ref": "nginx:1.27",
                "image_digest": "sha256:aa",
                "config": {
                    "analysis_duration": 60,
                    "environment": {"A": "1", "B": "x=y"},
                    "command": ["nginx", "-g", "daemon off;"],
                    "test_script": "curl $VEXXY_TARGET_URL\n",
                    "ports": [80, 8080],
                    "fixed_window": true,
                },
                "scan_report": {"matches": []},
                "callback_url": "https://example.test/hook",
            })
        );
    }

    #[test]
    fn submit_body_leaves_out_what_was_not_given() {
        let body = submit_body(&submit_args(&["nginx"]), Uploads::default()).unwrap();
        assert_eq!(wire(&body), json!({"image_ref": "nginx", "config": {}}));
        let one = submit_body(
            &submit_args(&[
                "nginx",
                "--cmd",
                "nginx -g 'daemon off;'",
                "--duration",
                "1500ms",
            ]),
            Uploads::default(),
        )
        .unwrap();
        let one = wire(&one);
        assert_eq!(
            one["config"]["command"],
            json!(["nginx", "-g", "daemon off;"])
        );
        assert_eq!(one["config"]["analysis_duration"], json!(2));
    }

    #[test]
    fn submit_body_rejects_bad_flags() {
        for argv in [
            &["nginx", "-e", "NOEQUALS"][..],
            &["nginx", "-e", "=v"],
            &["nginx", "--cmd", "'open"],
            &["nginx", "--duration", "0s"],
        ] {
            let err = submit_body(&submit_args(argv), Uploads::default()).unwrap_err();
            assert_eq!(
                crate::exit::classify(&err),
                Exit::BadInput,
                "{argv:?}: {err:#}"
            );
        }
    }

    #[test]
    fn reports_must_be_json_and_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("report.txt");
        std::fs::write(&bad, "not json").unwrap();
        let err = read_json_file(&bad, "--scan").unwrap_err();
        assert_eq!(crate::exit::classify(&err), Exit::BadInput);
        assert!(err.to_string().contains("report.txt"), "{err}");
        let err = read_json_file(&dir.path().join("missing.json"), "--sbom").unwrap_err();
        assert_eq!(crate::exit::classify(&err), Exit::BadInput);
        let good = dir.path().join("r.json");
        std::fs::write(&good, r#"{"a": [1]}"#).unwrap();
        assert_eq!(read_json_file(&good, "--scan").unwrap(), json!({"a": [1]}));
    }

    #[test]
    fn http_statuses_map_to_exit_codes() {
        let body = |v: Value| serde_json::to_vec(&v).unwrap();
        let cases = [
            (
                401,
                body(json!({"code": "unauthorized", "message": "bad key"})),
                Exit::Refused,
            ),
            (
                403,
                body(json!({"code": "premium_required", "message": "Premium tier required"})),
                Exit::Refused,
            ),
            (
                429,
                body(
                    json!({"code": "quota_exceeded", "message": "monthly quota used up", "used": 10, "limit": 10}),
                ),
                Exit::Refused,
            ),
            (
                400,
                body(json!({"code": "bad_request", "message": "x"})),
                Exit::BadInput,
            ),
            (
                404,
                body(json!({"code": "not_found", "message": "x"})),
                Exit::BadInput,
            ),
            (
                409,
                body(json!({"code": "already_finished", "message": "x"})),
                Exit::BadInput,
            ),
            (
                409,
                body(json!({"code": "not_complete", "message": "x", "status": "running"})),
                Exit::BadInput,
            ),
            (
                409,
                body(json!({"code": "not_complete", "message": "x", "status": "failed"})),
                Exit::JobFailed,
            ),
            (
                410,
                body(json!({"code": "gone", "message": "expired"})),
                Exit::BadInput,
            ),
            (
                422,
                body(json!({"code": "bad_request", "message": "x"})),
                Exit::BadInput,
            ),
            (500, b"oops".to_vec(), Exit::Internal),
            (503, Vec::new(), Exit::Internal),
        ];
        for (status, body, want) in cases {
            let e = api_error("doing it", status, &body);
            assert_eq!(e.exit(), want, "{status}: {e}");
            assert_eq!(crate::exit::classify(&anyhow::Error::from(e)), want);
        }
        let e = api_error(
            "submitting x",
            429,
            &body(json!({"code": "quota_exceeded", "message": "m", "used": 7, "limit": 5})),
        );
        assert!(e.to_string().contains("used 7, limit 5"), "{e}");
        let e = api_error(
            "submitting x",
            403,
            &body(json!({"code": "premium_required", "message": "Premium tier required"})),
        );
        assert!(e.to_string().contains("Premium tier required"), "{e}");
    }

    #[test]
    fn job_statuses_map_to_exit_codes() {
        assert_eq!(terminal_exit("complete"), Some(Exit::Done));
        assert_eq!(terminal_exit("failed"), Some(Exit::JobFailed));
        assert_eq!(terminal_exit("cancelled"), Some(Exit::JobFailed));
        for s in ["queued", "running", "analyzing", ""] {
            assert_eq!(terminal_exit(s), None, "{s}");
        }
    }

    #[test]
    fn artifacts_are_found_by_link_or_file_name_on_the_service_only() {
        let links: BTreeMap<String, String> = [
            ("report_html", "/api/v1/analysis/j/artifacts/report.html"),
            ("evidence", "https://elsewhere.test/evidence.json"),
            ("profile", "//elsewhere.test/profile.json"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let want = Some("/api/v1/analysis/j/artifacts/report.html".to_owned());
        assert_eq!(artifact_path(&links, "report_html"), want);
        assert_eq!(artifact_path(&links, "report.html"), want);
        assert_eq!(artifact_path(&links, "evidence"), None);
        assert_eq!(artifact_path(&links, "profile"), None);
        assert_eq!(artifact_path(&links, "sbom"), None);
    }

    #[test]
    fn job_ids_stay_one_path_segment() {
        assert_eq!(path_segment("0190-abc_D.e~"), "0190-abc_D.e~");
        assert_eq!(path_segment("../x?y"), "..%2Fx%3Fy");
        assert_eq!(path_segment(".."), "%2E%2E");
    }
}
