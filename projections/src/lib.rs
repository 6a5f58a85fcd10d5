//! The event store and everything read from it: the gap-safe global log, the relay that
//! carries every stored event to the bus exactly once, and the read models.
//!
//! # Layout
//! - [`store`]: the database (Postgres or SQLite), migrations, the cqrs-es repository and
//!   the global log readers tail by `(xid, position)`.
//! - [`audit`]: the audit log — every event as a hash-chained entry, verifiable, rebuilt
//!   by replay into a shadow table without downtime.
//! - [`commands`]: the write path — cqrs-es frameworks over the store.
//! - [`consumer`]: the durable-consumer loop every bus-fed read model shares.
//! - [`lag`]: how far behind the store each read model is.
//! - [`relay`]: store → bus, exactly once, with healing.
//! - [`replay`]: loading every aggregate with today's code (upcasters included).
//! - [`runs`]: the runs read model, fed from the bus, rebuildable by replay.
//! - [`users`]: the users read model, refreshed from the store whenever a user changes.
//! - [`testkit`]: fresh databases for tests of this and downstream crates.
#![forbid(unsafe_code)]

pub mod audit;
pub mod commands;
pub mod consumer;
pub mod lag;
pub mod relay;
pub mod replay;
pub mod runs;
pub mod store;
pub mod testkit;
pub mod users;

pub use audit::AuditLog;
pub use commands::{
    AccessCommands, ClientCommands, Commands, MediaCommands, RunCommands, UserCommands, Versioned,
};
pub use relay::{Relay, RelayConfig, RelayMetrics};
pub use runs::RunsProjection;
pub use store::{Cursor, Database, StoreError, StoredEvent};
pub use users::{UserView, UsersProjection};
