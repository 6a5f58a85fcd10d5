//! `/api/v1/auth/*` and `/api/v1/users/me`: registration, login, and who a token is.
//!
//! Failed logins all get the same answer, whether the user exists or not, and take the
//! same work (a password check against a dummy hash for unknown users). Passwords and
//! their hashes never reach an event, a log line or the bus.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aurora_domain::access::Refusal;
use aurora_domain::user::{
    LoginFailure, Registration, Role, Tier, TokenGrant, TokenKind, UserCommand, UserError, Username,
};
use aurora_domain::EventMetadata;
use chrono::{DateTime, SecondsFormat, Utc};
use cqrs_es::AggregateError;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::{json, json_body, JsonBody};
use super::context::{context, RequestContext};
use super::error::{respond, username_taken, ApiError};
use super::guard::authenticate;
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::passwords;
use crate::auth::tokens::{Access, Minted};
use crate::state::AppState;

/// The identity routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let body = json_body(state.config.max_body_bytes);
    let with_state = warp::any().map(move || state.clone());
    let register = warp::path!("api" / "v1" / "auth" / "register")
        .and(warp::post())
        .and(context())
        .and(with_state.clone())
        .and(body.clone())
        .then(register);
    let login = warp::path!("api" / "v1" / "auth" / "login")
        .and(warp::post())
        .and(context())
        .and(with_state.clone())
        .and(body)
        .then(login);
    let me = warp::path!("api" / "v1" / "users" / "me")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .then(me);
    let whoami = warp::path!("api" / "v1" / "auth" / "whoami")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .then(whoami);
    let keys = warp::path!("api" / "v1" / "auth" / "keys")
        .and(warp::get())
        .and(context())
        .and(with_state)
        .then(public_keys);
    register
        .or(login)
        .unify()
        .or(me)
        .unify()
        .or(whoami)
        .unify()
        .or(keys)
        .unify()
}

/// Body of register and login.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credentials {
    /// The username.
    username: String,
    /// The password.
    #[schema(format = Password)]
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A user as registration and `/users/me` show it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserBody {
    /// Stable id (UUIDv7).
    id: String,
    /// The username.
    username: String,
    /// What the user may do.
    role: Role,
    /// What the user pays for.
    tier: Tier,
    /// Disabled by an admin.
    disabled: bool,
}

impl UserBody {
    /// The user as stored, if it exists.
    pub(crate) fn of(username: &str, user: &aurora_domain::user::User) -> Option<Self> {
        let (Some(id), Some(role), Some(tier)) = (user.user_id(), user.role(), user.tier()) else {
            return None;
        };
        Some(Self {
            id: id.to_string(),
            username: username.to_string(),
            role,
            tier,
            disabled: user.is_disabled(),
        })
    }
}

/// A freshly minted token, as login and API key creation return it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenBody {
    /// The token: send it as `Authorization: Bearer <token>`. Shown only now.
    token: String,
    /// `Bearer`.
    token_type: &'static str,
    /// Its id, to list or revoke it by.
    token_id: String,
    /// An API key's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    /// When it expires (RFC 3339).
    expires_at: String,
}

impl TokenBody {
    pub(crate) fn new(minted: Minted, label: Option<String>) -> Self {
        Self {
            token: minted.token,
            token_type: "Bearer",
            token_id: minted.token_id,
            label,
            expires_at: rfc3339(minted.expires_at),
        }
    }
}

/// RFC 3339 in UTC, to the second.
pub(crate) fn rfc3339(time: impl Into<DateTime<Utc>>) -> String {
    time.into().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Mints a token of `kind` for `username`, stating the user's current role and tier,
/// and records it on the user (the aggregate refuses a token whose role is no longer the
/// user's: then it is minted again). `metadata` gives the events' metadata for the token.
pub(crate) async fn issue(
    state: &AppState,
    username: &str,
    kind: TokenKind,
    label: Option<String>,
    ttl: Duration,
    metadata: impl Fn(&Minted) -> aurora_domain::EventMetadata,
) -> Result<Minted, AggregateError<UserError>> {
    let users = &state.identity.users;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let user = users.load(username).await?;
        let (Some(role), Some(tier)) = (user.role(), user.tier()) else {
            return Err(AggregateError::UserError(UserError::NotFound));
        };
        let now = SystemTime::now();
        let minted = state
            .identity
            .tokens
            .mint(kind, username, role, tier, now, ttl)
            .map_err(|e| AggregateError::UnexpectedError(Box::new(e)))?;
        let token = TokenGrant {
            token_id: minted.token_id.clone(),
            kind,
            label: label.clone(),
            revocation_id: minted.revocation_id.clone(),
            issued_at: now.into(),
            expires_at: minted.expires_at.into(),
            role,
        };
        let command = match kind {
            TokenKind::Session => UserCommand::RecordLogin { token },
            TokenKind::ApiKey => UserCommand::CreateApiKey { token },
        };
        match users.execute(username, command, &metadata(&minted)).await {
            Ok(_) => return Ok(minted),
            Err(AggregateError::UserError(UserError::RoleChanged)) if attempts < 3 => {}
            Err(error) => return Err(error),
        }
    }
}

