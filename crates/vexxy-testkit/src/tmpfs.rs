//! A small tmpfs for tests of full disks: mounted on a temporary
//! directory, unmounted when dropped. Needs root (gate the test with
//! [`crate::require_root`]).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

/// A tmpfs of a given size on a temporary directory of its own.
#[derive(Debug)]
pub struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `16m`); panics
    /// when it cannot (the test asked for root first).
    #[allow(clippy::unwrap_used)]
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount -t tmpfs on {}",
            dir.path().display()
        );
        Self(dir)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Fills the file system to its last block with one file; returns it
    /// (remove it to free the space again).
    #[allow(clippy::unwrap_used)]
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}
