//! The relay: every stored event onto the bus exactly once, in global order.
//!
//! One relay is active per bus prefix across all replicas (a Postgres advisory lock held on a
//! dedicated connection; SQLite is single-process). The active relay:
//!
//! 1. **resumes** from the later of its stored checkpoint and the cursor of the last message
//!    in the stream — so a crash between publish and checkpoint republishes nothing, even
//!    after JetStream's duplicate window has passed;
//! 2. **tails** the gap-safe global log, publishing each batch with deterministic message ids
//!    (`<aggregate_type>:<aggregate_id>:<sequence>`), awaiting every ack, then checkpoints;
//! 3. **heals** the stream: when it holds fewer messages than were relayed (purged, lost
//!    writes, an in-process bus after restart), the missing events are published again.
//!    Ids the stream still remembers are republished under `<id>:heal:<seq>:<attempt>`.
//!
//! It is woken right after each local commit, and polls for commits made on other replicas.
//! Because only this one task publishes, stream order equals global order, and so
//! per-aggregate order holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aurora_nats::{BusError, CloudEvent, EventBus};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use sqlx::{Connection, PgConnection};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::on_pool;
use crate::store::{Cursor, Database, StoreError, StoredEvent};

/// How many fresh ids healing tries for one event before giving up.
const MAX_HEAL_ATTEMPTS: usize = 16;

/// Why a relay step failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A fault injected by a test.
    #[error("injected fault: {0}")]
    Injected(&'static str),
}

impl From<sqlx::Error> for RelayError {
    fn from(error: sqlx::Error) -> Self {
        RelayError::Store(error.into())
    }
}

/// How the relay behaves.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Checkpoint name; one relay per bus prefix.
    pub name: String,
    /// Events per publish batch.
    pub batch_size: i64,
    /// How often a standby tries to take over, and the active relay looks for commits made
    /// by other replicas.
    pub poll_interval: Duration,
    /// How often the active relay checks the stream for lost messages.
    pub heal_interval: Duration,
    /// After a commit wakes the relay, how long it lets further commits gather before it
    /// reads: fewer, larger batches under load, for a few milliseconds of latency.
    pub linger: Duration,
    /// How often the checkpoint is written. It only saves work at the next start: the relay
    /// resumes after the last message in the stream whatever the checkpoint says.
    pub checkpoint_interval: Duration,
}

impl RelayConfig {
    /// Defaults for the relay of bus prefix `prefix`.
    pub fn for_prefix(prefix: &str) -> Self {
        Self {
            name: prefix.to_string(),
            batch_size: 500,
            poll_interval: Duration::from_millis(200),
            heal_interval: Duration::from_secs(30),
            linger: Duration::from_millis(5),
            checkpoint_interval: Duration::from_millis(250),
        }
    }

    fn lock_key(&self) -> i64 {
        // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
        let hash = format!("aurora-relay:{}", self.name)
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        i64::from_ne_bytes(hash.to_ne_bytes())
    }
}

/// Relay counters, registered by the gateway.
#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    /// Events published by the tail.
    pub published: Counter,
    /// Events republished by healing.
    pub healed: Counter,
    /// Failed steps.
    pub errors: Counter,
    /// 1 while this process holds the relay lock.
    pub leader: Gauge,
    /// Global position of the last relayed event.
    pub position: Gauge,
}

/// The cursor relay `name` last saved (the start if none).
pub async fn saved_cursor(db: &Database, name: &str) -> Result<Cursor, StoreError> {
    let stored: Option<(i64, i64)> = on_pool!(db, |pool| sqlx::query_as(
        "SELECT xid, position FROM relay_checkpoints WHERE relay = $1"
    )
    .bind(name)
    .fetch_optional(pool)
    .await)?;
    Ok(stored
        .map(|(xid, position)| Cursor { xid, position })
        .unwrap_or(Cursor::START))
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Another replica holds the relay lock.
    Standby,
    /// Nothing new behind the fence.
    Idle,
    /// Published this many events.
    Published(usize),
}

enum Leadership {
    Postgres {
        conn: PgConnection,
        checked: Instant,
    },
    Sqlite,
}

/// How often the active relay makes sure it still holds the lock.
const LOCK_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Store → bus, exactly once. Drive it with [`Relay::run`], or step by step with
/// [`Relay::step`].
pub struct Relay {
    db: Database,
    bus: Arc<dyn EventBus>,
    config: RelayConfig,
    metrics: RelayMetrics,
    cursor: Cursor,
    saved: Option<(Cursor, Instant)>,
    leadership: Option<Leadership>,
    crash_after_publish: bool,
}

