//! The execution engine: the root supervisor with the run manager and the transcode pool
//! under it, fed by the work queue of requested runs and told of cancellations.
//!
//! ```text
//! root supervisor ─┬─ run manager ─── run actor (one per active run)
//!                  └─ transcode pool ─ transcode worker × N (one ffmpeg each)
//! intake:  work queue `run-executor` (RunRequested) ──▶ run manager
//! cancels: tail of RunCancelled ──▶ run manager ──▶ run actor (kills ffmpeg)
//! ```
//!
//! Several replicas share the work queue: each run is executed by one at a time, holding
//! the message (kept alive while it runs) until the run ends. A replica that dies stops
//! keeping it alive; after the ack wait the message goes to another replica, whose run
//! actor loads the run and starts a new attempt of the interrupted step.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aurora_domain::run::Run;
use aurora_nats::EventBus;
use aurora_projections::{MediaCommands, RunCommands};
use cqrs_es::Aggregate;
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::artifacts::ArtifactStore;
use crate::fetch::FetchSettings;
use crate::progress::ProgressHub;
use crate::runs::{ManagerMsg, RunManager};
use crate::supervision::{EngineMetrics, RestartBudget};
use crate::tools::Tools;
use crate::transcode::{PoolConfig, PoolMsg, TranscodePool};
use crate::users::{UserDeps, UsersMsg, UsersSupervisor};

/// Restarts of the root's children (run manager, transcode pool, users supervisor) allowed
/// within a window before the engine gives up.
const ROOT_RESTARTS: (usize, Duration) = (3, Duration::from_secs(60));

