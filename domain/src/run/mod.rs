//! The `Run` aggregate: a pipeline run over one input with an ordered list of steps.
//!
//! A run is requested (`RequestRun` → `RunRequested`) and can be cancelled
//! (`CancelRun` → `RunCancelled`) until it finishes. Specs are validated here, by the
//! aggregate, so that no path into the store can record an invalid run.

mod aggregate;
mod commands;
mod events;
mod spec;
#[cfg(test)]
mod tests;

pub use aggregate::{Run, RunError, RunStatus, MAX_REASON_LEN};
pub use commands::RunCommand;
pub use events::RunEvent;
pub use spec::{
    Format, Input, Quality, Resolution, RunSpec, SpecError, Step, StepOutput, MAX_INPUT_URL_LEN,
    MAX_STEPS, MAX_THUMBNAIL_SECONDS,
};