impl Relay {
    /// A relay from `db` to `bus`; it does nothing until stepped or run.
    pub fn new(
        db: Database,
        bus: Arc<dyn EventBus>,
        config: RelayConfig,
        metrics: RelayMetrics,
    ) -> Self {
        Self {
            db,
            bus,
            config,
            metrics,
            cursor: Cursor::START,
            saved: None,
            leadership: None,
            crash_after_publish: false,
        }
    }

    /// Test hook: the next step publishes, then fails before checkpointing, as a process
    /// killed between the two would.
    #[doc(hidden)]
    pub fn crash_after_next_publish(&mut self) {
        self.crash_after_publish = true;
    }

    /// Where the relay has published up to.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Is this relay the active one?
    pub fn is_leader(&self) -> bool {
        self.leadership.is_some()
    }

    /// Keeps or takes the relay lock. On taking it, resumes and heals.
    pub async fn ensure_leadership(&mut self) -> Result<bool, RelayError> {
        if let Some(Leadership::Postgres { conn, checked }) = &mut self.leadership {
            // The lock lives as long as this connection: if it is gone, so is the lock.
            // Checked at most every LOCK_CHECK_INTERVAL, not every step: a successor that
            // takes over in that window publishes the same ids in the same order, which the
            // stream's duplicate window absorbs.
            if checked.elapsed() >= LOCK_CHECK_INTERVAL {
                if conn.ping().await.is_err() {
                    tracing::warn!(relay = %self.config.name, "lost the relay lock connection");
                    self.leadership = None;
                } else {
                    *checked = Instant::now();
                }
            }
        }
        if self.leadership.is_none() {
            self.leadership = self.acquire().await?;
            if self.leadership.is_none() {
                self.metrics.leader.set(0);
                return Ok(false);
            }
            self.resume().await?;
            self.heal().await?;
            tracing::info!(relay = %self.config.name, cursor = ?self.cursor, "relay is active");
        }
        self.metrics.leader.set(1);
        Ok(true)
    }

    async fn acquire(&self) -> Result<Option<Leadership>, RelayError> {
        match &self.db {
            Database::Postgres(pool) => {
                let mut conn = pool.acquire().await?.detach();
                let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(self.config.lock_key())
                    .fetch_one(&mut conn)
                    .await?;
                Ok(acquired.then(|| Leadership::Postgres {
                    conn,
                    checked: Instant::now(),
                }))
            }
            Database::Sqlite(_) => Ok(Some(Leadership::Sqlite)),
        }
    }

    async fn resume(&mut self) -> Result<(), RelayError> {
        let checkpoint = saved_cursor(&self.db, &self.config.name).await?;
        let in_stream = self.bus.last_event().await?.map(|e| Cursor {
            xid: e.xid,
            position: e.position,
        });
        self.cursor = checkpoint.max(in_stream.unwrap_or(Cursor::START));
        self.metrics.position.set(self.cursor.position);
        Ok(())
    }

    /// Writes the checkpoint if it is behind and `checkpoint_interval` has passed (or
    /// `force`).
    async fn checkpoint(&mut self, force: bool) -> Result<(), RelayError> {
        let due = match self.saved {
            None => true,
            Some((cursor, at)) => {
                cursor != self.cursor && (force || at.elapsed() >= self.config.checkpoint_interval)
            }
        };
        if due {
            self.save_checkpoint().await?;
            self.saved = Some((self.cursor, Instant::now()));
        }
        Ok(())
    }

