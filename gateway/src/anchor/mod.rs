//! The audit log anchored outside its own database, after Certificate Transparency's signed
//! tree heads: every few seconds a replica signs the chain's head (`seq`, `hash`, time) with
//! an Ed25519 key that is **not in the database** (`AURORA_AUDIT_KEY_DIR`, a Secret in
//! production) and publishes the statement **outside it**:
//!
//! - production: the JetStream stream `<PREFIX>_AUDIT_HEADS`, created to deny deletes and
//!   purges (an account that can write the database cannot take a head back);
//! - embedded: an append-only file beside the database (`<data dir>/audit-heads.ndjson`);
//! - always: a log line (`audit head signed`), so log files keep their own copy.
//!
//! `aurora audit verify` checks every published statement's signature and that the log holds
//! the signed entry with the signed hash; with the chain check and the replay of the store
//! (`AuditLog::compare_with_store`) an edited, cut, re-chained or re-checkpointed log, and a
//! rewritten event, are found. What stays open is the window since the last publication
//! (`AURORA_AUDIT_ANCHOR_SECONDS`): see `docs/threat-model.md`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use aurora_projections::audit::{Finding, Head, Tampering};
use aurora_projections::AuditLog;
use biscuit_auth::KeyPair;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::auth::keys::{create_private_dir, write_private};

mod store;
pub use store::{HeadStore, SCAN_BOUND};

/// The key's file in its directory.
const KEY_FILE: &str = "audit-signing.pem";

/// What is signed: a fixed domain tag, then the head and the time.
fn message(seq: i64, hash: &str, time: &str) -> Vec<u8> {
    format!("aurora-audit-head/v1\n{seq}\n{hash}\n{time}").into_bytes()
}

/// A short, stable name of a public key: the first 16 hex digits of its SHA-256.
fn key_id(public: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(public.as_bytes()))[..16].to_string()
}

/// The audit signing key (an Ed25519 PKCS#8 PEM file, like the root keys).
pub struct AnchorKey {
    key: SigningKey,
    id: String,
}

impl AnchorKey {
    /// Loads `<dir>/audit-signing.pem`; with `create`, makes it (mode 0600) if missing.
    pub fn load(dir: &Path, create: bool) -> anyhow::Result<Self> {
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            anyhow::ensure!(
                create,
                "no audit signing key at {} (AURORA_AUDIT_KEY_DIR)",
                path.display()
            );
            create_private_dir(dir)?;
            let key = KeyPair::new();
            let pem = key
                .to_private_key_pem()
                .map_err(|e| anyhow::anyhow!("encoding the audit key: {e}"))?;
            write_private(&path, pem.as_bytes())?;
        }
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let pair = KeyPair::from_private_key_pem(pem.trim())
            .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 key: {e}", path.display()))?;
        let bytes: [u8; 32] = pair
            .private()
            .to_bytes()
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("{}: not an Ed25519 key", path.display()))?;
        let key = SigningKey::from_bytes(&bytes);
        let id = key_id(&key.verifying_key());
        Ok(Self { key, id })
    }

    /// The public half, which is all a verifier needs.
    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `head` as of `time`.
    pub fn sign(&self, head: &Head, time: chrono::DateTime<chrono::Utc>) -> SignedHead {
        let time = time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let signature = hex::encode(
            self.key
                .sign(&message(head.seq, &head.hash, &time))
                .to_bytes(),
        );
        SignedHead {
            seq: head.seq,
            hash: head.hash.clone(),
            time,
            key_id: self.id.clone(),
            signature,
        }
    }
}

/// Parses a public key given as hex (`ed25519/<hex>` or bare hex).
pub fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let text = text.trim().trim_start_matches("ed25519/");
    let bytes: [u8; 32] = hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("an Ed25519 public key is 64 hex digits"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("not an Ed25519 public key: {e}"))
}

/// A public key as hex, as [`parse_public_key`] reads it.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    format!("ed25519/{}", hex::encode(key.as_bytes()))
}

/// A signed statement of the chain's head at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The entry.
    pub seq: i64,
    /// Its hash (commits to every entry before it).
    pub hash: String,
    /// When it was signed (RFC 3339, UTC).
    pub time: String,
    /// Which key signed it.
    pub key_id: String,
    /// Ed25519 signature of the statement, hex.
    pub signature: String,
}

impl SignedHead {
    /// Is it signed by `key`?
    pub fn is_signed_by(&self, key: &VerifyingKey) -> bool {
        let Some(bytes) = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        key.verify(
            &message(self.seq, &self.hash, &self.time),
            &Signature::from_bytes(&bytes),
        )
        .is_ok()
    }

