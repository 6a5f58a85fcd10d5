//! The write path: commands → aggregate → events in the store.
//!
//! cqrs-es would run in-process queries right after commit, but a crash between commit and
//! query loses them, so none are registered: the relay reads committed events from the
//! store. After each commit the relay is woken so that events reach the bus at once.

use std::sync::Arc;

use aurora_domain::run::{Run, RunCommand, RunError};
use aurora_domain::EventMetadata;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework};
use tokio::sync::Notify;

use crate::store::{Database, EventRepository, GroupCommit};

/// Writers of the group commit when none are configured.
pub const DEFAULT_WRITERS: usize = 4;

type Framework<A> = CqrsFramework<A, PersistedEventStore<EventRepository, A>>;

/// Executes `Run` commands.
pub struct RunCommands {
    cqrs: Framework<Run>,
    committed: Arc<Notify>,
}

impl RunCommands {
    /// Commands over `db` with a group commit of their own; `committed` is notified after
    /// every commit that wrote events.
    pub fn new(db: &Database, committed: Arc<Notify>) -> Self {
        Self::with_appends(db, GroupCommit::start(db, DEFAULT_WRITERS), committed)
    }

    /// Commands over `db` appending through `appends` (shared with other aggregates).
    pub fn with_appends(db: &Database, appends: GroupCommit, committed: Arc<Notify>) -> Self {
        let store = PersistedEventStore::new_event_store(db.event_repository(appends));
        Self {
            cqrs: CqrsFramework::new(store, vec![], ()),
            committed,
        }
    }

    /// Executes `command` against run `run_id`. `Ok` means the events are durably stored.
    pub async fn execute(
        &self,
        run_id: &str,
        command: RunCommand,
        metadata: &EventMetadata,
    ) -> Result<(), AggregateError<RunError>> {
        self.cqrs
            .execute_with_metadata(run_id, command, metadata.to_map())
            .await?;
        self.committed.notify_one();
        Ok(())
    }
}
