//! The `Run` aggregate's state and rules.
//!
//! A run is `requested`, `running` from its first `StepStarted`, and ends `succeeded`,
//! `failed` or `cancelled`. Steps run in order; each has numbered attempts. Only the latest
//! attempt of the next step may progress, complete or fail, so a command from an executor
//! that lost the run changes nothing, and every step has at most one output.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{Input, RunCommand, RunEvent, SpecError, Step, StepOutput};

/// Longest accepted cancellation or failure reason, in characters.
pub const MAX_REASON_LEN: usize = 1000;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Not requested yet (the aggregate has no events).
    #[default]
    New,
    /// Requested, waiting to be executed.
    Requested,
    /// A step has started.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed for good.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl RunStatus {
    /// The status as it appears in the API and read models.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::New => "new",
            RunStatus::Requested => "requested",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Has the run ended?
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// Why the `Run` aggregate refused a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The spec broke a rule.
    #[error("invalid run spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// `RequestRun` for a run that exists.
    #[error("run already exists")]
    AlreadyExists,
    /// A command for a run that was never requested.
    #[error("run not found")]
    NotFound,
    /// The run has finished and cannot change.
    #[error("run is already {}", .0.as_str())]
    AlreadyFinished(RunStatus),
    /// A reason longer than [`MAX_REASON_LEN`].
    #[error("reason is longer than {MAX_REASON_LEN} characters")]
    ReasonTooLong,
    /// `RecordGeneration` with another id for a step that has one.
    #[error("step {step} already has a generation ({video_id}); a step pays for one video")]
    GenerationRecorded {
        /// The step.
        step: usize,
        /// The id it has.
        video_id: String,
    },
    /// `ReportGeneration` about a video the run did not record.
    #[error("the run has no generation {0}")]
    UnknownGeneration(String),
    /// A provider's id that is empty, too long or has characters ids do not have.
    #[error("a provider's video id is 1 to 128 letters, digits, '-' or '_'")]
    InvalidVideoId,
    /// An execution command about a step or attempt that is not the current one.
    #[error("step {step} attempt {attempt} is not the current attempt of the next step")]
    StaleAttempt {
        /// The step named.
        step: usize,
        /// The attempt named.
        attempt: u32,
    },
}

/// The current attempt of the next step.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its number (0: none started yet).
    pub number: u32,
    /// Started and not yet ended (succeeded or failed).
    pub open: bool,
    /// The highest milestone recorded for it.
    pub percent: u8,
    /// Attempts of this step that failed by their own work (interruptions not counted).
    pub failures: u32,
}

/// The paid video a generate step asked a provider for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// The step.
    pub step: usize,
    /// The provider's id.
    pub video_id: String,
    /// What the provider's webhook reported, if it did: succeeded or not.
    pub reported: Option<bool>,
    /// When the provider took the request.
    pub submitted_at: chrono::DateTime<chrono::Utc>,
}

/// Longest provider video id accepted, in characters.
pub const MAX_VIDEO_ID_LEN: usize = 128;

