//! Command-line definitions (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  done, but findings remain undecided (only with --fail-on-undecided),
     or a verdict got worse (diff, compare with --fail-on-regression)
  2  bad input: a file that does not parse, an unknown format, a bad flag,
     a document that fails validation, an envelope that fails verification
  3  internal error
  4  this machine cannot run the sandbox or the tracer (not root, no BTF,
     no OCI runtime, no overlayfs or cgroups): the message says what is missing
  5  (service client) the service reports the job failed or was cancelled
  6  (service client) the service refused the request: bad API key, tier
     or quota (the message says which; for the quota, used and limit)
  7  (vex fetch, verify --image) no attestation attached to the image
     verifies with the key";

/// Exit codes of the commands that read and decide through the service
/// (`review`, `report`, `images`).
const SERVICE_EXIT_CODES: &str = "\
Exit codes:
  0  done
  2  bad request: a bad flag; the service knows no such statement or image
     (404); the statement changed since --expected-version (409
     version_conflict); the service refuses the decision (422; the message
     names the field: a missing reason, a status and justification OpenVEX
     forbids together …); `review bulk` without --yes
  3  the service cannot be reached, fails (5xx) or answers something this
     client cannot read
  6  the service refused the request: API key (401), tier (403) or quota
     (429)";

/// Exit codes of `compare`.
const COMPARE_EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  a verdict got worse (only with --fail-on-regression)
  2  bad request: an IMAGE that names no sha256 digest; the service has no
     VEX for an image (404)
  3  the service cannot be reached, fails (5xx) or answers something this
     client cannot read
  6  the service refused the request: API key (401), tier (403) or quota
     (429)";

/// Evidence-backed VEX for container images.
#[derive(Debug, Parser)]
#[command(name = "vexxy", version, about, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Only errors on stderr; no progress display.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Logs as JSON lines.
    #[arg(long, global = true)]
    pub(crate) log_json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Decide findings from a scanner report and write VEX (or merge/validate VEX).
    Vex(Box<VexCmd>),
    /// Sign a VEX document as an in-toto attestation in a DSSE envelope.
    Attest(AttestArgs),
    /// Verify a DSSE envelope, or every attestation attached to an image
    /// (--image), and print what each is about.
    Verify(VerifyArgs),
    /// Attach a signed attestation (a DSSE envelope, `vexxy attest`) to an
    /// image in its registry: cosign's `.att` tag (which `trivy image --vex
    /// oci` reads) and an OCI 1.1 referrer (which keeps the history).
    Attach(AttachArgs),
    /// Generate a signing key pair (PEM).
    Keygen(KeygenArgs),
    /// Catalog an image's packages with the files each owns and write an SBOM.
    Sbom(SbomArgs),
    /// Run an image in the sandbox, exercise it, trace it with eBPF and
    /// write its execution profile.
    Run(Box<RunArgs>),
    /// Trace containers that are already running (containerd containers
    /// by id or label, a cgroup, a process) for a while, without
    /// restarting or entering them, and write their execution profile
    /// (marked observed) for `reevaluate --profile` or the service.
    Observe(Box<ObserveArgs>),
    /// The whole job: image → catalog → static evidence → sandboxed, traced
    /// run → verdicts → VEX, evidence, profile, runtime SBOM and report.
    Analyze(Box<AnalyzeArgs>),
    /// Decide a (new) scanner report from a stored execution profile
    /// without running the image again.
    Reevaluate(Box<ReevaluateArgs>),
    /// Compare two analyses (output directories or OpenVEX files): findings
    /// and verdicts added, removed and changed.
    Diff(DiffArgs),
    /// Submit an image to a vexxy service for analysis (with --wait: wait
    /// for it and write its VEX document).
    Submit(Box<SubmitArgs>),
    /// Show a service job's status.
    Status(StatusArgs),
    /// Fetch a finished service job's VEX document or one of its artifacts.
    Results(ResultsArgs),
    /// Cancel a queued or running service job.
    Cancel(CancelArgs),
    /// Run the vexxy service: REST API, in-process workers, webhooks,
    /// retention, metrics (SQLite and a local evidence directory unless
    /// told otherwise).
    Serve(Box<ServeArgs>),
    /// Run workers only, sharing the service's database and evidence store.
    Worker(Box<WorkerArgs>),
    /// Manage the service's organisations and API keys.
    Admin(Box<AdminArgs>),
    /// Review the service's statements (one per image × vulnerability ×
    /// package): list them and the review queue, show one with its
    /// evidence, approve, override, revert, assign, decide in bulk; the
    /// organisation's review settings.
    Review(Box<ReviewArgs>),
    /// The service's reports: compliance per repository, the dashboard.
    Report(ReportArgs),
    /// Compare the current VEX of two images the service analysed:
    /// findings and verdicts added, removed and changed (as `vexxy diff`).
    Compare(CompareArgs),
    /// The images the service analysed, their current VEX and its history.
    Images(ImagesArgs),
}

