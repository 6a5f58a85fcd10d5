//! The runs read model: one row per run, fed from the bus, rebuildable from the store.
//!
//! Idempotent under redelivery: each row remembers the last aggregate sequence applied, and
//! an event at or below it changes nothing. An event further ahead (the stream lost one in
//! between) first catches the row up from the store, so order and loss on the bus cannot
//! corrupt the view.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aurora_domain::run::{Run, RunEvent, RunStatus};
use aurora_nats::{CloudEvent, EventBus};
use chrono::SecondsFormat;
use cqrs_es::Aggregate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::consumer::ReadModel;
use crate::on_pool;
use crate::store::{Cursor, Database, StoreError};

/// Durable consumer name on the bus.
pub const DURABLE: &str = "runs-view";
/// Checkpoint name.
pub const NAME: &str = "runs";

/// A run as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    /// Run id (UUIDv7, so ids sort by creation time).
    pub id: String,
    /// Owning principal.
    pub owner: String,
    /// `requested` or `cancelled`.
    pub status: String,
    /// The input as requested.
    pub input: serde_json::Value,
    /// The steps as requested.
    pub steps: serde_json::Value,
    /// Why it was cancelled, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// When it was requested (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// Number of events applied: the aggregate's sequence.
    pub version: i64,
}

const COLUMNS: &str =
    "id, owner, status, input, steps, cancel_reason, created_at, updated_at, last_sequence";

/// Rows per multi-row insert: 9 parameters each, well inside SQLite's and Postgres's limits.
const FRESH_ROWS_PER_STATEMENT: usize = 256;

/// A run first seen in the batch being applied, in `COLUMNS` order.
struct FreshRow {
    id: String,
    owner: String,
    status: RunStatus,
    input: String,
    steps: String,
    cancel_reason: Option<String>,
    created_at: String,
    updated_at: String,
    last_sequence: i64,
}

/// The runs read model.
pub struct RunsProjection {
    db: Database,
    applied: watch::Sender<u64>,
}

impl RunsProjection {
    /// The projection stored in `db`.
    pub fn new(db: Database) -> Self {
        Self {
            db,
            applied: watch::channel(0).0,
        }
    }

