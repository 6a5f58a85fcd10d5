//! State every replica keeps in memory from events — the token revocation set, the blocked
//! clients — as projections without a table ([`Scope::Replica`]): each replica's
//! projection actor tails the events on the bus, then loads them all from the store, and
//! applies what the tail delivers; if the tail breaks, the actor fails and its supervisor
//! starts it again (tail again, load again). The replica that commits such an event also
//! applies it at once, before answering.
//!
//! A tail can also go quiet without failing: a NATS server restarted or a network that
//! drops packets leaves the consumer waiting until its heartbeats are missed, seconds later
//! (the chaos harness found revoked keys honoured for 10 s so). So beside the bus, each
//! replica also polls the store for these events ([`InMemory::follow_store`], every
//! [`STORE_POLL`]): a cheap read of what was committed since the last poll, which bounds
//! how stale the state can be to the poll period whatever the bus does. A replica that
//! cannot vouch for that — its process was frozen and has not polled since, or the store
//! is out of reach — does not honour tokens meanwhile: a request presenting one waits for
//! a poll begun within [`CURRENT_WITHIN`], up to [`CURRENT_WAIT`], else is answered 503
//! (`crate::http`'s gate, over [`Freshness`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aurora_projections::read::projection::load_named;
use aurora_projections::read::{Envelope, Interest, Projection, Scope};
use aurora_projections::{Cursor, Database, StoreError, StoredEvent};
use tokio_util::sync::CancellationToken;

/// How often [`follow_store`] polls: a revoked token is refused everywhere within about
/// this, even while the bus is down (the promise is 1 s).
pub const STORE_POLL: Duration = Duration::from_millis(250);

/// How recent the last poll that read the revocations through must be for a token to be
/// honoured: a poll period and its own time, well inside the promise of 1 s.
pub const CURRENT_WITHIN: Duration = Duration::from_millis(750);

/// The promise: no token is honoured more than this after its revocation was acknowledged.
pub const PROMISE: Duration = Duration::from_secs(1);

/// How long a request waits for such a poll before it is answered 503.
pub const CURRENT_WAIT: Duration = Duration::from_secs(2);

/// A poll that has not finished by then is abandoned (a connection the network left
/// half-open would hold it for minutes).
const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// Events beyond the horizon a poll looks at, at most (see
/// [`Database::read_named_beyond_horizon`]).
const BEYOND_SCAN: i64 = 50_000;

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

/// How current a state followed from the store is: when the last poll that read the store
/// to its end began. Everything committed before then (and not held back by a transaction
/// still open) is in the state.
#[derive(Default)]
pub struct Freshness {
    read_at: std::sync::Mutex<Option<Instant>>,
    polled: tokio::sync::Notify,
}

impl Freshness {
    /// A poll that began at `began` read the store to its end.
    fn read_through(&self, began: Instant) {
        {
            let mut read_at = self.read_at.lock().unwrap_or_else(|e| e.into_inner());
            *read_at = Some(read_at.map_or(began, |at| at.max(began)));
        }
        self.polled.notify_waiters();
    }

    /// Is the state current within `within` now? (For checks that cannot wait: a long
    /// response asking every second whether its token still holds, readiness.)
    pub fn is_current(&self, within: Duration) -> bool {
        let read_at = *self.read_at.lock().unwrap_or_else(|e| e.into_inner());
        read_at.is_some_and(|at| at.elapsed() <= within)
    }

    /// Is the state current within `within` now, or does it become so within `wait`?
    /// False if the store could not be read that recently (unreachable, or this process
    /// was frozen and has not polled since).
    pub async fn current_within(&self, within: Duration, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let polled = self.polled.notified();
            tokio::pin!(polled);
            // Registered before looking, so that a poll ending in between is not missed.
            polled.as_mut().enable();
            if self.is_current(within) {
                return true;
            }
            if tokio::time::timeout_at(deadline, polled).await.is_err() {
                return false;
            }
        }
    }
}

/// `R` as a projection in this replica's memory.
pub struct InMemory<R> {
    state: Arc<R>,
    db: Database,
    /// When [`InMemory::follow_store`] last read the store through.
    freshness: Arc<Freshness>,
    /// The last sequence applied, by aggregate: the bus and the store poll deliver the same
    /// events at different times, and an old one (a block) must not undo a newer one (its
    /// lifting) it arrives after.
    applied: std::sync::Mutex<HashMap<String, i64>>,
}

impl<R: Replicated> InMemory<R> {
    /// The projection keeping `state`, loading from `db`.
    pub fn new(state: Arc<R>, db: Database) -> Self {
        Self {
            state,
            db,
            freshness: Default::default(),
            applied: Default::default(),
        }
    }

    /// How current [`InMemory::follow_store`] keeps the state.
    pub fn freshness(&self) -> Arc<Freshness> {
        self.freshness.clone()
    }

    /// Applies `event` unless a later event of its aggregate was applied already.
    fn apply_one(&self, event: &StoredEvent) {
        {
            let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
            let last = applied.entry(event.aggregate_id.clone()).or_insert(0);
            if event.sequence <= *last {
                return;
            }
            *last = event.sequence;
        }
        self.state.apply_event(event);
    }

    /// Applies `R`'s events from the store every `every` until `stop`, reading them over
    /// `db` (a pool of its own: a poll must not queue behind the requests it lets in);
    /// errors (the database unreachable) and polls that hang past [`POLL_TIMEOUT`] are
    /// retried at the next tick. Each poll that reads the store through marks the state
    /// current as of its start ([`InMemory::freshness`]).
    pub async fn follow_store(
        self: Arc<Self>,
        db: Database,
        every: Duration,
        stop: CancellationToken,
    ) {
        let mut cursor = Cursor::START;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let began = Instant::now();
            match tokio::time::timeout(POLL_TIMEOUT, self.poll(&db, &mut cursor)).await {
                Ok(Ok(true)) => self.freshness.read_through(began),
                Ok(Ok(false)) => tracing::warn!(
                    "{}: more than {BEYOND_SCAN} events wait behind a transaction still open; \
                     this replica cannot vouch for its state",
                    R::NAME
                ),
                Ok(Err(error)) => tracing::debug!(%error, "{}: polling the store failed", R::NAME),
                Err(_) => tracing::debug!("{}: polling the store timed out", R::NAME),
            }
        }
    }

    /// One poll: applies what was committed after `cursor` (moving it on in commit order),
    /// then what is committed beyond the horizon a transaction still open holds cursor
    /// readers at (another replica frozen mid-commit), without moving past it. Whether
    /// everything committed before the poll began is now applied.
    async fn poll(&self, db: &Database, cursor: &mut Cursor) -> Result<bool, StoreError> {
        const BATCH: i64 = 1000;
        loop {
            let (events, next) = db
                .read_named_after(R::AGGREGATE, R::EVENTS, *cursor, BATCH)
                .await?;
            for event in &events {
                self.apply_one(event);
            }
            *cursor = next;
            if (events.len() as i64) < BATCH {
                break;
            }
        }
        let Some(beyond) = db
            .read_named_beyond_horizon(R::AGGREGATE, R::EVENTS, *cursor, BEYOND_SCAN)
            .await?
        else {
            return Ok(false);
        };
        for event in &beyond {
            self.apply_one(event);
        }
        Ok(true)
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
            self.apply_one(&envelope.event);
        }
        self.state.prune();
        tracing::info!(entries = self.state.entries(), "{} loaded", R::NAME);
        Ok(())
    }

    async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        for envelope in batch {
            self.apply_one(&envelope.event);
        }
        Ok(())
    }

    fn tidy(&self) {
        self.state.prune();
    }
}
