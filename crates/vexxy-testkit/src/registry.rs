//! A real local OCI registry for tests: Debian's `docker-registry` (CNCF
//! distribution 2.8) with its own storage on 127.0.0.1, anonymous, with
//! htpasswd basic auth or with a token service, stopped on drop; images
//! are pushed to it with skopeo.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The user of [`Auth::Htpasswd`] registries (and of token services tests run).
pub const USER: &str = "vexxy";
/// Its password.
pub const PASS: &str = "correct horse battery";

/// The registry binary, when it and skopeo are installed; else a gate
/// (`SKIP` outside CI, a failure in CI: [`crate::require_program`]).
pub fn tools() -> Option<PathBuf> {
    let registry = crate::require_program("docker-registry", "apt install docker-registry")?;
    crate::require_program("skopeo", "apt install skopeo")?;
    Some(registry)
}

/// [`tools`] and htpasswd (for basic auth).
pub fn tools_and_htpasswd() -> Option<PathBuf> {
    let registry = tools()?;
    crate::require_program("htpasswd", "apt install apache2-utils")?;
    Some(registry)
}

/// How the registry authenticates.
#[derive(Debug)]
pub enum Auth {
    /// Anonymous pull and push.
    None,
    /// HTTP basic auth with [`USER`] / [`PASS`] (an htpasswd file).
    Htpasswd,
    /// The registry token flow, against a token service the test runs.
    Token(TokenAuth),
}

/// Where a token-auth registry sends clients and whom it trusts.
#[derive(Debug)]
pub struct TokenAuth {
    /// The token service's URL (`WWW-Authenticate: Bearer realm=…`).
    pub realm: String,
    /// The `service` the registry names.
    pub service: String,
    /// The issuer the registry expects in tokens.
    pub issuer: String,
    /// PEM certificate(s) of the key that signs tokens.
    pub cert_pem: String,
}

/// A running `docker-registry` process with its own storage, stopped on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    pub addr: String,
    pub storage: PathBuf,
    pub auth: Auth,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(binary: &Path, auth: Auth) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Htpasswd => {
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, htpasswd_line(USER, PASS)).expect("htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: vexxy-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            Auth::Token(t) => {
                let bundle = dir.path().join("token-ca.pem");
                std::fs::write(&bundle, &t.cert_pem).expect("cert bundle");
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    t.realm,
                    t.service,
                    t.issuer,
                    bundle.display()
                )
            }
        };
        // A port picked by the OS can be taken again before the registry
        // binds it; retry a few times on a fresh one.
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    \
                     uploadpurging:\n      enabled: false\n\
                     http:\n  addr: {addr}\n  secret: vexxy-test-secret\n{auth_yaml}",
                    storage.display()
                ),
            )
            .expect("config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
            let mut child = Command::new(binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if TcpStream::connect(&addr).is_ok() {
                    return Registry {
                        child,
                        addr,
                        storage,
                        auth,
                        dir,
                    };
                }
                if child.try_wait().expect("poll registry").is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    eprintln!(
                        "registry on {addr} did not start: {}",
                        std::fs::read_to_string(dir.path().join("registry.log"))
                            .unwrap_or_default()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("docker-registry did not start");
    }

    /// Pushes an OCI layout's `tag` to `repo:tag` with skopeo; returns the
    /// manifest digest skopeo reports.
    pub fn push(&self, layout: &Path, tag: &str, repo: &str, all: bool) -> String {
        let digest_file = self.dir.path().join("pushed.digest");
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg("--digestfile")
        .arg(&digest_file);
        if all {
            cmd.arg("--all");
        }
        if !matches!(self.auth, Auth::None) {
            cmd.args(["--dest-creds", &format!("{USER}:{PASS}")]);
        }
        cmd.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}:{tag}", self.addr));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(digest_file)
            .expect("digest file")
            .trim()
            .to_owned()
    }

    /// The file the registry serves for a blob.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A bcrypt htpasswd line from `htpasswd -Bbn` (apache2-utils).
fn htpasswd_line(user: &str, pass: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, pass])
        .output()
        .expect("run htpasswd (apt install apache2-utils)");
    assert!(out.status.success(), "htpasswd failed");
    String::from_utf8(out.stdout).expect("utf-8")
}
