//! The event bus contract shared by JetStream and the in-process bus.
//!
//! Semantics both implementations keep:
//! - one stream per prefix holding every event, in publish order;
//! - publishing with a message id that was already accepted is reported as a duplicate and
//!   stores nothing (JetStream: within the stream's duplicate window);
//! - durable consumers deliver matching messages in stream order, at least once: a message
//!   not acked before the consumer is dropped is delivered again to the next consumer of the
//!   same durable name.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::HashSet;
use std::sync::OnceLock;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::{CloudEvent, Subjects};

/// What went wrong talking to the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus could not be reached or refused the request.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// A message on the bus could not be decoded as an Aurora event.
    #[error("undecodable message at stream sequence {sequence}: {reason}")]
    Decode {
        /// Stream sequence of the message.
        sequence: u64,
        /// What was wrong with it.
        reason: String,
    },
}

impl BusError {
    /// Wraps any displayable error as [`BusError::Unavailable`].
    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        BusError::Unavailable(error.to_string())
    }

    /// Does it say the stream is gone (a publish no stream took, a lookup of a stream that
    /// is not there)?
    pub fn is_stream_missing(&self) -> bool {
        let BusError::Unavailable(message) = self else {
            return false;
        };
        message.contains("no stream found") || message.contains("stream not found")
    }
}

/// How the stream acknowledged one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Stream sequence of the stored (or earlier, for a duplicate) message.
    pub stream_sequence: u64,
    /// The message id had been seen before: nothing was stored.
    pub duplicate: bool,
}

/// Counters of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamState {
    /// Messages currently stored.
    pub messages: u64,
    /// Sequence of the last message ever stored (0 if none).
    pub last_sequence: u64,
}

/// Labels of consumer metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ConsumerLabels {
    /// The durable consumer.
    pub consumer: String,
}

/// Messages delivered again to a durable consumer (not acked in time, given back, or the
/// consumer restarted before acking them), by consumer. Process-wide: every bus in the
/// process counts here, and the gateway exports it.
pub fn redeliveries() -> &'static Family<ConsumerLabels, Counter> {
    static REDELIVERIES: OnceLock<Family<ConsumerLabels, Counter>> = OnceLock::new();
    REDELIVERIES.get_or_init(Family::default)
}

pub(crate) fn count_redelivery(consumer: &str) {
    redeliveries()
        .get_or_create(&ConsumerLabels {
            consumer: consumer.to_string(),
        })
        .inc();
}

/// One event handed out by a durable consumer; ack it once it has been processed.
pub struct Delivery {
    /// The event.
    pub event: CloudEvent,
    /// Stream sequence of the message.
    pub stream_sequence: u64,
    pub(crate) acker: Acker,
}

/// The acknowledgement half of a [`Delivery`] whose event was taken (see
/// [`Delivery::split`]).
pub struct Ack {
    /// Stream sequence of the message.
    pub stream_sequence: u64,
    acker: Acker,
}

impl Ack {
    /// Acknowledges the message (see [`Delivery::ack`]).
    pub async fn ack(self) -> Result<(), BusError> {
        Delivery::ack_with(self.acker).await
    }

    /// Gives the message back, to be delivered again after `delay` (see [`Delivery::nak`]).
    pub async fn nak(self, delay: std::time::Duration) -> Result<(), BusError> {
        Delivery::nak_with(self.acker, delay).await
    }
}

pub(crate) enum Acker {
    JetStream(Box<async_nats::jetstream::Message>),
    /// An in-process bus's (`memory::MemoryBus`): the bus depends on this module, not
    /// this module on it.
    InProcess(Box<dyn InProcessAck>),
}

/// Acknowledges a message of an in-process bus.
pub(crate) trait InProcessAck: Send + Sync {
    /// It will not be delivered to this durable again.
    fn ack(self: Box<Self>);
    /// Deliver it again after `delay`.
    fn nak(self: Box<Self>, delay: std::time::Duration);
}

impl Delivery {
    /// The event, and what acknowledges it: the event is moved out, not copied.
    pub fn split(self) -> (CloudEvent, Ack) {
        let ack = Ack {
            stream_sequence: self.stream_sequence,
            acker: self.acker,
        };
        (self.event, ack)
    }

    /// Acknowledges the message: it will not be delivered to this durable again.
    pub async fn ack(self) -> Result<(), BusError> {
        Self::ack_with(self.acker).await
    }

    async fn ack_with(acker: Acker) -> Result<(), BusError> {
        match acker {
            Acker::JetStream(message) => message.ack().await.map_err(BusError::unavailable),
            Acker::InProcess(handle) => {
                handle.ack();
                Ok(())
            }
        }
    }
}

