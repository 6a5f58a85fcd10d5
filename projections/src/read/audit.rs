//! The audit log: one entry per stored event — who, in which role, with which token, from
//! where, in which request, did what to which resource, and when — in the store's global
//! order, hash-chained so that an edited, removed or reordered entry is found.
//!
//! (Long: canonical JSON, redaction, the chain, the verifier, queries, the writer, the
//! rebuild and bulk copy live here together; their split by purpose is issue 16's. The
//! checks against the store and signed heads are in `audit/outside.rs`.)
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

use aurora_domain::metadata::ANONYMOUS;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::envelope::Envelope;
use super::projection::{Interest, Projection};
use crate::on_pool;
use crate::store::log::{count_between_in, read_after_in};
use crate::store::{Cursor, Database, StoreError, StoredEvent};

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

/// The role of entries whose event recorded none: old events, anonymous requests.
const UNKNOWN_ROLE: &str = "unknown";

/// Events per batch of the live log.
const LIVE_BATCH: i64 = 1000;

/// Events per page of a rebuild.
/// The log checked against what lies outside it: the store, and signed heads.
mod outside;

const REBUILD_PAGE: i64 = 5000;

/// Pages of [`LIVE_BATCH`] events a delivered batch that does not continue the log reads
/// from the store, at most.
const GAP_PAGES: usize = 20;

/// Entries per multi-row insert: 17 parameters each.
const ROWS_PER_INSERT: usize = 500;

const COLUMNS: &str = "seq, position, xid, recorded_at, actor, role, token_id, request_id, \
    client_ip, action, resource_type, resource_id, sequence, version, details, prev_hash, hash";
const WIDTH: usize = 17;

/// The shadow table of a rebuild.
const SHADOW: &str = "audit_log_rebuild";

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Place in the chain, from 1.
    pub seq: i64,
    /// The event's global position in the store.
    pub position: i64,
    /// When the command was accepted (RFC 3339, UTC, microseconds).
    pub time: String,
    /// The principal: a username, `anonymous`, or one of Aurora's parts (`actor:…`).
    pub actor: String,
    /// The principal's role then: `admin`, `user`, `viewer`, `system`, `anonymous` or
    /// `unknown` (events recorded before roles were).
    pub role: String,
    /// The id of the token presented.
    pub token_id: Option<String>,
    /// The request that caused it.
    pub request_id: String,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The event type, e.g. `RunRequested`, `LoginFailed`, `AccessRefused`.
    pub action: String,
    /// The aggregate type, e.g. `run`, `user`, `client`, `access`.
    pub resource_type: String,
    /// The aggregate's id.
    pub resource_id: String,
    /// The event's sequence within its aggregate.
    pub sequence: i64,
    /// The event's schema version.
    pub version: String,
    /// The event's payload with secrets removed.
    pub details: Value,
    /// The previous entry's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 over this entry's content and `prev_hash`, hex.
    pub hash: String,
    /// `details` in canonical JSON, as hashed and stored (computed once when the entry
    /// is made, the stored text when read back; empty for an entry parsed from an export,
    /// whose text is recomputed when needed).
    #[serde(skip)]
    details_text: String,
}

impl AuditEntry {
    /// The entry for `event`, following the entry `(seq − 1, prev_hash)`.
    pub fn of(event: &StoredEvent, seq: i64, prev_hash: &str) -> Self {
        let m = &event.metadata;
        let role = match (&m.role, m.principal.as_str()) {
            (Some(role), _) => role.clone(),
            (None, ANONYMOUS) => ANONYMOUS.to_string(),
            (None, _) => UNKNOWN_ROLE.to_string(),
        };
        // Payloads are `{"<EventType>": {...}}` (or a bare name for unit events): the
        // entry's action already says the type.
        let details = match &event.payload {
            Value::Object(map) if map.len() == 1 && map.contains_key(&event.event_type) => {
                map[&event.event_type].clone()
            }
            Value::String(name) if *name == event.event_type => Value::Object(Default::default()),
            other => other.clone(),
        };
        let mut entry = Self {
            seq,
            position: event.cursor.position,
            time: m.time.to_rfc3339_opts(SecondsFormat::Micros, true),
            actor: m.principal.clone(),
            role,
            token_id: m.token_id.clone(),
            request_id: m.request_id.clone(),
            client_ip: m.client_ip.clone(),
            action: event.event_type.clone(),
            resource_type: event.aggregate_type.clone(),
            resource_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            version: event.event_version.clone(),
            details: redact(details),
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
            details_text: String::new(),
        };
        entry.details_text = canonical_json(&entry.details);
        entry.hash = entry.hash_over(&entry.details_text);
        entry
    }