/// Where the service keeps its state and how it runs jobs (`serve`,
/// `worker`, `admin`). Flags override the environment, which overrides
/// the `--config` file (TOML, keys are these flags' names with
/// underscores), which overrides the defaults.
#[derive(Debug, Args)]
pub(crate) struct ServiceArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE", env = "VEXXY_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Database: sqlite://FILE or postgres://USER@HOST:PORT/DB
    /// (default: sqlite in the data directory).
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// Data directory of the embedded defaults (database, evidence, scratch).
    #[arg(long, value_name = "DIR", env = "VEXXY_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Evidence store: a directory, or s3://BUCKET/PREFIX?endpoint=URL&region=R
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    #[arg(long, value_name = "DIR|URL", env = "VEXXY_EVIDENCE")]
    pub(crate) evidence: Option<String>,
    /// Jobs this process runs at once (default: what this host's CPUs and
    /// memory hold at the sandbox limits, see docs/service.md#concurrency;
    /// 0 serves the API only).
    #[arg(long, value_name = "N", env = "VEXXY_WORKERS")]
    pub(crate) workers: Option<usize>,
    /// A claimed job stays a worker's this long without a heartbeat.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) lease: Option<std::time::Duration>,
    /// Heartbeat interval (at most half the lease).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) heartbeat: Option<std::time::Duration>,
    /// Wall-clock limit of one job attempt.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, env = "JOB_TIMEOUT")]
    pub(crate) job_timeout: Option<std::time::Duration>,
    /// Attempts before a job fails for good.
    #[arg(long, value_name = "N")]
    pub(crate) max_attempts: Option<i64>,
    /// First retry delay (doubles per attempt).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) retry_backoff: Option<std::time::Duration>,
    /// How long evidence of finished jobs is kept (default 90 days).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, env = "EVIDENCE_RETENTION")]
    pub(crate) retention: Option<std::time::Duration>,
    /// How often the retention sweeper runs and leftovers of dead
    /// processes (sandboxes, scratch directories) are removed; the
    /// latter also at start (default 1 h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) sweep_every: Option<std::time::Duration>,
    /// Free space kept in reserve on the disks of a SQLite database and
    /// a local evidence directory: below it /readyz answers 503 and
    /// submissions are refused (bytes, or with k/m/g suffix; default 64m).
    #[arg(long, value_name = "SIZE", env = "VEXXY_MIN_FREE_SPACE")]
    pub(crate) min_free_space: Option<String>,
    /// At shutdown, running jobs get this long before they are re-queued.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) shutdown_grace: Option<std::time::Duration>,
    /// Exercise window of jobs that do not give one.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, env = "DEFAULT_ANALYSIS_DURATION")]
    pub(crate) default_duration: Option<std::time::Duration>,
    /// Longest exercise window a job may ask for.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, env = "MAX_ANALYSIS_DURATION")]
    pub(crate) max_duration: Option<std::time::Duration>,
    /// Sandbox CPU limit in cores.
    #[arg(long, value_name = "CORES", env = "SANDBOX_CPU_LIMIT")]
    pub(crate) cpus: Option<f64>,
    /// Sandbox memory limit (bytes, or with k/m/g suffix).
    #[arg(long, value_name = "SIZE", env = "SANDBOX_MEMORY_LIMIT")]
    pub(crate) memory: Option<String>,
    /// Sandbox process limit.
    #[arg(long, value_name = "N", env = "SANDBOX_PIDS_LIMIT")]
    pub(crate) pids: Option<u64>,
    /// Directory beneath which local images (oci:, oci-archive:,
    /// docker-archive:) may be submitted; repeatable. Without it only
    /// registry references are accepted.
    #[arg(long, value_name = "DIR")]
    pub(crate) allow_local_images: Vec<PathBuf>,
    /// Registry (host:port) to reach over plain HTTP; repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) insecure_registry: Vec<String>,
    /// Host that image pulls may contact (HOST, HOST:PORT or *.SUFFIX);
    /// repeatable. With none, any host whose addresses are public. Every
    /// connection of a pull counts: token services and blob storage a
    /// registry redirects to must be listed too.
    #[arg(long, value_name = "HOST")]
    pub(crate) registry_allow: Vec<String>,
    /// Address or CIDR exempt from the egress deny-list (loopback, private,
    /// link-local, …), for a local registry this operator trusts;
    /// repeatable.
    #[arg(long, value_name = "CIDR")]
    pub(crate) egress_allow_address: Vec<String>,
    /// Let callback URLs point at loopback and private addresses.
    #[arg(long)]
    pub(crate) allow_private_callbacks: bool,
    /// Accept test scripts. They run on this host, as this process' user,
    /// inside the sandbox's network namespace only: enable them only when
    /// every tenant is trusted with that.
    #[arg(long)]
    pub(crate) allow_test_scripts: bool,
    /// Webhook delivery attempts before giving up.
    #[arg(long, value_name = "N")]
    pub(crate) webhook_max_attempts: Option<i64>,
    /// First webhook retry delay (doubles per attempt, at most an hour).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) webhook_backoff: Option<std::time::Duration>,
    /// Scratch directory for jobs.
    #[arg(long, value_name = "DIR")]
    pub(crate) work_dir: Option<PathBuf>,
    /// Largest request body (bytes, or with k/m/g suffix; default 64m).
    #[arg(long, value_name = "SIZE", env = "VEXXY_MAX_BODY_BYTES")]
    pub(crate) max_body_bytes: Option<String>,
    /// Largest scan_report of a submission (default 48m).
    #[arg(long, value_name = "SIZE", env = "VEXXY_MAX_REPORT_BYTES")]
    pub(crate) max_report_bytes: Option<String>,
    /// Most JSON values in a scan_report (default 2000000).
    #[arg(long, value_name = "N", env = "VEXXY_MAX_REPORT_VALUES")]
    pub(crate) max_report_values: Option<u64>,
    /// Largest sbom of a submission (default 64m).
    #[arg(long, value_name = "SIZE", env = "VEXXY_MAX_SBOM_BYTES")]
    pub(crate) max_sbom_bytes: Option<String>,
    /// Most JSON values in an sbom (default 4000000).
    #[arg(long, value_name = "N", env = "VEXXY_MAX_SBOM_VALUES")]
    pub(crate) max_sbom_values: Option<u64>,
    /// Submissions with a larger body are large (default 1m).
    #[arg(long, value_name = "SIZE", env = "VEXXY_LARGE_BODY_BYTES")]
    pub(crate) large_body_bytes: Option<String>,
    /// Large submissions read and parsed at once (default 2); more are
    /// refused with 503 and Retry-After.
    #[arg(long, value_name = "N", env = "VEXXY_MAX_LARGE_SUBMITS")]
    pub(crate) max_large_submits: Option<usize>,
    /// Serve /metrics to requests with `Authorization: Bearer <TOKEN>`
    /// (at least 16 characters). Without it /metrics is not served (404).
    /// Prefer the environment or the config file to the command line.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "VEXXY_METRICS_TOKEN",
        hide_env_values = true
    )]
    pub(crate) metrics_token: Option<String>,
    /// File holding the server secret key (32 random bytes as 64 hex
    /// digits or base64, e.g. `openssl rand -hex 32`): it seals
    /// organisations' signing keys and registry passwords at rest. Without
    /// it (or VEXXY_SECRET_KEY holding the key itself) those features are
    /// refused. Keep it outside the data directory and its backups.
    #[arg(long, value_name = "FILE", env = "VEXXY_SECRET_KEY_FILE")]
    pub(crate) secret_key_file: Option<PathBuf>,
    /// Fixed document timestamp (RFC 3339) for reproducible output.
    #[arg(long, value_name = "RFC3339", hide = true)]
    pub(crate) timestamp: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", env = "VEXXY_LISTEN")]
    pub(crate) listen: Option<String>,
    /// Mark the web UI's cookies `Secure`: set it when browsers reach the
    /// service over HTTPS (a TLS-terminating proxy in front).
    #[arg(long, env = "VEXXY_SECURE_COOKIES")]
    pub(crate) secure_cookies: bool,
    #[command(flatten)]
    pub(crate) service: ServiceArgs,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    pub(crate) service: ServiceArgs,
    #[command(flatten)]
    pub(crate) node_agent: NodeAgentArgs,
}

