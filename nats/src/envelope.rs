//! The CloudEvents 1.0 JSON envelope (structured mode) every event travels in.
//!
//! `id` is deterministic — `<aggregate_type>:<aggregate_id>:<sequence>` — and doubles as the
//! JetStream `Nats-Msg-Id`, so a republished event is recognised as the same event.
//! Aurora's extension attributes carry the aggregate coordinates, the global position in the
//! event store, and the metadata of invariant 7.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One event as it travels on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always `"1.0"`.
    pub specversion: String,
    /// `<aggregate_type>:<aggregate_id>:<sequence>`.
    pub id: String,
    /// `/aurora/<aggregate_type>`.
    pub source: String,
    /// `aurora.<aggregate_type>.<EventType>.v<version>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `<aggregate_type>/<aggregate_id>`.
    pub subject: String,
    /// When the command that caused the event was accepted.
    pub time: DateTime<Utc>,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The event payload as stored.
    pub data: serde_json::Value,
    /// Aggregate type (extension).
    pub aggregatetype: String,
    /// Aggregate id (extension).
    pub aggregateid: String,
    /// Sequence within the aggregate, from 1 (extension).
    pub sequence: i64,
    /// Global position in the event store (extension).
    pub position: i64,
    /// Transaction id of the commit, the first half of the gap-safe cursor; 0 on SQLite.
    pub xid: i64,
    /// Event name without the namespace, e.g. `RunRequested` (extension).
    pub eventname: String,
    /// Event schema version (extension).
    pub eventversion: String,
    /// Who caused the event (extension).
    pub principal: String,
    /// The principal's role when it caused the event (extension; absent for anonymous
    /// principals and for events recorded before roles were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principalrole: Option<String>,
    /// Token the principal presented (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenid: Option<String>,
    /// Request id (extension).
    pub requestid: String,
    /// Client IP (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clientip: Option<String>,
    /// W3C trace context (CloudEvents distributed tracing extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl CloudEvent {
    /// The event as a run's subscribers see it (the run feed, a non-admin's event stream):
    /// without the token id and the address of whoever caused it — an admin's or the
    /// system's actions on a run are not its owner's to trace.
    pub fn for_subscribers(mut self) -> Self {
        self.tokenid = None;
        self.clientip = None;
        self
    }

    /// The deterministic event id for an aggregate's `sequence`-th event.
    pub fn event_id(aggregate_type: &str, aggregate_id: &str, sequence: i64) -> String {
        format!("{aggregate_type}:{aggregate_id}:{sequence}")
    }

    /// The `(xid, position)` cursor of this event in the global log.
    pub fn cursor(&self) -> (i64, i64) {
        (self.xid, self.position)
    }
}