    /// The text fields between `position` and `sequence`, in the order the hash and the
    /// table's bulk copy both write them.
    fn text_fields(&self) -> [Option<&str>; 9] {
        [
            Some(self.time.as_str()),
            Some(self.actor.as_str()),
            Some(self.role.as_str()),
            self.token_id.as_deref(),
            Some(self.request_id.as_str()),
            self.client_ip.as_deref(),
            Some(self.action.as_str()),
            Some(self.resource_type.as_str()),
            Some(self.resource_id.as_str()),
        ]
    }

    /// `details` in canonical JSON.
    pub fn details_text(&self) -> std::borrow::Cow<'_, str> {
        if self.details_text.is_empty() {
            std::borrow::Cow::Owned(canonical_json(&self.details))
        } else {
            std::borrow::Cow::Borrowed(&self.details_text)
        }
    }

    /// SHA-256 over the content and `prev_hash` (everything but `seq` and `hash`), in
    /// canonical JSON: the array `[FORMAT, position, time, actor, role, token_id,
    /// request_id, client_ip, action, resource_type, resource_id, sequence, version,
    /// details, prev_hash]`. `seq` is an index, not content: order is proven by the links.
    pub fn content_hash(&self) -> String {
        self.hash_over(&self.details_text())
    }

    /// [`AuditEntry::content_hash`] with `details` already in canonical JSON: the array is
    /// written out directly, the same text `canonical_json` would make of it.
    fn hash_over(&self, details: &str) -> String {
        use std::io::Write;
        fn text(out: &mut Vec<u8>, value: Option<&str>) {
            match value {
                // A string in JSON, escaped as `canonical_json` escapes it.
                Some(value) => serde_json::to_writer(&mut *out, value).expect("writes to memory"),
                None => out.extend_from_slice(b"null"),
            }
        }
        let mut out = Vec::with_capacity(320 + details.len());
        out.push(b'[');
        text(&mut out, Some(FORMAT));
        write!(out, ",{}", self.position).expect("writes to memory");
        for value in self.text_fields() {
            out.push(b',');
            text(&mut out, value);
        }
        write!(out, ",{},", self.sequence).expect("writes to memory");
        text(&mut out, Some(&self.version));
        out.push(b',');
        out.extend_from_slice(details.as_bytes());
        out.push(b',');
        text(&mut out, Some(&self.prev_hash));
        out.push(b']');
        hex::encode(Sha256::digest(&out))
    }
}

/// JSON with object keys sorted at every level and no whitespace: one text per value.
///
/// `serde_json`'s compact output is exactly that: its maps are ordered by key (the
/// workspace does not enable its `preserve_order`; `canonical_json_sorts_keys_at_every_level`
/// fails if something does), and strings and numbers are written one way.
pub fn canonical_json(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value always serializes")
}

/// Is a field of this name a secret? Passwords and their hashes, secrets, keys, token
/// bytes, credentials in headers. Events are designed to carry none; this is the belt to
/// that design's braces, for events of any version.
fn is_secret(key: &str, value: &Value) -> bool {
    let lower;
    let key = if key.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = key.to_ascii_lowercase();
        lower.as_str()
    } else {
        key
    };
    [
        "password",
        "secret",
        "private_key",
        "api_key",
        "authorization",
        "cookie",
        "credential",
    ]
    .iter()
    .any(|word| key.contains(word))
        || (matches!(key, "token" | "bearer" | "biscuit") && value.is_string())
}

