//! The runs read model: one row per run, fed from the bus, rebuildable from the store.
//!
//! (Long: the row and its rules, the batch apply shared by the live view and its rebuild
//! (one macro, one transaction each), the queries, the fold for history reads and the
//! rebuild by replay — one read model, kept together.)
//!
//! Idempotent under redelivery: each row remembers the last aggregate sequence applied, and
//! an event at or below it changes nothing. An event further ahead (the stream lost one in
//! between) first catches the row up from the store, so order and loss on the bus cannot
//! corrupt the view.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aurora_domain::run::{Run, RunEvent, RunStatus};
use chrono::SecondsFormat;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::watch;

use super::envelope::{self, Envelope};
use super::projection::{Interest, Projection};
use crate::on_pool;
use crate::store::log::{count_between_in, read_after_in, read_aggregate_after_in};
use crate::store::{Cursor, Database, StoreError, StoredEvent};

/// Checkpoint name, and the projection's.
pub const NAME: &str = "runs";
/// The view's table.
const VIEW: &str = "runs_view";
/// The shadow table of a rebuild.
const SHADOW: &str = "runs_view_rebuild";
/// Where a rebuild in progress stands.
const REBUILD_CHECKPOINT: &str = "runs:rebuild";
/// Events read per page when catching up from the store.
const CATCH_UP_PAGE: i64 = 1000;
/// Pages a delivered batch that does not continue the view reads from the store, at most.
const GAP_PAGES: usize = 20;

/// A run as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// Run id (UUIDv7, so ids sort by creation time).
    pub id: String,
    /// Owning principal.
    pub owner: String,
    /// `requested`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The input as requested.
    #[schema(value_type = aurora_domain::run::Input)]
    pub input: serde_json::Value,
    /// The steps as requested.
    #[schema(value_type = Vec<aurora_domain::run::Step>)]
    pub steps: serde_json::Value,
    /// What each step that succeeded produced, in order.
    #[schema(value_type = Vec<aurora_domain::run::StepOutput>)]
    pub outputs: serde_json::Value,
    /// Index of the step running or next to run.
    pub current_step: i64,
    /// Attempt number of that step (0 before it starts).
    pub attempt: i64,
    /// Why it was cancelled, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// When it was requested (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// Number of events applied: the aggregate's sequence.
    pub version: i64,
}

const COLUMNS: &str = "id, owner, status, input, steps, cancel_reason, created_at, updated_at, \
     last_sequence, outputs, failure_reason, current_step, attempt";

/// Columns per row in `COLUMNS`.
const WIDTH: usize = 13;

/// Rows per multi-row insert: 13 parameters each, well inside SQLite's and Postgres's
/// limits.
const FRESH_ROWS_PER_STATEMENT: usize = 256;

/// A row of the view as stored, in `COLUMNS` order.
#[derive(Debug, Clone)]
struct ViewRow {
    id: String,
    owner: String,
    status: String,
    input: String,
    steps: String,
    cancel_reason: Option<String>,
    created_at: String,
    updated_at: String,
    last_sequence: i64,
    outputs: String,
    failure_reason: Option<String>,
    current_step: i64,
    attempt: i64,
}

impl ViewRow {
    /// The row of run `id` as `RunRequested` (sequence `sequence`, at `time`) makes it.
    fn requested(
        id: &str,
        owner: &str,
        input: &impl Serialize,
        steps: &impl Serialize,
        time: String,
        sequence: i64,
    ) -> Self {
        Self {
            id: id.to_string(),
            owner: owner.to_string(),
            status: RunStatus::Requested.as_str().into(),
            input: json_text(input),
            steps: json_text(steps),
            cancel_reason: None,
            created_at: time.clone(),
            updated_at: time,
            last_sequence: sequence,
            outputs: "[]".into(),
            failure_reason: None,
            current_step: 0,
            attempt: 0,
        }
    }

    fn view(self) -> Result<RunView, sqlx::Error> {
        Ok(RunView {
            id: self.id,
            owner: self.owner,
            status: self.status,
            input: parse_json(self.input)?,
            steps: parse_json(self.steps)?,
            outputs: parse_json(self.outputs)?,
            current_step: self.current_step,
            attempt: self.attempt,
            cancel_reason: self.cancel_reason,
            failure_reason: self.failure_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.last_sequence,
        })
    }

