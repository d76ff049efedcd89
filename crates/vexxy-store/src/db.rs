//! Opening the database: SQLite (embedded default) or PostgreSQL, through
//! sqlx's `Any` driver so one set of queries serves both; the schema
//! differs only where the dialects do and lives in `migrations/<backend>`.

use std::{
    path::{Path, PathBuf},
    str::FromStr as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    pool::PoolConnection,
    Any, AnyConnection, AnyPool, Transaction,
};

use crate::{now_ms, StoreError};

/// How long a request waits for a pooled connection before it is told
/// the database is unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SQLite writer waits for another one (`busy_timeout`, ms).
const SQLITE_BUSY_MS: u32 = 5_000;
/// PostgreSQL: longest statement and longest wait for a lock (ms).
const PG_STATEMENT_TIMEOUT_MS: u32 = 30_000;
const PG_LOCK_TIMEOUT_MS: u32 = 10_000;

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

    /// `FOR UPDATE` where the engine has it: a read that a write in the
    /// same transaction depends on waits for concurrent writers of the
    /// row and then sees their result. A SQLite write transaction
    /// (`BEGIN IMMEDIATE`) already holds the database's write lock.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Self::Postgres => " FOR UPDATE",
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
    /// The directory of the SQLite file (for its free space); `None` for
    /// PostgreSQL and in-memory databases.
    sqlite_dir: Option<PathBuf>,
    /// When this process last recorded each key's use (`last_used_at` is
    /// written at most once a minute per key, off the request's path).
    pub(crate) key_uses: Arc<Mutex<crate::tenants::KeyUses>>,
}

/// A pooled connection for one write (a statement or a transaction).
/// Unless the write went through ([`Writer::done`]), the connection is
/// closed when this is dropped instead of going back to the pool: a
/// write that failed or was abandoned halfway (an error, a timeout) can
/// leave its connection inside a transaction it no longer tracks
/// (SQLite keeps the write lock after a failed `COMMIT` or `ROLLBACK`;
/// the next transaction on it becomes a savepoint that never commits,
/// and reads on it see writes nobody stored). A fresh connection does
/// not carry any of that.
pub(crate) struct Writer {
    conn: PoolConnection<Any>,
    done: bool,
}

