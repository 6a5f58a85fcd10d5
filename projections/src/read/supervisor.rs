//! The projections supervisor: one [`ProjectionActor`] per projection, restarted from its
//! checkpoint when it fails, within a restart budget; beyond it the projection is reported
//! stuck (`/health`, metrics, logs), the others go on, and it is tried again after a
//! cool-down. Beside the actors runs the **feed**: the one durable consumer of the shared
//! projections, whose every message is decoded once and handed to each of them.
//!
//! (Long: the supervisor, the feed it runs and the statuses both share — one mechanism —
//! and a third of it is its tests.)
//!
//! # The feed
//! A batch of deliveries becomes one [`Batch`] of envelopes. Each running shared projection
//! gets the part it follows (the same `Arc`s) queued in its lane, and the feed goes on to
//! the next batch without waiting: the batches are pipelined, every projection applies at
//! its own pace (what queued up while it applied, together), and a slow one does not delay
//! the others. The feed's acker answers the batches in order: when every projection has
//! applied its part a batch is acked, else it is given back and redelivered (those that
//! applied it skip it: applying is idempotent). At most [`IN_FLIGHT`] events wait for
//! their acks: a message waits in a lane a few applies at most, far within the consumer's
//! ack wait (30 s), and a failed apply gives back that much at most. At shutdown the acker
//! answers what was applied before the actors stop. A projection that is
//! starting or restarting is waited for: the batch is given back. A stuck one is passed
//! over — the others go on. That loses
//! nothing for a projection with a checkpoint: its checkpoint only ever moves past events it
//! applied (a batch that does not continue it is read from the store instead), so its next
//! start, or whichever replica applies the next batch, catches up what it missed. A
//! projection that cannot catch up (the run feed) loses what goes by while it is stuck, and
//! the log says so.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aurora_nats::bus::Deliveries;
use aurora_nats::{Ack, EventBus};
use futures::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use super::actor::{Applied, Lane, Part, ProjectionActor, ProjectionArgs, ProjectionMsg};
use super::envelope::{Batch, Envelope};
use super::projection::{Interest, Projection, Scope};
use crate::store::Cursor;

/// The durable consumer every replica's feed shares.
pub const SHARED_DURABLE: &str = "projections";

/// Deliveries applied together, at most: a feed behind takes its backlog in big batches
/// (one transaction and a few statements each, whatever their size).
const CHUNK: usize = 1000;

/// Events handed to the projections and not yet acked, at most: a few batches of
/// [`CHUNK`].
const IN_FLIGHT: usize = 4 * CHUNK;

/// How long the acker may go on answering applied batches at shutdown.
const ACK_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// How soon a batch given back is delivered again.
const REDELIVER_AFTER: Duration = Duration::from_millis(250);

/// How soon a projection whose start failed is tried again (within its budget).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Delays kept per projection for [`Statuses::delay_quantile`].
const DELAYS_KEPT: usize = 50_000;

/// At most `max` restarts within `within`; beyond that a supervisor gives up.
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

