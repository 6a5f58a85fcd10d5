//! The revocation set: revocation ids of tokens that must be refused, on every replica,
//! kept current from `TokenRevoked` events in the store and on the bus
//! ([`crate::replicated`]) — and, beside it, each user's *current* tier from `TierChanged`
//! events: a token states the tier its user had when it was minted, and an API key lives
//! up to a year, so the tier that decides limits is the current one, not the token's.
//!
//! A revoked token is forgotten once it has expired: it would be refused anyway.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aurora_domain::user::{Tier, User, UserEvent};
use aurora_projections::StoredEvent;
use cqrs_es::Aggregate;
use serde::Deserialize as _;

use crate::replicated::Replicated;

/// Revocation ids (raw bytes) and when their tokens expire.
#[derive(Debug, Default)]
pub struct Revocations {
    revoked: RwLock<HashMap<Vec<u8>, SystemTime>>,
    /// Users whose tier changed, their tier now, and the sequence of the change (events
    /// reach the set from a command's own replica and from the store or bus, in either
    /// order: an older change must not undo a newer one).
    tiers: RwLock<HashMap<String, (Tier, i64)>>,
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

    /// Applies the revocations and tier changes among `events` of user `username`, the
    /// first of them at sequence `first_sequence` in the user's history (other events are
    /// ignored); returns how many.
    pub fn apply(&self, username: &str, events: &[UserEvent], first_sequence: i64) -> usize {
        let mut applied = 0;
        for (sequence, event) in (first_sequence..).zip(events) {
            match event {
                UserEvent::TokenRevoked {
                    revocation_id,
                    expires_at,
                    ..
                } => self.revoke(revocation_id, (*expires_at).into()),
                UserEvent::TierChanged { to, .. } => {
                    let mut tiers = self.tiers.write().unwrap_or_else(|e| e.into_inner());
                    let known = tiers.get(username).map_or(0, |(_, at)| *at);
                    if sequence > known {
                        tiers.insert(username.to_string(), (*to, sequence));
                    }
                }
                _ => continue,
            }
            applied += 1;
        }
        applied
    }

    /// User `username`'s tier now, if it changed since registration (else the token's is
    /// current).
    pub fn current_tier(&self, username: &str) -> Option<Tier> {
        let tiers = self.tiers.read().unwrap_or_else(|e| e.into_inner());
        if tiers.is_empty() {
            return None;
        }
        tiers.get(username).map(|(tier, _)| *tier)
    }

    /// Is any of a token's block revocation ids revoked?
    pub fn is_revoked(&self, revocation_ids: &[Vec<u8>]) -> bool {
        let revoked = self.read();
        !revoked.is_empty() && revocation_ids.iter().any(|id| revoked.contains_key(id))
    }

    /// How many revocations are held.
    pub fn entries(&self) -> usize {
        self.read().len()
    }

    /// Forgets revocations of tokens expired by `now`.
    pub fn forget_expired(&self, now: SystemTime) {
        self.write().retain(|_, expires_at| *expires_at > now);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Vec<u8>, SystemTime>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.revoked.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Vec<u8>, SystemTime>> {
        self.revoked.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Replicated for Revocations {
    const AGGREGATE: &'static str = User::TYPE;
    const EVENTS: &'static [&'static str] = &["TokenRevoked", "TierChanged"];
    const NAME: &'static str = "revocations";

    fn apply_event(&self, event: &StoredEvent) {
        match UserEvent::deserialize(&event.payload) {
            Ok(decoded) => {
                self.apply(&event.aggregate_id, &[decoded], event.sequence);
            }
            Err(error) => {
                tracing::error!(aggregate = %event.aggregate_id, sequence = event.sequence, %error, "undecodable user event")
            }
        }
    }

    fn prune(&self) {
        self.forget_expired(SystemTime::now());
    }

    fn entries(&self) -> usize {
        Revocations::entries(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_revoked_id_is_refused_until_its_token_expires() {
        let set = Revocations::default();
        let now = SystemTime::now();
        set.revoke("abcd", now + Duration::from_secs(60));
        set.revoke("not hex", now + Duration::from_secs(60));
        assert!(set.is_revoked(&[vec![1], vec![0xab, 0xcd]]));
        assert!(!set.is_revoked(&[vec![0xab]]));
        assert_eq!(set.entries(), 1);
        set.forget_expired(now + Duration::from_secs(61));
        assert_eq!(set.entries(), 0);
    }

    #[test]
    fn the_latest_tier_change_is_the_users_tier() {
        let set = Revocations::default();
        assert_eq!(set.current_tier("alice"), None);
        let change = |from, to| UserEvent::TierChanged { from, to };
        set.apply("alice", &[change(Tier::Free, Tier::Pro)], 2);
        set.apply("alice", &[change(Tier::Pro, Tier::Free)], 3);
        assert_eq!(set.current_tier("alice"), Some(Tier::Free));
        assert_eq!(set.current_tier("bob"), None);
        // The older change arriving last (from the store, after the command's replica
        // applied both) does not undo the newer one.
        set.apply("alice", &[change(Tier::Free, Tier::Pro)], 2);
        assert_eq!(set.current_tier("alice"), Some(Tier::Free));
        // Several events at once: each at its own sequence.
        set.apply(
            "alice",
            &[
                change(Tier::Free, Tier::Pro),
                change(Tier::Pro, Tier::Enterprise),
            ],
            4,
        );
        assert_eq!(set.current_tier("alice"), Some(Tier::Enterprise));
    }
}
