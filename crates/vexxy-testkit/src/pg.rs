//! A throw-away PostgreSQL database per test, on the server at
//! `VEXXY_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432`,
//! the trust-auth server this machine kind runs).

use std::process::Command;

/// A database created for one test and dropped when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    base: String,
    name: String,
}

impl TestDatabase {
    /// `postgres://…/<the test's database>`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.base,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(base: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-qtAc", sql])
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// A fresh database for the test `label`, or `None` where no PostgreSQL
/// can be reached: a gate (`SKIP` outside CI, a failure in CI, where
/// PostgreSQL runs), see [`crate::skip_or_fail`].
pub fn require_postgres(label: &str) -> Option<TestDatabase> {
    let base = std::env::var("VEXXY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let base = base.trim_end_matches('/').to_owned();
    let mut suffix = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read as _;
        let _ = f.read_exact(&mut suffix);
    }
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let name = format!(
        "vexxy_t_{safe}_{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    crate::require(
        psql(&base, &format!("CREATE DATABASE {name}"))
            .map(|()| TestDatabase {
                base: base.clone(),
                name,
            })
            .map_err(|e| format!("no usable PostgreSQL at {base}: {e}")),
    )
}
