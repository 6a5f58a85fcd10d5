//! What every handler shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurora_nats::jetstream::JetStreamBus;
use aurora_nats::memory::MemoryBus;
use aurora_nats::EventBus;
use aurora_projections::{Database, RunCommands, RunsProjection};

use crate::config::Config;
use crate::metrics::Metrics;

/// The bus, with what health checks need to know of its concrete kind.
#[derive(Clone)]
pub enum Bus {
    /// NATS JetStream.
    JetStream(JetStreamBus),
    /// In-process.
    Memory(MemoryBus),
}

impl Bus {
    /// The bus behind the shared trait.
    pub fn shared(&self) -> Arc<dyn EventBus> {
        match self {
            Bus::JetStream(bus) => Arc::new(bus.clone()),
            Bus::Memory(bus) => Arc::new(bus.clone()),
        }
    }

    /// `nats` or `in-process`.
    pub fn kind(&self) -> &'static str {
        match self {
            Bus::JetStream(_) => "nats",
            Bus::Memory(_) => "in-process",
        }
    }

    /// Is the bus usable right now?
    pub fn is_connected(&self) -> bool {
        match self {
            Bus::JetStream(bus) => bus.is_connected(),
            Bus::Memory(_) => true,
        }
    }

    /// Round trip to the bus.
    pub async fn ping(&self) -> Result<Duration, aurora_nats::BusError> {
        match self {
            Bus::JetStream(bus) => bus.ping().await,
            Bus::Memory(_) => Ok(Duration::ZERO),
        }
    }
}

/// Shared by all handlers.
pub struct AppState {
    /// Settings.
    pub config: Config,
    /// Event store and read models.
    pub db: Database,
    /// The bus.
    pub bus: Bus,
    /// Run commands.
    pub run_commands: RunCommands,
    /// The runs read model.
    pub runs: Arc<RunsProjection>,
    /// Metrics.
    pub metrics: Metrics,
    /// Process start.
    pub started: Instant,
    draining: AtomicBool,
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        config: Config,
        db: Database,
        bus: Bus,
        run_commands: RunCommands,
        runs: Arc<RunsProjection>,
        metrics: Metrics,
    ) -> Self {
        Self {
            config,
            db,
            bus,
            run_commands,
            runs,
            metrics,
            started: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    /// Marks the process as draining: `/ready` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Is the process draining?
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
