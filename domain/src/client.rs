//! The `Client` aggregate: a caller of the API as the rate limiter keys it
//! (`user:<name>` or `ip:<address>`), and whether it is blocked.
//!
//! A client that keeps exceeding its limits is blocked for a period that doubles with each
//! offence (capped); blocks and unblocks are events, so they are in the audit history,
//! survive restarts and reach every replica through the stream. The aggregate owns the
//! escalation rule; the caller supplies the clock.

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Longest reason kept.
pub const MAX_BLOCK_REASON_LEN: usize = 500;

/// A request to change a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    /// Block the client from `at` for `base × 2^(earlier offences)`, at most `max`.
    /// Nothing happens if it is already blocked at least that long.
    Block {
        /// Why (the limit it kept exceeding).
        reason: String,
        /// Now.
        at: DateTime<Utc>,
        /// The first offence's block.
        base: TimeDelta,
        /// The longest block.
        max: TimeDelta,
    },
    /// Lift a block that is in force at `at` (an admin's decision).
    Unblock {
        /// Why.
        reason: String,
        /// Now.
        at: DateTime<Utc>,
    },
}

/// Something that happened to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientEvent {
    /// The client was blocked.
    ClientBlocked {
        /// Why.
        reason: String,
        /// Until when.
        until: DateTime<Utc>,
        /// Which offence this is, from 1.
        offence: u32,
    },
    /// A block was lifted before it ended.
    ClientUnblocked {
        /// Why.
        reason: String,
    },
}

impl DomainEvent for ClientEvent {
    fn event_type(&self) -> String {
        match self {
            ClientEvent::ClientBlocked { .. } => "ClientBlocked",
            ClientEvent::ClientUnblocked { .. } => "ClientUnblocked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// Why the `Client` aggregate refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// `Unblock` for a client not blocked now.
    #[error("the client is not blocked")]
    NotBlocked,
    /// A reason longer than [`MAX_BLOCK_REASON_LEN`].
    #[error("the reason is longer than {MAX_BLOCK_REASON_LEN} characters")]
    ReasonTooLong,
}

/// A client's block state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    blocked_until: Option<DateTime<Utc>>,
    offences: u32,
}

impl Client {
    /// When the current (or last) block ends.
    pub fn blocked_until(&self) -> Option<DateTime<Utc>> {
        self.blocked_until
    }

    /// Offences so far.
    pub fn offences(&self) -> u32 {
        self.offences
    }
}

/// Offences are forgotten once a client's last block ended this long ago: the next one is
/// a first offence again (the block lengths double only while offences come close together).
pub const FORGIVEN_AFTER: TimeDelta = TimeDelta::hours(24);

impl Aggregate for Client {
    const TYPE: &'static str = "client";
    type Command = ClientCommand;
    type Event = ClientEvent;
    type Error = ClientError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            ClientCommand::Block {
                reason,
                at,
                base,
                max,
            } => {
                if reason.chars().count() > MAX_BLOCK_REASON_LEN {
                    return Err(ClientError::ReasonTooLong);
                }
                // A client that has kept within the limits for a day starts over.
                let recent = self
                    .blocked_until
                    .is_some_and(|until| at.signed_duration_since(until) < FORGIVEN_AFTER);
                let prior = if recent { self.offences } else { 0 };
                let factor = 2_i32.saturating_pow(prior.min(30));
                let length = base.checked_mul(factor).unwrap_or(max).min(max);
                let until = at
                    .checked_add_signed(length)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                if self.blocked_until.is_some_and(|current| current >= until) {
                    return Ok(());
                }
                ClientEvent::ClientBlocked {
                    reason,
                    until,
                    offence: prior + 1,
                }
            }
            ClientCommand::Unblock { reason, at } => {
                if reason.chars().count() > MAX_BLOCK_REASON_LEN {
                    return Err(ClientError::ReasonTooLong);
                }
                if self.blocked_until.is_none_or(|until| until <= at) {
                    return Err(ClientError::NotBlocked);
                }
                ClientEvent::ClientUnblocked { reason }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ClientEvent::ClientBlocked { until, offence, .. } => {
                self.blocked_until = Some(until);
                self.offences = offence;
            }
            ClientEvent::ClientUnblocked { .. } => self.blocked_until = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    use super::*;

    type ClientTest = TestFramework<Client>;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn block(minutes: i64) -> ClientCommand {
        ClientCommand::Block {
            reason: "auth".into(),
            at: at(minutes),
            base: TimeDelta::minutes(15),
            max: TimeDelta::hours(1),
        }
    }

    fn blocked(until: i64, offence: u32) -> ClientEvent {
        ClientEvent::ClientBlocked {
            reason: "auth".into(),
            until: at(until),
            offence,
        }
    }

    #[test]
    fn a_first_offence_blocks_for_the_base_period() {
        ClientTest::with(())
            .given_no_previous_events()
            .when(block(0))
            .then_expect_events(vec![blocked(15, 1)]);
    }

    #[test]
    fn repeat_offences_double_the_block_up_to_the_maximum() {
        ClientTest::with(())
            .given(vec![blocked(15, 1)])
            .when(block(100))
            .then_expect_events(vec![blocked(130, 2)]);
        ClientTest::with(())
            .given(vec![blocked(15, 1), blocked(130, 2)])
            .when(block(200))
            .then_expect_events(vec![blocked(260, 3)]);
        ClientTest::with(())
            .given(vec![blocked(15, 1), blocked(130, 2), blocked(260, 3)])
            .when(block(300))
            .then_expect_events(vec![blocked(360, 4)]);
    }

    #[test]
    fn offences_are_forgotten_after_a_day_without_one() {
        let day = 24 * 60;
        ClientTest::with(())
            .given(vec![blocked(15, 1), blocked(130, 2)])
            .when(block(130 + day - 1))
            .then_expect_events(vec![blocked(130 + day - 1 + 60, 3)]);
        ClientTest::with(())
            .given(vec![blocked(15, 1), blocked(130, 2)])
            .when(block(130 + day))
            .then_expect_events(vec![blocked(130 + day + 15, 1)]);
    }

    #[test]
    fn blocking_a_client_blocked_longer_changes_nothing() {
        ClientTest::with(())
            .given(vec![blocked(15, 1)])
            .when(ClientCommand::Block {
                reason: "auth".into(),
                at: at(0),
                base: TimeDelta::minutes(1),
                max: TimeDelta::minutes(1),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn only_a_block_in_force_can_be_lifted() {
        let lift = |minutes| ClientCommand::Unblock {
            reason: "false positive".into(),
            at: at(minutes),
        };
        ClientTest::with(())
            .given(vec![blocked(15, 1)])
            .when(lift(5))
            .then_expect_events(vec![ClientEvent::ClientUnblocked {
                reason: "false positive".into(),
            }]);
        ClientTest::with(())
            .given(vec![blocked(15, 1)])
            .when(lift(20))
            .then_expect_error(ClientError::NotBlocked);
        ClientTest::with(())
            .given_no_previous_events()
            .when(lift(0))
            .then_expect_error(ClientError::NotBlocked);
    }
}
