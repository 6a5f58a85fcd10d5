//! NATS subscribers with Biscuit tokens: the gatekeeper the auth callout
//! (`aurora_actors::callout`) asks when a client connects to NATS with a token.
//!
//! A client connects with its token (an API key or a session, possibly narrowed offline)
//! as the NATS token, or as the password with a user name saying what it wants:
//!
//! | user name | needs | may subscribe to |
//! |---|---|---|
//! | none, or `runs` | `runs:subscribe` on its own runs | `<prefix>.runs.<user>.>` (an admin: `<prefix>.runs.>`) |
//! | `run:<id>` | `runs:subscribe` on run `<id>` | `<prefix>.runs.<owner>.<id>.>` and the run's progress |
//!
//! and never publish (Aurora's services publish; the event stream is theirs alone, in
//! another account). It lands in the users' account (`AURORA_NATS_USERS_ACCOUNT`), whose
//! subjects the server's configuration imports from Aurora's. The same authorizer as the
//! gateway's decides, with the same key ring, revocations and verified-token cache; a
//! refusal is an `AccessRefused` in the audit trail, like an HTTP one. The user JWT lives at
//! most [`MAX_GRANT`] and never past the token's expiry; a connection whose token stops
//! holding before then (revoked, its user disabled) is cut off by the callout's sweep.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use aurora_actors::callout::{Admitted, Callout, CalloutDeps, Gatekeeper};
use aurora_actors::supervision::EngineMetrics;
use aurora_domain::access::Refusal;
use aurora_domain::user::Role;
use aurora_domain::EventMetadata;
use aurora_nats::callout::{Grant, Issuer, Request, Subjects as Permitted};
use prometheus_client::metrics::counter::Counter;

use crate::auth::tokens::{Access, Claims, TokenError, VerifiedToken};
use crate::config::Config;
use crate::state::AppState;

/// The longest a user JWT lives; a client reconnects past it (asked again).
pub const MAX_GRANT: Duration = Duration::from_secs(600);

/// The operation a subscription needs.
pub const OPERATION: &str = "runs:subscribe";

/// The callout's issuer when the callout is configured; an error names the bad setting
/// (never the seed).
pub fn configured(config: &Config) -> anyhow::Result<Option<Issuer>> {
    let Some(url) = &config.nats_callout_url else {
        if config.nats_callout_issuer_seed.is_some() || config.nats_system_url.is_some() {
            anyhow::bail!(
                "AURORA_NATS_CALLOUT_ISSUER_SEED and AURORA_NATS_SYSTEM_URL need AURORA_NATS_CALLOUT_URL"
            );
        }
        return Ok(None);
    };
    if config.nats_url.is_none() {
        anyhow::bail!("AURORA_NATS_CALLOUT_URL needs NATS_URL: the callout serves Aurora's NATS");
    }
    let urls = [
        ("AURORA_NATS_CALLOUT_URL", Some(url)),
        ("AURORA_NATS_SYSTEM_URL", config.nats_system_url.as_ref()),
    ];
    for (name, url) in urls {
        if let Some(url) = url {
            if !["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
            {
                anyhow::bail!("{name} must be a nats://, tls://, ws:// or wss:// URL");
            }
        }
    }
    if config.nats_users_account.trim().is_empty() {
        anyhow::bail!("AURORA_NATS_USERS_ACCOUNT must name an account");
    }
    let seed = config
        .nats_callout_issuer_seed
        .as_deref()
        .context("AURORA_NATS_CALLOUT_URL needs AURORA_NATS_CALLOUT_ISSUER_SEED")?;
    let seed = match seed.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("AURORA_NATS_CALLOUT_ISSUER_SEED: reading {path}"))?,
        None => seed.to_string(),
    };
    let issuer = Issuer::from_seed(&seed)
        .map_err(|e| anyhow::anyhow!("AURORA_NATS_CALLOUT_ISSUER_SEED: {e}"))?;
    Ok(Some(issuer))
}

