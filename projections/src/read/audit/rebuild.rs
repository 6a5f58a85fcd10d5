//! Rebuilding the log without downtime: the store replayed into a shadow table (bulk
//! `COPY` on Postgres), indexed, caught up and swapped in under the checkpoint lock.

use serde::Serialize;

use super::entry::{chain, AuditEntry, Head};
use super::live::{
    insert_entries, lock_checkpoint, save_checkpoint, COLUMNS, ROWS_PER_INSERT, WIDTH,
};
use super::{AuditLog, GENESIS, NAME};
use crate::on_pool;
use crate::store::log::read_after_in;
use crate::store::{Cursor, Database, StoreError, StoredEvent};

/// Events per page of a rebuild.
pub(super) const REBUILD_PAGE: i64 = 5000;

/// The shadow table of a rebuild.
const SHADOW: &str = "audit_log_rebuild";

/// Progress of a rebuild.
#[derive(Debug, Clone, Copy)]
pub struct RebuildProgress {
    /// Events replayed so far.
    pub done: u64,
    /// Events in the store when the rebuild began (more may arrive).
    pub total: u64,
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct Rebuilt {
    /// Events replayed.
    pub events: u64,
    /// The chain's head after the swap.
    pub head: Option<Head>,
    /// Of which, events that arrived during the rebuild and were caught up at the swap.
    pub caught_up_at_swap: u64,
}

impl AuditLog {
    /// The chain's head as a replay of the whole store computes it, writing nothing.
    pub async fn replayed_head(&self) -> Result<Option<Head>, StoreError> {
        let mut cursor = Cursor::START;
        let (mut seq, mut prev) = (0, GENESIS.to_string());
        loop {
            let events = self.db.read_after(cursor, REBUILD_PAGE).await?;
            let Some(last) = events.last() else { break };
            cursor = last.cursor;
            let entries = chain(events.iter(), seq, &prev);
            let last = entries.last().expect("one entry per event");
            (seq, prev) = (last.seq, last.hash.clone());
        }
        Ok((seq > 0).then_some(Head { seq, hash: prev }))
    }

    /// Replays the whole store into a shadow table and swaps it in, while the live log
    /// keeps serving; `progress` hears of every page. Rebuilds running at once each build
    /// a shadow of their own; each swap is complete, the last one stays.
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(RebuildProgress),
    ) -> Result<Rebuilt, StoreError> {
        let total = self.db.count_after(Cursor::START, None, i64::MAX).await? as u64;
        let generation = chrono::Utc::now().timestamp_micros();
        let shadow = format!("{SHADOW}_{generation}");
        on_pool!(&self.db, |pool| {
            sqlx::query(&format!(
                "CREATE TABLE {shadow} (seq bigint PRIMARY KEY, position bigint NOT NULL, \
                 xid bigint NOT NULL, recorded_at text NOT NULL, actor text NOT NULL, \
                 role text NOT NULL, token_id text, request_id text NOT NULL, client_ip text, \
                 action text NOT NULL, resource_type text NOT NULL, resource_id text NOT NULL, \
                 sequence bigint NOT NULL, version text NOT NULL, details text NOT NULL, \
                 prev_hash text NOT NULL, hash text NOT NULL)"
            ))
            .execute(pool)
            .await?;
        });
        // SQLite: indexes first, so that no statement holds the write lock for long (an
        // index over millions of rows would outlast writers' busy timeout). Postgres:
        // indexes after the rows, cheaper than maintaining them, and writers do not wait.
        let indexes = index_statements(&shadow, generation);
        if let Database::Sqlite(pool) = &self.db {
            for statement in &indexes {
                sqlx::query(statement).execute(pool).await?;
            }
        }
        let outcome = self
            .fill_and_swap(&shadow, generation, total, &mut progress)
            .await;
        if outcome.is_err() {
            on_pool!(&self.db, |pool| {
                let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {shadow}"))
                    .execute(pool)
                    .await;
            });
        }
        outcome
    }

