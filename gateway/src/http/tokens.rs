//! `/api/v1/auth/logout` and `/api/v1/auth/tokens`: a user's own tokens.
//!
//! Everyone manages their own credentials, whatever their role: list their live tokens,
//! create labelled API keys, revoke any of their tokens, log out (revoking the token
//! presented). Nobody sees or touches another user's tokens: every route works on the
//! caller's own `User` aggregate, where another user's token id is simply not found.
//! Revocations take effect on this replica before the answer, and on every other replica
//! from the bus.

use std::sync::Arc;
use std::time::Duration;

use aurora_domain::user::{TokenKind, UserCommand, UserEvent};
use chrono::Utc;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::auth::{issue, rfc3339, TokenBody};
use super::body::{json, json_body, no_content, JsonBody};
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::guard::authenticate;
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::tokens::{Access, Claims};
use crate::state::AppState;

/// Default lifetime of an API key, in days.
pub const DEFAULT_API_KEY_DAYS: u32 = 90;
/// Longest lifetime of an API key, in days.
pub const MAX_API_KEY_DAYS: u32 = 365;

/// The routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let body = json_body(state.config.max_body_bytes);
    let with_state = warp::any().map(move || state.clone());
    let headers = warp::header::headers_cloned();
    let logout = warp::path!("api" / "v1" / "auth" / "logout")
        .and(warp::post())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .then(logout);
    let list = warp::path!("api" / "v1" / "auth" / "tokens")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .then(list);
    let create = warp::path!("api" / "v1" / "auth" / "tokens")
        .and(warp::post())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .and(body)
        .then(create);
    let revoke = warp::path!("api" / "v1" / "auth" / "tokens" / String)
        .and(warp::delete())
        .and(context())
        .and(with_state)
        .and(headers)
        .then(revoke);
    logout
        .or(list)
        .unify()
        .or(create)
        .unify()
        .or(revoke)
        .unify()
}

/// Body of `POST /api/v1/auth/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    /// What the key is for.
    label: String,
    /// Its lifetime in days, 1 to 365 (default 90).
    #[schema(minimum = 1, maximum = 365)]
    expires_in_days: Option<u32>,
}

/// A live token as listed (never the token itself).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// The token id.
    id: String,
    /// A session or an API key.
    kind: TokenKind,
    /// An API key's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    /// When issued (RFC 3339).
    created_at: String,
    /// When it expires (RFC 3339).
    expires_at: String,
    /// Whether it is the token of this request.
    current: bool,
}

/// Executes `command` on the caller's own user (revocations apply here at once).
pub(crate) async fn on_own_user(
    state: &AppState,
    ctx: &RequestContext,
    claims: &Claims,
    command: UserCommand,
) -> Result<Vec<UserEvent>, ApiError> {
    let metadata = ctx.metadata_for(claims);
    Ok(state
        .identity
        .execute(&claims.username, command, &metadata)
        .await?)
}

/// Logs out: revokes the token presented (and nothing else).
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "tokens",
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "The token does not allow auth:logout", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The token is not live on its user", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The user was changed at the same time; retry", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn logout(ctx: RequestContext, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let result: Result<Response, ApiError> = async {
        let claims = authenticate(&state, &headers, Access::own("auth:logout"))?;
        let command = UserCommand::LogOut {
            token_id: claims.token_id.clone(),
        };
        on_own_user(&state, &ctx, &claims, command).await?;
        state.metrics.command("LogOut", "accepted");
        Ok(no_content(&ctx))
    }
    .await;
    respond(&ctx, result)
}

/// The caller's live tokens, newest first (never the tokens themselves).
#[utoipa::path(
    get,
    path = "/api/v1/auth/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "The live tokens", body = TokenList),
        (status = 403, description = "The token does not allow tokens:read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The token's user no longer exists", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn list(ctx: RequestContext, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let result: Result<Response, ApiError> = async {
        let claims = authenticate(&state, &headers, Access::own("tokens:read"))?;
        let user = state.identity.users.load(&claims.username).await?;
        let now = Utc::now();
        let mut items: Vec<TokenInfo> = user
            .tokens()
            .filter(|t| t.expires_at > now)
            .map(|t| TokenInfo {
                id: t.token_id.clone(),
                kind: t.kind,
                label: t.label.clone(),
                created_at: rfc3339(t.issued_at),
                expires_at: rfc3339(t.expires_at),
                current: t.token_id == claims.token_id,
            })
            .collect();
        items.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(json(StatusCode::OK, &TokenList { items }, &ctx))
    }
    .await;
    respond(&ctx, result)
}

/// Creates a labelled API key stating the caller's current role and tier; the key is
/// shown once.
#[utoipa::path(
    post,
    path = "/api/v1/auth/tokens",
    operation_id = "create_api_key",
    tag = "tokens",
    request_body(content = NewApiKey, description = "The label and lifetime", example = json!({"label": "nightly export", "expires_in_days": 30})),
    responses(
        (status = 201, description = "The new API key", body = TokenBody),
        (status = 400, description = "The body is empty or not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow tokens:create", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The user's state forbids it (e.g. too many keys), or it changed at the same time", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad body, label or lifetime", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn create(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let claims = authenticate(&state, &headers, Access::own("tokens:create"))?;
        let request: NewApiKey = body.parse(None)?;
        let days = request.expires_in_days.unwrap_or(DEFAULT_API_KEY_DAYS);
        if !(1..=MAX_API_KEY_DAYS).contains(&days) {
            return Err(Problem::unprocessable(
                "invalid-field",
                format!("expires_in_days is a whole number from 1 to {MAX_API_KEY_DAYS}"),
            )
            .into());
        }
        // The key states the user's role and tier as they are now, not as the presented
        // token remembers them.
        let ttl = Duration::from_secs(u64::from(days) * 86_400);
        let label = Some(request.label);
        let minted = issue(
            &state,
            &claims.username,
            TokenKind::ApiKey,
            label.clone(),
            ttl,
            |_| ctx.metadata_for(&claims),
        )
        .await?;
        state.metrics.command("CreateApiKey", "accepted");
        Ok(json(
            StatusCode::CREATED,
            &TokenBody::new(minted, label),
            &ctx,
        ))
    }
    .await;
    respond(&ctx, result)
}

/// Revokes one of the caller's own tokens.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("id" = String, Path, description = "The token id, as listed")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "The token does not allow tokens:revoke", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The caller holds no live token with that id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The user was changed at the same time; retry", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn revoke(
    token_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let claims = authenticate(&state, &headers, Access::own("tokens:revoke"))?;
        if token_id.len() > 64 {
            return Err(Problem::not_found("you hold no live token with that id").into());
        }
        on_own_user(&state, &ctx, &claims, UserCommand::RevokeToken { token_id }).await?;
        state.metrics.command("RevokeToken", "accepted");
        Ok(no_content(&ctx))
    }
    .await;
    respond(&ctx, result)
}

/// The caller's live tokens, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenList {
    /// The tokens (never their secrets).
    pub items: Vec<crate::http::tokens::TokenInfo>,
}
