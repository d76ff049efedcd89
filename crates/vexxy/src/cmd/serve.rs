//! `vexxy serve`, `vexxy worker` and `vexxy admin`: the service on
//! embedded defaults (SQLite and an evidence directory under the data
//! directory, in-process workers) or on PostgreSQL / object storage with
//! separate worker processes.
//!
//! Settings come from flags, then the environment (clap `env`), then the
//! TOML file given with `--config` (keys are the long flag names with
//! underscores), then the defaults.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result};
use serde::Deserialize;
use vexxy_server::{
    capacity::{HostResources, WorkerBudget},
    AnalysisSettings, Pipeline, Service, ServiceConfig,
};
use vexxy_store::{EvidenceStore, LocalStore, Store, Tier};

use crate::{
    cli::{AdminArgs, AdminCommand, ServeArgs, ServiceArgs, WorkerArgs},
    exit::{BadInput, Exit},
};

/// The `--config` file: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<String>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    evidence: Option<String>,
    workers: Option<usize>,
    lease: Option<String>,
    heartbeat: Option<String>,
    job_timeout: Option<String>,
    max_attempts: Option<i64>,
    retry_backoff: Option<String>,
    retention: Option<String>,
    sweep_every: Option<String>,
    min_free_space: Option<String>,
    shutdown_grace: Option<String>,
    default_duration: Option<String>,
    max_duration: Option<String>,
    cpus: Option<f64>,
    memory: Option<String>,
    pids: Option<u64>,
    allow_local_images: Option<Vec<PathBuf>>,
    insecure_registry: Option<Vec<String>>,
    registry_allow: Option<Vec<String>>,
    egress_allow_address: Option<Vec<String>>,
    allow_private_callbacks: Option<bool>,
    allow_test_scripts: Option<bool>,
    webhook_max_attempts: Option<i64>,
    webhook_backoff: Option<String>,
    work_dir: Option<PathBuf>,
    max_body_bytes: Option<String>,
    max_report_bytes: Option<String>,
    max_report_values: Option<u64>,
    max_sbom_bytes: Option<String>,
    max_sbom_values: Option<u64>,
    large_body_bytes: Option<String>,
    max_large_submits: Option<usize>,
    metrics_token: Option<String>,
    secret_key_file: Option<PathBuf>,
    /// Where it was read from, for error messages.
    #[serde(skip)]
    path: PathBuf,
}

fn read_config(path: Option<&Path>) -> Result<ConfigFile> {
    let Some(path) = path else {
        return Ok(ConfigFile::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("reading the config file {}: {e}", path.display())))?;
    let mut file: ConfigFile = toml::from_str(&text)
        .map_err(|e| BadInput(format!("config file {}: {e}", path.display())))?;
    file.path = path.to_owned();
    Ok(file)
}

fn duration(
    flag: &str,
    cli: Option<Duration>,
    (path, file): (&Path, Option<&String>),
    default: Duration,
) -> Result<Duration> {
    if let Some(d) = cli {
        return Ok(d);
    }
    match file {
        Some(s) => humantime::parse_duration(s).map_err(|e| {
            BadInput(format!("config file {}: {flag} {s:?}: {e}", path.display())).into()
        }),
        None => Ok(default),
    }
}

/// Everything a service process needs, resolved.
struct Resolved {
    database_url: String,
    evidence: String,
    data_dir: PathBuf,
    config: ServiceConfig,
    /// Why `config.workers` is what it is, when the host decided it
    /// (neither `--workers`, `VEXXY_WORKERS` nor the file said).
    workers_budget: Option<WorkerBudget>,
}

/// How many jobs a process runs at once when neither `--workers`,
/// `VEXXY_WORKERS` nor the config file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DefaultWorkers {
    /// What this host's CPUs and memory allow
    /// ([`vexxy_server::capacity`]): `serve` and `worker`.
    FromHost,
    /// None: `admin` runs no jobs.
    None,
}

fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("vexxy");
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/vexxy");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local/share/vexxy"))
        .unwrap_or_else(|| PathBuf::from("vexxy-data"))
}

