//! A private containerd for tests that observe running containers: its
//! own root, state and socket under a directory the test owns, no CRI
//! plugin, runc as the runtime. Images are imported and containers run
//! with `ctr` (containerd's own client), exactly as an operator would;
//! everything it started is stopped when the value is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{poll, require_program};

/// A running private containerd.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    child: Child,
    namespace: String,
    containers: Vec<String>,
}

impl Containerd {
    /// The gate: `containerd` and `ctr` installed (else skip, or fail in
    /// CI). Tests also pass `require_trace` first.
    pub fn available() -> bool {
        require_program("containerd", "apt-get install containerd").is_some()
            && require_program("ctr", "apt-get install containerd").is_some()
    }

    /// Starts containerd with everything under `dir` (a short path: the
    /// socket's name must fit a unix address), containers in `namespace`.
    pub fn start(dir: &Path, namespace: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("config.toml");
        let d = dir.display();
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
                 [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let me = Self {
            dir: dir.to_owned(),
            child,
            namespace: namespace.to_owned(),
            containers: Vec::new(),
        };
        let up = poll(Duration::from_secs(20), || {
            me.ctr(&["version"]).then_some(())
        });
        assert!(
            up.is_some(),
            "containerd did not answer within 20 s; its log: {}",
            std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
        me
    }

    /// Its socket.
    pub fn address(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn command(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.address())
            .arg("--namespace")
            .arg(&self.namespace);
        c
    }

    fn ctr(&self, args: &[&str]) -> bool {
        self.command()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn ctr_checked(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run ctr");
        assert!(
            out.status.success(),
            "ctr {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports an OCI archive as `name:latest` (and unpacks it).
    pub fn import(&self, archive: &Path, name: &str) {
        let archive = archive.to_str().unwrap();
        self.ctr_checked(&["images", "import", "--base-name", name, archive]);
    }

    /// Runs `image` detached as container `id` with `labels` (no network
    /// but its own loopback); returns its init's host pid.
    pub fn run(&mut self, image: &str, id: &str, labels: &[(&str, &str)]) -> u32 {
        self.run_command(image, id, labels, &[])
    }

    /// [`Containerd::run`] with `argv` instead of the image's command
    /// (when not empty).
    pub fn run_command(
        &mut self,
        image: &str,
        id: &str,
        labels: &[(&str, &str)],
        argv: &[&str],
    ) -> u32 {
        let mut args = vec!["run".to_owned(), "--detach".to_owned()];
        for (k, v) in labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        args.push(image.to_owned());
        args.push(id.to_owned());
        args.extend(argv.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr_checked(&args);
        self.containers.push(id.to_owned());
        let listing = self.ctr_checked(&["tasks", "list"]);
        listing
            .lines()
            .find_map(|l| {
                let mut cols = l.split_whitespace();
                (cols.next() == Some(id)).then(|| cols.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no task of {id} in: {listing}"))
    }

    /// The image's manifest digest as containerd records it.
    pub fn image_digest(&self, image: &str) -> String {
        let listing = self.ctr_checked(&["images", "list"]);
        listing
            .lines()
            .find_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.first() == Some(&image)).then(|| cols.get(2).map(|d| d.to_string()))?
            })
            .unwrap_or_else(|| panic!("no image {image} in: {listing}"))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.containers) {
            let _ = self.ctr(&["tasks", "kill", "--signal", "SIGKILL", &id]);
            let _ = poll(Duration::from_secs(5), || {
                self.ctr(&["tasks", "delete", &id]).then_some(())
            });
            let _ = self.ctr(&["containers", "delete", &id]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // the snapshots are overlay mounts under the root: unmount before
        // the directory goes
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            let root = self.dir.to_string_lossy().into_owned();
            for line in mounts.lines() {
                if let Some(point) = line.split(' ').nth(4) {
                    if point.starts_with(&root) {
                        let _ = Command::new("umount").arg("-l").arg(point).status();
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
