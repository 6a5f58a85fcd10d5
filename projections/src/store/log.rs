//! The global log: every stored event in a gap-safe global order.
//!
//! On Postgres a reader only sees events whose transaction is older than every transaction
//! still running (`xid < pg_snapshot_xmin(pg_current_snapshot())`), in `(xid, position)`
//! order, and checkpoints that pair: an event whose transaction commits late cannot be
//! skipped, because the fence holds every later event back until it has committed.
//! SQLite serialises writers, so position order is commit order; its `xid` is always 0.

use aurora_domain::EventMetadata;
use aurora_nats::CloudEvent;

use super::{Database, StoreError};
use crate::on_pool;

/// A point in the global log: everything at or before it has been read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Cursor {
    /// Transaction id of the commit (Postgres `xid8`; 0 on SQLite). Compared first.
    pub xid: i64,
    /// Global position of the event.
    pub position: i64,
}

impl Cursor {
    /// Before the first event.
    pub const START: Cursor = Cursor {
        xid: 0,
        position: 0,
    };
}

/// One row of the event store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Where it sits in the global log.
    pub cursor: Cursor,
    /// e.g. `run`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// Sequence within the aggregate, from 1.
    pub sequence: i64,
    /// e.g. `RunRequested`.
    pub event_type: String,
    /// Schema version of the payload.
    pub event_version: String,
    /// The serialized event.
    pub payload: serde_json::Value,
    /// Who, which request, when.
    pub metadata: EventMetadata,
}

impl StoredEvent {
    /// The event as it travels on the bus.
    pub fn to_cloud_event(&self) -> CloudEvent {
        let m = &self.metadata;
        CloudEvent {
            specversion: "1.0".to_string(),
            id: CloudEvent::event_id(&self.aggregate_type, &self.aggregate_id, self.sequence),
            source: format!("/aurora/{}", self.aggregate_type),
            event_type: format!(
                "aurora.{}.{}.v{}",
                self.aggregate_type, self.event_type, self.event_version
            ),
            subject: format!("{}/{}", self.aggregate_type, self.aggregate_id),
            time: m.time,
            datacontenttype: "application/json".to_string(),
            data: self.payload.clone(),
            aggregatetype: self.aggregate_type.clone(),
            aggregateid: self.aggregate_id.clone(),
            sequence: self.sequence,
            position: self.cursor.position,
            xid: self.cursor.xid,
            eventname: self.event_type.clone(),
            eventversion: self.event_version.clone(),
            principal: m.principal.clone(),
            tokenid: m.token_id.clone(),
            requestid: m.request_id.clone(),
            clientip: m.client_ip.clone(),
            traceparent: m.traceparent.clone(),
            principalrole: m.role.clone(),
        }
    }
}

const PG_COLUMNS: &str = "xid::text::bigint AS xid, position, aggregate_type, aggregate_id, \
    sequence, event_type, event_version, payload::text AS payload, metadata::text AS metadata";
const SQLITE_COLUMNS: &str = "0 AS xid, position, aggregate_type, aggregate_id, \
    sequence, event_type, event_version, payload, metadata";

/// A row as read, before its JSON columns are parsed.
#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    xid: i64,
    position: i64,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

impl Row {
    pub(crate) fn decode(self) -> Result<StoredEvent, StoreError> {
        let position = self.position;
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("event at position {position}: {what}: {e}"))
        };
        let payload = serde_json::from_str(&self.payload).map_err(|e| corrupt("payload", e))?;
        let metadata =
            EventMetadata::from_json(&self.metadata).map_err(|e| corrupt("metadata", e))?;
        Ok(StoredEvent {
            cursor: Cursor {
                xid: self.xid,
                position,
            },
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: self.sequence,
            event_type: self.event_type,
            event_version: self.event_version,
            payload,
            metadata,
        })
    }
}