impl Delivery {
    /// Tells the bus the message is still being worked on: its ack wait starts again, so
    /// it is not handed to another consumer. (In-process: nothing to do; the message goes
    /// to another consumer only when this one is dropped.)
    pub async fn in_progress(&self) -> Result<(), BusError> {
        match &self.acker {
            Acker::JetStream(message) => message
                .ack_with(async_nats::jetstream::AckKind::Progress)
                .await
                .map_err(BusError::unavailable),
            Acker::InProcess(_) => Ok(()),
        }
    }
}

impl Delivery {
    /// Gives the message back: it is delivered again after `delay` (to this process or
    /// another).
    pub async fn nak(self, delay: std::time::Duration) -> Result<(), BusError> {
        Self::nak_with(self.acker, delay).await
    }

    async fn nak_with(acker: Acker, delay: std::time::Duration) -> Result<(), BusError> {
        match acker {
            Acker::JetStream(message) => message
                .ack_with(async_nats::jetstream::AckKind::Nak(Some(delay)))
                .await
                .map_err(BusError::unavailable),
            Acker::InProcess(handle) => {
                handle.nak(delay);
                Ok(())
            }
        }
    }

    /// Like [`Delivery::in_progress`], but waits for the server to confirm it (JetStream).
    pub async fn in_progress_confirmed(&self) -> Result<(), BusError> {
        match &self.acker {
            Acker::JetStream(message) => message
                .double_ack_with(async_nats::jetstream::AckKind::Progress)
                .await
                .map_err(BusError::unavailable),
            Acker::InProcess(_) => Ok(()),
        }
    }
}

/// Work handed out one message at a time; see [`EventBus::work`].
#[async_trait]
pub trait WorkSource: Send {
    /// Waits for the next message. Errors are transient (the bus is away): ask again.
    async fn next(&mut self) -> Result<Delivery, BusError>;

    /// The ack wait in force (an existing durable keeps the one it was created with).
    fn ack_wait(&self) -> std::time::Duration;
}

/// A work queue: one [`WorkSource`].
pub type WorkQueue = Box<dyn WorkSource>;

/// A stream of deliveries from one durable consumer. An undecodable message is one
/// [`BusError::Decode`] among the deliveries; a failure of the consumer itself (gone with
/// its stream, unreachable, its heartbeats missed) is one [`BusError::Unavailable`] and
/// ends the deliveries: the consumer opens them again.
pub type Deliveries = BoxStream<'static, Result<Delivery, BusError>>;

/// Events published after a [`EventBus::tail`] began, to that subscriber alone.
pub type Tail = BoxStream<'static, Result<CloudEvent, BusError>>;

/// The event bus: a stream of every event, durable consumers over it.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// The subject scheme this bus publishes under.
    fn subjects(&self) -> &Subjects;

    /// Publishes events in order, each under its message id, and waits for every ack.
    /// Returns one outcome per event, in order.
    async fn publish_batch(
        &self,
        events: &[(String, CloudEvent)],
    ) -> Result<Vec<PublishOutcome>, BusError>;

    /// Message counters of the stream.
    async fn state(&self) -> Result<StreamState, BusError>;

    /// The last message in the stream, decoded, if there is one.
    async fn last_event(&self) -> Result<Option<CloudEvent>, BusError>;

    /// The global positions of every event currently in the stream (used to heal it).
    async fn positions(&self) -> Result<HashSet<i64>, BusError>;

    /// Deliveries of events matching `filter` to the durable consumer `durable`.
    async fn consume(&self, durable: &str, filter: &str) -> Result<Deliveries, BusError>;

    /// Like [`EventBus::consume`], but a durable this call creates starts after the last
    /// message now in the stream (an existing one keeps its place): for a consumer whose
    /// users read what came before from the store.
    async fn consume_new(&self, durable: &str, filter: &str) -> Result<Deliveries, BusError>;

    /// Every event matching `filter` stored from now on, in stream order, to this
    /// subscriber alone: not durable, nothing to ack. For state every replica keeps for
    /// itself (the token revocation set), where a durable consumer would hand each event to
    /// one replica only. The stream ends (or yields an error) if the subscription breaks:
    /// the caller then reloads from the store and tails again.
    async fn tail(&self, filter: &str) -> Result<Tail, BusError>;

    /// Messages matching `filter` from the durable consumer `durable`, shared by every
    /// process that asks for it, as a work queue: a message is fetched only when the caller
    /// asks for the next one (so a busy process leaves work to idle ones), and one not
    /// acked within `ack_wait` — nor kept alive with [`Delivery::in_progress`] — is handed
    /// to the next caller, in this process or another.
    async fn work(
        &self,
        durable: &str,
        filter: &str,
        ack_wait: std::time::Duration,
    ) -> Result<WorkQueue, BusError>;
}

/// Header carrying an event's global position in the store.
pub const POSITION_HEADER: &str = "Aurora-Position";
/// Header carrying the transaction id half of the event's cursor.
pub const XID_HEADER: &str = "Aurora-Xid";
