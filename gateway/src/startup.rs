//! The composition root: the one place that builds pools, clients and tasks.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aurora_actors::artifacts::ArtifactStore;
use aurora_actors::feed::RunFeed;
use aurora_actors::progress::ProgressHub;
use aurora_actors::tools::Tools;
use aurora_actors::users::{UserDeps, UserReaper};
use aurora_actors::{Deps, Engine};
use aurora_nats::jetstream::JetStreamBus;
use aurora_nats::memory::MemoryBus;
use aurora_nats::Subjects;
use aurora_projections::read::supervisor::{self as projections, SupervisorSettings};
use aurora_projections::read::Projection;
use aurora_projections::store::GroupCommit;
use aurora_projections::{
    AccessCommands, AuditLog, ClientCommands, Database, MediaCommands, Relay, RelayConfig,
    RunCommands, RunsProjection, UserCommands, UsersProjection,
};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::keys::KeyRing;
use crate::auth::revocations::Revocations;
use crate::auth::tokens::Tokens;
use crate::config::{redact, Config};
use crate::limits::blocks::Blocks;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::replicated::{InMemory, Replicated};
use crate::state::{AppState, Bus, Identity, Media};

/// Opens the configured database: Postgres with `DATABASE_URL`, else SQLite under the
/// data dir.
pub async fn connect_database(config: &Config) -> anyhow::Result<Database> {
    match &config.database_url {
        Some(url) => {
            tracing::info!(database = %redact(url), "using Postgres");
            Database::postgres(url, config.db_max_connections)
                .await
                .with_context(|| format!("connecting to {}", redact(url)))
        }
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
            let path = config.data_dir.join("aurora.db");
            tracing::info!(path = %path.display(), "using embedded SQLite");
            Database::sqlite(&path)
                .await
                .with_context(|| format!("opening {}", path.display()))
        }
    }
}

/// Connects the configured bus: JetStream with `NATS_URL`, else in-process.
pub async fn connect_bus(config: &Config) -> anyhow::Result<Bus> {
    let subjects = Subjects::new(config.nats_prefix.clone());
    match &config.nats_url {
        Some(url) => {
            tracing::info!(nats = %redact(url), stream = %subjects.stream(), "using NATS JetStream");
            let bus = JetStreamBus::connect(url, subjects, config.nats_replicas)
                .await
                .with_context(|| format!("connecting to NATS at {}", redact(url)))?;
            Ok(Bus::JetStream(Box::new(bus)))
        }
        None => {
            tracing::info!("using the in-process bus");
            Ok(Bus::Memory(MemoryBus::new(subjects)))
        }
    }
}