/// [`Database::read_after`] on connection `$conn` (a transaction's, inside `on_pool!`):
/// a writer holding a transaction must not wait for a second connection from the pool
/// that the writers it blocks may hold.
macro_rules! read_after_in {
    ($db:expr, $conn:expr, $cursor:expr, $limit:expr) => {
        sqlx::query_as::<_, $crate::store::log::Row>(&$db.read_after_sql())
            .bind($cursor.xid)
            .bind($cursor.position)
            .bind($limit)
            .fetch_all($conn)
            .await?
            .into_iter()
            .map($crate::store::log::Row::decode)
            .collect::<Result<Vec<_>, $crate::store::StoreError>>()?
    };
}
pub(crate) use read_after_in;

/// [`Database::read_aggregate_after`] on connection `$conn` (see [`read_after_in`]).
macro_rules! read_aggregate_after_in {
    ($db:expr, $conn:expr, $aggregate_type:expr, $aggregate_id:expr, $sequence:expr) => {
        sqlx::query_as::<_, $crate::store::log::Row>(&$db.read_aggregate_sql())
            .bind($aggregate_type)
            .bind($aggregate_id)
            .bind($sequence)
            .fetch_all($conn)
            .await?
            .into_iter()
            .map($crate::store::log::Row::decode)
            .collect::<Result<Vec<_>, $crate::store::StoreError>>()?
    };
}
pub(crate) use read_aggregate_after_in;

macro_rules! fetch_events {
    ($db:expr, $sql:expr, $($bind:expr),*) => {
        on_pool!($db, |pool| sqlx::query_as::<_, Row>($sql)$(.bind($bind))*.fetch_all(pool).await)?
            .into_iter()
            .map(Row::decode)
            .collect::<Result<Vec<_>, StoreError>>()
    };
}

impl Database {
    fn dialect(&self, postgres: String, sqlite: String) -> String {
        match self {
            Database::Postgres(_) => postgres,
            Database::Sqlite(_) => sqlite,
        }
    }

    /// Up to `limit` events after `cursor`, in global order, never past the gap-safe fence.
    pub async fn read_after(
        &self,
        cursor: Cursor,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = self.read_after_sql();
        fetch_events!(self, &sql, cursor.xid, cursor.position, limit)
    }

    /// The query of [`Database::read_after`] (binds: xid, position, limit), for readers
    /// that must run it on a connection they hold (see [`read_after_in`]). The order is
    /// by `events.xid`, qualified: a bare `xid` would name the selected `xid::text::bigint`
    /// and turn every read into a scan and sort of the whole table (295 ms instead of 3 ms
    /// per page at 1M events).
    pub(crate) fn read_after_sql(&self) -> String {
        self.dialect(
            format!(
                "SELECT {PG_COLUMNS} FROM events \
                 WHERE (xid, position) > ($1::bigint::text::xid8, $2) \
                   AND xid < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY events.xid, events.position LIMIT $3"
            ),
            format!(
                "SELECT {SQLITE_COLUMNS} FROM events \
                 WHERE (0, position) > ($1, $2) ORDER BY position LIMIT $3"
            ),
        )
    }

