//! Writing the log as events arrive: delivered batches that continue it, else a catch-up
//! from the store; every batch under the checkpoint lock, with the chain's tail checked.

use std::sync::Arc;

use super::entry::{chain, Head};
use super::{AuditLog, Envelope, GENESIS, NAME};
use crate::on_pool;
use crate::store::log::{count_between_in, read_after_in};
use crate::store::{Cursor, StoreError, StoredEvent};

/// Events per batch of the live log.
const LIVE_BATCH: i64 = 1000;

/// Pages of [`LIVE_BATCH`] events a delivered batch that does not continue the log reads
/// from the store, at most.
const GAP_PAGES: usize = 20;

/// Entries per multi-row insert: 17 parameters each.
pub(super) const ROWS_PER_INSERT: usize = 500;

pub(super) const COLUMNS: &str =
    "seq, position, xid, recorded_at, actor, role, token_id, request_id, \
    client_ip, action, resource_type, resource_id, sequence, version, details, prev_hash, hash";

pub(super) const WIDTH: usize = 17;

impl AuditLog {
    /// Appends entries for every event the store has past the log's checkpoint, in
    /// batches; returns how many.
    pub async fn catch_up(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let added = self.append_batch(LIVE_BATCH).await?;
            total += added;
            if added < LIVE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn append_batch(&self, limit: i64) -> Result<u64, StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let (cursor, head) = lock_checkpoint!(&mut *tx);
            check_tail!(&mut *tx, head);
            let events = read_after_in!(self.db, &mut *tx, cursor, limit);
            let Some(last) = events.last() else {
                return Ok(0);
            };
            let last = last.cursor;
            append_and_commit!(self, tx, head, events.iter(), &events, last);
            Ok(events.len() as u64)
        })
    }

    /// Appends entries for delivered events, without reading them from the store, when
    /// they continue the log: every event the store has between the log's checkpoint and
    /// the last of them is among them (`count_between_in`). Otherwise —
    /// the bus lost or reordered something, another replica is behind or ahead — the log
    /// catches up from the store, in the store's order.
    pub(super) async fn append_delivered(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        let mut events: Vec<&StoredEvent> = batch.iter().map(|e| &e.event).collect();
        events.sort_by_key(|e| e.cursor);
        events.dedup_by_key(|e| e.cursor);
        // An event published without its principal's role cannot make the entry the store
        // makes: read it from the store.
        let complete = batch.iter().all(|e| e.complete);
        if !(complete && self.append_if_continuous(events).await?) {
            // Bounded, to stay within the consumer's ack wait: a longer backlog is taken up
            // by the next batches, which find the same gap.
            for _ in 0..GAP_PAGES {
                if self.append_batch(LIVE_BATCH).await? < LIVE_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// [`AuditLog::append_delivered`]'s transaction: `false` if `events` (in cursor order)
    /// do not continue the log.
    async fn append_if_continuous(
        &self,
        mut events: Vec<&StoredEvent>,
    ) -> Result<bool, StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let (cursor, head) = lock_checkpoint!(&mut *tx);
            check_tail!(&mut *tx, head);
            events.retain(|e| e.cursor > cursor);
            let Some(last) = events.last().map(|e| e.cursor) else {
                return Ok(true); // all applied already: a redelivery
            };
            if count_between_in!(self.db, &mut *tx, cursor, last) != events.len() as i64 {
                return Ok(false);
            }
            append_and_commit!(self, tx, head, events.iter().copied(), &events, last);
            Ok(true)
        })
    }
}