/// Starts the callout when it is configured: connected as the callout user (and the system
/// user, to cut off revoked tokens), answering with the gateway's gatekeeper.
pub async fn start(state: &Arc<AppState>) -> anyhow::Result<Option<Arc<Callout>>> {
    let Some(issuer) = configured(&state.config)? else {
        return Ok(None);
    };
    let config = &state.config;
    let url = config.nats_callout_url.clone().unwrap_or_default();
    let client = aurora_nats::jetstream::connect(&url, "aurora-callout")
        .await
        .context("connecting to NATS as the callout user (AURORA_NATS_CALLOUT_URL)")?;
    let system = match &config.nats_system_url {
        Some(url) => Some(
            aurora_nats::jetstream::connect(url, "aurora-system")
                .await
                .context("connecting to NATS as the system user (AURORA_NATS_SYSTEM_URL)")?,
        ),
        None => None,
    };
    tracing::info!(issuer = %issuer.public_key(), "answering NATS auth callouts");
    let gate = Arc::new(TokenGate::new(
        state.clone(),
        config.nats_users_account.clone(),
    ));
    // The actors' families (kind `nats_callout`), with a total of its own: `/health`'s
    // restart count stays the engine's.
    let metrics = EngineMetrics {
        restarts_total: Counter::default(),
        ..state.metrics.engine.clone()
    };
    let account = config.nats_users_account.clone();
    let deps = CalloutDeps::new(client, system, account, issuer, gate, metrics);
    let callout = Arc::new(
        Callout::start(deps)
            .await
            .map_err(|e| anyhow::anyhow!("starting the NATS callout: {e}"))?,
    );
    let _ = state.callout.set(callout.clone());
    Ok(Some(callout))
}

/// The gateway's gatekeeper.
pub struct TokenGate {
    state: Arc<AppState>,
    account: String,
}

impl TokenGate {
    /// Lets clients into `account` as their tokens allow.
    pub fn new(state: Arc<AppState>, account: impl Into<String>) -> Self {
        Self {
            state,
            account: account.into(),
        }
    }
}

/// What a client asked for.
enum Wanted {
    /// Its own runs (every run, for an admin).
    Own,
    /// One run.
    Run(uuid::Uuid),
}

/// A refusal: its status as HTTP would give it, and its kind.
struct Refused {
    status: u16,
    reason: &'static str,
    detail: String,
}

impl Refused {
    fn new(status: u16, reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            detail: detail.into(),
        }
    }

    fn token(error: TokenError) -> Self {
        let reason = match error {
            TokenError::Invalid => "invalid-token",
            TokenError::Revoked => "token-revoked",
            TokenError::Expired => "token-expired",
            TokenError::Forbidden => "forbidden",
            TokenError::Busy => "authorization-busy",
        };
        let status = match error {
            TokenError::Forbidden => 403,
            TokenError::Busy => 503,
            _ => 401,
        };
        Self::new(status, reason, error.to_string())
    }
}

#[async_trait]
impl Gatekeeper for TokenGate {
    async fn admit(&self, request: &Request) -> Result<Admitted, String> {
        match self.decide(request).await {
            Ok(admitted) => {
                self.state.metrics.command("NatsConnect", "accepted");
                Ok(admitted)
            }
            Err(refused) => {
                self.state.metrics.command("NatsConnect", "refused");
                let reason = format!("{}: {}", refused.reason, refused.detail);
                // Recorded beside the answer: the server waits for the answer (its auth
                // timeout), not for the audit trail's write.
                let (state, request) = (self.state.clone(), request.clone());
                tokio::spawn(async move { record(&state, &request, &refused).await });
                Err(reason)
            }
        }
    }
}

impl TokenGate {
    async fn decide(&self, request: &Request) -> Result<Admitted, Refused> {
        let credential = request
            .credential()
            .ok_or_else(|| Refused::new(401, "no-token", "connect with a token"))?;
        let wanted = match request.connect_opts.user.as_deref() {
            None | Some("") | Some("runs") => Wanted::Own,
            Some(name) => match name.strip_prefix("run:").map(uuid::Uuid::parse_str) {
                Some(Ok(id)) => Wanted::Run(id),
                _ => {
                    return Err(Refused::new(
                        403,
                        "unknown-subscription",
                        "the user name is `runs` (or none) or `run:<id>`",
                    ))
                }
            },
        };
        // As over HTTP: not while this replica cannot vouch that no one revoked the token.
        // A short wait: the server's auth timeout runs meanwhile.
        if !self
            .state
            .revocations_are_current(Duration::from_millis(500))
            .await
        {
            return Err(Refused::new(
                503,
                "revocations-not-current",
                "this replica cannot tell yet whether the token was revoked; connect again",
            ));
        }
        let tokens = &self.state.identity.tokens;
        let token = tokens.verify(credential).map_err(Refused::token)?;
        let subjects = self.state.bus.shared().subjects().clone();
        let (access, subscribe) = match wanted {
            Wanted::Own => {
                let claims = self.authorize(&token, Access::own(OPERATION))?;
                // Every user's runs only for a token that may act on what no user owns:
                // an admin's token narrowed to its own resources gets its own feed.
                let everyone = claims.role == Role::Admin
                    && self.authorize(&token, Owned::All.access()).is_ok();
                if everyone {
                    (Owned::All, vec![subjects.all_run_feeds()])
                } else {
                    (Owned::Own, vec![subjects.user_run_feed(&claims.username)])
                }
            }
            Wanted::Run(id) => {
                let id = id.to_string();
                let run = self.state.run_commands.load(&id).await.map_err(|error| {
                    tracing::warn!(%error, "could not load a run for a NATS subscriber");
                    Refused::new(503, "unavailable", "the store is unavailable; retry")
                })?;
                let Some(owner) = run.owner().map(str::to_string) else {
                    // The same answer as a run of someone else's would get, once authorized.
                    return Err(Refused::new(404, "not-found", "no run with this id"));
                };
                let owned = Owned::Run(id.clone(), owner.clone());
                self.authorize(&token, owned.access())?;
                (
                    owned,
                    vec![
                        subjects.one_run_feed(&owner, &id),
                        subjects.run_progress(&id),
                    ],
                )
            }
        };
        let now = SystemTime::now();
        let expires = self.expiry(&token, &access, now);
        let claims = token.claims();
        let grant = Grant {
            name: format!("{}:{}", claims.username, claims.token_id),
            account: self.account.clone(),
            expires,
            publish: Permitted {
                allow: vec![],
                deny: vec![">".into()],
            },
            subscribe: Permitted {
                allow: subscribe,
                deny: vec![],
            },
        };
        let principal = claims.username.clone();
        let state = self.state.clone();
        // Asked every second: the verified token is kept, so only its revocation and the
        // authorizer (remembered within the second) run again, never the parsing.
        let holds = Arc::new(move || {
            let tokens = &state.identity.tokens;
            // Not on a revocation set this replica cannot vouch for (cut off, or frozen).
            state.revocations_current_now()
                && !tokens.is_revoked(&token)
                && tokens
                    .authorize(&token, access.access(), SystemTime::now())
                    .is_ok()
        });
        Ok(Admitted {
            grant,
            principal,
            holds,
        })
    }