/// A provider's video id: 1 to [`MAX_VIDEO_ID_LEN`] ASCII letters, digits, `-` or `_` (it
/// goes into URLs and log lines).
pub fn is_video_id(id: &str) -> bool {
    (1..=MAX_VIDEO_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A pipeline run. Holds what its rules and its executors need.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    status: RunStatus,
    owner: Option<String>,
    input: Option<Input>,
    steps: Vec<Step>,
    outputs: Vec<StepOutput>,
    attempt: Attempt,
    last_failure: Option<String>,
    generation: Option<Generation>,
}

impl Run {
    /// The principal who owns the run, once requested.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The run's current status.
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// Its input, once requested.
    pub fn input(&self) -> Option<&Input> {
        self.input.as_ref()
    }

    /// Its steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The outputs of the steps that succeeded, in order.
    pub fn outputs(&self) -> &[StepOutput] {
        &self.outputs
    }

    /// Index of the next step to run (equal to the number of steps once all succeeded).
    pub fn next_step(&self) -> usize {
        self.outputs.len()
    }

    /// The current attempt of the next step.
    pub fn attempt(&self) -> Attempt {
        self.attempt
    }

    /// The video a generate step asked for, once recorded.
    pub fn generation(&self, step: usize) -> Option<&Generation> {
        self.generation.as_ref().filter(|g| g.step == step)
    }

    /// Why the last failed attempt of the next step failed.
    pub fn last_failure(&self) -> Option<&str> {
        self.last_failure.as_deref()
    }

    fn check_reason(reason: &str) -> Result<(), RunError> {
        if reason.chars().count() > MAX_REASON_LEN {
            return Err(RunError::ReasonTooLong);
        }
        Ok(())
    }

    fn check_open(&self) -> Result<(), RunError> {
        match self.status {
            RunStatus::New => Err(RunError::NotFound),
            status if status.is_finished() => Err(RunError::AlreadyFinished(status)),
            _ => Ok(()),
        }
    }

    /// The command names the open attempt of the next step.
    fn check_current(&self, step: usize, attempt: u32) -> Result<(), RunError> {
        self.check_open()?;
        if step != self.next_step() || attempt != self.attempt.number || !self.attempt.open {
            return Err(RunError::StaleAttempt { step, attempt });
        }
        Ok(())
    }
}

impl Aggregate for Run {
    const TYPE: &'static str = "run";
    type Command = RunCommand;
    type Event = RunEvent;
    type Error = RunError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            RunCommand::RequestRun {
                run_id,
                owner,
                spec,
            } => {
                if self.status != RunStatus::New {
                    return Err(RunError::AlreadyExists);
                }
                spec.validate()?;
                let event = RunEvent::RunRequested {
                    run_id,
                    owner,
                    input: spec.input,
                    steps: spec.steps,
                };
                sink.write(event, self).await;
            }
            RunCommand::CancelRun { reason } => {
                self.check_open()?;
                if let Some(reason) = &reason {
                    Self::check_reason(reason)?;
                }
                sink.write(RunEvent::RunCancelled { reason }, self).await;
            }
            RunCommand::StartStep {
                step,
                attempt,
                executor,
            } => {
                self.check_open()?;
                // An open attempt may be superseded (its executor died); only the next
                // number may start, so of two executors racing, one wins.
                if step != self.next_step()
                    || step >= self.steps.len()
                    || attempt != self.attempt.number + 1
                {
                    return Err(RunError::StaleAttempt { step, attempt });
                }
                if self.attempt.open {
                    let superseded = RunEvent::StepAttemptFailed {
                        step,
                        attempt: self.attempt.number,
                        reason: format!("interrupted: superseded by attempt {attempt}"),
                        interrupted: true,
                    };
                    sink.write(superseded, self).await;
                }
                let event = RunEvent::StepStarted {
                    step,
                    attempt,
                    executor,
                };
                sink.write(event, self).await;
            }
            RunCommand::RecordProgress {
                step,
                attempt,
                percent,
            } => {
                self.check_current(step, attempt)?;
                // Milestones only move forward; a repeat changes nothing.
                if percent > self.attempt.percent && percent < 100 {
                    let event = RunEvent::StepProgressed {
                        step,
                        attempt,
                        percent,
                    };
                    sink.write(event, self).await;
                }
            }
            RunCommand::RecordGeneration {
                step,
                attempt,
                video_id,
                at,
            } => {
                self.check_current(step, attempt)?;
                let provider = match self.steps.get(step) {
                    Some(Step::Generate { provider, .. }) => *provider,
                    _ => return Err(RunError::StaleAttempt { step, attempt }),
                };
                if !is_video_id(&video_id) {
                    return Err(RunError::InvalidVideoId);
                }
                match self.generation(step) {
                    Some(recorded) if recorded.video_id == video_id => {}
                    Some(recorded) => {
                        return Err(RunError::GenerationRecorded {
                            step,
                            video_id: recorded.video_id.clone(),
                        })
                    }
                    None => {
                        let event = RunEvent::GenerationSubmitted {
                            step,
                            attempt,
                            provider,
                            video_id,
                            at,
                        };
                        sink.write(event, self).await;
                    }
                }
            }
            RunCommand::ReportGeneration {
                step,
                video_id,
                succeeded,
                message,
            } => {
                self.check_open()?;
                let Some(recorded) = self.generation(step).filter(|g| g.video_id == video_id)
                else {
                    return Err(RunError::UnknownGeneration(video_id));
                };
                // The first report stands: replays (of either outcome) change nothing.
                if recorded.reported.is_none() {
                    let message = message.map(truncate);
                    let event = RunEvent::GenerationReported {
                        step,
                        video_id,
                        succeeded,
                        message,
                    };
                    sink.write(event, self).await;
                }
            }
            RunCommand::CompleteStep {
                step,
                attempt,
                output,
            } => {
                self.check_current(step, attempt)?;
                let last = step + 1 == self.steps.len();
                let event = RunEvent::StepSucceeded {
                    step,
                    attempt,
                    output,
                };
                sink.write(event, self).await;
                if last {
                    sink.write(RunEvent::RunSucceeded {}, self).await;
                }
            }
            RunCommand::FailAttempt {
                step,
                attempt,
                reason,
            } => {
                self.check_current(step, attempt)?;
                let reason = truncate(reason);
                let event = RunEvent::StepAttemptFailed {
                    step,
                    attempt,
                    reason,
                    interrupted: false,
                };
                sink.write(event, self).await;
            }
            RunCommand::FailRun {
                step,
                reason,
                attempt,
            } => {
                self.check_open()?;
                // An executor fails the run only from the attempt it ran: one that lost the
                // run to another cannot fail it.
                if let (Some(step), Some(attempt)) = (step, attempt) {
                    if step != self.next_step() || attempt != self.attempt.number {
                        return Err(RunError::StaleAttempt { step, attempt });
                    }
                }
                let reason = truncate(reason);
                sink.write(RunEvent::RunFailed { step, reason }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            RunEvent::RunRequested {
                owner,
                input,
                steps,
                ..
            } => {
                self.owner = Some(owner);
                self.input = input;
                self.steps = steps;
                self.status = RunStatus::Requested;
            }
            RunEvent::RunCancelled { .. } => self.status = RunStatus::Cancelled,
            RunEvent::StepStarted { attempt, .. } => {
                self.status = RunStatus::Running;
                self.attempt = Attempt {
                    number: attempt,
                    open: true,
                    percent: 0,
                    failures: self.attempt.failures,
                };
            }
            RunEvent::StepProgressed { percent, .. } => self.attempt.percent = percent,
            RunEvent::StepAttemptFailed {
                reason,
                interrupted,
                ..
            } => {
                self.attempt.open = false;
                if !interrupted {
                    self.attempt.failures += 1;
                }
                self.last_failure = Some(reason);
            }
            RunEvent::GenerationSubmitted {
                step, video_id, at, ..
            } => {
                self.generation = Some(Generation {
                    step,
                    video_id,
                    reported: None,
                    submitted_at: at,
                });
            }
            RunEvent::GenerationReported { succeeded, .. } => {
                if let Some(generation) = &mut self.generation {
                    generation.reported = Some(succeeded);
                }
            }
            RunEvent::StepSucceeded { output, .. } => {
                self.outputs.push(output);
                self.attempt = Attempt::default();
                self.last_failure = None;
            }
            RunEvent::RunSucceeded {} => self.status = RunStatus::Succeeded,
            RunEvent::RunFailed { .. } => self.status = RunStatus::Failed,
        }
    }
}

/// Reasons from executors are cut, not refused: a failure must always be recordable.
fn truncate(reason: String) -> String {
    if reason.chars().count() <= MAX_REASON_LEN {
        return reason;
    }
    reason
        .chars()
        .take(MAX_REASON_LEN - 1)
        .chain(['…'])
        .collect()
}
