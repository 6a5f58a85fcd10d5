//! Runs: the run manager and its run actors.
//!
//! ```text
//! engine root ─ run manager ─┬─ run actor (one per active run) ── step work (a task)
//!                            └─ lease (one per run: the work-queue message, kept alive)
//! ```
//!
//! The manager ([`manager`]) is handed each requested run by the work queue (with the
//! message's [`lease`]) and starts one run actor per run, linked to it. A run actor
//! ([`actor`]) drives its run's steps as a state machine through commands — `StartStep`,
//! `RecordProgress`, `CompleteStep`, `FailAttempt`, `FailRun` — so every change is an event
//! with the actor as principal; the work of a step (probe, fetch, transcode, thumbnail)
//! runs outside it ([`step`]), so that the actor stays responsive. It keeps no state the
//! store does not have: each decision starts by loading the run, so a restarted actor (or
//! another replica) carries on where the events say the run is.
//!
//! An actor that finds the run moved on without it (another executor started a newer
//! attempt, because this replica was presumed dead) stands down: it kills its work and stops
//! without acknowledging anything, and records nothing more.
//!
//! When a run actor panics, the manager restarts it with the same lease, within a budget
//! per run; past the budget it gives up: the run fails with the reason, a log line and the
//! `aurora_supervisor_escalations_total{kind="run"}` counter say so.

use std::time::Duration;

use aurora_domain::EventMetadata;
use ractor::ActorRef;
use uuid::Uuid;

use crate::transcode::PoolMsg;
use crate::users::UsersMsg;

pub mod actor;
mod generate;
pub mod lease;
pub mod manager;
mod step;

pub use actor::RunMsg;
pub use lease::Lease;
pub use manager::{ManagerMsg, RunManager};

/// The principal of every event a run actor causes.
pub const PRINCIPAL: &str = "actor:run-executor";

/// How long a run that found no free slot of its owner waits before it is delivered again.
pub const SLOT_RETRY: Duration = Duration::from_secs(2);

/// The actors a run works with: given by the engine's root to the manager when it is
/// spawned, by the manager to each run actor, and again to both when the root restarted
/// one of them.
#[derive(Clone)]
pub struct Peers {
    /// The transcode pool.
    pub pool: ActorRef<PoolMsg>,
    /// The users supervisor, when per-tier limits are enforced.
    pub users: Option<ActorRef<UsersMsg>>,
}

/// The metadata of an event a run actor (or its supervisor) causes: `what` names the
/// deed, so that a retried command is recognised as the same one.
pub(crate) fn metadata(run_id: Uuid, what: &str) -> EventMetadata {
    EventMetadata::system(PRINCIPAL, format!("run:{run_id}:{what}"))
}
