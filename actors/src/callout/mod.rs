//! The NATS auth callout service: every replica answers the server's
//! `$SYS.REQ.USER.AUTH` requests (in one queue group: each request is answered once), so
//! that users' scripts connect to NATS with their own Biscuit tokens and see what those
//! tokens allow, nothing else. Who may in, and as what, is a [`Gatekeeper`]'s to decide
//! (the gateway's, with its key ring, revocations and authorizer); this module holds the
//! conversation with the server and what follows it:
//!
//! - a connection let in is remembered — by server and connection id, with the check that
//!   says whether its token still holds — until the server reports it gone (its
//!   `$SYS.ACCOUNT.<account>.DISCONNECT` advisories) or its JWT expires; at most
//!   [`MAX_PER_PRINCIPAL`] per principal and [`MAX_LIVE`] in all: past either, a new
//!   connection is refused (never an old one forgotten, which would let it outlive a
//!   revocation);
//! - every [`SWEEP`] the remembered connections are checked, beside the actor, and those
//!   whose token no longer holds (revoked, user disabled, expired) are cut off through the
//!   system account (`$SYS.REQ.SERVER.<id>.KICK`), again each sweep until the server says
//!   it is gone; their reconnection is refused by the same gatekeeper;
//! - answers are made beside the actor, at most [`ANSWERS`] at once;
//! - the service is an actor under a supervisor that restarts it within a budget (the
//!   connections remembered survive a restart: they are the supervisor's).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aurora_nats::callout::{decode_request, Grant, Issuer, Request, AUTH_SUBJECT};
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::supervision::EngineMetrics;

mod supervisor;

pub use supervisor::{Callout, SupervisorMsg};

/// How often connections let in are checked against their tokens.
pub const SWEEP: Duration = Duration::from_secs(1);
/// The queue group every replica's callout joins.
pub const QUEUE: &str = "aurora-callout";
/// Connections remembered, at most; past it new ones are refused.
pub const MAX_LIVE: usize = 100_000;
/// Connections one principal may hold at once (through this replica's callout).
pub const MAX_PER_PRINCIPAL: usize = 256;
/// Answers being made at once, at most.
pub const ANSWERS: usize = 64;

/// Whether a connection's token still allows it.
pub type Holds = Arc<dyn Fn() -> bool + Send + Sync>;

/// A connection let in: what it was granted, for whom, and whether its token still allows
/// it.
pub struct Admitted {
    /// What the server is told.
    pub grant: Grant,
    /// Who holds the token (connections are counted per principal).
    pub principal: String,
    /// True while the token still allows the grant (not revoked, not expired, its user
    /// enabled): checked every [`SWEEP`], so it must be cheap (no parsing, no I/O).
    pub holds: Holds,
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
    principal: String,
    name: String,
    expires: i64,
    holds: Holds,
    /// A request to cut it off is under way.
    kicking: bool,
}

/// A connection's identity on the servers: the server's id and the connection's.
type Key = (String, u64);

/// The connections let in.
#[derive(Default)]
struct Connections {
    live: HashMap<Key, Live>,
    per_principal: HashMap<String, usize>,
}

impl Connections {
    /// Remembers a connection, unless a cap refuses it.
    fn admit(&mut self, key: Key, connection: Live) -> Result<(), &'static str> {
        if self.live.len() >= MAX_LIVE {
            return Err("too many connections through this replica; retry later");
        }
        let held = self.per_principal.get(&connection.principal).copied();
        if held.unwrap_or(0) >= MAX_PER_PRINCIPAL {
            return Err("too many connections for this user");
        }
        *self
            .per_principal
            .entry(connection.principal.clone())
            .or_default() += 1;
        if let Some(old) = self.live.insert(key, connection) {
            self.release(&old.principal);
        }
        Ok(())
    }

    fn forget(&mut self, key: &Key) {
        if let Some(old) = self.live.remove(key) {
            self.release(&old.principal);
        }
    }

    fn release(&mut self, principal: &str) {
        if let Some(count) = self.per_principal.get_mut(principal) {
            *count -= 1;
            if *count == 0 {
                self.per_principal.remove(principal);
            }
        }
    }
}

