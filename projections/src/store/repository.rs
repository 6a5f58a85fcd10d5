//! One cqrs-es repository type over either backend, so that the write path has one
//! concrete type whatever the deployment. Reads go through postgres-es / sqlite-es;
//! appends go through the group commit ([`super::append`]).

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;

use super::append::GroupCommit;
use super::Database;

/// The cqrs-es repository Aurora's write path uses.
pub struct EventRepository {
    reads: Reads,
    appends: GroupCommit,
}

/// postgres-es or sqlite-es, chosen at startup.
enum Reads {
    Postgres(PostgresEventRepository),
    Sqlite(SqliteEventRepository),
}

impl EventRepository {
    pub(super) fn new(db: &Database, appends: GroupCommit) -> Self {
        let reads = match db {
            Database::Postgres(pool) => Reads::Postgres(PostgresEventRepository::new(pool.clone())),
            Database::Sqlite(pool) => Reads::Sqlite(SqliteEventRepository::new(pool.clone())),
        };
        Self { reads, appends }
    }
}

macro_rules! delegate {
    ($self:ident, |$repo:ident| $body:expr) => {
        match &$self.reads {
            Reads::Postgres($repo) => $body,
            Reads::Sqlite($repo) => $body,
        }
        .map_err(classify)
    };
}

/// The backends call only I/O and TLS failures connection errors; a pool that timed out, or
/// a connection that answered garbage (cut mid-handshake), is the database being away too:
/// the caller gets 503 and retries, not 500.
fn classify(error: PersistenceError) -> PersistenceError {
    match error {
        PersistenceError::UnknownError(cause)
            if cause
                .downcast_ref::<sqlx::Error>()
                .is_some_and(super::is_connection_error) =>
        {
            super::connection_failed();
            PersistenceError::ConnectionError(cause)
        }
        PersistenceError::ConnectionError(cause) => {
            super::connection_failed();
            PersistenceError::ConnectionError(cause)
        }
        other => other,
    }
}

impl PersistedEventRepository for EventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, |repo| repo.get_events::<A>(aggregate_id).await)
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, |repo| repo
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await)
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        delegate!(self, |repo| repo.get_snapshot::<A>(aggregate_id).await)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        match snapshot_update {
            None => self.appends.append(events).await,
            // Aurora takes no snapshots; should an aggregate ever use them, its appends go
            // through the backend's own transaction.
            Some(snapshot) => {
                delegate!(self, |repo| repo.persist::<A>(events, Some(snapshot)).await)
            }
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, |repo| repo.stream_events::<A>(aggregate_id).await)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, |repo| repo.stream_all_events::<A>().await)
    }
}