struct Entry {
    projection: Arc<dyn Projection>,
    health: Health,
    actor: Option<ActorRef<ProjectionMsg>>,
    /// Where the feed queues its parts (while it runs, if shared).
    lane: Option<Lane>,
    restarts: u64,
    last_error: Option<String>,
    applied: Option<Cursor>,
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
enum Target {
    Queue(ActorRef<ProjectionMsg>, Lane),
    /// Stuck: go on without it.
    PassOver(Arc<dyn Projection>),
    Hold,
}

impl Statuses {
    fn new(projections: &[Arc<dyn Projection>], metrics: ProjectionMetrics) -> Self {
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

    fn with<R>(&self, name: &str, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.get_mut(name).map(f)
    }

    fn labels(name: &str) -> ProjectionLabels {
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
    fn targets(&self) -> Vec<(Interest, Target)> {
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

/// How the supervisor restarts.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorSettings {
    /// Restarts allowed per window.
    pub budget: (usize, Duration),
    /// How long a stuck projection rests before it is tried again.
    pub cool_down: Duration,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        Self {
            budget: (5, Duration::from_secs(60)),
            cool_down: Duration::from_secs(30),
        }
    }
}

/// Starts the projections supervisor over `projections` (names must differ): their actors,
/// and the feed of the shared ones from `bus`. Returns it and the statuses it keeps. When
/// it returns, the projections in memory have loaded (or failed: see
/// [`Statuses::running`]); the others are catching up.
pub async fn start(
    projections: Vec<Arc<dyn Projection>>,
    bus: Arc<dyn EventBus>,
    settings: SupervisorSettings,
    metrics: ProjectionMetrics,
) -> Result<(ActorRef<SupervisorMsg>, Arc<Statuses>), ractor::SpawnErr> {
    let statuses = Arc::new(Statuses::new(&projections, metrics));
    let args = SupervisorArgs {
        projections,
        bus,
        statuses: statuses.clone(),
        settings,
    };
    let (supervisor, _) = Actor::spawn(None, ProjectionsSupervisor, args).await?;
    Ok((supervisor, statuses))
}

/// Supervises the projection actors and runs the feed.
pub struct ProjectionsSupervisor;

/// What the supervisor is started with.
pub struct SupervisorArgs {
    projections: Vec<Arc<dyn Projection>>,
    bus: Arc<dyn EventBus>,
    statuses: Arc<Statuses>,
    settings: SupervisorSettings,
}

/// What the supervisor is told.
pub enum SupervisorMsg {
    /// Start projection `index` (the shared ones start after the supervisor).
    Start(usize),
    /// Try starting projection `index` again, within its budget.
    Retry(usize),
    /// Projection `index` has rested: a fresh budget, and start it.
    Revive(usize),
}

struct Child {
    projection: Arc<dyn Projection>,
    actor: Option<ActorRef<ProjectionMsg>>,
    budget: RestartBudget,
}

/// The supervisor's state.
pub struct SupervisorState {
    bus: Arc<dyn EventBus>,
    statuses: Arc<Statuses>,
    settings: SupervisorSettings,
    children: Vec<Child>,
    _feed: Option<AbortOnDropHandle<()>>,
    /// The feed's acker: drained at shutdown, once the feed has stopped.
    acker: Option<AbortOnDropHandle<()>>,
}

impl SupervisorState {
    /// Starts child `index`; `false` if its start (its catch-up) failed.
    async fn spawn(&mut self, me: &ActorRef<SupervisorMsg>, index: usize) -> bool {
        let projection = self.children[index].projection.clone();
        let name = projection.name();
        self.statuses.with(name, |e| e.health = Health::Starting);
        let (lane, queued) = match projection.scope() {
            Scope::Shared => {
                let (lane, queued) = mpsc::unbounded_channel();
                (Some(lane), Some(queued))
            }
            Scope::Replica => (None, None),
        };
        let args = ProjectionArgs {
            projection,
            bus: self.bus.clone(),
            statuses: self.statuses.clone(),
            lane: queued,
        };
        match Actor::spawn_linked(None, ProjectionActor, args, me.get_cell()).await {
            Ok((actor, _)) => {
                self.statuses.with(name, |e| {
                    e.health = Health::Running;
                    e.actor = Some(actor.clone());
                    e.lane = lane;
                });
                self.statuses
                    .metrics
                    .stuck
                    .get_or_create(&Statuses::labels(name))
                    .set(0);
                self.children[index].actor = Some(actor);
                true
            }
            Err(error) => {
                tracing::warn!(projection = name, %error, "projection failed to start");
                self.statuses.with(name, |e| {
                    e.health = Health::Down;
                    e.last_error = Some(error.to_string());
                });
                false
            }
        }
    }

    /// Starts child `index` again if its budget allows, else reports it stuck.
    async fn restart(&mut self, me: &ActorRef<SupervisorMsg>, index: usize) {
        let name = self.children[index].projection.name();
        self.statuses.with(name, |e| e.restarts += 1);
        self.statuses
            .metrics
            .restarts
            .get_or_create(&Statuses::labels(name))
            .inc();
        if !self.children[index].budget.spend(Instant::now()) {
            let rest = self.settings.cool_down;
            tracing::error!(
                projection = name,
                restarts = self.children[index].budget.spent(),
                cool_down_seconds = rest.as_secs(),
                "projection keeps failing: stuck (the others go on); trying again after a rest"
            );
            self.statuses.with(name, |e| e.health = Health::Stuck);
            self.statuses
                .metrics
                .stuck
                .get_or_create(&Statuses::labels(name))
                .set(1);
            me.send_after(rest, move || SupervisorMsg::Revive(index));
            return;
        }
        if !self.spawn(me, index).await {
            me.send_after(RETRY_AFTER, move || SupervisorMsg::Retry(index));
        }
    }
}

impl Actor for ProjectionsSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let SupervisorArgs {
            projections,
            bus,
            statuses,
            settings,
        } = args;
        let shared = projections.iter().any(|p| p.scope() == Scope::Shared);
        let children = projections
            .into_iter()
            .map(|projection| Child {
                projection,
                actor: None,
                budget: RestartBudget::new(settings.budget.0, settings.budget.1),
            })
            .collect();
        let mut state = SupervisorState {
            bus: bus.clone(),
            statuses: statuses.clone(),
            settings,
            children,
            _feed: None,
            acker: None,
        };
        // The shared consumer is opened before any shared projection catches up: an event
        // published after it exists is delivered, one before it is in the store before the
        // catch-up reads it.
        if shared {
            let filter = bus.subjects().all_events();
            let first = match bus.consume_new(SHARED_DURABLE, &filter).await {
                Ok(deliveries) => Some(deliveries),
                Err(error) => {
                    tracing::warn!(%error, "projections consumer failed; the feed tries again");
                    None
                }
            };
            let (handed, answers) = mpsc::unbounded_channel();
            let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            state.acker = Some(AbortOnDropHandle::new(tokio::spawn(acker(
                answers,
                in_flight.clone(),
            ))));
            let feed = feed(bus, statuses, first, handed, in_flight);
            state._feed = Some(AbortOnDropHandle::new(tokio::spawn(feed)));
        }
        // Those in memory are loaded before the supervisor is up, so before the replica
        // serves (a token revoked must be refused from the first request on); those with a
        // table catch up in the background.
        for index in 0..state.children.len() {
            if state.children[index].projection.scope() == Scope::Replica {
                if !state.spawn(&me, index).await {
                    me.send_after(RETRY_AFTER, move || SupervisorMsg::Retry(index));
                }
            } else {
                me.cast(SupervisorMsg::Start(index))?;
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Start(index) => {
                if state.children[index].actor.is_none() && !state.spawn(&me, index).await {
                    me.send_after(RETRY_AFTER, move || SupervisorMsg::Retry(index));
                }
            }
            SupervisorMsg::Retry(index) => {
                if state.children[index].actor.is_none() {
                    state.restart(&me, index).await;
                }
            }
            SupervisorMsg::Revive(index) => {
                let child = &mut state.children[index];
                if child.actor.is_none() {
                    child.budget =
                        RestartBudget::new(state.settings.budget.0, state.settings.budget.1);
                    if !state.spawn(&me, index).await {
                        me.send_after(RETRY_AFTER, move || SupervisorMsg::Retry(index));
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match &event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            // Ended with a reason while its supervisor runs (killed): started again too.
            SupervisionEvent::ActorTerminated(cell, _, Some(reason)) => (cell, reason.clone()),
            // Stopped on purpose (shutdown): not restarted.
            _ => return Ok(()),
        };
        let Some(index) = state.children.iter().position(|c| {
            c.actor
                .as_ref()
                .is_some_and(|a| a.get_id() == cell.get_id())
        }) else {
            return Ok(());
        };
        let name = state.children[index].projection.name();
        tracing::warn!(projection = name, %reason, "projection failed; restarting it from its checkpoint");
        state.children[index].actor = None;
        state.statuses.with(name, |e| {
            e.health = Health::Down;
            e.actor = None;
            e.lane = None;
            e.last_error = Some(reason);
        });
        state.restart(&me, index).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The feed stops taking deliveries; the acker answers the batches the projections
        // have applied (or apply within the bound), so that they are not redelivered to
        // other replicas; then the projections stop.
        state._feed = None;
        if let Some(acker) = state.acker.take() {
            if tokio::time::timeout(ACK_AT_SHUTDOWN, acker).await.is_err() {
                tracing::warn!("projections: batches left unanswered at shutdown are redelivered");
            }
        }
        for child in &mut state.children {
            if let Some(actor) = child.actor.take() {
                actor.stop(None);
            }
        }
        Ok(())
    }
}

/// The shared projections' feed: one durable consumer, each message decoded once. `first`
/// is the consumer opened before the projections started (see [`ProjectionsSupervisor`]).
/// Each batch takes one of `in_flight`'s permits per event until the acker has answered it.
async fn feed(
    bus: Arc<dyn EventBus>,
    statuses: Arc<Statuses>,
    mut first: Option<Deliveries>,
    handed: mpsc::UnboundedSender<Handed>,
    in_flight: Arc<tokio::sync::Semaphore>,
) {
    let filter = bus.subjects().all_events();
    // Until the durable exists, it is created from "now" on: what came before is in the
    // store, which every projection catches up from when it starts (a new durable over a
    // long stream would replay its history through projections that act on it).
    let mut created = first.is_some();
    loop {
        let deliveries = match first.take() {
            Some(deliveries) => deliveries,
            None => {
                let consumer = if created {
                    bus.consume(SHARED_DURABLE, &filter).await
                } else {
                    bus.consume_new(SHARED_DURABLE, &filter).await
                };
                match consumer {
                    Ok(deliveries) => {
                        created = true;
                        deliveries
                    }
                    Err(error) => {
                        tracing::warn!(%error, "projections consumer failed; again in a second");
                        tokio::time::sleep(RETRY_AFTER).await;
                        continue;
                    }
                }
            }
        };
        let mut chunks = deliveries.ready_chunks(CHUNK);
        while let Some(chunk) = chunks.next().await {
            let mut acks: Vec<Ack> = Vec::with_capacity(chunk.len());
            let mut envelopes = Vec::with_capacity(chunk.len());
            for delivery in chunk {
                match delivery {
                    Ok(delivery) => {
                        let (event, ack) = delivery.split();
                        envelopes.push(Arc::new(Envelope::delivered(event)));
                        acks.push(ack);
                    }
                    Err(error) => tracing::error!(%error, "projections: skipping message"),
                }
            }
            // At most CHUNK (≤ IN_FLIGHT) permits: always grantable once others return.
            let Ok(permits) = in_flight.acquire_many(acks.len() as u32).await else {
                return;
            };
            permits.forget(); // given back by the acker
            let batch: Batch = envelopes.into();
            let answers = dispatch(&statuses, &batch);
            if handed.send((acks, answers)).is_err() {
                tracing::error!("projections: the acker has ended; the feed stops");
                return;
            }
        }
        tracing::warn!("projections consumer ended; consuming again");
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// What became of one batch: each projection's answer, or `None` if it was given back at
/// once (a projection it must wait for is starting).
type Answers = Option<Vec<oneshot::Receiver<Result<(), String>>>>;

/// A batch's acks, and the answers they wait for.
type Handed = (Vec<Ack>, Answers);

/// Acks each batch once every projection applied its part, else gives it back; in the
/// order the batches were handed out. Gives the batch's permits back to `in_flight`.
async fn acker(
    mut handed: mpsc::UnboundedReceiver<Handed>,
    in_flight: Arc<tokio::sync::Semaphore>,
) {
    while let Some((acks, answers)) = handed.recv().await {
        let applied = match answers {
            Some(answers) => futures::future::join_all(answers)
                .await
                .into_iter()
                .all(|answer| matches!(answer, Ok(Ok(())))),
            None => false,
        };
        let events = acks.len();
        if applied {
            let acked = futures::future::join_all(acks.into_iter().map(Ack::ack)).await;
            if let Some(Err(error)) = acked.into_iter().find(Result::is_err) {
                // Redelivered after the ack wait; applying it again changes nothing.
                tracing::warn!(%error, "projections: acking failed");
            }
        } else {
            futures::future::join_all(acks.into_iter().map(|a| a.nak(REDELIVER_AFTER))).await;
        }
        in_flight.add_permits(events);
    }
}

/// Queues each shared projection's part of `batch` in its lane, without waiting; where
/// their answers will come.
fn dispatch(statuses: &Statuses, batch: &Batch) -> Answers {
    let (mut queued, mut passed_over) = (Vec::new(), Vec::new());
    for (interest, target) in statuses.targets() {
        let part: Batch = if interest == Interest::ALL {
            batch.clone()
        } else {
            batch
                .iter()
                .filter(|e| interest.wants(&e.event))
                .cloned()
                .collect()
        };
        if part.is_empty() {
            continue;
        }
        match target {
            Target::Hold => return None,
            Target::PassOver(projection) => passed_over.push((projection, part.len())),
            Target::Queue(actor, lane) => queued.push((part, actor, lane)),
        }
    }
    for (projection, events) in passed_over {
        if !projection.resumes_from_store() {
            tracing::error!(
                projection = projection.name(),
                events,
                "stuck: passed over; these events will not reach it"
            );
        }
    }
    let answers = queued
        .into_iter()
        .map(|(part, actor, lane)| {
            let (applied, answer) = oneshot::channel();
            // Either fails only if the actor has ended: its answer is then dropped, and the
            // batch given back.
            if lane
                .send(Part {
                    batch: part,
                    applied,
                })
                .is_ok()
            {
                let _ = actor.cast(ProjectionMsg::Drain);
            }
            answer
        })
        .collect();
    Some(answers)
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

    use async_trait::async_trait;
    use aurora_domain::EventMetadata;
    use aurora_nats::memory::MemoryBus;
    use aurora_nats::Subjects;

    use crate::store::{StoreError, StoredEvent};

    /// Notes the positions it applies; fails every apply if `broken`.
    struct Counting {
        name: &'static str,
        scope: Scope,
        broken: bool,
        seen: Mutex<std::collections::HashSet<i64>>,
    }

    impl Counting {
        fn seen(&self) -> usize {
            self.seen.lock().unwrap().len()
        }
    }

    #[async_trait]
    impl Projection for Counting {
        fn name(&self) -> &'static str {
            self.name
        }

        fn interest(&self) -> Interest {
            Interest::aggregate("run")
        }

        fn scope(&self) -> Scope {
            self.scope
        }

        /// No store behind it: what it misses while it starts must be held for it.
        fn resumes_from_store(&self) -> bool {
            false
        }

        async fn catch_up(&self) -> Result<(), StoreError> {
            Ok(())
        }

        async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
            if self.broken {
                return Err(StoreError::Corrupt("broken on purpose".into()));
            }
            let mut seen = self.seen.lock().unwrap();
            seen.extend(batch.iter().map(|e| e.cursor().position));
            Ok(())
        }
    }

    fn event(position: i64) -> (String, aurora_nats::CloudEvent) {
        let stored = StoredEvent {
            cursor: Cursor { xid: 0, position },
            aggregate_type: "run".into(),
            aggregate_id: format!("r{position}"),
            sequence: 1,
            event_type: "RunCancelled".into(),
            event_version: "1".into(),
            payload: serde_json::json!({"RunCancelled": {"reason": null}}),
            metadata: EventMetadata::new("alice", "req"),
        };
        let cloud = stored.to_cloud_event();
        (cloud.id.clone(), cloud)
    }

    /// Waits (at most 10 s) until `done` holds, woken by every batch applied.
    async fn until(statuses: &Statuses, done: impl Fn() -> bool) {
        let mut changes = statuses.changes();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{:?}", statuses.report());
            tokio::select! {
                _ = changes.changed() => {}
                // A restart wakes nothing above: look again now and then.
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_projection_that_keeps_failing_is_stuck_and_the_others_go_on() {
        let bus = Arc::new(MemoryBus::new(Subjects::new("sup")));
        let projection = |name, scope, broken| {
            Arc::new(Counting {
                name,
                scope,
                broken,
                seen: Mutex::new(Default::default()),
            })
        };
        let healthy = projection("healthy", Scope::Shared, false);
        let broken = projection("broken", Scope::Shared, true);
        let replica = projection("replica", Scope::Replica, false);
        let settings = SupervisorSettings {
            budget: (2, Duration::from_secs(60)),
            cool_down: Duration::from_secs(3600),
        };
        let metrics = ProjectionMetrics::default();
        let (supervisor, statuses) = start(
            vec![healthy.clone(), broken.clone(), replica.clone()],
            bus.clone(),
            settings,
            metrics.clone(),
        )
        .await
        .unwrap();
        assert!(
            statuses.running("replica"),
            "in memory: loaded before start returns"
        );

        for position in 1..=20 {
            bus.publish_batch(&[event(position)]).await.unwrap();
        }
        until(&statuses, || healthy.seen() == 20 && replica.seen() == 20).await;
        until(&statuses, || statuses.stuck() == vec!["broken"]).await;
        let report = statuses.report();
        assert_eq!(report["broken"].state, Health::Stuck);
        assert_eq!(
            report["broken"].restarts, 3,
            "two restarts, the third refused"
        );
        assert!(report["broken"]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("broken on purpose")));
        assert_eq!(report["healthy"].state, Health::Running);
        assert_eq!(report["healthy"].restarts, 0);
        let label = |name: &str| ProjectionLabels {
            projection: name.into(),
        };
        assert_eq!(metrics.stuck.get_or_create(&label("broken")).get(), 1);
        assert_eq!(metrics.restarts.get_or_create(&label("broken")).get(), 3);

        // Stuck, it holds nothing back: later events reach the others.
        for position in 21..=30 {
            bus.publish_batch(&[event(position)]).await.unwrap();
        }
        until(&statuses, || healthy.seen() == 30 && replica.seen() == 30).await;
        supervisor.stop(None);
    }

    /// Applies only once let through; counts its applies and what they held.
    struct Gated {
        entered: tokio::sync::Notify,
        gate: tokio::sync::Semaphore,
        applies: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Projection for Gated {
        /// Sorts before "fast": its part of a batch is queued first.
        fn name(&self) -> &'static str {
            "a-slow"
        }

        fn interest(&self) -> Interest {
            Interest::ALL
        }

        fn resumes_from_store(&self) -> bool {
            false
        }

        async fn catch_up(&self) -> Result<(), StoreError> {
            Ok(())
        }

        async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
            self.entered.notify_one();
            self.gate.acquire().await.expect("never closed").forget();
            self.applies.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_projection_delays_no_other_and_takes_what_queued_in_one_apply() {
        let bus = Arc::new(MemoryBus::new(Subjects::new("pipe")));
        let fast = Arc::new(Counting {
            name: "fast",
            scope: Scope::Shared,
            broken: false,
            seen: Mutex::new(Default::default()),
        });
        let slow = Arc::new(Gated {
            entered: tokio::sync::Notify::new(),
            gate: tokio::sync::Semaphore::new(0),
            applies: Mutex::new(Vec::new()),
        });
        let (supervisor, statuses) = start(
            vec![fast.clone(), slow.clone()],
            bus.clone(),
            SupervisorSettings::default(),
            ProjectionMetrics::default(),
        )
        .await
        .unwrap();
        until(&statuses, || {
            statuses.running("fast") && statuses.running("a-slow")
        })
        .await;

        bus.publish_batch(&[event(1)]).await.unwrap();
        slow.entered.notified().await;
        // The slow one is held inside its first apply; the fast one goes on, batch by batch.
        for position in 2..=20 {
            bus.publish_batch(&[event(position)]).await.unwrap();
            until(&statuses, || fast.seen() == position as usize).await;
        }
        assert!(slow.applies.lock().unwrap().is_empty());

        // Let through, it applies the first batch, then the nineteen that queued behind it
        // together.
        slow.gate.add_permits(100);
        until(&statuses, || {
            slow.applies.lock().unwrap().iter().sum::<usize>() == 20
        })
        .await;
        assert_eq!(*slow.applies.lock().unwrap(), vec![1, 19]);
        supervisor.stop(None);
    }

    #[tokio::test]
    async fn the_acker_answers_what_was_handed_before_the_feed_ended() {
        let bus = MemoryBus::new(Subjects::new("acker"));
        let filter = bus.subjects().all_events();
        bus.publish_batch(&[event(1), event(2)]).await.unwrap();
        let mut deliveries = bus.consume("d", &filter).await.unwrap();
        let mut acks = Vec::new();
        for _ in 0..2 {
            acks.push(deliveries.next().await.unwrap().unwrap().split().1);
        }
        drop(deliveries);
        let (handed, queue) = mpsc::unbounded_channel();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(0));
        let (applied, answer) = oneshot::channel();
        handed.send((acks, Some(vec![answer]))).unwrap();
        // The feed ends (shutdown) while the batch is still being applied…
        drop(handed);
        let acker = tokio::spawn(acker(queue, in_flight.clone()));
        // …and the projection answers after.
        applied.send(Ok(())).unwrap();
        acker.await.unwrap();
        assert_eq!(
            in_flight.available_permits(),
            2,
            "its events' permits given back"
        );
        // Acked: the durable's next delivery is the next event, not those two again.
        bus.publish_batch(&[event(3)]).await.unwrap();
        let mut deliveries = bus.consume("d", &filter).await.unwrap();
        let next = deliveries.next().await.unwrap().unwrap();
        assert_eq!(next.stream_sequence, 3);
    }
}
