//! Either bus, for code that must know which one it has: health checks, and tests that
//! make a stream lose messages.

use std::sync::Arc;
use std::time::Duration;

use crate::jetstream::JetStreamBus;
use crate::memory::MemoryBus;
use crate::{BusError, EventBus};

/// The bus chosen at startup.
#[derive(Clone)]
pub enum AnyBus {
    /// NATS JetStream.
    JetStream(Box<JetStreamBus>),
    /// In-process.
    Memory(MemoryBus),
}

impl AnyBus {
    /// The bus behind the shared trait.
    pub fn shared(&self) -> Arc<dyn EventBus> {
        match self {
            AnyBus::JetStream(bus) => Arc::new(JetStreamBus::clone(bus)),
            AnyBus::Memory(bus) => Arc::new(bus.clone()),
        }
    }

    /// `nats` or `in-process`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyBus::JetStream(_) => "nats",
            AnyBus::Memory(_) => "in-process",
        }
    }

    /// The core NATS client, for plain subjects between replicas; `None` in-process (one
    /// process, no replicas).
    pub fn nats_client(&self) -> Option<async_nats::Client> {
        match self {
            AnyBus::JetStream(bus) => Some(bus.client().clone()),
            AnyBus::Memory(_) => None,
        }
    }

    /// Is the bus usable right now?
    pub fn is_connected(&self) -> bool {
        match self {
            AnyBus::JetStream(bus) => bus.is_connected(),
            AnyBus::Memory(_) => true,
        }
    }

    /// Round trip to the bus.
    pub async fn ping(&self) -> Result<Duration, BusError> {
        match self {
            AnyBus::JetStream(bus) => bus.ping().await,
            AnyBus::Memory(_) => Ok(Duration::ZERO),
        }
    }
}
