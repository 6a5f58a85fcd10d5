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

pub use aggregate::{
    is_video_id, Generation, Run, RunError, RunStatus, MAX_REASON_LEN, MAX_VIDEO_ID_LEN,
};
pub use commands::RunCommand;
pub use events::RunEvent;
pub use spec::{
    Dimension, Format, Input, Provider, Quality, Resolution, RunSpec, SpecError, Step, StepOutput,
    GENERATED_SIDE, MAX_INPUT_URL_LEN, MAX_PROVIDER_ID_LEN, MAX_SCRIPT_CHARS, MAX_STEPS,
    MAX_THUMBNAIL_SECONDS,
};
