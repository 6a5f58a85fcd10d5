//! The run manager and its run actors.
//!
//! The manager is handed each requested run by the work queue (with the message's lease)
//! and starts one run actor per run, linked to it. A run actor drives its run's steps as a
//! state machine through commands — `StartStep`, `RecordProgress`, `CompleteStep`,
//! `FailAttempt`, `FailRun` — so every change is an event with the actor as principal. It
//! keeps no state the store does not have: each decision starts by loading the run, so a
//! restarted actor (or another replica) carries on where the events say the run is.
//!
//! When a run actor panics, the manager restarts it with the same lease, within a budget
//! per run; past the budget it gives up: the run fails with the reason, a log line and the
//! `aurora_supervisor_escalations_total{kind="run"}` counter say so.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurora_domain::media::{Artifact, MediaInfo};
use aurora_domain::run::{Input, Run, RunCommand, RunError, RunStatus, Step, StepOutput};
use aurora_domain::EventMetadata;
use aurora_nats::Delivery;
use cqrs_es::AggregateError;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit};
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use crate::artifacts::ArtifactStore;
use crate::engine::Deps;
use crate::faults::{trip, Fault};
use crate::progress::RunProgress;
use crate::supervision::{OutcomeLabels, RestartBudget};
use crate::tools::{format_file, ToolError, TranscodeJob};
use crate::transcode::{PoolMsg, TranscodeRequest};

/// The principal of every event a run actor causes.
pub const PRINCIPAL: &str = "actor:run-executor";

/// A run's claim on its work-queue message: kept alive while the run executes, acked when
/// it has ended. Shared by the restarts of one run's actor.
pub struct Lease {
    delivery: Mutex<Option<Delivery>>,
}

impl Lease {
    /// A lease on `delivery`.
    pub fn new(delivery: Delivery) -> Self {
        Self {
            delivery: Mutex::new(Some(delivery)),
        }
    }

    /// Tells the bus the run is still executing.
    pub async fn keep_alive(&self) {
        if let Some(delivery) = &*self.delivery.lock().await {
            if let Err(error) = delivery.in_progress().await {
                tracing::warn!(%error, "could not extend a run's lease");
            }
        }
    }

