//! The run manager: one run actor per run this replica executes, restarted within a
//! budget per run; past it the run fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aurora_domain::run::RunCommand;
use aurora_nats::Delivery;
use cqrs_es::AggregateError;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use super::actor::{RunActor, RunMsg};
use super::lease::Lease;
use super::{metadata, Peers};
use crate::deps::Deps;
use crate::supervision::{OutcomeLabels, Restarts, Verdict};

/// Messages of the run manager.
pub enum ManagerMsg {
    /// Execute the run this `RunRequested` delivery names; the permit bounds the runs this
    /// replica holds.
    Execute(Box<Delivery>, OwnedSemaphorePermit),
    /// Run `id` was cancelled: stop its work now.
    Cancel(String),
    /// The ids of the runs executing here.
    Active(ractor::RpcReplyPort<Vec<String>>),
    /// The engine's root restarted the pool or the users supervisor: use these now.
    Peers(Peers),
}

struct Entry {
    actor: ActorRef<RunMsg>,
    lease: Arc<Lease>,
    restarts: Restarts,
    _permit: OwnedSemaphorePermit,
}

/// The run manager actor.
pub struct RunManager {
    pub(crate) deps: Arc<Deps>,
}

/// The manager's state.
pub struct ManagerState {
    runs: HashMap<Uuid, Entry>,
    by_actor: HashMap<ActorId, Uuid>,
    peers: Peers,
}

impl RunManager {
    async fn spawn_run(
        &self,
        me: &ActorRef<ManagerMsg>,
        run_id: Uuid,
        lease: Arc<Lease>,
        peers: Peers,
    ) -> Result<ActorRef<RunMsg>, ActorProcessingErr> {
        let actor = RunActor {
            deps: self.deps.clone(),
            run_id,
            lease,
            check_every: self.deps.ack_wait() / 3,
        };
        let (actor, _) = Actor::spawn_linked(None, actor, peers, me.get_cell()).await?;
        Ok(actor)
    }
}

impl Actor for RunManager {
    type Msg = ManagerMsg;
    type State = ManagerState;
    type Arguments = Peers;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        peers: Peers,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ManagerState {
            runs: HashMap::new(),
            by_actor: HashMap::new(),
            peers,
        })
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Stopping (shutdown): the runs in flight go back to the queue at once, for another
        // replica (or the next start) to carry on.
        for entry in state.runs.values() {
            entry.lease.give_back(Duration::ZERO).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ManagerMsg::Execute(delivery, permit) => {
                let Ok(run_id) = Uuid::parse_str(&delivery.event.aggregateid) else {
                    tracing::error!(id = %delivery.event.aggregateid, "run id is not a UUID");
                    let _ = delivery.ack().await;
                    return Ok(());
                };
                if let Some(entry) = state.runs.get(&run_id) {
                    // Delivered again while executing here: keep the newer handle.
                    let lease = entry.lease.clone();
                    tokio::spawn(async move { lease.renew(*delivery).await });
                    return Ok(());
                }
                let lease = Lease::new(*delivery, self.deps.ack_wait() / 3);
                let actor = self
                    .spawn_run(&me, run_id, lease.clone(), state.peers.clone())
                    .await?;
                state.by_actor.insert(actor.get_id(), run_id);
                state.runs.insert(
                    run_id,
                    Entry {
                        actor,
                        lease,
                        restarts: Restarts::new("run", self.deps.settings.run_restarts),
                        _permit: permit,
                    },
                );
                self.deps.metrics.active_runs.set(state.runs.len() as i64);
            }
            ManagerMsg::Cancel(id) => {
                if let Some(entry) = Uuid::parse_str(&id).ok().and_then(|id| state.runs.get(&id)) {
                    let _ = entry.actor.cast(RunMsg::Cancel);
                }
            }
            ManagerMsg::Active(reply) => {
                let _ = reply.send(state.runs.keys().map(Uuid::to_string).collect());
            }
            ManagerMsg::Peers(peers) => {
                for entry in state.runs.values() {
                    let _ = entry.actor.cast(RunMsg::Peers(peers.clone()));
                }
                state.peers = peers;
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
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(run_id) = state.by_actor.remove(&cell.get_id()) {
                    state.runs.remove(&run_id);
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(run_id) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                let Some(entry) = state.runs.get_mut(&run_id) else {
                    return Ok(());
                };
                let verdict = {
                    let _run = tracing::warn_span!("run", %run_id).entered();
                    entry.restarts.failed(&self.deps.metrics, &error)
                };
                match verdict {
                    Verdict::Restart => {
                        let lease = entry.lease.clone();
                        let actor = self
                            .spawn_run(&me, run_id, lease, state.peers.clone())
                            .await?;
                        state.by_actor.insert(actor.get_id(), run_id);
                        if let Some(entry) = state.runs.get_mut(&run_id) {
                            entry.actor = actor;
                        }
                    }
                    Verdict::GiveUp(reason) => {
                        let lease = entry.lease.clone();
                        state.runs.remove(&run_id);
                        let deps = self.deps.clone();
                        tokio::spawn(async move {
                            // Acked only once the failure is recorded; otherwise the
                            // message comes back and the next executor decides again.
                            if give_up(&deps, run_id, reason).await {
                                lease.release().await;
                            }
                        });
                    }
                }
            }
            _ => {}
        }
        self.deps.metrics.active_runs.set(state.runs.len() as i64);
        Ok(())
    }
}

/// Records that the supervisor gave up on a run, retrying while the store is away.
/// `true` once the run has ended (this failure or another outcome).
async fn give_up(deps: &Deps, run_id: Uuid, reason: String) -> bool {
    let id = run_id.to_string();
    for _ in 0..30 {
        let command = RunCommand::FailRun {
            step: None,
            reason: reason.clone(),
            attempt: None,
        };
        let metadata = metadata(run_id, "supervisor");
        match deps.runs.execute(&id, command, &metadata).await {
            Ok(_) | Err(AggregateError::UserError(_)) => {
                deps.metrics
                    .runs_finished
                    .get_or_create(&OutcomeLabels {
                        outcome: "failed".into(),
                    })
                    .inc();
                return true;
            }
            Err(error) => {
                tracing::warn!(%run_id, %error, "could not record the failure yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    false
}
