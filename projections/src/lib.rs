//! The event store and everything read from it: the gap-safe global log, the relay that
//! carries every stored event to the bus exactly once, and the read models.
//!
//! # Layout
//! Two sides, kept apart; the read side depends on the write path, never the reverse.
//!
//! The **write path**:
//! - [`store`]: the database (Postgres or SQLite), migrations, the cqrs-es repository, the
//!   group commit and the global log readers tail by `(xid, position)`.
//! - [`commands`]: commands → aggregates → events in the store.
//! - [`relay`]: store → bus, exactly once, with healing.
//! - [`replay`]: loading every aggregate with today's code (upcasters included).
//!
//! The **read side**, [`read`]: every read model a [`read::Projection`] fed by one supervised
//! projection actor — the audit log ([`audit`]), the runs view ([`runs`]), the users view
//! ([`users`]) and their lags ([`lag`]).
//!
//! [`supervision`]: the restart budget and verdict every supervisor in Aurora uses (the
//! projections supervisor here, the engine's and the rate limiter's actors downstream).
//!
//! [`testkit`]: fresh databases for tests of this and downstream crates.
#![forbid(unsafe_code)]

pub mod commands;
pub mod read;
pub mod relay;
pub mod replay;
pub mod store;
pub mod supervision;
pub mod testkit;

pub use read::{audit, lag, runs, users};

pub use audit::AuditLog;
pub use commands::{
    AccessCommands, ClientCommands, Commands, MediaCommands, RunCommands, UserCommands, Versioned,
};
pub use relay::{Relay, RelayConfig, RelayMetrics};
pub use runs::RunsProjection;
pub use store::{Cursor, Database, StoreError, StoredEvent};
pub use users::{UserView, UsersProjection};
