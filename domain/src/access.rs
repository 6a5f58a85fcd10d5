//! Refused requests that matter for security: a request answered 401, 403 or 429, a 422
//! caused by another user's resource, or a login that failed without a user to record it
//! on — and, when a caller's budget of recorded refusals is spent, one event that says so.
//!
//! Each refusal is an aggregate of its own (a fresh id, one event): recording one never
//! loads or contends with another, and the refusal still reaches the store, the stream
//! and the audit trail like every other event, with the request's metadata (who tried,
//! with which token, from where).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Longest route, method or reason kept (longer ones are cut).
pub const MAX_FIELD_LEN: usize = 200;

/// What was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The HTTP method.
    pub method: String,
    /// The route template (not the raw path: bounded, and no ids of other people's data).
    pub route: String,
    /// 401, 403, 422 or 429.
    pub status: u16,
    /// The problem's kind (e.g. `invalid-token`, `forbidden`, `login-failed`).
    pub reason: String,
}

impl Refusal {
    /// A refusal with every field cut to [`MAX_FIELD_LEN`] characters.
    pub fn new(method: &str, route: &str, status: u16, reason: &str) -> Self {
        let cut = |s: &str| s.chars().take(MAX_FIELD_LEN).collect::<String>();
        Self {
            method: cut(method),
            route: cut(route),
            status,
            reason: cut(reason),
        }
    }
}

/// Record a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordRefusal {
    /// One refused request.
    Refused(Refusal),
    /// The refused request that spent its caller's budget: from here on, for the rest of
    /// the budget's window, the caller's refusals are counted, not stored one by one.
    Overflowed(Refusal),
}

/// Something that happened at the door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessEvent {
    /// A request was refused.
    AccessRefused(Refusal),
    /// A request was refused, and its caller's budget of recorded refusals is spent: the
    /// caller's further refusals in the window are counted
    /// (`aurora_refusals_unrecorded_total`), not stored.
    RefusalsOverflowed(Refusal),
}

impl DomainEvent for AccessEvent {
    fn event_type(&self) -> String {
        match self {
            AccessEvent::AccessRefused(_) => "AccessRefused",
            AccessEvent::RefusalsOverflowed(_) => "RefusalsOverflowed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// Why a refusal was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The id already holds a refusal: ids are single-use.
    #[error("this refusal id is already used")]
    AlreadyRecorded,
}

/// One refusal.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Access {
    refusal: Option<Refusal>,
}

impl Aggregate for Access {
    const TYPE: &'static str = "access";
    type Command = RecordRefusal;
    type Event = AccessEvent;
    type Error = AccessError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.refusal.is_some() {
            return Err(AccessError::AlreadyRecorded);
        }
        let event = match command {
            RecordRefusal::Refused(refusal) => AccessEvent::AccessRefused(refusal),
            RecordRefusal::Overflowed(refusal) => AccessEvent::RefusalsOverflowed(refusal),
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AccessEvent::AccessRefused(refusal) | AccessEvent::RefusalsOverflowed(refusal) => {
                self.refusal = Some(refusal)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    #[test]
    fn a_refusal_is_recorded_once_with_its_fields_cut_to_size() {
        let long = "x".repeat(MAX_FIELD_LEN + 50);
        let refusal = Refusal::new("GET", &long, 401, "invalid-token");
        assert_eq!(refusal.route.chars().count(), MAX_FIELD_LEN);
        TestFramework::<Access>::with(())
            .given_no_previous_events()
            .when(RecordRefusal::Refused(refusal.clone()))
            .then_expect_events(vec![AccessEvent::AccessRefused(refusal.clone())]);
        TestFramework::<Access>::with(())
            .given_no_previous_events()
            .when(RecordRefusal::Overflowed(refusal.clone()))
            .then_expect_events(vec![AccessEvent::RefusalsOverflowed(refusal.clone())]);
        TestFramework::<Access>::with(())
            .given(vec![AccessEvent::AccessRefused(refusal.clone())])
            .when(RecordRefusal::Refused(refusal))
            .then_expect_error(AccessError::AlreadyRecorded);
    }
}
