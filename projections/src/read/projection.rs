//! The one kind of read model: a [`Projection`], fed by a supervised
//! [`ProjectionActor`](super::actor::ProjectionActor).

use std::sync::Arc;

use async_trait::async_trait;
use aurora_nats::Subjects;

use super::envelope::{self, Envelope};
use crate::store::{Database, StoreError, StoredEvent};

/// Which events a projection follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    /// Aggregates of this type only (`None`: every aggregate).
    pub aggregate: Option<&'static str>,
    /// Events of these names only (empty: every event of the aggregate).
    pub events: &'static [&'static str],
}

impl Interest {
    /// Every event.
    pub const ALL: Interest = Interest {
        aggregate: None,
        events: &[],
    };

    /// Every event of aggregates of type `aggregate`.
    pub const fn aggregate(aggregate: &'static str) -> Self {
        Self {
            aggregate: Some(aggregate),
            events: &[],
        }
    }

    /// The events named `events` of aggregates of type `aggregate`.
    pub const fn named(aggregate: &'static str, events: &'static [&'static str]) -> Self {
        Self {
            aggregate: Some(aggregate),
            events,
        }
    }

    /// Does it follow `event`?
    pub fn wants(&self, event: &StoredEvent) -> bool {
        self.aggregate.is_none_or(|a| a == event.aggregate_type)
            && (self.events.is_empty() || self.events.contains(&event.event_type.as_str()))
    }

    /// The narrowest subject filter that covers it.
    pub fn filter(&self, subjects: &Subjects) -> String {
        match (self.aggregate, self.events) {
            (None, _) => subjects.all_events(),
            (Some(aggregate), [one]) => subjects.events_named(aggregate, one),
            (Some(aggregate), _) => subjects.aggregate_events(aggregate),
        }
    }
}

/// Where a projection's state lives, and so how it is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In the database, shared by the replicas: each event is applied by one replica,
    /// delivered by the durable consumer every replica's supervisor shares.
    Shared,
    /// In this replica's memory (a projection without a table): every replica applies
    /// every event it follows, from a tail of its own, after loading them from the store.
    Replica,
}

/// A read model.
///
/// Contract: `apply` is idempotent (a redelivered event changes nothing), and a projection
/// with a table applies a batch and moves its checkpoint in one transaction, so that a
/// crash leaves it either before or after the batch. Events of one aggregate arrive in
/// sequence order unless the bus lost some and the relay healed it: a projection that
/// needs every event sees a gap (a sequence or position it has not reached) and reads the
/// store, never the other way round.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Its name: logs, metrics, `/health`.
    fn name(&self) -> &'static str;

    /// The events it follows.
    fn interest(&self) -> Interest;

    /// Where its state lives.
    fn scope(&self) -> Scope {
        Scope::Shared
    }

    /// Whether [`Projection::catch_up`] recovers every event it missed (a projection with a
    /// checkpoint): one that does not (a side effect such as republishing or a command)
    /// holds batches back while it is down, rather than miss them.
    fn resumes_from_store(&self) -> bool {
        true
    }

    /// Brings it up to date from the store: when its actor starts or restarts (a shared
    /// projection from its checkpoint; one in memory from nothing).
    async fn catch_up(&self) -> Result<(), StoreError>;

    /// Applies delivered events it follows, in delivery order.
    async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError>;

    /// Forgets what no longer matters (expired entries); called every few minutes.
    fn tidy(&self) {}
}

/// Every stored event `interest` names (which must name its events: an index serves each),
/// in global order.
pub async fn load_named(
    db: &Database,
    interest: Interest,
) -> Result<Vec<Arc<Envelope>>, StoreError> {
    let aggregate = interest
        .aggregate
        .ok_or_else(|| StoreError::Corrupt("load_named needs an aggregate type".into()))?;
    let mut stored = Vec::new();
    for name in interest.events {
        stored.extend(db.read_events_named(aggregate, name).await?);
    }
    // In global order across the names: an unblock after a block must stay after it.
    stored.sort_by_key(|event| event.cursor);
    Ok(envelope::from_store(stored))
}
