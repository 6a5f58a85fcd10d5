//! Aurora's transport: the subject scheme, the event envelope, and the event bus —
//! NATS JetStream in production, an in-process bus with the same consumer semantics in
//! embedded mode and simulations.
//!
//! # Layout
//! - [`subjects`]: subject and stream names (documented in `nats/README.md`).
//! - [`envelope`]: the CloudEvents 1.0 JSON envelope every event travels in.
//! - [`bus`]: the [`EventBus`] trait, deliveries and acks.
//! - [`jetstream`]: the JetStream implementation.
//! - [`memory`]: the in-process implementation.
//! - [`any`]: either of them, for code that must know which.
//! - [`callout`]: the auth callout protocol (users' tokens as NATS credentials): the
//!   server's request checked, the answer and its user JWT signed.
#![forbid(unsafe_code)]

pub mod any;
pub mod bus;
pub mod callout;
pub mod envelope;
pub mod jetstream;
pub mod memory;
pub mod subjects;

pub use any::AnyBus;
pub use bus::{
    redeliveries, Ack, BusError, ConsumerLabels, Delivery, EventBus, PublishOutcome, StreamState,
    Tail, WorkQueue, WorkSource,
};
pub use envelope::CloudEvent;
pub use subjects::Subjects;