    async fn fill_and_swap(
        &self,
        shadow: &str,
        generation: i64,
        total: u64,
        progress: &mut impl FnMut(RebuildProgress),
    ) -> Result<Rebuilt, StoreError> {
        // Replay: a reader task stays a page ahead of the writer.
        let (pages, mut next) =
            tokio::sync::mpsc::channel::<Result<Vec<StoredEvent>, StoreError>>(2);
        let reader = tokio::spawn({
            let db = self.db.clone();
            async move {
                let mut cursor = Cursor::START;
                loop {
                    let page = db.read_after(cursor, REBUILD_PAGE).await;
                    let last = page.as_ref().ok().and_then(|p| p.last().map(|e| e.cursor));
                    let full = page.as_ref().is_ok_and(|p| p.len() as i64 == REBUILD_PAGE);
                    if pages.send(page).await.is_err() || !full {
                        return;
                    }
                    cursor = last.expect("a full page has a last event");
                }
            }
        });
        // …and a writer task a page behind it: reading, chaining and writing overlap.
        let (to_write, mut writes) =
            tokio::sync::mpsc::channel::<(Vec<AuditEntry>, Vec<StoredEvent>)>(2);
        let writer = tokio::spawn({
            let (db, shadow) = (self.db.clone(), shadow.to_string());
            async move {
                while let Some((entries, events)) = writes.recv().await {
                    match &db {
                        Database::Postgres(pool) => {
                            copy_entries(pool, &shadow, &entries, &events).await?
                        }
                        Database::Sqlite(pool) => {
                            let mut tx = pool.begin().await?;
                            insert_entries!(&mut *tx, shadow, &entries, &events);
                            tx.commit().await?;
                        }
                    }
                }
                Ok::<_, StoreError>(())
            }
        });
        let mut cursor = Cursor::START;
        let (mut seq, mut prev) = (0_i64, GENESIS.to_string());
        let mut done = 0_u64;
        let mut failed = None;
        while let Some(page) = next.recv().await {
            let events = match page {
                Ok(events) => events,
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            };
            let Some(last) = events.last() else { break };
            cursor = last.cursor;
            let entries = chain(events.iter(), seq, &prev);
            let tail = entries.last().expect("one entry per event");
            (seq, prev) = (tail.seq, tail.hash.clone());
            done += events.len() as u64;
            if to_write.send((entries, events)).await.is_err() {
                break; // the writer failed: its error follows
            }
            progress(RebuildProgress { done, total });
        }
        // Both tasks are joined before anything is returned: the shadow may be dropped on
        // error only once nothing writes into it.
        drop(to_write);
        drop(next);
        let joined = |e: tokio::task::JoinError| StoreError::Downstream(format!("rebuild: {e}"));
        let written = writer.await.map_err(joined).and_then(|w| w);
        reader.await.map_err(joined)?;
        if let Some(error) = failed {
            return Err(error);
        }
        written?;
        if let Database::Postgres(pool) = &self.db {
            // Each index on a connection of its own, at once.
            let statements = index_statements(shadow, generation);
            futures::future::try_join_all(
                statements
                    .iter()
                    .map(|statement| sqlx::query(statement).execute(pool)),
            )
            .await?;
        }
        // Every replayed event has its entry, and nothing else is there.
        let rows: i64 = on_pool!(&self.db, |pool| sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {shadow}"
        ))
        .fetch_one(pool)
        .await)?;
        if rows != seq {
            return Err(StoreError::Corrupt(format!(
                "the rebuilt log holds {rows} entries for {seq} events"
            )));
        }
        // The swap: the live log waits on the checkpoint lock meanwhile. On Postgres the
        // renames wait for readers of the live table; rather than queue everyone behind
        // them for long, give up after a while and try again.
        let mut attempt = 0;
        let caught_up = loop {
            attempt += 1;
            // An async block: `?` inside ends this attempt, not the rebuild.
            let swapped: Result<(i64, String, u64), StoreError> =
                on_pool!(&self.db, |pool| async {
                    let mut tx = pool.begin().await?;
                    if matches!(self.db, Database::Postgres(_)) {
                        sqlx::query("SET LOCAL lock_timeout = '5s'")
                            .execute(&mut *tx)
                            .await?;
                    }
                    lock_checkpoint!(&mut *tx);
                    let (mut c, mut q, mut h, mut n) = (cursor, seq, prev.clone(), 0_u64);
                    loop {
                        let events = read_after_in!(self.db, &mut *tx, c, REBUILD_PAGE);
                        let Some(last) = events.last() else { break };
                        c = last.cursor;
                        let entries = chain(events.iter(), q, &h);
                        let tail = entries.last().expect("one entry per event");
                        (q, h) = (tail.seq, tail.hash.clone());
                        insert_entries!(&mut *tx, shadow, &entries, &events);
                        n += events.len() as u64;
                    }
                    // Counted before the lock; here only its end (a primary-key lookup).
                    let highest: Option<i64> =
                        sqlx::query_scalar(&format!("SELECT max(seq) FROM {shadow}"))
                            .fetch_one(&mut *tx)
                            .await?;
                    if highest.unwrap_or(0) != q {
                        return Err(StoreError::Corrupt(format!(
                            "the rebuilt log ends at {highest:?}, expected {q}"
                        )));
                    }
                    crate::store::swap_in!(&mut *tx, "audit_log", shadow);
                    save_checkpoint!(&mut *tx, c, q, &h);
                    tx.commit().await?;
                    Ok((q, h, n))
                }
                .await);
            match swapped {
                Ok((q, h, n)) => {
                    (seq, prev) = (q, h);
                    break n;
                }
                Err(StoreError::Database(error)) if attempt < 5 && is_lock_timeout(&error) => {
                    tracing::warn!(attempt, "the audit log is busy; retrying the swap");
                }
                Err(error) => return Err(error),
            }
        };
        done += caught_up;
        self.appended.send_modify(|h| *h = (*h).max(seq));
        progress(RebuildProgress { done, total });
        Ok(Rebuilt {
            events: done,
            head: (seq > 0).then_some(Head { seq, hash: prev }),
            caught_up_at_swap: caught_up,
        })
    }
}

