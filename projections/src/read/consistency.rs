//! Reading your own writes.
//!
//! A command's answer carries the global position its events committed at
//! ([`POSITION_HEADER`]). A read by id needs nothing more: it answers from the view when the
//! view has the thing, otherwise from the store. A list or a query sent with that position
//! ([`AFTER_HEADER`]) waits, bounded, until its view has applied the event at that position,
//! and says whether it got there ([`CONSISTENCY_HEADER`]).

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::on_pool;
use crate::store::{checkpoint, Cursor, Database, StoreError};

/// Response header: the global position a command's events committed at.
pub const POSITION_HEADER: &str = "aurora-position";
/// Request header: read what was written up to this global position.
pub const AFTER_HEADER: &str = "aurora-after-position";
/// Response header of a read sent with [`AFTER_HEADER`]: `caught-up` (the view had
/// applied that position) or `stale` (it had not, within the bound: what it had).
pub const CONSISTENCY_HEADER: &str = "aurora-consistency";

/// How often a waiting read looks at the checkpoint when nothing on this replica woke it
/// (another replica may have moved it).
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// The cursor of the event stored at global `position`, if there is one.
pub async fn cursor_of(db: &Database, position: i64) -> Result<Option<Cursor>, StoreError> {
    let sql = match db {
        Database::Postgres(_) => "SELECT xid::text::bigint FROM events WHERE position = $1",
        Database::Sqlite(_) => "SELECT 0 FROM events WHERE position = $1",
    };
    let xid: Option<i64> = on_pool!(db, |pool| sqlx::query_scalar(sql)
        .bind(position)
        .fetch_optional(pool)
        .await)?;
    Ok(xid.map(|xid| Cursor { xid, position }))
}

/// The highest global position stored (0 for an empty store).
async fn highest_position(db: &Database) -> Result<i64, StoreError> {
    let highest: Option<i64> = on_pool!(db, |pool| sqlx::query_scalar(
        "SELECT max(position) FROM events"
    )
    .fetch_one(pool)
    .await)?;
    Ok(highest.unwrap_or(0))
}

/// Waits until read model checkpoint `name` has reached global `position`, at most `bound`;
/// whether it did. `changes` wakes it when this replica applies something. A position past
/// every stored event is not waited for (`false` at once); one no event has below that (a
/// gap a rolled-back transaction left) counts as reached once the checkpoint's own position
/// is past it.
pub async fn wait_for_position(
    db: &Database,
    name: &str,
    position: i64,
    bound: Duration,
    mut changes: watch::Receiver<u64>,
) -> Result<bool, StoreError> {
    let target = cursor_of(db, position).await?;
    if target.is_none() && position > highest_position(db).await? {
        // Never given out: nothing to wait for (and no way to make a read wait for nothing).
        return Ok(false);
    }
    let reached = |at: Cursor| match target {
        Some(target) => at >= target,
        None => at.position >= position,
    };
    let deadline = Instant::now() + bound;
    loop {
        changes.borrow_and_update();
        if reached(checkpoint(db, name).await?) {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(left.min(LOOK_EVERY)) => {}
        }
    }
}
