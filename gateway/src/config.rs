//! Settings, from flags and environment (`AURORA_*`, `DATABASE_URL`, `NATS_URL`).
//! `.env.example` lists every variable with its default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Everything `aurora serve` needs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "AURORA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where embedded mode keeps its data (SQLite file).
    #[arg(long, env = "AURORA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Postgres URL. Without it, Aurora stores events in SQLite under the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// NATS URL. Without it, Aurora uses an in-process bus.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,

    /// Subject prefix and stream name stem on NATS (one token).
    #[arg(long, env = "AURORA_NATS_PREFIX", default_value = "aurora")]
    pub nats_prefix: String,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "AURORA_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: u64,

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

    /// Secrets of the identity webhook (`whsec_<base64>`, comma-separated while rotating).
    /// Unset: `POST /api/v1/webhooks/identity` answers 404.
    #[arg(long, env = "AURORA_IDENTITY_WEBHOOK_SECRETS", hide_env_values = true)]
    pub identity_webhook_secrets: Option<String>,

    /// Rate limits: `presets` (the product write-ups' defaults), `off`, or the path of a
    /// TOML policy file (see `gateway/src/limits/policy.rs`).
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
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            database_url: None,
            nats_url: None,
            nats_prefix: "aurora".to_string(),
            max_body_bytes: 64 * 1024,
            db_max_connections: 32,
            db_writers: aurora_projections::commands::DEFAULT_WRITERS,
            root_keys_dir: None,
            identity_webhook_secrets: None,
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
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            fetch_max_bytes: 64 * 1024 * 1024,
            fetch_timeout_seconds: 60,
            fetch_allow: String::new(),
            tier_concurrent_runs: "free=1,pro=4,enterprise=16".into(),
            replica_id: None,
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
        let allow = aurora_domain::net::IpRanges::parse(&self.fetch_allow)
            .map_err(|e| anyhow::anyhow!("AURORA_FETCH_ALLOW: {e}"))?;
        Ok(aurora_actors::EngineSettings {
            workers,
            max_active_runs: self.max_active_runs.unwrap_or(workers * 2).max(1),
            max_attempts: self.max_attempts,
            backoff: Duration::from_millis(self.retry_backoff_ms),
            step_timeout: Duration::from_secs(self.step_timeout_seconds),
            ack_wait: Duration::from_secs(self.run_ack_wait_seconds),
            run_restarts: (3, Duration::from_secs(60)),
            worker_restarts: (10, Duration::from_secs(60)),
            fetch: aurora_actors::fetch::FetchSettings {
                max_bytes: self.fetch_max_bytes,
                timeout: Duration::from_secs(self.fetch_timeout_seconds),
                allow,
            },
        })
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

    /// Where the root keys are, and whether Aurora may create the first one there.
    pub fn root_keys(&self) -> (PathBuf, bool) {
        match &self.root_keys_dir {
            Some(dir) => (dir.clone(), false),
            None => (self.data_dir.join("keys"), true),
        }
    }

    /// The rate-limit policies configured: `None` when off. A bad file is an error naming
    /// the line.
    pub fn rate_limit_policies(&self) -> anyhow::Result<Option<crate::limits::policy::Policies>> {
        use crate::limits::policy::Policies;
        match self.rate_limits.trim() {
            "off" => Ok(None),
            "presets" => Ok(Some(Policies::presets())),
            path => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("reading rate limits {path}: {e}"))?;
                Policies::parse(&text)
                    .map(Some)
                    .map_err(|e| anyhow::anyhow!("rate limits {path}: {e}"))
            }
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

/// Where an optional database URL points, for logs: never the password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
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
    }
}
