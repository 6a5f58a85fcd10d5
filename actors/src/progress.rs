//! Live progress of running transcodes: published as it happens on a plain NATS subject per
//! run (`<prefix>.progress.run.<run_id>`; at most once, nothing stored — coarse milestones
//! are stored as `StepProgressed` events instead) and on an in-process channel that the
//! gateway's Server-Sent Events read in embedded mode.

use aurora_nats::Subjects;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// One progress report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    /// The run.
    pub run_id: String,
    /// Index of the step.
    pub step: usize,
    /// Its attempt.
    pub attempt: u32,
    /// Percent of the input done.
    pub percent: f32,
    /// Frames per second.
    pub fps: f32,
    /// Speed relative to real time.
    pub speed: f32,
    /// Output position in seconds.
    pub out_seconds: f64,
}

/// Where progress goes.
#[derive(Clone)]
pub struct ProgressHub {
    local: broadcast::Sender<RunProgress>,
    nats: Option<async_nats::Client>,
    subjects: Subjects,
}

impl ProgressHub {
    /// A hub publishing in-process, and on NATS when `nats` is given.
    pub fn new(subjects: Subjects, nats: Option<async_nats::Client>) -> Self {
        Self {
            local: broadcast::channel(1024).0,
            nats,
            subjects,
        }
    }

    /// Publishes one report. Progress is best effort: a failure is logged, never fatal.
    pub async fn publish(&self, progress: RunProgress) {
        if let Some(client) = &self.nats {
            let subject = self.subjects.run_progress(&progress.run_id);
            match serde_json::to_vec(&progress) {
                Ok(payload) => {
                    if let Err(error) = client.publish(subject, payload.into()).await {
                        tracing::debug!(%error, "progress not published");
                    }
                }
                Err(error) => tracing::warn!(%error, "progress not serializable"),
            }
        }
        let _ = self.local.send(progress);
    }

    /// Reports published by this process from now on.
    pub fn subscribe_local(&self) -> broadcast::Receiver<RunProgress> {
        self.local.subscribe()
    }

    /// The NATS connection, when there is one.
    pub fn nats(&self) -> Option<&async_nats::Client> {
        self.nats.as_ref()
    }

    /// The subject scheme.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }
}
