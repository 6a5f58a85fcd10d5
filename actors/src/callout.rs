//! The NATS auth callout service: every replica answers the server's
//! `$SYS.REQ.USER.AUTH` requests (in one queue group: each request is answered once), so
//! that users' scripts connect to NATS with their own Biscuit tokens and see what those
//! tokens allow, nothing else. Who may in, and as what, is a [`Gatekeeper`]'s to decide
//! (the gateway's, with its key ring, revocations and authorizer); this module holds the
//! conversation with the server and what follows it:
//!
//! - a connection let in is remembered with the check that says whether its token still
//!   holds; every [`SWEEP`] the ones whose token no longer holds (revoked, user disabled,
//!   expired) are cut off through the system account (`$SYS.REQ.SERVER.<id>.KICK`), and
//!   their reconnection is refused by the same gatekeeper;
//! - the service is an actor under a supervisor that restarts it within a budget (the
//!   connections remembered survive a restart: they are the supervisor's).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aurora_nats::callout::{decode_request, Grant, Issuer, Request, AUTH_SUBJECT};
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::task::JoinHandle;

use crate::supervision::{EngineMetrics, Restarts, Verdict};

/// How often connections let in are checked against their tokens.
pub const SWEEP: Duration = Duration::from_secs(1);
/// The queue group every replica's callout joins.
pub const QUEUE: &str = "aurora-callout";
/// Restarts of the service allowed within a window.
const RESTARTS: (usize, Duration) = (10, Duration::from_secs(60));
/// Connections remembered, at most: past it the oldest is forgotten (it still ends when its
/// JWT expires, at most 10 minutes later), so a client reconnecting in a loop cannot grow
/// memory or the sweep without bound.
pub const MAX_LIVE: usize = 100_000;
/// How long a service that kept failing rests before it is started again.
const REST: Duration = Duration::from_secs(5);

/// A connection let in: what it was granted, and whether its token still allows it.
pub struct Admitted {
    /// What the server is told.
    pub grant: Grant,
    /// True while the token still allows the grant (not revoked, not expired, its user
    /// enabled): checked every [`SWEEP`].
    pub holds: Box<dyn Fn() -> bool + Send + Sync>,
}

/// Decides who may connect, and as what.
#[async_trait]
pub trait Gatekeeper: Send + Sync + 'static {
    /// The grant for `request`'s credential, or why not (in one sentence, for the server's
    /// log; the client only learns that it was refused). Records refusals as it sees fit.
    async fn admit(&self, request: &Request) -> Result<Admitted, String>;
}

/// A connection let in, as remembered.
struct Live {
    server: String,
    cid: u64,
    name: String,
    expires: i64,
    holds: Box<dyn Fn() -> bool + Send + Sync>,
}

/// What the service is given, and keeps across restarts.
#[derive(Clone)]
pub struct CalloutDeps {
    /// A connection as the callout user (the server's `auth_callout.auth_users`).
    pub client: async_nats::Client,
    /// A connection as a system-account user, to cut off connections whose token stopped
    /// holding; without it they end when their JWT expires.
    pub system: Option<async_nats::Client>,
    /// Signs the answers.
    pub issuer: Arc<Issuer>,
    /// Decides.
    pub gatekeeper: Arc<dyn Gatekeeper>,
    /// Restarts and escalations are counted here (kind `nats_callout`).
    pub metrics: EngineMetrics,
    /// The connections let in.
    live: Arc<Mutex<VecDeque<Live>>>,
}

impl CalloutDeps {
    /// The service's dependencies.
    pub fn new(
        client: async_nats::Client,
        system: Option<async_nats::Client>,
        issuer: Issuer,
        gatekeeper: Arc<dyn Gatekeeper>,
        metrics: EngineMetrics,
    ) -> Self {
        Self {
            client,
            system,
            issuer: Arc::new(issuer),
            gatekeeper,
            metrics,
            live: Arc::default(),
        }
    }
}

/// The service's messages.
pub enum CalloutMsg {
    /// A request from the server.
    Ask(async_nats::Message),
    /// Check the connections let in.
    Sweep,
    /// How many connections are remembered.
    Live(ractor::RpcReplyPort<usize>),
    /// Fail, for tests of the supervisor.
    #[cfg(any(test, feature = "faults"))]
    Crash,
}

struct Service {
    deps: CalloutDeps,
}

/// The service's state: the subscription's forwarder.
pub struct Listening {
    forward: JoinHandle<()>,
}