/// Does `value` hold a field [`redact`] would replace? Most events hold none: they are
/// then kept as they are, not rebuilt.
fn holds_secret(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| is_secret(key, value) || holds_secret(value)),
        Value::Array(items) => items.iter().any(holds_secret),
        _ => false,
    }
}

/// `value` with every secret field's value replaced by [`REDACTED`].
pub fn redact(value: Value) -> Value {
    fn rebuilt(value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(key, value)| {
                        let value = if is_secret(&key, &value) {
                            Value::String(REDACTED.to_string())
                        } else {
                            rebuilt(value)
                        };
                        (key, value)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(rebuilt).collect()),
            other => other,
        }
    }
    if holds_secret(&value) {
        rebuilt(value)
    } else {
        value
    }
}

/// The last entry of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Its place.
    pub seq: i64,
    /// Its hash: commits to every entry before it.
    pub hash: String,
}

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

/// Progress of a rebuild.
#[derive(Debug, Clone, Copy)]
pub struct RebuildProgress {
    /// Events replayed so far.
    pub done: u64,
    /// Events in the store when the rebuild began (more may arrive).
    pub total: u64,
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct Rebuilt {
    /// Events replayed.
    pub events: u64,
    /// The chain's head after the swap.
    pub head: Option<Head>,
    /// Of which, events that arrived during the rebuild and were caught up at the swap.
    pub caught_up_at_swap: u64,
}

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