impl Writer {
    /// The connection, for a single statement.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    /// Starts a transaction on the connection.
    pub(crate) async fn begin(&mut self) -> Result<Transaction<'_, Any>, StoreError> {
        Ok(sqlx::Connection::begin(&mut *self.conn).await?)
    }

    /// Starts a transaction that reads before it writes. On SQLite it
    /// takes the write lock at once (`BEGIN IMMEDIATE`, waiting
    /// `busy_timeout` for it): a deferred transaction that read a
    /// snapshot another writer has since changed cannot upgrade to a
    /// writer (`SQLITE_BUSY_SNAPSHOT`, no wait). PostgreSQL needs no
    /// such thing: its conditional `UPDATE`s see the newest row.
    pub(crate) async fn begin_write(
        &mut self,
        backend: Backend,
    ) -> Result<Transaction<'_, Any>, StoreError> {
        Ok(match backend {
            Backend::Sqlite => {
                sqlx::Connection::begin_with(&mut *self.conn, "BEGIN IMMEDIATE").await?
            }
            Backend::Postgres => sqlx::Connection::begin(&mut *self.conn).await?,
        })
    }

    /// The write was committed (or deliberately rolled back): the
    /// connection may serve again.
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.done {
            tracing::debug!("a write failed or was abandoned: closing its database connection");
            self.conn.close_on_drop();
        }
    }
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
            if let Some(dir) = sqlite_file(&url)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
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
            // an unavailable database answers within seconds, not never
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // an idle connection that broke is replaced, not handed out
            .test_before_acquire(true)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    let settings = match backend {
                        // writers wait for each other (briefly) instead of failing
                        Backend::Sqlite => [
                            format!("PRAGMA busy_timeout = {SQLITE_BUSY_MS}"),
                            "PRAGMA foreign_keys = ON".to_owned(),
                        ],
                        // no statement or lock wait holds a request for long
                        Backend::Postgres => [
                            format!("SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS}"),
                            format!("SET lock_timeout = {PG_LOCK_TIMEOUT_MS}"),
                        ],
                    };
                    for sql in settings {
                        sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut *conn)
                            .await?;
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
        let sqlite_dir = (backend == Backend::Sqlite && !url.contains(":memory:"))
            .then(|| sqlite_file(&url).parent().map(Path::to_path_buf))
            .flatten()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d
                }
            });
        let store = Self {
            pool,
            backend,
            sqlite_dir,
            key_uses: Arc::default(),
        };
        // best effort: ANALYZE writes, and a store must open on a full
        // disk (to say it is not ready); the sweep tries again
        if let Err(e) = store.refresh_statistics().await {
            tracing::warn!(error = %e, "the planner's statistics could not be refreshed at open");
        }
        Ok(store)
    }

    /// Refreshes the query planner's statistics. SQLite keeps none until
    /// `ANALYZE` runs, and without them it picks the wrong index for an
    /// image's statements once an organisation has tens of thousands (a
    /// full scan per image on the dashboard); `analysis_limit` bounds the
    /// cost to a sample per index. PostgreSQL's autovacuum analyses on its
    /// own: nothing to do there. Run at open and by the periodic sweep.
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            let mut conn = self.pool.acquire().await?;
            sqlx::query("PRAGMA analysis_limit = 1000")
                .execute(&mut *conn)
                .await?;
            sqlx::query("ANALYZE").execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The embedded default: a SQLite file in `dir`.
    pub async fn open_sqlite_in(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.display().to_string(), e))?;
        Self::open(&format!("sqlite://{}", dir.join("vexxy.db").display())).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// `Err(Full)` when the disk of a SQLite file has less than
    /// `min_free` bytes free (a statvfs, no I/O); PostgreSQL has no disk
    /// here to look at.
    pub fn check_space(&self, min_free: u64) -> Result<(), StoreError> {
        if let Some(dir) = &self.sqlite_dir {
            let free = free_space(dir)?;
            if free < min_free {
                return Err(StoreError::Full {
                    path: dir.display().to_string(),
                    free,
                    min: min_free,
                });
            }
        }
        Ok(())
    }

    /// A pooled connection for one write (see [`Writer`]).
    pub(crate) async fn writer(&self) -> Result<Writer, StoreError> {
        Ok(Writer {
            conn: self.pool.acquire().await?,
            done: false,
        })
    }

    /// Whether the database can take a write now (for `/readyz`): the
    /// disk of a SQLite file has at least `min_free` bytes free, and a
    /// one-row upsert into `health` commits within `timeout`.
    pub async fn check_writable(&self, min_free: u64, timeout: Duration) -> Result<(), StoreError> {
        self.check_space(min_free)?;
        let probe = async {
            let mut w = self.writer().await?;
            sqlx::query(
                "INSERT INTO health (id, at) VALUES ('probe', $1) \
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )
            .bind(now_ms())
            .execute(w.conn())
            .await?;
            w.done();
            Ok::<_, StoreError>(())
        };
        tokio::time::timeout(timeout, probe).await.map_err(|_| {
            StoreError::Unavailable(format!(
                "the database took a write for longer than {} ms",
                timeout.as_millis()
            ))
        })?
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file a `sqlite:` URL names.
fn sqlite_file(url: &str) -> &Path {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    Path::new(path.split('?').next().unwrap_or(path))
}

/// Bytes available to this process on the filesystem holding `path`.
pub fn free_space(path: &Path) -> Result<u64, StoreError> {
    let st = rustix::fs::statvfs(path)
        .map_err(|e| StoreError::Io(path.display().to_string(), e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
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