impl Actor for Service {
    type Msg = CalloutMsg;
    type State = Listening;
    type Arguments = ();

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut requests = self
            .deps
            .client
            .queue_subscribe(AUTH_SUBJECT, QUEUE.to_string())
            .await?;
        // The subscription is made before pre_start returns: a request sent once the actor
        // is up is answered.
        self.deps.client.flush().await?;
        let forward = tokio::spawn({
            let me = me.clone();
            async move {
                while let Some(message) = requests.next().await {
                    if me.cast(CalloutMsg::Ask(message)).is_err() {
                        return;
                    }
                }
            }
        });
        me.send_interval(SWEEP, || CalloutMsg::Sweep);
        Ok(Listening { forward })
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.forward.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        _: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            // Answered beside the actor: a decision that reads the store (a run's owner)
            // does not hold up the next connection.
            CalloutMsg::Ask(message) => {
                let service = Service {
                    deps: self.deps.clone(),
                };
                tokio::spawn(async move { service.answer(message).await });
            }
            CalloutMsg::Sweep => self.sweep().await,
            CalloutMsg::Live(reply) => {
                let _ = reply.send(
                    self.deps
                        .live
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .len(),
                );
            }
            #[cfg(any(test, feature = "faults"))]
            CalloutMsg::Crash => panic!("injected callout crash"),
        }
        Ok(())
    }
}

impl Service {
    async fn answer(&self, message: async_nats::Message) {
        let Some(reply) = message.reply.clone() else {
            return;
        };
        let now = chrono::Utc::now().timestamp();
        // A request that cannot be read cannot be answered (the answer names its
        // connection): the server times it out, which refuses the client.
        let request = match decode_request(&message.payload, now) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "an authorization request could not be read");
                return;
            }
        };
        let admitted = self.deps.gatekeeper.admit(&request).await;
        let answer = match &admitted {
            Ok(admitted) => self.deps.issuer.answer(&request, Ok(&admitted.grant), now),
            Err(reason) => self.deps.issuer.answer(&request, Err(reason), now),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                tracing::error!(%error, "could not sign an authorization answer");
                return;
            }
        };
        if let Err(error) = self.deps.client.publish(reply, answer.into()).await {
            tracing::warn!(%error, "could not answer an authorization request");
            return;
        }
        match admitted {
            Ok(admitted) => {
                tracing::info!(
                    connection = request.client_info.id,
                    user = %admitted.grant.name,
                    "a NATS connection was let in"
                );
                let mut live = self.deps.live.lock().unwrap_or_else(|e| e.into_inner());
                if live.len() >= MAX_LIVE {
                    live.pop_front();
                }
                live.push_back(Live {
                    server: request.server_id.id,
                    cid: request.client_info.id,
                    name: admitted.grant.name,
                    expires: admitted.grant.expires,
                    holds: admitted.holds,
                });
            }
            Err(reason) => tracing::info!(
                connection = request.client_info.id,
                %reason,
                "a NATS connection was refused"
            ),
        }
    }

    /// Forgets expired connections (the server ended them) and cuts off those whose token
    /// stopped holding.
    async fn sweep(&self) {
        let now = chrono::Utc::now().timestamp();
        let ended: VecDeque<Live> = {
            let mut live = self.deps.live.lock().unwrap_or_else(|e| e.into_inner());
            live.retain(|c| c.expires > now);
            let (keep, ended): (VecDeque<Live>, VecDeque<Live>) =
                live.drain(..).partition(|c| (c.holds)());
            *live = keep;
            ended
        };
        for connection in ended {
            self.kick(&connection).await;
        }
    }

    async fn kick(&self, connection: &Live) {
        let Some(system) = &self.deps.system else {
            tracing::info!(
                user = %connection.name,
                "a NATS connection's token no longer holds; it ends when its JWT expires"
            );
            return;
        };
        let subject = format!("$SYS.REQ.SERVER.{}.KICK", connection.server);
        let body = serde_json::json!({ "cid": connection.cid }).to_string();
        match tokio::time::timeout(Duration::from_secs(2), system.request(subject, body.into()))
            .await
        {
            Ok(Ok(_)) => tracing::info!(
                user = %connection.name,
                connection = connection.cid,
                "a NATS connection whose token no longer holds was cut off"
            ),
            Ok(Err(error)) => tracing::warn!(%error, "could not cut off a NATS connection"),
            Err(_) => tracing::warn!("the server did not answer a request to cut off a connection"),
        }
    }
}

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
