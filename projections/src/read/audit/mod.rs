//! The audit log: one entry per stored event — who, in which role, with which token, from
//! where, in which request, did what to which resource, and when — in the store's global
//! order, hash-chained so that an edited, removed or reordered entry is found.
//!
//! By concern: [`entry`] (an entry, its canonical JSON and hash, redaction, the chain),
//! [`verify`] (walking the chain), [`query`] (reading the log), [`live`] (writing it as
//! events arrive), [`rebuild`] (replaying the store into it without downtime) and
//! `outside` (checking it against the store and signed heads).
//!
//! # Order and the chain
//! The log is written from the store, not from the bus: it tails the gap-safe global log in
//! `(xid, position)` order, the one order every reader (and every rebuild) sees. Entry `n`
//! carries `prev_hash` (entry `n − 1`'s hash; [`GENESIS`] for the first) and `hash`,
//! SHA-256 over its content and `prev_hash` in a canonical JSON form. So a rebuild from the
//! store reproduces the chain bit for bit, and the head hash commits to the whole history.
//!
//! # Writers
//! Every replica may catch the log up (woken by the bus, and on a timer); a batch locks the
//! checkpoint row first, so batches of different replicas, and a rebuild's final swap,
//! take turns. A batch reads the chain's tail from the table, never from memory.
//!
//! # Rebuild without downtime
//! [`AuditLog::rebuild`] replays the store into a shadow table while the live log keeps
//! being read and written, builds its indexes, then — holding the checkpoint lock — catches
//! the shadow up to the store's fence and swaps it in with two renames in one transaction.

use std::sync::Arc;
use std::time::Duration;

use super::envelope::Envelope;
use super::projection::{Interest, Projection};
use crate::store::{Database, StoreError};

mod entry;
mod live;
/// The log checked against what lies outside it: the store, and signed heads.
mod outside;
mod query;
mod rebuild;
mod verify;

pub use entry::{canonical_json, redact, AuditEntry, Head};
pub use query::AuditFilter;
pub use rebuild::{RebuildProgress, Rebuilt};
pub use verify::{Finding, Tampering, Verification, Verifier};

/// Checkpoint name, and the projection's name (in the CLI too).
pub const NAME: &str = "audit-log";

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The entry format's version, hashed with every entry: a change to what an entry holds
/// (redaction, roles, unwrapping) is a new format, never a silent change of old hashes'
/// meaning.
pub const FORMAT: &str = "aurora-audit/1";

/// What replaced a secret in `details`.
pub const REDACTED: &str = "[redacted]";

/// The audit log projection.
pub struct AuditLog {
    db: Database,
    /// The head's `seq` after each batch this process wrote.
    appended: tokio::sync::watch::Sender<i64>,
}

impl AuditLog {
    /// The log stored in `db`.
    pub fn new(db: Database) -> Self {
        Self {
            db,
            appended: tokio::sync::watch::channel(0).0,
        }
    }

    /// Waits until this process has seen the log reach `seq` entries, or `timeout`
    /// passes; whether it did.
    pub async fn wait_for(&self, seq: i64, timeout: Duration) -> bool {
        let mut appended = self.appended.subscribe();
        let reached = tokio::time::timeout(timeout, appended.wait_for(|head| *head >= seq)).await;
        matches!(reached, Ok(Ok(_)))
    }
}