/// `vexxy worker --node-agent`: the DaemonSet role. Instead of running
/// jobs it asks the service which images it analysed, observes the
/// running containerd containers of those images with the tracer, and
/// uploads one production profile per image (needs no database).
#[derive(Debug, Args)]
pub(crate) struct NodeAgentArgs {
    /// Run as a node agent (the service flags above are then not used).
    #[arg(long)]
    pub(crate) node_agent: bool,
    /// The service's base URL (node agent).
    #[arg(long, value_name = "URL", env = "VEXXY_SERVER")]
    pub(crate) server: Option<String>,
    /// API key of the organisation whose images to observe (node agent).
    #[arg(
        long,
        value_name = "KEY",
        env = "VEXXY_API_KEY",
        hide_env_values = true
    )]
    pub(crate) api_key: Option<String>,
    /// containerd's socket (node agent).
    #[arg(
        long,
        value_name = "SOCK",
        default_value = "/run/containerd/containerd.sock",
        requires = "node_agent"
    )]
    pub(crate) containerd_address: PathBuf,
    /// containerd namespace of the containers (node agent; `k8s.io` is
    /// Kubernetes').
    #[arg(
        long,
        value_name = "NS",
        default_value = "k8s.io",
        requires = "node_agent"
    )]
    pub(crate) namespace: String,
    /// How long each round observes the containers (node agent).
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        default_value = "15m",
        requires = "node_agent"
    )]
    pub(crate) observe_for: std::time::Duration,
    /// Time from the start of one round to the start of the next (node
    /// agent). Every upload is a re-decision job of the organisation.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        default_value = "1h",
        requires = "node_agent"
    )]
    pub(crate) every: std::time::Duration,
    /// One round, then exit (node agent): 0 when every upload was taken.
    #[arg(long, requires = "node_agent")]
    pub(crate) once: bool,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct AdminArgs {
    /// Print JSON (for scripts).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) service: ServiceArgs,
    #[command(subcommand)]
    pub(crate) command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Create an organisation; prints its webhook signing secret once.
    CreateOrg {
        name: String,
        /// free (no analyses), professional, enterprise or ultimate.
        #[arg(long, default_value = "professional")]
        tier: String,
        /// Analyses a month instead of the tier's default.
        #[arg(long, value_name = "N")]
        monthly_quota: Option<i64>,
    },
    /// Create an API key for an organisation (id or name); prints it once.
    CreateKey {
        org: String,
        /// A label for the key.
        #[arg(long, default_value = "default")]
        name: String,
        /// Who the key belongs to (a person's address or name): review
        /// decisions made with the key are recorded as theirs (else as the
        /// key's name).
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
    },
    /// Revoke an API key by its id.
    RevokeKey { key_id: String },
    /// Change an organisation's tier.
    SetTier { org: String, tier: String },
    /// Allow or forbid an organisation's jobs to replace the image's
    /// command (runtime evidence of another command is capped and marked,
    /// see docs/confidence.md; forbidding refuses such jobs with 403).
    SetCommandOverride {
        org: String,
        #[arg(value_parser = ["allow", "forbid"])]
        policy: String,
    },
    /// Manage an organisation's signing keys: jobs submitted with `sign`
    /// or `attach` sign their OpenVEX with the active one (needs the
    /// server secret key).
    SigningKey {
        #[command(subcommand)]
        command: crate::cmd::admin::SigningKeyCommand,
    },
    /// Manage an organisation's registry logins: its jobs pull (and
    /// attach) with them (needs the server secret key).
    RegistryCredential {
        #[command(subcommand)]
        command: crate::cmd::admin::RegistryCredentialCommand,
    },
    /// Set the registries an organisation's jobs may name (on top of
    /// --registry-allow); without hosts, show the list.
    RegistryAllow {
        org: String,
        /// host, host:port or *.suffix.
        #[arg(value_name = "HOST")]
        hosts: Vec<String>,
        /// Remove the organisation's list.
        #[arg(long, conflicts_with = "hosts")]
        clear: bool,
    },
}

