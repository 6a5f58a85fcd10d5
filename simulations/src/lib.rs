//! Deterministic chaos simulations: a seeded schedule of commands and faults is played
//! against the real store, relay and read model, and the invariants are checked at the end.
//! A failing seed replays exactly (`AURORA_SIM_SEED=<seed> cargo nextest run -p
//! aurora-simulations`).
//!
//! # Layout
//! - [`rng`]: a small seeded generator (every random choice comes from it).
//! - [`pipeline`]: the relay, the stream and the runs view's consumer, with one call per
//!   fault and the checks at the end, as the simulations below share them.
//! - [`relay_chaos`]: relay crashes, lost stream messages and consumer crashes against
//!   SQLite + the in-process bus.
//! - [`projection_chaos`]: panics injected into projection actors (and the redeliveries
//!   they cause) while commands are written; every projection must end equal to its rebuild.
//! - [`run_chaos`]: panics injected into run actors and transcode workers while runs
//!   execute with real ffmpeg; supervisors must restart them and every run succeed with one
//!   output per step.
//! - [`write_chaos`]: the write path — group commit with commits lost before and after
//!   they go through, the relay, the runs view — checked against what every client was
//!   told; cheap enough to run by the thousand seeds.
//! - [`live`]: the live chaos harness (the `chaos` binary): real replicas, Postgres and
//!   NATS under faults, and a checker of the history.
#![forbid(unsafe_code)]

/// Returns a [`pipeline::Violation`] saying what the format arguments say unless the
/// condition holds (defined before the modules, which all use it).
macro_rules! check {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err($crate::pipeline::Violation(format!($($msg)*)));
        }
    };
}

pub mod live;
pub mod pipeline;
pub mod projection_chaos;
pub mod relay_chaos;
pub mod rng;
pub mod run_chaos;
pub mod write_chaos;
