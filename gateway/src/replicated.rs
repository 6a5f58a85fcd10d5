//! State every replica keeps in memory from events — the token revocation set, the blocked
//! clients — as projections without a table ([`Scope::Replica`]): each replica's
//! projection actor tails the events on the bus, then loads them all from the store, and
//! applies what the tail delivers; if the tail breaks, the actor fails and its supervisor
//! starts it again (tail again, load again). The replica that commits such an event also
//! applies it at once, before answering.

use std::sync::Arc;

use async_trait::async_trait;
use aurora_projections::read::projection::load_named;
use aurora_projections::read::{Envelope, Interest, Projection, Scope};
use aurora_projections::{Database, StoreError, StoredEvent};

/// State built from the events named [`Replicated::EVENTS`] of aggregates of type
/// [`Replicated::AGGREGATE`].
pub trait Replicated: Send + Sync + 'static {
    /// The aggregate type.
    const AGGREGATE: &'static str;
    /// The event names.
    const EVENTS: &'static [&'static str];
    /// Its name as a projection.
    const NAME: &'static str;

    /// Applies one event (idempotently).
    fn apply_event(&self, event: &StoredEvent);

    /// Forgets what no longer matters (expired entries).
    fn prune(&self);

    /// How many entries it holds, for logs.
    fn entries(&self) -> usize;
}

/// `R` as a projection in this replica's memory.
pub struct InMemory<R> {
    state: Arc<R>,
    db: Database,
}

impl<R: Replicated> InMemory<R> {
    /// The projection keeping `state`, loading from `db`.
    pub fn new(state: Arc<R>, db: Database) -> Self {
        Self { state, db }
    }
}

#[async_trait]
impl<R: Replicated> Projection for InMemory<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn interest(&self) -> Interest {
        Interest::named(R::AGGREGATE, R::EVENTS)
    }

    fn scope(&self) -> Scope {
        Scope::Replica
    }

    async fn catch_up(&self) -> Result<(), StoreError> {
        for envelope in load_named(&self.db, self.interest()).await? {
            self.state.apply_event(&envelope.event);
        }
        self.state.prune();
        tracing::info!(entries = self.state.entries(), "{} loaded", R::NAME);
        Ok(())
    }

    async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        for envelope in batch {
            self.state.apply_event(&envelope.event);
        }
        Ok(())
    }

    fn tidy(&self) {
        self.state.prune();
    }
}