/// Which vexxy service to talk to, and as whom.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The service's base URL.
    #[arg(
        long,
        value_name = "URL",
        env = "VEXXY_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) server: String,
    /// API key (sent as a bearer token).
    #[arg(
        long,
        value_name = "KEY",
        env = "VEXXY_API_KEY",
        hide_env_values = true
    )]
    pub(crate) api_key: String,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct SubmitArgs {
    /// The image: a registry reference (or, where the service allows it,
    /// oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE on the
    /// service's host).
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
    /// The repository the image is scanned from: the VEX product's name
    /// (needed for a local image without a name of its own).
    #[arg(long, value_name = "REPOSITORY")]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// The exercise window's maximum (e.g. 30s, 2m); default: the
    /// service's (30s unless configured otherwise).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<std::time::Duration>,
    /// Run the workload for the whole --duration instead of closing the
    /// window once the evidence stops changing.
    #[arg(long)]
    pub(crate) fixed_window: bool,
    /// Environment variable for the workload; repeatable.
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Command replacing the image's CMD: one flag per word, or one flag
    /// with a shell-quoted line (as for `vexxy analyze`).
    #[arg(long, value_name = "WORD", allow_hyphen_values = true)]
    pub(crate) cmd: Vec<String>,
    /// TCP port to wait for and probe; repeatable (default: the image's exposed ports).
    #[arg(long, value_name = "PORT")]
    pub(crate) port: Vec<u16>,
    /// Shell script run against the workload (its text is sent).
    #[arg(long, value_name = "FILE")]
    pub(crate) test_script: Option<PathBuf>,
    /// Scanner report (Grype, Trivy, OSV-Scanner JSON) of the image.
    #[arg(long, value_name = "FILE")]
    pub(crate) scan: Option<PathBuf>,
    /// SBOM (SPDX, CycloneDX, Syft JSON) of the image.
    #[arg(long, value_name = "FILE", conflicts_with = "scan")]
    pub(crate) sbom: Option<PathBuf>,
    /// Decide a report (or SBOM) made for another image than this one:
    /// statements then carry the versions installed in this image and the
    /// summary lists what differed. Without it such a report exits 2.
    #[arg(long)]
    pub(crate) allow_report_mismatch: bool,
    /// Sign the VEX document with the organisation's signing key (an
    /// in-toto attestation kept beside the results).
    #[arg(long)]
    pub(crate) sign: bool,
    /// Sign it and attach the attestation to the image in its registry
    /// (with the organisation's registry login); registry images only.
    #[arg(long)]
    pub(crate) attach: bool,
    /// URL the service calls when the job finishes.
    #[arg(long, value_name = "URL")]
    pub(crate) callback_url: Option<String>,
    /// The digest the image must have (sha256:…); the job fails otherwise.
    #[arg(long, value_name = "sha256:…")]
    pub(crate) image_digest: Option<String>,
    /// Wait for the job to finish, then write its VEX document.
    #[arg(long)]
    pub(crate) wait: bool,
    /// How often to ask for the job's status while waiting.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) poll_interval: std::time::Duration,
    /// Give up waiting after this long (the job keeps running).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub(crate) wait_timeout: std::time::Duration,
    /// With --wait: write the VEX document here (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE", requires = "wait")]
    pub(crate) output: Option<PathBuf>,
    /// Print the service's answer as JSON on stdout (the submission; with
    /// --wait, the results).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct StatusArgs {
    /// The job id `vexxy submit` printed.
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct ResultsArgs {
    /// The job id.
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Fetch this artifact instead of the VEX document: a link name
    /// (vex_openvex, vex_cyclonedx, vex_csaf, evidence, profile, sbom,
    /// report_markdown, report_html) or its file name (report.html, …).
    #[arg(long, value_name = "NAME")]
    pub(crate) artifact: Option<String>,
    /// Write here (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Write the service's whole results answer (JSON) instead of the VEX document.
    #[arg(long, conflicts_with = "artifact")]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct CancelArgs {
    /// The job id.
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

/// How findings are decided and VEX documents written (`analyze`, `reevaluate`).
#[derive(Debug, Args)]
pub(crate) struct DecideArgs {
    /// Scanner report (Grype JSON, Trivy JSON, OSV-Scanner JSON); format auto-detected.
    #[arg(long, value_name = "FILE")]
    pub(crate) scan: Option<PathBuf>,
    /// SBOM (SPDX, CycloneDX, Syft JSON) of the image; without --scan only
    /// the profile, runtime SBOM and report are written.
    #[arg(long, value_name = "FILE", conflicts_with = "scan")]
    pub(crate) sbom: Option<PathBuf>,
    /// Decide a report (or SBOM) made for another image than this one:
    /// statements then carry the versions installed in this image and the
    /// summary lists what differed. Without it such a report exits 2.
    #[arg(long)]
    pub(crate) allow_report_mismatch: bool,
    /// Extra configuration rules (TOML, see docs/rules.md); repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) rules: Vec<PathBuf>,
    /// Do not apply the built-in rules.
    #[arg(long)]
    pub(crate) no_builtin_rules: bool,
    /// Existing VEX whose statements are respected; repeatable.
    #[arg(long = "vex", value_name = "FILE")]
    pub(crate) existing: Vec<PathBuf>,
    /// Directory of OSV records (`*.json`, e.g. Go vulnerability database
    /// entries) whose `ecosystem_specific.imports[].symbols` name the
    /// vulnerable functions of the findings they describe.
    #[arg(long, value_name = "DIR")]
    pub(crate) advisories: Option<PathBuf>,
    /// Output directory (created; files in it are replaced atomically).
    #[arg(long, value_name = "DIR", default_value = "vexxy-out")]
    pub(crate) out: PathBuf,
    /// Author written into the documents.
    #[arg(long, default_value = "vexxy")]
    pub(crate) author: String,
    /// Document timestamp (RFC 3339); default now (or SOURCE_DATE_EPOCH).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) timestamp: Option<String>,
    /// Automated verdicts below this confidence count as needing review.
    #[arg(long, default_value_t = 0.6, value_name = "0..1")]
    pub(crate) review_below: f64,
    /// Automated verdicts below this confidence are written as under_investigation.
    #[arg(long, default_value_t = 0.0, value_name = "0..1")]
    pub(crate) min_confidence: f64,
    /// Exit with 1 when any finding is left under investigation.
    #[arg(long)]
    pub(crate) fail_on_undecided: bool,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct AnalyzeArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE,
    /// dir:ROOTFS (with --image-config), or a registry reference.
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
    #[command(flatten)]
    pub(crate) fetch: ImageArgs,
    #[command(flatten)]
    pub(crate) sandbox: SandboxArgs,
    #[command(flatten)]
    pub(crate) decide: DecideArgs,
    /// Run the image even when a stored profile of the same image digest
    /// and run configuration exists.
    #[arg(long)]
    pub(crate) fresh: bool,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct ReevaluateArgs {
    /// The stored execution profile (profile.json of an earlier analysis,
    /// or `vexxy observe`'s); repeatable: profiles of the same image merge
    /// (the union of their evidence, every source kept as a span).
    #[arg(long, value_name = "FILE", required = true)]
    pub(crate) profile: Vec<PathBuf>,
    /// The image the profile was recorded from (default: the profile's own
    /// image reference); its rootfs gives the inventory and static evidence.
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
    #[command(flatten)]
    pub(crate) fetch: ImageArgs,
    #[command(flatten)]
    pub(crate) decide: DecideArgs,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct DiffArgs {
    /// The earlier analysis: an output directory or its OpenVEX file.
    #[arg(value_name = "OLD")]
    pub(crate) old: PathBuf,
    /// The later analysis.
    #[arg(value_name = "NEW")]
    pub(crate) new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub(crate) format: DiffFormat,
    /// Exit with 1 when a verdict got worse (e.g. not_affected → affected).
    #[arg(long)]
    pub(crate) fail_on_regression: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DiffFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct RunArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE,
    /// dir:ROOTFS (with --image-config), or a registry reference.
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
    #[command(flatten)]
    pub(crate) fetch: ImageArgs,
    #[command(flatten)]
    pub(crate) sandbox: SandboxArgs,
    /// Write the execution profile (JSON) here, atomically; default stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) profile_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(false).args(["container", "label", "cgroup", "pid"])))]
pub(crate) struct ObserveArgs {
    /// A containerd container by id.
    #[arg(long, value_name = "ID")]
    pub(crate) container: Option<String>,
    /// Every running containerd container with this label (KEY=VALUE);
    /// repeatable: all must match.
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) label: Vec<String>,
    /// The processes of a cgroup (a directory under /sys/fs/cgroup).
    #[arg(long, value_name = "DIR")]
    pub(crate) cgroup: Option<PathBuf>,
    /// One process (and everything in its PID namespace).
    #[arg(long, value_name = "PID")]
    pub(crate) pid: Option<u32>,
    /// containerd's socket.
    #[arg(
        long,
        value_name = "SOCKET",
        default_value = "/run/containerd/containerd.sock",
        env = "CONTAINERD_ADDRESS"
    )]
    pub(crate) containerd_address: PathBuf,
    /// The containerd namespace (k8s.io under Kubernetes).
    #[arg(
        long,
        value_name = "NS",
        default_value = "default",
        env = "CONTAINERD_NAMESPACE"
    )]
    pub(crate) namespace: String,
    /// How long to trace (e.g. 30s, 10m, 2h); Ctrl-C stops earlier and
    /// keeps what was seen.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) duration: std::time::Duration,
    /// The image's manifest digest (sha256:…) when observing a cgroup or
    /// a process (containerd tells it for its containers).
    #[arg(long, value_name = "DIGEST")]
    pub(crate) image_digest: Option<String>,
    /// Count calls of a function: LIBRARY:SYMBOL with the library's path in
    /// the image; repeatable.
    #[arg(long, value_name = "LIBRARY:SYMBOL")]
    pub(crate) uprobe: Vec<String>,
    /// Write the profile (JSON) here, atomically; with several images, one
    /// file per image beside it (NAME-N.json). Default stdout (one image
    /// only).
    #[arg(short = 'o', long = "profile-out", value_name = "FILE")]
    pub(crate) profile_out: Option<PathBuf>,
}

