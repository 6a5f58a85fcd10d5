//! The revocation set: revocation ids of tokens that must be refused, on every replica.
//!
//! Kept current from the event store and the bus: at start a replica first tails
//! `TokenRevoked` events on the bus, then loads every revocation from the store, so a
//! revocation committed in between is seen by one or the other (or both: applying is
//! idempotent). If the tail breaks, the replica tails again and reloads. The replica that
//! commits a revocation also applies it at once, before answering.
//!
//! A revoked token is forgotten once it has expired: it would be refused anyway.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aurora_domain::user::{User, UserEvent};
use aurora_nats::bus::Tail;
use aurora_nats::{CloudEvent, EventBus};
use aurora_projections::Database;
use cqrs_es::Aggregate;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// How often expired revocations are forgotten.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// Revocation ids (raw bytes) and when their tokens expire.
#[derive(Debug, Default)]
pub struct Revocations {
    revoked: RwLock<HashMap<Vec<u8>, SystemTime>>,
}

impl Revocations {
    /// An empty set.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Refuses the token whose block has revocation id `revocation_id` (hex) until
    /// `expires_at`. Ignores ids that are not hex.
    pub fn revoke(&self, revocation_id: &str, expires_at: SystemTime) {
        if let Ok(id) = hex::decode(revocation_id) {
            self.write().insert(id, expires_at);
        }
    }

    /// Applies the revocations among `events` (other events are ignored); returns how many.
    pub fn apply(&self, events: &[UserEvent]) -> usize {
        let mut applied = 0;
        for event in events {
            if let UserEvent::TokenRevoked {
                revocation_id,
                expires_at,
                ..
            } = event
            {
                self.revoke(revocation_id, (*expires_at).into());
                applied += 1;
            }
        }
        applied
    }

    /// Is any of a token's block revocation ids revoked?
    pub fn is_revoked(&self, revocation_ids: &[Vec<u8>]) -> bool {
        let revoked = self.read();
        !revoked.is_empty() && revocation_ids.iter().any(|id| revoked.contains_key(id))
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Holds none?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets revocations of tokens expired by `now`.
    pub fn prune(&self, now: SystemTime) {
        self.write().retain(|_, expires_at| *expires_at > now);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Vec<u8>, SystemTime>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.revoked.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Vec<u8>, SystemTime>> {
        self.revoked.write().unwrap_or_else(|e| e.into_inner())
    }

    fn apply_cloud_event(&self, event: &CloudEvent) {
        match serde_json::from_value::<UserEvent>(event.data.clone()) {
            Ok(event) => {
                self.apply(&[event]);
            }
            Err(error) => tracing::error!(id = %event.id, %error, "undecodable user event"),
        }
    }

    /// Tails revocations on `bus`, then loads every revocation from `db`. Returns the tail
    /// to hand to [`Revocations::follow`].
    pub async fn load(
        &self,
        db: &Database,
        bus: &dyn EventBus,
    ) -> Result<Tail, Box<dyn std::error::Error + Send + Sync>> {
        let filter = format!(
            "{}.events.{}.*.TokenRevoked",
            bus.subjects().prefix(),
            User::TYPE
        );
        let tail = bus.tail(&filter).await?;
        let stored = db.read_events_named(User::TYPE, "TokenRevoked").await?;
        for event in &stored {
            self.apply_cloud_event(&event.to_cloud_event());
        }
        self.prune(SystemTime::now());
        tracing::info!(revoked = self.len(), "revocation set loaded");
        Ok(tail)
    }

    /// Applies revocations from `tail` until `shutdown`; when the tail breaks, tails again
    /// and reloads from the store.
    pub async fn follow(
        self: Arc<Self>,
        db: Database,
        bus: Arc<dyn EventBus>,
        mut tail: Tail,
        shutdown: CancellationToken,
    ) {
        let mut prune = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = prune.tick() => self.prune(SystemTime::now()),
                next = tail.next() => match next {
                    Some(Ok(event)) => self.apply_cloud_event(&event),
                    Some(Err(error)) => {
                        tracing::warn!(%error, "revocation tail failed; reloading");
                        tail = self.reload(&db, &*bus, &shutdown).await;
                    }
                    None => {
                        tracing::warn!("revocation tail ended; reloading");
                        tail = self.reload(&db, &*bus, &shutdown).await;
                    }
                },
            }
        }
    }

    async fn reload(
        &self,
        db: &Database,
        bus: &dyn EventBus,
        shutdown: &CancellationToken,
    ) -> Tail {
        loop {
            match self.load(db, bus).await {
                Ok(tail) => return tail,
                Err(error) => tracing::warn!(%error, "reloading revocations failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return futures::stream::empty().boxed(),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_id_is_refused_until_its_token_expires() {
        let set = Revocations::default();
        let now = SystemTime::now();
        set.revoke("abcd", now + Duration::from_secs(60));
        set.revoke("not hex", now + Duration::from_secs(60));
        assert!(set.is_revoked(&[vec![1], vec![0xab, 0xcd]]));
        assert!(!set.is_revoked(&[vec![0xab]]));
        assert_eq!(set.len(), 1);
        set.prune(now + Duration::from_secs(61));
        assert!(set.is_empty());
    }
}