fn resolve(args: &ServiceArgs, default_workers: DefaultWorkers) -> Result<Resolved> {
    let file = read_config(args.config.as_deref())?;
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir.clone())
        .unwrap_or_else(default_data_dir);
    let database_url = args
        .database_url
        .clone()
        .or(file.database_url.clone())
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("vexxy.db").display()));
    let evidence = args
        .evidence
        .clone()
        .or(file.evidence.clone())
        .unwrap_or_else(|| data_dir.join("evidence").display().to_string());
    let workers = args.workers.or(file.workers);
    let mut config = ServiceConfig {
        workers: workers.unwrap_or(0),
        ..ServiceConfig::default()
    };
    let q = &mut config.queue;
    q.lease = duration(
        "lease",
        args.lease,
        (file.path.as_path(), file.lease.as_ref()),
        q.lease,
    )?;
    q.heartbeat = duration(
        "heartbeat",
        args.heartbeat,
        (file.path.as_path(), file.heartbeat.as_ref()),
        q.heartbeat,
    )?;
    q.job_timeout = duration(
        "job_timeout",
        args.job_timeout,
        (file.path.as_path(), file.job_timeout.as_ref()),
        q.job_timeout,
    )?;
    q.retry_backoff = duration(
        "retry_backoff",
        args.retry_backoff,
        (file.path.as_path(), file.retry_backoff.as_ref()),
        q.retry_backoff,
    )?;
    q.max_attempts = args
        .max_attempts
        .or(file.max_attempts)
        .unwrap_or(q.max_attempts);
    if q.max_attempts < 1 {
        return Err(BadInput("--max-attempts must be at least 1".into()).into());
    }
    if q.heartbeat.is_zero() {
        return Err(BadInput("--heartbeat must be more than 0".into()).into());
    }
    if q.heartbeat * 2 > q.lease {
        return Err(BadInput(format!(
            "--heartbeat {:?} must be at most half of --lease {:?}",
            q.heartbeat, q.lease
        ))
        .into());
    }
    config.retention = duration(
        "retention",
        args.retention,
        (file.path.as_path(), file.retention.as_ref()),
        config.retention,
    )?;
    config.sweep_every = duration(
        "sweep_every",
        args.sweep_every,
        (file.path.as_path(), file.sweep_every.as_ref()),
        config.sweep_every,
    )?;
    if config.sweep_every.is_zero() {
        return Err(BadInput("--sweep-every must be more than 0".into()).into());
    }
    if let Some(text) = args
        .min_free_space
        .as_ref()
        .or(file.min_free_space.as_ref())
    {
        config.min_free_bytes = super::inputs::parse_size("--min-free-space", text)?;
    }
    config.shutdown_grace = duration(
        "shutdown_grace",
        args.shutdown_grace,
        (file.path.as_path(), file.shutdown_grace.as_ref()),
        config.shutdown_grace,
    )?;
    let s = &mut config.submit;
    s.default_duration = duration(
        "default_duration",
        args.default_duration,
        (file.path.as_path(), file.default_duration.as_ref()),
        s.default_duration,
    )?;
    s.max_duration = duration(
        "max_duration",
        args.max_duration,
        (file.path.as_path(), file.max_duration.as_ref()),
        s.max_duration,
    )?;
    s.allow_private_callbacks =
        args.allow_private_callbacks || file.allow_private_callbacks.unwrap_or(false);
    s.allow_test_scripts = args.allow_test_scripts || file.allow_test_scripts.unwrap_or(false);
    if s.default_duration.is_zero() || s.default_duration > s.max_duration {
        return Err(BadInput(format!(
            "--default-duration {:?} must be within 1s..=--max-duration {:?}",
            s.default_duration, s.max_duration
        ))
        .into());
    }
    let w = &mut config.webhooks;
    w.max_attempts = args
        .webhook_max_attempts
        .or(file.webhook_max_attempts)
        .unwrap_or(w.max_attempts);
    w.backoff = duration(
        "webhook_backoff",
        args.webhook_backoff,
        (file.path.as_path(), file.webhook_backoff.as_ref()),
        w.backoff,
    )?;

    if w.max_attempts < 1 {
        return Err(BadInput("--webhook-max-attempts must be at least 1".into()).into());
    }
    request_limits(args, &file, &mut config)?;
    config.secret_key = secret_key(args, &file)?;
    config.analysis = analysis_settings(args, &file, &data_dir, config.submit.max_duration)?;
    // as many jobs at once as the host holds at the sandbox limits
    let workers_budget = match (workers, default_workers) {
        (None, DefaultWorkers::FromHost) => Some(WorkerBudget::for_host(
            HostResources::detect(),
            config.analysis.limits.memory_bytes,
        )),
        _ => None,
    };
    if let Some(b) = &workers_budget {
        config.workers = b.workers;
    }
    Ok(Resolved {
        database_url,
        evidence,
        data_dir,
        config,
        workers_budget,
    })
}