    /// Events of `aggregate_type` named one of `names`, committed after `cursor`, at most
    /// `limit`, in commit order; and the cursor to ask from next. Gap-safe like
    /// [`Database::read_after`], and cheap to repeat: the cursor moves past every event
    /// considered, matching or not, so a poll reads only what was committed since the last.
    pub async fn read_named_after(
        &self,
        aggregate_type: &str,
        names: &[&str],
        cursor: Cursor,
        limit: i64,
    ) -> Result<(Vec<StoredEvent>, Cursor), StoreError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        match self {
            Database::Postgres(pool) => {
                // Every transaction below the horizon has ended: what it stored is visible.
                let horizon: i64 = sqlx::query_scalar(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                )
                .fetch_one(pool)
                .await?;
                let sql = format!(
                    "SELECT {PG_COLUMNS} FROM events \
                     WHERE (xid, position) > ($1::bigint::text::xid8, $2) \
                       AND xid < $3::bigint::text::xid8 \
                       AND aggregate_type = $4 AND event_type = ANY($5) \
                     ORDER BY events.xid, events.position LIMIT $6"
                );
                let events = sqlx::query_as::<_, Row>(&sql)
                    .bind(cursor.xid)
                    .bind(cursor.position)
                    .bind(horizon)
                    .bind(aggregate_type)
                    .bind(&names)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(Row::decode)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let next = match events.last() {
                    Some(last) if events.len() as i64 >= limit => last.cursor,
                    _ => cursor.max(Cursor {
                        xid: horizon,
                        position: 0,
                    }),
                };
                Ok((events, next))
            }
            Database::Sqlite(_) => {
                // One writer: positions are commit order.
                let mut events = Vec::new();
                for name in &names {
                    events.extend(
                        self.read_events_named(aggregate_type, name)
                            .await?
                            .into_iter()
                            .filter(|e| e.cursor > cursor),
                    );
                }
                events.sort_by_key(|e| e.cursor);
                events.truncate(limit.max(0) as usize);
                let next = events.last().map_or(cursor, |e| e.cursor);
                Ok((events, next))
            }
        }
    }

    /// Events of `aggregate_type` named one of `names` after `cursor` that are committed
    /// but beyond the horizon [`Database::read_named_after`] stops at: those a transaction
    /// still open (a replica frozen mid-commit) holds back from cursor readers, though
    /// their own commands were answered. In commit order; no cursor to go on from — a
    /// reader that must know of them now (a revocation) applies them, and reads them again
    /// in order once the horizon passes them. At most `scan` events (of any kind) are
    /// looked at: `None` if more than that are beyond the horizon (a write transaction
    /// left open for long pins it), when the reader cannot vouch for having seen all.
    pub async fn read_named_beyond_horizon(
        &self,
        aggregate_type: &str,
        names: &[&str],
        cursor: Cursor,
        scan: i64,
    ) -> Result<Option<Vec<StoredEvent>>, StoreError> {
        let Database::Postgres(pool) = self else {
            return Ok(Some(Vec::new())); // SQLite: one writer, nothing held back
        };
        let beyond: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM events \
             WHERE (xid, position) > ($1::bigint::text::xid8, $2) \
             ORDER BY xid, position LIMIT $3) AS beyond",
        )
        .bind(cursor.xid)
        .bind(cursor.position)
        .bind(scan + 1)
        .fetch_one(pool)
        .await?;
        if beyond > scan {
            return Ok(None);
        }
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let sql = format!(
            "SELECT {PG_COLUMNS} FROM events \
             WHERE (xid, position) > ($1::bigint::text::xid8, $2) \
               AND aggregate_type = $3 AND event_type = ANY($4) \
             ORDER BY events.xid, events.position"
        );
        sqlx::query_as::<_, Row>(&sql)
            .bind(cursor.xid)
            .bind(cursor.position)
            .bind(aggregate_type)
            .bind(&names)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(Row::decode)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The events of one aggregate after `sequence`, in order (committed ones only).
    pub async fn read_aggregate_after(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = self.read_aggregate_sql();
        fetch_events!(self, &sql, aggregate_type, aggregate_id, sequence)
    }

    /// The query of [`Database::read_aggregate_after`] (binds: type, id, sequence).
    pub(crate) fn read_aggregate_sql(&self) -> String {
        let filter = "WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 \
                      ORDER BY sequence";
        self.dialect(
            format!("SELECT {PG_COLUMNS} FROM events {filter}"),
            format!("SELECT {SQLITE_COLUMNS} FROM events {filter}"),
        )
    }

    /// Up to `limit` events in aggregate order — by type, id, sequence: the primary
    /// key's — after the event `(aggregate_type, aggregate_id, sequence)`.
    pub async fn read_in_aggregate_order(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let filter = "WHERE (aggregate_type, aggregate_id, sequence) > ($1, $2, $3) \
                      ORDER BY aggregate_type, aggregate_id, sequence LIMIT $4";
        let sql = self.dialect(
            format!("SELECT {PG_COLUMNS} FROM events {filter}"),
            format!("SELECT {SQLITE_COLUMNS} FROM events {filter}"),
        );
        fetch_events!(self, &sql, aggregate_type, aggregate_id, sequence, limit)
    }

    /// Every committed event named `event_type` of aggregates of type `aggregate_type`, in
    /// global order. Only for event types with an index of their own (see migrations).
    pub async fn read_events_named(
        &self,
        aggregate_type: &str,
        event_type: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let filter = "WHERE aggregate_type = $1 AND event_type = $2 ORDER BY position";
        let sql = self.dialect(
            format!("SELECT {PG_COLUMNS} FROM events {filter}"),
            format!("SELECT {SQLITE_COLUMNS} FROM events {filter}"),
        );
        fetch_events!(self, &sql, aggregate_type, event_type)
    }

    /// How many events lie at or before `cursor`.
    pub async fn count_through(&self, cursor: Cursor) -> Result<i64, StoreError> {
        let sql = self.dialect(
            "SELECT count(*) FROM events WHERE (xid, position) <= ($1::bigint::text::xid8, $2)"
                .into(),
            "SELECT count(*) FROM events WHERE (0, position) <= ($1, $2)".into(),
        );
        let count: i64 = on_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(cursor.xid)
            .bind(cursor.position)
            .fetch_one(pool)
            .await)?;
        Ok(count)
    }

    /// How many events lie after `cursor` (of `aggregate_type` only, if given) among the
    /// first `cap` after it: a projection's lag, at most `cap` rows read however far
    /// behind it is (a lower bound when it is that far behind).
    pub async fn count_after(
        &self,
        cursor: Cursor,
        aggregate_type: Option<&str>,
        cap: i64,
    ) -> Result<i64, StoreError> {
        let of_type = if aggregate_type.is_some() {
            " WHERE aggregate_type = $4"
        } else {
            ""
        };
        let sql = self.dialect(
            format!(
                "SELECT count(*) FROM (SELECT aggregate_type FROM events \
                 WHERE (xid, position) > ($1::bigint::text::xid8, $2) \
                 ORDER BY xid, position LIMIT $3) AS scan{of_type}"
            ),
            format!(
                "SELECT count(*) FROM (SELECT aggregate_type FROM events \
                 WHERE (0, position) > ($1, $2) ORDER BY position LIMIT $3) AS scan{of_type}"
            ),
        );
        let count: i64 = on_pool!(self, |pool| {
            let mut query = sqlx::query_scalar(&sql)
                .bind(cursor.xid)
                .bind(cursor.position)
                .bind(cap);
            if let Some(aggregate_type) = aggregate_type {
                query = query.bind(aggregate_type);
            }
            query.fetch_one(pool).await
        })?;
        Ok(count)
    }
}

