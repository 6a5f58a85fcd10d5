//! The `aurora` subcommands other than serving: each builds what it needs through
//! [`crate::startup`] and prints; none is part of the server.
//!
//! - [`admin`]: `aurora admin create`, the first admin.
//! - [`maintenance`]: `aurora projections …` and `aurora audit …` (rebuild, verify, export).
//! - [`watch`]: `aurora watch`, a run's events and progress live.
//! - [`bench`]: the benchmarks.

pub mod admin;
pub mod bench;
pub mod maintenance;
pub mod watch;
