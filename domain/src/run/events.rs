//! Events of the `Run` aggregate. Past tense, versioned; never change a shipped shape —
//! add a new version and an upcaster instead.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Input, Step};

/// Something that happened to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunEvent {
    /// A run was requested.
    RunRequested {
        /// The run's id.
        run_id: Uuid,
        /// The principal who owns it.
        owner: String,
        /// Its input.
        input: Input,
        /// Its steps, in order.
        steps: Vec<Step>,
    },
    /// A run was cancelled before it finished.
    RunCancelled {
        /// Why, as given by the caller.
        reason: Option<String>,
    },
}

impl DomainEvent for RunEvent {
    fn event_type(&self) -> String {
        match self {
            RunEvent::RunRequested { .. } => "RunRequested",
            RunEvent::RunCancelled { .. } => "RunCancelled",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}