    /// Applies one event (of sequence `sequence`, at `time`) to the row.
    fn apply(&mut self, event: &RunEvent, sequence: i64, time: String) -> Result<(), StoreError> {
        match event {
            RunEvent::RunRequested { .. } => {}
            RunEvent::RunCancelled { reason } => {
                self.status = RunStatus::Cancelled.as_str().into();
                self.cancel_reason.clone_from(reason);
            }
            RunEvent::StepStarted { step, attempt, .. } => {
                self.status = RunStatus::Running.as_str().into();
                self.current_step = *step as i64;
                self.attempt = i64::from(*attempt);
            }
            RunEvent::StepProgressed { .. }
            | RunEvent::StepAttemptFailed { .. }
            | RunEvent::GenerationSubmitted { .. }
            | RunEvent::GenerationReported { .. } => {}
            RunEvent::StepSucceeded { step, output, .. } => {
                let mut outputs: Vec<serde_json::Value> = serde_json::from_str(&self.outputs)
                    .map_err(|e| StoreError::Corrupt(format!("run {} outputs: {e}", self.id)))?;
                outputs.push(serde_json::to_value(output).expect("outputs serialize"));
                self.outputs = json_text(&outputs);
                self.current_step = *step as i64 + 1;
                self.attempt = 0;
            }
            RunEvent::RunSucceeded {} => self.status = RunStatus::Succeeded.as_str().into(),
            RunEvent::RunFailed { reason, .. } => {
                self.status = RunStatus::Failed.as_str().into();
                self.failure_reason = Some(reason.clone());
            }
        }
        self.updated_at = time;
        self.last_sequence = sequence;
        Ok(())
    }
}

/// Reads a [`ViewRow`] from a database row of either backend (the `on_pool!` body is
/// compiled once per backend, each with its own row type).
macro_rules! read_row {
    ($row:expr) => {
        ViewRow {
            id: $row.try_get("id")?,
            owner: $row.try_get("owner")?,
            status: $row.try_get("status")?,
            input: $row.try_get("input")?,
            steps: $row.try_get("steps")?,
            cancel_reason: $row.try_get("cancel_reason")?,
            created_at: $row.try_get("created_at")?,
            updated_at: $row.try_get("updated_at")?,
            last_sequence: $row.try_get("last_sequence")?,
            outputs: $row.try_get("outputs")?,
            failure_reason: $row.try_get("failure_reason")?,
            current_step: $row.try_get("current_step")?,
            attempt: $row.try_get("attempt")?,
        }
    };
}

