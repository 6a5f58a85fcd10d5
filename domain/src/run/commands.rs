//! Commands the `Run` aggregate accepts.

use uuid::Uuid;

use super::RunSpec;

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
}