/// What the service is given, and keeps across restarts.
#[derive(Clone)]
pub struct CalloutDeps {
    /// A connection as the callout user (the server's `auth_callout.auth_users`).
    pub client: async_nats::Client,
    /// A connection as a system-account user, to learn of connections that ended and to
    /// cut off those whose token stopped holding; without it they end when their JWT
    /// expires.
    pub system: Option<async_nats::Client>,
    /// The account users land in (its disconnect advisories are followed).
    pub account: String,
    /// Signs the answers.
    pub issuer: Arc<Issuer>,
    /// Decides.
    pub gatekeeper: Arc<dyn Gatekeeper>,
    /// Restarts and escalations are counted here (kind `nats_callout`).
    pub metrics: EngineMetrics,
    connections: Arc<Mutex<Connections>>,
    answers: Arc<Semaphore>,
    sweeping: Arc<AtomicBool>,
}

impl CalloutDeps {
    /// The service's dependencies.
    pub fn new(
        client: async_nats::Client,
        system: Option<async_nats::Client>,
        account: impl Into<String>,
        issuer: Issuer,
        gatekeeper: Arc<dyn Gatekeeper>,
        metrics: EngineMetrics,
    ) -> Self {
        Self {
            client,
            system,
            account: account.into(),
            issuer: Arc::new(issuer),
            gatekeeper,
            metrics,
            connections: Arc::default(),
            answers: Arc::new(Semaphore::new(ANSWERS)),
            sweeping: Arc::default(),
        }
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The service's messages.
pub enum CalloutMsg {
    /// A request from the server.
    Ask(async_nats::Message),
    /// A connection the server reports ended.
    Gone(Key),
    /// Check the connections let in.
    Sweep,
    /// How many connections are remembered.
    Live(ractor::RpcReplyPort<usize>),
    /// Fail, for tests of the supervisor.
    #[cfg(any(test, feature = "faults"))]
    Crash,
}

pub(super) struct Service {
    pub(super) deps: CalloutDeps,
}

/// The service's state: the subscriptions' forwarders.
pub struct Listening {
    forwards: Vec<JoinHandle<()>>,
}

/// A disconnect advisory, the parts read.
#[derive(serde::Deserialize)]
struct Disconnect {
    server: AdvisoryServer,
    client: AdvisoryClient,
}

#[derive(serde::Deserialize)]
struct AdvisoryServer {
    id: String,
}

#[derive(serde::Deserialize)]
struct AdvisoryClient {
    id: u64,
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
        let mut forwards = Vec::new();
        if let Some(system) = &self.deps.system {
            let subject = format!("$SYS.ACCOUNT.{}.DISCONNECT", self.deps.account);
            let mut gone = system.subscribe(subject).await?;
            system.flush().await?;
            let me = me.clone();
            forwards.push(tokio::spawn(async move {
                while let Some(message) = gone.next().await {
                    let Ok(advisory) = serde_json::from_slice::<Disconnect>(&message.payload)
                    else {
                        continue;
                    };
                    let key = (advisory.server.id, advisory.client.id);
                    if me.cast(CalloutMsg::Gone(key)).is_err() {
                        return;
                    }
                }
            }));
        }
        let mut requests = self
            .deps
            .client
            .queue_subscribe(AUTH_SUBJECT, QUEUE.to_string())
            .await?;
        // The subscription is made before pre_start returns: a request sent once the actor
        // is up is answered.
        self.deps.client.flush().await?;
        forwards.push(tokio::spawn({
            let me = me.clone();
            async move {
                while let Some(message) = requests.next().await {
                    if me.cast(CalloutMsg::Ask(message)).is_err() {
                        return;
                    }
                }
            }
        }));
        me.send_interval(SWEEP, || CalloutMsg::Sweep);
        Ok(Listening { forwards })
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for forward in &state.forwards {
            forward.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        _: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            // Answered beside the actor, a bounded number at once: a decision that reads
            // the store (a run's owner) does not hold up the next connection.
            CalloutMsg::Ask(message) => {
                let deps = self.deps.clone();
                tokio::spawn(async move {
                    let Ok(_permit) = deps.answers.clone().acquire_owned().await else {
                        return;
                    };
                    answer(&deps, message).await;
                });
            }
            CalloutMsg::Gone(key) => self.deps.connections().forget(&key),
            CalloutMsg::Sweep => {
                // One sweep at a time, beside the actor.
                if !self.deps.sweeping.swap(true, Ordering::AcqRel) {
                    let deps = self.deps.clone();
                    tokio::spawn(async move {
                        sweep(&deps);
                        deps.sweeping.store(false, Ordering::Release);
                    });
                }
            }
            CalloutMsg::Live(reply) => {
                let _ = reply.send(self.deps.connections().live.len());
            }
            #[cfg(any(test, feature = "faults"))]
            CalloutMsg::Crash => panic!("injected callout crash"),
        }
        Ok(())
    }
}

async fn answer(deps: &CalloutDeps, message: async_nats::Message) {
    let Some(reply) = message.reply.clone() else {
        return;
    };
    let now = chrono::Utc::now().timestamp();
    // A request that cannot be read cannot be answered (the answer names its connection):
    // the server times it out, which refuses the client.
    let request = match decode_request(&message.payload, now) {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, "an authorization request could not be read");
            return;
        }
    };
    let key = (request.server_id.id.clone(), request.client_info.id);
    let decision = match deps.gatekeeper.admit(&request).await {
        Ok(admitted) => {
            let remembered = deps.connections().admit(
                key.clone(),
                Live {
                    principal: admitted.principal.clone(),
                    name: admitted.grant.name.clone(),
                    expires: admitted.grant.expires,
                    holds: admitted.holds.clone(),
                    kicking: false,
                },
            );
            remembered.map(|()| admitted).map_err(str::to_string)
        }
        Err(reason) => Err(reason),
    };
    let answer = match &decision {
        Ok(admitted) => deps.issuer.answer(&request, Ok(&admitted.grant), now),
        Err(reason) => deps.issuer.answer(&request, Err(reason), now),
    };
    let published = match answer {
        Ok(answer) => deps
            .client
            .publish(reply, answer.into())
            .await
            .map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    match (decision, published) {
        (Ok(admitted), Ok(())) => tracing::info!(
            connection = request.client_info.id,
            user = %admitted.grant.name,
            "a NATS connection was let in"
        ),
        (Ok(_), Err(error)) => {
            deps.connections().forget(&key);
            tracing::warn!(%error, "could not answer an authorization request");
        }
        (Err(reason), _) => tracing::info!(
            connection = request.client_info.id,
            %reason,
            "a NATS connection was refused"
        ),
    }
}

