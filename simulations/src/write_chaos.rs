//! The whole write path under injected commit failures, by the thousand seeds.
//!
//! Commands go through the real group commit ([`GroupCommit`]) and event repository into
//! SQLite (in memory: a RAM-backed directory), the relay publishes to the in-process bus,
//! and the runs view consumes it. The seed decides everything: each tick commits a round of
//! concurrent run requests (some colliding with each other or with stored runs), cancels a
//! run, steps, kills or crashes the relay, loses stream messages, heals, or lets the
//! consumer take a batch (sometimes dying before it acks). The group commit's fault plan,
//! seeded too, makes some batches lose their connection **before** the commit (nothing
//! stored) or **after** it (stored, but no one is told): their commands are answered with a
//! connection error, and the client retries them once, as a client that was not told would.
//!
//! Rounds are deterministic: on a current-thread runtime every append of a round is queued
//! before the one writer takes them, so each batch — and the fault it meets — is the same
//! on every replay of a seed.
//!
//! At the end the relay drains and heals, the consumer catches up, and the checker holds
//! the history to what the clients were told:
//! - a command acknowledged is stored, exactly once (a retry never applies it twice);
//! - a command refused left nothing;
//! - a command with no answer is stored whole or not at all (each aggregate's sequence
//!   numbers run 1, 2, 3 … without a gap);
//! - the stream holds every stored event exactly once (healing republishes what was lost,
//!   after what followed it; the relay's order is tested on its own);
//! - the live runs view equals its rebuild from the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aurora_domain::run::{Input, Run, RunCommand, RunError, RunSpec, Step};
use aurora_domain::EventMetadata;
use aurora_projections::store::{CommitFault, FaultPlan, GroupCommit};
use aurora_projections::{Cursor, Database, RunCommands};
use cqrs_es::{Aggregate, AggregateError};
use tokio::sync::Notify;

use crate::pipeline::{ok, Pipeline, Violation};
use crate::rng::Rng;

/// What a simulation did and found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events stored.
    pub stored: usize,
    /// Commands answered: done.
    pub acknowledged: usize,
    /// Commands answered: refused (conflict, or the domain said no).
    pub refused: usize,
    /// Commands answered with a connection error (the client cannot tell).
    pub unknown: usize,
    /// Commits abandoned before they went through.
    pub lost_before_commit: usize,
    /// Commits that went through with their answer lost.
    pub lost_after_commit: usize,
    /// Relays killed (cleanly or between publish and checkpoint).
    pub relay_kills: usize,
    /// Stream messages lost on purpose.
    pub messages_lost: usize,
    /// Consumer batches dropped without ack.
    pub consumer_crashes: usize,
}

/// What a client was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Done,
    Refused,
    Unknown,
}

fn told<T>(outcome: &Result<T, AggregateError<RunError>>) -> Told {
    match outcome {
        Ok(_) => Told::Done,
        Err(AggregateError::UserError(_) | AggregateError::AggregateConflict) => Told::Refused,
        Err(_) => Told::Unknown,
    }
}

/// What the clients were told about one run.
#[derive(Debug, Default)]
struct Fate {
    requests: Vec<Told>,
    cancels: Vec<Told>,
}

/// The commit faults the seed plans, and how many of each it injected.
struct Plan {
    rng: Mutex<Rng>,
    before: AtomicUsize,
    after: AtomicUsize,
    /// A broken store instead: lost commits are acknowledged.
    lying: bool,
}

impl Plan {
    fn next(&self) -> Option<CommitFault> {
        let draw = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .below(100);
        if self.lying {
            return (draw < 8).then_some(CommitFault::LostButAcknowledged);
        }
        match draw {
            0..=7 => {
                self.before.fetch_add(1, Ordering::Relaxed);
                Some(CommitFault::BeforeCommit)
            }
            8..=15 => {
                self.after.fetch_add(1, Ordering::Relaxed);
                Some(CommitFault::AfterCommit)
            }
            _ => None,
        }
    }
}

struct World {
    db: Database,
    commands: RunCommands,
    fates: HashMap<uuid::Uuid, Fate>,
    /// Run ids in the order they were first requested (the seed picks among them).
    ids: Vec<uuid::Uuid>,
    report: Report,
}

