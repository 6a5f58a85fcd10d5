//! State every replica keeps for itself from events: the token revocation set, the
//! blocked clients. A durable consumer would hand each event to one replica only, so each
//! replica instead
//!
//! 1. *tails* the events on the bus (an ordered, ephemeral consumer from "now"),
//! 2. then *loads* every such event from the store, and only then serves —
//!
//! an event committed in between is in one or the other (or both: applying is
//! idempotent). If the tail breaks, the replica tails again and reloads. The replica that
//! commits such an event also applies it at once, before answering.

use std::sync::Arc;
use std::time::Duration;

use aurora_nats::bus::Tail;
use aurora_nats::{CloudEvent, EventBus};
use aurora_projections::Database;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// How often [`Replicated::prune`] runs.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// State built from the events named [`Replicated::EVENTS`] of aggregates of type
/// [`Replicated::AGGREGATE`].
pub trait Replicated: Send + Sync + 'static {
    /// The aggregate type.
    const AGGREGATE: &'static str;
    /// The event names.
    const EVENTS: &'static [&'static str];
    /// What it is, for logs.
    const NAME: &'static str;

    /// Applies one event (idempotently).
    fn apply_event(&self, event: &CloudEvent);

    /// Forgets what no longer matters (expired entries).
    fn prune(&self);

    /// How many entries it holds, for logs.
    fn entries(&self) -> usize;
}

/// Tails the events on `bus`, then loads them all from `db` into `state`. Returns the tail
/// for [`follow`].
pub async fn load<R: Replicated>(
    state: &R,
    db: &Database,
    bus: &dyn EventBus,
) -> Result<Tail, Box<dyn std::error::Error + Send + Sync>> {
    let prefix = bus.subjects().prefix();
    let filter = match R::EVENTS {
        [one] => format!("{prefix}.events.{}.*.{one}", R::AGGREGATE),
        _ => format!("{prefix}.events.{}.>", R::AGGREGATE),
    };
    let tail = bus.tail(&filter).await?;
    // In global order across the event names: an unblock after a block must stay after it.
    let mut stored = Vec::new();
    for name in R::EVENTS {
        stored.extend(db.read_events_named(R::AGGREGATE, name).await?);
    }
    stored.sort_by_key(|event| event.cursor.position);
    for event in &stored {
        state.apply_event(&event.to_cloud_event());
    }
    state.prune();
    tracing::info!(entries = state.entries(), "{} loaded", R::NAME);
    Ok(tail)
}

/// Applies events from `tail` to `state` until `shutdown`; when the tail breaks, tails
/// again and reloads from the store.
pub async fn follow<R: Replicated>(
    state: Arc<R>,
    db: Database,
    bus: Arc<dyn EventBus>,
    mut tail: Tail,
    shutdown: CancellationToken,
) {
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = prune.tick() => state.prune(),
            next = tail.next() => match next {
                Some(Ok(event)) => {
                    if R::EVENTS.contains(&event.eventname.as_str()) {
                        state.apply_event(&event);
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "{} tail failed; reloading", R::NAME);
                    tail = reload(&*state, &db, &*bus, &shutdown).await;
                }
                None => {
                    tracing::warn!("{} tail ended; reloading", R::NAME);
                    tail = reload(&*state, &db, &*bus, &shutdown).await;
                }
            },
        }
    }
}

async fn reload<R: Replicated>(
    state: &R,
    db: &Database,
    bus: &dyn EventBus,
    shutdown: &CancellationToken,
) -> Tail {
    loop {
        match load(state, db, bus).await {
            Ok(tail) => return tail,
            Err(error) => tracing::warn!(%error, "reloading the {} failed; retrying", R::NAME),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return futures::stream::empty().boxed(),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