/// Registers a user (role `user`, tier `free`).
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body(content = Credentials, description = "The username and password to register", example = json!({"username": "ada", "password": "correct horse battery staple"})),
    responses(
        (status = 201, description = "Registered", body = UserBody),
        (status = 400, description = "The body is empty or not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The username is taken", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad body, username (invalid-username) or password (weak-password)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn register(ctx: RequestContext, state: Arc<AppState>, body: JsonBody) -> Response {
    respond(&ctx, try_register(&ctx, &state, body).await)
}

/// 503 `busy`: the password work could not start in time.
fn busy(error: passwords::Busy) -> Problem {
    Problem::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "Service unavailable",
        error.to_string(),
    )
}

async fn try_register(
    ctx: &RequestContext,
    state: &AppState,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let credentials: Credentials = body.parse(None)?;
    let username = Username::parse_new(&credentials.username)
        .map_err(|e| Problem::unprocessable("invalid-username", e.to_string()))?;
    passwords::check_policy(&credentials.password)
        .map_err(|detail| Problem::unprocessable("weak-password", detail))?;
    let password = credentials.password;
    let hash = passwords::bounded(move || passwords::hash(&password))
        .await
        .map_err(busy)?;
    let user_id = uuid::Uuid::now_v7();
    let command = UserCommand::Register {
        user_id,
        username: username.clone(),
        role: Role::User,
        tier: Tier::Free,
        registration: Registration::SelfService,
    };
    // The hash first, under this attempt's own user id: if the event below is never
    // stored, the hash is an orphan nobody reads; once it is, the hash is already there.
    let id = user_id.to_string();
    state
        .db
        .set_password_hash(&id, username.as_str(), &hash)
        .await
        .map_err(|e| Problem::unavailable(&e))?;
    // The username is the aggregate's id: of simultaneous registrations of one name, the
    // event store lets exactly one append the first event.
    if let Err(error) = state
        .identity
        .users
        .create(
            username.as_str(),
            command,
            &EventMetadata {
                role: Some(Role::User.as_str().to_string()),
                ..ctx.metadata_as(username.as_str(), None)
            },
        )
        .await
    {
        // Only when the name is certainly someone else's: after an ambiguous failure (the
        // commit's answer lost) the event may be stored, and its hash must stay.
        if matches!(
            error,
            AggregateError::AggregateConflict
                | AggregateError::UserError(UserError::AlreadyRegistered)
        ) {
            if let Err(cleanup) = state.db.delete_password_hash(&id).await {
                tracing::warn!(error = %cleanup, "could not remove the hash of a failed registration");
            }
            return Err(username_taken().into());
        }
        return Err(error.into());
    }
    state.metrics.command("RegisterUser", "accepted");
    tracing::info!(username = %username, "user registered");
    state.show_new_user(username.as_str()).await;
    let body = UserBody {
        id: user_id.to_string(),
        username: username.to_string(),
        role: Role::User,
        tier: Tier::Free,
        disabled: false,
    };
    Ok(json(StatusCode::CREATED, &body, ctx))
}

fn login_failed() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "login-failed",
        "Login failed",
        "the username or password is wrong, or the account is disabled",
    )
}

