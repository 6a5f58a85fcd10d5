//! Replaying history with today's code: does every stored aggregate still load?
//!
//! Stored events are never rewritten. When an event's shape changes its version goes up
//! and an upcaster (see [`crate::Versioned`]) reads the old versions as the new shape;
//! [`verify`] proves that, for the whole store, by loading every aggregate the way the
//! event store does — upcast, deserialize, apply, in sequence — and reporting each one
//! that fails, with the event at fault.

use std::panic::AssertUnwindSafe;

use aurora_domain::access::Access;
use aurora_domain::client::Client;
use aurora_domain::media::Media;
use aurora_domain::run::Run;
use aurora_domain::user::User;
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::Aggregate;
use serde::Serialize;

use crate::commands::Versioned;
use crate::store::{Database, StoreError, StoredEvent};

/// Events read per page.
const PAGE: i64 = 5000;

/// An aggregate that failed to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayFailure {
    /// Its type.
    pub aggregate_type: String,
    /// Its id.
    pub aggregate_id: String,
    /// The event that failed.
    pub sequence: i64,
    /// Why.
    pub error: String,
}

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Aggregates loaded.
    pub aggregates: u64,
    /// Events read.
    pub events: u64,
    /// Those that failed (each aggregate at most once).
    pub failures: Vec<ReplayFailure>,
}

/// Folds one aggregate's events into its state, as loading it would.
pub struct Fold<A: Versioned> {
    state: A,
    upcasters: Vec<Box<dyn EventUpcaster>>,
    sequence: i64,
}

impl<A: Versioned> Default for Fold<A> {
    fn default() -> Self {
        Self {
            state: A::default(),
            upcasters: A::upcasters(),
            sequence: 0,
        }
    }
}

impl<A: Versioned> Fold<A> {
    /// Upcasts `stored` to the current shape and deserializes it.
    pub fn decode(&self, stored: &StoredEvent) -> Result<A::Event, String> {
        let mut event = SerializedEvent::new(
            stored.aggregate_id.clone(),
            stored.sequence as usize,
            stored.aggregate_type.clone(),
            stored.event_type.clone(),
            stored.event_version.clone(),
            stored.payload.clone(),
            serde_json::Value::Null,
        );
        for upcaster in &self.upcasters {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                event = upcaster.upcast(event);
            }
        }
        serde_json::from_value(event.payload).map_err(|e| {
            format!(
                "{} v{} does not read as today's event: {e}",
                stored.event_type, stored.event_version
            )
        })
    }

    /// Applies the next event: it must be the next in sequence, decode, and apply.
    pub fn apply(&mut self, stored: &StoredEvent) -> Result<(), String> {
        if stored.sequence != self.sequence + 1 {
            return Err(format!(
                "sequence {} follows {}: the history has a gap",
                stored.sequence, self.sequence
            ));
        }
        let event = self.decode(stored)?;
        let state = &mut self.state;
        std::panic::catch_unwind(AssertUnwindSafe(|| state.apply(event)))
            .map_err(|_| format!("applying {} panicked", stored.event_type))?;
        self.sequence = stored.sequence;
        Ok(())
    }

    /// The state so far.
    pub fn state(&self) -> &A {
        &self.state
    }
}

/// One aggregate being checked, of whichever type.
trait Check: Send {
    fn apply(&mut self, stored: &StoredEvent) -> Result<(), String>;
}

impl<A: Versioned + Send> Check for Fold<A> {
    fn apply(&mut self, stored: &StoredEvent) -> Result<(), String> {
        Fold::apply(self, stored)
    }
}

fn check_for(aggregate_type: &str) -> Option<Box<dyn Check>> {
    Some(match aggregate_type {
        Run::TYPE => Box::new(Fold::<Run>::default()),
        User::TYPE => Box::new(Fold::<User>::default()),
        Client::TYPE => Box::new(Fold::<Client>::default()),
        Media::TYPE => Box::new(Fold::<Media>::default()),
        Access::TYPE => Box::new(Fold::<Access>::default()),
        _ => return None,
    })
}

/// An aggregate's type and id.
type AggregateKey = (String, String);

/// Loads every aggregate in the store with today's code, in aggregate order (the primary
/// key's), page by page: memory stays flat however large the store.
pub async fn verify(
    db: &Database,
    mut progress: impl FnMut(&ReplayReport),
) -> Result<ReplayReport, StoreError> {
    let mut report = ReplayReport::default();
    let mut after = (String::new(), String::new(), 0_i64);
    // The aggregate being checked, and its fold (`None` once it failed).
    let mut current: Option<(AggregateKey, Option<Box<dyn Check>>)> = None;
    loop {
        let page = read_page(db, &after).await?;
        let Some(last) = page.last() else { break };
        after = (
            last.aggregate_type.clone(),
            last.aggregate_id.clone(),
            last.sequence,
        );
        for stored in &page {
            report.events += 1;
            let key = (stored.aggregate_type.clone(), stored.aggregate_id.clone());
            if current.as_ref().is_none_or(|(k, _)| *k != key) {
                report.aggregates += 1;
                let check = check_for(&stored.aggregate_type);
                if check.is_none() {
                    report.failures.push(ReplayFailure {
                        aggregate_type: key.0.clone(),
                        aggregate_id: key.1.clone(),
                        sequence: stored.sequence,
                        error: format!("unknown aggregate type '{}'", key.0),
                    });
                }
                current = Some((key, check));
            }
            let Some((_, check)) = current.as_mut() else {
                continue;
            };
            if let Some(folding) = check {
                if let Err(error) = folding.apply(stored) {
                    report.failures.push(ReplayFailure {
                        aggregate_type: stored.aggregate_type.clone(),
                        aggregate_id: stored.aggregate_id.clone(),
                        sequence: stored.sequence,
                        error,
                    });
                    // One failure per aggregate: the rest of it cannot be judged.
                    *check = None;
                }
            }
        }
        progress(&report);
    }
    Ok(report)
}

async fn read_page(
    db: &Database,
    after: &(String, String, i64),
) -> Result<Vec<StoredEvent>, StoreError> {
    db.read_in_aggregate_order(&after.0, &after.1, after.2, PAGE)
        .await
}
