//! Commands the `Run` aggregate accepts.
//!
//! The execution commands (`StartStep` … `FailRun`) come from the run actors, with the actor
//! as the principal; every one names the step and attempt it is about, so that a command
//! from an executor that lost the run (a replica presumed dead that was not) is refused
//! instead of recorded.

use uuid::Uuid;

use super::{RunSpec, StepOutput};

/// A request to change a run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunCommand {
    /// Request a new run.
    RequestRun {
        /// The run's id, chosen by the caller (the gateway uses UUIDv7).
        run_id: Uuid,
        /// The principal who owns the run.
        owner: String,
        /// What to run.
        spec: RunSpec,
    },
    /// Cancel a run that has not finished.
    CancelRun {
        /// Why, as given by the caller.
        reason: Option<String>,
    },
    /// Start attempt `attempt` of step `step`: the next step, and the attempt after the
    /// last one started.
    StartStep {
        /// Index of the step (0-based).
        step: usize,
        /// Attempt number, from 1.
        attempt: u32,
        /// Which executor (replica) runs it.
        executor: String,
    },
    /// Record a progress milestone of the running attempt.
    RecordProgress {
        /// Index of the step.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// Percent done (a milestone: 25, 50, 75).
        percent: u8,
    },
    /// Record the provider's id of the video the running attempt of a generate step asked
    /// for (before it waits for it). Recording the same id again changes nothing; another
    /// id for a step that has one is refused: a step pays for one video.
    RecordGeneration {
        /// Index of the step.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// The provider's id.
        video_id: String,
        /// When the provider took the request.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Record that the provider reported the end of a step's generation (its webhook).
    /// Only for the video the step recorded; the first report stands (a replay changes
    /// nothing).
    ReportGeneration {
        /// Index of the step.
        step: usize,
        /// The provider's id.
        video_id: String,
        /// Did it succeed?
        succeeded: bool,
        /// The provider's message, when it failed.
        message: Option<String>,
    },
    /// Record the output of the running attempt; the run succeeds with its last step.
    CompleteStep {
        /// Index of the step.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// What it produced.
        output: StepOutput,
    },
    /// Record that the running attempt failed in a way another attempt may not.
    FailAttempt {
        /// Index of the step.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// What went wrong.
        reason: String,
    },
    /// Fail the run: a step failed for good (bad input, no attempts left, a supervisor
    /// gave up).
    FailRun {
        /// The step that failed, if one did.
        step: Option<usize>,
        /// Why.
        reason: String,
        /// The attempt of `step` the executor ran, if it speaks for one: refused unless it
        /// is the step's latest attempt.
        attempt: Option<u32>,
    },
}
