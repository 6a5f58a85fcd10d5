//! Admin routes: `GET /api/v1/users` and `PATCH /api/v1/users/{id}` (role, tier, disabled).
//!
//! Changing the role or disabling a user revokes every token the user holds (they state
//! the old role); the revocations take effect on this replica before the answer and on
//! every other replica from the bus. An admin cannot demote or disable themselves, so the
//! last admin cannot lock everyone out by accident.

use std::sync::Arc;

use aurora_domain::user::{Role, Tier, UserCommand, Username};
use aurora_projections::read::Projection as _;
use aurora_projections::UserView;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::{json, json_body, JsonBody};
use super::consistency;
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::guard::authenticate;
use super::page::{self, Page};
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::tokens::Access;
use crate::state::AppState;

/// Largest page of `GET /api/v1/users`.
pub const MAX_PAGE: i64 = 100;
const DEFAULT_PAGE: i64 = 50;

/// The routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let body = json_body(state.config.max_body_bytes);
    let with_state = warp::any().map(move || state.clone());
    let headers = warp::header::headers_cloned();
    let list = warp::path!("api" / "v1" / "users")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .and(page::optional_raw_query())
        .then(list);
    let patch = warp::path!("api" / "v1" / "users" / String)
        .and(warp::patch())
        .and(context())
        .and(with_state)
        .and(headers)
        .and(body)
        .then(patch);
    list.or(patch).unify()
}

/// Body of `PATCH /api/v1/users/{id}`: at least one field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Change {
    /// A new role (revokes the user's tokens).
    role: Option<Role>,
    /// A new tier.
    tier: Option<Tier>,
    /// Disable (revokes the user's tokens) or enable.
    disabled: Option<bool>,
    /// Why, for the record.
    reason: Option<String>,
}

/// Lists users by username (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    operation_id = "list_users",
    tag = "users",
    params(
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 50)", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page"),
        ("aurora-after-position" = Option<i64>, Header, description = "Wait (at most 2 s) until the list includes what was stored up to this position (a command's Aurora-Position)"),
    ),
    responses(
        (status = 200, description = "A page of users", body = Page<UserView>,
            headers(("aurora-consistency" = String, description = "With Aurora-After-Position: caught-up or stale"))),
        (status = 400, description = "A bad query or limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin's token", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn list(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let result: Result<Response, ApiError> = async {
        authenticate(&state, &headers, Access::admin("users:read", None))?;
        let (limit, cursor) = page::parse(&query, DEFAULT_PAGE, MAX_PAGE)?;
        let reached =
            consistency::wait(&state, &headers, aurora_projections::users::CHECKPOINT).await?;
        let items = state
            .users
            .list(cursor.as_deref(), limit + 1)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        let page = page::page(items, limit, |user: &UserView| user.username.clone());
        Ok(consistency::mark(
            json(StatusCode::OK, &page, &ctx),
            reached,
        ))
    }
    .await;
    respond(&ctx, result)
}

/// The username behind a path id: a user id (UUID) or a username.
pub(crate) async fn resolve(state: &AppState, raw: &str) -> Result<String, Problem> {
    let missing = || Problem::not_found("no user with this id");
    if Uuid::parse_str(raw).is_ok() {
        let unavailable = |e: aurora_projections::StoreError| Problem::unavailable(&e);
        let mut view = state.users.by_id(raw).await.map_err(unavailable)?;
        if view.is_none() {
            // Registered a moment ago, perhaps: bring the view up to the store first.
            state.users.catch_up().await.map_err(unavailable)?;
            view = state.users.by_id(raw).await.map_err(unavailable)?;
        }
        return view.map(|v| v.username).ok_or_else(missing);
    }
    Username::parse(raw)
        .map(|name| name.as_str().to_string())
        .map_err(|_| missing())
}

/// Changes a user's role, tier or disabled flag (admins). A new role or disabling
/// revokes every token the user holds. All or nothing.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    operation_id = "update_user",
    tag = "users",
    params(("id" = String, Path, description = "The user id (UUID) or username")),
    request_body(content = Change, description = "At least one of role, tier, disabled", example = json!({"tier": "pro", "reason": "upgraded by support"})),
    responses(
        (status = 200, description = "The user as changed", body = UserView),
        (status = 400, description = "The body is empty or not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin's token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "An admin demoting or disabling themselves (self-lockout), or a conflicting change", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad body, nothing to change, or a reason too long", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn patch(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let claims = authenticate(&state, &headers, Access::admin("users:update", None))?;
        let change: Change = body.parse(None)?;
        let username = resolve(&state, &raw_id).await?;
        if change.role.is_none() && change.tier.is_none() && change.disabled.is_none() {
            return Err(Problem::unprocessable(
                "nothing-to-change",
                "give at least one of role, tier, disabled",
            )
            .into());
        }
        if username == claims.username
            && (change.disabled == Some(true) || change.role.is_some_and(|r| r != Role::Admin))
        {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "self-lockout",
                "Conflict",
                "an admin cannot demote or disable themselves; ask another admin",
            )
            .into());
        }
        // Everything that can be refused for its shape is refused before any command runs:
        // a PATCH changes all it asks for or nothing.
        if change
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > aurora_domain::run::MAX_REASON_LEN)
        {
            return Err(Problem::unprocessable(
                "invalid-field",
                format!(
                    "reason is longer than {} characters",
                    aurora_domain::run::MAX_REASON_LEN
                ),
            )
            .into());
        }
        let commands =
            UserCommand::changes(change.role, change.tier, change.disabled, change.reason);
        let metadata = ctx.metadata_for(&claims);
        for command in commands {
            state
                .identity
                .execute(&username, command, &metadata)
                .await?;
        }
        state.metrics.command("UpdateUser", "accepted");
        let view = state
            .users
            .refresh(&username)
            .await
            .map_err(|e| Problem::unavailable(&e))?
            .ok_or_else(|| Problem::not_found("no user with this id"))?;
        Ok(json(StatusCode::OK, &view, &ctx))
    }
    .await;
    respond(&ctx, result)
}
