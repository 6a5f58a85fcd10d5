//! The projections supervisor: one [`ProjectionActor`] per projection, restarted from its
//! checkpoint when it fails, within a restart budget; beyond it the projection is reported
//! stuck (`/health`, metrics, logs), the others go on, and it is tried again after a
//! cool-down. Beside the actors runs the **feed** (`feed.rs`): the one durable consumer of
//! the shared projections. What each projection is doing is kept in [`Statuses`]
//! (`status.rs`), which the supervisor, the feed, `/health` and `/metrics` share.
//!
//! (Long: half of it is its tests — the restart budget, a projection that keeps failing,
//! a slow one that delays no other — which start real supervisors.)

use std::sync::Arc;
use std::time::Duration;

use aurora_nats::EventBus;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::actor::{ProjectionActor, ProjectionArgs, ProjectionMsg};
use super::feed;
pub use super::feed::SHARED_DURABLE;
use super::projection::{Projection, Scope};
pub use super::status::{Health, ProjectionLabels, ProjectionMetrics, ProjectionReport, Statuses};
use crate::supervision::{Restarts, Verdict};
/// How long the acker may go on answering applied batches at shutdown.
const ACK_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// How soon a projection whose start failed is tried again (within its budget).
const RETRY_AFTER: Duration = Duration::from_secs(1);

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
    restarts: Restarts,
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

    /// Starts child `index` again if its budget allows, else reports it stuck (see
    /// [`Statuses`]' count of failures) and tries again after a rest.
    async fn restart(&mut self, me: &ActorRef<SupervisorMsg>, index: usize, error: &str) {
        let name = self.children[index].projection.name();
        let verdict = {
            let _projection = tracing::warn_span!("projection", projection = name).entered();
            self.children[index]
                .restarts
                .failed(&*self.statuses, &error)
        };
        match verdict {
            Verdict::Restart => {
                if !self.spawn(me, index).await {
                    me.send_after(RETRY_AFTER, move || SupervisorMsg::Retry(index));
                }
            }
            Verdict::GiveUp(_) => {
                let rest = self.settings.cool_down;
                tracing::info!(
                    projection = name,
                    cool_down_seconds = rest.as_secs(),
                    "projection stuck (the others go on); trying again after a rest"
                );
                me.send_after(rest, move || SupervisorMsg::Revive(index));
            }
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
                restarts: Restarts::new(projection.name(), settings.budget),
                projection,
                actor: None,
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
            let (feed, acker) = feed::start(bus, statuses, first);
            state._feed = Some(feed);
            state.acker = Some(acker);
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
                    state.restart(&me, index, "its start failed").await;
                }
            }
            SupervisorMsg::Revive(index) => {
                let child = &mut state.children[index];
                if child.actor.is_none() {
                    child.restarts.reset();
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
        state.children[index].actor = None;
        state.statuses.with(name, |e| {
            e.health = Health::Down;
            e.actor = None;
            e.lane = None;
            e.last_error = Some(reason.clone());
        });
        // Started again from its checkpoint, within its budget.
        state.restart(&me, index, &reason).await;
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    use crate::read::envelope::Envelope;
    use crate::read::projection::Interest;
    use crate::store::Cursor;

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

    /// A stored run event at `position`, as the bus carries it.
    pub(in crate::read) fn event(position: i64) -> (String, aurora_nats::CloudEvent) {
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
}
