//! The write path: commands → aggregate → events in the store, for every aggregate.
//!
//! cqrs-es's `CqrsFramework` would run in-process queries right after commit, but a crash
//! between commit and query loses them, so Aurora registers none and the relay reads
//! committed events from the store instead. What remains of the framework — load, handle,
//! commit — is spelled out here, over cqrs-es's own `PersistedEventStore`, so that a
//! command creating an aggregate can skip the load: its id is fresh, so it has no history.
//! After each commit that wrote events the relay is woken so that they reach the bus at once.

use std::sync::Arc;

use aurora_domain::access::Access;
use aurora_domain::client::Client;
use aurora_domain::media::Media;
use aurora_domain::run::Run;
use aurora_domain::user::User;
use aurora_domain::EventMetadata;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, EventUpcaster, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventStore};
use tokio::sync::Notify;

use crate::store::{Database, EventRepository, GroupCommit};

/// Writers of the group commit when none are configured.
pub const DEFAULT_WRITERS: usize = 4;

/// Times a command is tried when another command on the same aggregate commits first.
pub const MAX_ATTEMPTS: usize = 8;

/// Before trying again, a command waits a random time below this, doubled at each attempt
/// (4, 8, 16 … 256 ms): contenders that collided do not all retry at the same moment (a
/// burst of logins of one account collided again and again, and ran out of attempts).
const BACKOFF_STEP: std::time::Duration = std::time::Duration::from_millis(4);

/// An aggregate whose old event versions the store upcasts on load.
pub trait Versioned: Aggregate<Services = ()> {
    /// Its upcasters (none by default).
    fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
        Vec::new()
    }
}

impl Versioned for Run {}

impl Versioned for Access {}

impl Versioned for Client {}

impl Versioned for Media {}

impl Versioned for User {
    fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
        aurora_domain::user::upcasters()
    }
}

/// Executes commands of aggregate `A`.
pub struct Commands<A: Versioned> {
    store: PersistedEventStore<EventRepository, A>,
    committed: Arc<Notify>,
}

/// The write path of runs.
pub type RunCommands = Commands<Run>;
/// The write path of users.
pub type UserCommands = Commands<User>;
/// The write path of rate-limited clients (blocks).
pub type ClientCommands = Commands<Client>;
/// The write path of refused requests.
pub type AccessCommands = Commands<Access>;
/// The write path of uploaded media.
pub type MediaCommands = Commands<Media>;

impl<A: Versioned> Commands<A> {
    /// Commands over `db` with a group commit of their own; `committed` is notified after
    /// every commit that wrote events.
    pub fn new(db: &Database, committed: Arc<Notify>) -> Self {
        Self::with_appends(db, GroupCommit::start(db, DEFAULT_WRITERS), committed)
    }

    /// Commands over `db` appending through `appends` (shared with other aggregates).
    pub fn with_appends(db: &Database, appends: GroupCommit, committed: Arc<Notify>) -> Self {
        Self {
            store: PersistedEventStore::new_event_store(db.event_repository(appends))
                .with_upcasters(A::upcasters()),
            committed,
        }
    }

    /// The current state of aggregate `id` (the default state if it has no history).
    pub async fn load(&self, id: &str) -> Result<A, AggregateError<A::Error>> {
        Ok(self.store.load_aggregate(id).await?.aggregate)
    }

    /// Executes `command` against aggregate `id`, loaded from its history. `Ok` means the
    /// events — returned, in order; none if the command changed nothing — are durably
    /// stored. If another command on the aggregate commits in between, the aggregate is
    /// loaded again and the command decided again (up to [`MAX_ATTEMPTS`] times), so it is
    /// judged against the history it lands on.
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Vec<A::Event>, AggregateError<A::Error>>
    where
        A::Command: Clone,
    {
        let (events, _) = self.execute_numbered(id, command, metadata).await?;
        Ok(events)
    }

    /// [`Self::execute`], with the sequence the first of the events was stored at in the
    /// aggregate's history (the others follow it): for a replica that applies a command's
    /// events at once and also receives them from the store, in either order.
    pub async fn execute_numbered(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<(Vec<A::Event>, i64), AggregateError<A::Error>>
    where
        A::Command: Clone,
    {
        let mut attempt = 1;
        loop {
            let context = self.store.load_aggregate(id).await?;
            match self
                .handle_and_commit(context, command.clone(), metadata)
                .await
            {
                Err(AggregateError::AggregateConflict) if attempt < MAX_ATTEMPTS => {
                    let ceiling = (BACKOFF_STEP.as_micros() as u64) << (attempt - 1).min(6);
                    let jitter =
                        (uuid::Uuid::new_v4().as_u128() % u128::from(ceiling.max(1))) as u64;
                    tokio::time::sleep(std::time::Duration::from_micros(jitter)).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// Executes `command` against aggregate `id` without loading it, for an id that has no
    /// history: one just minted, or one whose history only this command may start (a
    /// username). Should it have history after all, the append collides with it and the
    /// command is refused with `AggregateConflict`; nothing is overwritten.
    pub async fn create(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Vec<A::Event>, AggregateError<A::Error>> {
        let context = EventStoreAggregateContext {
            aggregate_id: id.to_string(),
            aggregate: A::default(),
            current_sequence: 0,
            current_snapshot: None,
        };
        let (events, _) = self.handle_and_commit(context, command, metadata).await?;
        Ok(events)
    }

    async fn handle_and_commit(
        &self,
        mut context: EventStoreAggregateContext<A>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<(Vec<A::Event>, i64), AggregateError<A::Error>> {
        let first = context.current_sequence as i64 + 1;
        let sink = EventSink::default();
        context
            .aggregate()
            .handle(command, &(), &sink)
            .await
            .map_err(AggregateError::UserError)?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok((events, first));
        }
        self.store
            .commit(events.clone(), context, metadata.to_map())
            .await?;
        self.committed.notify_one();
        Ok((events, first))
    }
}
