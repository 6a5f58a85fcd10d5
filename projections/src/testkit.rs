//! Fresh, isolated backends for tests: one Postgres database per test, one SQLite file per
//! test, one NATS subject prefix (and so one stream) per test.
//!
//! `AURORA_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) names
//! the server databases are created on; `AURORA_TEST_NATS_URL` (default
//! `nats://127.0.0.1:4222`) the NATS server. `scripts/test` drops leftover test databases.

use std::path::PathBuf;

use sqlx::Connection;

use crate::store::{Database, StoreError};

/// Prefix of every database a test creates.
pub const TEST_DATABASE_PREFIX: &str = "aurora_t_";

/// The Postgres server tests create databases on.
pub fn admin_database_url() -> String {
    std::env::var("AURORA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The NATS server tests use.
pub fn nats_url() -> String {
    std::env::var("AURORA_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

/// A subject prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Creates an empty database on the server of `server_url` named `<prefix><uuid>` and
/// returns its URL (not migrated).
pub async fn create_database(server_url: &str, prefix: &str) -> Result<String, StoreError> {
    let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(server_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let (base, _) = server_url
        .split('?')
        .next()
        .unwrap_or(server_url)
        .rsplit_once('/')
        .ok_or_else(|| StoreError::Corrupt(format!("database URL without a path: {server_url}")))?;
    Ok(format!("{base}/{name}"))
}

/// Drops a database created by [`create_database`], disconnecting its clients. Only a
/// test's or a benchmark's (`aurora_t_…`, `aurora_bench_…`): any other name is refused.
pub async fn drop_database(server_url: &str, database_url: &str) -> Result<(), StoreError> {
    let name = database_url
        .split('?')
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let made_here = [TEST_DATABASE_PREFIX, "aurora_bench_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !made_here {
        return Err(StoreError::Corrupt(format!(
            "refusing to drop {name:?}: not a database a test or benchmark made"
        )));
    }
    let mut conn = sqlx::PgConnection::connect(server_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Creates an empty test database and returns its URL (not migrated).
pub async fn create_postgres_database() -> Result<String, StoreError> {
    create_database(&admin_database_url(), TEST_DATABASE_PREFIX).await
}

/// A directory removed when dropped, with the database and streams a test made beside it
/// (see [`TempDir::drop_database_with_it`]). Dropping runs while a failed test unwinds too.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    leftovers: std::sync::Mutex<Vec<Leftover>>,
}

/// What a test made on a shared server, removed with its [`TempDir`].
#[derive(PartialEq)]
enum Leftover {
    /// A database made by [`create_database`] on the server of `server`.
    Database { server: String, url: String },
    /// The streams of a subject prefix on the NATS server at `url`.
    Streams { url: String, prefix: String },
}

/// Names only: the URLs may carry passwords.
impl std::fmt::Debug for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leftover::Database { url, .. } => {
                let name = url.split('?').next().unwrap_or_default();
                write!(
                    f,
                    "database {}",
                    name.rsplit('/').next().unwrap_or_default()
                )
            }
            Leftover::Streams { prefix, .. } => write!(f, "the streams of prefix {prefix}"),
        }
    }
}

impl TempDir {
    /// A new empty directory under the system temp dir.
    pub fn new() -> std::io::Result<Self> {
        Self::new_in(&std::env::temp_dir())
    }

    /// A new empty directory under `parent`.
    pub fn new_in(parent: &std::path::Path) -> std::io::Result<Self> {
        let path = parent.join(format!("aurora-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path)?;
        Ok(Self {
            path,
            leftovers: Default::default(),
        })
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A new, empty test database's URL (not migrated), dropped with this directory.
    pub async fn database_url(&self) -> Result<String, StoreError> {
        let url = create_postgres_database().await?;
        self.drop_database_with_it(&admin_database_url(), &url);
        Ok(url)
    }

    /// A migrated, empty test database, dropped with this directory.
    pub async fn fresh_postgres(&self) -> Result<Database, StoreError> {
        let db = Database::postgres(&self.database_url().await?, 16).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// A subject prefix no other test uses; its streams on the test NATS server
    /// ([`nats_url`]) are deleted with this directory.
    pub fn nats_prefix(&self) -> String {
        let prefix = unique_prefix();
        self.delete_streams_with_it(&nats_url(), &prefix);
        prefix
    }

    /// Drops the database at `url` (made on the server of `server_url`) when this is dropped.
    pub fn drop_database_with_it(&self, server_url: &str, url: &str) {
        self.leave(Leftover::Database {
            server: server_url.to_string(),
            url: url.to_string(),
        });
    }

    /// Deletes `prefix`'s streams on the NATS server at `url` when this is dropped.
    pub fn delete_streams_with_it(&self, url: &str, prefix: &str) {
        self.leave(Leftover::Streams {
            url: url.to_string(),
            prefix: prefix.to_string(),
        });
    }

    fn leave(&self, leftover: Leftover) {
        let mut leftovers = self
            .leftovers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !leftovers.contains(&leftover) {
            leftovers.push(leftover);
        }
    }
}

/// Removes `leftovers`, each within a few seconds; what cannot be removed is reported on
/// stderr (`scripts/test` sweeps what is left after the run).
async fn remove(leftovers: Vec<Leftover>) {
    const EACH: std::time::Duration = std::time::Duration::from_secs(10);
    for leftover in leftovers {
        let outcome = match &leftover {
            Leftover::Database { server, url } => {
                tokio::time::timeout(EACH, drop_database(server, url))
                    .await
                    .map(|result| result.map_err(|e| e.to_string()))
            }
            Leftover::Streams { url, prefix } => {
                tokio::time::timeout(EACH, async {
                    let client = aurora_nats::jetstream::connect(url, "aurora-test-cleanup")
                        .await
                        .map_err(|e| e.to_string())?;
                    let subjects = aurora_nats::Subjects::new(prefix.clone());
                    aurora_nats::jetstream::delete_streams(&client, &subjects)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
            }
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not remove {leftover:?}: {error}"),
            Err(_) => eprintln!("could not remove {leftover:?} within {EACH:?}"),
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let leftovers = std::mem::take(
            self.leftovers
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if leftovers.is_empty() {
            return;
        }
        // A thread with a runtime of its own: this may be dropped on a runtime's thread,
        // which cannot block on another future.
        let cleaner =
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(remove(leftovers)),
                    Err(error) => eprintln!("could not remove {leftovers:?}: {error}"),
                }
            });
        let _ = cleaner.join();
    }
}

/// A migrated, empty SQLite database in its own directory (keep the `TempDir` alive).
pub async fn fresh_sqlite() -> Result<(Database, TempDir), StoreError> {
    fresh_sqlite_under(&std::env::temp_dir()).await
}

/// A migrated SQLite database in a new directory under `parent`.
async fn fresh_sqlite_under(parent: &std::path::Path) -> Result<(Database, TempDir), StoreError> {
    let dir = TempDir::new_in(parent).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let db = Database::sqlite(&dir.path().join("aurora.db")).await?;
    db.migrate().await?;
    Ok((db, dir))
}

/// A migrated SQLite database in memory where the machine has a RAM-backed directory
/// (`/dev/shm`), else on disk: for simulations that open thousands (a commit's fsync
/// costs nothing there).
pub async fn fresh_sqlite_in_memory() -> Result<(Database, TempDir), StoreError> {
    let shm = std::path::Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    fresh_sqlite_under(&parent).await
}

/// One row of the `events` table as fixtures write it (see `projections/tests/fixtures`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct RawEvent {
    /// e.g. `run`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// From 1.
    pub sequence: i64,
    /// e.g. `RunRequested`.
    pub event_type: String,
    /// As written then.
    pub event_version: String,
    /// As written then.
    pub payload: serde_json::Value,
    /// As written then.
    pub metadata: serde_json::Value,
}

/// Parses a fixture file of [`RawEvent`]s, one JSON object per line.
pub fn parse_fixture(text: &str) -> Result<Vec<RawEvent>, serde_json::Error> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}

/// Stores `events` as they are, bypassing the aggregates: for fixtures of events that an
/// older version wrote, and for corrupt rows in tests.
pub async fn insert_raw(db: &Database, events: &[RawEvent]) -> Result<(), StoreError> {
    let sql = match db {
        Database::Postgres(_) => {
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6::json, $7::json)"
        }
        Database::Sqlite(_) => {
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        }
    };
    for event in events {
        crate::on_pool!(db, |pool| sqlx::query(sql)
            .bind(&event.aggregate_type)
            .bind(&event.aggregate_id)
            .bind(event.sequence)
            .bind(&event.event_type)
            .bind(&event.event_version)
            .bind(event.payload.to_string())
            .bind(event.metadata.to_string())
            .execute(pool)
            .await
            .map(drop))?;
    }
    Ok(())
}