/// Forgets expired connections (the server ended them) and cuts off those whose token
/// stopped holding. The checks run outside the lock: admissions go on meanwhile.
fn sweep(deps: &CalloutDeps) {
    let now = chrono::Utc::now().timestamp();
    let checks: Vec<(Key, Holds)> = {
        let mut connections = deps.connections();
        let expired: Vec<Key> = connections
            .live
            .iter()
            .filter(|(_, c)| c.expires <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &expired {
            connections.forget(key);
        }
        connections
            .live
            .iter()
            .filter(|(_, c)| !c.kicking)
            .map(|(key, c)| (key.clone(), c.holds.clone()))
            .collect()
    };
    let ended: Vec<Key> = checks
        .into_iter()
        .filter(|(_, holds)| !holds())
        .map(|(key, _)| key)
        .collect();
    for key in ended {
        let name = {
            let mut connections = deps.connections();
            let Some(connection) = connections.live.get_mut(&key) else {
                continue;
            };
            let Some(_) = &deps.system else {
                tracing::info!(
                    user = %connection.name,
                    "a NATS connection's token no longer holds; it ends when its JWT expires"
                );
                connections.forget(&key);
                continue;
            };
            connection.kicking = true;
            connection.name.clone()
        };
        let deps = deps.clone();
        tokio::spawn(async move { kick(&deps, key, name).await });
    }
}

/// Asks the server to cut off connection `key`; forgets it once the server has (or says
/// it has no such connection), else leaves it for the next sweep to try again.
async fn kick(deps: &CalloutDeps, key: Key, name: String) {
    let Some(system) = &deps.system else {
        return;
    };
    let subject = format!("$SYS.REQ.SERVER.{}.KICK", key.0);
    let body = serde_json::json!({ "cid": key.1 }).to_string();
    let answer =
        tokio::time::timeout(Duration::from_secs(2), system.request(subject, body.into())).await;
    let done = match answer {
        Ok(Ok(message)) => {
            let reply: serde_json::Value =
                serde_json::from_slice(&message.payload).unwrap_or_default();
            match reply["error"]["description"].as_str() {
                None => {
                    tracing::info!(user = %name, connection = key.1, "a NATS connection whose token no longer holds was cut off");
                    true
                }
                Some(error) if error.contains("no such client") => true,
                Some(error) => {
                    tracing::warn!(%error, "the server would not cut off a connection; trying again");
                    false
                }
            }
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not ask the server to cut off a connection; trying again");
            false
        }
        Err(_) => {
            tracing::warn!(
                "the server did not answer a request to cut off a connection; trying again"
            );
            false
        }
    };
    let mut connections = deps.connections();
    if done {
        connections.forget(&key);
    } else if let Some(connection) = connections.live.get_mut(&key) {
        connection.kicking = false;
    }
}