    /// The run has ended: the message is done.
    pub async fn release(&self) {
        if let Some(delivery) = self.delivery.lock().await.take() {
            if let Err(error) = delivery.ack().await {
                tracing::warn!(%error, "could not ack a finished run");
            }
        }
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
                    *entry.lease.delivery.lock().await = Some(*delivery);
                    return Ok(());
                }
                let lease = Arc::new(Lease::new(*delivery));
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
                        give_up(&deps, run_id, reason).await;
                        lease.release().await;
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
async fn give_up(deps: &Deps, run_id: Uuid, reason: String) {
    let id = run_id.to_string();
    for _ in 0..30 {
        let command = RunCommand::FailRun {
            step: None,
            reason: reason.clone(),
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
                return;
            }
            Err(error) => {
                tracing::warn!(%run_id, %error, "could not record the failure yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn metadata(run_id: Uuid, what: &str) -> EventMetadata {
    EventMetadata::new(PRINCIPAL, format!("run:{run_id}:{what}"))
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
    /// Extend the lease (and, while waiting for a slot, ask again).
    KeepAlive,
    /// The owner's user actor granted the run a slot.
    SlotGranted,
    /// Still waiting for a slot: ask again (a user actor may have stopped meanwhile).
    AskSlot,
}

/// One run, driven step by step.
struct RunActor {
    deps: Arc<Deps>,
    run_id: Uuid,
    lease: Arc<Lease>,
}

/// A run actor's state: only what cancels its work. Dropping it (the actor stopped or
/// panicked) cancels the work too, killing ffmpeg.
struct RunState {
    cancel: CancellationToken,
    _guard: DropGuard,
    /// The owner, once the run is loaded.
    owner: Option<String>,
    /// The owner's slot, while held; returned when dropped.
    slot: Option<SlotGuard>,
}

/// A run slot of the owner's user actor; returned on drop (also when the actor panics).
struct SlotGuard {
    users: ActorRef<crate::users::UsersMsg>,
    owner: String,
    run: Uuid,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let _ = self.users.cast(crate::users::UsersMsg::Release {
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

    fn retry_later(me: &ActorRef<RunMsg>, message: RunMsg) {
        let me = me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = me.cast(message);
        });
    }

    /// Asks the owner's user actor for a slot (no-op without user actors), and again
    /// every second until granted.
    fn request_slot(&self, me: &ActorRef<RunMsg>, state: &RunState) {
        if let (Some(users), Some(owner)) = (self.deps.users(), &state.owner) {
            let _ = users.cast(crate::users::UsersMsg::Acquire {
                owner: owner.clone(),
                run: self.run_id,
                actor: me.clone(),
            });
            let me = me.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = me.cast(RunMsg::AskSlot);
            });
        }
    }

    async fn advance(&self, me: &ActorRef<RunMsg>, state: &mut RunState) {
        let run = match self.deps.runs.load(&self.id()).await {
            Ok(run) => run,
            Err(error) => {
                tracing::warn!(run_id = %self.run_id, %error, "cannot load the run; retrying");
                return Self::retry_later(me, RunMsg::Advance);
            }
        };
        match run.status() {
            RunStatus::New => {
                // The message came before the event was readable here? It cannot: the relay
                // publishes committed events only. Treat as gone.
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
        // At most the owner's tier of runs execute at once: wait for a slot.
        if state.slot.is_none() && self.deps.users().is_some() {
            return self.request_slot(me, state);
        }
        let step = run.next_step();
        let attempt = run.attempt();
        let max = self.deps.settings.max_attempts;
        if attempt.number >= max {
            let reason = format!(
                "step {step} failed {} times, the most allowed; last: {}",
                attempt.number,
                run.last_failure().unwrap_or("interrupted")
            );
            let command = RunCommand::FailRun {
                step: Some(step),
                reason,
            };
            if let Err(error) = self.execute(command, "give-up").await {
                if !matches!(error, AggregateError::UserError(_)) {
                    return Self::retry_later(me, RunMsg::Advance);
                }
            }
            return Box::pin(self.advance(me, state)).await;
        }
        let next = attempt.number + 1;
        let backoff = self.deps.settings.backoff(next);
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
                // Another executor moved the run on: it is theirs now.
                tracing::warn!(run_id = %self.run_id, %error, "the run moved on elsewhere; standing down");
                return me.stop(None);
            }
            Err(error) => {
                tracing::warn!(run_id = %self.run_id, %error, "cannot start the step; retrying");
                return Self::retry_later(me, RunMsg::Begin { step, attempt });
            }
        }
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
        let me = me.clone();
        let run_id = self.run_id;
        tokio::spawn(async move {
            let work = StepWork {
                deps: &deps,
                run_id,
                run: &run,
                step,
                attempt,
                cancel: &cancel,
            };
            let result = work.run().await;
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
                    reason: format!("step {step} ({}): {reason}", self.step_kind(step).await),
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
                // Not ours to record any more (cancelled, or superseded): discard the file.
                if let Some(name) = artifact {
                    if let Some(path) = self.deps.artifacts.artifact(self.run_id, &name) {
                        let _ = tokio::fs::remove_file(path).await;
                    }
                }
                tracing::info!(run_id = %self.run_id, %error, "step result not recorded");
                Box::pin(self.advance(me, state)).await
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

    async fn step_kind(&self, step: usize) -> &'static str {
        match self.deps.runs.load(&self.id()).await {
            Ok(run) => match run.steps().get(step) {
                Some(Step::Probe {}) => "probe",
                Some(Step::Transcode { .. }) => "transcode",
                Some(Step::Thumbnail { .. }) => "thumbnail",
                None => "unknown",
            },
            Err(_) => "unknown",
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
        let period = self.deps.settings.ack_wait / 3;
        me.send_interval(period, || RunMsg::KeepAlive);
        let _ = me.cast(RunMsg::Advance);
        Ok(RunState {
            _guard: cancel.clone().drop_guard(),
            cancel,
            owner: None,
            slot: None,
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
                // Waiting for a slot: nothing runs to notice the cancel, so look now.
                if state.slot.is_none() {
                    self.advance(&me, state).await;
                }
            }
            RunMsg::KeepAlive => self.lease.keep_alive().await,
            RunMsg::AskSlot => {
                if state.slot.is_none() {
                    self.request_slot(&me, state);
                }
            }
            RunMsg::SlotGranted => {
                if state.slot.is_none() {
                    if let (Some(users), Some(owner)) = (self.deps.users(), state.owner.clone()) {
                        state.slot = Some(SlotGuard {
                            users,
                            owner,
                            run: self.run_id,
                        });
                        self.advance(&me, state).await;
                    }
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
    async fn run(&self) -> Result<StepOutput, ToolError> {
        let input = self.input().await?;
        let timeout = self.deps.settings.step_timeout;
        match self.run.steps().get(self.step) {
            Some(Step::Probe {}) => {
                let media = self.deps.tools.probe(&input, timeout).await?;
                Ok(StepOutput::Probe { media })
            }
            Some(Step::Transcode {
                format,
                quality,
                resolution,
            }) => {
                let info = self.media_info(&input).await?;
                if info.video().is_none() {
                    return Err(ToolError::Invalid("the input has no video stream".into()));
                }
                let (extension, content_type) = format_file(*format);
                let (final_path, part) = self.output(extension).await?;
                let job = TranscodeJob {
                    input,
                    output: part.clone(),
                    format: *format,
                    quality: *quality,
                    resolution: *resolution,
                    has_audio: info.audio().is_some(),
                    duration_seconds: info.duration_seconds,
                };
                let outcome = self.transcode(job).await;
                self.finish_file(outcome, &part, &final_path, content_type)
                    .await
            }
            Some(Step::Thumbnail { at_seconds }) => {
                let info = self.media_info(&input).await?;
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
                    .thumbnail(&input, *at_seconds, &part, self.cancel, timeout)
                    .await;
                self.finish_file(outcome, &part, &final_path, "image/jpeg")
                    .await
            }
            None => Err(ToolError::Invalid(format!(
                "the run has no step {}",
                self.step
            ))),
        }
    }

    /// The input file on local disk.
    async fn input(&self) -> Result<PathBuf, ToolError> {
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
                let path = self.deps.artifacts.media(upload.media_id);
                if tokio::fs::metadata(&path).await.is_err() {
                    return Err(ToolError::Failed(format!(
                        "the file of media {id} is missing from the artifact store"
                    )));
                }
                Ok(path)
            }
            Some(Input::Url(url)) => {
                crate::fetch::fetch_input(self.deps, self.run_id, url, self.cancel).await
            }
            None => Err(ToolError::Invalid("the run has no input".into())),
        }
    }

    /// What an earlier probe step found, or a probe now.
    async fn media_info(&self, input: &std::path::Path) -> Result<MediaInfo, ToolError> {
        let earlier = self.run.outputs().iter().rev().find_map(|o| match o {
            StepOutput::Probe { media } => Some(media.clone()),
            StepOutput::Artifact { .. } => None,
        });
        match earlier {
            Some(info) => Ok(info),
            None => {
                self.deps
                    .tools
                    .probe(input, self.deps.settings.step_timeout)
                    .await
            }
        }
    }

    async fn output(&self, extension: &str) -> Result<(PathBuf, PathBuf), ToolError> {
        let dir = self.deps.artifacts.run_dir(self.run_id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ToolError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let name = ArtifactStore::step_file_name(self.step, self.attempt, extension);
        let final_path = dir.join(name);
        let part = ArtifactStore::part(&final_path);
        Ok((final_path, part))
    }

    async fn transcode(&self, job: TranscodeJob) -> Result<(), ToolError> {
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
    async fn finish_file(
        &self,
        outcome: Result<(), ToolError>,
        part: &std::path::Path,
        final_path: &std::path::Path,
        content_type: &str,
    ) -> Result<StepOutput, ToolError> {
        let checked = async {
            outcome?;
            let info = self
                .deps
                .tools
                .probe(part, self.deps.settings.step_timeout)
                .await
                .map_err(|e| ToolError::Failed(format!("the output does not read back: {e}")))?;
            let (bytes, sha256) = ArtifactStore::digest(part)
                .await
                .map_err(|e| ToolError::Failed(format!("cannot read the output: {e}")))?;
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
