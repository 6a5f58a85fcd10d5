//! The users read model: one row per user, for admins listing users.
//!
//! Each row is refreshed from the store rather than patched by the event at hand: a user
//! event on the bus only says "this user changed", and the row is rewritten from the
//! aggregate's committed history if that history is newer than the row. So redelivery,
//! reordering and lost messages cannot corrupt it, and a rebuild is a refresh of every
//! user.

use std::sync::Arc;

use aurora_domain::user::User;
use chrono::SecondsFormat;
use cqrs_es::Aggregate;
use serde::Serialize;
use sqlx::Row;
use tokio::sync::watch;

use super::envelope::Envelope;
use super::projection::{Interest, Projection};
use crate::on_pool;
use crate::replay::Fold;
use crate::store::{Database, StoreError};

/// The projection's name.
pub const NAME: &str = "users";
/// Its checkpoint's name (kept from when it was a durable consumer's).
pub const CHECKPOINT: &str = "users-view";

/// A user as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Stable id (UUIDv7).
    pub id: String,
    /// The username (the aggregate's id).
    pub username: String,
    /// `admin`, `user` or `viewer`.
    #[schema(value_type = aurora_domain::user::Role)]
    pub role: String,
    /// `free`, `pro` or `enterprise`.
    #[schema(value_type = aurora_domain::user::Tier)]
    pub tier: String,
    /// Disabled by an admin.
    pub disabled: bool,
    /// Deleted by the identity provider.
    pub deleted: bool,
    /// When registered (RFC 3339).
    pub created_at: String,
    /// When last changed (RFC 3339).
    pub updated_at: String,
    /// Events applied: the aggregate's sequence.
    pub version: i64,
}

const COLUMNS: &str =
    "user_id, username, role, tier, disabled, deleted, created_at, updated_at, last_sequence";

/// The users read model.
pub struct UsersProjection {
    db: Database,
    refreshed: watch::Sender<u64>,
    catching_up: tokio::sync::Mutex<()>,
}

impl UsersProjection {
    /// The projection stored in `db`.
    pub fn new(db: Database) -> Self {
        Self {
            db,
            refreshed: watch::channel(0).0,
            catching_up: tokio::sync::Mutex::new(()),
        }
    }

