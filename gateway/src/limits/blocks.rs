//! Blocked clients, on every replica: kept from `ClientBlocked` / `ClientUnblocked` events
//! in the store and on the bus ([`crate::replicated`]). A block ends by itself at its
//! `until`; an admin can lift it earlier.

use std::collections::HashMap;
use std::sync::RwLock;

use aurora_domain::client::{Client, ClientEvent};
use aurora_projections::StoredEvent;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::Deserialize as _;
use serde::Serialize;

use crate::replicated::Replicated;

/// One block in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Block {
    /// The client: `user:<name>` or `ip:<address>`.
    pub key: String,
    /// Why.
    pub reason: String,
    /// Until when.
    pub until: DateTime<Utc>,
    /// Which offence, from 1.
    pub offence: u32,
}

/// The blocks in force, by client key.
#[derive(Debug, Default)]
pub struct Blocks {
    blocks: RwLock<HashMap<String, Block>>,
}

impl Blocks {
    /// The block of `key` in force at `now`, if any.
    pub fn blocked(&self, key: &str, now: DateTime<Utc>) -> Option<Block> {
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        blocks.get(key).filter(|b| b.until > now).cloned()
    }

    /// Every block in force at `now`, by key.
    pub fn list(&self, now: DateTime<Utc>) -> Vec<Block> {
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Block> = blocks.values().filter(|b| b.until > now).cloned().collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        list
    }

    /// Applies events of client `key` (other events are ignored).
    pub fn apply(&self, key: &str, events: &[ClientEvent]) {
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        for event in events {
            match event {
                ClientEvent::ClientBlocked {
                    reason,
                    until,
                    offence,
                } => {
                    blocks.insert(
                        key.to_string(),
                        Block {
                            key: key.to_string(),
                            reason: reason.clone(),
                            until: *until,
                            offence: *offence,
                        },
                    );
                }
                ClientEvent::ClientUnblocked { .. } => {
                    blocks.remove(key);
                }
            }
        }
    }
}

impl Replicated for Blocks {
    const AGGREGATE: &'static str = Client::TYPE;
    const EVENTS: &'static [&'static str] = &["ClientBlocked", "ClientUnblocked"];
    const NAME: &'static str = "blocks";

    fn apply_event(&self, event: &StoredEvent) {
        match ClientEvent::deserialize(&event.payload) {
            Ok(decoded) => self.apply(&event.aggregate_id, &[decoded]),
            Err(error) => {
                tracing::error!(aggregate = %event.aggregate_id, sequence = event.sequence, %error, "undecodable client event")
            }
        }
    }

    fn prune(&self) {
        let now = Utc::now();
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        blocks.retain(|_, b| b.until > now);
    }

    fn entries(&self) -> usize {
        self.blocks.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}
