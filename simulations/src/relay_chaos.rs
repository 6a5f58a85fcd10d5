//! Relay and consumer chaos on SQLite + the in-process bus.
//!
//! Each tick does one thing, chosen by the seed: commit commands, step the relay, kill the
//! relay (cleanly or between publish and checkpoint), lose stream messages (purge or delete
//! one), heal, or let the runs consumer take a batch — and sometimes crash before acking.
//! At the end the relay drains and heals, the consumer catches up, and the invariants must
//! hold: every stored event is in the stream exactly once, and the live runs view equals a
//! rebuild from the store.

use std::collections::HashSet;
use std::sync::Arc;

use aurora_domain::run::{Input, RunCommand, RunSpec, Step};
use aurora_domain::EventMetadata;
use aurora_nats::memory::MemoryBus;
use aurora_nats::{EventBus, Subjects};
use aurora_projections::read::Envelope;
use aurora_projections::relay::StepOutcome;
use aurora_projections::testkit;
use aurora_projections::{
    Cursor, Database, Relay, RelayConfig, RelayMetrics, RunCommands, RunsProjection,
};
use futures::StreamExt;
use tokio::sync::Notify;

use crate::rng::Rng;

/// What a simulation did and found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events stored.
    pub stored: usize,
    /// Relay processes killed.
    pub relay_kills: usize,
    /// Stream messages lost on purpose.
    pub messages_lost: usize,
    /// Consumer batches dropped without ack.
    pub consumer_crashes: usize,
    /// Events republished by healing.
    pub healed: u64,
}

/// Why a simulation failed.
#[derive(Debug)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! check {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(Violation(format!($($msg)*)));
        }
    };
}

fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> Result<T, Violation> {
    result.map_err(|e| Violation(format!("{what}: {e}")))
}

struct World {
    db: Database,
    bus: MemoryBus,
    subjects: Subjects,
    commands: RunCommands,
    runs: RunsProjection,
    runs_ids: Vec<uuid::Uuid>,
}

impl World {
    fn relay(&self) -> Relay {
        Relay::new(
            self.db.clone(),
            Arc::new(self.bus.clone()),
            RelayConfig::for_prefix(self.subjects.prefix()),
            RelayMetrics::default(),
        )
    }

    async fn command(&mut self, rng: &mut Rng, tick: usize) -> Result<(), Violation> {
        let metadata = EventMetadata::new("simulation", format!("tick-{tick}"));
        let cancel = !self.runs_ids.is_empty() && rng.chance(30);
        let (id, command) = if cancel {
            let id = self.runs_ids[rng.below(self.runs_ids.len() as u64) as usize];
            (id, RunCommand::CancelRun { reason: None })
        } else {
            // Deterministic ids: the seed decides everything.
            let id = uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, rng.next_u64());
            self.runs_ids.push(id);
            let spec = RunSpec {
                input: Some(Input::MediaId(id)),
                steps: vec![Step::Probe {}],
            };
            let owner = "simulation".to_string();
            (
                id,
                RunCommand::RequestRun {
                    run_id: id,
                    owner,
                    spec,
                },
            )
        };
        // Cancelling a cancelled run is refused by the aggregate: that is fine here.
        let _ = self
            .commands
            .execute(&id.to_string(), command, &metadata)
            .await;
        Ok(())
    }
}

/// Plays `ticks` ticks of seed `seed`. `Ok` means every invariant held.
pub async fn simulate(seed: u64, ticks: usize) -> Result<Report, Violation> {
    let mut rng = Rng::new(seed);
    let (db, _dir) = ok(testkit::fresh_sqlite().await, "opening SQLite")?;
    let subjects = Subjects::new("sim");
    let bus = MemoryBus::new(subjects.clone());
    let mut world = World {
        commands: RunCommands::new(&db, Arc::new(Notify::new())),
        runs: RunsProjection::new(db.clone()),
        db,
        bus,
        subjects,
        runs_ids: Vec::new(),
    };
    let filter = world.subjects.aggregate_events("run");
    let mut report = Report::default();
    let mut relay = world.relay();
    let mut consumer = ok(world.bus.consume("runs-view", &filter).await, "consuming")?;

    for tick in 0..ticks {
        match rng.below(100) {
            0..=34 => world.command(&mut rng, tick).await?,
            35..=59 => {
                ok(relay.step().await, "relay step")?;
            }
            60..=64 => {
                relay = world.relay();
                report.relay_kills += 1;
            }
            65..=69 => {
                relay.crash_after_next_publish();
                let _ = relay.step().await;
                relay = world.relay();
                report.relay_kills += 1;
            }
            70..=72 => {
                report.messages_lost += ok(world.bus.state().await, "state")?.messages as usize;
                world.bus.purge();
            }
            73..=77 => {
                let last = ok(world.bus.state().await, "state")?.last_sequence;
                if last > 0 && world.bus.delete(1 + rng.below(last)) {
                    report.messages_lost += 1;
                }
            }
            78..=81 => {
                if relay.is_leader() {
                    report.healed += ok(relay.heal().await, "heal")?;
                }
            }
            _ => {
                // The consumer takes what is ready; sometimes it dies before acking.
                let mut batch = Vec::new();
                while let Some(Some(delivery)) = futures::FutureExt::now_or_never(consumer.next()) {
                    batch.push(ok(delivery, "delivery")?);
                    if batch.len() == 1 + rng.below(8) as usize {
                        break;
                    }
                }
                if rng.chance(20) {
                    drop(batch);
                    drop(consumer);
                    consumer = ok(world.bus.consume("runs-view", &filter).await, "consuming")?;
                    report.consumer_crashes += 1;
                } else {
                    let events: Vec<_> = batch
                        .iter()
                        .map(|d| Arc::new(Envelope::delivered(d.event.clone())))
                        .collect();
                    ok(world.runs.apply_batch(&events).await, "apply")?;
                    for delivery in batch {
                        ok(delivery.ack().await, "ack")?;
                    }
                }
            }
        }
    }

    // Quiesce: the relay publishes the rest and heals, the consumer catches up.
    while ok(relay.step().await, "relay step")? != StepOutcome::Idle {}
    report.healed += ok(relay.heal().await, "final heal")?;
    let everything = Cursor {
        xid: i64::MAX,
        position: i64::MAX,
    };
    report.stored = ok(world.db.count_through(everything).await, "count")? as usize;

    let in_stream = world.bus.events();
    let positions: HashSet<i64> = in_stream.iter().map(|e| e.position).collect();
    check!(
        positions.len() == in_stream.len(),
        "seed {seed}: an event is in the stream twice"
    );
    check!(
        in_stream.len() == report.stored,
        "seed {seed}: {} stored, {} in the stream",
        report.stored,
        in_stream.len()
    );

    while let Some(Some(delivery)) = futures::FutureExt::now_or_never(consumer.next()) {
        let delivery = ok(delivery, "delivery")?;
        ok(
            world
                .runs
                .apply_batch(&[Arc::new(Envelope::delivered(delivery.event.clone()))])
                .await,
            "apply",
        )?;
        ok(delivery.ack().await, "ack")?;
    }
    let live = ok(world.runs.digest().await, "digest")?;
    ok(world.runs.rebuild(64, |_| {}).await, "rebuild")?;
    let rebuilt = ok(world.runs.digest().await, "digest")?;
    check!(
        live == rebuilt,
        "seed {seed}: live runs view differs from a rebuild"
    );
    Ok(report)
}