/// Chains `$chained` (the events `$events`, in cursor order, the last at `$last`) after
/// `$head`, writes the entries and the checkpoint in transaction `$tx`, commits, and tells
/// waiters the new head.
macro_rules! append_and_commit {
    ($log:expr, $tx:ident, $head:expr, $chained:expr, $events:expr, $last:expr) => {{
        let (seq, prev) = $head.map_or((0, GENESIS.to_string()), |h| (h.seq, h.hash));
        let entries = chain($chained, seq, &prev);
        insert_entries!(&mut *$tx, "audit_log", &entries, $events);
        let new_head = entries.last().expect("one entry per event");
        save_checkpoint!(&mut *$tx, $last, new_head.seq, &new_head.hash);
        $tx.commit().await?;
        let head = new_head.seq;
        $log.appended.send_modify(|h| *h = (*h).max(head));
    }};
}
use append_and_commit;

/// Locks the log's checkpoint row (creating it if need be) inside a transaction and
/// returns the cursor and the chain's head recorded with it. A write comes first, so SQLite
/// takes its write lock up front.
macro_rules! lock_checkpoint {
    ($tx:expr) => {{
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, xid, position) VALUES ($1, 0, 0) \
             ON CONFLICT (projection) DO UPDATE SET xid = projection_checkpoints.xid",
        )
        .bind(NAME)
        .execute($tx)
        .await?;
        let (xid, position, seq, hash): (i64, i64, i64, String) = sqlx::query_as(
            "SELECT xid, position, head_seq, head_hash FROM projection_checkpoints \
             WHERE projection = $1",
        )
        .bind(NAME)
        .fetch_one($tx)
        .await?;
        (
            Cursor { xid, position },
            (seq > 0).then_some(Head { seq, hash }),
        )
    }};
}
pub(super) use lock_checkpoint;

/// Fails if the log's last entry is not the head its checkpoint recorded.
macro_rules! check_tail {
    ($tx:expr, $head:expr) => {{
        let tail: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional($tx)
                .await?;
        let tail = tail.map(|(seq, hash)| Head { seq, hash });
        if tail != $head {
            return Err(StoreError::Corrupt(format!(
                "the audit log ends at {tail:?} but its checkpoint recorded {:?}: \
                 entries were removed or altered; run `aurora audit verify`, then \
                 `aurora projections rebuild audit-log`",
                $head
            )));
        }
    }};
}
pub(super) use check_tail;

macro_rules! save_checkpoint {
    ($tx:expr, $cursor:expr, $seq:expr, $hash:expr) => {
        sqlx::query(
            "UPDATE projection_checkpoints SET xid = $2, position = $3, head_seq = $4, \
             head_hash = $5 WHERE projection = $1",
        )
        .bind(NAME)
        .bind($cursor.xid)
        .bind($cursor.position)
        .bind($seq)
        .bind($hash)
        .execute($tx)
        .await?
    };
}
pub(super) use save_checkpoint;

/// Inserts `entries` (of `events`, one each) into `table`, several rows per statement.
macro_rules! insert_entries {
    ($tx:expr, $table:expr, $entries:expr, $events:expr) => {
        for (rows, events) in $entries
            .chunks(ROWS_PER_INSERT)
            .zip($events.chunks(ROWS_PER_INSERT))
        {
            let sql = crate::store::multi_row_insert(&$table, COLUMNS, WIDTH, rows.len());
            let mut insert = sqlx::query(&sql).persistent(rows.len() == ROWS_PER_INSERT);
            for (entry, event) in rows.iter().zip(events) {
                insert = insert
                    .bind(entry.seq)
                    .bind(entry.position)
                    .bind(event.cursor.xid)
                    .bind(&entry.time)
                    .bind(&entry.actor)
                    .bind(&entry.role)
                    .bind(&entry.token_id)
                    .bind(&entry.request_id)
                    .bind(&entry.client_ip)
                    .bind(&entry.action)
                    .bind(&entry.resource_type)
                    .bind(&entry.resource_id)
                    .bind(entry.sequence)
                    .bind(&entry.version)
                    .bind(entry.details_text().into_owned())
                    .bind(&entry.prev_hash)
                    .bind(&entry.hash);
            }
            insert.execute($tx).await?;
        }
    };
}
pub(super) use insert_entries;