    /// Appends entries for every event the store has past the log's checkpoint, in
    /// batches; returns how many.
    pub async fn catch_up(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let added = self.append_batch(LIVE_BATCH).await?;
            total += added;
            if added < LIVE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn append_batch(&self, limit: i64) -> Result<u64, StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let (cursor, head) = lock_checkpoint!(&mut *tx);
            check_tail!(&mut *tx, head);
            let events = read_after_in!(self.db, &mut *tx, cursor, limit);
            let Some(last) = events.last() else {
                return Ok(0);
            };
            let last = last.cursor;
            let (seq, prev) = head.map_or((0, GENESIS.to_string()), |h| (h.seq, h.hash));
            let entries = chain(events.iter(), seq, &prev);
            insert_entries!(&mut *tx, "audit_log", &entries, &events);
            let new_head = entries.last().expect("one entry per event");
            save_checkpoint!(&mut *tx, last, new_head.seq, &new_head.hash);
            tx.commit().await?;
            let head = new_head.seq;
            self.appended.send_modify(|h| *h = (*h).max(head));
            Ok(events.len() as u64)
        })
    }

    /// Appends entries for delivered events, without reading them from the store, when
    /// they continue the log: every event the store has between the log's checkpoint and
    /// the last of them is among them (`count_between_in`). Otherwise —
    /// the bus lost or reordered something, another replica is behind or ahead — the log
    /// catches up from the store, in the store's order.
    async fn append_delivered(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        let mut events: Vec<&StoredEvent> = batch.iter().map(|e| &e.event).collect();
        events.sort_by_key(|e| e.cursor);
        events.dedup_by_key(|e| e.cursor);
        // An event published without its principal's role cannot make the entry the store
        // makes: read it from the store.
        let complete = batch.iter().all(|e| e.complete);
        if !(complete && self.append_if_continuous(events).await?) {
            // Bounded, to stay within the consumer's ack wait: a longer backlog is taken up
            // by the next batches, which find the same gap.
            for _ in 0..GAP_PAGES {
                if self.append_batch(LIVE_BATCH).await? < LIVE_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// [`AuditLog::append_delivered`]'s transaction: `false` if `events` (in cursor order)
    /// do not continue the log.
    async fn append_if_continuous(
        &self,
        mut events: Vec<&StoredEvent>,
    ) -> Result<bool, StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let (cursor, head) = lock_checkpoint!(&mut *tx);
            check_tail!(&mut *tx, head);
            events.retain(|e| e.cursor > cursor);
            let Some(last) = events.last().map(|e| e.cursor) else {
                return Ok(true); // all applied already: a redelivery
            };
            if count_between_in!(self.db, &mut *tx, cursor, last) != events.len() as i64 {
                return Ok(false);
            }
            let (seq, prev) = head.map_or((0, GENESIS.to_string()), |h| (h.seq, h.hash));
            let entries = chain(events.iter().copied(), seq, &prev);
            insert_entries!(&mut *tx, "audit_log", &entries, &events);
            let new_head = entries.last().expect("one entry per event");
            save_checkpoint!(&mut *tx, last, new_head.seq, &new_head.hash);
            tx.commit().await?;
            let head = new_head.seq;
            self.appended.send_modify(|h| *h = (*h).max(head));
            Ok(true)
        })
    }

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

    /// Up to a page of entries after `after`, up to and including `to`, in chain order.
    async fn page_after(&self, after: i64, to: i64) -> Result<Vec<AuditEntry>, StoreError> {
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

    /// The chain's head as a replay of the whole store computes it, writing nothing.
    pub async fn replayed_head(&self) -> Result<Option<Head>, StoreError> {
        let mut cursor = Cursor::START;
        let (mut seq, mut prev) = (0, GENESIS.to_string());
        loop {
            let events = self.db.read_after(cursor, REBUILD_PAGE).await?;
            let Some(last) = events.last() else { break };
            cursor = last.cursor;
            let entries = chain(events.iter(), seq, &prev);
            let last = entries.last().expect("one entry per event");
            (seq, prev) = (last.seq, last.hash.clone());
        }
        Ok((seq > 0).then_some(Head { seq, hash: prev }))
    }

    /// Replays the whole store into a shadow table and swaps it in, while the live log
    /// keeps serving; `progress` hears of every page. Rebuilds running at once each build
    /// a shadow of their own; each swap is complete, the last one stays.
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(RebuildProgress),
    ) -> Result<Rebuilt, StoreError> {
        let total = self.db.count_after(Cursor::START, None, i64::MAX).await? as u64;
        let generation = chrono::Utc::now().timestamp_micros();
        let shadow = format!("{SHADOW}_{generation}");
        on_pool!(&self.db, |pool| {
            sqlx::query(&format!(
                "CREATE TABLE {shadow} (seq bigint PRIMARY KEY, position bigint NOT NULL, \
                 xid bigint NOT NULL, recorded_at text NOT NULL, actor text NOT NULL, \
                 role text NOT NULL, token_id text, request_id text NOT NULL, client_ip text, \
                 action text NOT NULL, resource_type text NOT NULL, resource_id text NOT NULL, \
                 sequence bigint NOT NULL, version text NOT NULL, details text NOT NULL, \
                 prev_hash text NOT NULL, hash text NOT NULL)"
            ))
            .execute(pool)
            .await?;
        });
        // SQLite: indexes first, so that no statement holds the write lock for long (an
        // index over millions of rows would outlast writers' busy timeout). Postgres:
        // indexes after the rows, cheaper than maintaining them, and writers do not wait.
        let indexes = index_statements(&shadow, generation);
        if let Database::Sqlite(pool) = &self.db {
            for statement in &indexes {
                sqlx::query(statement).execute(pool).await?;
            }
        }
        let outcome = self
            .fill_and_swap(&shadow, generation, total, &mut progress)
            .await;
        if outcome.is_err() {
            on_pool!(&self.db, |pool| {
                let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {shadow}"))
                    .execute(pool)
                    .await;
            });
        }
        outcome
    }

    async fn fill_and_swap(
        &self,
        shadow: &str,
        generation: i64,
        total: u64,
        progress: &mut impl FnMut(RebuildProgress),
    ) -> Result<Rebuilt, StoreError> {
        // Replay: a reader task stays a page ahead of the writer.
        let (pages, mut next) =
            tokio::sync::mpsc::channel::<Result<Vec<StoredEvent>, StoreError>>(2);
        let reader = tokio::spawn({
            let db = self.db.clone();
            async move {
                let mut cursor = Cursor::START;
                loop {
                    let page = db.read_after(cursor, REBUILD_PAGE).await;
                    let last = page.as_ref().ok().and_then(|p| p.last().map(|e| e.cursor));
                    let full = page.as_ref().is_ok_and(|p| p.len() as i64 == REBUILD_PAGE);
                    if pages.send(page).await.is_err() || !full {
                        return;
                    }
                    cursor = last.expect("a full page has a last event");
                }
            }
        });
        // …and a writer task a page behind it: reading, chaining and writing overlap.
        let (to_write, mut writes) =
            tokio::sync::mpsc::channel::<(Vec<AuditEntry>, Vec<StoredEvent>)>(2);
        let writer = tokio::spawn({
            let (db, shadow) = (self.db.clone(), shadow.to_string());
            async move {
                while let Some((entries, events)) = writes.recv().await {
                    match &db {
                        Database::Postgres(pool) => {
                            copy_entries(pool, &shadow, &entries, &events).await?
                        }
                        Database::Sqlite(pool) => {
                            let mut tx = pool.begin().await?;
                            insert_entries!(&mut *tx, shadow, &entries, &events);
                            tx.commit().await?;
                        }
                    }
                }
                Ok::<_, StoreError>(())
            }
        });
        let mut cursor = Cursor::START;
        let (mut seq, mut prev) = (0_i64, GENESIS.to_string());
        let mut done = 0_u64;
        let mut failed = None;
        while let Some(page) = next.recv().await {
            let events = match page {
                Ok(events) => events,
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            };
            let Some(last) = events.last() else { break };
            cursor = last.cursor;
            let entries = chain(events.iter(), seq, &prev);
            let tail = entries.last().expect("one entry per event");
            (seq, prev) = (tail.seq, tail.hash.clone());
            done += events.len() as u64;
            if to_write.send((entries, events)).await.is_err() {
                break; // the writer failed: its error follows
            }
            progress(RebuildProgress { done, total });
        }
        // Both tasks are joined before anything is returned: the shadow may be dropped on
        // error only once nothing writes into it.
        drop(to_write);
        drop(next);
        let joined = |e: tokio::task::JoinError| StoreError::Downstream(format!("rebuild: {e}"));
        let written = writer.await.map_err(joined).and_then(|w| w);
        reader.await.map_err(joined)?;
        if let Some(error) = failed {
            return Err(error);
        }
        written?;
        if let Database::Postgres(pool) = &self.db {
            // Each index on a connection of its own, at once.
            let statements = index_statements(shadow, generation);
            futures::future::try_join_all(
                statements
                    .iter()
                    .map(|statement| sqlx::query(statement).execute(pool)),
            )
            .await?;
        }
        // Every replayed event has its entry, and nothing else is there.
        let rows: i64 = on_pool!(&self.db, |pool| sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {shadow}"
        ))
        .fetch_one(pool)
        .await)?;
        if rows != seq {
            return Err(StoreError::Corrupt(format!(
                "the rebuilt log holds {rows} entries for {seq} events"
            )));
        }
        // The swap: the live log waits on the checkpoint lock meanwhile. On Postgres the
        // renames wait for readers of the live table; rather than queue everyone behind
        // them for long, give up after a while and try again.
        let mut attempt = 0;
        let caught_up = loop {
            attempt += 1;
            // An async block: `?` inside ends this attempt, not the rebuild.
            let swapped: Result<(i64, String, u64), StoreError> =
                on_pool!(&self.db, |pool| async {
                    let mut tx = pool.begin().await?;
                    if matches!(self.db, Database::Postgres(_)) {
                        sqlx::query("SET LOCAL lock_timeout = '5s'")
                            .execute(&mut *tx)
                            .await?;
                    }
                    lock_checkpoint!(&mut *tx);
                    let (mut c, mut q, mut h, mut n) = (cursor, seq, prev.clone(), 0_u64);
                    loop {
                        let events = read_after_in!(self.db, &mut *tx, c, REBUILD_PAGE);
                        let Some(last) = events.last() else { break };
                        c = last.cursor;
                        let entries = chain(events.iter(), q, &h);
                        let tail = entries.last().expect("one entry per event");
                        (q, h) = (tail.seq, tail.hash.clone());
                        insert_entries!(&mut *tx, shadow, &entries, &events);
                        n += events.len() as u64;
                    }
                    // Counted before the lock; here only its end (a primary-key lookup).
                    let highest: Option<i64> =
                        sqlx::query_scalar(&format!("SELECT max(seq) FROM {shadow}"))
                            .fetch_one(&mut *tx)
                            .await?;
                    if highest.unwrap_or(0) != q {
                        return Err(StoreError::Corrupt(format!(
                            "the rebuilt log ends at {highest:?}, expected {q}"
                        )));
                    }
                    crate::store::swap_in!(&mut *tx, "audit_log", shadow);
                    save_checkpoint!(&mut *tx, c, q, &h);
                    tx.commit().await?;
                    Ok((q, h, n))
                }
                .await);
            match swapped {
                Ok((q, h, n)) => {
                    (seq, prev) = (q, h);
                    break n;
                }
                Err(StoreError::Database(error)) if attempt < 5 && is_lock_timeout(&error) => {
                    tracing::warn!(attempt, "the audit log is busy; retrying the swap");
                }
                Err(error) => return Err(error),
            }
        };
        done += caught_up;
        self.appended.send_modify(|h| *h = (*h).max(seq));
        progress(RebuildProgress { done, total });
        Ok(Rebuilt {
            events: done,
            head: (seq > 0).then_some(Head { seq, hash: prev }),
            caught_up_at_swap: caught_up,
        })
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

