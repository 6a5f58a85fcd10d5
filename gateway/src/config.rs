// (Long: every setting of `aurora serve` is one field here with its flag, variable, default
// and check, so that `.env.example`, `config check` and the docs read one list.)
//! Settings, from flags, environment (`AURORA_*`, `DATABASE_URL`, `NATS_URL`) and an optional
//! TOML file (`--config` / `AURORA_CONFIG`), in that order of precedence. `.env.example` lists
//! every variable with its default; the file's keys are the settings' names in snake case
//! (`listen`, `database_url`, `log_dir` …), see `deploy/aurora.example.toml`.
//!
//! (Long by its settings: one documented field each — the `--help`, `.env.example` and
//! `aurora config check` read them — plus their checks and a third of tests. A leaf: it
//! imports nothing from `http` or `limits`.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, CommandFactory};
use serde::Serialize;

/// Everything `aurora serve` needs.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Config {
    /// A TOML settings file: keys are these settings' names in snake case. The environment
    /// and flags override it.
    #[arg(long = "config", env = "AURORA_CONFIG")]
    pub config_file: Option<PathBuf>,

    /// Log filter: a level, or levels per module (`info,aurora_gateway=debug`). Unset:
    /// `RUST_LOG`, else `info,warp=warn`.
    #[arg(long, env = "AURORA_LOG")]
    pub log: Option<String>,

    /// `aurora serve` also writes its logs to files in this directory: `aurora.<date>.log`
    /// (every line) and `aurora-error.<date>.log` (errors only), a new file each day (UTC).
    /// Unset: `<data dir>/logs`. `off`: the console only (e.g. in Kubernetes, where the
    /// platform collects stdout).
    #[arg(long, env = "AURORA_LOG_DIR")]
    pub log_dir: Option<PathBuf>,

    /// Days of log files kept besides today's.
    #[arg(long, env = "AURORA_LOG_RETENTION_DAYS", default_value_t = 30)]
    pub log_retention_days: u32,

    /// A day's log file continues in a new one (`aurora.<date>.1.log` …) past this size.
    #[arg(long, env = "AURORA_LOG_FILE_MAX_BYTES", default_value_t = 100 << 20)]
    pub log_file_max_bytes: u64,

    /// Log files of one kind together: the oldest are deleted past this size.
    #[arg(long, env = "AURORA_LOG_MAX_BYTES", default_value_t = 2 << 30)]
    pub log_max_bytes: u64,

    /// Address to listen on.
    #[arg(long, env = "AURORA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where embedded mode keeps its data (SQLite file).
    #[arg(long, env = "AURORA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Postgres URL. Without it, Aurora stores events in SQLite under the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    #[serde(serialize_with = "redacted_url")]
    pub database_url: Option<String>,

    /// NATS URL, or a comma-separated list of a cluster's servers
    /// (`nats://a:4222,nats://b:4222`). Without it, Aurora uses an in-process bus.
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    #[serde(serialize_with = "redacted_url")]
    pub nats_url: Option<String>,

    /// Subject prefix and stream name stem on NATS (one token).
    #[arg(long, env = "AURORA_NATS_PREFIX", default_value = "aurora")]
    pub nats_prefix: String,

    /// Copies JetStream keeps of Aurora's streams: 1 on a single server, 3 on a 3-node
    /// cluster (a node's disk can then be lost). At most the cluster's size; existing
    /// streams keep the count they were created with until an operator changes it.
    #[arg(long, env = "AURORA_NATS_REPLICAS", default_value_t = 1)]
    pub nats_replicas: usize,

    /// Largest accepted JSON request body, in bytes (uploads have their own limit).
    #[arg(long, env = "AURORA_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: u64,

    /// Largest accepted request head (all header names and values), in bytes: 431 past it.
    #[arg(long, env = "AURORA_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Longest a request may take to be answered, in seconds: 503 past it. Uploads are
    /// exempt (bounded by their size); streamed responses (downloads, exports, event
    /// streams) count only until their head is sent.
    #[arg(long, env = "AURORA_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,

    /// Time a connection has to send a request's head, in seconds, from its start and again
    /// after each response: a connection silent that long (idle keep-alive included) is
    /// closed.
    #[arg(long, env = "AURORA_HEAD_TIMEOUT_SECONDS", default_value_t = 10)]
    pub head_timeout_seconds: u64,

    /// Connections open at once; past it a new connection is answered 503 and closed.
    #[arg(long, env = "AURORA_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Connections one client (an address; IPv6 by its /64) may hold open at once;
    /// `AURORA_TRUSTED_PROXIES` are exempt. Past it a new connection is answered 503.
    #[arg(long, env = "AURORA_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub max_connections_per_client: usize,

    /// Postgres connections in the pool.
    #[arg(long, env = "AURORA_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,

    /// Group-commit writers: transactions appending events at once (Postgres; SQLite
    /// always uses one). Concurrent commands share these transactions.
    #[arg(long, env = "AURORA_DB_WRITERS", default_value_t = aurora_projections::commands::DEFAULT_WRITERS)]
    pub db_writers: usize,

    /// Directory of root keys (`root-<id>.pem`; the highest id signs). Default:
    /// `<data dir>/keys`, created with a first key if missing. In production mount the
    /// same secret on every replica.
    #[arg(long, env = "AURORA_ROOT_KEYS_DIR")]
    pub root_keys_dir: Option<PathBuf>,

    /// Directory of the audit signing key (`audit-signing.pem`), which signs the audit
    /// chain's heads published outside the database. Default: `<data dir>/audit-key`,
    /// created if missing. In production mount a secret the database's users cannot read.
    #[arg(long, env = "AURORA_AUDIT_KEY_DIR")]
    pub audit_key_dir: Option<PathBuf>,

    /// Seconds between signed publications of the audit chain's head (while it moves):
    /// the window in which a database writer could rewrite history unseen.
    #[arg(long, env = "AURORA_AUDIT_ANCHOR_SECONDS", default_value_t = 10)]
    pub audit_anchor_seconds: u64,

    /// Secrets of the identity webhook (`whsec_<base64>`, comma-separated while rotating).
    /// Unset: `POST /api/v1/webhooks/identity` answers 404.
    #[arg(long, env = "AURORA_IDENTITY_WEBHOOK_SECRETS", hide_env_values = true)]
    #[serde(serialize_with = "hidden")]
    pub identity_webhook_secrets: Option<String>,

    /// The NATS auth callout (nats-server >= 2.10; see `nats/README.md`): this replica
    /// answers `$SYS.REQ.USER.AUTH` connected as the server's callout user, e.g.
    /// `nats://callout:<password>@nats:4222`, so that users subscribe with their own
    /// tokens. Unset: no callout. Needs `AURORA_NATS_CALLOUT_ISSUER_SEED`.
    #[arg(long, env = "AURORA_NATS_CALLOUT_URL", hide_env_values = true)]
    #[serde(serialize_with = "hidden")]
    pub nats_callout_url: Option<String>,

    /// The callout's issuer: an account nkey seed (`SA…`), or `@<path>` of a file holding
    /// one; its public key is the server's `auth_callout.issuer` (`aurora admin nats-issuer`
    /// makes a pair).
    #[arg(long, env = "AURORA_NATS_CALLOUT_ISSUER_SEED", hide_env_values = true)]
    #[serde(serialize_with = "hidden")]
    pub nats_callout_issuer_seed: Option<String>,

    /// A system-account user's URL (e.g. `nats://sys:<password>@nats:4222`): the callout
    /// cuts off, as that user, a connection whose token was revoked. Unset: such a
    /// connection ends when its user JWT expires (at most 10 minutes).
    #[arg(long, env = "AURORA_NATS_SYSTEM_URL", hide_env_values = true)]
    #[serde(serialize_with = "hidden")]
    pub nats_system_url: Option<String>,

    /// The account users' connections land in (the server's configuration defines it).
    #[arg(long, env = "AURORA_NATS_USERS_ACCOUNT", default_value = "USERS")]
    pub nats_users_account: String,

    /// Rate limits: `presets` (the product write-ups' defaults), `off`, or the path of a
    /// TOML policy file (see `domain/src/limits/policy.rs`).
    #[arg(long, env = "AURORA_RATE_LIMITS", default_value = "presets")]
    pub rate_limits: String,

    /// Proxies whose `X-Forwarded-For` is believed: IPs or CIDR ranges, comma-separated.
    #[arg(long, env = "AURORA_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// Origins whose pages may call the API from a browser (CORS): comma-separated
    /// `scheme://host[:port]`, `*` for any (credentials are never allowed: tokens travel in
    /// headers), empty for none.
    #[arg(long, env = "AURORA_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,

    /// Lifetime of session tokens from login, in seconds.
    #[arg(long, env = "AURORA_SESSION_TTL_SECONDS", default_value_t = 3600)]
    pub session_ttl_seconds: u64,

    /// How long in-flight requests may take to finish after SIGTERM, in seconds.
    #[arg(long, env = "AURORA_DRAIN_SECONDS", default_value_t = 25)]
    pub drain_seconds: u64,

    /// A projection behind the store whose checkpoint has not moved for this many seconds
    /// is stuck: `/health` turns degraded.
    #[arg(long, env = "AURORA_PROJECTION_STUCK_SECONDS", default_value_t = 60)]
    pub projection_stuck_seconds: u64,

    /// Deployment environment reported by `/health`.
    #[arg(long, env = "AURORA_ENVIRONMENT", default_value = "development")]
    pub environment: String,

    /// Execute pipeline runs on this replica (`false`: an API-only replica).
    #[arg(long, env = "AURORA_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub worker: bool,

    /// Where uploads and run outputs are kept (default `<data dir>/artifacts`; a volume
    /// shared by every replica in production).
    #[arg(long, env = "AURORA_ARTIFACTS_DIR")]
    pub artifacts_dir: Option<PathBuf>,

    /// Largest upload accepted by `POST /api/v1/media`, in bytes.
    #[arg(long, env = "AURORA_MAX_UPLOAD_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Transcode workers: ffmpeg processes at once on this replica (default: the cores).
    #[arg(long, env = "AURORA_TRANSCODE_WORKERS")]
    pub transcode_workers: Option<usize>,

    /// Runs this replica executes at once (default: twice the transcode workers).
    #[arg(long, env = "AURORA_MAX_ACTIVE_RUNS")]
    pub max_active_runs: Option<usize>,

    /// Attempts of a step before its run fails.
    #[arg(long, env = "AURORA_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,

    /// Pause before a step's second attempt, in milliseconds; doubles with each further one.
    #[arg(long, env = "AURORA_RETRY_BACKOFF_MS", default_value_t = 1000)]
    pub retry_backoff_ms: u64,

    /// Longest a step may take, in seconds.
    #[arg(long, env = "AURORA_STEP_TIMEOUT_SECONDS", default_value_t = 3600)]
    pub step_timeout_seconds: u64,

    /// How long a run stays with a replica that stopped reporting progress on it before
    /// another takes it over, in seconds.
    #[arg(long, env = "AURORA_RUN_ACK_WAIT_SECONDS", default_value_t = 30)]
    pub run_ack_wait_seconds: u64,

    /// How often the janitor kills tools whose Aurora is gone (a replica killed on this host)
    /// and removes partial files no live attempt will finish, in seconds. It also runs once
    /// when the engine starts.
    #[arg(long, env = "AURORA_SWEEP_INTERVAL_SECONDS", default_value_t = 60)]
    pub sweep_interval_seconds: u64,

    /// The ffmpeg binary.
    #[arg(long, env = "AURORA_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,

    /// The ffprobe binary.
    #[arg(long, env = "AURORA_FFPROBE", default_value = "ffprobe")]
    pub ffprobe: PathBuf,

    /// Largest input fetched from a URL, in bytes.
    #[arg(long, env = "AURORA_FETCH_MAX_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub fetch_max_bytes: u64,

    /// Longest a URL fetch may take, in seconds.
    #[arg(long, env = "AURORA_FETCH_TIMEOUT_SECONDS", default_value_t = 300)]
    pub fetch_timeout_seconds: u64,

    /// Non-public address ranges URL inputs may be fetched from all the same (CIDRs,
    /// comma-separated). Empty: loopback, private, link-local … are refused.
    #[arg(long, env = "AURORA_FETCH_ALLOW", default_value = "")]
    pub fetch_allow: String,

    /// HeyGen's API key: generate steps (`{"kind": "generate", "provider": "heygen"}`) are
    /// refused without one. Never logged, never in events or problems.
    #[arg(long, env = "AURORA_HEYGEN_API_KEY", hide_env_values = true)]
    #[serde(serialize_with = "hidden")]
    pub heygen_api_key: Option<String>,

    /// HeyGen's API address (a stand-in's in tests).
    #[arg(
        long,
        env = "AURORA_HEYGEN_BASE_URL",
        default_value = "https://api.heygen.com"
    )]
    pub heygen_base_url: String,

    /// HeyGen's API version: `v3` (`POST /v3/videos`), or `v2` (`POST /v2/video/generate`,
    /// retired by HeyGen on 2026-11-01; no idempotency key, so an ambiguous creation is not
    /// retried).
    #[arg(long, env = "AURORA_HEYGEN_API", default_value = "v3")]
    pub heygen_api: String,

    /// Secrets of the endpoint registered for HeyGen's webhooks (`POST
    /// /v3/webhooks/endpoints` answers it), comma-separated while rotating. Unset: `POST
    /// /api/v1/webhooks/heygen` answers 404, and generate steps rely on polling alone.
    #[arg(long, env = "AURORA_HEYGEN_WEBHOOK_SECRET", hide_env_values = true)]
    #[serde(serialize_with = "hidden")]
    pub heygen_webhook_secret: Option<String>,

    /// Hosts a generated video may be downloaded from (`*.suffix` or exact names).
    #[arg(
        long,
        env = "AURORA_HEYGEN_MEDIA_HOSTS",
        default_value = "*.heygen.ai,*.heygen.com"
    )]
    pub heygen_media_hosts: String,

    /// Longest a generate step waits for its video, in seconds, counted from when the
    /// provider took the request over every attempt; past it the run fails.
    #[arg(long, env = "AURORA_GENERATE_TIMEOUT_SECONDS", default_value_t = 3600)]
    pub generate_timeout_seconds: u64,

    /// First pause between polls of a generation's status, in milliseconds; doubles up to
    /// a minute. A webhook ends the pause at once.
    #[arg(long, env = "AURORA_GENERATE_POLL_MS", default_value_t = 5000)]
    pub generate_poll_ms: u64,

    /// Runs a user may have executing at once, by tier.
    #[arg(
        long,
        env = "AURORA_TIER_CONCURRENT_RUNS",
        default_value = "free=1,pro=4,enterprise=16"
    )]
    pub tier_concurrent_runs: String,

    /// This replica's name in run events (default: host name and process id).
    #[arg(long, env = "AURORA_REPLICA_ID")]
    pub replica_id: Option<String>,
}

