//! The callout service's supervisor: restarts it within a budget, rests past it; and the
//! handle the gateway keeps.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::{CalloutDeps, CalloutMsg, Service};
use crate::supervision::{Restarts, Verdict};

/// Restarts of the service allowed within a window.
const RESTARTS: (usize, Duration) = (10, Duration::from_secs(60));
/// How long a service that kept failing rests before it is started again.
const REST: Duration = Duration::from_secs(5);

/// The supervisor's messages.
pub enum SupervisorMsg {
    /// The service has rested: a fresh budget, and start it.
    Revive,
    /// The service now (tests).
    Service(ractor::RpcReplyPort<Option<ActorRef<CalloutMsg>>>),
}

struct Supervisor {
    deps: CalloutDeps,
}

/// The supervisor's state.
pub struct Supervising {
    service: Option<ActorRef<CalloutMsg>>,
    restarts: Restarts,
}

impl Supervisor {
    async fn spawn(&self, me: &ActorRef<SupervisorMsg>) -> Option<ActorRef<CalloutMsg>> {
        let service = Service {
            deps: self.deps.clone(),
        };
        match Actor::spawn_linked(None, service, (), me.get_cell()).await {
            Ok((service, _)) => Some(service),
            Err(error) => {
                tracing::error!(%error, "could not start the NATS callout; trying again after a rest");
                me.send_after(REST, || SupervisorMsg::Revive);
                None
            }
        }
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = Supervising;
    type Arguments = ();

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let service = self.spawn(&me).await;
        Ok(Supervising {
            service,
            restarts: Restarts::new("nats_callout", RESTARTS),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Revive => {
                state.restarts.reset();
                if state.service.is_none() {
                    state.service = self.spawn(&me).await;
                }
            }
            SupervisorMsg::Service(reply) => {
                let _ = reply.send(state.service.clone());
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
        let error = match &event {
            SupervisionEvent::ActorFailed(_, error) => error.to_string(),
            SupervisionEvent::ActorTerminated(_, _, Some(reason)) => reason.clone(),
            _ => return Ok(()),
        };
        state.service = None;
        match state.restarts.failed(&self.deps.metrics, &error) {
            Verdict::Restart => state.service = self.spawn(&me).await,
            Verdict::GiveUp(_) => {
                me.send_after(REST, || SupervisorMsg::Revive);
            }
        }
        Ok(())
    }
}

/// The running callout service.
pub struct Callout {
    supervisor: ActorRef<SupervisorMsg>,
}

impl Callout {
    /// Starts answering on `deps.client`.
    pub async fn start(deps: CalloutDeps) -> Result<Self, ActorProcessingErr> {
        let (supervisor, _) = Actor::spawn(None, Supervisor { deps }, ()).await?;
        Ok(Self { supervisor })
    }

    /// The service actor now, if it runs.
    pub async fn service(&self) -> Option<ActorRef<CalloutMsg>> {
        ractor::call!(self.supervisor, SupervisorMsg::Service).unwrap_or(None)
    }

    /// How many connections it remembers (let in, not yet ended or cut off).
    pub async fn live(&self) -> usize {
        match self.service().await {
            Some(service) => ractor::call!(service, CalloutMsg::Live).unwrap_or(0),
            None => 0,
        }
    }

    /// Stops the service and its supervisor.
    pub async fn stop(&self) {
        self.supervisor
            .stop_children_and_wait(None, Some(Duration::from_secs(5)))
            .await;
        self.supervisor.stop(None);
    }
}