/// How many stored events lie in `($after, $through]` (cursors), counted on connection
/// `$conn` inside `on_pool!`: a read model whose batch holds that many events past its
/// checkpoint continues it, with nothing left out (the relay publishes only below the
/// gap-safe fence, so nothing in that range can still commit). An index-only count.
macro_rules! count_between_in {
    ($db:expr, $conn:expr, $after:expr, $through:expr) => {{
        let (after, through): ($crate::store::Cursor, $crate::store::Cursor) = ($after, $through);
        let count: i64 = match $db {
            $crate::store::Database::Postgres(_) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM events \
                     WHERE (xid, position) > ($1::bigint::text::xid8, $2) \
                       AND (xid, position) <= ($3::bigint::text::xid8, $4)",
                )
                .bind(after.xid)
                .bind(after.position)
                .bind(through.xid)
                .bind(through.position)
                .fetch_one($conn)
                .await?
            }
            // No xid on SQLite (0 everywhere): position alone, which its index serves.
            $crate::store::Database::Sqlite(_) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM events WHERE position > $1 AND position <= $2",
                )
                .bind(after.position)
                .bind(through.position)
                .fetch_one($conn)
                .await?
            }
        };
        count
    }};
}
pub(crate) use count_between_in;

/// The checkpoint of read model `name` (the start if it has none).
pub async fn checkpoint(db: &Database, name: &str) -> Result<Cursor, StoreError> {
    let row: Option<(i64, i64)> = on_pool!(db, |pool| sqlx::query_as(
        "SELECT xid, position FROM projection_checkpoints WHERE projection = $1"
    )
    .bind(name)
    .fetch_optional(pool)
    .await)?;
    Ok(row
        .map(|(xid, position)| Cursor { xid, position })
        .unwrap_or_default())
}
