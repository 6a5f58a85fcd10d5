//! The execution engine: the root supervisor with the run manager, the transcode pool and
//! the users supervisor under it, fed by the work queue of requested runs and told of
//! cancellations.
//!
//! ```text
//! root supervisor ─┬─ run manager ─── run actor (one per active run)
//!                  ├─ transcode pool ─ transcode worker × N (one ffmpeg each)
//!                  └─ users supervisor ─ user actor (per user with runs here)
//! intake:  work queue `run-executor` (RunRequested) ──▶ root ──▶ run manager
//! cancels: tail of RunCancelled ──▶ root ──▶ run manager ──▶ run actor (kills ffmpeg)
//! ```
//!
//! Several replicas share the work queue: each run is executed by one at a time, holding
//! the message (kept alive while it runs) until the run ends. A replica that dies stops
//! keeping it alive; after the ack wait the message goes to another replica, whose run
//! actor loads the run and starts a new attempt of the interrupted step.

use std::sync::Arc;
use std::time::Duration;

use aurora_domain::run::Run;
use aurora_nats::{Delivery, EventBus};
use cqrs_es::Aggregate;
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::deps::Deps;
use crate::runs::{ManagerMsg, Peers, RunManager};
use crate::supervision::{Restarts, Verdict};
use crate::transcode::{PoolConfig, PoolMsg, TranscodePool};
use crate::users::{UsersMsg, UsersSupervisor};

/// Restarts of the root's children (run manager, transcode pool, users supervisor), all
/// together, allowed within a window before the engine gives up.
const ROOT_RESTARTS: (usize, Duration) = (3, Duration::from_secs(60));

/// Durable name of the work queue of requested runs.
pub const WORK_QUEUE: &str = "run-executor";

/// What the engine's root is told: work and cancellations from outside, which it hands to
/// the run manager it has now.
pub enum RootMsg {
    /// Execute the run this `RunRequested` delivery names (see [`ManagerMsg::Execute`]).
    Execute(Box<Delivery>, OwnedSemaphorePermit),
    /// Run `id` was cancelled.
    Cancel(String),
    /// The ids of the runs executing here.
    Active(RpcReplyPort<Vec<String>>),
    /// The children as they are now (to stop them in order).
    Children(RpcReplyPort<Children>),
}

/// The root's children.
#[derive(Clone)]
pub struct Children {
    /// The run manager.
    pub manager: ActorRef<ManagerMsg>,
    /// The transcode pool and the users supervisor, which the manager is given.
    pub peers: Peers,
}

/// One of the root's children.
#[derive(Debug, Clone, Copy)]
enum Child {
    Manager,
    Pool,
    Users,
}

impl Child {
    /// Its kind in metrics and logs.
    fn kind(self) -> &'static str {
        match self {
            Child::Manager => "run_manager",
            Child::Pool => "transcode_pool",
            Child::Users => "users",
        }
    }
}

impl Children {
    /// Which child actor `id` is.
    fn which(&self, id: ractor::ActorId) -> Option<Child> {
        if self.manager.get_id() == id {
            Some(Child::Manager)
        } else if self.peers.pool.get_id() == id {
            Some(Child::Pool)
        } else if self.peers.users.as_ref().is_some_and(|u| u.get_id() == id) {
            Some(Child::Users)
        } else {
            None
        }
    }
}

/// The root supervisor: restarts the run manager, the transcode pool and the users
/// supervisor within one budget; past it, gives up (stops, and the engine reports
/// itself down). It holds its children's refs and gives the manager the others' (again
/// when it restarted one), so no actor looks another up.
struct Root {
    deps: Arc<Deps>,
}

struct RootState {
    children: Children,
    restarts: Restarts,
}

impl Root {
    async fn spawn_manager(
        &self,
        me: &ActorRef<RootMsg>,
        peers: Peers,
    ) -> Result<ActorRef<ManagerMsg>, ActorProcessingErr> {
        let manager = RunManager {
            deps: self.deps.clone(),
        };
        let (manager, _) = Actor::spawn_linked(None, manager, peers, me.get_cell()).await?;
        Ok(manager)
    }

