//! What every handler shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aurora_actors::artifacts::ArtifactStore;
use aurora_actors::progress::ProgressHub;
use aurora_actors::tools::Tools;
use aurora_actors::Engine;
pub use aurora_nats::AnyBus as Bus;
use aurora_projections::{
    AccessCommands, AuditLog, Database, MediaCommands, RunCommands, RunsProjection, UserCommands,
    UsersProjection,
};

use aurora_domain::user::{UserCommand, UserError, UserEvent};
use aurora_domain::EventMetadata;
use cqrs_es::AggregateError;

use crate::auth::tokens::Tokens;
use crate::config::Config;
use crate::metrics::Metrics;

/// Users, their passwords (in the database) and their tokens.
pub struct Identity {
    /// User commands. Use [`Identity::execute`] for anything that may revoke tokens.
    pub users: UserCommands,
    /// Minting, verifying and authorizing tokens.
    pub tokens: Tokens,
    /// Refused requests (401/403, failed logins of unknown users), for the audit trail.
    pub access: AccessCommands,
}

impl Identity {
    /// Executes `command` on user `username` and applies the revocations (and tier change)
    /// it recorded to this replica's revocation set before returning (other replicas learn them from the
    /// stream): a token revoked here is refused here by the next request.
    pub async fn execute(
        &self,
        username: &str,
        command: UserCommand,
        metadata: &EventMetadata,
    ) -> Result<Vec<UserEvent>, AggregateError<UserError>> {
        let (events, first) = self
            .users
            .execute_numbered(username, command, metadata)
            .await?;
        self.tokens.revocations().apply(username, &events, first);
        Ok(events)
    }
}

/// Media: the records, the files, the tools that check them, live progress.
pub struct Media {
    /// Upload records.
    pub commands: MediaCommands,
    /// The files.
    pub artifacts: ArtifactStore,
    /// ffprobe, to check uploads.
    pub tools: Tools,
    /// Live progress of transcodes.
    pub progress: ProgressHub,
}

/// Shared by all handlers.
pub struct AppState {
    /// Settings.
    pub config: Config,
    /// Event store and read models.
    pub db: Database,
    /// A pool of its own for `/ready` and `/health` (Postgres: one connection), so that a
    /// busy main pool is not mistaken for a database that is away.
    pub probe: Database,
    /// The bus.
    pub bus: Bus,
    /// Run commands.
    pub run_commands: RunCommands,
    /// Users and their tokens.
    pub identity: Identity,
    /// The runs read model.
    pub runs: Arc<RunsProjection>,
    /// The users read model.
    pub users: Arc<UsersProjection>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Projection lags, watched for stuck projections.
    pub projections: Arc<crate::projections::Monitor>,
    /// What each projection's actor is doing (its supervisor's view).
    pub projection_actors: Option<Arc<aurora_projections::read::Statuses>>,
    /// Metrics.
    pub metrics: Metrics,
    /// Rate limits, unless they are off.
    pub limits: Option<crate::limits::Limits>,
    /// Uploads and run outputs.
    pub media: Media,
    /// The execution engine, on worker replicas (taken out to stop it).
    pub engine: std::sync::Mutex<Option<Engine>>,
    /// The NATS auth callout, when it is configured.
    pub callout: std::sync::OnceLock<Arc<aurora_actors::callout::Callout>>,
    /// The per-client budget of recorded refusals.
    pub refusals: crate::http::refusals::Budget,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub proxies: crate::limits::TrustedProxies,
    /// Origins allowed to call the API from a browser.
    pub cors: crate::http::cors::Origins,
    /// How current the token revocation set is, where another replica's revocations
    /// reach it late (NATS); `None` where every revocation is applied before it is
    /// answered (embedded).
    pub revocations_current: Option<Arc<crate::replicated::Freshness>>,
    /// Process start.
    pub started: Instant,
    draining: AtomicBool,
    /// Cancelled when draining starts: long-lived responses (event streams) end then.
    drain: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// Writes a user just created into the users view at once, so that the id the answer
    /// gives is found by the next request on any replica. The view's own catch-up cannot
    /// promise that: it reads the log only below the oldest open transaction on the server
    /// (gap safety), and any long transaction holds that back. The user is stored either
    /// way; if this fails, the view's feed brings the row a moment later.
    pub async fn show_new_user(&self, username: &str) {
        if let Err(error) = self.users.refresh(username).await {
            tracing::warn!(%error, username, "the users view could not show a new user at once");
        }
    }

