//! The run manager and its run actors.
//!
//! (Long: leases, the manager, the run state machine and step work; their split is issue
//! 16's.)
//!
//! The manager is handed each requested run by the work queue (with the message's lease)
//! and starts one run actor per run, linked to it. A run actor drives its run's steps as a
//! state machine through commands — `StartStep`, `RecordProgress`, `CompleteStep`,
//! `FailAttempt`, `FailRun` — so every change is an event with the actor as principal. It
//! keeps no state the store does not have: each decision starts by loading the run, so a
//! restarted actor (or another replica) carries on where the events say the run is.
//!
//! An actor that finds the run moved on without it (another executor started a newer
//! attempt, because this replica was presumed dead) stands down: it kills its work and stops
//! without acknowledging anything, and records nothing more.
//!
//! When a run actor panics, the manager restarts it with the same lease, within a budget
//! per run; past the budget it gives up: the run fails with the reason, a log line and the
//! `aurora_supervisor_escalations_total{kind="run"}` counter say so.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use aurora_domain::media::{Artifact, InputFormat, MediaInfo};
use aurora_domain::run::{Input, Run, RunCommand, RunError, RunStatus, Step, StepOutput};
use aurora_domain::EventMetadata;
use aurora_nats::Delivery;
use cqrs_es::AggregateError;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use crate::artifacts::ArtifactStore;
use crate::engine::Deps;
use crate::faults::{trip, Fault};
use crate::progress::RunProgress;
use crate::supervision::{OutcomeLabels, RestartBudget};
use crate::tools::{format_file, Demuxer, ToolError, TranscodeJob};
use crate::transcode::{PoolMsg, TranscodeRequest};
use crate::users::UsersMsg;

/// The principal of every event a run actor causes.
pub const PRINCIPAL: &str = "actor:run-executor";

/// How long a run that found no free slot of its owner waits before it is delivered again.
pub const SLOT_RETRY: Duration = Duration::from_secs(2);

