//! Group commit: concurrent appends share one transaction.
//!
//! Each command's events must be durable before it is answered, and a commit costs a WAL
//! flush plus several round trips. So appends queue here, and a few writers each take what
//! has queued (up to a cap), insert it in one statement, commit once, and answer every
//! append after the commit. At low load a batch is one append and nothing waits; under load
//! batches grow and the cost per command falls.
//!
//! Every append stays all-or-nothing. An append whose events collide with stored ones
//! (another command on the same aggregate won the race) is answered `OptimisticLockError`,
//! and whatever of it the statement did insert is deleted before the commit, so the other
//! appends of the batch are unaffected. Two appends to one aggregate never share a batch:
//! the later one goes into the writer's next batch, where it meets the stored events like
//! any late writer. Rows are inserted in key order, so two batches never wait on each other
//! in opposite orders (no deadlocks).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::Database;

/// Most events one transaction carries.
const MAX_BATCH_EVENTS: usize = 256;

/// (aggregate type, aggregate id, sequence): the events table's primary key.
type Key = (String, String, i64);

/// The queue in front of the writers. Cheap to clone; writers stop when the last clone is
/// dropped and the queue is empty.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Append>,
    taken: Arc<AtomicU64>,
    /// Events stored, by aggregate type.
    appended: Family<AggregateLabels, Counter>,
}

/// Labels of per-aggregate metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AggregateLabels {
    /// e.g. `run`.
    pub aggregate: String,
}

/// A failure injected into one batch's commit, as the network or the server would cause it:
/// the connection lost before the commit (nothing stored) or after it (stored, but the
/// writer never learns so). Either way the batch's appends are answered with a connection
/// error: their callers cannot tell which happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitFault {
    /// The transaction is abandoned before its commit.
    BeforeCommit,
    /// The commit goes through; its answer is lost.
    AfterCommit,
    /// A broken store: the transaction is abandoned, yet every append is answered as
    /// stored — what a store that acknowledges before it is durable does. Never a fault
    /// to survive: it exists so that a simulation can show its checker catches it.
    LostButAcknowledged,
}

/// Decides, batch by batch, which commit fails (for simulations; `None` in production).
pub type FaultPlan = Arc<dyn Fn() -> Option<CommitFault> + Send + Sync>;

type Faults = Option<FaultPlan>;

struct Append {
    events: Vec<SerializedEvent>,
    /// Answered with the global position of the append's last event once committed.
    done: oneshot::Sender<Result<i64, PersistenceError>>,
}

tokio::task_local! {
    /// The highest global position an append committed at within [`committed_position`].
    static COMMITTED_AT: std::cell::Cell<Option<i64>>;
}

/// Runs `work` and returns its output with the highest global position any append inside
/// it committed at (`None`: it committed nothing). What a command's answer tells its client
/// to wait for: a read that names the position sees the command's effects.
pub async fn committed_position<F: std::future::Future>(work: F) -> (F::Output, Option<i64>) {
    let (output, position) = COMMITTED_AT
        .scope(std::cell::Cell::new(None), async {
            let output = work.await;
            (output, COMMITTED_AT.with(std::cell::Cell::get))
        })
        .await;
    // An enclosing scope (the server's, around a handler that asked too) sees it as well.
    if let Some(position) = position {
        note_committed(position);
    }
    (output, position)
}

fn note_committed(position: i64) {
    let _ =
        COMMITTED_AT.try_with(|at| at.set(Some(at.get().map_or(position, |p| p.max(position)))));
}

impl Append {
    /// The aggregate this append writes to.
    fn aggregate(&self) -> (String, String) {
        let first = &self.events[0];
        (first.aggregate_type.clone(), first.aggregate_id.clone())
    }

    fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.events.iter().map(|e| {
            (
                e.aggregate_type.clone(),
                e.aggregate_id.clone(),
                e.sequence as i64,
            )
        })
    }
}

impl GroupCommit {
    /// Starts `writers` writer tasks over `db`. SQLite serialises writers, so one is
    /// enough there; on Postgres several transactions in flight share WAL flushes.
    pub fn start(db: &Database, writers: usize) -> Self {
        Self::start_with_faults(db, writers, None)
    }

    /// [`GroupCommit::start`], with failures injected into commits where `faults` says:
    /// for simulations of the write path.
    pub fn start_with_faults(db: &Database, writers: usize, faults: Option<FaultPlan>) -> Self {
        let writers = match db {
            Database::Postgres(_) => writers.max(1),
            Database::Sqlite(_) => 1,
        };
        let (queue, receiver) = mpsc::channel(4 * MAX_BATCH_EVENTS);
        let receiver = Arc::new(Mutex::new(receiver));
        let taken = Arc::new(AtomicU64::new(0));
        for _ in 0..writers {
            let faults = faults.clone();
            tokio::spawn(writer(db.clone(), receiver.clone(), taken.clone(), faults));
        }
        Self {
            queue,
            taken,
            appended: Family::default(),
        }
    }

