//! Fault hooks: panics injected into run actors and transcode workers, compiled only with
//! the `faults` feature (tests and simulations). Without it, [`trip`] is an empty function.

/// Where a panic can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A run actor, right after it recorded the start of a step (so the step is
    /// interrupted mid-way and must be retried).
    RunActorAfterStart,
    /// A transcode worker, at its first progress report (ffmpeg is running).
    TranscodeWorkerMidway,
}

#[cfg(feature = "faults")]
mod armed {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use super::Fault;

    fn armed() -> &'static Mutex<HashMap<Fault, u32>> {
        static ARMED: OnceLock<Mutex<HashMap<Fault, u32>>> = OnceLock::new();
        ARMED.get_or_init(Default::default)
    }

    /// Makes the next `times` passes through `fault` panic.
    pub fn arm(fault: Fault, times: u32) {
        *armed()
            .lock()
            .expect("fault table")
            .entry(fault)
            .or_default() += times;
    }

    /// Panics left to inject at `fault`.
    pub fn remaining(fault: Fault) -> u32 {
        armed()
            .lock()
            .expect("fault table")
            .get(&fault)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn take(fault: Fault) -> bool {
        let mut table = armed().lock().expect("fault table");
        match table.get_mut(&fault) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(feature = "faults")]
pub use armed::{arm, remaining};

/// Panics if a fault is armed at `fault`.
#[inline]
pub(crate) fn trip(fault: Fault) {
    #[cfg(feature = "faults")]
    if armed::take(fault) {
        panic!("injected fault: {fault:?}");
    }
    #[cfg(not(feature = "faults"))]
    let _ = fault;
}
