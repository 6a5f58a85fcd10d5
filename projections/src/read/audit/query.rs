//! Reading the log: its head, filtered pages, stretches of the chain, single entries.

use serde_json::Value;
use sqlx::Row;

use super::entry::{AuditEntry, Head};
use super::live::COLUMNS;
use super::rebuild::REBUILD_PAGE;
use super::{AuditLog, NAME};
use crate::on_pool;
use crate::store::StoreError;

/// Filters of a query of the log. Times are RFC 3339 in UTC as the log stores them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only this principal.
    pub actor: Option<String>,
    /// Only this action (event type).
    pub action: Option<String>,
    /// Only this resource type.
    pub resource_type: Option<String>,
    /// Only this resource id.
    pub resource_id: Option<String>,
    /// At or after this time.
    pub from: Option<String>,
    /// Before this time.
    pub to: Option<String>,
    /// At or before this entry.
    pub max_seq: Option<i64>,
}

impl AuditFilter {
    /// Does it select by who, what or which resource (not only by time)? Then what it
    /// selects is not one unbroken stretch of the chain.
    pub fn is_selective(&self) -> bool {
        self.actor.is_some()
            || self.action.is_some()
            || self.resource_type.is_some()
            || self.resource_id.is_some()
    }
}

impl AuditLog {
    /// The chain's last entry.
    pub async fn head(&self) -> Result<Option<Head>, StoreError> {
        let row: Option<(i64, String)> = on_pool!(&self.db, |pool| sqlx::query_as(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        )
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(|(seq, hash)| Head { seq, hash }))
    }

    /// Up to `limit` entries matching `filter` after entry `after`, in chain order.
    pub async fn query(
        &self,
        filter: &AuditFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conditions = vec!["seq > $1".to_string()];
        let mut binds: Vec<&str> = Vec::new();
        let fields = [
            ("actor = ", &filter.actor),
            ("action = ", &filter.action),
            ("resource_type = ", &filter.resource_type),
            ("resource_id = ", &filter.resource_id),
            ("recorded_at >= ", &filter.from),
            ("recorded_at < ", &filter.to),
        ];
        for (condition, value) in fields {
            if let Some(value) = value {
                binds.push(value);
                conditions.push(format!("{condition}${}", binds.len() + 2));
            }
        }
        // A number, not user text: inlined.
        if let Some(max) = filter.max_seq {
            conditions.push(format!("seq <= {max}"));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE {} ORDER BY seq LIMIT $2",
            conditions.join(" AND ")
        );
        on_pool!(&self.db, |pool| {
            let mut query = sqlx::query(&sql).bind(after).bind(limit);
            for value in binds {
                query = query.bind(value);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter().map(|row| read_entry!(row)).collect()
        })
    }

    /// The chain's head as the writer recorded it with the checkpoint.
    pub async fn recorded_head(&self) -> Result<Option<Head>, StoreError> {
        let row: Option<(i64, String)> = on_pool!(&self.db, |pool| sqlx::query_as(
            "SELECT head_seq, head_hash FROM projection_checkpoints WHERE projection = $1"
        )
        .bind(NAME)
        .fetch_optional(pool)
        .await)?;
        Ok(row
            .filter(|(seq, _)| *seq > 0)
            .map(|(seq, hash)| Head { seq, hash }))
    }

    /// The unbroken stretch of the chain from the first entry at or after `from` to the
    /// last before `to`: entries are in commit order and times are taken when commands
    /// are accepted, so a time range of the chain may hold a few entries just outside it
    /// at its ends, and holds every entry in between. `None` if the range is empty.
    pub async fn stretch(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        // Only the bounds given: no sentinel strings, whose order depends on the collation.
        let mut conditions = vec!["true".to_string()];
        let mut bounds: Vec<&str> = Vec::new();
        for (condition, value) in [("recorded_at >= ", from), ("recorded_at < ", to)] {
            if let Some(value) = value {
                bounds.push(value);
                conditions.push(format!("{condition}${}", bounds.len()));
            }
        }
        let sql = format!(
            "SELECT min(seq), max(seq) FROM audit_log WHERE {}",
            conditions.join(" AND ")
        );
        let row: (Option<i64>, Option<i64>) = on_pool!(&self.db, |pool| {
            let mut query = sqlx::query_as(&sql);
            for value in &bounds {
                query = query.bind(*value);
            }
            query.fetch_one(pool).await
        })?;
        Ok(match row {
            (Some(first), Some(last)) => Some((first, last)),
            _ => None,
        })
    }

    /// Up to a page of entries after `after`, up to and including `to`, in chain order.
    pub(super) async fn page_after(
        &self,
        after: i64,
        to: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
        );
        on_pool!(&self.db, |pool| {
            let rows = sqlx::query(&sql)
                .bind(after)
                .bind(to)
                .bind(REBUILD_PAGE)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| read_entry!(row))
                .collect::<Result<Vec<_>, StoreError>>()
        })
    }

    /// The entry at `seq`, if the log holds it.
    pub async fn entry(&self, seq: i64) -> Result<Option<AuditEntry>, StoreError> {
        Ok(self
            .query(&AuditFilter::default(), seq - 1, 1)
            .await?
            .into_iter()
            .find(|e| e.seq == seq))
    }
}

/// Reads an [`AuditEntry`] from a row of either backend.
macro_rules! read_entry {
    ($row:expr) => {{
        let details: String = $row.try_get("details")?;
        let seq: i64 = $row.try_get("seq")?;
        Ok::<_, StoreError>(AuditEntry {
            seq,
            position: $row.try_get("position")?,
            time: $row.try_get("recorded_at")?,
            actor: $row.try_get("actor")?,
            role: $row.try_get("role")?,
            token_id: $row.try_get("token_id")?,
            request_id: $row.try_get("request_id")?,
            client_ip: $row.try_get("client_ip")?,
            action: $row.try_get("action")?,
            resource_type: $row.try_get("resource_type")?,
            resource_id: $row.try_get("resource_id")?,
            sequence: $row.try_get("sequence")?,
            version: $row.try_get("version")?,
            details: serde_json::from_str::<Value>(&details)
                .map_err(|e| StoreError::Corrupt(format!("audit entry {seq} details: {e}")))?,
            prev_hash: $row.try_get("prev_hash")?,
            hash: $row.try_get("hash")?,
            details_text: details,
        })
    }};
}
pub(super) use read_entry;
