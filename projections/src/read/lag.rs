//! How far behind the store each read model is: the events past its checkpoint that it
//! follows. `/health` and `/metrics` report it; a lag that does not shrink is a stuck
//! projection.

use serde::Serialize;

use crate::store::{checkpoint, Cursor, Database, StoreError};

/// Lags are counted among at most this many events past a checkpoint (a bounded read,
/// not a scan of the whole backlog): a lag this large is reported as this large.
pub const LAG_CAP: i64 = 100_000;

/// Every read model: its name, its checkpoint's name, and the aggregate type it follows
/// (`None`: every event).
pub const PROJECTIONS: [(&str, &str, Option<&str>); 3] = [
    (crate::audit::NAME, crate::audit::NAME, None),
    (crate::runs::NAME, crate::runs::NAME, Some("run")),
    (crate::users::NAME, crate::users::CHECKPOINT, Some("user")),
];

/// One read model's lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lag {
    /// The read model.
    pub projection: &'static str,
    /// Events it follows that are stored past its checkpoint (at most [`LAG_CAP`]).
    pub lag: i64,
    /// Its checkpoint.
    pub checkpoint: Cursor,
}

/// The lag of every read model.
pub async fn lags(db: &Database) -> Result<Vec<Lag>, StoreError> {
    let mut lags = Vec::with_capacity(PROJECTIONS.len());
    for (projection, name, aggregate_type) in PROJECTIONS {
        let checkpoint = checkpoint(db, name).await?;
        let lag = db.count_after(checkpoint, aggregate_type, LAG_CAP).await?;
        lags.push(Lag {
            projection,
            lag,
            checkpoint,
        });
    }
    Ok(lags)
}

/// Events stored past relay `name`'s saved checkpoint (at most [`LAG_CAP`]): what the bus
/// may not have yet. The relay saves its checkpoint every few hundred milliseconds, so a
/// busy relay shows a small lag that comes and goes.
pub async fn relay_lag(db: &Database, name: &str) -> Result<i64, StoreError> {
    let cursor = crate::relay::saved_cursor(db, name).await?;
    db.count_after(cursor, None, LAG_CAP).await
}