fn request(id: uuid::Uuid) -> RunCommand {
    RunCommand::RequestRun {
        run_id: id,
        owner: "simulation".to_string(),
        spec: RunSpec {
            input: Some(Input::MediaId(id)),
            steps: vec![Step::Probe {}],
        },
    }
}

impl World {
    fn note(&mut self, told: Told) {
        match told {
            Told::Done => self.report.acknowledged += 1,
            Told::Refused => self.report.refused += 1,
            Told::Unknown => self.report.unknown += 1,
        }
    }

    /// A round of concurrent run requests: new ids, sometimes one twice, sometimes one
    /// already stored. Each is queued before the writer takes any, so they share batches.
    async fn request_round(&mut self, rng: &mut Rng, tick: usize) {
        let count = 1 + rng.below(6) as usize;
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            let id = if !ids.is_empty() && rng.chance(15) {
                ids[rng.below(ids.len() as u64) as usize]
            } else if !self.ids.is_empty() && rng.chance(10) {
                self.ids[rng.below(self.ids.len() as u64) as usize]
            } else {
                uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, rng.next_u64())
            };
            ids.push(id);
        }
        let metadata = EventMetadata::new("simulation", format!("tick-{tick}"));
        let keys: Vec<String> = ids.iter().map(uuid::Uuid::to_string).collect();
        let outcomes = futures::future::join_all(
            ids.iter()
                .zip(&keys)
                .map(|(id, key)| self.commands.create(key, request(*id), &metadata)),
        )
        .await;
        let mut unanswered = Vec::new();
        for (id, outcome) in ids.into_iter().zip(outcomes) {
            let told = told(&outcome);
            self.record_request(id, told);
            if told == Told::Unknown {
                unanswered.push(id);
            }
        }
        // A client not told retries once (the same command: the same run id).
        for id in unanswered {
            let outcome = self
                .commands
                .create(&id.to_string(), request(id), &metadata)
                .await;
            self.record_request(id, told(&outcome));
        }
    }

    fn record_request(&mut self, id: uuid::Uuid, told: Told) {
        self.note(told);
        let fate = self.fates.entry(id).or_default();
        if fate.requests.is_empty() && fate.cancels.is_empty() {
            self.ids.push(id);
        }
        fate.requests.push(told);
    }

    /// Cancels a run requested before (retried once if not told).
    async fn cancel(&mut self, rng: &mut Rng, tick: usize) {
        if self.ids.is_empty() {
            return;
        }
        let id = self.ids[rng.below(self.ids.len() as u64) as usize];
        let metadata = EventMetadata::new("simulation", format!("tick-{tick}"));
        for _ in 0..2 {
            let outcome = self
                .commands
                .execute(
                    &id.to_string(),
                    RunCommand::CancelRun { reason: None },
                    &metadata,
                )
                .await;
            let told = told(&outcome);
            self.note(told);
            self.fates.entry(id).or_default().cancels.push(told);
            if told != Told::Unknown {
                break;
            }
        }
    }
}

/// Plays `ticks` ticks of seed `seed`. `Ok` means every invariant held.
pub async fn simulate(seed: u64, ticks: usize) -> Result<Report, Violation> {
    play(seed, ticks, false).await
}

/// Plays seed `seed` against a broken store that acknowledges commits it lost: for showing
/// that the checker catches what it checks (it must return a violation).
pub async fn simulate_lying_store(seed: u64, ticks: usize) -> Result<Report, Violation> {
    play(seed, ticks, true).await
}

