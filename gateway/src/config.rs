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

    /// Lifetime of session tokens from login, in seconds.
    #[arg(long, env = "AURORA_SESSION_TTL_SECONDS", default_value_t = 3600)]
    pub session_ttl_seconds: u64,

    /// How long in-flight requests may take to finish after SIGTERM, in seconds.
    #[arg(long, env = "AURORA_DRAIN_SECONDS", default_value_t = 25)]
    pub drain_seconds: u64,

    /// Deployment environment reported by `/health`.
    #[arg(long, env = "AURORA_ENVIRONMENT", default_value = "development")]
    pub environment: String,
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
            session_ttl_seconds: 3600,
            drain_seconds: 25,
            environment: "test".to_string(),
        }
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