impl Config {
    /// Embedded defaults with everything under `data_dir`, listening on an ephemeral port.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            config_file: None,
            log: None,
            log_dir: None,
            log_retention_days: 30,
            log_file_max_bytes: 100 << 20,
            log_max_bytes: 2 << 30,
            max_header_bytes: 16 * 1024,
            request_timeout_seconds: 30,
            head_timeout_seconds: 10,
            max_connections: 1024,
            max_connections_per_client: 256,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            database_url: None,
            nats_url: None,
            nats_prefix: "aurora".to_string(),
            nats_replicas: 1,
            max_body_bytes: 64 * 1024,
            db_max_connections: 32,
            db_writers: aurora_projections::commands::DEFAULT_WRITERS,
            root_keys_dir: None,
            audit_key_dir: None,
            audit_anchor_seconds: 10,
            identity_webhook_secrets: None,
            nats_callout_url: None,
            nats_callout_issuer_seed: None,
            nats_system_url: None,
            nats_users_account: "USERS".to_string(),
            // Tests exercise limits on purpose, with their own policies.
            rate_limits: "off".to_string(),
            trusted_proxies: String::new(),
            cors_origins: String::new(),
            session_ttl_seconds: 3600,
            drain_seconds: 25,
            projection_stuck_seconds: 60,
            environment: "test".to_string(),
            // Tests that execute runs turn the worker on.
            worker: false,
            artifacts_dir: None,
            max_upload_bytes: 64 * 1024 * 1024,
            transcode_workers: None,
            max_active_runs: None,
            max_attempts: 3,
            retry_backoff_ms: 200,
            step_timeout_seconds: 300,
            run_ack_wait_seconds: 30,
            sweep_interval_seconds: 60,
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            fetch_max_bytes: 64 * 1024 * 1024,
            fetch_timeout_seconds: 60,
            fetch_allow: String::new(),
            tier_concurrent_runs: "free=1,pro=4,enterprise=16".into(),
            heygen_api_key: None,
            heygen_base_url: "https://api.heygen.com".into(),
            heygen_api: "v3".into(),
            heygen_webhook_secret: None,
            heygen_media_hosts: "*.heygen.ai,*.heygen.com".into(),
            generate_timeout_seconds: 3600,
            generate_poll_ms: 5000,
            replica_id: None,
        }
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    /// The head (and idle connection) deadline.
    pub fn head_timeout(&self) -> Duration {
        Duration::from_secs(self.head_timeout_seconds)
    }

    /// The checks of the settings that need nothing but the settings: the first bad one is
    /// an error naming it. The settings other modules parse (log filter, CORS origins,
    /// proxies, webhook secrets, rate-limit policies) are checked with these by
    /// `startup::check`, so that this module stays a leaf.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.log_retention_days > 36_500 {
            anyhow::bail!("AURORA_LOG_RETENTION_DAYS must be at most 36500 (a hundred years)");
        }
        if self.log_file_max_bytes < 4096 {
            anyhow::bail!("AURORA_LOG_FILE_MAX_BYTES must be at least 4096");
        }
        if self.log_max_bytes < self.log_file_max_bytes {
            anyhow::bail!("AURORA_LOG_MAX_BYTES must be at least AURORA_LOG_FILE_MAX_BYTES");
        }
        if self.max_header_bytes < 1024 {
            anyhow::bail!("AURORA_MAX_HEADER_BYTES must be at least 1024");
        }
        if self.max_body_bytes < 1024 {
            anyhow::bail!("AURORA_MAX_BODY_BYTES must be at least 1024");
        }
        if self.request_timeout_seconds == 0 {
            anyhow::bail!("AURORA_REQUEST_TIMEOUT_SECONDS must be at least 1");
        }
        if !(1..=300).contains(&self.head_timeout_seconds) {
            anyhow::bail!("AURORA_HEAD_TIMEOUT_SECONDS must be between 1 and 300");
        }
        if !(1..=3600).contains(&self.audit_anchor_seconds) {
            anyhow::bail!("AURORA_AUDIT_ANCHOR_SECONDS must be between 1 and 3600");
        }
        if self.max_connections < 16 {
            anyhow::bail!("AURORA_MAX_CONNECTIONS must be at least 16");
        }
        if self.max_connections_per_client == 0 {
            anyhow::bail!("AURORA_MAX_CONNECTIONS_PER_CLIENT must be at least 1");
        }
        if self.db_max_connections == 0 || self.db_writers == 0 {
            anyhow::bail!("AURORA_DB_MAX_CONNECTIONS and AURORA_DB_WRITERS must be at least 1");
        }
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                anyhow::bail!(
                    "DATABASE_URL must be a postgres:// URL (got {}); unset it for embedded SQLite",
                    redact(url)
                );
            }
        }
        if let Some(url) = &self.nats_url {
            for server in url.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
                    .iter()
                    .any(|scheme| server.starts_with(scheme));
                if !scheme_ok {
                    anyhow::bail!(
                        "NATS_URL must be a nats://, tls://, ws:// or wss:// URL, or a \
                         comma-separated list of them (got {})",
                        redact(server)
                    );
                }
            }
        }
        if !(1..=5).contains(&self.nats_replicas) {
            anyhow::bail!("AURORA_NATS_REPLICAS must be between 1 and 5 (JetStream's limit)");
        }
        let token_ok = !self.nats_prefix.is_empty()
            && self
                .nats_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !token_ok {
            anyhow::bail!("AURORA_NATS_PREFIX must be one token of letters, digits, '-' or '_'");
        }
        self.engine_settings()?;
        self.tier_limits()?;
        Ok(())
    }

    /// Where `aurora serve` writes log files: `AURORA_LOG_DIR`, else `<data dir>/logs`;
    /// `None` when it is `off`.
    pub fn log_files(&self) -> Option<PathBuf> {
        match &self.log_dir {
            Some(dir) if dir.as_os_str() == "off" => None,
            Some(dir) => Some(dir.clone()),
            None => Some(self.data_dir.join("logs")),
        }
    }

    /// The artifact directory.
    pub fn artifacts(&self) -> PathBuf {
        self.artifacts_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("artifacts"))
    }

    /// The engine's settings; a bad value is an error naming the setting.
    pub fn engine_settings(&self) -> anyhow::Result<aurora_actors::EngineSettings> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = self.transcode_workers.unwrap_or(cores);
        if workers == 0 {
            anyhow::bail!("AURORA_TRANSCODE_WORKERS must be at least 1");
        }
        if self.max_attempts == 0 {
            anyhow::bail!("AURORA_MAX_ATTEMPTS must be at least 1");
        }
        if self.run_ack_wait_seconds < 3 {
            anyhow::bail!("AURORA_RUN_ACK_WAIT_SECONDS must be at least 3");
        }
        if self.step_timeout_seconds == 0 {
            anyhow::bail!("AURORA_STEP_TIMEOUT_SECONDS must be at least 1");
        }
        if self.sweep_interval_seconds == 0 {
            anyhow::bail!("AURORA_SWEEP_INTERVAL_SECONDS must be at least 1");
        }
        let allow = aurora_domain::net::IpRanges::parse(&self.fetch_allow)
            .map_err(|e| anyhow::anyhow!("AURORA_FETCH_ALLOW: {e}"))?;
        Ok(aurora_actors::EngineSettings {
            workers,
            max_active_runs: self.max_active_runs.unwrap_or(workers * 2).max(1),
            max_attempts: self.max_attempts,
            backoff: Duration::from_millis(self.retry_backoff_ms),
            step_timeout: Duration::from_secs(self.step_timeout_seconds),
            ack_wait: Duration::from_secs(self.run_ack_wait_seconds),
            sweep_interval: Duration::from_secs(self.sweep_interval_seconds),
            run_restarts: (3, Duration::from_secs(60)),
            worker_restarts: (10, Duration::from_secs(60)),
            fetch: aurora_actors::fetch::FetchSettings {
                max_bytes: self.fetch_max_bytes,
                timeout: Duration::from_secs(self.fetch_timeout_seconds),
                allow,
            },
            generate: self.generate_settings()?,
        })
    }

    /// Generate steps' settings; a bad value is an error naming the setting.
    pub fn generate_settings(&self) -> anyhow::Result<aurora_actors::generate::GenerateSettings> {
        use aurora_actors::generate::{ApiVersion, HostPatterns};
        if self.generate_timeout_seconds == 0 {
            anyhow::bail!("AURORA_GENERATE_TIMEOUT_SECONDS must be at least 1");
        }
        if self.generate_poll_ms < 10 {
            anyhow::bail!("AURORA_GENERATE_POLL_MS must be at least 10");
        }
        let api = ApiVersion::parse(&self.heygen_api)
            .map_err(|e| anyhow::anyhow!("AURORA_HEYGEN_API: {e}"))?;
        let media_hosts = HostPatterns::parse(&self.heygen_media_hosts)
            .map_err(|e| anyhow::anyhow!("AURORA_HEYGEN_MEDIA_HOSTS: {e}"))?;
        let base_url = aurora_actors::generate::heygen::base_url(&self.heygen_base_url)
            .map_err(|e| anyhow::anyhow!("AURORA_HEYGEN_BASE_URL: {e}"))?;
        let heygen = self
            .heygen_key()
            .map(|api_key| aurora_actors::generate::HeygenSettings {
                base_url,
                api_key,
                api,
            });
        let poll = Duration::from_millis(self.generate_poll_ms);
        Ok(aurora_actors::generate::GenerateSettings {
            heygen,
            timeout: Duration::from_secs(self.generate_timeout_seconds),
            poll,
            poll_max: Duration::from_secs(60).max(poll),
            media_hosts,
        })
    }

    /// HeyGen's API key, if one is set (an empty one is none).
    pub fn heygen_key(&self) -> Option<aurora_actors::generate::ApiKey> {
        self.heygen_api_key
            .as_deref()
            .and_then(aurora_actors::generate::ApiKey::new)
    }

    /// Runs a user may have executing at once, by tier.
    pub fn tier_limits(&self) -> anyhow::Result<aurora_actors::users::TierLimits> {
        aurora_actors::users::TierLimits::parse(&self.tier_concurrent_runs)
            .map_err(|e| anyhow::anyhow!("AURORA_TIER_CONCURRENT_RUNS: {e}"))
    }

    /// This replica's name.
    pub fn replica(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "aurora".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// Where the audit signing key is, and whether Aurora may create it there.
    pub fn audit_key(&self) -> (PathBuf, bool) {
        match &self.audit_key_dir {
            Some(dir) => (dir.clone(), false),
            None => (self.data_dir.join("audit-key"), true),
        }
    }

    /// The root keys' directory, and whether Aurora may create the first key there.
    pub fn root_keys(&self) -> (PathBuf, bool) {
        match &self.root_keys_dir {
            Some(dir) => (dir.clone(), false),
            None => (self.data_dir.join("keys"), true),
        }
    }

    /// How long a projection may lag without progress before it counts as stuck.
    pub fn projection_stuck_after(&self) -> Duration {
        Duration::from_secs(self.projection_stuck_seconds)
    }

    /// The drain timeout.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_seconds)
    }
}