/// Loads the root key ring (creating the first key where Aurora may).
pub fn load_root_keys(config: &Config) -> anyhow::Result<KeyRing> {
    let (dir, create) = config.root_keys();
    if create && config.database_url.is_some() {
        tracing::warn!(
            dir = %dir.display(),
            "AURORA_ROOT_KEYS_DIR is unset: using keys under the data dir; replicas that do \
             not share it will not accept each other's tokens"
        );
    }
    let keys = KeyRing::load(&dir, create)
        .with_context(|| format!("loading root keys from {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), ids = ?keys.ids(), signing = keys.signing().0, "root keys loaded");
    Ok(keys)
}

/// Binds the listener. `TCP_NODELAY` is set on it, and Linux hands it down to every
/// accepted connection: small request/response exchanges must not wait on Nagle's
/// algorithm meeting a delayed ACK.
fn bind(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// A built, listening Aurora: call [`Application::run_until_stopped`] to serve.
pub struct Application {
    state: Arc<AppState>,
    listener: TcpListener,
    port: u16,
    shutdown: CancellationToken,
    background: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Every check of the settings Aurora makes before it starts, without connecting to
/// anything: the first bad setting is an error naming it (and no secret it holds).
pub fn check(config: &Config) -> anyhow::Result<()> {
    crate::telemetry::LogSettings::from_config(config, false).env_filter()?;
    config.validate()?;
    crate::limits::configured(config)?;
    crate::http::cors::Origins::parse(&config.cors_origins)
        .map_err(|e| anyhow::anyhow!("AURORA_CORS_ORIGINS: {e}"))?;
    crate::limits::TrustedProxies::parse(&config.trusted_proxies)
        .map_err(|e| anyhow::anyhow!("AURORA_TRUSTED_PROXIES: {e}"))?;
    if let Some(secrets) = &config.identity_webhook_secrets {
        crate::auth::webhook::WebhookSecrets::parse(secrets)
            .map_err(|e| anyhow::anyhow!("AURORA_IDENTITY_WEBHOOK_SECRETS: {e}"))?;
    }
    crate::subscribers::configured(config)?;
    config.generate_settings()?;
    Ok(())
}

impl Application {
    /// Connects everything, applies migrations, starts the relay and the projections, and
    /// binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        check(&config)?;
        let db = connect_database(&config).await?;
        db.migrate().await.context("applying migrations")?;
        let bus = connect_bus(&config).await?;
        let metrics = Metrics::new();
        let committed = Arc::new(Notify::new());
        let appends =
            GroupCommit::start(&db, config.db_writers).counting(metrics.events_appended.clone());
        let run_commands = RunCommands::with_appends(&db, appends.clone(), committed.clone());
        // Loaded by its projection before the first request is served (below).
        let revocations = Revocations::new();
        let clients = ClientCommands::with_appends(&db, appends.clone(), committed.clone());
        let identity = Identity {
            users: UserCommands::with_appends(&db, appends.clone(), committed.clone()),
            tokens: Tokens::new(load_root_keys(&config)?, revocations.clone())
                .counting(metrics.token_cache.clone()),
            access: AccessCommands::with_appends(&db, appends.clone(), committed.clone()),
        };
        let media = Media {
            commands: MediaCommands::with_appends(&db, appends.clone(), committed.clone()),
            artifacts: ArtifactStore::new(config.artifacts()),
            tools: Tools {
                ffmpeg: config.ffmpeg.clone(),
                ffprobe: config.ffprobe.clone(),
            },
            progress: ProgressHub::new(bus.shared().subjects().clone(), bus.nats_client()),
        };
        media
            .artifacts
            .prepare()
            .await
            .with_context(|| format!("creating {}", media.artifacts.root().display()))?;
        let runs = Arc::new(RunsProjection::new(db.clone()));
        let engine = if config.worker {
            let settings = config.engine_settings()?;
            let deps = Deps::new(
                RunCommands::with_appends(&db, appends.clone(), committed.clone()),
                MediaCommands::with_appends(&db, appends.clone(), committed.clone()),
                media.artifacts.clone(),
                media.tools.clone(),
                media.progress.clone(),
                settings,
                metrics.engine.clone(),
                config.replica(),
            )
            .with_user_limits(UserDeps {
                users: Arc::new(UserCommands::with_appends(
                    &db,
                    appends.clone(),
                    committed.clone(),
                )),
                runs_view: runs.clone(),
                limits: config.tier_limits()?,
                metrics: metrics.engine.clone(),
            });
            Some(Engine::start(deps, bus.shared()).await?)
        } else {
            None
        };
        let users = Arc::new(UsersProjection::new(db.clone()));
        let audit = Arc::new(AuditLog::new(db.clone()));
        let relay = Relay::new(
            db.clone(),
            bus.shared(),
            RelayConfig::for_prefix(&config.nats_prefix),
            metrics.relay.clone(),
        );

        let background = CancellationToken::new();
        let mut tasks = vec![tokio::spawn(
            relay.run(committed.clone(), background.clone()),
        )];
        // Every read model is a projection fed by the projections supervisor (started
        // below, once the list is complete).
        let revocations_model = Arc::new(InMemory::new(revocations, db.clone()));
        let mut read_models: Vec<Arc<dyn Projection>> = vec![
            audit.clone(),
            runs.clone(),
            users.clone(),
            // Cancels the runs of users who are disabled or deleted (one replica per event).
            Arc::new(UserReaper {
                runs: RunCommands::with_appends(&db, appends.clone(), committed.clone()),
                runs_view: runs.clone(),
                users: UserCommands::with_appends(&db, appends.clone(), committed.clone()),
                users_view: users.clone(),
            }),
            revocations_model.clone(),
        ];
        // On NATS a tail can go quiet for seconds: the store bounds how stale they get.
        // Polled over a pool of their own (revocations and blocks, one connection each), so
        // that a main pool busy with requests does not make them stale.
        let followers = match (&config.database_url, bus.nats_client()) {
            (Some(url), Some(_)) => Some(
                Database::postgres(url, 2)
                    .await
                    .with_context(|| format!("connecting to {}", redact(url)))?,
            ),
            (None, Some(_)) => Some(db.clone()),
            (_, None) => None,
        };
        let mut revocations_current = None;
        if let Some(followers) = &followers {
            revocations_current = Some(revocations_model.freshness());
            tasks.push(tokio::spawn(revocations_model.follow_store(
                followers.clone(),
                crate::replicated::STORE_POLL,
                background.clone(),
            )));
        }
        // Run events with the owner in the subject, for outside subscribers (NATS only).
        if let Some(client) = bus.nats_client() {
            read_models.push(Arc::new(RunFeed::new(
                client,
                bus.shared().subjects().clone(),
                RunCommands::with_appends(&db, appends.clone(), committed.clone()),
            )));
        }
        // The audit chain's head, signed with a key kept out of the database and published
        // outside it (`anchor`).
        let (key_dir, create) = config.audit_key();
        if create && config.database_url.is_some() {
            tracing::warn!(
                dir = %key_dir.display(),
                "AURORA_AUDIT_KEY_DIR is unset: the audit signing key lives under the data dir; \
                 mount a secret the database's users cannot read, or the published heads prove \
                 nothing against them"
            );
        }
        let anchor_key = crate::anchor::AnchorKey::load(&key_dir, create)?;
        let heads = crate::anchor::HeadStore::open(
            &config.data_dir,
            bus.nats_client(),
            &config.nats_prefix,
            config.nats_replicas,
        )
        .await?;
        tasks.push(tokio::spawn(crate::anchor::publish_heads(
            audit.clone(),
            anchor_key,
            heads,
            Duration::from_secs(config.audit_anchor_seconds),
            background.clone(),
        )));
        let cors = crate::http::cors::Origins::parse(&config.cors_origins)
            .map_err(|e| anyhow::anyhow!("AURORA_CORS_ORIGINS: {e}"))?;
        let proxies = crate::limits::TrustedProxies::parse(&config.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("AURORA_TRUSTED_PROXIES: {e}"))?;
        let limits = match crate::limits::configured(&config)? {
            Some(policies) => {
                let proxies = proxies.clone();
                // Blocks in force are known before the first request is served.
                let blocks = Arc::new(Blocks::default());
                let blocks_model = Arc::new(InMemory::new(blocks.clone(), db.clone()));
                read_models.push(blocks_model.clone());
                if let Some(followers) = &followers {
                    tasks.push(tokio::spawn(blocks_model.follow_store(
                        followers.clone(),
                        crate::replicated::STORE_POLL,
                        background.clone(),
                    )));
                }
                let metrics = metrics.rate_limits.clone();
                let mut limits = Limits::start(policies, proxies, clients, blocks, metrics).await?;
                if let Some(client) = bus.nats_client() {
                    let subject = bus.shared().subjects().rate_limit_consumption();
                    limits.share(client, subject, background.clone()).await?;
                }
                if config.heygen_key().is_some() && limits.charged_class("generations").is_none() {
                    tracing::warn!(
                        "HeyGen is configured but the rate-limit policy has no charged \
                         \"generations\" class: paid generations are not limited \
                         (see the presets in domain/src/limits/policy.rs)"
                    );
                }
                Some(limits)
            }
            None => None,
        };
        let probe = match &config.database_url {
            Some(url) => Database::postgres(url, 1)
                .await
                .with_context(|| format!("connecting to {}", redact(url)))?,
            None => db.clone(),
        };
        let (supervisor, statuses) = projections::start(
            read_models,
            bus.shared(),
            SupervisorSettings::default(),
            metrics.projections.clone(),
        )
        .await
        .context("starting the projections")?;
        for name in [Revocations::NAME, Blocks::NAME] {
            if statuses.report().contains_key(name) && !statuses.running(name) {
                supervisor.stop(None);
                anyhow::bail!("loading the {name} failed: see the log");
            }
        }
        let listener = bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(
            AppState::new(
                config,
                db,
                bus,
                (run_commands, media),
                identity,
                (runs, users, audit),
                metrics,
            )
            .with_limits(limits)
            .with_proxies(proxies)
            .with_cors(cors)
            .with_probe(probe)
            .with_engine(engine)
            .with_projections(statuses)
            .with_revocations_current(revocations_current),
        );
        tasks.push(tokio::spawn({
            let stop = background.clone();
            async move {
                stop.cancelled().await;
                supervisor.stop(None);
            }
        }));
        if let Some(callout) = crate::subscribers::start(&state).await? {
            let stop = background.clone();
            tasks.push(tokio::spawn(async move {
                stop.cancelled().await;
                callout.stop().await;
            }));
        }
        tasks.push(tokio::spawn(
            state
                .projections
                .clone()
                .run(state.db.clone(), background.clone()),
        ));
        Ok(Self {
            state,
            listener,
            port,
            shutdown: CancellationToken::new(),
            background,
            tasks,
        })
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state (tests inspect it).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Cancel it to stop: `/ready` turns 503, in-flight requests drain (up to the drain
    /// timeout), then the relay and consumers stop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains and stops.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let routes = crate::http::routes(self.state.clone());
        let signal = {
            let token = self.shutdown.clone();
            let state = self.state.clone();
            async move {
                token.cancelled().await;
                state.start_draining();
                tracing::info!("shutting down: draining in-flight requests");
            }
        };
        let console = format!(
            "{}/console/",
            crate::banner::base_url(self.state.config.listen, self.port)
        );
        tracing::info!(port = self.port, console, "aurora is listening");
        let config = &self.state.config;
        let limits = crate::server::Limits {
            head_timeout: config.head_timeout(),
            // Past four times the routes' own limit hyper refuses the head itself.
            head_buffer: config.max_header_bytes.saturating_mul(4),
            request_timeout: config.request_timeout(),
            max_connections: config.max_connections,
            max_connections_per_client: config.max_connections_per_client,
            exempt: aurora_domain::net::IpRanges::parse(&config.trusted_proxies)
                .map_err(|e| anyhow::anyhow!("AURORA_TRUSTED_PROXIES: {e}"))?,
        };
        let on_timeout: crate::server::OnTimeout = {
            let state = self.state.clone();
            Arc::new(move |request| crate::http::timed_out(&state, request))
        };
        let server = crate::server::serve(
            self.listener,
            warp::service(routes),
            limits,
            self.state.metrics.connections.clone(),
            on_timeout,
            signal,
        );
        // The engine stops as soon as shutdown starts, not after the HTTP drain: no new run
        // is taken, and the runs in flight go back to the queue at once for another replica.
        let engine_stop = {
            let token = self.shutdown.clone();
            let state = self.state.clone();
            tokio::spawn(async move {
                token.cancelled().await;
                let engine = state
                    .engine
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(engine) = engine {
                    engine.stop().await;
                }
            })
        };
        let drain_timeout = self.state.config.drain_timeout();
        let drain_deadline = async {
            self.shutdown.cancelled().await;
            tokio::time::sleep(drain_timeout).await;
        };
        tokio::select! {
            () = server => {}
            () = drain_deadline => {
                tracing::warn!(?drain_timeout, "drain timed out; aborting the remaining connections");
            }
        }
        let _ = engine_stop.await;
        self.background.cancel();
        if let Some(limits) = &self.state.limits {
            limits.stop();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        // What this replica published on plain subjects (progress, revocations …) leaves
        // before the connection closes with the process.
        if let Some(client) = self.state.bus.nats_client() {
            match tokio::time::timeout(Duration::from_secs(5), client.flush()).await {
                Ok(Ok(())) => tracing::info!("nats connection flushed"),
                Ok(Err(error)) => tracing::warn!(%error, "flushing the nats connection failed"),
                Err(_) => tracing::warn!("flushing the nats connection timed out"),
            }
        }
        // Connections still lent out (a request abandoned at the drain's deadline) are not
        // waited for beyond this.
        self.state.probe.close().await;
        if tokio::time::timeout(Duration::from_secs(5), self.state.db.close())
            .await
            .is_err()
        {
            tracing::warn!("closing the database pool timed out");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_setting() {
        let good = Config::embedded("/tmp/aurora");
        check(&good).expect("the embedded defaults are valid");
        type Spoil = fn(&mut Config);
        let cases: [(Spoil, &str); 10] = [
            (|c| c.log = Some("info,=,[".into()), "AURORA_LOG"),
            (
                |c| c.cors_origins = "not an origin".into(),
                "AURORA_CORS_ORIGINS",
            ),
            (
                |c| c.trusted_proxies = "10.0.0.0/99".into(),
                "AURORA_TRUSTED_PROXIES",
            ),
            (
                |c| c.tier_concurrent_runs = "gold=3".into(),
                "AURORA_TIER_CONCURRENT_RUNS",
            ),
            (
                |c| c.database_url = Some("mysql://u:pw@db/x".into()),
                "DATABASE_URL",
            ),
            (|c| c.nats_prefix = "a.b".into(), "AURORA_NATS_PREFIX"),
            (
                |c| c.request_timeout_seconds = 0,
                "AURORA_REQUEST_TIMEOUT_SECONDS",
            ),
            (
                |c| c.head_timeout_seconds = 0,
                "AURORA_HEAD_TIMEOUT_SECONDS",
            ),
            (|c| c.max_connections = 1, "AURORA_MAX_CONNECTIONS"),
            (
                |c| c.identity_webhook_secrets = Some("!!!".into()),
                "AURORA_IDENTITY_WEBHOOK_SECRETS",
            ),
        ];
        for (spoil, setting) in cases {
            let mut config = good.clone();
            spoil(&mut config);
            let error = check(&config).expect_err(setting).to_string();
            assert!(error.starts_with(setting), "{setting}: {error}");
            assert!(!error.contains("pw@"), "no password in {error}");
        }
    }
}