    fn authorize(&self, token: &VerifiedToken, access: Access<'_>) -> Result<Claims, Refused> {
        self.state
            .identity
            .tokens
            .authorize(token, access, SystemTime::now())
            .map_err(Refused::token)
    }

    /// When the grant ends: [`MAX_GRANT`] from now, or the last second the token still
    /// allows the access, if sooner (found by asking the authorizer, which knows every
    /// block's time checks).
    fn expiry(&self, token: &VerifiedToken, access: &Owned, now: SystemTime) -> i64 {
        let tokens = &self.state.identity.tokens;
        let allows = |seconds: u64| {
            tokens
                .authorize(token, access.access(), now + Duration::from_secs(seconds))
                .is_ok()
        };
        let unix = |seconds: u64| {
            (now + Duration::from_secs(seconds))
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default()
        };
        let max = MAX_GRANT.as_secs();
        if allows(max) {
            return unix(max);
        }
        // Allowed now (it was just authorized), not at `max`: the last allowed second.
        let (mut allowed, mut refused) = (0, max);
        while refused - allowed > 1 {
            let middle = (allowed + refused) / 2;
            if allows(middle) {
                allowed = middle;
            } else {
                refused = middle;
            }
        }
        unix(allowed).max(unix(0) + 1)
    }
}

/// Records a refused connection in the audit trail, like a refused HTTP request.
async fn record(state: &AppState, request: &Request, refused: &Refused) {
    let request_id = format!("nats-{}-{}", request.server_id.name, request.client_info.id);
    let mut metadata = EventMetadata::new(aurora_domain::metadata::ANONYMOUS, request_id);
    metadata.client_ip = Some(request.client_info.host.clone()).filter(|h| !h.is_empty());
    if let Some(claims) = request
        .credential()
        .and_then(|token| state.identity.tokens.holder(token))
    {
        metadata.principal = claims.username.clone();
        metadata.token_id = Some(claims.token_id.clone());
        metadata.role = Some(claims.role.as_str().to_string());
    }
    let route = match request.connect_opts.user.as_deref() {
        Some(name) if name.starts_with("run:") => "nats run:{id}",
        _ => "nats runs",
    };
    crate::http::refusals::record(
        state,
        &metadata,
        Refusal::new("CONNECT", route, refused.status, refused.reason),
    )
    .await;
}

/// The access a grant stands on, owned (the sweep asks it again every second).
#[derive(Clone)]
enum Owned {
    /// The caller's own runs.
    Own,
    /// Every user's runs (what no user owns: admins).
    All,
    /// One run, by id, and its owner.
    Run(String, String),
}

impl Owned {
    fn access(&self) -> Access<'_> {
        match self {
            Self::Own => Access::own(OPERATION),
            Self::All => Access::admin(OPERATION, None),
            Self::Run(id, owner) => Access {
                operation: OPERATION,
                resource: Some(("run", id)),
                owner: Some(owner),
            },
        }
    }
}