    /// Changes each time a row is refreshed: wait on it instead of polling.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.refreshed.subscribe()
    }

    /// Rewrites the row of `username` from its committed history, unless the row is
    /// already as new. Returns the row as it now stands.
    pub async fn refresh(&self, username: &str) -> Result<Option<UserView>, StoreError> {
        let history = self
            .db
            .read_aggregate_after(User::TYPE, username, 0)
            .await?;
        let Some(view) = Self::fold(username, &history)? else {
            return Ok(None);
        };
        on_pool!(&self.db, |pool| sqlx::query(&format!(
            "INSERT INTO users_view ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (username) DO UPDATE SET role = excluded.role, tier = excluded.tier, \
                 disabled = excluded.disabled, deleted = excluded.deleted, \
                 updated_at = excluded.updated_at, last_sequence = excluded.last_sequence \
             WHERE excluded.last_sequence > users_view.last_sequence"
        ))
        .bind(&view.id)
        .bind(&view.username)
        .bind(&view.role)
        .bind(&view.tier)
        .bind(view.disabled)
        .bind(view.deleted)
        .bind(&view.created_at)
        .bind(&view.updated_at)
        .bind(view.version)
        .execute(pool)
        .await
        .map(drop))?;
        self.refreshed.send_modify(|n| *n += 1);
        Ok(Some(view))
    }

    /// The row of `username` as `history` (its events in order, from the first) makes
    /// it, upcasting old event versions as loading the aggregate does.
    pub fn fold(
        username: &str,
        history: &[crate::StoredEvent],
    ) -> Result<Option<UserView>, StoreError> {
        let (Some(first), Some(last)) = (history.first(), history.last()) else {
            return Ok(None);
        };
        let mut fold = Fold::<User>::default();
        for stored in history {
            fold.apply(stored)
                .map_err(|e| StoreError::Corrupt(format!("user {username}: {e}")))?;
        }
        let user = fold.state();
        let (Some(id), Some(role), Some(tier)) = (user.user_id(), user.role(), user.tier()) else {
            return Ok(None);
        };
        let time =
            |e: &crate::StoredEvent| e.metadata.time.to_rfc3339_opts(SecondsFormat::Micros, true);
        Ok(Some(UserView {
            id: id.to_string(),
            username: username.to_string(),
            role: role.as_str().to_string(),
            tier: tier.as_str().to_string(),
            disabled: user.is_disabled(),
            deleted: user.is_deleted(),
            created_at: time(first),
            updated_at: time(last),
            version: last.sequence,
        }))
    }

    /// Up to `limit` users in username order, after `after` if given.
    pub async fn list(&self, after: Option<&str>, limit: i64) -> Result<Vec<UserView>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM users_view WHERE username > $1 ORDER BY username LIMIT $2"
        );
        self.fetch(&sql, after.unwrap_or(""), limit).await
    }

    /// Usernames of users who are disabled or deleted.
    pub async fn inactive(&self) -> Result<Vec<String>, StoreError> {
        let names: Vec<String> = on_pool!(&self.db, |pool| sqlx::query_scalar(
            "SELECT username FROM users_view WHERE disabled OR deleted ORDER BY username"
        )
        .fetch_all(pool)
        .await)?;
        Ok(names)
    }

    /// The user with stable id `id`.
    pub async fn by_id(&self, id: &str) -> Result<Option<UserView>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users_view WHERE user_id = $1 LIMIT $2");
        Ok(self.fetch(&sql, id, 1).await?.into_iter().next())
    }

    async fn fetch(&self, sql: &str, key: &str, limit: i64) -> Result<Vec<UserView>, StoreError> {
        on_pool!(&self.db, |pool| {
            let rows = sqlx::query(sql)
                .bind(key)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(UserView {
                        id: row.try_get("user_id")?,
                        username: row.try_get("username")?,
                        role: row.try_get("role")?,
                        tier: row.try_get("tier")?,
                        disabled: row.try_get("disabled")?,
                        deleted: row.try_get("deleted")?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                        version: row.try_get("last_sequence")?,
                    })
                })
                .collect()
        })
    }

    /// Refreshes every user in the store; returns how many.
    pub async fn rebuild(&self) -> Result<u64, StoreError> {
        let names: Vec<String> = on_pool!(&self.db, |pool| sqlx::query_scalar(
            "SELECT aggregate_id FROM events WHERE aggregate_type = $1 AND sequence = 1"
        )
        .bind(User::TYPE)
        .fetch_all(pool)
        .await)?;
        for name in &names {
            self.refresh(name).await?;
        }
        Ok(names.len() as u64)
    }

    /// Refreshes the users named in `events` and moves the checkpoint past them.
    async fn refresh_all(&self, events: &[Arc<Envelope>]) -> Result<(), StoreError> {
        let mut names: Vec<&str> = events
            .iter()
            .filter(|e| e.event.aggregate_type == User::TYPE)
            .map(|e| e.event.aggregate_id.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            self.refresh(name).await?;
        }
        // Where the view stands, for its lag (every user event up to here is applied).
        if let Some(highest) = events.iter().map(|e| e.cursor()).max() {
            on_pool!(&self.db, |pool| sqlx::query(
                crate::store::ADVANCE_CHECKPOINT
            )
            .bind(CHECKPOINT)
            .bind(highest.xid)
            .bind(highest.position)
            .execute(pool)
            .await
            .map(drop))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Projection for UsersProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Every event: it refreshes only the users named, but its checkpoint follows the whole
    /// log, so that a catch-up reads only what came since the last batch.
    fn interest(&self) -> Interest {
        Interest::ALL
    }

    /// Refreshes the users with events past the checkpoint (one catch-up at a time: callers
    /// that come while one runs wait for it, then find little left).
    async fn catch_up(&self) -> Result<(), StoreError> {
        let _one = self.catching_up.lock().await;
        let mut cursor = crate::store::checkpoint(&self.db, CHECKPOINT).await?;
        loop {
            let page = self.db.read_after(cursor, 1000).await?;
            let Some(last) = page.last() else { break };
            cursor = last.cursor;
            let full = page.len() == 1000;
            self.refresh_all(&super::envelope::from_store(page)).await?;
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Refreshes the users a batch names, if the batch continues the view (every event
    /// stored between the checkpoint and its last is in it); else catches up from the
    /// store. So the checkpoint only ever moves past events the view has taken in.
    async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        let checkpoint = crate::store::checkpoint(&self.db, CHECKPOINT).await?;
        let mut events: Vec<&Arc<Envelope>> =
            batch.iter().filter(|e| e.cursor() > checkpoint).collect();
        events.sort_by_key(|e| e.cursor());
        events.dedup_by_key(|e| e.cursor());
        let Some(last) = events.last().map(|e| e.cursor()) else {
            return Ok(());
        };
        let between = on_pool!(&self.db, |pool| {
            let mut conn = pool.acquire().await?;
            crate::store::log::count_between_in!(self.db, &mut *conn, checkpoint, last)
        });
        if between == events.len() as i64 {
            let events: Vec<Arc<Envelope>> = events.into_iter().cloned().collect();
            self.refresh_all(&events).await
        } else {
            self.catch_up().await
        }
    }
}
