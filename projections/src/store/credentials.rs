//! Password hashes, beside the event store but outside it: never in an event, never on
//! the bus. Keyed by the user's stable id, written before the user's first event (see
//! migration 0006). And the ids of identity webhook messages already applied.

use super::{Database, StoreError};
use crate::on_pool;

impl Database {
    /// Stores (or replaces) the password hash of the user with stable id `user_id`.
    pub async fn set_password_hash(
        &self,
        user_id: &str,
        username: &str,
        hash: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO passwords (user_id, username, password_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash"
        )
        .bind(user_id)
        .bind(username)
        .bind(hash)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// Removes the hash written for `user_id` (a registration that did not happen).
    pub async fn delete_password_hash(&self, user_id: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "DELETE FROM passwords WHERE user_id = $1"
        )
        .bind(user_id)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// The password hash of the user with stable id `user_id`, if it has one.
    pub async fn password_hash(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let hash = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT password_hash FROM passwords WHERE user_id = $1"
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        Ok(hash)
    }

    /// Has the identity webhook message `id` been applied?
    pub async fn webhook_seen(&self, id: &str) -> Result<bool, StoreError> {
        let seen: Option<String> = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT id FROM webhook_messages WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?;
        Ok(seen.is_some())
    }

    /// Records that the identity webhook message `id` has been applied.
    pub async fn webhook_applied(&self, id: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO webhook_messages (id) VALUES ($1) ON CONFLICT (id) DO NOTHING"
        )
        .bind(id)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// The user the identity provider's user `external_id` is, if a message made or
    /// changed it.
    pub async fn identity_user(&self, external_id: &str) -> Result<Option<String>, StoreError> {
        let username = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT username FROM identity_users WHERE external_id = $1"
        )
        .bind(external_id)
        .fetch_optional(pool)
        .await)?;
        Ok(username)
    }

    /// Records that the identity provider's user `external_id` is `username` (the first
    /// name recorded stays).
    pub async fn set_identity_user(
        &self,
        external_id: &str,
        username: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO identity_users (external_id, username) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING"
        )
        .bind(external_id)
        .bind(username)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// The identity provider's event time (ms) last applied to `username`.
    pub async fn identity_event_ms(&self, username: &str) -> Result<Option<i64>, StoreError> {
        let ms = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT last_event_ms FROM identity_sync WHERE username = $1"
        )
        .bind(username)
        .fetch_optional(pool)
        .await)?;
        Ok(ms)
    }

    /// Records that the provider's event of time `ms` was applied to `username` (keeping
    /// the later of it and what was recorded).
    pub async fn set_identity_event_ms(&self, username: &str, ms: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO identity_sync (username, last_event_ms) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET last_event_ms = excluded.last_event_ms \
             WHERE excluded.last_event_ms > identity_sync.last_event_ms"
        )
        .bind(username)
        .bind(ms)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }
}
