//! The log checked against what lies outside it: the store it was written from
//! ([`AuditLog::compare_with_store`]), heads signed and published outside the database
//! ([`AuditLog::check_heads`]), and what a signer checks before it signs
//! ([`AuditLog::links_hold`]).

use super::entry::chain;
use super::rebuild::REBUILD_PAGE;
use super::{AuditLog, Finding, Head, Tampering, GENESIS};
use crate::on_pool;
use crate::store::{Cursor, StoreError};

/// Links read at once by [`AuditLog::links_hold`] (three short columns a row).
const LINKS_PAGE: i64 = 50_000;

impl AuditLog {
    /// Checks that the log after `from` up to and including entry `to` extends `from`:
    /// every entry there, numbered without a gap, each naming the one before as its
    /// `prev_hash`. `None` if it does. This is what a signer checks before it signs `to`, so
    /// that a signed head always extends the last one; it reads three short columns, not
    /// the entries (an entry whose content does not match its hash is the chain check's to
    /// find, and one who can write the table can compute hashes anyway).
    pub async fn links_hold(&self, from: &Head, to: i64) -> Result<Option<Finding>, StoreError> {
        let (mut seq, mut hash) = (from.seq, from.hash.clone());
        while seq < to {
            let page: Vec<(i64, String, String)> = on_pool!(&self.db, |pool| sqlx::query_as(
                "SELECT seq, prev_hash, hash FROM audit_log WHERE seq > $1 AND seq <= $2 \
                 ORDER BY seq LIMIT $3"
            )
            .bind(seq)
            .bind(to)
            .bind(LINKS_PAGE)
            .fetch_all(pool)
            .await)?;
            if page.is_empty() {
                break;
            }
            for (next, prev_hash, next_hash) in page {
                if next != seq + 1 {
                    return Ok(Some(Finding {
                        kind: Tampering::Removed,
                        seq: seq + 1,
                        detail: format!("entries {} to {} are missing", seq + 1, next - 1),
                    }));
                }
                if prev_hash != hash {
                    return Ok(Some(Finding {
                        kind: Tampering::Changed,
                        seq: next,
                        detail: format!("entry {next} does not link to entry {seq}"),
                    }));
                }
                (seq, hash) = (next, next_hash);
            }
        }
        Ok((seq != to).then(|| Finding {
            kind: Tampering::Removed,
            seq: seq + 1,
            detail: format!("entries {} to {to} are missing", seq + 1),
        }))
    }

    /// Replays the whole store and compares the entries it produces with the log's, entry
    /// by entry: the first that differs is [`Tampering::Rewritten`] (an event changed or
    /// removed after the log recorded it). Events past the log's head (not yet logged) are
    /// not a finding; log entries the store no longer produces are.
    pub async fn compare_with_store(&self) -> Result<Option<Finding>, StoreError> {
        let Some(head) = self.head().await? else {
            return Ok(None);
        };
        let mut cursor = Cursor::START;
        let (mut seq, mut prev) = (0, GENESIS.to_string());
        while seq < head.seq {
            let events = self.db.read_after(cursor, REBUILD_PAGE).await?;
            let Some(last) = events.last() else { break };
            cursor = last.cursor;
            let entries = chain(events.iter(), seq, &prev);
            let (first, end) = (seq + 1, seq + entries.len() as i64);
            let logged: Vec<(i64, String, i64)> = on_pool!(&self.db, |pool| sqlx::query_as(
                "SELECT seq, hash, position FROM audit_log WHERE seq >= $1 AND seq <= $2 \
                 ORDER BY seq"
            )
            .bind(first)
            .bind(end)
            .fetch_all(pool)
            .await)?;
            let mut logged = logged.into_iter().peekable();
            for entry in &entries {
                if entry.seq > head.seq {
                    break;
                }
                let found = logged.next_if(|(s, _, _)| *s == entry.seq);
                let differs = match &found {
                    Some((_, hash, _)) => *hash != entry.hash,
                    // A hole in the log is the chain check's to name; here, the store has
                    // the entry and the log does not.
                    None => true,
                };
                if differs {
                    let position = found.map_or(entry.position, |(_, _, p)| p);
                    return Ok(Some(Finding {
                        kind: Tampering::Rewritten,
                        seq: entry.seq,
                        detail: format!(
                            "entry {} is not what the store's event at position {position} \
                             produces: the event was rewritten after it was logged, or the \
                             log was",
                            entry.seq
                        ),
                    }));
                }
            }
            let last = entries.last().expect("one entry per event");
            (seq, prev) = (last.seq, last.hash.clone());
        }
        if seq < head.seq {
            return Ok(Some(Finding {
                kind: Tampering::Rewritten,
                seq: seq + 1,
                detail: format!(
                    "the log holds entries {} to {} but the store no longer has their events: \
                     they were deleted",
                    seq + 1,
                    head.seq
                ),
            }));
        }
        Ok(None)
    }

    /// Checks the log against heads signed and published outside the database (their
    /// signatures checked by the caller), in any order: each must name an entry the log
    /// holds, with that hash.
    pub async fn check_heads(&self, heads: &[Head]) -> Result<Option<Finding>, StoreError> {
        let mut heads: Vec<&Head> = heads.iter().collect();
        heads.sort_by_key(|h| h.seq);
        let end = self.head().await?.map_or(0, |h| h.seq);
        for batch in heads.chunks(500) {
            // Numbers, not user text: inlined.
            let seqs: Vec<String> = batch.iter().map(|h| h.seq.to_string()).collect();
            let sql = format!(
                "SELECT seq, hash FROM audit_log WHERE seq IN ({})",
                seqs.join(",")
            );
            let rows: Vec<(i64, String)> =
                on_pool!(&self.db, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
            let logged: std::collections::HashMap<i64, String> = rows.into_iter().collect();
            for head in batch {
                match logged.get(&head.seq) {
                    None => {
                        return Ok(Some(Finding {
                            kind: Tampering::Removed,
                            seq: head.seq,
                            detail: format!(
                                "entry {} was signed and published, and the log does not hold \
                                 it (it ends at {end}): the log was cut",
                                head.seq
                            ),
                        }))
                    }
                    Some(hash) if *hash != head.hash => {
                        return Ok(Some(Finding {
                            kind: Tampering::Rechained,
                            seq: head.seq,
                            detail: format!(
                                "entry {} is not the one signed and published as the head then: \
                                 the chain was recomputed through it",
                                head.seq
                            ),
                        }))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(None)
    }
}