/// Durable name of the work queue of requested runs.
pub const WORK_QUEUE: &str = "run-executor";

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
    /// Restarts of one run's actor allowed within a window.
    pub run_restarts: (usize, Duration),
    /// Restarts of transcode workers allowed within a window.
    pub worker_restarts: (usize, Duration),
    /// URL inputs.
    pub fetch: FetchSettings,
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
    pool: RwLock<Option<ActorRef<PoolMsg>>>,
    manager: RwLock<Option<ActorRef<ManagerMsg>>>,
    user_deps: Option<UserDeps>,
    users: RwLock<Option<ActorRef<UsersMsg>>>,
    /// The work queue's ack wait in force, in ms (an existing durable keeps its own).
    ack_wait_ms: std::sync::atomic::AtomicU64,
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
        Self {
            runs,
            media,
            artifacts,
            tools,
            progress,
            settings,
            metrics,
            executor,
            pool: RwLock::new(None),
            manager: RwLock::new(None),
            user_deps: None,
            users: RwLock::new(None),
            ack_wait_ms: std::sync::atomic::AtomicU64::new(ack_wait_ms),
        }
    }

    /// The work queue's ack wait in force.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_millis(
            self.ack_wait_ms
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(1000),
        )
    }

    /// With user actors enforcing per-tier run limits.
    pub fn with_user_limits(mut self, users: UserDeps) -> Self {
        self.user_deps = Some(users);
        self
    }

    /// The users supervisor, when tier limits are enforced.
    pub fn users(&self) -> Option<ActorRef<UsersMsg>> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The transcode pool, while it runs.
    pub fn pool(&self) -> Option<ActorRef<PoolMsg>> {
        self.pool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The run manager, while it runs.
    pub fn manager(&self) -> Option<ActorRef<ManagerMsg>> {
        self.manager
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn millis(ack_wait: Duration) -> u64 {
    u64::try_from(ack_wait.as_millis()).unwrap_or(u64::MAX)
}

/// The root supervisor: restarts the run manager and the transcode pool within a budget;
/// past it, gives up (stops, and the engine reports itself down).
struct Root {
    deps: Arc<Deps>,
}

struct RootState {
    budget: RestartBudget,
}

impl Root {
    async fn spawn_manager(&self, me: &ActorRef<()>) -> Result<(), ActorProcessingErr> {
        let manager = RunManager {
            deps: self.deps.clone(),
        };
        let (manager, _) = Actor::spawn_linked(None, manager, (), me.get_cell()).await?;
        *self.deps.manager.write().unwrap_or_else(|e| e.into_inner()) = Some(manager);
        Ok(())
    }

    async fn spawn_users(&self, me: &ActorRef<()>) -> Result<(), ActorProcessingErr> {
        let Some(deps) = self.deps.user_deps.clone() else {
            return Ok(());
        };
        let (users, _) =
            Actor::spawn_linked(None, UsersSupervisor { deps }, (), me.get_cell()).await?;
        *self.deps.users.write().unwrap_or_else(|e| e.into_inner()) = Some(users);
        Ok(())
    }

    async fn spawn_pool(&self, me: &ActorRef<()>) -> Result<(), ActorProcessingErr> {
        let config = PoolConfig {
            workers: self.deps.settings.workers,
            budget: self.deps.settings.worker_restarts,
            tools: self.deps.tools.clone(),
            metrics: self.deps.metrics.clone(),
        };
        let (pool, _) = Actor::spawn_linked(None, TranscodePool, config, me.get_cell()).await?;
        *self.deps.pool.write().unwrap_or_else(|e| e.into_inner()) = Some(pool);
        Ok(())
    }
}

impl Actor for Root {
    type Msg = ();
    type State = RootState;
    type Arguments = ();

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        self.spawn_pool(&me).await?;
        self.spawn_users(&me).await?;
        self.spawn_manager(&me).await?;
        // Its own budget: the manager, the pool and the users supervisor failing is rarer
        // and graver than a worker crashing.
        let (max, within) = ROOT_RESTARTS;
        Ok(RootState {
            budget: RestartBudget::new(max, within),
        })
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Only failures are restarted: a child that stopped was stopped on purpose
        // (shutdown).
        let SupervisionEvent::ActorFailed(cell, _) = &event else {
            return Ok(());
        };
        let id = cell.get_id();
        let kind = if self.deps.pool().is_some_and(|p| p.get_id() == id) {
            "transcode_pool"
        } else if self.deps.manager().is_some_and(|m| m.get_id() == id) {
            "run_manager"
        } else if self.deps.users().is_some_and(|u| u.get_id() == id) {
            "users"
        } else {
            return Ok(());
        };
        if !state.budget.spend(Instant::now()) {
            self.deps.metrics.escalated(kind);
            tracing::error!(
                kind,
                ?event,
                "the engine's children keep failing: giving up"
            );
            return Err(From::from(format!("{kind} restart budget spent")));
        }
        self.deps.metrics.restarted(kind);
        tracing::warn!(kind, ?event, "restarting");
        match kind {
            "transcode_pool" => self.spawn_pool(&me).await,
            "users" => self.spawn_users(&me).await,
            _ => self.spawn_manager(&me).await,
        }
    }
}

/// A running engine.
pub struct Engine {
    deps: Arc<Deps>,
    root: ActorRef<()>,
    root_handle: JoinHandle<()>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Starts the actors, then takes work from `bus`.
    pub async fn start(deps: Deps, bus: Arc<dyn EventBus>) -> anyhow::Result<Self> {
        deps.artifacts.prepare().await?;
        let deps = Arc::new(deps);
        let (root, root_handle) = Actor::spawn(None, Root { deps: deps.clone() }, ()).await?;
        let shutdown = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(intake(deps.clone(), bus.clone(), shutdown.clone())),
            tokio::spawn(cancellations(deps.clone(), bus, shutdown.clone())),
        ];
        Ok(Self {
            deps,
            root,
            root_handle,
            shutdown,
            tasks,
        })
    }

    /// Is the supervision tree up?
    pub fn is_running(&self) -> bool {
        !self.root_handle.is_finished() && self.deps.manager().is_some()
    }

    /// The runs executing on this replica.
    pub async fn active_runs(&self) -> Vec<String> {
        let Some(manager) = self.deps.manager() else {
            return Vec::new();
        };
        ractor::call!(manager, ManagerMsg::Active).unwrap_or_default()
    }

    /// The shared dependencies.
    pub fn deps(&self) -> &Arc<Deps> {
        &self.deps
    }

    /// Stops taking work and stops the actors. Runs in flight are not acked: their
    /// messages return to the queue for another replica (or the next start) to retry.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        // Runs first, then the rest: run actors drop their work (killing ffmpeg) and the
        // manager gives their messages back to the queue.
        let grace = Some(Duration::from_secs(10));
        if let Some(manager) = self.deps.manager() {
            manager.stop_children_and_wait(None, grace).await;
        }
        if let Some(pool) = self.deps.pool() {
            pool.stop_children_and_wait(None, grace).await;
        }
        if let Some(users) = self.deps.users() {
            users.stop_children_and_wait(None, grace).await;
        }
        self.root.stop_children_and_wait(None, grace).await;
        self.root.stop(None);
        let _ = self.root_handle.await;
    }
}

