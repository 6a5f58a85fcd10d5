//! Aurora's domain: aggregates, commands, events and value objects.
//!
//! Nothing in this crate performs I/O. Everything that crosses a process boundary
//! (HTTP, the event store, the bus) is parsed into these types at the edge.
//!
//! # Layout
//! - [`run`]: the `Run` aggregate — a pipeline run over one input with ordered steps.
//! - [`user`]: the `User` aggregate — username, role, tier, logins, disabling.
//! - [`media`]: the `Media` aggregate (uploads), media info and run artifacts.
//! - [`access`]: refused requests (401/403, failed logins), for the audit trail.
//! - [`client`]: the `Client` aggregate — a rate-limited caller, and its blocks.
//! - [`limits`]: rate-limit policies (route classes, tiers, presets) and GCRA buckets.
//! - [`net`]: IP ranges from configuration, and addresses that are not public (SSRF).
//! - [`metadata`]: who caused an event, in which request, and when (invariant 7).
#![forbid(unsafe_code)]

pub mod access;
pub mod client;
pub mod limits;
pub mod media;
pub mod metadata;
pub mod net;
pub mod run;
pub mod user;

pub use metadata::EventMetadata;

#[cfg(test)]
mod properties;
