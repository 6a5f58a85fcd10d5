//! The event store: one database, Postgres in production, SQLite in embedded mode.

mod append;
mod credentials;
pub(crate) mod log;
mod repository;

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use append::{committed_position, AggregateLabels, CommitFault, FaultPlan, GroupCommit};

pub use log::{checkpoint, Cursor, StoredEvent};
pub use repository::EventRepository;

/// Runs the same code against either pool; the body is type-checked once per backend.
#[macro_export]
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::Database::Postgres($pool) => $body,
            $crate::store::Database::Sqlite($pool) => $body,
        }
    };
}

/// Inside a transaction, replaces table `$live` by table `$shadow` (a rebuild's), keeping
/// the name: readers see the old table until the commit and the new one after it.
#[macro_export]
macro_rules! swap_in {
    ($tx:expr, $live:expr, $shadow:expr) => {
        for statement in [
            format!("ALTER TABLE {} RENAME TO {}_retired", $live, $live),
            format!("ALTER TABLE {} RENAME TO {}", $shadow, $live),
            format!("DROP TABLE {}_retired", $live),
        ] {
            sqlx::query(&statement).execute($tx).await?;
        }
    };
}
pub use swap_in;

/// Moves read model `name`'s checkpoint forward (never back): binds name, xid, position.
pub const ADVANCE_CHECKPOINT: &str =
    "INSERT INTO projection_checkpoints (projection, xid, position) \
     VALUES ($1, $2, $3) ON CONFLICT (projection) DO UPDATE \
     SET xid = excluded.xid, position = excluded.position \
     WHERE (excluded.xid, excluded.position) \
         > (projection_checkpoints.xid, projection_checkpoints.position)";

/// `INSERT INTO table (columns) VALUES (…), (…)` for `rows` rows of `width` parameters.
pub fn multi_row_insert(table: &str, columns: &str, width: usize, rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        values.join(", ")
    )
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A consumer could not pass what it read on (publishing, a command).
    #[error("cannot pass it on: {0}")]
    Downstream(String),
}

/// How long after a connection error pooled connections are pinged before use.
const SUSPECT_FOR: Duration = Duration::from_secs(60);

/// Until when (ms since the Unix epoch) pooled connections are pinged before use.
static SUSPECT_UNTIL_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Is `error` the database being unreachable (rather than a statement it refused)? A
/// protocol error is a connection that answered garbage — cut mid-handshake or mid-reply.
pub(crate) fn is_connection_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// Notes that the database was unreachable: for a while, connections are checked before
/// use, so that those it dropped are replaced before a request meets them.
pub(crate) fn connection_failed() {
    SUSPECT_UNTIL_MS.fetch_max(now_ms() + SUSPECT_FOR.as_millis() as u64, Ordering::Relaxed);
}

/// How Aurora pools Postgres connections; the benchmark's raw baseline uses the same.
///
/// No ping before every checkout (sqlx's default): it is a round trip per query. Only for a
/// minute after a connection error (the database restarted, a network cut) is each
/// connection pinged before use, so that the ones the server dropped are replaced rather
/// than failing one request each once it is back.
pub fn pg_pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|conn, _| {
            Box::pin(async move {
                if now_ms() >= SUSPECT_UNTIL_MS.load(Ordering::Relaxed) {
                    return Ok(true);
                }
                Ok(sqlx::Connection::ping(conn).await.is_ok())
            })
        })
}

/// The database behind the event store and the read models.
#[derive(Clone, Debug)]
pub enum Database {
    /// Production: Postgres.
    Postgres(PgPool),
    /// Embedded: one SQLite file.
    Sqlite(SqlitePool),
}

/// How a database pool's connections are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open.
    pub open: u32,
    /// Open connections not lent out.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

impl Database {
    /// The pool's connections now.
    pub fn pool_use(&self) -> PoolUse {
        let (open, idle, max) = on_pool!(self, |pool| (
            pool.size(),
            pool.num_idle(),
            pool.options().get_max_connections()
        ));
        PoolUse {
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            max,
        }
    }
    /// Connects to Postgres at `url`.
    pub async fn postgres(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = pg_pool_options(max_connections).connect(url).await?;
        Ok(Database::Postgres(pool))
    }

    /// Opens (creating if needed) the SQLite file at `path`, in WAL mode with full fsync
    /// at commit: an acknowledged command must survive a power cut.
    pub async fn sqlite(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Database::Sqlite(pool))
    }

    /// Which backend this is, for logs and health.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::Sqlite(_) => "sqlite",
        }
    }

    /// Applies every pending migration from `migrations/`.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Database::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
            Database::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    /// Round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))
        .inspect_err(|error| {
            if is_connection_error(error) {
                connection_failed();
            }
        })?;
        Ok(started.elapsed())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// The cqrs-es repository over this database, appending through `appends`.
    pub fn event_repository(&self, appends: GroupCommit) -> EventRepository {
        EventRepository::new(self, appends)
    }
}