/// Logs how many jobs this process runs at once, and why.
fn log_workers(r: &Resolved) {
    match &r.workers_budget {
        Some(b) => {
            tracing::info!(
                workers = b.workers,
                budget = %b,
                "jobs at once: what this host's CPUs and memory allow at the sandbox limits (--workers overrides)"
            );
            if b.memory_short() {
                tracing::warn!(
                    budget = %b,
                    "this host has less memory available than one sandbox may use (--memory): analyses may run out of memory"
                );
            }
        }
        None => tracing::info!(workers = r.config.workers, "jobs at once: as configured"),
    }
}

/// The server secret key: `--secret-key-file` (or
/// `VEXXY_SECRET_KEY_FILE`), else the key itself in `VEXXY_SECRET_KEY`,
/// else the config file's `secret_key_file`; none at all is allowed (the
/// features that need it are then refused).
fn secret_key(args: &ServiceArgs, file: &ConfigFile) -> Result<Option<vexxy_store::ServerKey>> {
    let from_env = std::env::var("VEXXY_SECRET_KEY")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let path = match (&args.secret_key_file, from_env) {
        (Some(path), _) => path.clone(),
        (None, Some(text)) => {
            let text = zeroize_on_drop(text);
            return vexxy_store::ServerKey::parse(text.expose())
                .map(Some)
                .map_err(|e| BadInput(format!("VEXXY_SECRET_KEY: {e}")).into());
        }
        (None, None) => match &file.secret_key_file {
            Some(path) => path.clone(),
            None => return Ok(None),
        },
    };
    let bytes = super::inputs::read_file("--secret-key-file", &path, 4096)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "the server secret key file is readable by others than its owner (chmod 600 it)"
                );
            }
        }
    }
    let text = zeroize_on_drop(String::from_utf8_lossy(&bytes).into_owned());
    vexxy_store::ServerKey::parse(text.expose())
        .map(Some)
        .map_err(|e| BadInput(format!("--secret-key-file {}: {e}", path.display())).into())
}

/// A secret's text, wiped when dropped.
fn zeroize_on_drop(text: String) -> vexxy_store::SecretString {
    vexxy_store::SecretString::new(text)
}

/// What one request may cost: body and document sizes, value counts,
/// large submissions at once; and who may read the metrics.
fn request_limits(args: &ServiceArgs, file: &ConfigFile, config: &mut ServiceConfig) -> Result<()> {
    let size = |flag: &str, cli: &Option<String>, file: &Option<String>, default: usize| match cli
        .as_ref()
        .or(file.as_ref())
    {
        None => Ok(default),
        Some(text) => {
            let n = super::inputs::parse_size(flag, text).map_err(|e| BadInput(e.to_string()))?;
            match usize::try_from(n) {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(anyhow::Error::from(BadInput(format!(
                    "{flag} {text:?} must be above zero"
                )))),
            }
        }
    };
    let count = |flag: &str, n: Option<u64>, default: u64| match n {
        Some(0) => Err(anyhow::Error::from(BadInput(format!(
            "{flag} must be at least 1"
        )))),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    config.max_body_bytes = size(
        "--max-body-bytes",
        &args.max_body_bytes,
        &file.max_body_bytes,
        config.max_body_bytes,
    )?;
    let s = &mut config.submit;
    s.scan_report.max_bytes = size(
        "--max-report-bytes",
        &args.max_report_bytes,
        &file.max_report_bytes,
        s.scan_report.max_bytes,
    )?;
    s.scan_report.max_values = count(
        "--max-report-values",
        args.max_report_values.or(file.max_report_values),
        s.scan_report.max_values,
    )?;
    s.sbom.max_bytes = size(
        "--max-sbom-bytes",
        &args.max_sbom_bytes,
        &file.max_sbom_bytes,
        s.sbom.max_bytes,
    )?;
    s.sbom.max_values = count(
        "--max-sbom-values",
        args.max_sbom_values.or(file.max_sbom_values),
        s.sbom.max_values,
    )?;
    s.large_body_bytes = size(
        "--large-body-bytes",
        &args.large_body_bytes,
        &file.large_body_bytes,
        s.large_body_bytes,
    )?;
    let large = args.max_large_submits.or(file.max_large_submits);
    s.max_large_submits = count(
        "--max-large-submits",
        large.map(|n| n as u64),
        s.max_large_submits as u64,
    )? as usize;
    if let Some(token) = args.metrics_token.as_ref().or(file.metrics_token.as_ref()) {
        if token.chars().count() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(BadInput(
                "--metrics-token must be at least 16 characters without spaces or control characters"
                    .into(),
            )
            .into());
        }
        config.metrics_token = Some(vexxy_server::config::Secret::new(token.clone()));
    }
    Ok(())
}