    /// Assembles the state.
    pub fn new(
        config: Config,
        db: Database,
        bus: Bus,
        work: (RunCommands, Media),
        identity: Identity,
        views: (Arc<RunsProjection>, Arc<UsersProjection>, Arc<AuditLog>),
        metrics: Metrics,
    ) -> Self {
        let (runs, users, audit) = views;
        let projections = Arc::new(
            crate::projections::Monitor::new(
                metrics.projection_lag.clone(),
                config.projection_stuck_after(),
            )
            .with_relay(&config.nats_prefix, metrics.relay_lag.clone()),
        );
        let (run_commands, media) = work;
        Self {
            config,
            probe: db.clone(),
            db,
            bus,
            run_commands,
            identity,
            runs,
            users,
            audit,
            projections,
            projection_actors: None,
            metrics,
            limits: None,
            media,
            engine: std::sync::Mutex::new(None),
            callout: std::sync::OnceLock::new(),
            refusals: Default::default(),
            proxies: Default::default(),
            cors: Default::default(),
            revocations_current: None,
            started: Instant::now(),
            draining: AtomicBool::new(false),
            drain: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// With rate limits.
    pub fn with_limits(mut self, limits: Option<crate::limits::Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// Answering CORS for `origins`.
    /// The pool health checks use.
    pub fn with_probe(mut self, probe: Database) -> Self {
        self.probe = probe;
        self
    }

    pub fn with_cors(mut self, origins: crate::http::cors::Origins) -> Self {
        self.cors = origins;
        self
    }

    /// Believing `X-Forwarded-For` from `proxies`.
    pub fn with_proxies(mut self, proxies: crate::limits::TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// The client of a request from `peer`, as the trusted proxies say.
    pub fn client_ip(
        &self,
        peer: Option<std::net::SocketAddr>,
        headers: &http::HeaderMap,
    ) -> Option<String> {
        self.proxies
            .client(peer.map(|p| p.ip()), headers)
            .map(|ip| ip.to_string())
    }

    /// Whether the projections this replica keeps in memory for its security decisions
    /// (token revocations, client blocks) are running, that is following the events.
    pub fn replica_state_current(&self) -> bool {
        let Some(statuses) = &self.projection_actors else {
            return true;
        };
        let report = statuses.report();
        report
            .iter()
            .filter(|(_, r)| r.scope == "replica")
            .all(|(_, r)| r.state == aurora_projections::read::supervisor::Health::Running)
    }

    /// With the gauge of how current the revocation set is.
    pub fn with_revocations_current(
        mut self,
        freshness: Option<Arc<crate::replicated::Freshness>>,
    ) -> Self {
        self.revocations_current = freshness;
        self
    }

    /// May a token be honoured here now? Waits up to `wait` for the revocation set to be
    /// current (see [`crate::replicated::CURRENT_WITHIN`]); false if it is not by then.
    pub async fn revocations_are_current(&self, wait: std::time::Duration) -> bool {
        match &self.revocations_current {
            None => true,
            Some(freshness) => {
                freshness
                    .current_within(crate::replicated::CURRENT_WITHIN, wait)
                    .await
            }
        }
    }

    /// May a token still be honoured here, without waiting: the revocation set is no older
    /// than the promise (a second). For what asks every second whether a token still holds
    /// (long responses, NATS connections) and for readiness.
    pub fn revocations_current_now(&self) -> bool {
        self.revocations_current
            .as_ref()
            .is_none_or(|freshness| freshness.is_current(crate::replicated::PROMISE))
    }

    /// With the projections supervisor's view of its actors.
    pub fn with_projections(mut self, statuses: Arc<aurora_projections::read::Statuses>) -> Self {
        self.projection_actors = Some(statuses);
        self
    }

    /// With the engine, on a worker replica.
    pub fn with_engine(self, engine: Option<Engine>) -> Self {
        *self.engine.lock().unwrap_or_else(|e| e.into_inner()) = engine;
        self
    }

    /// The NATS auth callout, when it runs here.
    pub fn callout(&self) -> Option<Arc<aurora_actors::callout::Callout>> {
        self.callout.get().cloned()
    }

    /// Is the execution engine up? `None` on an API-only replica.
    pub fn engine_running(&self) -> Option<bool> {
        self.engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Engine::is_running)
    }

    /// Marks the process as draining: `/ready` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.drain.cancel();
    }

    /// Cancelled once the process drains.
    pub fn drain_token(&self) -> tokio_util::sync::CancellationToken {
        self.drain.clone()
    }

    /// Is the process draining?
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
