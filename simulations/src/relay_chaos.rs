//! Relay and consumer chaos on SQLite + the in-process bus.
//!
//! Each tick does one thing, chosen by the seed: commit commands, step the relay, kill the
//! relay (cleanly or between publish and checkpoint), lose stream messages (purge or delete
//! one), heal, or let the runs consumer take a batch — and sometimes crash before acking.
//! At the end the relay drains and heals, the consumer catches up, and the invariants must
//! hold: every stored event is in the stream exactly once, and the live runs view equals a
//! rebuild from the store.

use std::sync::Arc;

use aurora_domain::run::{Input, RunCommand, RunSpec, Step};
use aurora_domain::EventMetadata;
use aurora_projections::testkit;
use aurora_projections::{Cursor, RunCommands};
use tokio::sync::Notify;

pub use crate::pipeline::Violation;
use crate::pipeline::{ok, Pipeline};
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

struct World {
    commands: RunCommands,
    runs_ids: Vec<uuid::Uuid>,
}

impl World {
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
    let mut world = World {
        commands: RunCommands::new(&db, Arc::new(Notify::new())),
        runs_ids: Vec::new(),
    };
    let mut pipeline = Pipeline::new(db.clone(), "sim").await?;

    for tick in 0..ticks {
        match rng.below(100) {
            0..=34 => world.command(&mut rng, tick).await?,
            35..=59 => pipeline.step_relay().await?,
            60..=64 => pipeline.kill_relay(),
            65..=69 => pipeline.crash_relay_after_publish().await,
            70..=72 => pipeline.purge().await?,
            73..=77 => pipeline.lose_message(&mut rng).await?,
            78..=81 => pipeline.heal().await?,
            _ => pipeline.consume(&mut rng, 20).await?,
        }
    }

    pipeline.settle().await?;
    let everything = Cursor {
        xid: i64::MAX,
        position: i64::MAX,
    };
    let stored = ok(db.count_through(everything).await, "count")? as usize;
    pipeline.check(seed, stored).await?;
    let faults = pipeline.faults;
    Ok(Report {
        stored,
        relay_kills: faults.relay_kills,
        messages_lost: faults.messages_lost,
        consumer_crashes: faults.consumer_crashes,
        healed: faults.healed,
    })
}
