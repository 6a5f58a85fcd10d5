//! The `aurora` binary's library: configuration, telemetry, the one composition root that
//! builds pools and clients, the warp gateway, and the CLI subcommands.
//!
//! # Layout
//! - [`config`]: settings from flags, environment and a settings file.
//! - [`telemetry`]: JSON logs, on the console and in rotated files ([`logfiles`]).
//! - [`metrics`]: the Prometheus registry; [`process`]: the process's own figures in it.
//! - [`state`]: what handlers share.
//! - [`startup`]: [`startup::Application`] — build, serve, drain.
//! - [`server`]: the HTTP server (hyper): head deadline and size, request timeout, drain.
//! - [`http`]: filters, handlers, problem+json errors.
//! - [`limits`]: rate limits — the filter over the policies (`aurora_domain::limits`) and
//!   the bucket shards (`aurora_actors::limits`).
//! - [`replicated`]: per-replica state from events (revocations, blocks): load, then tail.
//! - [`auth`]: root keys, Biscuit tokens, password hashing.
//! - [`subscribers`]: NATS subscribers with their own tokens (the auth callout's gatekeeper).
//! - [`anchor`]: the audit chain's heads signed and published outside the database.
//! - [`cli`]: the other subcommands — admin, maintenance, watch — and the benchmarks
//!   (`cli/bench`), out of the server's modules.
#![forbid(unsafe_code)]

pub mod anchor;
pub mod auth;
pub mod banner;
pub mod cli;
pub mod config;
pub mod http;
pub mod limits;
pub mod logfiles;
pub mod metrics;
pub mod process;
pub mod projections;
pub mod replicated;
pub mod server;
pub mod startup;
pub mod state;
pub mod subscribers;
pub mod telemetry;

/// Shared by the property tests of the parsers of outside input: bounded cases
/// (`PROPTEST_CASES`, 256 by default), no failure files written into the tree.
#[cfg(test)]
pub(crate) fn properties() -> proptest::prelude::ProptestConfig {
    proptest::prelude::ProptestConfig {
        failure_persistence: None,
        ..Default::default()
    }
}
