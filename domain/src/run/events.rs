//! Events of the `Run` aggregate. Past tense, versioned; never change a shipped shape —
//! add a new version and an upcaster instead.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Input, Provider, Step, StepOutput};

/// Something that happened to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunEvent {
    /// A run was requested.
    RunRequested {
        /// The run's id.
        run_id: Uuid,
        /// The principal who owns it.
        owner: String,
        /// Its input (absent when its first step generates it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Input>,
        /// Its steps, in order.
        steps: Vec<Step>,
    },
    /// A run was cancelled before it finished.
    RunCancelled {
        /// Why, as given by the caller.
        reason: Option<String>,
    },
    /// An attempt of a step began.
    StepStarted {
        /// Index of the step.
        step: usize,
        /// Attempt number, from 1.
        attempt: u32,
        /// The executor (replica) running it.
        executor: String,
    },
    /// The running attempt passed a milestone.
    StepProgressed {
        /// Index of the step.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// Percent done.
        percent: u8,
    },
    /// An attempt failed; another may follow.
    StepAttemptFailed {
        /// Index of the step.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// What went wrong.
        reason: String,
        /// Interrupted (its executor died or stopped), not failed by its own work: does not
        /// count towards the step's failures. (Absent in events before it existed: false.)
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
    },
    /// A generate step's provider accepted the request: the paid work is under way under
    /// `video_id`. Recorded before waiting, so that whoever carries the step on waits for
    /// this video instead of asking for another.
    GenerationSubmitted {
        /// Index of the step.
        step: usize,
        /// The attempt that submitted it.
        attempt: u32,
        /// The provider.
        provider: Provider,
        /// The provider's id of the video.
        video_id: String,
        /// When the provider took the request (the step's timeout counts from it).
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The provider said (in a verified webhook) that the generation ended.
    GenerationReported {
        /// Index of the step.
        step: usize,
        /// The provider's id of the video.
        video_id: String,
        /// Did it succeed?
        succeeded: bool,
        /// The provider's message, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A step finished with its output.
    StepSucceeded {
        /// Index of the step.
        step: usize,
        /// The attempt that produced it.
        attempt: u32,
        /// What it produced.
        output: StepOutput,
    },
    /// Every step succeeded.
    RunSucceeded {},
    /// The run failed.
    RunFailed {
        /// The step that failed, if one did.
        step: Option<usize>,
        /// Why.
        reason: String,
    },
}

impl DomainEvent for RunEvent {
    fn event_type(&self) -> String {
        match self {
            RunEvent::RunRequested { .. } => "RunRequested",
            RunEvent::RunCancelled { .. } => "RunCancelled",
            RunEvent::StepStarted { .. } => "StepStarted",
            RunEvent::StepProgressed { .. } => "StepProgressed",
            RunEvent::StepAttemptFailed { .. } => "StepAttemptFailed",
            RunEvent::GenerationSubmitted { .. } => "GenerationSubmitted",
            RunEvent::GenerationReported { .. } => "GenerationReported",
            RunEvent::StepSucceeded { .. } => "StepSucceeded",
            RunEvent::RunSucceeded { .. } => "RunSucceeded",
            RunEvent::RunFailed { .. } => "RunFailed",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

impl RunEvent {
    /// Does this event end the run?
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            RunEvent::RunCancelled { .. } | RunEvent::RunSucceeded {} | RunEvent::RunFailed { .. }
        )
    }
}
