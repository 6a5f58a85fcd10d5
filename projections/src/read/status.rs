//! What each projection is doing — where its actor stands, its restarts, the last position
//! it applied, its delays — shared by the supervisor, the feed, `/health` and `/metrics`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use ractor::ActorRef;
use serde::Serialize;

use super::actor::{Applied, Lane, ProjectionMsg};
use super::envelope::Envelope;
use super::projection::{Interest, Projection, Scope};
use crate::store::Cursor;

/// Delays kept per projection for [`Statuses::delay_quantile`].
const DELAYS_KEPT: usize = 50_000;

/// Labels of per-projection metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabels {
    /// e.g. `audit-log`.
    pub projection: String,
}

/// The projections' metrics; the gateway registers them.
#[derive(Clone)]
pub struct ProjectionMetrics {
    /// Projection actors restarted by the supervisor.
    pub restarts: Family<ProjectionLabels, Counter>,
    /// 1 while a projection is stuck (restart budget spent), else 0.
    pub stuck: Family<ProjectionLabels, Gauge>,
    /// Seconds from a command's acceptance to its event being applied, per projection.
    pub delay: Family<ProjectionLabels, Histogram>,
}

impl Default for ProjectionMetrics {
    fn default() -> Self {
        Self {
            restarts: Family::default(),
            stuck: Family::default(),
            delay: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0])
            }),
        }
    }
}

/// Where a projection's actor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Catching up from the store before it takes deliveries.
    Starting,
    /// Taking deliveries.
    Running,
    /// Failed; to be started again shortly.
    Down,
    /// Failed more often than its budget allows; tried again after a cool-down.
    Stuck,
}

/// One projection as `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionReport {
    /// `shared` (a table, one replica applies each event) or `replica` (in memory).
    pub scope: &'static str,
    /// Where its actor stands.
    pub state: Health,
    /// Restarts by the supervisor since this replica started.
    pub restarts: u64,
    /// Why it last failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The global position of the last event this replica applied to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_position: Option<i64>,
}

pub(super) struct Entry {
    pub(super) projection: Arc<dyn Projection>,
    pub(super) health: Health,
    pub(super) actor: Option<ActorRef<ProjectionMsg>>,
    /// Where the feed queues its parts (while it runs, if shared).
    pub(super) lane: Option<Lane>,
    pub(super) restarts: u64,
    pub(super) last_error: Option<String>,
    pub(super) applied: Option<Cursor>,
}

/// What each projection is doing, shared by the supervisor, the feed, `/health` and
/// `/metrics`.
pub struct Statuses {
    entries: RwLock<BTreeMap<&'static str, Entry>>,
    /// Bumped whenever a projection applies a batch here (readers waiting for a position).
    changes: tokio::sync::watch::Sender<u64>,
    delays: Mutex<HashMap<&'static str, VecDeque<u32>>>,
    /// The metrics.
    pub metrics: ProjectionMetrics,
}

/// What the feed does with a batch for one projection.
pub(super) enum Target {
    Queue(ActorRef<ProjectionMsg>, Lane),
    /// Stuck: go on without it.
    PassOver(Arc<dyn Projection>),
    Hold,
}

