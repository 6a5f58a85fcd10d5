//! An event as the read side holds it: decoded once, shared by every projection on the
//! replica.
//!
//! A message from the bus is decoded once (by the bus) into a [`CloudEvent`]; that is
//! turned into the store's own [`StoredEvent`] by moving its fields (no copy of the
//! payload), so projections fed from the bus and projections catching up from the store
//! see the same type. The typed payload of a run event is decoded at most once per
//! envelope, on first use, and borrowed by every projection that asks.

use std::sync::{Arc, OnceLock};

use aurora_domain::metadata::ANONYMOUS;
use aurora_domain::run::RunEvent;
use aurora_domain::EventMetadata;
use aurora_nats::CloudEvent;
use serde::Deserialize;

use crate::store::{Cursor, StoreError, StoredEvent};

/// One event, decoded once.
#[derive(Debug)]
pub struct Envelope {
    /// The event as the store has it.
    pub event: StoredEvent,
    /// Whether every attribute the store has is here: an event published by an older
    /// relay may lack its principal's role, and a projection that records the role must
    /// then read it from the store.
    pub complete: bool,
    run: OnceLock<Result<RunEvent, String>>,
}

/// Events delivered together, shared by the projections they are handed to.
pub type Batch = Arc<[Arc<Envelope>]>;

impl Envelope {
    /// An envelope around an event read from the store.
    pub fn stored(event: StoredEvent) -> Self {
        Self {
            event,
            complete: true,
            run: OnceLock::new(),
        }
    }

    /// An envelope around an event delivered by the bus; its fields are moved, not copied.
    pub fn delivered(event: CloudEvent) -> Self {
        let complete = event.principalrole.is_some() || event.principal == ANONYMOUS;
        let metadata = EventMetadata {
            principal: event.principal,
            token_id: event.tokenid,
            request_id: event.requestid,
            client_ip: event.clientip,
            time: event.time,
            traceparent: event.traceparent,
            role: event.principalrole,
        };
        Self {
            event: StoredEvent {
                cursor: Cursor {
                    xid: event.xid,
                    position: event.position,
                },
                aggregate_type: event.aggregatetype,
                aggregate_id: event.aggregateid,
                sequence: event.sequence,
                event_type: event.eventname,
                event_version: event.eventversion,
                payload: event.data,
                metadata,
            },
            complete,
            run: OnceLock::new(),
        }
    }

    /// Its place in the global log.
    pub fn cursor(&self) -> Cursor {
        self.event.cursor
    }

    /// The typed run event (decoded on first use, then shared); an error names the event
    /// that could not be read.
    pub fn run_event(&self) -> Result<&RunEvent, StoreError> {
        self.run
            .get_or_init(|| RunEvent::deserialize(&self.event.payload).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| {
                StoreError::Corrupt(format!(
                    "run {} event {}: {e}",
                    self.event.aggregate_id, self.event.sequence
                ))
            })
    }

    /// `<aggregate_type>:<aggregate_id>:<sequence>`, the id it travels under.
    pub fn id(&self) -> String {
        CloudEvent::event_id(
            &self.event.aggregate_type,
            &self.event.aggregate_id,
            self.event.sequence,
        )
    }
}

/// Wraps events read from the store.
pub fn from_store(events: Vec<StoredEvent>) -> Vec<Arc<Envelope>> {
    events
        .into_iter()
        .map(|e| Arc::new(Envelope::stored(e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> StoredEvent {
        let mut metadata = EventMetadata::new("alice", "req-1");
        metadata.role = Some("user".into());
        metadata.token_id = Some("tok".into());
        StoredEvent {
            cursor: Cursor {
                xid: 9,
                position: 42,
            },
            aggregate_type: "run".into(),
            aggregate_id: "r1".into(),
            sequence: 3,
            event_type: "RunCancelled".into(),
            event_version: "1".into(),
            payload: serde_json::json!({"RunCancelled": {"reason": "enough"}}),
            metadata,
        }
    }

    #[test]
    fn a_delivered_event_is_the_stored_event_it_was_published_from() {
        let event = stored();
        let envelope = Envelope::delivered(event.to_cloud_event());
        assert!(envelope.complete);
        assert_eq!(envelope.event, event);
        assert_eq!(envelope.id(), "run:r1:3");
        assert!(matches!(
            envelope.run_event().unwrap(),
            RunEvent::RunCancelled { reason: Some(r) } if r == "enough"
        ));
    }

    #[test]
    fn an_event_without_its_principals_role_is_incomplete_unless_anonymous() {
        let mut cloud = stored().to_cloud_event();
        cloud.principalrole = None;
        assert!(!Envelope::delivered(cloud.clone()).complete);
        cloud.principal = ANONYMOUS.into();
        assert!(Envelope::delivered(cloud).complete);
    }

    #[test]
    fn a_payload_that_is_no_run_event_is_an_error_naming_it() {
        let mut event = stored();
        event.payload = serde_json::json!({"Nonsense": {}});
        let error = Envelope::stored(event).run_event().unwrap_err();
        assert!(error.to_string().contains("run r1 event 3"), "{error}");
    }
}