/// Postgres's "lock not available" (a `lock_timeout` ran out).
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

/// Writes `entries` into `table` with one `COPY` (text format): several times faster than
/// inserts for a rebuild's bulk.
async fn copy_entries(
    pool: &sqlx::PgPool,
    table: &str,
    entries: &[AuditEntry],
    events: &[StoredEvent],
) -> Result<(), StoreError> {
    use sqlx::postgres::PgPoolCopyExt;
    let mut data = String::with_capacity(entries.len() * 600);
    for (entry, event) in entries.iter().zip(events) {
        let texts = [
            entry.seq.to_string(),
            entry.position.to_string(),
            event.cursor.xid.to_string(),
        ];
        for text in &texts {
            data.push_str(text);
            data.push('\t');
        }
        for text in entry.text_fields() {
            copy_field(&mut data, text);
            data.push('\t');
        }
        data.push_str(&entry.sequence.to_string());
        data.push('\t');
        copy_field(&mut data, Some(&entry.version));
        data.push('\t');
        copy_field(&mut data, Some(&entry.details_text()));
        data.push('\t');
        copy_field(&mut data, Some(&entry.prev_hash));
        data.push('\t');
        copy_field(&mut data, Some(&entry.hash));
        data.push('\n');
    }
    let mut copy = pool
        .copy_in_raw(&format!("COPY {table} ({COLUMNS}) FROM STDIN"))
        .await?;
    copy.send(data.as_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// One field of `COPY … FROM STDIN` text format: `\N` for null, backslash escapes for
/// the characters that delimit.
fn copy_field(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The log's indexes, named by generation (index names are global; a rebuild's new table
/// must not collide with the live one's).
fn index_statements(table: &str, generation: i64) -> Vec<String> {
    [
        ("actor", "actor, seq"),
        ("resource", "resource_type, resource_id, seq"),
        ("action", "action, seq"),
        ("time", "recorded_at"),
    ]
    .iter()
    .map(|(name, columns)| {
        format!("CREATE INDEX audit_log_by_{name}_{generation} ON {table} ({columns})")
    })
    .collect()
}
