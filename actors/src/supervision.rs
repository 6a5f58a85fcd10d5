//! What every supervisor here shares: the restart budget and verdict of
//! [`aurora_projections::supervision`], and the metrics that make restarts and escalations
//! visible.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

pub use aurora_projections::supervision::{Counted, Restarts, Verdict};

/// Labels of actor metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabels {
    /// `run`, `run_manager`, `transcode_worker`, `transcode_pool`, `users`, `user`,
    /// `rate_limit_shard`.
    pub kind: String,
}

/// The engine's metrics; the gateway registers them.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    /// Actors restarted by their supervisor.
    pub restarts: Family<ActorLabels, Counter>,
    /// The same, all kinds together (for `/health`).
    pub restarts_total: Counter,
    /// Supervisors that gave up (restart budget spent).
    pub escalations: Family<ActorLabels, Counter>,
    /// Runs this replica is executing.
    pub active_runs: Gauge,
    /// Transcodes running now.
    pub transcodes_active: Gauge,
    /// Wall time of finished transcodes, seconds.
    pub transcode_seconds: Histogram,
    /// Frames per second of the last progress report of each transcode.
    pub transcode_fps: Histogram,
    /// Runs ended by this replica, by outcome.
    pub runs_finished: Family<OutcomeLabels, Counter>,
    /// Calls to generation providers, by outcome: `created`, `retried` (busy or broken,
    /// asked again), `refused`, `ambiguous`, `completed`, `failed`.
    pub generations: Family<OutcomeLabels, Counter>,
    /// What the janitor cleared, by kind: `orphan_tools` (processes killed), `run_parts`,
    /// `run_outputs` (a superseded attempt's complete file), `upload_parts` (files removed).
    pub janitor: Family<KindLabels, Counter>,
}

/// Labels of what the janitor cleared.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `orphan_tools`, `run_parts`, `run_outputs`, `upload_parts`.
    pub kind: String,
}

/// Labels of run outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `succeeded`, `failed`, `cancelled`.
    pub outcome: String,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            restarts: Family::default(),
            restarts_total: Counter::default(),
            escalations: Family::default(),
            active_runs: Gauge::default(),
            transcodes_active: Gauge::default(),
            transcode_seconds: Histogram::new([
                0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
            ]),
            transcode_fps: Histogram::new([5.0, 15.0, 30.0, 60.0, 120.0, 240.0, 480.0, 1000.0]),
            runs_finished: Family::default(),
            generations: Family::default(),
            janitor: Family::default(),
        }
    }
}

impl EngineMetrics {
    /// Counts a call to a generation provider.
    pub fn generations(&self, outcome: &str) {
        self.generations
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts what a janitor round cleared.
    pub fn record_janitor(&self, reaped: usize, swept: crate::janitor::Swept) {
        for (kind, n) in [
            ("orphan_tools", reaped),
            ("run_parts", swept.run_parts),
            ("run_outputs", swept.run_outputs),
            ("upload_parts", swept.uploads),
        ] {
            self.janitor
                .get_or_create(&KindLabels { kind: kind.into() })
                .inc_by(n as u64);
        }
    }

    /// Restarts of every kind so far.
    pub fn total_restarts(&self) -> u64 {
        self.restarts_total.get()
    }
}

/// The engine's supervisors count restarts and escalations by kind of actor.
impl Counted for EngineMetrics {
    fn restarted(&self, kind: &str) {
        self.restarts
            .get_or_create(&ActorLabels { kind: kind.into() })
            .inc();
        self.restarts_total.inc();
    }

    fn escalated(&self, kind: &str) {
        self.escalations
            .get_or_create(&ActorLabels { kind: kind.into() })
            .inc();
    }
}