/// A run's claim on its work-queue message: kept alive by a task of its own (not through
/// an actor's mailbox, which a slow command could hold up) while the run executes, acked
/// when it has ended, given back when this replica cannot or may not go on with it. Shared
/// by the restarts of one run's actor.
pub struct Lease {
    delivery: Mutex<Option<Delivery>>,
    keeper: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Lease {
    /// A lease on `delivery`, renewed every `period` (a third of the ack wait).
    pub fn new(delivery: Delivery, period: Duration) -> Arc<Self> {
        let lease = Arc::new(Self {
            delivery: Mutex::new(Some(delivery)),
            keeper: std::sync::Mutex::new(None),
        });
        let weak: Weak<Lease> = Arc::downgrade(&lease);
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(lease) = weak.upgrade() else { return };
                let held = lease.delivery.lock().await;
                let Some(delivery) = held.as_ref() else {
                    return;
                };
                match tokio::time::timeout(period, delivery.in_progress_confirmed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "could not extend a run's lease"),
                    Err(_) => tracing::warn!("extending a run's lease timed out"),
                }
            }
        });
        *lease.keeper.lock().unwrap_or_else(|e| e.into_inner()) = Some(keeper);
        lease
    }

    fn stop_keeping(&self) {
        if let Some(keeper) = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take() {
            keeper.abort();
        }
    }

    /// Replaces the delivery (the same message, delivered again).
    pub async fn renew(&self, delivery: Delivery) {
        *self.delivery.lock().await = Some(delivery);
    }

    /// The run has ended: the message is done.
    pub async fn release(&self) {
        self.stop_keeping();
        if let Some(delivery) = self.delivery.lock().await.take() {
            if let Err(error) = delivery.ack().await {
                tracing::warn!(%error, "could not ack a finished run");
            }
        }
    }

    /// This replica will not go on with the run: deliver it again after `delay`.
    pub async fn give_back(&self, delay: Duration) {
        self.stop_keeping();
        if let Some(delivery) = self.delivery.lock().await.take() {
            if let Err(error) = delivery.nak(delay).await {
                tracing::warn!(%error, "could not give a run back");
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop_keeping();
    }
}

/// Messages of the run manager.
pub enum ManagerMsg {
    /// Execute the run this `RunRequested` delivery names; the permit bounds the runs this
    /// replica holds.
    Execute(Box<Delivery>, OwnedSemaphorePermit),
    /// Run `id` was cancelled: stop its work now.
    Cancel(String),
    /// The ids of the runs executing here.
    Active(ractor::RpcReplyPort<Vec<String>>),
}

struct Entry {
    actor: ActorRef<RunMsg>,
    lease: Arc<Lease>,
    budget: RestartBudget,
    _permit: OwnedSemaphorePermit,
}

/// The run manager actor.
pub struct RunManager {
    pub(crate) deps: Arc<Deps>,
}

/// The manager's state.
#[derive(Default)]
pub struct ManagerState {
    runs: HashMap<Uuid, Entry>,
    by_actor: HashMap<ActorId, Uuid>,
}

impl RunManager {
    async fn spawn_run(
        &self,
        me: &ActorRef<ManagerMsg>,
        run_id: Uuid,
        lease: Arc<Lease>,
    ) -> Result<ActorRef<RunMsg>, ActorProcessingErr> {
        let actor = RunActor {
            deps: self.deps.clone(),
            run_id,
            lease,
            check_every: self.deps.ack_wait() / 3,
        };
        let (actor, _) = Actor::spawn_linked(None, actor, (), me.get_cell()).await?;
        Ok(actor)
    }
}

impl Actor for RunManager {
    type Msg = ManagerMsg;
    type State = ManagerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ManagerState::default())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Stopping (shutdown): the runs in flight go back to the queue at once, for another
        // replica (or the next start) to carry on.
        for entry in state.runs.values() {
            entry.lease.give_back(Duration::ZERO).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ManagerMsg::Execute(delivery, permit) => {
                let Ok(run_id) = Uuid::parse_str(&delivery.event.aggregateid) else {
                    tracing::error!(id = %delivery.event.aggregateid, "run id is not a UUID");
                    let _ = delivery.ack().await;
                    return Ok(());
                };
                if let Some(entry) = state.runs.get(&run_id) {
                    // Delivered again while executing here: keep the newer handle.
                    let lease = entry.lease.clone();
                    tokio::spawn(async move { lease.renew(*delivery).await });
                    return Ok(());
                }
                let lease = Lease::new(*delivery, self.deps.ack_wait() / 3);
                let actor = self.spawn_run(&me, run_id, lease.clone()).await?;
                state.by_actor.insert(actor.get_id(), run_id);
                let (max, within) = self.deps.settings.run_restarts;
                state.runs.insert(
                    run_id,
                    Entry {
                        actor,
                        lease,
                        budget: RestartBudget::new(max, within),
                        _permit: permit,
                    },
                );
                self.deps.metrics.active_runs.set(state.runs.len() as i64);
            }
            ManagerMsg::Cancel(id) => {
                if let Some(entry) = Uuid::parse_str(&id).ok().and_then(|id| state.runs.get(&id)) {
                    let _ = entry.actor.cast(RunMsg::Cancel);
                }
            }
            ManagerMsg::Active(reply) => {
                let _ = reply.send(state.runs.keys().map(Uuid::to_string).collect());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(run_id) = state.by_actor.remove(&cell.get_id()) {
                    state.runs.remove(&run_id);
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(run_id) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                let Some(entry) = state.runs.get_mut(&run_id) else {
                    return Ok(());
                };
                if entry.budget.spend(Instant::now()) {
                    self.deps.metrics.restarted("run");
                    tracing::warn!(%run_id, %error, "run actor crashed; restarting it");
                    let lease = entry.lease.clone();
                    let actor = self.spawn_run(&me, run_id, lease).await?;
                    state.by_actor.insert(actor.get_id(), run_id);
                    if let Some(entry) = state.runs.get_mut(&run_id) {
                        entry.actor = actor;
                    }
                } else {
                    let spent = entry.budget.spent();
                    self.deps.metrics.escalated("run");
                    tracing::error!(%run_id, %error, restarts = spent, "run actor keeps crashing: giving up on the run");
                    let reason = format!(
                        "the run's actor crashed {} times within {:?}; its supervisor gave up (last: {error})",
                        spent + 1,
                        self.deps.settings.run_restarts.1
                    );
                    let lease = entry.lease.clone();
                    state.runs.remove(&run_id);
                    let deps = self.deps.clone();
                    tokio::spawn(async move {
                        // Acked only once the failure is recorded; otherwise the message
                        // comes back and the next executor decides again.
                        if give_up(&deps, run_id, reason).await {
                            lease.release().await;
                        }
                    });
                }
            }
            _ => {}
        }
        self.deps.metrics.active_runs.set(state.runs.len() as i64);
        Ok(())
    }
}