/// Postgres's "lock not available" (a `lock_timeout` ran out).
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

/// Writes `entries` into `table` with one `COPY` (text format): several times faster than
/// inserts for a rebuild's bulk.
async fn copy_entries(
    pool: &sqlx::PgPool,
    table: &str,
    entries: &[AuditEntry],
    events: &[StoredEvent],
) -> Result<(), StoreError> {
    use sqlx::postgres::PgPoolCopyExt;
    let mut data = String::with_capacity(entries.len() * 600);
    for (entry, event) in entries.iter().zip(events) {
        let texts = [
            entry.seq.to_string(),
            entry.position.to_string(),
            event.cursor.xid.to_string(),
        ];
        for text in &texts {
            data.push_str(text);
            data.push('\t');
        }
        for text in entry.text_fields() {
            copy_field(&mut data, text);
            data.push('\t');
        }
        data.push_str(&entry.sequence.to_string());
        data.push('\t');
        copy_field(&mut data, Some(&entry.version));
        data.push('\t');
        copy_field(&mut data, Some(&entry.details_text()));
        data.push('\t');
        copy_field(&mut data, Some(&entry.prev_hash));
        data.push('\t');
        copy_field(&mut data, Some(&entry.hash));
        data.push('\n');
    }
    let mut copy = pool
        .copy_in_raw(&format!("COPY {table} ({COLUMNS}) FROM STDIN"))
        .await?;
    copy.send(data.as_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// One field of `COPY … FROM STDIN` text format: `\N` for null, backslash escapes for
/// the characters that delimit.
fn copy_field(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The entries of `events`, following entry `(seq, prev)`.
fn chain<'a>(
    events: impl ExactSizeIterator<Item = &'a StoredEvent>,
    seq: i64,
    prev: &str,
) -> Vec<AuditEntry> {
    let mut entries = Vec::with_capacity(events.len());
    let mut prev = prev.to_string();
    for (i, event) in events.enumerate() {
        let entry = AuditEntry::of(event, seq + 1 + i as i64, &prev);
        prev.clone_from(&entry.hash);
        entries.push(entry);
    }
    entries
}

/// The log's indexes, named by generation (index names are global; a rebuild's new table
/// must not collide with the live one's).
fn index_statements(table: &str, generation: i64) -> Vec<String> {
    [
        ("actor", "actor, seq"),
        ("resource", "resource_type, resource_id, seq"),
        ("action", "action, seq"),
        ("time", "recorded_at"),
    ]
    .iter()
    .map(|(name, columns)| {
        format!("CREATE INDEX audit_log_by_{name}_{generation} ON {table} ({columns})")
    })
    .collect()
}

/// Locks the log's checkpoint row (creating it if need be) inside a transaction and
/// returns the cursor and the chain's head recorded with it. A write comes first, so SQLite
/// takes its write lock up front.
macro_rules! lock_checkpoint {
    ($tx:expr) => {{
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, xid, position) VALUES ($1, 0, 0) \
             ON CONFLICT (projection) DO UPDATE SET xid = projection_checkpoints.xid",
        )
        .bind(NAME)
        .execute($tx)
        .await?;
        let (xid, position, seq, hash): (i64, i64, i64, String) = sqlx::query_as(
            "SELECT xid, position, head_seq, head_hash FROM projection_checkpoints \
             WHERE projection = $1",
        )
        .bind(NAME)
        .fetch_one($tx)
        .await?;
        (
            Cursor { xid, position },
            (seq > 0).then_some(Head { seq, hash }),
        )
    }};
}
use lock_checkpoint;

