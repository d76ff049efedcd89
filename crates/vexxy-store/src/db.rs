//! Opening the database: SQLite (embedded default) or PostgreSQL, through
//! sqlx's `Any` driver so one set of queries serves both; the schema
//! differs only where the dialects do and lives in `migrations/<backend>`.

use std::{path::Path, str::FromStr as _, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool,
};

use crate::StoreError;

/// Which database engine is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `FOR UPDATE SKIP LOCKED` where the engine has it: several workers
    /// claim different rows instead of queueing on one. SQLite serialises
    /// writers, so a plain sub-select is already atomic there.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Self::Postgres => " FOR UPDATE SKIP LOCKED",
            Self::Sqlite => "",
        }
    }
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The database handle every repository function takes.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
}

impl Store {
    /// Connects to `url` (`sqlite://FILE`, `sqlite::memory:`,
    /// `postgres://…`) and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::BadUrl(redact(url)));
        };
        let mut url = url.to_owned();
        if backend == Backend::Sqlite && !url.contains(":memory:") {
            // the file's directory on first start
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            let path = Path::new(path.split('?').next().unwrap_or(path));
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Io(dir.display().to_string(), e))?;
            }
        }
        if backend == Backend::Sqlite && !url.contains("mode=") && !url.contains(":memory:") {
            // create the file on first start
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Connect(redact(&url), e.to_string()))?;
        let max = match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        use sqlx::Executor as _;
                        // writers wait for each other instead of failing
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Connect(redact(&url), e.to_string()))?;
        if backend == Backend::Sqlite {
            // readers never block the writer; kept in the file once set
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(|e| StoreError::Connect(redact(&url), e.to_string()))?;
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(redact(&url), e.to_string()))?;
        Ok(Self { pool, backend })
    }

    /// The embedded default: a SQLite file in `dir`.
    pub async fn open_sqlite_in(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.display().to_string(), e))?;
        Self::open(&format!("sqlite://{}", dir.join("vexxy.db").display())).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A round trip to the database (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The URL without its password, for error messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