/// Records that the supervisor gave up on a run, retrying while the store is away.
/// `true` once the run has ended (this failure or another outcome).
async fn give_up(deps: &Deps, run_id: Uuid, reason: String) -> bool {
    let id = run_id.to_string();
    for _ in 0..30 {
        let command = RunCommand::FailRun {
            step: None,
            reason: reason.clone(),
            attempt: None,
        };
        let metadata = metadata(run_id, "supervisor");
        match deps.runs.execute(&id, command, &metadata).await {
            Ok(_) | Err(AggregateError::UserError(_)) => {
                deps.metrics
                    .runs_finished
                    .get_or_create(&OutcomeLabels {
                        outcome: "failed".into(),
                    })
                    .inc();
                return true;
            }
            Err(error) => {
                tracing::warn!(%run_id, %error, "could not record the failure yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    false
}

fn metadata(run_id: Uuid, what: &str) -> EventMetadata {
    EventMetadata::system(PRINCIPAL, format!("run:{run_id}:{what}"))
}

/// Messages of a run actor.
pub enum RunMsg {
    /// Load the run and decide what comes next.
    Advance,
    /// Start attempt `attempt` of step `step`.
    Begin {
        /// The step.
        step: usize,
        /// The attempt.
        attempt: u32,
    },
    /// A step's work ended.
    StepDone {
        /// The step.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// What it produced, or why not.
        result: Result<StepOutput, ToolError>,
    },
    /// The run was cancelled: kill the step's work.
    Cancel,
    /// Look at the run in the store: cancelled, or moved on to another executor?
    Check,
    /// The owner's user actor granted the run a slot.
    SlotGranted,
    /// The owner has no free slot: give the run back for later.
    SlotDenied,
    /// The owner was disabled or deleted: the run is cancelled, not started.
    OwnerInactive,
}

/// One run, driven step by step.
struct RunActor {
    deps: Arc<Deps>,
    run_id: Uuid,
    lease: Arc<Lease>,
    check_every: Duration,
}

/// A run actor's state. Dropping it (the actor stopped or panicked) cancels the work,
/// killing ffmpeg, and returns the owner's slot.
struct RunState {
    cancel: CancellationToken,
    _guard: DropGuard,
    /// The owner, once the run is loaded.
    owner: Option<String>,
    /// Asked the owner's user actor for a slot; returns it (or withdraws the ask) on drop.
    slot: Option<SlotGuard>,
    /// The slot was granted (or the run had started before: it needs none).
    admitted: bool,
    /// The step and attempt this actor is running.
    current: Option<(usize, u32)>,
}

/// A run slot of the owner's user actor; returned on drop (also when the actor panics).
struct SlotGuard {
    users: ActorRef<UsersMsg>,
    owner: String,
    run: Uuid,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let _ = self.users.cast(UsersMsg::Release {
            owner: std::mem::take(&mut self.owner),
            run: self.run,
        });
    }
}

impl RunActor {
    fn id(&self) -> String {
        self.run_id.to_string()
    }

    async fn execute(
        &self,
        command: RunCommand,
        what: &str,
    ) -> Result<Vec<aurora_domain::run::RunEvent>, AggregateError<RunError>> {
        self.deps
            .runs
            .execute(&self.id(), command, &metadata(self.run_id, what))
            .await
    }

    /// Ends the actor once the run has ended: the lease is released.
    async fn finish(&self, me: &ActorRef<RunMsg>, status: RunStatus) {
        self.deps
            .metrics
            .runs_finished
            .get_or_create(&OutcomeLabels {
                outcome: status.as_str().into(),
            })
            .inc();
        self.lease.release().await;
        me.stop(None);
    }

    /// Another executor has the run now: kill the work, record nothing, ack nothing.
    fn stand_down(&self, me: &ActorRef<RunMsg>, state: &RunState, why: &str) {
        tracing::warn!(run_id = %self.run_id, why, "the run moved on elsewhere; standing down");
        state.cancel.cancel();
        me.stop(None);
    }

    fn retry_later(me: &ActorRef<RunMsg>, message: RunMsg) {
        let me = me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = me.cast(message);
        });
    }

    async fn advance(&self, me: &ActorRef<RunMsg>, state: &mut RunState) {
        state.current = None;
        let run = match self.deps.runs.load(&self.id()).await {
            Ok(run) => run,
            Err(error) => {
                tracing::warn!(run_id = %self.run_id, %error, "cannot load the run; retrying");
                return Self::retry_later(me, RunMsg::Advance);
            }
        };
        match run.status() {
            RunStatus::New => {
                // The relay publishes committed events only, so this cannot be; drop it.
                tracing::error!(run_id = %self.run_id, "a requested run has no events");
                self.lease.release().await;
                return me.stop(None);
            }
            status if status.is_finished() => return self.finish(me, status).await,
            _ => {}
        }
        if state.owner.is_none() {
            state.owner = run.owner().map(str::to_string);
        }
        // At most the owner's tier of runs start at once. A run that has started already
        // was admitted before (here or elsewhere) and carries on.
        if !state.admitted {
            if run.status() == RunStatus::Requested {
                if let (Some(users), Some(owner)) = (self.deps.users(), state.owner.clone()) {
                    state.slot = Some(SlotGuard {
                        users: users.clone(),
                        owner: owner.clone(),
                        run: self.run_id,
                    });
                    let _ = users.cast(UsersMsg::Acquire {
                        owner,
                        run: self.run_id,
                        actor: me.clone(),
                    });
                    return;
                }
            }
            state.admitted = true;
        }
        let step = run.next_step();
        let attempt = run.attempt();
        let max = self.deps.settings.max_attempts;
        // Interruptions (crashes, killed replicas) are bounded too, more loosely.
        if attempt.failures >= max || attempt.number >= max + 10 {
            let reason = format!(
                "step {step} failed {} times (attempts: {}), the most allowed; last: {}",
                attempt.failures,
                attempt.number,
                run.last_failure().unwrap_or("interrupted")
            );
            let command = RunCommand::FailRun {
                step: Some(step),
                reason,
                attempt: Some(attempt.number),
            };
            match self.execute(command, "give-up").await {
                Ok(_) => {}
                Err(AggregateError::UserError(RunError::StaleAttempt { .. })) => {
                    return self.stand_down(me, state, "another executor started an attempt");
                }
                Err(AggregateError::UserError(_)) => {}
                Err(_) => return Self::retry_later(me, RunMsg::Advance),
            }
            return Box::pin(self.advance(me, state)).await;
        }
        let next = attempt.number + 1;
        let backoff = self.deps.settings.backoff(attempt.failures + 1);
        let begin = RunMsg::Begin {
            step,
            attempt: next,
        };
        if backoff.is_zero() {
            let _ = me.cast(begin);
        } else {
            tracing::info!(run_id = %self.run_id, step, attempt = next, ?backoff, "retrying after a pause");
            let me = me.clone();
            tokio::spawn(async move {
                tokio::time::sleep(backoff).await;
                let _ = me.cast(begin);
            });
        }
    }

    async fn begin(&self, me: &ActorRef<RunMsg>, state: &mut RunState, step: usize, attempt: u32) {
        let command = RunCommand::StartStep {
            step,
            attempt,
            executor: self.deps.executor.clone(),
        };
        match self
            .execute(command, &format!("{step}:{attempt}:start"))
            .await
        {
            Ok(_) => {}
            Err(AggregateError::UserError(RunError::AlreadyFinished(_))) => {
                return Box::pin(self.advance(me, state)).await;
            }
            Err(AggregateError::UserError(error)) => {
                return self.stand_down(me, state, &error.to_string());
            }
            Err(error) => {
                tracing::warn!(run_id = %self.run_id, %error, "cannot start the step; retrying");
                return Self::retry_later(me, RunMsg::Begin { step, attempt });
            }
        }
        state.current = Some((step, attempt));
        trip(Fault::RunActorAfterStart);
        let run = match self.deps.runs.load(&self.id()).await {
            Ok(run) => run,
            Err(error) => {
                let result = Err(ToolError::Failed(format!("cannot load the run: {error}")));
                let _ = me.cast(RunMsg::StepDone {
                    step,
                    attempt,
                    result,
                });
                return;
            }
        };
        let deps = self.deps.clone();
        let cancel = state.cancel.child_token();
        let run_id = self.run_id;
        let work = tokio::spawn(async move {
            let work = StepWork {
                deps: &deps,
                run_id,
                run: &run,
                step,
                attempt,
                cancel: &cancel,
            };
            // Cancelling drops the work wherever it is: a probe, a fetch, a queued or
            // running transcode (ffmpeg and ffprobe are killed on drop).
            tokio::select! {
                result = work.run() => result,
                () = cancel.cancelled() => Err(ToolError::Cancelled),
            }
        });
        // The step's task is watched: a panic in it ends the attempt instead of leaving the
        // run waiting for a result that never comes.
        let me = me.clone();
        tokio::spawn(async move {
            let result = match work.await {
                Ok(result) => result,
                Err(error) => Err(ToolError::Failed(format!(
                    "the step's task failed: {error}"
                ))),
            };
            let _ = me.cast(RunMsg::StepDone {
                step,
                attempt,
                result,
            });
        });
    }

    async fn step_done(
        &self,
        me: &ActorRef<RunMsg>,
        state: &mut RunState,
        step: usize,
        attempt: u32,
        result: Result<StepOutput, ToolError>,
    ) {
        if state.current != Some((step, attempt)) {
            return; // a result this actor no longer waits for
        }
        let what = format!("{step}:{attempt}:end");
        let (command, artifact) = match result {
            Ok(output) => {
                let artifact = output.artifact().map(|a| a.name.clone());
                let command = RunCommand::CompleteStep {
                    step,
                    attempt,
                    output,
                };
                (command, artifact)
            }
            Err(ToolError::Invalid(reason)) => (
                RunCommand::FailRun {
                    step: Some(step),
                    reason,
                    attempt: Some(attempt),
                },
                None,
            ),
            Err(ToolError::Cancelled) => return Box::pin(self.advance(me, state)).await,
            Err(error @ (ToolError::Failed(_) | ToolError::TimedOut(_))) => (
                RunCommand::FailAttempt {
                    step,
                    attempt,
                    reason: error.to_string(),
                },
                None,
            ),
        };
        match self.execute(command.clone(), &what).await {
            Ok(_) => Box::pin(self.advance(me, state)).await,
            Err(AggregateError::UserError(error)) => {
                // Not recorded: the run ended meanwhile, or another executor moved it on —
                // or an earlier try of this very command did commit. The file goes only if
                // no recorded output names it.
                if let Some(name) = artifact {
                    let recorded = self.deps.runs.load(&self.id()).await.map(|run| {
                        run.outputs()
                            .iter()
                            .any(|o| o.artifact().is_some_and(|a| a.name == name))
                    });
                    if let (Ok(false), Some(path)) =
                        (recorded, self.deps.artifacts.artifact(self.run_id, &name))
                    {
                        let _ = tokio::fs::remove_file(path).await;
                    }
                }
                match error {
                    RunError::StaleAttempt { .. } => {
                        // Maybe our own earlier try committed; advance decides from the
                        // store, and stands down if another executor has the run.
                        let run = self.deps.runs.load(&self.id()).await;
                        let ours = run.is_ok_and(|run| {
                            run.next_step() > step
                                || (run.next_step() == step && run.attempt().number == attempt)
                        });
                        if ours {
                            Box::pin(self.advance(me, state)).await
                        } else {
                            self.stand_down(me, state, "a newer attempt supersedes ours");
                        }
                    }
                    _ => Box::pin(self.advance(me, state)).await,
                }
            }
            Err(error) => {
                tracing::warn!(run_id = %self.run_id, %error, "cannot record the step; retrying");
                let result = match command {
                    RunCommand::CompleteStep { output, .. } => Ok(output),
                    RunCommand::FailRun { reason, .. } => Err(ToolError::Invalid(reason)),
                    RunCommand::FailAttempt { reason, .. } => Err(ToolError::Failed(reason)),
                    _ => unreachable!("only step results are recorded here"),
                };
                Self::retry_later(
                    me,
                    RunMsg::StepDone {
                        step,
                        attempt,
                        result,
                    },
                );
            }
        }
    }

    /// Periodic look at the store: a cancel this replica did not hear of, or a newer attempt
    /// by another executor.
    async fn check(&self, me: &ActorRef<RunMsg>, state: &mut RunState) {
        if let (false, Some(slot)) = (state.admitted, &state.slot) {
            // Still no answer about a slot (the user actor may have stopped just as it was
            // asked): ask again.
            let _ = slot.users.cast(UsersMsg::Acquire {
                owner: slot.owner.clone(),
                run: self.run_id,
                actor: me.clone(),
            });
        }
        let Some((step, attempt)) = state.current else {
            return;
        };
        let Ok(run) = self.deps.runs.load(&self.id()).await else {
            return;
        };
        if run.status().is_finished() {
            state.cancel.cancel(); // the step ends Cancelled; advance then finishes
        } else if run.next_step() != step || run.attempt().number != attempt {
            self.stand_down(me, state, "a newer attempt supersedes ours");
        }
    }
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = RunState;
    type Arguments = ();

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let cancel = CancellationToken::new();
        me.send_interval(self.check_every, || RunMsg::Check);
        let _ = me.cast(RunMsg::Advance);
        Ok(RunState {
            _guard: cancel.clone().drop_guard(),
            cancel,
            owner: None,
            slot: None,
            admitted: false,
            current: None,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RunMsg::Advance => self.advance(&me, state).await,
            RunMsg::Begin { step, attempt } => self.begin(&me, state, step, attempt).await,
            RunMsg::StepDone {
                step,
                attempt,
                result,
            } => self.step_done(&me, state, step, attempt, result).await,
            RunMsg::Cancel => {
                state.cancel.cancel();
                if state.current.is_none() {
                    // Nothing running to notice it: look now.
                    self.advance(&me, state).await;
                }
            }
            RunMsg::Check => self.check(&me, state).await,
            RunMsg::SlotGranted => {
                if !state.admitted {
                    state.admitted = true;
                    self.advance(&me, state).await;
                }
            }
            RunMsg::OwnerInactive => {
                let command = RunCommand::CancelRun {
                    reason: Some("the owner was disabled".into()),
                };
                let metadata = EventMetadata::system(
                    crate::users::REAPER_PRINCIPAL,
                    format!("run:{}:owner-inactive", self.run_id),
                );
                if let Err(error) = self.deps.runs.execute(&self.id(), command, &metadata).await {
                    tracing::info!(run_id = %self.run_id, %error, "not cancelled here");
                }
                self.advance(&me, state).await;
            }
            RunMsg::SlotDenied => {
                if !state.admitted {
                    // Back to the queue: other users' runs go first meanwhile.
                    state.slot = None;
                    self.lease.give_back(SLOT_RETRY).await;
                    me.stop(None);
                }
            }
        }
        Ok(())
    }
}

/// The work of one attempt of one step, outside the actor so that the actor stays
/// responsive (a cancel arrives while ffmpeg runs).
struct StepWork<'a> {
    deps: &'a Deps,
    run_id: Uuid,
    run: &'a Run,
    step: usize,
    attempt: u32,
    cancel: &'a CancellationToken,
}