    /// Counts the events stored by aggregate type in `appended` (a registry's family). Call
    /// it before cloning: clones share the family they were made with.
    pub fn counting(mut self, appended: Family<AggregateLabels, Counter>) -> Self {
        self.appended = appended;
        self
    }

    /// Appends writers have taken off the queue so far (for metrics and tests).
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Appends waiting for a writer to take them (for metrics and tests).
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Appends `events` (all of one aggregate, in sequence order) in one commit. `Ok`
    /// means they are durably stored; `OptimisticLockError` means another command wrote
    /// to the aggregate first and nothing of these was stored.
    pub async fn append(&self, events: &[SerializedEvent]) -> Result<(), PersistenceError> {
        if events.is_empty() {
            return Ok(());
        }
        let (done, answer) = oneshot::channel();
        let append = Append {
            events: events.to_vec(),
            done,
        };
        let stopped =
            || PersistenceError::ConnectionError("the event store is shutting down".into());
        self.queue.send(append).await.map_err(|_| stopped())?;
        let position = answer.await.map_err(|_| stopped())??;
        note_committed(position);
        self.appended
            .get_or_create(&AggregateLabels {
                aggregate: events[0].aggregate_type.clone(),
            })
            .inc_by(events.len() as u64);
        Ok(())
    }
}

/// One writer: take a batch, write it, answer it; until the queue closes.
async fn writer(
    db: Database,
    queue: Arc<Mutex<mpsc::Receiver<Append>>>,
    taken: Arc<AtomicU64>,
    faults: Faults,
) {
    let mut carried: Vec<Append> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut carried);
        if batch.is_empty() {
            // One writer collects at a time: it waits for the first append, then takes
            // whatever else is already queued, and lets the next writer collect.
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(append) => batch.push(append),
                None => return,
            }
            taken.fetch_add(1, Ordering::Relaxed);
            drain(&mut queue, &mut batch, &taken);
        } else if let Ok(mut queue) = queue.try_lock() {
            // With carried work, never wait for the collecting writer: it may wait for
            // new appends indefinitely while these wait for it.
            drain(&mut queue, &mut batch, &taken);
        }
        let mut aggregates = HashSet::new();
        let (now, later): (Vec<Append>, Vec<Append>) = batch
            .into_iter()
            .partition(|a| aggregates.insert(a.aggregate()));
        carried = later;
        write(&db, now, &faults).await;
    }
}

/// Adds what is queued to `batch`, up to the cap, without waiting.
fn drain(queue: &mut mpsc::Receiver<Append>, batch: &mut Vec<Append>, taken: &AtomicU64) {
    let before = batch.len();
    let mut events: usize = batch.iter().map(|a| a.events.len()).sum();
    while events < MAX_BATCH_EVENTS {
        let Ok(append) = queue.try_recv() else { break };
        events += append.events.len();
        batch.push(append);
    }
    taken.fetch_add((batch.len() - before) as u64, Ordering::Relaxed);
}

/// Writes one batch and answers every append in it.
async fn write(db: &Database, batch: Vec<Append>, faults: &Faults) {
    let fault = faults.as_ref().and_then(|plan| plan());
    match insert(db, &batch, fault).await {
        Ok(stored) => {
            for (append, stored) in batch.into_iter().zip(stored) {
                let answer = stored.ok_or(PersistenceError::OptimisticLockError);
                // The caller may have gone away (client disconnected): the events are
                // stored all the same.
                let _ = append.done.send(answer);
            }
        }
        Err(error) if batch.len() > 1 && !super::is_connection_error(&error) => {
            // One bad append must not fail its neighbours: write each on its own.
            tracing::warn!(%error, appends = batch.len(), "batched append failed; retrying one by one");
            for append in batch {
                Box::pin(write(db, vec![append], faults)).await;
            }
        }
        Err(error) => {
            tracing::error!(%error, appends = batch.len(), "append failed");
            let connection = super::is_connection_error(&error);
            if connection {
                super::connection_failed();
            }
            for append in batch {
                let message: Box<dyn std::error::Error + Send + Sync> = error.to_string().into();
                let _ = append.done.send(Err(if connection {
                    PersistenceError::ConnectionError(message)
                } else {
                    PersistenceError::UnknownError(message)
                }));
            }
        }
    }
}