/// How this process runs analyses: caches under the data directory (the
/// workers of one host share them), scratch space, local-image roots,
/// sandbox limits.
fn analysis_settings(
    args: &ServiceArgs,
    file: &ConfigFile,
    data_dir: &Path,
    max_duration: Duration,
) -> Result<AnalysisSettings> {
    let mut a = AnalysisSettings {
        caches: vexxy_analyze::Caches::at(
            std::env::var_os("VEXXY_CACHE_DIR")
                .filter(|d| !d.is_empty())
                .map_or_else(|| data_dir.join("cache"), PathBuf::from),
        ),
        ..AnalysisSettings::default()
    };
    super::inputs::cache_bounds(&mut a.caches)?;
    let work = args
        .work_dir
        .clone()
        .or(file.work_dir.clone())
        .unwrap_or_else(|| data_dir.join("work"));
    std::fs::create_dir_all(&work)
        .with_context(|| format!("creating the work directory {}", work.display()))?;
    a.caches.scratch = Some(work);
    let mut roots = args.allow_local_images.clone();
    if roots.is_empty() {
        roots = file.allow_local_images.clone().unwrap_or_default();
    }
    a.allowed_local_roots = roots
        .iter()
        .map(|r| {
            std::fs::canonicalize(r).map_err(|e| {
                BadInput(format!("allowed local image root {}: {e}", r.display())).into()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut insecure = args.insecure_registry.clone();
    if insecure.is_empty() {
        insecure = file.insecure_registry.clone().unwrap_or_default();
    }
    a.insecure_registries = insecure;
    // every pull obeys the egress policy: the deny-list always, plus the
    // operator's host allow-list and exempt addresses
    let mut hosts = args.registry_allow.clone();
    if hosts.is_empty() {
        hosts = file.registry_allow.clone().unwrap_or_default();
    }
    let mut addresses = args.egress_allow_address.clone();
    if addresses.is_empty() {
        addresses = file.egress_allow_address.clone().unwrap_or_default();
    }
    a.egress = Some(
        super::inputs::egress_policy(&hosts, &addresses)
            .map_err(|e| BadInput(format!("--registry-allow/--egress-allow-address: {e}")))?,
    );
    if let Some(c) = args.cpus.or(file.cpus) {
        if !(c > 0.0 && c.is_finite()) {
            return Err(BadInput(format!("--cpus {c} is not a positive number")).into());
        }
        a.limits.cpus = c;
    }
    if let Some(m) = args.memory.clone().or(file.memory.clone()) {
        a.limits.memory_bytes = super::inputs::parse_size("--memory", &m)?;
    }
    if let Some(p) = args.pids.or(file.pids) {
        a.limits.pids = p;
    }
    if a.limits.memory_bytes == 0 || a.limits.pids == 0 {
        return Err(BadInput("--memory and --pids must be above zero".into()).into());
    }
    // the sandbox run may take the exercise window plus start and teardown
    a.run_timeout = (max_duration + Duration::from_secs(120)).min(vexxy_analyze::MAX_RUN_TIMEOUT);
    if let Some(t) = &args.timestamp {
        a.timestamp = Some(super::inputs::timestamp(Some(t))?);
    }
    Ok(a)
}

fn listen_addr(args: &ServeArgs) -> Result<SocketAddr> {
    let file = read_config(args.service.config.as_deref())?;
    let text = args
        .listen
        .clone()
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    text.parse()
        .map_err(|e| BadInput(format!("--listen {text:?}: {e}")).into())
}

async fn open_store(url: &str) -> Result<Store> {
    Store::open(url)
        .await
        .with_context(|| format!("opening the database {}", vexxy_store::redact(url)))
}

fn open_evidence(spec: &str) -> Result<EvidenceStore> {
    if spec.starts_with("s3://") {
        let config = vexxy_store::s3::S3Config::from_url(spec)
            .map_err(|e| BadInput(format!("--evidence: {e}")))?;
        let store =
            vexxy_store::s3::S3Store::new(&config).context("connecting the evidence store")?;
        return Ok(EvidenceStore::S3(store));
    }
    let dir = PathBuf::from(spec);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the evidence directory {}", dir.display()))?;
    Ok(EvidenceStore::Local(LocalStore::new(dir)))
}

/// Blocking analysis threads that ignore their cancellation are not
/// waited for longer than this when the process exits.
const EXIT_WAIT: Duration = Duration::from_secs(10);

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn build_service(r: &Resolved, store: Store) -> Result<Arc<Service>> {
    let evidence = open_evidence(&r.evidence)?;
    let analyzer = Pipeline::new(r.config.analysis.caches.clone());
    Ok(Service::new(
        store,
        evidence,
        Arc::new(analyzer),
        r.config.clone(),
    ))
}

fn check_can_analyze(workers: usize) -> Result<()> {
    if workers == 0 {
        return Ok(());
    }
    vexxy_analyze::preflight(Path::new("runc"))
        .context("this process runs workers (--workers 0 serves the API only)")?;
    Ok(())
}

pub(crate) fn serve(args: &ServeArgs) -> Result<Exit> {
    let r = resolve(&args.service, DefaultWorkers::FromHost)?;
    let addr = listen_addr(args)?;
    check_can_analyze(r.config.workers)?;
    log_workers(&r);
    let rt = runtime()?;
    let result = rt.block_on(async {
        let store = open_store(&r.database_url).await?;
        let svc = build_service(&r, store)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        tracing::info!(
            address = %local,
            database = %vexxy_store::redact(&r.database_url),
            evidence = %svc.evidence.describe(),
            workers = r.config.workers,
            data_dir = %r.data_dir.display(),
            "vexxy serve listening"
        );
        // one line on stdout for scripts: where to reach the service
        println!("listening on http://{local}");
        // the API and the web UI on one listener, one origin
        let app = vexxy_server::app(
            svc.clone(),
            vexxy_web::router_with(
                svc.clone(),
                vexxy_web::WebConfig {
                    secure_cookies: args.secure_cookies,
                    ..vexxy_web::WebConfig::default()
                },
            ),
        );
        vexxy_server::serve(svc, app, listener, vexxy_server::shutdown_signal())
            .await
            .context("serving")?;
        Ok::<_, anyhow::Error>(())
    });
    rt.shutdown_timeout(EXIT_WAIT);
    result?;
    Ok(Exit::Done)
}

pub(crate) fn worker(args: &WorkerArgs) -> Result<Exit> {
    let r = resolve(&args.service, DefaultWorkers::FromHost)?;
    if r.config.workers == 0 {
        return Err(BadInput("a worker process needs --workers of at least 1".into()).into());
    }
    check_can_analyze(r.config.workers)?;
    log_workers(&r);
    let rt = runtime()?;
    let result = rt.block_on(async {
        let store = open_store(&r.database_url).await?;
        if store.backend() == vexxy_store::Backend::Sqlite {
            tracing::warn!("a worker on SQLite shares work only with processes on this machine; use PostgreSQL to scale out");
        }
        let svc = build_service(&r, store)?;
        tracing::info!(workers = r.config.workers, instance = %svc.config.instance, "vexxy worker started");
        vexxy_server::run_workers(svc, r.config.workers, vexxy_server::shutdown_signal()).await;
        Ok::<_, anyhow::Error>(())
    });
    rt.shutdown_timeout(EXIT_WAIT);
    result?;
    Ok(Exit::Done)
}

pub(crate) fn admin(args: &AdminArgs) -> Result<Exit> {
    let r = resolve(&args.service, DefaultWorkers::None)?;
    let rt = runtime()?;
    rt.block_on(async {
        let store = open_store(&r.database_url).await?;
        let result = admin_command(
            &store,
            r.config.secret_key.as_ref(),
            &args.command,
            args.json,
        )
        .await;
        store.close().await;
        result
    })
}

async fn admin_command(
    store: &Store,
    secret_key: Option<&vexxy_store::ServerKey>,
    cmd: &AdminCommand,
    json: bool,
) -> Result<Exit> {
    let bad = |e: vexxy_store::StoreError| -> anyhow::Error {
        match e {
            vexxy_store::StoreError::NotFound(_)
            | vexxy_store::StoreError::Conflict(_)
            | vexxy_store::StoreError::Invalid(_) => BadInput(e.to_string()).into(),
            other => anyhow::Error::new(other),
        }
    };
    match cmd {
        AdminCommand::CreateOrg {
            name,
            tier,
            monthly_quota,
        } => {
            let tier: Tier = tier.parse().map_err(BadInput)?;
            let org = store
                .create_org(name, tier, *monthly_quota)
                .await
                .map_err(bad)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": org.id, "name": org.name, "tier": org.tier.as_str(),
                        "monthly_quota": org.quota(), "webhook_secret": org.webhook_secret})
                );
            } else {
                println!(
                    "organization {} ({}), tier {}, {} analyses a month",
                    org.name,
                    org.id,
                    org.tier,
                    org.quota()
                );
                println!(
                    "webhook signing secret (shown once): {}",
                    org.webhook_secret
                );
            }
        }
        AdminCommand::CreateKey { org, name, owner } => {
            let key = store
                .create_key_for(org, name, owner.as_deref())
                .await
                .map_err(bad)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": key.id, "org_id": key.org_id, "key": key.secret, "owner": owner})
                );
            } else {
                eprintln!(
                    "API key {} for {} (shown once, store it now):",
                    key.id, key.org_id
                );
                println!("{}", key.secret);
            }
        }
        AdminCommand::RevokeKey { key_id } => {
            store.revoke_key(key_id).await.map_err(bad)?;
            eprintln!("revoked {key_id}");
        }
        AdminCommand::SetTier { org, tier } => {
            let tier: Tier = tier.parse().map_err(BadInput)?;
            let found = store.org(org).await.map_err(bad)?;
            store.set_tier(&found.id, tier).await.map_err(bad)?;
            eprintln!("{} is now {tier}", found.name);
        }
        AdminCommand::SetCommandOverride { org, policy } => {
            let allowed = policy == "allow";
            let found = store.org(org).await.map_err(bad)?;
            store
                .set_command_override(&found.id, allowed)
                .await
                .map_err(bad)?;
            eprintln!(
                "{} may {}replace the image's command",
                found.name,
                if allowed { "" } else { "not " }
            );
        }
        AdminCommand::SigningKey { command } => {
            super::admin::signing_key(store, secret_key, command, json).await?;
        }
        AdminCommand::RegistryCredential { command } => {
            super::admin::registry_credential(store, secret_key, command, json).await?;
        }
        AdminCommand::RegistryAllow { org, hosts, clear } => {
            super::admin::registry_allow(store, org, hosts, *clear, json).await?;
        }
    }
    Ok(Exit::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn service_args(argv: &[&str]) -> ServiceArgs {
        let mut full = vec!["vexxy", "worker"];
        full.extend_from_slice(argv);
        match crate::cli::Cli::try_parse_from(full)
            .expect("parses")
            .command
        {
            crate::cli::Command::Worker(w) => w.service,
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vexxy.toml");
        std::fs::write(
            &file,
            "workers = 3\njob_timeout = \"7m\"\nmax_attempts = 5\nmemory = \"2g\"\nallow_test_scripts = true\n",
        )
        .expect("write");
        let f = file.display().to_string();
        let data = dir.path().display().to_string();
        let r = resolve(
            &service_args(&["--config", &f, "--data-dir", &data, "--workers", "2"]),
            DefaultWorkers::FromHost,
        )
        .expect("resolves");
        assert_eq!(r.config.workers, 2, "flag wins");
        assert_eq!(
            r.config.queue.job_timeout,
            Duration::from_secs(420),
            "file beats default"
        );
        assert_eq!(r.config.queue.max_attempts, 5);
        assert_eq!(r.config.analysis.limits.memory_bytes, 2 << 30);
        assert!(r.config.submit.allow_test_scripts);
        assert_eq!(r.config.max_body_bytes, 64 << 20, "default");
        assert!(r.config.metrics_token.is_none(), "metrics off by default");
        assert_eq!(
            r.config.retention,
            Duration::from_secs(90 * 86_400),
            "default"
        );
        assert_eq!(r.database_url, format!("sqlite://{}/vexxy.db", data));
        assert_eq!(r.evidence, format!("{data}/evidence"));
    }

    #[test]
    fn workers_default_to_what_the_host_holds_unless_configured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().display().to_string();
        if std::env::var_os("VEXXY_WORKERS").is_some() {
            eprintln!("VEXXY_WORKERS is set: the default is not in use here");
            return;
        }
        // nothing said: the host's budget at the sandbox memory limit
        let r = resolve(
            &service_args(&["--data-dir", &data, "--memory", "2g"]),
            DefaultWorkers::FromHost,
        )
        .expect("resolves");
        let budget = r.workers_budget.as_ref().expect("from the host");
        assert_eq!(r.config.workers, budget.workers);
        assert!((1..=vexxy_server::capacity::MAX_DEFAULT_WORKERS).contains(&budget.workers));
        assert_eq!(
            budget.per_analysis_bytes,
            (2 << 30) + vexxy_server::capacity::ANALYSIS_OVERHEAD_BYTES
        );
        // the file or a flag says: that, and no budget
        let file = dir.path().join("vexxy.toml");
        std::fs::write(&file, "workers = 3\n").expect("write");
        let f = file.display().to_string();
        let r = resolve(
            &service_args(&["--data-dir", &data, "--config", &f]),
            DefaultWorkers::FromHost,
        )
        .expect("resolves");
        assert_eq!((r.config.workers, r.workers_budget.is_none()), (3, true));
        let r = resolve(
            &service_args(&["--data-dir", &data, "--workers", "0"]),
            DefaultWorkers::FromHost,
        )
        .expect("resolves");
        assert_eq!((r.config.workers, r.workers_budget.is_none()), (0, true));
        // admin runs no jobs
        let r =
            resolve(&service_args(&["--data-dir", &data]), DefaultWorkers::None).expect("resolves");
        assert_eq!((r.config.workers, r.workers_budget.is_none()), (0, true));
    }

    #[test]
    fn request_limits_and_the_metrics_token_come_from_flags_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vexxy.toml");
        std::fs::write(
            &file,
            "max_body_bytes = \"8m\"\nmax_report_values = 1000\nmax_large_submits = 4\n\
             metrics_token = \"from-the-file-0123456789\"\n",
        )
        .expect("write");
        let f = file.display().to_string();
        let r = resolve(
            &service_args(&[
                "--config",
                &f,
                "--max-sbom-bytes",
                "2m",
                "--large-body-bytes",
                "512k",
            ]),
            DefaultWorkers::FromHost,
        )
        .expect("resolves");
        let c = &r.config;
        assert_eq!(c.max_body_bytes, 8 << 20);
        assert_eq!(c.submit.scan_report.max_values, 1000);
        assert_eq!(c.submit.scan_report.max_bytes, 48 << 20, "default");
        assert_eq!(c.submit.sbom.max_bytes, 2 << 20);
        assert_eq!(c.submit.large_body_bytes, 512 << 10);
        assert_eq!(c.submit.max_large_submits, 4);
        let token = c.metrics_token.as_ref().expect("token");
        assert!(token.matches("from-the-file-0123456789"));
        for bad in [
            &["--metrics-token", "short"][..],
            &["--max-large-submits", "0"],
            &["--max-report-values", "0"],
            &["--max-body-bytes", "lots"],
        ] {
            let err = resolve(&service_args(bad), DefaultWorkers::FromHost)
                .err()
                .expect("refused");
            assert!(err.chain().any(|c| c.is::<BadInput>()), "{bad:?}: {err:#}");
            assert!(format!("{err:#}").contains(bad[0]), "{bad:?}: {err:#}");
        }
    }

    #[test]
    fn the_egress_policy_is_always_on_and_extended_by_flags_or_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().display().to_string();
        let r = resolve(
            &service_args(&["--data-dir", &data]),
            DefaultWorkers::FromHost,
        )
        .expect("resolves");
        let policy = r.config.analysis.egress.expect("always a policy");
        assert!(policy.allowed_hosts().is_empty() && policy.allowed_addresses().is_empty());
        assert!(policy.check_without_dns("127.0.0.1", 5000).is_err());

        let file = dir.path().join("vexxy.toml");
        std::fs::write(
            &file,
            "registry_allow = [\"*.example.com\"]\negress_allow_address = [\"10.0.0.5/32\"]\n",
        )
        .expect("write");
        let f = file.display().to_string();
        let r = resolve(
            &service_args(&["--config", &f, "--data-dir", &data]),
            DefaultWorkers::FromHost,
        )
        .expect("file");
        let policy = r.config.analysis.egress.expect("policy");
        assert!(
            policy.check_without_dns("10.0.0.5", 5000).is_err(),
            "not on the host list"
        );
        assert!(policy.check_without_dns("r.example.com", 443).is_ok());
        let r = resolve(
            &service_args(&[
                "--config",
                &f,
                "--data-dir",
                &data,
                "--registry-allow",
                "10.0.0.5:5000",
                "--egress-allow-address",
                "10.0.0.5",
            ]),
            DefaultWorkers::FromHost,
        )
        .expect("flags");
        let policy = r.config.analysis.egress.expect("policy");
        assert!(
            policy.check_without_dns("10.0.0.5", 5000).is_ok(),
            "flags win"
        );
        assert!(policy.check_without_dns("r.example.com", 443).is_err());

        let err = resolve(
            &service_args(&["--data-dir", &data, "--egress-allow-address", "10.0.0.0/40"]),
            DefaultWorkers::FromHost,
        )
        .err()
        .expect("refused");
        assert!(err.chain().any(|c| c.is::<BadInput>()), "{err:#}");
        assert!(format!("{err:#}").contains("10.0.0.0/40"), "{err:#}");
    }

    #[test]
    fn the_server_secret_key_comes_from_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().display().to_string();
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let key_file = dir.path().join("secret.key");
        std::fs::write(&key_file, format!("{hex_key}\n")).expect("write");
        let f = key_file.display().to_string();
        let r = resolve(
            &service_args(&["--data-dir", &data, "--secret-key-file", &f]),
            DefaultWorkers::FromHost,
        )
        .expect("resolves");
        let key = r.config.secret_key.clone().expect("a key");
        assert_eq!(key, vexxy_store::ServerKey::parse(hex_key).expect("parses"));
        assert!(
            !format!("{:?}", r.config).contains("00112233"),
            "never shown"
        );
        // the config file names it too
        let toml = dir.path().join("vexxy.toml");
        std::fs::write(&toml, format!("secret_key_file = {f:?}\n")).expect("write");
        let t = toml.display().to_string();
        if std::env::var_os("VEXXY_SECRET_KEY").is_none() {
            let r = resolve(
                &service_args(&["--data-dir", &data, "--config", &t]),
                DefaultWorkers::FromHost,
            )
            .expect("resolves");
            assert!(r.config.secret_key.is_some());
        }
        // a bad key names the file, not the key
        std::fs::write(&key_file, "not-a-key-0123").expect("write");
        let err = resolve(
            &service_args(&["--data-dir", &data, "--secret-key-file", &f]),
            DefaultWorkers::FromHost,
        )
        .err()
        .expect("refused");
        let msg = format!("{err:#}");
        assert!(err.chain().any(|c| c.is::<BadInput>()), "{msg}");
        assert!(
            msg.contains("secret.key") && !msg.contains("not-a-key"),
            "{msg}"
        );
    }

    #[test]
    fn bad_config_files_name_the_file_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (text, want) in [
            ("wrokers = 2\n", "wrokers"),
            ("lease = \"soon\"\n", "lease"),
        ] {
            let file = dir.path().join("bad.toml");
            std::fs::write(&file, text).expect("write");
            let f = file.display().to_string();
            let err = resolve(&service_args(&["--config", &f]), DefaultWorkers::FromHost)
                .err()
                .expect("refused");
            let msg = format!("{err:#}");
            assert!(msg.contains("bad.toml") && msg.contains(want), "{msg}");
            assert!(err.chain().any(|c| c.is::<BadInput>()), "exit 2: {msg}");
        }
        let err = resolve(
            &service_args(&["--lease", "2s", "--heartbeat", "2s"]),
            DefaultWorkers::FromHost,
        )
        .err()
        .expect("refused");
        assert!(format!("{err:#}").contains("--heartbeat"));
    }
}