/// The settings file named on the command line (`--config F`, `--config=F`), else by
/// `AURORA_CONFIG`.
pub fn settings_file(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("AURORA_CONFIG").map(PathBuf::from)
}

/// A settings file's entries as environment variables, each value checked as its setting
/// would check it. Errors name the file and the setting.
pub fn read_settings_file(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let name = path.display();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the settings file {name}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow::anyhow!("settings file {name}: {e}"))?;
    let command = Settings::command();
    let mut entries = Vec::new();
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == key.as_str() && key != "config_file")
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "settings file {name}: unknown setting `{key}` (settings are named like \
                     `listen`, `database_url`, `log_dir`; see .env.example)"
                )
            })?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => anyhow::bail!(
                "settings file {name}: `{key}` must be a string, a number or a boolean, not {}",
                other.type_str()
            ),
        };
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            anyhow::bail!("settings file {name}: `{key}` cannot be set from a file");
        };
        let env = env.to_string_lossy().into_owned();
        // The setting's own parser, alone (no other setting's environment involved).
        clap::Command::new("aurora")
            .arg(arg.clone())
            .try_get_matches_from(["aurora".to_string(), format!("--{long}={text}")])
            .map_err(|e| {
                let message = e.to_string();
                let first = message.lines().next().unwrap_or_default();
                anyhow::anyhow!(
                    "settings file {name}: `{key}` ({env}): {}",
                    first.trim_start_matches("error: ")
                )
            })?;
        entries.push((env, text));
    }
    Ok(entries)
}