    /// Applies events in one transaction. Events of other aggregate types are ignored.
    pub async fn apply_batch(&self, events: &[CloudEvent]) -> Result<(), StoreError> {
        let highest = events
            .iter()
            .map(|e| Cursor {
                xid: e.xid,
                position: e.position,
            })
            .max()
            .unwrap_or_default();
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            // Write first: SQLite then takes the write lock up front (waiting for it if
            // need be) instead of failing to upgrade a read transaction later.
            sqlx::query(
                "INSERT INTO projection_checkpoints (projection, xid, position) \
                 VALUES ($1, $2, $3) ON CONFLICT (projection) DO UPDATE \
                 SET xid = excluded.xid, position = excluded.position \
                 WHERE (excluded.xid, excluded.position) \
                     > (projection_checkpoints.xid, projection_checkpoints.position)",
            )
            .bind(NAME)
            .bind(highest.xid)
            .bind(highest.position)
            .execute(&mut *tx)
            .await?;
            let runs: Vec<&CloudEvent> = events
                .iter()
                .filter(|e| e.aggregatetype == Run::TYPE)
                .collect();
            // One query for the current version of every run in the batch.
            let mut current: HashMap<String, i64> = HashMap::new();
            if !runs.is_empty() {
                let placeholders: Vec<String> = (1..=runs.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT id, last_sequence FROM runs_view WHERE id IN ({})",
                    placeholders.join(", ")
                );
                let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
                for event in &runs {
                    query = query.bind(&event.aggregateid);
                }
                current.extend(query.fetch_all(&mut *tx).await?);
            }
            // Runs first seen in this batch are inserted together at the end, as one
            // statement; changes to runs stored before are updated in place.
            let mut fresh: Vec<FreshRow> = Vec::new();
            let mut fresh_index: HashMap<String, usize> = HashMap::new();
            for event in runs {
                let version = current.get(&event.aggregateid).copied().unwrap_or(0);
                if event.sequence <= version {
                    continue; // already applied: redelivery
                }
                let pending = if event.sequence == version + 1 {
                    vec![event.clone()]
                } else {
                    // The bus skipped something: catch up from the store.
                    self.db
                        .read_aggregate_after(Run::TYPE, &event.aggregateid, version)
                        .await?
                        .iter()
                        .map(|e| e.to_cloud_event())
                        .collect()
                };
                if let Some(last) = pending.last() {
                    current.insert(event.aggregateid.clone(), last.sequence);
                }
                for event in &pending {
                    let run_event: RunEvent = serde_json::from_value(event.data.clone())
                        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", event.id)))?;
                    let time = event.time.to_rfc3339_opts(SecondsFormat::Micros, true);
                    match run_event {
                        RunEvent::RunRequested {
                            owner,
                            input,
                            steps,
                            ..
                        } => {
                            fresh_index.insert(event.aggregateid.clone(), fresh.len());
                            fresh.push(FreshRow {
                                id: event.aggregateid.clone(),
                                owner,
                                status: RunStatus::Requested,
                                input: json_text(&input),
                                steps: json_text(&steps),
                                cancel_reason: None,
                                created_at: time.clone(),
                                updated_at: time,
                                last_sequence: event.sequence,
                            });
                        }
                        RunEvent::RunCancelled { reason } => {
                            if let Some(&row) = fresh_index.get(&event.aggregateid) {
                                let row = &mut fresh[row];
                                row.status = RunStatus::Cancelled;
                                row.cancel_reason = reason;
                                row.updated_at = time;
                                row.last_sequence = event.sequence;
                                continue;
                            }
                            sqlx::query(
                                "UPDATE runs_view SET status = $2, cancel_reason = $3, \
                                 updated_at = $4, last_sequence = $5 WHERE id = $1",
                            )
                            .bind(&event.aggregateid)
                            .bind(RunStatus::Cancelled.as_str())
                            .bind(reason)
                            .bind(&time)
                            .bind(event.sequence)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
            }
            for rows in fresh.chunks(FRESH_ROWS_PER_STATEMENT) {
                let values: Vec<String> = (0..rows.len())
                    .map(|r| {
                        let p: Vec<String> = (1..=9).map(|c| format!("${}", r * 9 + c)).collect();
                        format!("({})", p.join(", "))
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO runs_view ({COLUMNS}) VALUES {}",
                    values.join(", ")
                );
                // Not prepared: its text differs with the number of rows.
                let mut insert = sqlx::query(&sql).persistent(false);
                for row in rows {
                    insert = insert
                        .bind(&row.id)
                        .bind(&row.owner)
                        .bind(row.status.as_str())
                        .bind(&row.input)
                        .bind(&row.steps)
                        .bind(&row.cancel_reason)
                        .bind(&row.created_at)
                        .bind(&row.updated_at)
                        .bind(row.last_sequence);
                }
                insert.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        self.applied.send_modify(|n| *n += 1);
        Ok(())
    }

    /// One run.
    pub async fn get(&self, id: &str) -> Result<Option<RunView>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM runs_view WHERE id = $1");
        let rows = self.fetch(&sql, id, 1, None).await?;
        Ok(rows.into_iter().next())
    }

    /// Up to `limit` runs, newest first, strictly older than the run `before` if given,
    /// only those of `owner` if given.
    pub async fn list(
        &self,
        before: Option<&str>,
        limit: i64,
        owner: Option<&str>,
    ) -> Result<Vec<RunView>, StoreError> {
        // UUIDv7 ids sort by creation time; '~' sorts after every hex digit and '-'.
        let before = before.unwrap_or("~");
        match owner {
            Some(owner) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM runs_view WHERE id < $1 AND owner = $3 \
                     ORDER BY id DESC LIMIT $2"
                );
                self.fetch(&sql, before, limit, Some(owner)).await
            }
            None => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM runs_view WHERE id < $1 ORDER BY id DESC LIMIT $2"
                );
                self.fetch(&sql, before, limit, None).await
            }
        }
    }