/// How to run, exercise and trace an image.
#[derive(Debug, Args)]
pub(crate) struct SandboxArgs {
    /// The exercise window's maximum (e.g. 30s, 2m): the window closes
    /// earlier once the evidence stops changing; with --fixed-window the
    /// workload runs this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, env = "DEFAULT_ANALYSIS_DURATION")]
    pub(crate) duration: std::time::Duration,
    /// Run the workload for the whole --duration instead of closing the
    /// window once the evidence stops changing.
    #[arg(long, conflicts_with_all = ["quiet_period", "min_duration"])]
    pub(crate) fixed_window: bool,
    /// Close the window once no new program, file, mapping, socket or
    /// probed function has been seen for this long after the port wait,
    /// HTTP probe and test script finished [default: 3s; at least 500ms].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) quiet_period: Option<std::time::Duration>,
    /// The shortest window, however quiet the workload [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) min_duration: Option<std::time::Duration>,
    /// Hard limit on the whole run (at most 900s).
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// Command replacing the image's CMD (the ENTRYPOINT stays): one flag
    /// per word, or one flag with a shell-quoted line.
    #[arg(long, value_name = "WORD", allow_hyphen_values = true)]
    pub(crate) cmd: Vec<String>,
    /// Entrypoint replacing the image's ENTRYPOINT, a shell-quoted line;
    /// as with `docker run --entrypoint`, the image's CMD is dropped too
    /// (give arguments with --cmd).
    #[arg(long, value_name = "LINE", allow_hyphen_values = true)]
    pub(crate) entrypoint: Option<String>,
    /// Environment variable for the workload; repeatable.
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Shell script run on the host inside the sandbox's network namespace
    /// (VEXXY_TARGET_URL, VEXXY_TARGET_HOST and VEXXY_TARGET_PORTS are set).
    #[arg(long, value_name = "FILE")]
    pub(crate) test_script: Option<PathBuf>,
    /// TCP port to wait for and probe; repeatable (default: the image's exposed ports).
    #[arg(long, value_name = "PORT")]
    pub(crate) port: Vec<u16>,
    /// Do not probe open ports over HTTP.
    #[arg(long)]
    pub(crate) no_http_probe: bool,
    /// Count calls of a function: LIBRARY:SYMBOL with the library's path in
    /// the image; repeatable.
    #[arg(long, value_name = "LIBRARY:SYMBOL")]
    pub(crate) uprobe: Vec<String>,
    /// OCI runtime binary (runc; crun or youki where they work; not runsc:
    /// the tracer cannot see inside gVisor).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "runc",
        env = "VEXXY_RUNTIME"
    )]
    pub(crate) runtime: PathBuf,
    /// CPU limit in cores.
    #[arg(
        long,
        value_name = "CORES",
        default_value_t = 1.0,
        env = "SANDBOX_CPU_LIMIT"
    )]
    pub(crate) cpus: f64,
    /// Memory limit (bytes, or with k/m/g suffix).
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "1g",
        env = "SANDBOX_MEMORY_LIMIT"
    )]
    pub(crate) memory: String,
    /// Process limit.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 512,
        env = "SANDBOX_PIDS_LIMIT"
    )]
    pub(crate) pids: u64,
    /// OCI image config (JSON) to run a dir: rootfs with.
    #[arg(long, value_name = "FILE")]
    pub(crate) image_config: Option<PathBuf>,
}

/// How to fetch an image.
#[derive(Debug, Args)]
pub(crate) struct ImageArgs {
    /// The repository the image is pushed to and scanned from
    /// (registry.example/team/app): the VEX product's name, which scanners
    /// match by its last path segment. Needed for a local image (OCI
    /// layout, archive) that carries no name of its own.
    #[arg(long, value_name = "REPOSITORY")]
    pub(crate) name: Option<String>,
    /// Platform to pick from a multi-platform image, os/arch[/variant] (default: this host's).
    #[arg(long, value_name = "OS/ARCH")]
    pub(crate) platform: Option<String>,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    /// Egress policy of registry pulls: `none` contacts whatever the
    /// reference and the registry name; `strict` applies the service's
    /// policy (no loopback, private, link-local or metadata addresses,
    /// also through redirects, token realms and foreign layer URLs).
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = EgressMode::None)]
    pub(crate) egress_policy: EgressMode,
    /// With `--egress-policy strict`: host pulls may contact (HOST,
    /// HOST:PORT or *.SUFFIX); repeatable.
    #[arg(long, value_name = "HOST")]
    pub(crate) registry_allow: Vec<String>,
    /// With `--egress-policy strict`: address or CIDR exempt from the
    /// deny-list (a local registry); repeatable.
    #[arg(long, value_name = "CIDR")]
    pub(crate) egress_allow_address: Vec<String>,
}

/// `--egress-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum EgressMode {
    /// No policy: today's behaviour for one's own machine.
    None,
    /// The service's policy.
    Strict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SbomFormat {
    /// CycloneDX 1.6 JSON (files as component evidence occurrences).
    Cyclonedx,
    /// SPDX 2.3 JSON (files with CONTAINS relationships).
    Spdx,
    /// vexxy's own inventory JSON.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct SbomArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE,
    /// dir:ROOTFS, or a registry reference (REGISTRY/NAME:TAG, NAME@sha256:…, docker://…).
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
    #[command(flatten)]
    pub(crate) fetch: ImageArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SbomFormat::Cyclonedx)]
    pub(crate) format: SbomFormat,
    /// Leave out the per-package file lists.
    #[arg(long)]
    pub(crate) no_files: bool,
    /// Output file (default stdout); written atomically.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Document timestamp (RFC 3339); default now (or SOURCE_DATE_EPOCH).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) timestamp: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true, after_help = EXIT_CODES)]