async fn play(seed: u64, ticks: usize, lying: bool) -> Result<Report, Violation> {
    let mut rng = Rng::new(seed);
    let (db, _dir) = ok(
        aurora_projections::testkit::fresh_sqlite_in_memory().await,
        "opening SQLite",
    )?;
    let plan = Arc::new(Plan {
        rng: Mutex::new(Rng::new(seed ^ 0x5eed_c0de_0000_0001)),
        before: AtomicUsize::new(0),
        after: AtomicUsize::new(0),
        lying,
    });
    let faults: FaultPlan = {
        let plan = plan.clone();
        Arc::new(move || plan.next())
    };
    let appends = GroupCommit::start_with_faults(&db, 1, Some(faults));
    let mut world = World {
        commands: RunCommands::with_appends(&db, appends, Arc::new(Notify::new())),
        db: db.clone(),
        fates: HashMap::new(),
        ids: Vec::new(),
        report: Report::default(),
    };
    let mut pipeline = Pipeline::new(db, "sim").await?;

    for tick in 0..ticks {
        match rng.below(100) {
            0..=34 => world.request_round(&mut rng, tick).await,
            35..=44 => world.cancel(&mut rng, tick).await,
            45..=64 => pipeline.step_relay().await?,
            65..=67 => pipeline.kill_relay(),
            68..=70 => pipeline.crash_relay_after_publish().await,
            71..=72 => pipeline.lose_message(&mut rng).await?,
            73..=75 => pipeline.heal().await?,
            _ => pipeline.consume(&mut rng, 15).await?,
        }
    }

    pipeline.settle().await?;
    world.report.lost_before_commit = plan.before.load(Ordering::Relaxed);
    world.report.lost_after_commit = plan.after.load(Ordering::Relaxed);
    world.report.relay_kills = pipeline.faults.relay_kills;
    world.report.messages_lost = pipeline.faults.messages_lost;
    world.report.consumer_crashes = pipeline.faults.consumer_crashes;
    check_history(seed, &mut world, &pipeline).await?;
    Ok(world.report)
}

/// Holds the store, the stream and the view to what the clients were told.
async fn check_history(seed: u64, world: &mut World, pipeline: &Pipeline) -> Result<(), Violation> {
    let mut stored = Vec::new();
    let mut cursor = Cursor::START;
    loop {
        let page = ok(world.db.read_after(cursor, 1000).await, "reading the store")?;
        let Some(last) = page.last() else { break };
        cursor = last.cursor;
        stored.extend(page);
    }
    world.report.stored = stored.len();

    // Each aggregate's sequence numbers run 1, 2, 3 …: appends are all-or-nothing.
    let mut by_run: HashMap<&str, Vec<&aurora_projections::StoredEvent>> = HashMap::new();
    for event in &stored {
        check!(
            event.aggregate_type == Run::TYPE,
            "seed {seed}: an event of {}",
            event.aggregate_type
        );
        by_run.entry(&event.aggregate_id).or_default().push(event);
    }
    for (id, events) in &mut by_run {
        events.sort_by_key(|e| e.sequence);
        for (n, event) in events.iter().enumerate() {
            check!(
                event.sequence == n as i64 + 1,
                "seed {seed}: run {id} has event {} where {} belongs (a gap or a twin)",
                event.sequence,
                n + 1
            );
        }
    }

    // What each client was told, against what is stored.
    for (id, fate) in &world.fates {
        let events = by_run.get(id.to_string().as_str());
        let named = |name: &str| {
            events.map_or(0, |events| {
                events.iter().filter(|e| e.event_type == name).count()
            })
        };
        let (requested, cancelled) = (named("RunRequested"), named("RunCancelled"));
        check!(
            requested <= 1 && cancelled <= 1,
            "seed {seed}: run {id} requested {requested} times, cancelled {cancelled} times"
        );
        for (what, told, stored) in [
            ("request", &fate.requests, requested),
            ("cancellation", &fate.cancels, cancelled),
        ] {
            check!(
                !told.contains(&Told::Done) || stored == 1,
                "seed {seed}: run {id}'s {what} was acknowledged and is not stored ({told:?})"
            );
            check!(
                stored == 0 || told.iter().any(|t| *t != Told::Refused),
                "seed {seed}: run {id}'s {what} is stored though every one was refused ({told:?})"
            );
        }
    }
    check!(
        by_run.len() <= world.fates.len(),
        "seed {seed}: runs stored that no client asked for"
    );

    // The stream holds every stored event once; the view equals its rebuild.
    pipeline.check(seed, stored.len()).await?;
    Ok(())
}