/// Applies the run events among `$events` to the rows of `$table` inside transaction
/// `$tx` (one read of the rows concerned, one write of each changed row). Idempotent:
/// an event at or below a row's sequence changes nothing; one beyond the next catches the
/// row up from the store first.
macro_rules! apply_runs {
    ($self:expr, $tx:expr, $table:expr, $events:expr) => {{
        let runs: Vec<&Arc<Envelope>> = $events
            .iter()
            .filter(|e| e.event.aggregate_type == Run::TYPE)
            .collect();
        // One query for the current row of every run in the batch; rows are changed in
        // memory and written once each at the end.
        let mut stored: HashMap<String, ViewRow> = HashMap::new();
        if !runs.is_empty() {
            let mut ids: Vec<&str> = runs.iter().map(|e| e.event.aggregate_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            for chunk in ids.chunks(FRESH_ROWS_PER_STATEMENT) {
                let placeholders: Vec<String> =
                    (1..=chunk.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT {COLUMNS} FROM {} WHERE id IN ({})",
                    $table,
                    placeholders.join(", ")
                );
                let mut query = sqlx::query(&sql).persistent(false);
                for id in chunk {
                    query = query.bind(*id);
                }
                for row in query.fetch_all($tx).await? {
                    let row = read_row!(row);
                    stored.insert(row.id.clone(), row);
                }
            }
        }
        let mut fresh: Vec<ViewRow> = Vec::new();
        let mut fresh_index: HashMap<String, usize> = HashMap::new();
        let mut changed: Vec<String> = Vec::new();
        for envelope in runs {
            let id = &envelope.event.aggregate_id;
            let version = match (fresh_index.get(id), stored.get(id)) {
                (Some(&i), _) => fresh[i].last_sequence,
                (None, Some(row)) => row.last_sequence,
                (None, None) => 0,
            };
            if envelope.event.sequence <= version {
                continue; // already applied: redelivery
            }
            let pending: Vec<Arc<Envelope>> = if envelope.event.sequence == version + 1 {
                vec![Arc::clone(envelope)]
            } else {
                // The bus skipped something: catch up from the store.
                envelope::from_store(read_aggregate_after_in!(
                    $self.db,
                    $tx,
                    Run::TYPE,
                    id,
                    version
                ))
            };
            for pending in pending {
                let event = &pending.event;
                let run_event = pending.run_event()?;
                let time = event
                    .metadata
                    .time
                    .to_rfc3339_opts(SecondsFormat::Micros, true);
                if let RunEvent::RunRequested {
                    owner,
                    input,
                    steps,
                    ..
                } = run_event
                {
                    fresh_index.insert(id.clone(), fresh.len());
                    fresh.push(ViewRow::requested(
                        id,
                        owner,
                        input,
                        steps,
                        time,
                        event.sequence,
                    ));
                    continue;
                }
                let row = match fresh_index.get(id) {
                    Some(&i) => &mut fresh[i],
                    None => {
                        let Some(row) = stored.get_mut(id) else {
                            return Err(StoreError::Corrupt(format!(
                                "{}: run event before RunRequested",
                                pending.id()
                            )));
                        };
                        if !changed.contains(id) {
                            changed.push(id.clone());
                        }
                        row
                    }
                };
                row.apply(run_event, event.sequence, time)?;
            }
        }
        for id in &changed {
            let row = &stored[id];
            sqlx::query(&format!(
                "UPDATE {} SET status = $2, cancel_reason = $3, updated_at = $4, \
                     last_sequence = $5, outputs = $6, failure_reason = $7, current_step = $8, \
                     attempt = $9 WHERE id = $1",
                $table
            ))
            .bind(&row.id)
            .bind(&row.status)
            .bind(&row.cancel_reason)
            .bind(&row.updated_at)
            .bind(row.last_sequence)
            .bind(&row.outputs)
            .bind(&row.failure_reason)
            .bind(row.current_step)
            .bind(row.attempt)
            .execute($tx)
            .await?;
        }
        for rows in fresh.chunks(FRESH_ROWS_PER_STATEMENT) {
            let sql = crate::store::multi_row_insert(&$table, COLUMNS, WIDTH, rows.len());
            // Not prepared: its text differs with the number of rows.
            let mut insert = sqlx::query(&sql).persistent(false);
            for row in rows {
                insert = insert
                    .bind(&row.id)
                    .bind(&row.owner)
                    .bind(&row.status)
                    .bind(&row.input)
                    .bind(&row.steps)
                    .bind(&row.cancel_reason)
                    .bind(&row.created_at)
                    .bind(&row.updated_at)
                    .bind(row.last_sequence)
                    .bind(&row.outputs)
                    .bind(&row.failure_reason)
                    .bind(row.current_step)
                    .bind(row.attempt);
            }
            insert.execute($tx).await?;
        }
    }};
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
    pub async fn apply_batch(&self, events: &[Arc<Envelope>]) -> Result<(), StoreError> {
        let Some(highest) = events.iter().map(|e| e.cursor()).max() else {
            return Ok(());
        };
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            // Write first: SQLite then takes the write lock up front (waiting for it if
            // need be) instead of failing to upgrade a read transaction later.
            sqlx::query(crate::store::ADVANCE_CHECKPOINT)
                .bind(NAME)
                .bind(highest.xid)
                .bind(highest.position)
                .execute(&mut *tx)
                .await?;
            apply_runs!(self, &mut *tx, VIEW, events);
            tx.commit().await?;
        });
        self.applied.send_modify(|n| *n += 1);
        Ok(())
    }

    /// One run.
    pub async fn get(&self, id: &str) -> Result<Option<RunView>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM runs_view WHERE id = $1");
        let rows = self.fetch(&sql, id, 1, &[]).await?;
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
        self.list_where(before, limit, owner, None).await
    }

    /// [`Self::list`], only runs in `status` if given (`requested`, `running`, …).
    pub async fn list_where(
        &self,
        before: Option<&str>,
        limit: i64,
        owner: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<RunView>, StoreError> {
        // UUIDv7 ids sort by creation time. No upper sentinel for the first page: how a
        // string like '~' sorts against digits depends on the database's collation.
        // One statement per combination of filters (not `$3 = '' OR owner = $3`): each
        // keeps its own plan, and the owner's index.
        let before = before.unwrap_or("");
        let mut sql = format!("SELECT {COLUMNS} FROM runs_view WHERE ($1 = '' OR id < $1)");
        let mut binds = Vec::new();
        for (column, value) in [("owner", owner), ("status", status)] {
            if let Some(value) = value {
                binds.push(value);
                sql.push_str(&format!(" AND {column} = ${}", binds.len() + 2));
            }
        }
        sql.push_str(" ORDER BY id DESC LIMIT $2");
        self.fetch(&sql, before, limit, &binds).await
    }

    async fn fetch(
        &self,
        sql: &str,
        key: &str,
        limit: i64,
        binds: &[&str],
    ) -> Result<Vec<RunView>, StoreError> {
        on_pool!(&self.db, |pool| {
            let mut query = sqlx::query(sql).bind(key).bind(limit);
            for value in binds {
                query = query.bind(*value);
            }
            let rows = query.fetch_all(pool).await?;
            let views: Result<Vec<RunView>, sqlx::Error> = rows
                .iter()
                .map(|row| -> Result<RunView, sqlx::Error> { read_row!(row).view() })
                .collect();
            Ok(views?)
        })
    }

    /// Ids of `owner`'s runs that have not ended, newest first (at most `limit`), and the
    /// number of them that are running.
    pub async fn unfinished_of(
        &self,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> = on_pool!(&self.db, |pool| sqlx::query_as(
            "SELECT id, status FROM runs_view WHERE owner = $1 \
             AND status IN ('requested', 'running') ORDER BY id DESC LIMIT $2"
        )
        .bind(owner)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        Ok(rows)
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

    /// Waits until run `id`'s view satisfies `done`, or `timeout` passes; returns the
    /// last view seen either way.
    pub async fn wait_until(
        &self,
        id: &str,
        done: impl Fn(&RunView) -> bool,
        timeout: Duration,
    ) -> Result<Option<RunView>, StoreError> {
        let mut applied = self.applied.subscribe();
        let mut last = None;
        let wait = async {
            loop {
                applied.borrow_and_update();
                last = self.get(id).await?;
                if last.as_ref().is_some_and(&done) {
                    return Ok(());
                }
                if applied.changed().await.is_err() {
                    return Ok(());
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Err(error)) => Err(error),
            _ => Ok(last),
        }
    }

    /// Catches up from the checkpoint, `pages` pages at most.
    async fn catch_up_pages(&self, pages: usize) -> Result<(), StoreError> {
        let mut cursor = self.checkpoint().await?;
        for _ in 0..pages {
            let page = self.db.read_after(cursor, CATCH_UP_PAGE).await?;
            let Some(last) = page.last() else { break };
            cursor = last.cursor;
            let full = page.len() as i64 == CATCH_UP_PAGE;
            self.apply_batch(&envelope::from_store(page)).await?;
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// [`Projection::apply`]'s transaction: `false` if `batch` does not continue the view.
    async fn apply_if_continuous(&self, batch: &[Arc<Envelope>]) -> Result<bool, StoreError> {
        let mut events: Vec<Arc<Envelope>> = batch.to_vec();
        events.sort_by_key(|e| e.cursor());
        events.dedup_by_key(|e| e.cursor());
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            // Lock the checkpoint row first (a write: SQLite takes its write lock up front),
            // so that replicas applying batches take turns.
            let (xid, position): (i64, i64) = sqlx::query_as(
                "INSERT INTO projection_checkpoints (projection, xid, position) \
                 VALUES ($1, 0, 0) ON CONFLICT (projection) \
                 DO UPDATE SET xid = projection_checkpoints.xid RETURNING xid, position",
            )
            .bind(NAME)
            .fetch_one(&mut *tx)
            .await?;
            let checkpoint = Cursor { xid, position };
            events.retain(|e| e.cursor() > checkpoint);
            let Some(last) = events.last().map(|e| e.cursor()) else {
                return Ok(true); // all applied already: a redelivery
            };
            if count_between_in!(self.db, &mut *tx, checkpoint, last) != events.len() as i64 {
                return Ok(false);
            }
            apply_runs!(self, &mut *tx, VIEW, events);
            sqlx::query(
                "UPDATE projection_checkpoints SET xid = $2, position = $3 WHERE projection = $1",
            )
            .bind(NAME)
            .bind(last.xid)
            .bind(last.position)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.applied.send_modify(|n| *n += 1);
        Ok(true)
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
                let row = read_row!(row);
                let text = [
                    Some(row.id),
                    Some(row.owner),
                    Some(row.status),
                    Some(row.input),
                    Some(row.steps),
                    row.cancel_reason,
                    Some(row.created_at),
                    Some(row.updated_at),
                    Some(row.outputs),
                    row.failure_reason,
                ];
                for value in text {
                    hasher.update(value.unwrap_or_else(|| "\u{0}".into()));
                    hasher.update([0x1f]);
                }
                for number in [row.last_sequence, row.current_step, row.attempt] {
                    hasher.update(number.to_be_bytes());
                }
                hasher.update([0x1e]);
            }
        });
        Ok(hex::encode(hasher.finalize()))
    }

    /// The view of a run as `history` (its events in order, from the first) makes it:
    /// the view's own rules, applied in memory. `None` for an empty history.
    pub fn fold(history: &[StoredEvent]) -> Result<Option<RunView>, StoreError> {
        let mut row: Option<ViewRow> = None;
        for stored in history {
            let event = RunEvent::deserialize(&stored.payload).map_err(|e| {
                StoreError::Corrupt(format!(
                    "run {} event {}: {e}",
                    stored.aggregate_id, stored.sequence
                ))
            })?;
            let time = stored
                .metadata
                .time
                .to_rfc3339_opts(SecondsFormat::Micros, true);
            match (&mut row, &event) {
                (
                    None,
                    RunEvent::RunRequested {
                        owner,
                        input,
                        steps,
                        ..
                    },
                ) => {
                    row = Some(ViewRow::requested(
                        &stored.aggregate_id,
                        owner,
                        input,
                        steps,
                        time,
                        stored.sequence,
                    ));
                }
                (Some(row), _) => row.apply(&event, stored.sequence, time)?,
                (None, _) => {
                    return Err(StoreError::Corrupt(format!(
                        "run {}: history does not begin with RunRequested",
                        stored.aggregate_id
                    )))
                }
            }
        }
        row.map(ViewRow::view)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Rebuilds the view from the store without taking it away: every run event is
    /// replayed into a shadow table while the live view keeps serving and being fed;
    /// then, holding the checkpoint lock (the live consumer waits on it), the shadow is
    /// caught up to the store's fence and swapped in. Events the live view applied are
    /// below that fence, so none is lost; later ones arrive on the bus and are applied to
    /// the new table. Returns the number of events replayed.
    pub async fn rebuild(
        &self,
        batch_size: i64,
        mut progress: impl FnMut(crate::audit::RebuildProgress),
    ) -> Result<u64, StoreError> {
        let total = self.db.count_after(Cursor::START, None, i64::MAX).await? as u64;
        let generation = chrono::Utc::now().timestamp_micros();
        // A shadow of its own: rebuilds running at once do not write into each other's.
        let shadow = format!("{SHADOW}_{generation}");
        let index = format!("CREATE INDEX runs_view_by_owner_{generation} ON {shadow} (owner, id)");
        on_pool!(&self.db, |pool| {
            sqlx::query(&format!(
                "CREATE TABLE {shadow} (id text PRIMARY KEY, owner text NOT NULL, \
                 status text NOT NULL, input text NOT NULL, steps text NOT NULL, \
                 cancel_reason text, created_at text NOT NULL, updated_at text NOT NULL, \
                 last_sequence bigint NOT NULL, outputs text NOT NULL DEFAULT '[]', \
                 failure_reason text, current_step bigint NOT NULL DEFAULT 0, \
                 attempt bigint NOT NULL DEFAULT 0)"
            ))
            .execute(pool)
            .await?;
        });
        // SQLite: the index first, so that no statement holds the write lock for long.
        if let Database::Sqlite(pool) = &self.db {
            sqlx::query(&index).execute(pool).await?;
        }
        let mut cursor = Cursor::START;
        let mut replayed = 0;
        loop {
            let page = self.db.read_after(cursor, batch_size).await?;
            let Some(last) = page.last() else { break };
            cursor = last.cursor;
            let events = envelope::from_store(page);
            on_pool!(&self.db, |pool| {
                let mut tx = pool.begin().await?;
                // Write first (SQLite then takes its write lock up front): where the
                // rebuild stands, for anyone watching.
                sqlx::query(
                    "INSERT INTO projection_checkpoints (projection, xid, position) \
                     VALUES ($1, $2, $3) ON CONFLICT (projection) \
                     DO UPDATE SET xid = excluded.xid, position = excluded.position",
                )
                .bind(REBUILD_CHECKPOINT)
                .bind(cursor.xid)
                .bind(cursor.position)
                .execute(&mut *tx)
                .await?;
                apply_runs!(self, &mut *tx, shadow, events);
                tx.commit().await?;
            });
            replayed += events.len() as u64;
            progress(crate::audit::RebuildProgress {
                done: replayed,
                total,
            });
        }
        on_pool!(&self.db, |pool| {
            if matches!(self.db, Database::Postgres(_)) {
                sqlx::query(&index).execute(pool).await?;
            }
            let mut tx = pool.begin().await?;
            if matches!(self.db, Database::Postgres(_)) {
                // Rather fail the rebuild than queue every reader behind the rename.
                sqlx::query("SET LOCAL lock_timeout = '30s'")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO projection_checkpoints (projection, xid, position) \
                 VALUES ($1, 0, 0) ON CONFLICT (projection) \
                 DO UPDATE SET xid = projection_checkpoints.xid",
            )
            .bind(NAME)
            .execute(&mut *tx)
            .await?;
            loop {
                let page = read_after_in!(self.db, &mut *tx, cursor, batch_size);
                let Some(last) = page.last() else { break };
                cursor = last.cursor;
                let events = envelope::from_store(page);
                apply_runs!(self, &mut *tx, shadow, events);
                replayed += events.len() as u64;
            }
            crate::store::swap_in!(&mut *tx, VIEW, shadow);
            sqlx::query("DELETE FROM projection_checkpoints WHERE projection = $1")
                .bind(REBUILD_CHECKPOINT)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE projection_checkpoints SET xid = $2, position = $3 WHERE projection = $1",
            )
            .bind(NAME)
            .bind(cursor.xid)
            .bind(cursor.position)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.applied.send_modify(|n| *n += 1);
        Ok(replayed)
    }
}

#[async_trait::async_trait]
impl Projection for RunsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Every event: it applies only run events, but its checkpoint follows the whole log, so
    /// that whether a batch continues it is one count.
    fn interest(&self) -> Interest {
        Interest::ALL
    }

    async fn catch_up(&self) -> Result<(), StoreError> {
        self.catch_up_pages(usize::MAX).await
    }

    /// Applies the batch if it continues the view (every event stored between the checkpoint
    /// and the batch's last is in it), else catches the view up from the store (bounded: the
    /// next batches take up a longer backlog). Either way the checkpoint only ever moves past
    /// events the view has applied, so `Aurora-After-Position` and the lag can trust it.
    async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        if !self.apply_if_continuous(batch).await? {
            self.catch_up_pages(GAP_PAGES).await?;
        }
        Ok(())
    }
}

fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values serialize")
}

fn parse_json(text: String) -> Result<serde_json::Value, sqlx::Error> {
    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
