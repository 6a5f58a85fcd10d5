//! The read side: every read model is a [`Projection`] fed by one supervised
//! [`ProjectionActor`], and nothing else feeds a read model.
//!
//! - [`projection`]: the trait — a name, the events it follows, where its state lives, how
//!   it catches up from the store and applies a batch (idempotently; with its checkpoint in
//!   the same transaction when it has a table).
//! - [`envelope`]: an event decoded once and shared by every projection on the replica.
//! - [`actor`]: the actor feeding one projection.
//! - [`supervisor`]: restarts within a budget, "stuck" beyond it, and the feed — the one
//!   durable consumer of the shared projections.
//! - [`audit`], [`runs`], [`users`]: the read models with tables. Others live beside what
//!   they serve and implement the same trait: the token revocation set and the block list
//!   (gateway, in memory on every replica), the run feed and the user reaper (actors).
//! - [`consistency`]: reads that see the reader's own writes.
//! - [`lag`]: how far behind the store each projection with a checkpoint is.
//!
//! The read side depends on the write path's store (it reads events and checkpoints); the
//! write path (`store`, `commands`, `relay`) knows nothing of it.

pub mod actor;
pub mod audit;
pub mod consistency;
pub mod envelope;
mod feed;
pub mod lag;
pub mod projection;
pub mod runs;
mod status;
pub mod supervisor;
pub mod users;

pub use actor::{ProjectionActor, ProjectionMsg};
pub use envelope::{Batch, Envelope};
pub use projection::{Interest, Projection, Scope};
pub use supervisor::{
    ProjectionLabels, ProjectionMetrics, ProjectionReport, Statuses, SupervisorMsg,
    SupervisorSettings,
};