/// Inserts the batch in one transaction; for each append, the position of its last event if
/// it was stored.
async fn insert(
    db: &Database,
    batch: &[Append],
    fault: Option<CommitFault>,
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let lost = || {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected: the connection was lost",
        ))
    };
    let mut rows: Vec<&SerializedEvent> = batch.iter().flat_map(|a| &a.events).collect();
    rows.sort_by(|a, b| {
        (&a.aggregate_type, &a.aggregate_id, a.sequence).cmp(&(
            &b.aggregate_type,
            &b.aggregate_id,
            b.sequence,
        ))
    });
    let json = |value: &serde_json::Value| value.to_string();
    match db {
        Database::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let inserted: Vec<(String, String, i64, i64)> = sqlx::query_as(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], \
                     $5::text[], $6::text[]::json[], $7::text[]::json[]) \
                 ON CONFLICT DO NOTHING \
                 RETURNING aggregate_type, aggregate_id, sequence, position",
            )
            .bind(rows.iter().map(|e| &e.aggregate_type).collect::<Vec<_>>())
            .bind(rows.iter().map(|e| &e.aggregate_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|e| e.sequence as i64).collect::<Vec<_>>())
            .bind(rows.iter().map(|e| &e.event_type).collect::<Vec<_>>())
            .bind(rows.iter().map(|e| &e.event_version).collect::<Vec<_>>())
            .bind(rows.iter().map(|e| json(&e.payload)).collect::<Vec<_>>())
            .bind(rows.iter().map(|e| json(&e.metadata)).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            let (stored, orphans) = settle(batch, inserted);
            if !orphans.is_empty() {
                sqlx::query(
                    "DELETE FROM events WHERE (aggregate_type, aggregate_id, sequence) IN \
                     (SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]))",
                )
                .bind(orphans.iter().map(|k| &k.0).collect::<Vec<_>>())
                .bind(orphans.iter().map(|k| &k.1).collect::<Vec<_>>())
                .bind(orphans.iter().map(|k| k.2).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
            }
            match fault {
                Some(CommitFault::BeforeCommit) => return Err(lost()), // rolled back as it drops
                Some(CommitFault::LostButAcknowledged) => return Ok(stored),
                _ => {}
            }
            tx.commit().await?;
            if fault == Some(CommitFault::AfterCommit) {
                return Err(lost());
            }
            Ok(stored)
        }
        Database::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ");
            let sql = format!(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) VALUES {values} \
                 ON CONFLICT DO NOTHING RETURNING aggregate_type, aggregate_id, sequence, rowid"
            );
            let mut query = sqlx::query_as(&sql);
            for e in &rows {
                query = query
                    .bind(&e.aggregate_type)
                    .bind(&e.aggregate_id)
                    .bind(e.sequence as i64)
                    .bind(&e.event_type)
                    .bind(&e.event_version)
                    .bind(json(&e.payload))
                    .bind(json(&e.metadata));
            }
            // The position is the rowid (a trigger copies it, after RETURNING has run).
            let inserted: Vec<(String, String, i64, i64)> = query.fetch_all(&mut *tx).await?;
            let (stored, orphans) = settle(batch, inserted);
            for (aggregate_type, aggregate_id, sequence) in &orphans {
                sqlx::query(
                    "DELETE FROM events \
                     WHERE aggregate_type = ? AND aggregate_id = ? AND sequence = ?",
                )
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(sequence)
                .execute(&mut *tx)
                .await?;
            }
            match fault {
                Some(CommitFault::BeforeCommit) => return Err(lost()), // rolled back as it drops
                Some(CommitFault::LostButAcknowledged) => return Ok(stored),
                _ => {}
            }
            tx.commit().await?;
            if fault == Some(CommitFault::AfterCommit) {
                return Err(lost());
            }
            Ok(stored)
        }
    }
}

/// Which appends were stored whole (with the position of their last event), and the rows
/// of the others that must be taken back.
fn settle(
    batch: &[Append],
    inserted: Vec<(String, String, i64, i64)>,
) -> (Vec<Option<i64>>, Vec<Key>) {
    let inserted: HashMap<Key, i64> = inserted
        .into_iter()
        .map(|(t, id, sequence, position)| ((t, id, sequence), position))
        .collect();
    let mut orphans = Vec::new();
    let stored = batch
        .iter()
        .map(|append| {
            let whole = append.keys().all(|k| inserted.contains_key(&k));
            if !whole {
                orphans.extend(append.keys().filter(|k| inserted.contains_key(k)));
                return None;
            }
            append
                .keys()
                .filter_map(|k| inserted.get(&k).copied())
                .max()
        })
        .collect();
    (stored, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(aggregate_id: &str, sequences: &[usize]) -> Append {
        let events = sequences
            .iter()
            .map(|&sequence| SerializedEvent {
                aggregate_id: aggregate_id.into(),
                sequence,
                aggregate_type: "run".into(),
                event_type: "E".into(),
                event_version: "1".into(),
                payload: serde_json::Value::Null,
                metadata: serde_json::Value::Null,
            })
            .collect();
        Append {
            events,
            done: oneshot::channel().0,
        }
    }

    fn row(id: &str, sequence: i64, position: i64) -> (String, String, i64, i64) {
        ("run".into(), id.into(), sequence, position)
    }

    fn key(id: &str, sequence: i64) -> Key {
        ("run".into(), id.into(), sequence)
    }

    #[test]
    fn an_append_is_stored_only_when_all_its_rows_went_in_and_partial_ones_are_taken_back() {
        let batch = [
            append("a", &[1, 2]),
            append("b", &[3, 4]),
            append("c", &[1]),
        ];
        // b's sequence 3 collided with a stored event; c collided entirely.
        let inserted = vec![row("a", 1, 10), row("a", 2, 11), row("b", 4, 12)];
        let (stored, orphans) = settle(&batch, inserted);
        assert_eq!(stored, vec![Some(11), None, None]);
        assert_eq!(orphans, vec![key("b", 4)]);
    }
}