/// Applies a settings file beneath the environment: each entry becomes its variable unless
/// the environment sets it already. Call it before any thread starts.
pub fn apply_settings_file(path: &std::path::Path) -> anyhow::Result<()> {
    for (env, value) in read_settings_file(path)? {
        // The environment wins; for the log filter, `RUST_LOG` is the environment too.
        let set = std::env::var_os(&env).is_some()
            || (env == "AURORA_LOG" && std::env::var_os("RUST_LOG").is_some());
        if !set {
            std::env::set_var(env, value);
        }
    }
    Ok(())
}

/// The settings alone, as a command (to look their flags and variables up).
#[derive(Debug, clap::Parser)]
struct Settings {
    #[command(flatten)]
    config: Config,
}

fn redacted_url<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    url.as_deref().map(redact).serialize(s)
}

fn hidden<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    value.as_ref().map(|_| "[redacted]").serialize(s)
}

/// A URL for logs and messages: credentials (`user:password@`) and query parameters that
/// carry secrets (`?password=…`, `sslpassword`, `token` …) replaced by `***`. A
/// comma-separated list of URLs (a NATS cluster) is redacted URL by URL; a comma not
/// followed by a scheme (`postgres://u:p@h1,h2/db`) belongs to the URL before it.
pub fn redact(url: &str) -> String {
    let mut urls: Vec<String> = Vec::new();
    for part in url.split(',') {
        match urls.last_mut() {
            Some(last) if !part.contains("://") => {
                last.push(',');
                last.push_str(part);
            }
            _ => urls.push(part.to_string()),
        }
    }
    urls.iter()
        .map(|one| redact_one(one))
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_one(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _))
                        if ["pass", "pwd", "secret", "token", "key"]
                            .iter()
                            .any(|s| key.to_ascii_lowercase().contains(s)) =>
                    {
                        format!("{key}=***")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    fn file(text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("aurora-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).expect("writing a settings file");
        path
    }

    #[test]
    fn a_settings_file_becomes_variables_and_bad_entries_are_named() {
        let good = file("listen = \"0.0.0.0:9000\"\nworker = false\nmax_attempts = 5\nlog_dir = \"/var/log/aurora\"\n");
        let mut entries = super::read_settings_file(&good).expect("a good file");
        entries.sort();
        assert_eq!(
            entries,
            [
                ("AURORA_LISTEN".to_string(), "0.0.0.0:9000".to_string()),
                ("AURORA_LOG_DIR".into(), "/var/log/aurora".into()),
                ("AURORA_MAX_ATTEMPTS".into(), "5".into()),
                ("AURORA_WORKER".into(), "false".into()),
            ]
        );
        for (text, expected) in [
            ("lisen = \"0.0.0.0:9000\"", "unknown setting `lisen`"),
            (
                "listen = \"nowhere\"",
                "`listen` (AURORA_LISTEN): invalid value 'nowhere'",
            ),
            (
                "max_attempts = -1",
                "`max_attempts` (AURORA_MAX_ATTEMPTS): invalid value '-1'",
            ),
            (
                "worker = \"maybe\"",
                "`worker` (AURORA_WORKER): invalid value 'maybe'",
            ),
            (
                "listen = [1, 2]",
                "`listen` must be a string, a number or a boolean, not array",
            ),
            (
                "config_file = \"other.toml\"",
                "unknown setting `config_file`",
            ),
            ("listen = ", "settings file"),
        ] {
            let path = file(text);
            let error = super::read_settings_file(&path)
                .expect_err(text)
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
        }
        let missing = std::path::Path::new("/nonexistent/aurora.toml");
        let error = format!(
            "{:#}",
            super::read_settings_file(missing).expect_err("missing")
        );
        assert!(error.contains("/nonexistent/aurora.toml"), "{error}");
    }

    #[test]
    fn env_example_lists_every_setting_and_the_example_file_is_valid() {
        use clap::CommandFactory;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let example = std::fs::read_to_string(root.join(".env.example")).expect(".env.example");
        let command = super::Settings::command();
        for arg in command.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let env = env.to_string_lossy();
            let listed = example.lines().any(|line| {
                line.trim_start_matches("# ")
                    .starts_with(&format!("{env}="))
            });
            assert!(listed, ".env.example lists {env}");
        }
        let file = root.join("deploy/aurora.example.toml");
        let entries = super::read_settings_file(&file).expect("the example settings file");
        assert!(entries.iter().any(|(env, _)| env == "AURORA_LOG_DIR"));
    }

    #[test]
    fn the_config_file_flag_is_found_anywhere_on_the_line() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            super::settings_file(&args(&["aurora", "serve", "--config", "a.toml"])),
            Some("a.toml".into())
        );
        assert_eq!(
            super::settings_file(&args(&["aurora", "config", "check", "--config=b.toml"])),
            Some("b.toml".into())
        );
    }

    #[test]
    fn the_summary_hides_secrets() {
        let mut config = super::Config::embedded("/tmp/aurora");
        config.database_url = Some("postgres://aurora:hunter2@db:5432/aurora".into());
        config.identity_webhook_secrets = Some("whsec_c2VjcmV0".into());
        let text = serde_json::to_string(&config).expect("serializable");
        assert!(
            !text.contains("hunter2") && !text.contains("whsec_"),
            "{text}"
        );
        assert!(text.contains("postgres://***@db:5432/aurora"), "{text}");
    }

    #[test]
    fn redaction_hides_credentials() {
        assert_eq!(
            super::redact("postgres://user:secret@db:5432/aurora"),
            "postgres://***@db:5432/aurora"
        );
        assert_eq!(
            super::redact("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(super::redact("u:pw@db:5432/x"), "***@db:5432/x");
        assert_eq!(
            super::redact("postgres://db/x?sslmode=require&password=pw&sslpassword=pw2"),
            "postgres://db/x?sslmode=require&password=***&sslpassword=***"
        );
        assert_eq!(
            super::redact("postgres://a:b@c@db/x"),
            "postgres://***@db/x",
            "an @ in the password"
        );
        assert_eq!(
            super::redact("nats://u:p1@a:4222,nats://u:p2@b:4222, nats://c:4222"),
            "nats://***@a:4222,nats://***@b:4222, nats://c:4222",
            "each server of a cluster"
        );
        assert_eq!(
            super::redact("postgres://u:p,w@h1:5432,h2:5432/db"),
            "postgres://***@h1:5432,h2:5432/db",
            "a comma inside one URL"
        );
    }

    #[test]
    fn log_files_are_on_by_default_under_the_data_dir() {
        let mut config = super::Config::embedded("/srv/aurora");
        assert_eq!(
            config.log_files(),
            Some(std::path::PathBuf::from("/srv/aurora/logs"))
        );
        config.log_dir = Some("/var/log/aurora".into());
        assert_eq!(
            config.log_files(),
            Some(std::path::PathBuf::from("/var/log/aurora"))
        );
        config.log_dir = Some("off".into());
        assert_eq!(config.log_files(), None);
    }

    #[test]
    fn nats_settings_take_a_cluster() {
        let mut config = super::Config::embedded("/tmp/aurora-unused");
        config.nats_url = Some("nats://a:4222, nats://b:4222,tls://c:4222".into());
        config.nats_replicas = 3;
        config
            .validate()
            .expect("a list of servers and 3 replicas are valid");
        config.nats_url = Some("nats://a:4222,http://b:4222".into());
        let error = config
            .validate()
            .expect_err("a server without a NATS scheme");
        assert!(error.to_string().contains("http://b:4222"), "{error}");
        config.nats_url = Some("nats://a:4222".into());
        for replicas in [0, 6] {
            config.nats_replicas = replicas;
            let error = config.validate().expect_err("replicas outside 1..=5");
            assert!(
                error.to_string().contains("AURORA_NATS_REPLICAS"),
                "{error}"
            );
        }
    }
}
