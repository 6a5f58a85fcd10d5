//! Aurora's execution engine: a ractor supervision tree that executes pipeline runs with
//! ffmpeg, fed by the JetStream work queue and acting only through the command path.
//!
//! # Layout
//! - [`callout`]: the NATS auth callout service (users' tokens as NATS credentials) and its
//!   supervisor, on every replica that has NATS.
//! - [`engine`]: the root supervisor, the intake from the work queue, cancellations.
//! - [`deps`]: what the actors are given when spawned (settings, command paths, tools).
//! - [`runs`]: the run manager, one run actor per active run (the step state machine), its
//!   lease on the work-queue message and the work of a step.
//! - [`users`]: user actors (per-tier limits on runs executing at once), and the reaper
//!   that cancels a disabled user's runs.
//! - [`feed`]: run events republished with the owner in the subject.
//! - [`transcode`]: the transcode pool and its workers (one ffmpeg each).
//! - [`tools`]: ffprobe / ffmpeg (through ffmpeg-sidecar): probe, transcode, thumbnail.
//! - [`artifacts`]: where uploads and outputs live, and how files are named and checked.
//! - [`janitor`]: what a killed replica leaves: its orphaned ffmpeg and partial files.
//! - [`owner`]: a process as its tools and partial files name it.
//! - [`disguise`]: files dressed as media (the attacks media admission stops), for tests.
//! - [`fetch`]: URL inputs, with size and time limits and SSRF protection.
//! - [`generate`]: the generate step's provider (HeyGen): create, wait, download.
//! - [`progress`]: live progress on NATS and in-process.
//! - [`limits`]: the rate-limit bucket shards and their supervisor (every replica runs
//!   them; the gateway decides requests with them).
//! - [`supervision`]: restart budgets and verdicts, and the engine's metrics.
//! - [`faults`]: panics injected by tests and simulations (feature `faults`).
//!
//! Every supervisor here decides restarts with the same [`supervision::Restarts`].
#![forbid(unsafe_code)]

pub mod artifacts;
pub mod callout;
pub mod deps;
pub mod disguise;
pub mod engine;
pub mod faults;
pub mod feed;
pub mod fetch;
pub mod generate;
pub mod janitor;
pub mod limits;
pub mod owner;
pub mod progress;
pub mod runs;
pub mod supervision;
pub mod tools;
pub mod transcode;
pub mod users;

pub use deps::{Deps, EngineSettings};
pub use engine::Engine;