    /// The head it names.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// Signs and publishes the log's head every `every` while it moves, until `shutdown`.
/// Every replica runs one; see [`Publisher::round`] for what it checks first.
pub async fn publish_heads(
    log: std::sync::Arc<AuditLog>,
    key: AnchorKey,
    store: HeadStore,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut publisher = Publisher::new(log, key, store);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = publisher.round().await {
            tracing::error!(%error, "the audit head was not signed");
        }
    }
}

/// The signer of one replica.
pub struct Publisher {
    log: std::sync::Arc<AuditLog>,
    key: AnchorKey,
    store: HeadStore,
    /// The last head known signed, held by the log, and checked up to: the next head is
    /// signed only once the stretch after this one checks out.
    base: Option<Head>,
    /// The last stream message read: later rounds read only what came after it.
    scanned: u64,
}

impl Publisher {
    /// A publisher that starts from the newest head published.
    pub fn new(log: std::sync::Arc<AuditLog>, key: AnchorKey, store: HeadStore) -> Self {
        Self {
            log,
            key,
            store,
            base: None,
            scanned: 0,
        }
    }

    /// One round: the head published, if the log moved.
    ///
    /// Nothing read from the database is signed on trust. The log's head is signed only if
    /// the stretch from the last signed head to it extends it (numbered without a gap, each
    /// entry linked to the one before), and the last signed head is still in the log as
    /// signed. So a row written into `audit_log` by hand (say at seq
    /// 2^62, to make every later head look older) is refused, loudly, not signed.
    pub async fn round(&mut self) -> anyhow::Result<Option<SignedHead>> {
        // Where to check from: the newest signed head (another replica's, perhaps), when
        // this replica has none yet or shares the store with others. Read before the log's
        // head, so that a head another replica signs meanwhile is never ahead of it.
        if self.base.is_none() || matches!(self.store, HeadStore::Stream { .. }) {
            let (published, scanned) = self
                .store
                .last_signed_since(&self.key.public(), self.scanned)
                .await?;
            self.scanned = scanned;
            let newer = match (&published, &self.base) {
                (Some(p), Some(base)) => p.seq > base.seq,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if newer {
                let signed = published.expect("newer implies published").head();
                match self.log.entry(signed.seq).await? {
                    Some(entry) if entry.hash == signed.hash => self.base = Some(signed),
                    Some(_) => anyhow::bail!(
                        "the log's entry {} is not the one signed: the chain was recomputed; \
                         run `aurora audit verify`",
                        signed.seq
                    ),
                    None => anyhow::bail!(
                        "the log does not hold entry {}, which was signed: the log was cut; \
                         run `aurora audit verify`",
                        signed.seq
                    ),
                }
            }
        }
        let Some(head) = self.log.head().await? else {
            return Ok(None);
        };
        if self.base.as_ref() == Some(&head) {
            return Ok(None);
        }
        let base = self.base.clone().unwrap_or(Head {
            seq: 0,
            hash: aurora_projections::audit::GENESIS.to_string(),
        });
        if head.seq <= base.seq {
            if head.seq < base.seq {
                anyhow::bail!(
                    "the log ends at {} before the last signed head {}: the log was cut",
                    head.seq,
                    base.seq
                );
            }
            return Ok(None);
        }
        if let Some(finding) = self.log.links_hold(&base, head.seq).await? {
            anyhow::bail!(
                "entries {} to {} do not check out ({:?}: {}); not signing",
                base.seq + 1,
                head.seq,
                finding.kind,
                finding.detail
            );
        }
        let signed = self.key.sign(&head, chrono::Utc::now());
        self.store.publish(&signed).await?;
        tracing::info!(
            target: "aurora::audit",
            seq = signed.seq,
            hash = %signed.hash,
            time = %signed.time,
            key_id = %signed.key_id,
            signature = %signed.signature,
            "audit head signed"
        );
        self.base = Some(head);
        Ok(Some(signed))
    }
}

/// An RFC 3339 time in UTC, if it is one.
fn utc(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// What the published heads say of the log.
#[derive(Debug, Clone, Serialize)]
pub struct AnchorReport {
    /// Statements published.
    pub heads: usize,
    /// Statements not signed by any of the keys (or unreadable).
    pub unsigned: usize,
    /// The first of them with a valid signature: entries up to its seq were recorded
    /// before anchoring began (an upgrade), or before this store was created.
    pub first_signed: Option<SignedHead>,
    /// The last of them with a valid signature.
    pub last_signed: Option<SignedHead>,
    /// When the heads stream was created (production).
    pub store_created: Option<String>,
    /// The first problem: a log that does not hold what was signed, heads that were or can
    /// be removed, entries long unanchored, or a statement not signed by the key.
    pub finding: Option<Finding>,
}

/// Checks the published heads (their store, each signature with one of `keys`), then the
/// log against the signed ones, then that the log's entries older than `grace` are
/// covered by a signed head. Statements that are not signed are reported, and do not stop
/// the check of the signed ones.
pub async fn check(
    log: &AuditLog,
    store: &HeadStore,
    keys: &[VerifyingKey],
    grace: Duration,
) -> anyhow::Result<AnchorReport> {
    // The time to judge ages by, taken before anything slow: reading and checking many
    // heads must not make the entry after the last one look stale.
    let now = chrono::Utc::now();
    let unanchored = |detail: String| Finding {
        kind: Tampering::Unanchored,
        seq: 0,
        detail,
    };
    let (integrity, created) = store.inspect().await?;
    let published = match integrity {
        Some(_) if matches!(store, HeadStore::Stream { .. }) => {
            store.all().await.unwrap_or_default()
        }
        _ => store.all().await?,
    };
    let mut heads = Vec::with_capacity(published.len());
    let mut first_signed: Option<SignedHead> = None;
    let mut last_signed: Option<SignedHead> = None;
    let mut unsigned = Vec::new();
    let mut replayed = None;
    for (n, statement) in published.iter().enumerate() {
        match statement {
            Ok(head) if keys.iter().any(|key| head.is_signed_by(key)) => {
                heads.push(head.head());
                // Signed before its stream existed: the stream was deleted, recreated, and
                // old heads published into it again (a minute allowed for clock skew).
                let signed_at = utc(&head.time);
                if let (None, Some(created), Some(signed_at)) = (&replayed, created, signed_at) {
                    if signed_at + chrono::Duration::seconds(60) < created {
                        replayed = Some(format!(
                            "head {} was signed at {} and its stream created at {created}: the \
                             stream was recreated and old heads published into it again",
                            head.seq, head.time
                        ));
                    }
                }
                if first_signed.is_none() {
                    first_signed = Some(head.clone());
                }
                if last_signed.as_ref().is_none_or(|l| head.seq >= l.seq) {
                    last_signed = Some(head.clone());
                }
            }
            Ok(head) => unsigned.push(format!(
                "published head {} (entry {}) is not signed by the audit key",
                n + 1,
                head.seq
            )),
            Err(reason) => unsigned.push(format!("published head {}: {reason}", n + 1)),
        }
    }
    let mut finding = log.check_heads(&heads).await?;
    if finding.is_none() {
        finding = integrity.or(replayed).map(unanchored);
    }
    if finding.is_none() {
        // Entries recorded long enough ago must be under a signed head: otherwise signing
        // stopped (a head that could not be checked, a store taken away).
        let covered = last_signed.as_ref().map_or(0, |h| h.seq);
        if let Some(first_uncovered) = log.entry(covered + 1).await? {
            let age = now - utc(&first_uncovered.time).unwrap_or(now);
            if age.to_std().unwrap_or_default() > grace {
                finding = Some(Finding {
                    kind: Tampering::Unanchored,
                    seq: first_uncovered.seq,
                    detail: format!(
                        "entry {} was recorded at {} and no signed head covers it: signing \
                         stopped (a head that did not check out, or a store taken away)",
                        first_uncovered.seq, first_uncovered.time
                    ),
                });
            }
        }
    }
    if finding.is_none() {
        finding = unsigned.first().map(|detail| Finding {
            kind: Tampering::Forged,
            seq: 0,
            detail: detail.clone(),
        });
    }
    Ok(AnchorReport {
        heads: published.len(),
        unsigned: unsigned.len(),
        first_signed,
        last_signed,
        store_created: created.map(|c| c.to_rfc3339()),
        finding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_head_verifies_with_its_key_only_and_any_change_breaks_it() {
        let dir = aurora_projections::testkit::TempDir::new().unwrap();
        let key = AnchorKey::load(&dir.path().join("audit"), true).unwrap();
        let again = AnchorKey::load(&dir.path().join("audit"), false).unwrap();
        assert_eq!(key.id, again.id, "a second start reuses the key");
        let other = AnchorKey::load(&dir.path().join("other"), true).unwrap();
        let head = Head {
            seq: 42,
            hash: "ab".repeat(32),
        };
        let signed = key.sign(&head, chrono::Utc::now());
        assert!(signed.is_signed_by(&key.public()));
        assert!(!signed.is_signed_by(&other.public()));
        for tampered in [
            SignedHead {
                seq: 41,
                ..signed.clone()
            },
            SignedHead {
                hash: "cd".repeat(32),
                ..signed.clone()
            },
            SignedHead {
                time: "2020-01-01T00:00:00.000000Z".into(),
                ..signed.clone()
            },
            SignedHead {
                signature: "00".into(),
                ..signed.clone()
            },
        ] {
            assert!(!tampered.is_signed_by(&key.public()), "{tampered:?}");
        }
        let hex = public_key_hex(&key.public());
        assert!(signed.is_signed_by(&parse_public_key(&hex).unwrap()));
        assert!(AnchorKey::load(&dir.path().join("none"), false).is_err());
    }
}
