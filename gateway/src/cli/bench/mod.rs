//! The benchmarks: each prints figures against a baseline measured in the same run, and
//! asserts nothing.
//!
//! - [`commands`]: `aurora bench`, commands/s against raw inserts/s, projection lag.
//! - [`audit`]: `aurora bench-audit`, an audit-log rebuild against a raw read, and memory.
//! - [`auth`]: `aurora bench-auth`, µs of authorization per request.
//! - [`limits`]: `aurora bench-limits`, µs per rate-limit decision, bytes per bucket.
//! - [`transcode`]: `aurora bench-transcode`, a transcode through Aurora against ffmpeg
//!   alone, and panic-to-progress time.

pub mod audit;
pub mod auth;
pub mod commands;
pub mod limits;
pub mod transcode;
