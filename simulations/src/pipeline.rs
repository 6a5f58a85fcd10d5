//! What the seeded simulations of the store's way out share: the relay to the in-process
//! bus and the runs view's consumer, each fault one call, and the checks at the end (every
//! stored event in the stream exactly once; the live view equal to its rebuild).

use std::collections::HashSet;
use std::sync::Arc;

use aurora_nats::bus::Deliveries;
use aurora_nats::memory::MemoryBus;
use aurora_nats::{EventBus, Subjects};
use aurora_projections::read::Envelope;
use aurora_projections::relay::StepOutcome;
use aurora_projections::{Database, Relay, RelayConfig, RelayMetrics, RunsProjection};
use futures::StreamExt;

use crate::rng::Rng;

/// Why a simulation failed.
#[derive(Debug)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `result`, its error a violation saying what failed.
pub fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> Result<T, Violation> {
    result.map_err(|e| Violation(format!("{what}: {e}")))
}

/// What the faults did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    /// Relays killed (cleanly or between publish and checkpoint).
    pub relay_kills: usize,
    /// Stream messages lost on purpose.
    pub messages_lost: usize,
    /// Consumer batches dropped without ack.
    pub consumer_crashes: usize,
    /// Events republished by healing.
    pub healed: u64,
}

/// The relay from `db` to an in-process bus, and the runs view's durable consumer on it.
pub struct Pipeline {
    db: Database,
    /// The stream.
    pub bus: MemoryBus,
    subjects: Subjects,
    /// The view the consumer keeps.
    pub runs: RunsProjection,
    relay: Relay,
    consumer: Deliveries,
    /// What the faults did.
    pub faults: Faults,
}

const DURABLE: &str = "runs-view";

impl Pipeline {
    /// A relay from `db` under `prefix`, and the runs view's consumer.
    pub async fn new(db: Database, prefix: &str) -> Result<Self, Violation> {
        let subjects = Subjects::new(prefix);
        let bus = MemoryBus::new(subjects.clone());
        let relay = relay(&db, &bus, &subjects);
        let consumer = ok(bus.consume(DURABLE, &filter(&subjects)).await, "consuming")?;
        Ok(Self {
            runs: RunsProjection::new(db.clone()),
            db,
            bus,
            subjects,
            relay,
            consumer,
            faults: Faults::default(),
        })
    }

    /// The relay publishes what it finds.
    pub async fn step_relay(&mut self) -> Result<(), Violation> {
        ok(self.relay.step().await, "relay step").map(drop)
    }

    /// The relay dies cleanly and another starts.
    pub fn kill_relay(&mut self) {
        self.relay = relay(&self.db, &self.bus, &self.subjects);
        self.faults.relay_kills += 1;
    }

    /// The relay dies between a publish and its checkpoint, and another starts.
    pub async fn crash_relay_after_publish(&mut self) {
        self.relay.crash_after_next_publish();
        let _ = self.relay.step().await;
        self.kill_relay();
    }

    /// The stream loses every message.
    pub async fn purge(&mut self) -> Result<(), Violation> {
        self.faults.messages_lost += ok(self.bus.state().await, "state")?.messages as usize;
        self.bus.purge();
        Ok(())
    }

    /// The stream loses one message, chosen by `rng`.
    pub async fn lose_message(&mut self, rng: &mut Rng) -> Result<(), Violation> {
        let last = ok(self.bus.state().await, "state")?.last_sequence;
        if last > 0 && self.bus.delete(1 + rng.below(last)) {
            self.faults.messages_lost += 1;
        }
        Ok(())
    }

    /// The relay, if it leads, heals the stream from the store.
    pub async fn heal(&mut self) -> Result<(), Violation> {
        if self.relay.is_leader() {
            self.faults.healed += ok(self.relay.heal().await, "heal")?;
        }
        Ok(())
    }

    /// The consumer takes what is ready (a few), and applies and acks it — or, `crash`
    /// percent of the time, dies before acking.
    pub async fn consume(&mut self, rng: &mut Rng, crash: u64) -> Result<(), Violation> {
        let mut batch = Vec::new();
        while let Some(Some(delivery)) = futures::FutureExt::now_or_never(self.consumer.next()) {
            batch.push(ok(delivery, "delivery")?);
            if batch.len() == 1 + rng.below(8) as usize {
                break;
            }
        }
        if rng.chance(crash) {
            drop(batch);
            self.consumer = ok(
                self.bus.consume(DURABLE, &filter(&self.subjects)).await,
                "consuming",
            )?;
            self.faults.consumer_crashes += 1;
            return Ok(());
        }
        let events: Vec<_> = batch
            .iter()
            .map(|d| Arc::new(Envelope::delivered(d.event.clone())))
            .collect();
        ok(self.runs.apply_batch(&events).await, "apply")?;
        for delivery in batch {
            ok(delivery.ack().await, "ack")?;
        }
        Ok(())
    }

    /// The faults stop: the relay publishes the rest and heals, the consumer catches up.
    pub async fn settle(&mut self) -> Result<(), Violation> {
        while ok(self.relay.step().await, "relay step")? != StepOutcome::Idle {}
        self.faults.healed += ok(self.relay.heal().await, "final heal")?;
        while let Some(Some(delivery)) = futures::FutureExt::now_or_never(self.consumer.next()) {
            let delivery = ok(delivery, "delivery")?;
            let event = Arc::new(Envelope::delivered(delivery.event.clone()));
            ok(self.runs.apply_batch(&[event]).await, "apply")?;
            ok(delivery.ack().await, "ack")?;
        }
        Ok(())
    }

    /// Every one of the `stored` events is in the stream exactly once, and the live runs
    /// view equals its rebuild from the store.
    pub async fn check(&self, seed: u64, stored: usize) -> Result<(), Violation> {
        let in_stream = self.bus.events();
        let positions: HashSet<i64> = in_stream.iter().map(|e| e.position).collect();
        if positions.len() != in_stream.len() {
            return Err(Violation(format!(
                "seed {seed}: an event is in the stream twice"
            )));
        }
        if in_stream.len() != stored {
            return Err(Violation(format!(
                "seed {seed}: {stored} stored, {} in the stream",
                in_stream.len()
            )));
        }
        let live = ok(self.runs.digest().await, "digest")?;
        ok(self.runs.rebuild(64, |_| {}).await, "rebuild")?;
        let rebuilt = ok(self.runs.digest().await, "digest")?;
        if live != rebuilt {
            return Err(Violation(format!(
                "seed {seed}: the live runs view differs from its rebuild"
            )));
        }
        Ok(())
    }
}

fn relay(db: &Database, bus: &MemoryBus, subjects: &Subjects) -> Relay {
    Relay::new(
        db.clone(),
        Arc::new(bus.clone()),
        RelayConfig::for_prefix(subjects.prefix()),
        RelayMetrics::default(),
    )
}

fn filter(subjects: &Subjects) -> String {
    subjects.aggregate_events("run")
}