#[async_trait::async_trait]
impl Projection for AuditLog {
    fn name(&self) -> &'static str {
        NAME
    }

    fn interest(&self) -> Interest {
        Interest::ALL
    }

    async fn catch_up(&self) -> Result<(), StoreError> {
        AuditLog::catch_up(self).await.map(drop)
    }

    async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        self.append_delivered(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::entry::chain;
    use super::*;
    use crate::store::{Cursor, StoredEvent};
    use aurora_domain::EventMetadata;
    use serde_json::json;
    use serde_json::Value;
    use sha2::{Digest, Sha256};

    fn event(position: i64, payload: Value) -> StoredEvent {
        let mut metadata = EventMetadata::new("alice", format!("req-{position}"));
        metadata.role = Some("user".into());
        StoredEvent {
            cursor: Cursor { xid: 0, position },
            aggregate_type: "user".into(),
            aggregate_id: "alice".into(),
            sequence: position,
            event_type: "Thing".into(),
            event_version: "1".into(),
            payload,
            metadata,
        }
    }

    fn entries(n: i64) -> Vec<AuditEntry> {
        let events: Vec<StoredEvent> = (1..=n)
            .map(|i| event(i, json!({"Thing": {"n": i}})))
            .collect();
        chain(events.iter(), 0, GENESIS)
    }

    fn verify(entries: Vec<AuditEntry>) -> Verification {
        let mut verifier = Verifier::whole();
        for entry in entries {
            verifier.push(entry);
        }
        verifier.finish()
    }

    #[test]
    fn secrets_are_redacted_at_any_depth_and_the_payload_is_unwrapped() {
        let entry = AuditEntry::of(
            &event(
                1,
                json!({"Thing": {"password": "hunter2", "nested": [{"client_secret": "s"}],
                       "token": "EnQKCg", "grant": {"token_id": "t1"}, "sha256": "ab",
                       "Upstream_API_Key": "k"}}),
            ),
            1,
            GENESIS,
        );
        assert_eq!(
            entry.details,
            json!({"password": REDACTED, "nested": [{"client_secret": REDACTED}],
                   "token": REDACTED, "grant": {"token_id": "t1"}, "sha256": "ab",
                   "Upstream_API_Key": REDACTED})
        );
        assert_eq!(
            (entry.role.as_str(), entry.actor.as_str()),
            ("user", "alice")
        );
    }

    #[test]
    fn the_hash_is_over_the_canonical_json_of_the_content() {
        let entry = AuditEntry::of(
            &event(3, json!({"Thing": {"b": [1.5, "x\"y"], "a": null}})),
            3,
            GENESIS,
        );
        let content = json!([
            FORMAT,
            entry.position,
            entry.time,
            entry.actor,
            entry.role,
            entry.token_id,
            entry.request_id,
            entry.client_ip,
            entry.action,
            entry.resource_type,
            entry.resource_id,
            entry.sequence,
            entry.version,
            entry.details,
            entry.prev_hash,
        ]);
        let expected = hex::encode(Sha256::digest(canonical_json(&content).as_bytes()));
        assert_eq!(entry.hash, expected);
        let read_back: AuditEntry =
            serde_json::from_str(&serde_json::to_string(&entry).unwrap()).unwrap();
        assert_eq!(read_back.content_hash(), entry.hash);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 2.5}], "c": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"y":2.5,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn an_intact_chain_verifies_and_reports_its_head() {
        let chain = entries(200);
        let head = chain.last().unwrap().hash.clone();
        let verdict = verify(chain);
        assert_eq!(verdict.finding, None);
        assert_eq!(verdict.entries, 200);
        assert_eq!(
            verdict.head,
            Some(Head {
                seq: 200,
                hash: head
            })
        );
    }

    #[test]
    fn an_edited_entry_is_found() {
        let mut chain = entries(10);
        chain[3].actor = "mallory".into();
        let finding = verify(chain).finding.unwrap();
        assert_eq!((finding.kind, finding.seq), (Tampering::Changed, 4));
    }

    #[test]
    fn an_edited_entry_rehashed_breaks_the_next_link() {
        let mut chain = entries(10);
        chain[3].actor = "mallory".into();
        chain[3].hash = chain[3].content_hash();
        let finding = verify(chain).finding.unwrap();
        assert_eq!(finding.seq, 5);
    }

    #[test]
    fn a_removed_entry_is_found() {
        let mut chain = entries(10);
        chain.remove(6);
        let finding = verify(chain).finding.unwrap();
        assert_eq!((finding.kind, finding.seq), (Tampering::Removed, 8));
    }

    #[test]
    fn swapped_entries_are_found() {
        let mut chain = entries(10);
        chain.swap(2, 5);
        let finding = verify(chain).finding.unwrap();
        assert_eq!((finding.kind, finding.seq), (Tampering::Reordered, 6));
        // Renumbered to hide it: still out of place.
        let mut chain = entries(10);
        chain.swap(2, 3);
        (chain[2].seq, chain[3].seq) = (3, 4);
        let finding = verify(chain).finding.unwrap();
        assert_eq!((finding.kind, finding.seq), (Tampering::Reordered, 3));
    }

    #[test]
    fn a_selection_verifies_entry_by_entry() {
        let chain: Vec<AuditEntry> = entries(20).into_iter().step_by(3).collect();
        let mut verifier = Verifier::selection();
        for entry in chain.clone() {
            verifier.push(entry);
        }
        assert_eq!(verifier.finish().finding, None);
        let mut edited = chain;
        edited[2].actor = "mallory".into();
        let mut verifier = Verifier::selection();
        for entry in edited {
            verifier.push(entry);
        }
        let finding = verifier.finish().finding.unwrap();
        assert_eq!((finding.kind, finding.seq), (Tampering::Changed, 7));
    }

    #[test]
    fn a_part_of_a_chain_verifies_from_its_first_entry() {
        let chain = entries(20);
        let mut verifier = Verifier::part();
        for entry in chain.into_iter().skip(7) {
            verifier.push(entry);
        }
        let verdict = verifier.finish();
        assert_eq!((verdict.finding, verdict.entries), (None, 13));
    }
}