impl StepWork<'_> {
    /// The step's work; a final failure names the step (`step 2 (thumbnail): …`).
    async fn run(&self) -> Result<StepOutput, ToolError> {
        let kind = match self.run.steps().get(self.step) {
            Some(Step::Probe {}) => "probe",
            Some(Step::Transcode { .. }) => "transcode",
            Some(Step::Thumbnail { .. }) => "thumbnail",
            None => "unknown",
        };
        self.work().await.map_err(|error| match error {
            ToolError::Invalid(reason) => {
                ToolError::Invalid(format!("step {} ({kind}): {reason}", self.step))
            }
            other => other,
        })
    }

    async fn work(&self) -> Result<StepOutput, ToolError> {
        let (input, demuxer, known) = self.input().await?;
        let timeout = self.deps.settings.step_timeout;
        match self.run.steps().get(self.step) {
            Some(Step::Probe {}) => {
                let media = self.deps.tools.probe(&input, demuxer, timeout).await?;
                Ok(StepOutput::Probe { media })
            }
            Some(Step::Transcode {
                format,
                quality,
                resolution,
                upscale,
            }) => {
                let info = self.media_info(&input, demuxer, known.clone()).await?;
                if info.video().is_none() {
                    return Err(ToolError::Invalid("the input has no video stream".into()));
                }
                let (extension, content_type) = format_file(*format);
                let (final_path, part) = self.output(extension).await?;
                let job = TranscodeJob {
                    input,
                    demuxer,
                    output: part.clone(),
                    format: *format,
                    quality: *quality,
                    resolution: *resolution,
                    upscale: *upscale,
                    has_audio: info.audio().is_some(),
                    duration_seconds: info.duration_seconds,
                };
                let duration = info.duration_seconds;
                let outcome = self.transcode(job).await;
                // ffmpeg said what it wrote: no read-back probe needed (it costs ~3 % of a
                // short transcode).
                let known = match &outcome {
                    Ok(Some((width, height))) => Some((*width, *height, duration)),
                    _ => None,
                };
                let output = Demuxer::of_output(*format);
                self.finish_file(
                    outcome.map(|_| ()),
                    &part,
                    &final_path,
                    content_type,
                    output,
                    known,
                )
                .await
            }
            Some(Step::Thumbnail { at_seconds }) => {
                let info = self.media_info(&input, demuxer, known.clone()).await?;
                if info.video().is_none() {
                    return Err(ToolError::Invalid("the input has no video stream".into()));
                }
                if let Some(duration) = info.duration_seconds {
                    if *at_seconds >= duration {
                        return Err(ToolError::Invalid(format!(
                            "a thumbnail at {at_seconds} s is past the end of the media ({duration:.2} s)"
                        )));
                    }
                }
                let (final_path, part) = self.output("jpg").await?;
                let outcome = self
                    .deps
                    .tools
                    .thumbnail(&input, demuxer, *at_seconds, &part, self.cancel, timeout)
                    .await;
                self.finish_file(
                    outcome,
                    &part,
                    &final_path,
                    "image/jpeg",
                    Demuxer::JPEG,
                    None,
                )
                .await
            }
            None => Err(ToolError::Invalid(format!(
                "the run has no step {}",
                self.step
            ))),
        }
    }

    /// The input file on local disk, the demuxer it was admitted with, and what ffprobe
    /// found when it was uploaded.
    async fn input(&self) -> Result<(PathBuf, Demuxer, Option<MediaInfo>), ToolError> {
        match self.run.input() {
            Some(Input::MediaId(id)) => {
                let media = self
                    .deps
                    .media
                    .load(&id.to_string())
                    .await
                    .map_err(|e| ToolError::Failed(format!("cannot load media {id}: {e}")))?;
                let Some(upload) = media.upload() else {
                    return Err(ToolError::Invalid(format!("media {id} does not exist")));
                };
                // Read as what it was admitted as, and nothing else.
                let Some(format) = InputFormat::from_content_type(&upload.content_type) else {
                    return Err(ToolError::Invalid(format!(
                        "media {id} is {}, which is no longer admitted as an input ({})",
                        upload.content_type,
                        InputFormat::names()
                    )));
                };
                let path = self.deps.artifacts.media(upload.media_id);
                if tokio::fs::metadata(&path).await.is_err() {
                    return Err(ToolError::Failed(format!(
                        "the file of media {id} is missing from the artifact store"
                    )));
                }
                Ok((path, Demuxer::of(format), Some(upload.info.clone())))
            }
            Some(Input::Url(url)) => {
                let (path, format) =
                    crate::fetch::fetch_input(self.deps, self.run_id, url, self.cancel).await?;
                Ok((path, Demuxer::of(format), None))
            }
            None => Err(ToolError::Invalid("the run has no input".into())),
        }
    }

    /// What an earlier probe step found, else what the upload's check found, else a probe
    /// now.
    async fn media_info(
        &self,
        input: &std::path::Path,
        demuxer: Demuxer,
        known: Option<MediaInfo>,
    ) -> Result<MediaInfo, ToolError> {
        let earlier = self.run.outputs().iter().rev().find_map(|o| match o {
            StepOutput::Probe { media } => Some(media.clone()),
            StepOutput::Artifact { .. } => None,
        });
        match earlier.or(known) {
            Some(info) => Ok(info),
            None => {
                self.deps
                    .tools
                    .probe(input, demuxer, self.deps.settings.step_timeout)
                    .await
            }
        }
    }

    async fn output(&self, extension: &str) -> Result<(PathBuf, PathBuf), ToolError> {
        let dir = self.deps.artifacts.run_dir(self.run_id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ToolError::Failed(format!("cannot create the run's directory: {e}")))?;
        let name = ArtifactStore::step_file_name(self.step, self.attempt, extension);
        let final_path = dir.join(name);
        let part = ArtifactStore::part(&final_path);
        Ok((final_path, part))
    }

    async fn transcode(&self, job: TranscodeJob) -> Result<Option<(u32, u32)>, ToolError> {
        let pool = self
            .deps
            .pool()
            .ok_or_else(|| ToolError::Failed("the transcode pool is not running".into()))?;
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let (reply, outcome) = oneshot::channel();
        let request = TranscodeRequest {
            job,
            cancel: self.cancel.clone(),
            timeout: self.deps.settings.step_timeout,
            progress: progress_tx,
            reply,
        };
        pool.cast(PoolMsg::Submit(Box::new(request)))
            .map_err(|e| ToolError::Failed(format!("the transcode pool is gone: {e}")))?;
        // Live progress to the hub; milestones (25/50/75 %) to the store.
        let forward = async {
            let mut milestone = 0u8;
            while let Some(report) = progress_rx.recv().await {
                self.deps
                    .progress
                    .publish(RunProgress {
                        run_id: self.run_id.to_string(),
                        step: self.step,
                        attempt: self.attempt,
                        percent: report.percent,
                        fps: report.fps,
                        speed: report.speed,
                        out_seconds: report.out_seconds,
                    })
                    .await;
                let reached = [25u8, 50, 75]
                    .into_iter()
                    .rfind(|m| report.percent >= f32::from(*m))
                    .unwrap_or(0);
                if reached > milestone {
                    milestone = reached;
                    let command = RunCommand::RecordProgress {
                        step: self.step,
                        attempt: self.attempt,
                        percent: reached,
                    };
                    let what = format!("{}:{}:progress", self.step, self.attempt);
                    if let Err(error) = self
                        .deps
                        .runs
                        .execute(
                            &self.run_id.to_string(),
                            command,
                            &metadata(self.run_id, &what),
                        )
                        .await
                    {
                        tracing::debug!(%error, "milestone not recorded");
                    }
                }
            }
        };
        let (result, ()) = tokio::join!(
            async {
                outcome.await.unwrap_or_else(|_| {
                    Err(ToolError::Failed(
                        "the transcode worker crashed mid-job".into(),
                    ))
                })
            },
            forward
        );
        result
    }

    /// Checks and names a file a tool wrote at `part`, then moves it to `final_path`.
    /// On failure the partial file is removed.
    /// `known`: the picture size and duration the tool reported; without it the file is
    /// read back with ffprobe.
    async fn finish_file(
        &self,
        outcome: Result<(), ToolError>,
        part: &std::path::Path,
        final_path: &std::path::Path,
        content_type: &str,
        demuxer: Demuxer,
        known: Option<(u32, u32, Option<f64>)>,
    ) -> Result<StepOutput, ToolError> {
        let checked = async {
            outcome?;
            let probe = async {
                match known {
                    Some((width, height, duration)) => Ok(MediaInfo {
                        container: String::new(),
                        duration_seconds: duration,
                        bit_rate: None,
                        streams: vec![aurora_domain::media::StreamInfo {
                            index: 0,
                            kind: "video".into(),
                            codec: String::new(),
                            width: Some(width),
                            height: Some(height),
                            frame_rate: None,
                            sample_rate: None,
                            channels: None,
                        }],
                    }),
                    None => {
                        self.deps
                            .tools
                            .probe(part, demuxer, self.deps.settings.step_timeout)
                            .await
                    }
                }
            };
            // Read back (when needed) and hashed at the same time.
            let (info, digest) = tokio::join!(probe, ArtifactStore::digest(part));
            let info =
                info.map_err(|e| ToolError::Failed(format!("the output does not read back: {e}")))?;
            let (bytes, sha256) =
                digest.map_err(|e| ToolError::Failed(format!("cannot read the output: {e}")))?;
            ArtifactStore::commit(part, final_path)
                .await
                .map_err(|e| ToolError::Failed(format!("cannot store the output: {e}")))?;
            let video = info.video();
            Ok(StepOutput::Artifact {
                artifact: Artifact {
                    id: Uuid::new_v4(),
                    name: final_path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    content_type: content_type.into(),
                    bytes,
                    sha256,
                    width: video.and_then(|v| v.width),
                    height: video.and_then(|v| v.height),
                    duration_seconds: info
                        .duration_seconds
                        .filter(|_| content_type.starts_with("video/")),
                },
            })
        }
        .await;
        if checked.is_err() {
            let _ = tokio::fs::remove_file(part).await;
        }
        checked
    }
}