/// Logs in: a session token. Wrong names and passwords get the same answer.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body(content = Credentials, description = "The username and password", example = json!({"username": "ada", "password": "correct horse battery staple"})),
    responses(
        (status = 200, description = "A session token", body = TokenBody),
        (status = 400, description = "The body is empty or not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "The username or password is wrong, or the account is disabled (login-failed)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The user was changed at the same time; retry", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad body", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts, or blocked; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn login(ctx: RequestContext, state: Arc<AppState>, body: JsonBody) -> Response {
    respond(&ctx, try_login(&ctx, &state, body).await)
}

async fn try_login(
    ctx: &RequestContext,
    state: &AppState,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let minted = log_in(ctx, state, body, "/api/v1/auth/login").await?;
    Ok(json(StatusCode::OK, &TokenBody::new(minted, None), ctx))
}

/// Checks the credentials in `body` and mints a session token: what login and the
/// console's sign-in (`route`, for the refusal of an unknown user) share. Every failure
/// is the same 401, and is recorded.
pub(crate) async fn log_in(
    ctx: &RequestContext,
    state: &AppState,
    body: JsonBody,
    route: &'static str,
) -> Result<Minted, ApiError> {
    let credentials: Credentials = body.parse(None)?;
    let users = &state.identity.users;
    // An unparseable name cannot exist, but gets the same work and answer as a wrong one.
    let username = Username::parse(&credentials.username).ok();
    let user = match &username {
        Some(name) => users.load(name.as_str()).await?,
        None => Default::default(),
    };
    let stored = match user.user_id() {
        Some(id) => state
            .db
            .password_hash(&id.to_string())
            .await
            .map_err(|e| Problem::unavailable(&e))?,
        None => None,
    };
    let password = credentials.password;
    let matches = passwords::bounded(move || {
        password.len() <= passwords::MAX_PASSWORD_BYTES
            && passwords::verify(&password, stored.as_deref())
    })
    .await
    .map_err(busy)?;
    let (Some(username), Some(_)) = (username, user.user_id()) else {
        // No user to record the failure on: a refusal of its own, so it is in the trail.
        let refusal = Refusal::new("POST", route, 401, "login-failed");
        super::refusals::record(state, &ctx.metadata(), refusal).await;
        state.metrics.command("LogIn", "refused");
        return Err(login_failed().into());
    };
    let name = username.as_str();
    if !matches {
        record_failure(state, ctx, name, LoginFailure::WrongPassword).await;
        return Err(login_failed().into());
    }
    let ttl = Duration::from_secs(state.config.session_ttl_seconds);
    let role = user.role().map(|role| role.as_str().to_string());
    let issued = issue(state, name, TokenKind::Session, None, ttl, |minted| {
        let mut metadata = ctx.metadata_as(name, Some(minted.token_id.clone()));
        metadata.role = role.clone();
        metadata
    })
    .await;
    let minted = match issued {
        Ok(minted) => minted,
        Err(AggregateError::UserError(UserError::Disabled)) => {
            record_failure(state, ctx, name, LoginFailure::Disabled).await;
            return Err(login_failed().into());
        }
        Err(error) => return Err(error.into()),
    };
    state.metrics.command("LogIn", "accepted");
    Ok(minted)
}

/// Records a failed login of an existing user (an unknown one has no history to add to).
async fn record_failure(
    state: &AppState,
    ctx: &RequestContext,
    username: &str,
    failure: LoginFailure,
) {
    let command = UserCommand::RecordLoginFailure { failure };
    match state
        .identity
        .users
        .execute(username, command, &ctx.metadata_as(username, None))
        .await
    {
        Ok(_) | Err(AggregateError::UserError(UserError::NotFound)) => {}
        Err(error) => tracing::warn!(%error, "could not record a failed login"),
    }
    state.metrics.command("LogIn", "refused");
}

/// The token's user, as stored now.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "users",
    responses(
        (status = 200, description = "The user", body = UserBody),
        (status = 403, description = "The token does not allow users:read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The token's user no longer exists", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn me(ctx: RequestContext, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let access = Access::own("users:read");
    let result: Result<Response, ApiError> = async {
        let claims = authenticate(&state, &headers, access)?;
        let user = state.identity.users.load(&claims.username).await?;
        let Some(body) = UserBody::of(&claims.username, &user) else {
            return Err(Problem::not_found("the token's user no longer exists").into());
        };
        Ok(json(StatusCode::OK, &body, &ctx))
    }
    .await;
    respond(&ctx, result)
}

/// The public root keys by `root_key_id`, newest (signing) last: what anyone needs to
/// verify or attenuate an Aurora token offline. Public by design; no token needed.
#[utoipa::path(
    get,
    path = "/api/v1/auth/keys",
    tag = "auth",
    responses(
        (status = 200, description = "The public root keys", body = PublicKeys),
        (status = 429, description = "Rate limited or blocked; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn public_keys(ctx: RequestContext, state: Arc<AppState>) -> Response {
    let ring = state.identity.tokens.keys();
    let signing = ring.signing().0;
    let keys = ring
        .ids()
        .into_iter()
        .filter_map(|id| {
            ring.public(id).map(|key| PublicKey {
                id,
                public_key: key.to_string(),
                signing: id == signing,
            })
        })
        .collect();
    json(StatusCode::OK, &PublicKeys { keys }, &ctx)
}

/// What the presented token says, checked but without reading the store: a client's
/// "does my token work, and as whom" (and the route `aurora bench-auth` measures).
#[utoipa::path(
    get,
    path = "/api/v1/auth/whoami",
    tag = "auth",
    responses(
        (status = 200, description = "What the token says", body = WhoAmI),
        (status = 401, description = "No valid token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow users:read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited or blocked; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn whoami(ctx: RequestContext, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let result = authenticate(&state, &headers, Access::own("users:read")).map(|claims| {
        let body = WhoAmI {
            username: claims.username,
            role: claims.role,
            tier: claims.tier,
            token_id: claims.token_id,
        };
        json(StatusCode::OK, &body, &ctx)
    });
    respond(&ctx, result)
}

/// What the presented token says.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The token's user.
    pub username: String,
    /// The role the token states.
    pub role: Role,
    /// The tier the token states.
    pub tier: Tier,
    /// The token's id.
    pub token_id: String,
}

/// A public root key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicKey {
    /// Its `root_key_id`.
    pub id: u32,
    /// The public key, as Biscuit prints it (`ed25519/<hex>`).
    pub public_key: String,
    /// Whether new tokens are signed with it.
    pub signing: bool,
}

/// The public root keys, the signing one last.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicKeys {
    /// The keys.
    pub keys: Vec<PublicKey>,
}