/// Takes requested runs from the work queue while this replica has room for them.
async fn intake(deps: Arc<Deps>, bus: Arc<dyn EventBus>, shutdown: CancellationToken) {
    let filter = bus.subjects().events_named(Run::TYPE, "RunRequested");
    let room = Arc::new(Semaphore::new(deps.settings.max_active_runs.max(1)));
    'connect: while !shutdown.is_cancelled() {
        let mut queue = match bus.work(WORK_QUEUE, &filter, deps.settings.ack_wait).await {
            Ok(queue) => {
                let ms = millis(queue.ack_wait());
                deps.ack_wait_ms
                    .store(ms, std::sync::atomic::Ordering::Relaxed);
                queue
            }
            Err(error) => {
                tracing::warn!(%error, "work queue unavailable; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue 'connect,
                }
            }
        };
        loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => return,
                permit = room.clone().acquire_owned() => permit.expect("never closed"),
            };
            let delivery = tokio::select! {
                () = shutdown.cancelled() => return,
                delivery = queue.next() => delivery,
            };
            let delivery = match delivery {
                Ok(delivery) => delivery,
                Err(error) => {
                    tracing::warn!(%error, "work queue failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue 'connect;
                }
            };
            let handed = match deps.manager() {
                Some(manager) => manager
                    .cast(ManagerMsg::Execute(Box::new(delivery), permit))
                    .map_err(|error| match error {
                        ractor::MessagingErr::SendErr(ManagerMsg::Execute(delivery, _)) => {
                            Some(delivery)
                        }
                        _ => None,
                    }),
                None => Err(Some(Box::new(delivery))),
            };
            if let Err(unhanded) = handed {
                // No run manager (restarting, or its supervisor gave up): give the run back
                // at once for another replica, and slow down.
                tracing::error!("no run manager; the run goes back to the queue");
                if let Some(delivery) = unhanded {
                    let _ = delivery.nak(Duration::from_secs(1)).await;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Tells the run manager of every cancellation, so a run executing here stops at once.
async fn cancellations(deps: Arc<Deps>, bus: Arc<dyn EventBus>, shutdown: CancellationToken) {
    let filter = bus.subjects().events_named(Run::TYPE, "RunCancelled");
    while !shutdown.is_cancelled() {
        match bus.tail(&filter).await {
            Ok(mut tail) => loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => return,
                    event = tail.next() => event,
                };
                match event {
                    Some(Ok(event)) => {
                        if let Some(manager) = deps.manager() {
                            let _ = manager.cast(ManagerMsg::Cancel(event.aggregateid));
                        }
                    }
                    Some(Err(error)) => tracing::warn!(%error, "cancellation tail error"),
                    None => break,
                }
            },
            Err(error) => tracing::warn!(%error, "cannot tail cancellations; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
