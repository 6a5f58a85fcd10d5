//! An entry of the log and its hash: what an event becomes (unwrapped, secrets redacted),
//! the canonical JSON it is hashed in, and the chain that links entries.

use aurora_domain::metadata::ANONYMOUS;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{FORMAT, REDACTED};
use crate::store::StoredEvent;

/// The role of entries whose event recorded none: old events, anonymous requests.
const UNKNOWN_ROLE: &str = "unknown";

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
    pub(super) details_text: String,
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
    pub(super) fn text_fields(&self) -> [Option<&str>; 9] {
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

/// The entries of `events`, following entry `(seq, prev)`.
pub(super) fn chain<'a>(
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
