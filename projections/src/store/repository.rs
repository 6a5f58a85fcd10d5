//! One cqrs-es repository type over either backend, so that the write path has one
//! concrete type whatever the deployment.

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;

use super::Database;

/// postgres-es or sqlite-es, chosen at startup.
pub enum EventRepository {
    /// Production.
    Postgres(PostgresEventRepository),
    /// Embedded.
    Sqlite(SqliteEventRepository),
}

impl EventRepository {
    pub(super) fn new(db: &Database) -> Self {
        match db {
            Database::Postgres(pool) => Self::Postgres(PostgresEventRepository::new(pool.clone())),
            Database::Sqlite(pool) => Self::Sqlite(SqliteEventRepository::new(pool.clone())),
        }
    }
}

macro_rules! delegate {
    ($self:ident, |$repo:ident| $body:expr) => {
        match $self {
            EventRepository::Postgres($repo) => $body,
            EventRepository::Sqlite($repo) => $body,
        }
    };
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
        delegate!(self, |repo| repo
            .persist::<A>(events, snapshot_update)
            .await)
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
