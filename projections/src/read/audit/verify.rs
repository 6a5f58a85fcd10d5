//! Verification: walking the chain and saying what was edited, removed or reordered first.

use serde::Serialize;

use super::entry::{AuditEntry, Head};
use super::rebuild::REBUILD_PAGE;
use super::{AuditLog, GENESIS};
use crate::store::StoreError;

/// What a verification found wrong first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tampering {
    /// The entry's content does not match its hash: it was edited.
    Changed,
    /// Entries are missing before this one.
    Removed,
    /// The entry is out of its place in the chain.
    Reordered,
    /// The store no longer produces this entry: an event was rewritten (or deleted) after
    /// the log recorded it.
    Rewritten,
    /// The entry at a signed, published head is not the one that was signed: the chain was
    /// re-computed from there back (a re-chained stretch, or a log rebuilt from a rewritten
    /// store).
    Rechained,
    /// A published head does not carry a valid signature of the audit key.
    Forged,
    /// Entries that should have been anchored were not: the published heads are missing,
    /// were removed, can be removed, or stop long before the log does.
    Unanchored,
}

/// The first problem in a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What.
    pub kind: Tampering,
    /// The entry at which the chain first goes wrong.
    pub seq: i64,
    /// In words.
    pub detail: String,
}

/// The outcome of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries read.
    pub entries: u64,
    /// The last entry read.
    pub head: Option<Head>,
    /// The first problem, if any.
    pub finding: Option<Finding>,
}

/// Checks a chain entry by entry in constant memory (plus a bounded look-ahead to tell a
/// reordering from a removal).
pub struct Verifier {
    /// For the first entry: its expected `prev_hash` and `seq`, or `None` to take the
    /// first entry's own (an export of a range starts mid-chain).
    expect: Option<(String, i64)>,
    previous: Option<AuditEntry>,
    pending: std::collections::VecDeque<AuditEntry>,
    entries: u64,
    finding: Option<Finding>,
    selection: bool,
}

/// Entries a verifier looks ahead to tell a reordering from a removal.
const LOOK_AHEAD: usize = 64;

impl Verifier {
    /// A verifier of a whole chain: the first entry must be seq 1 after [`GENESIS`].
    pub fn whole() -> Self {
        Self::new(Some((GENESIS.to_string(), 1)))
    }

    /// A verifier of part of a chain (an export of a range).
    pub fn part() -> Self {
        Self::new(None)
    }

    /// A verifier of entries selected from a chain (by actor, action or resource): each
    /// entry must match its hash and come after the one before; the links between them
    /// cannot be checked (the entries in between are not there).
    pub fn selection() -> Self {
        Self {
            selection: true,
            ..Self::new(None)
        }
    }

    fn new(expect: Option<(String, i64)>) -> Self {
        Self {
            expect,
            previous: None,
            pending: Default::default(),
            entries: 0,
            finding: None,
            selection: false,
        }
    }

    /// Feeds the next entry; `false` once a problem was found (stop feeding).
    pub fn push(&mut self, entry: AuditEntry) -> bool {
        if self.finding.is_some() {
            return false;
        }
        self.pending.push_back(entry);
        if self.pending.len() > LOOK_AHEAD {
            self.check_next();
        }
        self.finding.is_none()
    }

    /// The verdict, after the last entry.
    pub fn finish(mut self) -> Verification {
        while self.finding.is_none() && !self.pending.is_empty() {
            self.check_next();
        }
        Verification {
            entries: self.entries,
            head: self.previous.map(|e| Head {
                seq: e.seq,
                hash: e.hash,
            }),
            finding: self.finding,
        }
    }

    fn check_next(&mut self) {
        let Some(entry) = self.pending.pop_front() else {
            return;
        };
        let (expected_hash, expected_seq) = match (&self.previous, &self.expect) {
            (Some(previous), _) => (previous.hash.clone(), previous.seq + 1),
            (None, Some((hash, seq))) => (hash.clone(), *seq),
            (None, None) => (entry.prev_hash.clone(), entry.seq),
        };
        let finding = |kind, detail: String| Finding {
            kind,
            seq: entry.seq,
            detail,
        };
        if entry.content_hash() != entry.hash {
            self.finding = Some(finding(
                Tampering::Changed,
                format!("entry {} does not match its hash: it was edited", entry.seq),
            ));
            return;
        }
        if self.selection {
            if self.previous.as_ref().is_some_and(|p| entry.seq <= p.seq) {
                self.finding = Some(finding(
                    Tampering::Reordered,
                    format!("entry {} comes after entry {}", entry.seq, expected_seq - 1),
                ));
                return;
            }
            self.entries += 1;
            self.previous = Some(entry);
            return;
        }
        if entry.prev_hash != expected_hash {
            // Is the entry that should come here further on? Then the order was changed.
            let later = self.pending.iter().any(|e| e.prev_hash == expected_hash);
            self.finding = Some(if later || entry.seq < expected_seq {
                finding(
                    Tampering::Reordered,
                    format!(
                        "entry {} is out of place: the chain expects entry {expected_seq} \
                         here, which comes later",
                        entry.seq
                    ),
                )
            } else if entry.seq > expected_seq {
                finding(
                    Tampering::Removed,
                    format!("entries {expected_seq} to {} are missing", entry.seq - 1),
                )
            } else {
                finding(
                    Tampering::Removed,
                    format!(
                        "the chain breaks before entry {}: an entry before it was removed, or \
                         edited and its hash recomputed",
                        entry.seq
                    ),
                )
            });
            return;
        }
        if entry.seq != expected_seq {
            self.finding = Some(finding(
                Tampering::Reordered,
                format!(
                    "entry {} is numbered out of order (expected {expected_seq})",
                    entry.seq
                ),
            ));
            return;
        }
        self.entries += 1;
        self.previous = Some(entry);
    }
}

impl AuditLog {
    /// Checks the whole chain in the database, page by page, and that it reaches the head
    /// recorded with the checkpoint (so that removing or re-hashing the last entries is
    /// found too).
    pub async fn verify(&self) -> Result<Verification, StoreError> {
        let recorded = self.recorded_head().await?;
        let mut verdict = self.verify_chain().await?;
        let (Some(recorded), None) = (recorded, &verdict.finding) else {
            return Ok(verdict);
        };
        let ends = verdict.head.as_ref().map_or(0, |h| h.seq);
        let at_recorded = self.entry(recorded.seq).await?;
        verdict.finding = match at_recorded {
            None => Some(Finding {
                kind: Tampering::Removed,
                seq: ends + 1,
                detail: format!(
                    "entries {} to {} are missing: the log's checkpoint recorded its head at \
                     entry {}",
                    ends + 1,
                    recorded.seq,
                    recorded.seq
                ),
            }),
            Some(entry) if entry.hash != recorded.hash => Some(Finding {
                kind: Tampering::Changed,
                seq: recorded.seq,
                detail: format!(
                    "entry {} is not the one the checkpoint recorded as the head: it was \
                     edited and its hash (and every hash before it) recomputed",
                    recorded.seq
                ),
            }),
            Some(_) => None,
        };
        Ok(verdict)
    }

    async fn verify_chain(&self) -> Result<Verification, StoreError> {
        let mut verifier = Verifier::whole();
        let mut after = i64::MIN;
        loop {
            let page = self.page_after(after, i64::MAX).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() as i64 == REBUILD_PAGE;
            for entry in page {
                if !verifier.push(entry) {
                    return Ok(verifier.finish());
                }
            }
            if !full {
                break;
            }
        }
        Ok(verifier.finish())
    }
}