    async fn save_checkpoint(&self) -> Result<(), RelayError> {
        on_pool!(&self.db, |pool| sqlx::query(
            "INSERT INTO relay_checkpoints (relay, xid, position) VALUES ($1, $2, $3) \
             ON CONFLICT (relay) DO UPDATE \
             SET xid = excluded.xid, position = excluded.position, updated_at = CURRENT_TIMESTAMP"
        )
        .bind(&self.config.name)
        .bind(self.cursor.xid)
        .bind(self.cursor.position)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// Publishes the next batch of events behind the fence, if this relay is active.
    pub async fn step(&mut self) -> Result<StepOutcome, RelayError> {
        if !self.ensure_leadership().await? {
            return Ok(StepOutcome::Standby);
        }
        let batch = self
            .db
            .read_after(self.cursor, self.config.batch_size)
            .await?;
        let Some(last) = batch.last().map(|e| e.cursor) else {
            return Ok(StepOutcome::Idle);
        };
        self.bus.publish_batch(&outgoing(&batch)).await?;
        self.metrics.published.inc_by(batch.len() as u64);
        if std::mem::take(&mut self.crash_after_publish) {
            self.leadership = None;
            return Err(RelayError::Injected(
                "crash after publish, before checkpoint",
            ));
        }
        self.cursor = last;
        self.checkpoint(false).await?;
        self.metrics.position.set(last.position);
        Ok(StepOutcome::Published(batch.len()))
    }

    /// Republishes relayed events missing from the stream. Returns how many.
    pub async fn heal(&mut self) -> Result<u64, RelayError> {
        let relayed = self.db.count_through(self.cursor).await?;
        let state = self.bus.state().await?;
        if state.messages >= relayed as u64 {
            return Ok(0);
        }
        let present = self.bus.positions().await?;
        tracing::warn!(
            relay = %self.config.name,
            relayed,
            in_stream = state.messages,
            "the stream lost messages; republishing them from the store"
        );
        let mut healed = 0;
        let mut from = Cursor::START;
        while from < self.cursor {
            let page = self.db.read_after(from, self.config.batch_size).await?;
            let Some(last) = page.last().map(|e| e.cursor) else {
                break;
            };
            from = last;
            let missing: Vec<StoredEvent> = page
                .into_iter()
                .filter(|e| e.cursor <= self.cursor && !present.contains(&e.cursor.position))
                .collect();
            healed += self.republish(&missing).await?;
        }
        self.metrics.healed.inc_by(healed);
        Ok(healed)
    }

    async fn republish(&self, missing: &[StoredEvent]) -> Result<u64, RelayError> {
        let mut pending = outgoing(missing);
        let mut attempt = 0;
        while !pending.is_empty() {
            if attempt == MAX_HEAL_ATTEMPTS {
                return Err(RelayError::Bus(BusError::Unavailable(format!(
                    "{} events still shadowed by remembered ids after {attempt} attempts",
                    pending.len()
                ))));
            }
            let outcomes = self.bus.publish_batch(&pending).await?;
            // The stream still remembers these ids (its duplicate window outlived the
            // messages) and dropped them: publish them again under ids of their own. Each
            // attempt's id names the message that shadowed the last one, so it is new.
            pending = pending
                .into_iter()
                .zip(outcomes)
                .filter(|(_, outcome)| outcome.duplicate)
                .map(|((_, event), outcome)| {
                    let id = format!("{}:heal:{}:{attempt}", event.id, outcome.stream_sequence);
                    (id, event)
                })
                .collect();
            attempt += 1;
        }
        Ok(missing.len() as u64)
    }

    /// Runs until `shutdown`: steps whenever a commit is signalled on `committed`, and at
    /// least every poll interval; heals every heal interval.
    pub async fn run(mut self, committed: Arc<Notify>, shutdown: CancellationToken) {
        let mut last_heal = Instant::now();
        // A publish found no stream: heal at once (the step's pause, ≥ 1 s, spaces them).
        let mut heal_now = false;
        loop {
            let pause = match self.step().await {
                Ok(StepOutcome::Published(n)) if n as i64 >= self.config.batch_size => {
                    continue;
                }
                Ok(_) => self.config.poll_interval,
                Err(error) => {
                    self.metrics.errors.inc();
                    tracing::warn!(relay = %self.config.name, %error, "relay step failed");
                    // The stream was deleted: made again and healed now, not at the next
                    // heal interval (nothing reaches consumers until then).
                    heal_now |= matches!(&error, RelayError::Bus(bus) if bus.is_stream_missing());
                    self.config.poll_interval.max(Duration::from_secs(1))
                }
            };
            let due = heal_now || last_heal.elapsed() >= self.config.heal_interval;
            if self.is_leader() && due {
                (last_heal, heal_now) = (Instant::now(), false);
                if let Err(error) = self.heal().await {
                    self.metrics.errors.inc();
                    tracing::warn!(relay = %self.config.name, %error, "healing the stream failed");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = committed.notified() => tokio::time::sleep(self.config.linger).await,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        if self.is_leader() {
            if let Err(error) = self.checkpoint(true).await {
                tracing::warn!(relay = %self.config.name, %error, "final checkpoint failed");
            }
        }
        self.metrics.leader.set(0);
    }
}

fn outgoing(events: &[StoredEvent]) -> Vec<(String, CloudEvent)> {
    events
        .iter()
        .map(|e| {
            let event = e.to_cloud_event();
            (event.id.clone(), event)
        })
        .collect()
}
