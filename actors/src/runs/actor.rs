//! A run actor: one run, driven step by step as a state machine of commands.

use std::sync::Arc;
use std::time::Duration;

use aurora_domain::run::{RunCommand, RunError, RunStatus, StepOutput};
use aurora_domain::EventMetadata;
use cqrs_es::AggregateError;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use super::lease::Lease;
use super::step::StepWork;
use super::{metadata, Peers, SLOT_RETRY};
use crate::deps::Deps;
use crate::faults::{trip, Fault};
use crate::supervision::OutcomeLabels;
use crate::tools::ToolError;
use crate::transcode::PoolMsg;
use crate::users::{Slot, UsersMsg};

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
    /// The owner's user actor answered the ask for a slot.
    Slot(Slot),
    /// The engine's root restarted the pool or the users supervisor: use these now.
    Peers(Peers),
}

impl From<Slot> for RunMsg {
    fn from(slot: Slot) -> Self {
        Self::Slot(slot)
    }
}

impl TryFrom<RunMsg> for Slot {
    type Error = RunMsg;

    fn try_from(message: RunMsg) -> Result<Self, RunMsg> {
        match message {
            RunMsg::Slot(slot) => Ok(slot),
            other => Err(other),
        }
    }
}

/// One run, driven step by step.
pub(super) struct RunActor {
    pub(super) deps: Arc<Deps>,
    pub(super) run_id: Uuid,
    pub(super) lease: Arc<Lease>,
    pub(super) check_every: Duration,
}

/// A run actor's state. Dropping it (the actor stopped or panicked) cancels the work,
/// killing ffmpeg, and returns the owner's slot.
pub(super) struct RunState {
    /// The pool as it is now, also for step work in flight (it submits its transcode after
    /// a fetch or a probe, by when the pool may have been restarted).
    pool: watch::Sender<ActorRef<PoolMsg>>,
    /// The users supervisor as it is now, when per-tier limits are enforced.
    users: Option<ActorRef<UsersMsg>>,
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

impl SlotGuard {
    /// Asks (again) for the slot: a `RunMsg::Slot` answer follows.
    fn ask(&self, me: &ActorRef<RunMsg>) {
        let _ = self.users.cast(UsersMsg::Acquire {
            owner: self.owner.clone(),
            run: self.run,
            actor: me.get_derived(),
        });
    }
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
                if let (Some(users), Some(owner)) = (&state.users, &state.owner) {
                    let slot = state.slot.insert(SlotGuard {
                        users: users.clone(),
                        owner: owner.clone(),
                        run: self.run_id,
                    });
                    slot.ask(me);
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
        let pool = state.pool.subscribe();
        let cancel = state.cancel.child_token();
        let run_id = self.run_id;
        let work = tokio::spawn(async move {
            let work = StepWork {
                deps: &deps,
                pool,
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
            slot.ask(me);
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
    type Arguments = Peers;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        peers: Peers,
    ) -> Result<Self::State, ActorProcessingErr> {
        let cancel = CancellationToken::new();
        me.send_interval(self.check_every, || RunMsg::Check);
        let _ = me.cast(RunMsg::Advance);
        Ok(RunState {
            pool: watch::Sender::new(peers.pool),
            users: peers.users,
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
            RunMsg::Peers(peers) => {
                state.pool.send_replace(peers.pool);
                if let (Some(slot), Some(users)) = (state.slot.as_mut(), &peers.users) {
                    // The slot is returned to the new supervisor; an ask that went to the
                    // old one is lost with it, so it is asked again of the new one.
                    slot.users = users.clone();
                    if !state.admitted {
                        slot.ask(&me);
                    }
                }
                state.users = peers.users;
            }
            RunMsg::Slot(Slot::Granted) => {
                if !state.admitted {
                    state.admitted = true;
                    self.advance(&me, state).await;
                }
            }
            RunMsg::Slot(Slot::OwnerInactive) => {
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
            RunMsg::Slot(Slot::Denied) => {
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
