//! What the engine's actors are given when they are spawned: the command paths, the files,
//! the tools, the settings and the metrics. Plain values, shared read-only; the actors'
//! references to each other are not here — each gets the refs it needs from its
//! supervisor, in its arguments or in a message when a sibling was restarted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aurora_projections::{MediaCommands, RunCommands};

use crate::artifacts::ArtifactStore;
use crate::fetch::FetchSettings;
use crate::generate::{GenerateSettings, Heygen, Signals};
use crate::progress::ProgressHub;
use crate::supervision::EngineMetrics;
use crate::tools::Tools;
use crate::users::UserDeps;

/// How the engine behaves.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Transcode workers (ffmpeg processes at once).
    pub workers: usize,
    /// Runs this replica takes on at once.
    pub max_active_runs: usize,
    /// Attempts of a step before the run fails.
    pub max_attempts: u32,
    /// Pause before the second attempt; doubles with each further one (at most 1 min).
    pub backoff: Duration,
    /// Longest one step may take.
    pub step_timeout: Duration,
    /// How long a run's message stays with a replica that stopped keeping it alive.
    pub ack_wait: Duration,
    /// How often the janitor runs (see [`crate::janitor`]).
    pub sweep_interval: Duration,
    /// Restarts of one run's actor allowed within a window.
    pub run_restarts: (usize, Duration),
    /// Restarts of transcode workers allowed within a window.
    pub worker_restarts: (usize, Duration),
    /// URL inputs (and the downloads of generated videos).
    pub fetch: FetchSettings,
    /// Generate steps.
    pub generate: GenerateSettings,
}

impl EngineSettings {
    /// The pause before attempt `attempt` (none before the first).
    pub fn backoff(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (attempt - 2).min(16);
        (self.backoff * factor).min(Duration::from_secs(60))
    }
}

/// What the actors share.
pub struct Deps {
    /// Run commands (the engine's own write path).
    pub runs: RunCommands,
    /// Media records.
    pub media: MediaCommands,
    /// Files.
    pub artifacts: ArtifactStore,
    /// ffmpeg and ffprobe.
    pub tools: Tools,
    /// Live progress.
    pub progress: ProgressHub,
    /// Settings.
    pub settings: EngineSettings,
    /// Metrics.
    pub metrics: EngineMetrics,
    /// This replica's name in `StepStarted` events.
    pub executor: String,
    /// Wake-ups of attempts waiting on a provider's video.
    pub signals: std::sync::Arc<Signals>,
    /// The HeyGen client, when a key is configured.
    pub heygen: Option<Heygen>,
    /// What the user actors need, when per-tier run limits are enforced.
    pub(crate) user_limits: Option<UserDeps>,
    /// The work queue's ack wait in force, in ms (an existing durable keeps its own).
    ack_wait_ms: AtomicU64,
}

impl Deps {
    /// Assembles the dependencies.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runs: RunCommands,
        media: MediaCommands,
        artifacts: ArtifactStore,
        tools: Tools,
        progress: ProgressHub,
        settings: EngineSettings,
        metrics: EngineMetrics,
        executor: String,
    ) -> Self {
        let ack_wait_ms = millis(settings.ack_wait);
        let heygen = settings.generate.heygen.clone().and_then(|heygen| {
            Heygen::new(heygen, Duration::from_secs(30))
                .map_err(|error| tracing::error!(%error, "no HeyGen client"))
                .ok()
        });
        Self {
            signals: std::sync::Arc::default(),
            heygen,
            runs,
            media,
            artifacts,
            tools,
            progress,
            settings,
            metrics,
            executor,
            user_limits: None,
            ack_wait_ms: AtomicU64::new(ack_wait_ms),
        }
    }

    /// With user actors enforcing per-tier run limits.
    pub fn with_user_limits(mut self, users: UserDeps) -> Self {
        self.user_limits = Some(users);
        self
    }

    /// The work queue's ack wait in force.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_millis(self.ack_wait_ms.load(Ordering::Relaxed).max(1000))
    }

    /// The work queue says which ack wait is in force (its durable may predate the
    /// settings).
    pub(crate) fn set_ack_wait(&self, ack_wait: Duration) {
        self.ack_wait_ms.store(millis(ack_wait), Ordering::Relaxed);
    }
}

fn millis(ack_wait: Duration) -> u64 {
    u64::try_from(ack_wait.as_millis()).unwrap_or(u64::MAX)
}