pub(crate) struct VexCmd {
    #[command(subcommand)]
    pub(crate) action: Option<VexAction>,
    #[command(flatten)]
    pub(crate) generate: GenerateArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum VexAction {
    /// Merge VEX documents: one statement per product × vulnerability; a
    /// human-authored statement wins over an automated one, then the newest.
    Merge(MergeArgs),
    /// Validate an OpenVEX document against the official schema and the
    /// conventions scanners match on.
    Validate(ValidateArgs),
    /// Find the VEX attestations attached to an image in its registry,
    /// verify them and write the newest verified OpenVEX document.
    Fetch(FetchArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum VexFormat {
    /// OpenVEX 0.2.0 (Trivy and Grype apply it with --vex).
    Openvex,
    /// CycloneDX 1.6 VEX (BOM-links to the --sbom when it is CycloneDX).
    Cyclonedx,
    /// CSAF 2.0 VEX profile.
    Csaf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SummaryFormat {
    /// A triage table for people (stderr when the document goes to stdout).
    Text,
    /// The same counts as JSON for machines.
    Json,
    /// No summary.
    None,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Scanner report (Grype JSON, Trivy JSON, OSV-Scanner JSON); format auto-detected.
    #[arg(long, value_name = "FILE", required = true)]
    pub(crate) scan: Option<PathBuf>,
    /// SBOM (SPDX 2.3 JSON, CycloneDX 1.4–1.6 JSON, Syft JSON) listing the image's packages.
    #[arg(long, value_name = "FILE")]
    pub(crate) sbom: Option<PathBuf>,
    /// The image's root filesystem as a directory (enables package, ELF and config evidence).
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub(crate) rootfs: Option<PathBuf>,
    /// The image itself (see `vexxy sbom --help` for the forms): vexxy pulls
    /// or reads it, unpacks it safely and analyses its rootfs and config.
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
    #[command(flatten)]
    pub(crate) fetch: ImageArgs,
    /// The entrypoint command (repeat for each word, or one word with spaces
    /// split on whitespace); overrides the image config's Entrypoint + Cmd.
    #[arg(long, value_name = "PATH")]
    pub(crate) entrypoint: Vec<String>,
    /// OCI image config JSON (full config or its `config` object) for the
    /// entrypoint, command and environment.
    #[arg(long, value_name = "FILE")]
    pub(crate) image_config: Option<PathBuf>,
    /// The product the statements are about: NAME@sha256:DIGEST (default: the report's image).
    #[arg(long, value_name = "IMAGE@DIGEST")]
    pub(crate) product: Option<String>,
    /// Accept a product without a digest (its statements then apply to
    /// every image of that name).
    #[arg(long)]
    pub(crate) allow_unpinned_product: bool,
    /// With --image: decide a report made for another image (statements
    /// carry the versions installed in the image).
    #[arg(long)]
    pub(crate) allow_report_mismatch: bool,
    /// Extra configuration rules (TOML, see docs/rules.md); repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) rules: Vec<PathBuf>,
    /// Do not apply the built-in rules.
    #[arg(long)]
    pub(crate) no_builtin_rules: bool,
    /// Existing VEX (OpenVEX, CycloneDX VEX, CSAF); its statements are respected; repeatable.
    #[arg(long = "vex", value_name = "FILE")]
    pub(crate) existing: Vec<PathBuf>,
    /// Directory of OSV records (`*.json`) whose
    /// `ecosystem_specific.imports[].symbols` name the vulnerable functions.
    #[arg(long, value_name = "DIR")]
    pub(crate) advisories: Option<PathBuf>,
    /// Kubescape objects as `kubectl get -o yaml` (or `-o json`) prints
    /// them, one or a List: ApplicationProfile and ContainerProfile (runtime
    /// evidence: programs executed, files opened; needs --image, the image
    /// they were recorded from), SBOMSyftFiltered (packages in use) and
    /// OpenVulnerabilityExchangeContainer (statements respected like
    /// --vex); repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) kubescape_profile: Vec<PathBuf>,
    /// Output document format.
    #[arg(long, value_enum, default_value_t = VexFormat::Openvex)]
    pub(crate) format: VexFormat,
    /// Add a `vexxy_evidence` object to each statement (outside the OpenVEX schema).
    #[arg(long)]
    pub(crate) embed_evidence: bool,
    /// Also write the evidence JSON (docs/evidence-schema.md) to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) evidence_out: Option<PathBuf>,
    /// Output file (default stdout); written atomically.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Triage summary format.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    pub(crate) summary: SummaryFormat,
    /// Exit with 1 when any finding is left under investigation.
    #[arg(long)]
    pub(crate) fail_on_undecided: bool,
    /// Author written into the document.
    #[arg(long, default_value = "vexxy")]
    pub(crate) author: String,
    /// Document timestamp (RFC 3339) for reproducible output; default now
    /// (or SOURCE_DATE_EPOCH when set).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) timestamp: Option<String>,
    /// Automated verdicts below this confidence count as needing review.
    #[arg(long, default_value_t = 0.6, value_name = "0..1")]
    pub(crate) review_below: f64,
    /// Automated verdicts below this confidence are written as
    /// under_investigation instead (their evidence is kept).
    #[arg(long, default_value_t = 0.0, value_name = "0..1")]
    pub(crate) min_confidence: f64,
}

#[derive(Debug, Args)]
pub(crate) struct MergeArgs {
    /// VEX documents to merge (OpenVEX, CycloneDX VEX, CSAF).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Output file (default stdout).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Author written into the merged document.
    #[arg(long, default_value = "vexxy")]
    pub(crate) author: String,
    /// Document timestamp (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339")]
    pub(crate) timestamp: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The OpenVEX document to check.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct AttestArgs {
    /// Private key (PKCS#8 PEM, ECDSA P-256 or Ed25519; `vexxy keygen` makes one).
    #[arg(long, value_name = "KEY.pem")]
    pub(crate) key: PathBuf,
    /// The image the attestation is about: NAME@sha256:DIGEST (default:
    /// the --push repository, or the document's product, at the digest
    /// the document's products name).
    #[arg(long, value_name = "NAME@sha256:…")]
    pub(crate) subject: Option<String>,
    /// The VEX document (JSON) to attest.
    #[arg(value_name = "VEX.json")]
    pub(crate) vex: PathBuf,
    /// Output file for the envelope (default stdout, unless --push).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Also attach the attestation to this image in its registry
    /// (REGISTRY/REPOSITORY[:TAG]): to the digest it is about, as `vexxy
    /// attach` does.
    #[arg(long, value_name = "IMAGE")]
    pub(crate) push: Option<String>,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// How to reach a registry: to pull, attach or fetch attestations.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Registry (host:port) to reach over plain HTTP; repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) insecure_registry: Vec<String>,
    /// Registry credentials USER:PASSWORD (default: the docker config
    /// file's, else anonymous).
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "VEXXY_REGISTRY_CREDS",
        hide_env_values = true
    )]
    pub(crate) creds: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct AttachArgs {
    /// The image: REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST]. The envelope's
    /// statement must be about the digest it resolves to.
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
    /// The DSSE envelope (`vexxy attest -o`).
    #[arg(value_name = "ENVELOPE")]
    pub(crate) envelope: PathBuf,
    /// Verify the envelope with this public key before attaching it.
    #[arg(long, value_name = "PUB.pem")]
    pub(crate) key: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct FetchArgs {
    /// The image: REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST].
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
    /// Public key (SPKI PEM) the attestation must verify with.
    #[arg(
        long,
        value_name = "PUB.pem",
        required_unless_present = "keyless_identity"
    )]
    pub(crate) key: Option<PathBuf>,
    /// Verify against a Sigstore keyless identity instead of a key (needs
    /// Fulcio's and Rekor's roots; not available offline: refused).
    #[arg(long, value_name = "IDENTITY")]
    pub(crate) keyless_identity: Option<String>,
    /// Where to write the newest verified OpenVEX document (default stdout).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// List every attestation found and what became of it, as JSON, on stdout
    /// (the document is then written only with -o).
    #[arg(long)]
    pub(crate) list: bool,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Public key (SPKI PEM).
    #[arg(long, value_name = "PUB.pem")]
    pub(crate) key: PathBuf,
    /// The DSSE envelope.
    #[arg(
        value_name = "ENVELOPE",
        required_unless_present = "image",
        conflicts_with = "image"
    )]
    pub(crate) envelope: Option<PathBuf>,
    /// Verify every attestation attached to this image in its registry
    /// instead: exit 2 when any OpenVEX attestation fails, 7 when none is found.
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
    /// Also write the verified predicate (the VEX document) to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) predicate_out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Key algorithm.
    #[arg(long, default_value = "ecdsa-p256", value_parser = ["ecdsa-p256", "ed25519"])]
    pub(crate) algorithm: String,
    /// Writes PREFIX.key (mode 0600) and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "vexxy")]
    pub(crate) out_prefix: PathBuf,
}

/// OpenVEX statuses.
const STATUSES: [&str; 4] = ["not_affected", "affected", "fixed", "under_investigation"];
/// OpenVEX justifications.
const JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];
/// Severities as the service stores them.
const SEVERITIES: [&str; 6] = ["unknown", "negligible", "low", "medium", "high", "critical"];
/// Why a statement needs a person.
const REVIEW_REASONS: [&str; 4] = [
    "under_investigation",
    "affected_no_fix",
    "low_confidence",
    "four_eyes",
];