    async fn spawn_users(
        &self,
        me: &ActorRef<RootMsg>,
    ) -> Result<Option<ActorRef<UsersMsg>>, ActorProcessingErr> {
        let Some(deps) = self.deps.user_limits.clone() else {
            return Ok(None);
        };
        let (users, _) =
            Actor::spawn_linked(None, UsersSupervisor { deps }, (), me.get_cell()).await?;
        Ok(Some(users))
    }

    async fn spawn_pool(
        &self,
        me: &ActorRef<RootMsg>,
    ) -> Result<ActorRef<PoolMsg>, ActorProcessingErr> {
        let config = PoolConfig {
            workers: self.deps.settings.workers,
            budget: self.deps.settings.worker_restarts,
            tools: self.deps.tools.clone(),
            metrics: self.deps.metrics.clone(),
        };
        let (pool, _) = Actor::spawn_linked(None, TranscodePool, config, me.get_cell()).await?;
        Ok(pool)
    }
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = ();

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let peers = Peers {
            pool: self.spawn_pool(&me).await?,
            users: self.spawn_users(&me).await?,
        };
        let manager = self.spawn_manager(&me, peers.clone()).await?;
        // A budget of its own: the manager, the pool and the users supervisor failing is
        // rarer and graver than a worker crashing.
        Ok(RootState {
            children: Children { manager, peers },
            restarts: Restarts::new("engine", ROOT_RESTARTS),
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let manager = &state.children.manager;
        match message {
            RootMsg::Execute(delivery, permit) => {
                if let Err(ractor::MessagingErr::SendErr(ManagerMsg::Execute(delivery, _))) =
                    manager.cast(ManagerMsg::Execute(delivery, permit))
                {
                    // The manager is down (its restart is next): the run goes back to the
                    // queue at once, for another replica or a moment later.
                    tracing::warn!("no run manager; the run goes back to the queue");
                    tokio::spawn(async move {
                        let _ = delivery.nak(Duration::from_secs(1)).await;
                    });
                }
            }
            RootMsg::Cancel(id) => {
                let _ = manager.cast(ManagerMsg::Cancel(id));
            }
            RootMsg::Active(reply) => {
                // Unanswered (dropped) if the manager is down: the caller sees none.
                let _ = manager.cast(ManagerMsg::Active(reply));
            }
            RootMsg::Children(reply) => {
                let _ = reply.send(state.children.clone());
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
        // Only failures are restarted: a child that stopped was stopped on purpose
        // (shutdown).
        let SupervisionEvent::ActorFailed(cell, error) = &event else {
            return Ok(());
        };
        let Some(child) = state.children.which(cell.get_id()) else {
            return Ok(());
        };
        let verdict = state
            .restarts
            .failed_as(child.kind(), &self.deps.metrics, error);
        if let Verdict::GiveUp(reason) = verdict {
            return Err(From::from(reason));
        }
        let children = &mut state.children;
        match child {
            Child::Manager => {
                children.manager = self.spawn_manager(&me, children.peers.clone()).await?;
                return Ok(());
            }
            Child::Pool => children.peers.pool = self.spawn_pool(&me).await?,
            Child::Users => children.peers.users = self.spawn_users(&me).await?,
        }
        // The manager (and through it every run actor) uses the new one from now on.
        let _ = children
            .manager
            .cast(ManagerMsg::Peers(children.peers.clone()));
        Ok(())
    }
}

/// Sweeps partial files now, then every `sweep_interval` reaps orphaned tools and sweeps
/// again; `reaped` is what the start reaped (before any run was taken).
async fn janitor(deps: Arc<Deps>, mut reaped: usize, shutdown: CancellationToken) {
    loop {
        let swept = crate::janitor::sweep_parts(&deps.artifacts, &deps.runs).await;
        deps.metrics.record_janitor(reaped, swept);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(deps.settings.sweep_interval) => {}
        }
        reaped = tokio::task::spawn_blocking(crate::janitor::reap_orphans)
            .await
            .unwrap_or(0);
    }
}

/// A running engine.
pub struct Engine {
    root: ActorRef<RootMsg>,
    root_handle: JoinHandle<()>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Starts the actors, then takes work from `bus`.
    pub async fn start(deps: Deps, bus: Arc<dyn EventBus>) -> anyhow::Result<Self> {
        deps.artifacts.prepare().await?;
        // Before any run is taken: an ffmpeg a killed predecessor left must not encode on
        // beside the retry of its step.
        let reaped = tokio::task::spawn_blocking(crate::janitor::reap_orphans).await?;
        let deps = Arc::new(deps);
        let (root, root_handle) = Actor::spawn(None, Root { deps: deps.clone() }, ()).await?;
        let shutdown = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(janitor(deps.clone(), reaped, shutdown.clone())),
            tokio::spawn(intake(
                deps.clone(),
                root.clone(),
                bus.clone(),
                shutdown.clone(),
            )),
            tokio::spawn({
                let root = root.clone();
                tail(
                    bus.clone(),
                    "RunCancelled",
                    shutdown.clone(),
                    move |event| {
                        let _ = root.cast(RootMsg::Cancel(event.aggregateid));
                    },
                )
            }),
            // A provider's webhook reported a video (on any replica): its waiter, if it
            // is here, looks at once instead of at its next poll.
            tokio::spawn({
                let deps = deps.clone();
                tail(bus, "GenerationReported", shutdown.clone(), move |event| {
                    if let Some(video_id) = event.data["GenerationReported"]["video_id"].as_str() {
                        deps.signals.notify(video_id);
                    }
                })
            }),
        ];
        Ok(Self {
            root,
            root_handle,
            shutdown,
            tasks,
        })
    }

    /// Is the supervision tree up?
    pub fn is_running(&self) -> bool {
        !self.root_handle.is_finished()
    }

    /// The runs executing on this replica.
    pub async fn active_runs(&self) -> Vec<String> {
        ractor::call!(self.root, RootMsg::Active).unwrap_or_default()
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
        if let Ok(children) = ractor::call!(self.root, RootMsg::Children) {
            children.manager.stop_children_and_wait(None, grace).await;
            children
                .peers
                .pool
                .stop_children_and_wait(None, grace)
                .await;
            if let Some(users) = children.peers.users {
                users.stop_children_and_wait(None, grace).await;
            }
        }
        self.root.stop_children_and_wait(None, grace).await;
        self.root.stop(None);
        let _ = self.root_handle.await;
    }
}

/// Takes requested runs from the work queue while this replica has room for them.
async fn intake(
    deps: Arc<Deps>,
    root: ActorRef<RootMsg>,
    bus: Arc<dyn EventBus>,
    shutdown: CancellationToken,
) {
    let filter = bus.subjects().events_named(Run::TYPE, "RunRequested");
    let room = Arc::new(Semaphore::new(deps.settings.max_active_runs.max(1)));
    'connect: while !shutdown.is_cancelled() {
        let mut queue = match bus.work(WORK_QUEUE, &filter, deps.settings.ack_wait).await {
            Ok(queue) => {
                deps.set_ack_wait(queue.ack_wait());
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
            if let Err(ractor::MessagingErr::SendErr(RootMsg::Execute(delivery, _))) =
                root.cast(RootMsg::Execute(Box::new(delivery), permit))
            {
                // The root gave up (its children kept failing): give the run back at once
                // for another replica, and slow down.
                tracing::error!("the engine is down; the run goes back to the queue");
                let _ = delivery.nak(Duration::from_secs(1)).await;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Hands every run event named `name` to `handle` as it is published (cancellations, so a
/// run executing here stops at once; generation reports).
async fn tail(
    bus: Arc<dyn EventBus>,
    name: &'static str,
    shutdown: CancellationToken,
    handle: impl Fn(aurora_nats::CloudEvent),
) {
    let filter = bus.subjects().events_named(Run::TYPE, name);
    while !shutdown.is_cancelled() {
        match bus.tail(&filter).await {
            Ok(mut tail) => loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => return,
                    event = tail.next() => event,
                };
                match event {
                    Some(Ok(event)) => handle(event),
                    Some(Err(error)) => tracing::warn!(%error, name, "event tail error"),
                    None => break,
                }
            },
            Err(error) => tracing::warn!(%error, name, "cannot tail events; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
