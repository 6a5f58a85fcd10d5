//! What every supervisor here shares: a restart budget, and the metrics that make restarts
//! and escalations visible.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// At most `max` restarts within `within`; beyond that the supervisor gives up.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    max: usize,
    within: Duration,
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    /// A budget of `max` restarts per `within`.
    pub fn new(max: usize, within: Duration) -> Self {
        Self {
            max,
            within,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if the budget allows one; `false` means give up.
    pub fn spend(&mut self, now: Instant) -> bool {
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.within)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= self.max {
            return false;
        }
        self.restarts.push_back(now);
        true
    }

    /// Restarts counted in the current window.
    pub fn spent(&self) -> usize {
        self.restarts.len()
    }
}

/// Labels of actor metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabels {
    /// `run`, `run_manager`, `transcode_worker`, `transcode_pool`.
    pub kind: String,
}

/// The engine's metrics; the gateway registers them.
#[derive(Clone)]
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
        }
    }
}

impl EngineMetrics {
    /// Counts a restart of an actor of `kind`.
    pub fn restarted(&self, kind: &str) {
        self.restarts
            .get_or_create(&ActorLabels { kind: kind.into() })
            .inc();
        self.restarts_total.inc();
    }

    /// Restarts of every kind so far.
    pub fn total_restarts(&self) -> u64 {
        self.restarts_total.get()
    }

    /// Counts a supervisor giving up on an actor of `kind`.
    pub fn escalated(&self, kind: &str) {
        self.escalations
            .get_or_create(&ActorLabels { kind: kind.into() })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_the_restart_past_its_maximum_and_forgets_old_ones() {
        let mut budget = RestartBudget::new(2, Duration::from_secs(10));
        let start = Instant::now();
        assert!(budget.spend(start));
        assert!(budget.spend(start + Duration::from_secs(1)));
        assert!(!budget.spend(start + Duration::from_secs(2)));
        assert!(budget.spend(start + Duration::from_secs(12)));
    }
}