/// A number within 0..=1 (a confidence, a threshold).
fn unit_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not within 0..=1"))
    }
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ReviewArgs {
    #[command(subcommand)]
    pub(crate) command: ReviewCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReviewCommand {
    /// List statements as a table (id, image, vulnerability, package,
    /// severity, status, confidence, review reason); with --queue, the
    /// review queue (what needs a person, riskiest first).
    List(ReviewListArgs),
    /// Show one statement: its verdicts, the evidence they rest on, every
    /// decision about it and a decision offered from another digest.
    Show(ReviewShowArgs),
    /// Confirm the automated verdict.
    Approve(ApproveArgs),
    /// Replace the automated verdict with another (OpenVEX rules apply:
    /// not_affected needs --justification or --impact-statement, affected
    /// an --action-statement).
    Override(OverrideArgs),
    /// Withdraw the decision in force: the automated verdict applies again.
    Revert(RevertArgs),
    /// Take the decision offered from another digest of the repository
    /// whose evidence for the package is unchanged.
    AcceptOffer(AcceptOfferArgs),
    /// Assign the statement to a reviewer, or unassign it (--clear).
    Assign(AssignArgs),
    /// Decide every statement a filter selects (at most 1000; all or
    /// nothing). Without --yes, only says how many match.
    Bulk(BulkArgs),
    /// Show the organisation's review settings, or change those given.
    Settings(SettingsArgs),
}

/// Which statements (`review list`, `review bulk`); every filter given
/// must hold.
#[derive(Debug, Default, Args)]
pub(crate) struct StatementFilterArgs {
    /// Repository (the image name without tag or digest), exact.
    #[arg(long, value_name = "REPOSITORY")]
    pub(crate) repository: Option<String>,
    /// Image: sha256:DIGEST or REPOSITORY@sha256:DIGEST.
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
    /// Vulnerability id (CVE-…, GHSA-…), exact.
    #[arg(long, value_name = "ID")]
    pub(crate) vulnerability: Option<String>,
    /// Part of the package (name, or purl: pkg:deb/debian/libssl3@…).
    #[arg(long, value_name = "TEXT")]
    pub(crate) package: Option<String>,
    /// Effective status (a human decision wins over the automated verdict).
    #[arg(long, value_name = "STATUS", value_parser = STATUSES)]
    pub(crate) status: Option<String>,
    /// Severity.
    #[arg(long, value_name = "SEVERITY", value_parser = SEVERITIES)]
    pub(crate) severity: Option<String>,
    /// Automated confidence at least this.
    #[arg(long, value_name = "0..1", value_parser = unit_interval)]
    pub(crate) min_confidence: Option<f64>,
    /// Automated confidence at most this.
    #[arg(long, value_name = "0..1", value_parser = unit_interval)]
    pub(crate) max_confidence: Option<f64>,
    /// Why the statement needs a person.
    #[arg(long, value_name = "REASON", value_parser = REVIEW_REASONS)]
    pub(crate) review_reason: Option<String>,
    /// Assigned reviewer.
    #[arg(long, value_name = "USER")]
    pub(crate) assignee: Option<String>,
    /// Also statements a later analysis of their image no longer reports.
    #[arg(long)]
    pub(crate) include_absent: bool,
}

/// `review list --sort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatementSort {
    /// Known exploited first, then severity, EPSS, lowest confidence.
    Risk,
    /// Oldest first.
    Age,
    /// By vulnerability id.
    Vulnerability,
}

