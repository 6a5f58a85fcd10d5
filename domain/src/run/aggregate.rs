//! The `Run` aggregate's state and rules.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{RunCommand, RunEvent, SpecError};

/// Longest accepted cancellation reason, in characters.
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
    /// Cancelled before it finished.
    Cancelled,
}

impl RunStatus {
    /// The status as it appears in the API and read models.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::New => "new",
            RunStatus::Requested => "requested",
            RunStatus::Cancelled => "cancelled",
        }
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
    /// A cancellation reason longer than [`MAX_REASON_LEN`].
    #[error("reason is longer than {MAX_REASON_LEN} characters")]
    ReasonTooLong,
}

/// A pipeline run. Holds only what its rules need.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    status: RunStatus,
    owner: Option<String>,
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
                match self.status {
                    RunStatus::New => return Err(RunError::NotFound),
                    RunStatus::Requested => {}
                    finished => return Err(RunError::AlreadyFinished(finished)),
                }
                if reason
                    .as_ref()
                    .is_some_and(|r| r.chars().count() > MAX_REASON_LEN)
                {
                    return Err(RunError::ReasonTooLong);
                }
                sink.write(RunEvent::RunCancelled { reason }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.status = match event {
            RunEvent::RunRequested { owner, .. } => {
                self.owner = Some(owner);
                RunStatus::Requested
            }
            RunEvent::RunCancelled { .. } => RunStatus::Cancelled,
        };
    }
}