/// Fails if the log's last entry is not the head its checkpoint recorded.
macro_rules! check_tail {
    ($tx:expr, $head:expr) => {{
        let tail: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional($tx)
                .await?;
        let tail = tail.map(|(seq, hash)| Head { seq, hash });
        if tail != $head {
            return Err(StoreError::Corrupt(format!(
                "the audit log ends at {tail:?} but its checkpoint recorded {:?}: \
                 entries were removed or altered; run `aurora audit verify`, then \
                 `aurora projections rebuild audit-log`",
                $head
            )));
        }
    }};
}
use check_tail;

macro_rules! save_checkpoint {
    ($tx:expr, $cursor:expr, $seq:expr, $hash:expr) => {
        sqlx::query(
            "UPDATE projection_checkpoints SET xid = $2, position = $3, head_seq = $4, \
             head_hash = $5 WHERE projection = $1",
        )
        .bind(NAME)
        .bind($cursor.xid)
        .bind($cursor.position)
        .bind($seq)
        .bind($hash)
        .execute($tx)
        .await?
    };
}
use save_checkpoint;

/// Inserts `entries` (of `events`, one each) into `table`, several rows per statement.
macro_rules! insert_entries {
    ($tx:expr, $table:expr, $entries:expr, $events:expr) => {
        for (rows, events) in $entries
            .chunks(ROWS_PER_INSERT)
            .zip($events.chunks(ROWS_PER_INSERT))
        {
            let sql = crate::store::multi_row_insert(&$table, COLUMNS, WIDTH, rows.len());
            let mut insert = sqlx::query(&sql).persistent(rows.len() == ROWS_PER_INSERT);
            for (entry, event) in rows.iter().zip(events) {
                insert = insert
                    .bind(entry.seq)
                    .bind(entry.position)
                    .bind(event.cursor.xid)
                    .bind(&entry.time)
                    .bind(&entry.actor)
                    .bind(&entry.role)
                    .bind(&entry.token_id)
                    .bind(&entry.request_id)
                    .bind(&entry.client_ip)
                    .bind(&entry.action)
                    .bind(&entry.resource_type)
                    .bind(&entry.resource_id)
                    .bind(entry.sequence)
                    .bind(&entry.version)
                    .bind(entry.details_text().into_owned())
                    .bind(&entry.prev_hash)
                    .bind(&entry.hash);
            }
            insert.execute($tx).await?;
        }
    };
}
use insert_entries;

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
use read_entry;

#[cfg(test)]
mod tests {
    use super::*;
    use aurora_domain::EventMetadata;
    use serde_json::json;

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