    async fn fetch(
        &self,
        sql: &str,
        key: &str,
        limit: i64,
        owner: Option<&str>,
    ) -> Result<Vec<RunView>, StoreError> {
        on_pool!(&self.db, |pool| {
            let mut query = sqlx::query(sql).bind(key).bind(limit);
            if let Some(owner) = owner {
                query = query.bind(owner);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(RunView {
                        id: row.try_get("id")?,
                        owner: row.try_get("owner")?,
                        status: row.try_get("status")?,
                        input: parse_json(row.try_get("input")?)?,
                        steps: parse_json(row.try_get("steps")?)?,
                        cancel_reason: row.try_get("cancel_reason")?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                        version: row.try_get("last_sequence")?,
                    })
                })
                .collect()
        })
    }

    /// Waits until run `id` has applied at least `version` events, or `timeout` passes.
    pub async fn wait_for(
        &self,
        id: &str,
        version: i64,
        timeout: Duration,
    ) -> Result<Option<RunView>, StoreError> {
        let mut applied = self.applied.subscribe();
        let wait = async {
            loop {
                applied.borrow_and_update();
                if let Some(view) = self.get(id).await? {
                    if view.version >= version {
                        return Ok(Some(view));
                    }
                }
                if applied.changed().await.is_err() {
                    return Ok(None);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Ok(None))
    }

    /// The last global cursor applied.
    pub async fn checkpoint(&self) -> Result<Cursor, StoreError> {
        let row: Option<(i64, i64)> = on_pool!(&self.db, |pool| sqlx::query_as(
            "SELECT xid, position FROM projection_checkpoints WHERE projection = $1"
        )
        .bind(NAME)
        .fetch_optional(pool)
        .await)?;
        Ok(row
            .map(|(xid, position)| Cursor { xid, position })
            .unwrap_or_default())
    }

    /// SHA-256 over every row in id order: equal digests, equal views.
    pub async fn digest(&self) -> Result<String, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM runs_view ORDER BY id");
        let mut hasher = Sha256::new();
        on_pool!(&self.db, |pool| {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            for row in &rows {
                for column in 0..8 {
                    let value: Option<String> = row.try_get(column)?;
                    hasher.update(value.unwrap_or_else(|| "\u{0}".into()));
                    hasher.update([0x1f]);
                }
                let version: i64 = row.try_get(8)?;
                hasher.update(version.to_be_bytes());
                hasher.update([0x1e]);
            }
        });
        Ok(hex::encode(hasher.finalize()))
    }

    /// Empties the view and replays every run event from the store. Returns the number of
    /// events replayed.
    pub async fn rebuild(&self, batch_size: i64) -> Result<u64, StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM runs_view")
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM projection_checkpoints WHERE projection = $1")
                .bind(NAME)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        let mut cursor = Cursor::START;
        let mut replayed = 0;
        loop {
            let page = self.db.read_after(cursor, batch_size).await?;
            let Some(last) = page.last() else { break };
            cursor = last.cursor;
            let events: Vec<CloudEvent> = page.iter().map(|e| e.to_cloud_event()).collect();
            self.apply_batch(&events).await?;
            replayed += events.len() as u64;
        }
        Ok(replayed)
    }

    /// Consumes run events from `bus` until `shutdown`, applying them in batches.
    pub async fn run(self: Arc<Self>, bus: Arc<dyn EventBus>, shutdown: CancellationToken) {
        let filter = bus.subjects().aggregate_events(Run::TYPE);
        crate::consumer::follow(self, bus, DURABLE, &filter, shutdown).await;
    }
}

#[async_trait::async_trait]
impl ReadModel for RunsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(&self, events: &[CloudEvent]) -> Result<(), StoreError> {
        self.apply_batch(events).await
    }
}

fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values serialize")
}

fn parse_json(text: String) -> Result<serde_json::Value, sqlx::Error> {
    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
