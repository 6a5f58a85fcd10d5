//! The `aurora` binary's library: configuration, telemetry, the one composition root that
//! builds pools and clients, the warp gateway, and the CLI subcommands.
//!
//! # Layout
//! - [`config`]: settings from flags, environment and a settings file.
//! - [`telemetry`]: JSON logs, on the console and in rotated files ([`logfiles`]).
//! - [`metrics`]: the Prometheus registry.
//! - [`state`]: what handlers share.
//! - [`startup`]: [`startup::Application`] — build, serve, drain.
//! - [`server`]: the HTTP server (hyper): head deadline and size, request timeout, drain.
//! - [`http`]: filters, handlers, problem+json errors.
//! - [`limits`]: rate limits — policies, GCRA buckets in supervised actors, the filter.
//! - [`replicated`]: per-replica state from events (revocations, blocks): load, then tail.
//! - [`auth`]: root keys, Biscuit tokens, password hashing.
//! - [`admin`]: `aurora admin create`, the first admin.
//! - [`anchor`]: the audit chain's heads signed and published outside the database.
//! - [`bench`]: `aurora bench`, commands/s against raw inserts/s.
//! - [`bench_auth`]: `aurora bench-auth`, µs of authorization per request.
//! - [`bench_limits`]: `aurora bench-limits`, µs per rate-limit decision, bytes per bucket.
//! - [`bench_transcode`]: `aurora bench-transcode`, a transcode through Aurora against
//!   ffmpeg alone, and panic-to-progress time.
//! - [`watch`]: `aurora watch`, a run's events and progress live.
#![forbid(unsafe_code)]

pub mod admin;
pub mod anchor;
pub mod auth;
pub mod bench;
pub mod bench_audit;
pub mod bench_auth;
pub mod bench_limits;
pub mod bench_transcode;
pub mod config;
pub mod http;
pub mod limits;
pub mod logfiles;
pub mod maintenance;
pub mod metrics;
pub mod projections;
pub mod replicated;
pub mod server;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod watch;

/// Shared by the property tests of the parsers of outside input: bounded cases
/// (`PROPTEST_CASES`, 256 by default), no failure files written into the tree.
#[cfg(test)]
pub(crate) fn properties() -> proptest::prelude::ProptestConfig {
    proptest::prelude::ProptestConfig {
        failure_persistence: None,
        ..Default::default()
    }
}