impl StatementSort {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Risk => "risk",
            Self::Age => "age",
            Self::Vulnerability => "vulnerability",
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ReviewListArgs {
    #[command(flatten)]
    pub(crate) filter: StatementFilterArgs,
    /// The review queue only: statements that need a person (undecided
    /// with a review reason, or whose decision expired); riskiest first.
    #[arg(long)]
    pub(crate) queue: bool,
    /// Order (default: risk for --queue, else age).
    #[arg(long, value_enum)]
    pub(crate) sort: Option<StatementSort>,
    /// At most this many (the service's default 100, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub(crate) limit: Option<i64>,
    /// Skip this many.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub(crate) offset: Option<i64>,
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ReviewShowArgs {
    /// The statement id (`vexxy review list` shows it).
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

/// What every decision on one statement carries.
#[derive(Debug, Args)]
pub(crate) struct DecisionArgs {
    /// The statement id (`vexxy review list` shows it).
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// Why (mandatory; recorded with the decision and written into the
    /// VEX statement's notes).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: String,
    /// The statement version you reviewed (`review show`): if it changed
    /// since, the decision is refused (exit 2) instead of recorded.
    #[arg(long, value_name = "V")]
    pub(crate) expected_version: Option<i64>,
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

/// How long a decision holds.
#[derive(Debug, Default, Args)]
pub(crate) struct ExpiryArgs {
    /// The statement returns to the review queue after this many days
    /// (1–3650; default: the decision does not expire).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub(crate) expires_in_days: Option<u32>,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ApproveArgs {
    #[command(flatten)]
    pub(crate) decision: DecisionArgs,
    #[command(flatten)]
    pub(crate) expiry: ExpiryArgs,
}

/// The verdict of an override of one statement.
#[derive(Debug, Args)]
pub(crate) struct VerdictArgs {
    /// The new status.
    #[arg(long, value_name = "STATUS", value_parser = STATUSES, visible_alias = "new-status")]
    pub(crate) status: String,
    /// With not_affected: the OpenVEX justification.
    #[arg(long, value_name = "JUSTIFICATION", value_parser = JUSTIFICATIONS, conflicts_with = "impact_statement")]
    pub(crate) justification: Option<String>,
    /// With not_affected: why, in words, instead of a justification.
    #[arg(long, value_name = "TEXT")]
    pub(crate) impact_statement: Option<String>,
    /// With affected: what to do about it.
    #[arg(long, value_name = "TEXT")]
    pub(crate) action_statement: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct OverrideArgs {
    #[command(flatten)]
    pub(crate) verdict: VerdictArgs,
    #[command(flatten)]
    pub(crate) decision: DecisionArgs,
    #[command(flatten)]
    pub(crate) expiry: ExpiryArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct RevertArgs {
    #[command(flatten)]
    pub(crate) decision: DecisionArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct AcceptOfferArgs {
    #[command(flatten)]
    pub(crate) decision: DecisionArgs,
    #[command(flatten)]
    pub(crate) expiry: ExpiryArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["to", "clear"])))]
pub(crate) struct AssignArgs {
    /// The statement id.
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    /// The reviewer.
    #[arg(long, value_name = "USER")]
    pub(crate) to: Option<String>,
    /// Unassign.
    #[arg(long)]
    pub(crate) clear: bool,
    /// The statement version you saw; if it changed since, exit 2.
    #[arg(long, value_name = "V")]
    pub(crate) expected_version: Option<i64>,
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct BulkArgs {
    #[command(subcommand)]
    pub(crate) action: BulkAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BulkAction {
    /// Confirm the automated verdict of every statement selected.
    Approve(BulkApproveArgs),
    /// Give every statement selected the verdict --new-status says.
    Override(BulkOverrideArgs),
    /// Withdraw the decisions in force on the statements selected.
    Revert(BulkRevertArgs),
}

/// What every bulk decision carries.
#[derive(Debug, Args)]
pub(crate) struct BulkCommonArgs {
    #[command(flatten)]
    pub(crate) filter: StatementFilterArgs,
    /// Why (mandatory; recorded with every decision).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: String,
    /// Decide. Without it the command only prints how many statements
    /// the filter selects and exits 2.
    #[arg(long)]
    pub(crate) yes: bool,
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct BulkApproveArgs {
    #[command(flatten)]
    pub(crate) common: BulkCommonArgs,
    #[command(flatten)]
    pub(crate) expiry: ExpiryArgs,
}

/// The verdict of a bulk override (`--status` selects statements there).
#[derive(Debug, Args)]
pub(crate) struct BulkVerdictArgs {
    /// The new status.
    #[arg(long, value_name = "STATUS", value_parser = STATUSES)]
    pub(crate) new_status: String,
    /// With not_affected: the OpenVEX justification.
    #[arg(long, value_name = "JUSTIFICATION", value_parser = JUSTIFICATIONS, conflicts_with = "impact_statement")]
    pub(crate) justification: Option<String>,
    /// With not_affected: why, in words, instead of a justification.
    #[arg(long, value_name = "TEXT")]
    pub(crate) impact_statement: Option<String>,
    /// With affected: what to do about it.
    #[arg(long, value_name = "TEXT")]
    pub(crate) action_statement: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct BulkOverrideArgs {
    #[command(flatten)]
    pub(crate) verdict: BulkVerdictArgs,
    #[command(flatten)]
    pub(crate) common: BulkCommonArgs,
    #[command(flatten)]
    pub(crate) expiry: ExpiryArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct BulkRevertArgs {
    #[command(flatten)]
    pub(crate) common: BulkCommonArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct SettingsArgs {
    /// Automated not_affected verdicts below this confidence need a person.
    #[arg(long, value_name = "0..1", value_parser = unit_interval)]
    pub(crate) review_below: Option<f64>,
    /// Critical and high not_affected claims need a person (true or false).
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolValueParser::new())]
    pub(crate) four_eyes: Option<bool>,
    /// Run images again whose last sandbox run is older than this many days.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rerun_after_days: Option<u32>,
    /// Never run images again for their age.
    #[arg(long, conflicts_with = "rerun_after_days")]
    pub(crate) no_rerun: bool,
    /// Print the settings as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ReportArgs {
    #[command(subcommand)]
    pub(crate) command: ReportCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Per repository (its most recently analysed image): findings,
    /// not_affected, needing a fix, under investigation, unreviewed.
    Compliance(ComplianceArgs),
    /// The organisation at a glance: VEX coverage, noise reduction,
    /// backlog, time to decision, the last 12 weeks.
    Dashboard(DashboardArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ComplianceFormat {
    /// A table for people.
    Table,
    /// CSV (RFC 4180) as the service writes it, for spreadsheets.
    Csv,
    /// The service's JSON.
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ComplianceArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ComplianceFormat::Table)]
    pub(crate) format: ComplianceFormat,
    /// Output file (default stdout); written atomically.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct DashboardArgs {
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(after_help = COMPARE_EXIT_CODES)]
pub(crate) struct CompareArgs {
    /// The earlier image: sha256:DIGEST or REPOSITORY@sha256:DIGEST.
    #[arg(value_name = "IMAGE_A")]
    pub(crate) image_a: String,
    /// The later image.
    #[arg(value_name = "IMAGE_B")]
    pub(crate) image_b: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub(crate) format: DiffFormat,
    /// Exit with 1 when a verdict got worse (e.g. not_affected → affected).
    #[arg(long)]
    pub(crate) fail_on_regression: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ImagesArgs {
    #[command(subcommand)]
    pub(crate) command: ImagesCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImagesCommand {
    /// List the analysed images, most recently analysed first.
    List(ImagesListArgs),
    /// Show one image: its analyses, VEX version and finding counts.
    Show(ImageShowArgs),
    /// Write an image's current VEX document (or an earlier version, its
    /// DSSE envelope, or the list of versions).
    Vex(ImageVexArgs),
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ImagesListArgs {
    /// Repository, exact.
    #[arg(long, value_name = "REPOSITORY")]
    pub(crate) repository: Option<String>,
    /// Part of the repository or reference.
    #[arg(long, value_name = "TEXT")]
    pub(crate) search: Option<String>,
    /// At most this many (the service's default 100, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub(crate) limit: Option<i64>,
    /// Skip this many.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub(crate) offset: Option<i64>,
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ImageShowArgs {
    /// The image: sha256:DIGEST or REPOSITORY@sha256:DIGEST.
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(after_help = SERVICE_EXIT_CODES)]
pub(crate) struct ImageVexArgs {
    /// The image: sha256:DIGEST or REPOSITORY@sha256:DIGEST.
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
    /// This version of the document instead of the current one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) version: Option<i64>,
    /// The version's DSSE envelope (in-toto attestation) instead of the
    /// document (default: the current version's).
    #[arg(long)]
    pub(crate) envelope: bool,
    /// List the versions issued (newest first) instead.
    #[arg(long, conflicts_with_all = ["version", "envelope", "output"])]
    pub(crate) history: bool,
    /// With --history: print the service's answer as JSON.
    #[arg(long, requires = "history")]
    pub(crate) json: bool,
    /// Output file (default stdout); written atomically.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}