impl Statuses {
    pub(super) fn new(projections: &[Arc<dyn Projection>], metrics: ProjectionMetrics) -> Self {
        let entries = projections
            .iter()
            .map(|p| {
                (
                    p.name(),
                    Entry {
                        projection: p.clone(),
                        health: Health::Starting,
                        actor: None,
                        lane: None,
                        restarts: 0,
                        last_error: None,
                        applied: None,
                    },
                )
            })
            .collect();
        Self {
            entries: RwLock::new(entries),
            changes: tokio::sync::watch::channel(0).0,
            delays: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    pub(super) fn with<R>(&self, name: &str, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.get_mut(name).map(f)
    }

    pub(super) fn labels(name: &str) -> ProjectionLabels {
        ProjectionLabels {
            projection: name.to_string(),
        }
    }

    /// Every projection and where it stands, by name.
    pub fn report(&self) -> BTreeMap<&'static str, ProjectionReport> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|(name, e)| {
                let report = ProjectionReport {
                    scope: match e.projection.scope() {
                        Scope::Shared => "shared",
                        Scope::Replica => "replica",
                    },
                    state: e.health,
                    restarts: e.restarts,
                    last_error: e.last_error.clone(),
                    applied_position: e.applied.map(|c| c.position),
                };
                (*name, report)
            })
            .collect()
    }

    /// Changes whenever a projection on this replica applies a batch.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether projection `name` is running.
    pub fn running(&self, name: &str) -> bool {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(name)
            .is_some_and(|e| e.health == Health::Running)
    }

    /// Names of the projections that are stuck.
    pub fn stuck(&self) -> Vec<&'static str> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .filter(|(_, e)| e.health == Health::Stuck)
            .map(|(name, _)| *name)
            .collect()
    }

    /// The `q`-quantile of the delays `name` applied events with (since
    /// [`Statuses::forget_delays`], the last [`DELAYS_KEPT`] at most), if it applied any.
    pub fn delay_quantile(&self, name: &str, q: f64) -> Option<Duration> {
        let delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept: Vec<u32> = delays.get(name)?.iter().copied().collect();
        if kept.is_empty() {
            return None;
        }
        kept.sort_unstable();
        let index = ((kept.len() - 1) as f64 * q).round() as usize;
        Some(Duration::from_micros(u64::from(kept[index])))
    }

    /// Forgets the delays recorded so far.
    pub fn forget_delays(&self) {
        self.delays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Where each shared projection's part of a batch goes.
    pub(super) fn targets(&self) -> Vec<(Interest, Target)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .filter(|e| e.projection.scope() == Scope::Shared)
            .map(|e| {
                let target = match (e.health, &e.actor, &e.lane) {
                    (Health::Running, Some(actor), Some(lane)) => {
                        Target::Queue(actor.clone(), lane.clone())
                    }
                    (Health::Stuck, ..) => Target::PassOver(e.projection.clone()),
                    _ => Target::Hold,
                };
                (e.projection.interest(), target)
            })
            .collect()
    }
}

impl Applied for Statuses {
    /// Notes that `name` applied `batch`: its position, and each event's delay since its
    /// command was accepted.
    fn applied(&self, name: &'static str, batch: &[Arc<Envelope>]) {
        let Some(last) = batch.iter().map(|e| e.cursor()).max() else {
            return;
        };
        self.with(name, |e| {
            e.applied = Some(e.applied.map_or(last, |a| a.max(last)))
        });
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        let now = chrono::Utc::now();
        let histogram = self.metrics.delay.get_or_create(&Self::labels(name));
        let mut delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        let kept = delays.entry(name).or_default();
        for envelope in batch {
            let delay = (now - envelope.event.metadata.time)
                .to_std()
                .unwrap_or_default();
            histogram.observe(delay.as_secs_f64());
            if kept.len() == DELAYS_KEPT {
                kept.pop_front();
            }
            kept.push_back(u32::try_from(delay.as_micros()).unwrap_or(u32::MAX));
        }
    }
}

/// A projection's failures, counted where `/health` and `/metrics` read them: every
/// failure counts as a restart (also the one that makes it stuck), and past its budget
/// the projection is reported stuck until its supervisor revives it.
impl crate::supervision::Counted for Statuses {
    fn restarted(&self, kind: &str) {
        self.with(kind, |e| e.restarts += 1);
        self.metrics
            .restarts
            .get_or_create(&Statuses::labels(kind))
            .inc();
    }

    fn escalated(&self, kind: &str) {
        self.restarted(kind);
        self.with(kind, |e| e.health = Health::Stuck);
        self.metrics
            .stuck
            .get_or_create(&Statuses::labels(kind))
            .set(1);
    }
}
