//! Admin routes over the rate limiter's blocks: `GET /api/v1/admin/blocks` lists the blocks
//! in force (this replica's block list, kept current from the stream), `DELETE
//! /api/v1/admin/blocks/{key}` lifts one (`key` as listed, e.g. `ip:203.0.113.7` or
//! `user:alice`); the `ClientUnblocked` event names the admin.

use std::sync::Arc;

use aurora_domain::client::{ClientCommand, ClientError};
use chrono::Utc;
use cqrs_es::AggregateError;
use http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::{json, no_content};
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::guard::authenticate;
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::tokens::Access;
use crate::limits::Limits;
use crate::state::AppState;

/// Longest client key accepted in a path.
const MAX_KEY_LEN: usize = 200;

/// The routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let headers = warp::header::headers_cloned();
    let list = warp::path!("api" / "v1" / "admin" / "blocks")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .then(list);
    let lift = warp::path!("api" / "v1" / "admin" / "blocks" / String)
        .and(warp::delete())
        .and(context())
        .and(with_state)
        .and(headers)
        .then(lift);
    list.or(lift).unify()
}

fn limits(state: &AppState) -> Result<&Limits, ApiError> {
    state
        .limits
        .as_ref()
        .ok_or_else(|| Problem::not_found("rate limits are off (AURORA_RATE_LIMITS=off)").into())
}

/// The rate limiter's blocks in force on this replica (admins).
#[utoipa::path(
    get,
    path = "/api/v1/admin/blocks",
    operation_id = "list_blocks",
    tag = "admin",
    responses(
        (status = 200, description = "The blocks", body = BlockList),
        (status = 401, description = "No valid token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin's token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Rate limits are off", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited or blocked; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn list(ctx: RequestContext, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let result = authenticate(&state, &headers, Access::admin("blocks:read", None))
        .and_then(|_| limits(&state))
        .map(|limits| {
            let items = limits.blocks().list(Utc::now());
            json(StatusCode::OK, &BlockList { items }, &ctx)
        });
    respond(&ctx, result)
}

/// Lifts a block (admins); the event names the admin.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/blocks/{key}",
    operation_id = "lift_block",
    tag = "admin",
    params(("key" = String, Path, description = "The client key as listed, e.g. ip:203.0.113.7 or user:alice (percent-escaped if need be)")),
    responses(
        (status = 204, description = "Lifted"),
        (status = 403, description = "Not an admin's token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "That client is not blocked, or rate limits are off", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn lift(
    raw_key: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let claims = authenticate(&state, &headers, Access::admin("blocks:delete", None))?;
        let limits = limits(&state)?;
        let not_blocked = || Problem::not_found("that client is not blocked");
        let key = percent_decode(&raw_key).ok_or_else(not_blocked)?;
        if key.len() > MAX_KEY_LEN || !(key.starts_with("ip:") || key.starts_with("user:")) {
            return Err(not_blocked().into());
        }
        let command = ClientCommand::Unblock {
            reason: format!("lifted by {}", claims.username),
            at: Utc::now(),
        };
        let metadata = ctx.metadata_for(&claims);
        match limits.clients().execute(&key, command, &metadata).await {
            Ok(events) => {
                limits.blocks().apply(&key, &events);
                state.metrics.command("UnblockClient", "accepted");
                Ok(no_content(&ctx))
            }
            Err(AggregateError::UserError(ClientError::NotBlocked)) => Err(not_blocked().into()),
            Err(AggregateError::DatabaseConnectionError(e)) => Err(Problem::unavailable(&e).into()),
            Err(error) => Err(Problem::internal(&error).into()),
        }
    }
    .await;
    respond(&ctx, result)
}

/// Decodes `%XX` escapes (a key such as `ip:2001:db8::1` may arrive escaped); `None` for
/// a malformed escape or non-UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The blocks in force on this replica.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BlockList {
    /// The blocks, by key.
    pub items: Vec<crate::limits::blocks::Block>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaped_keys_are_decoded_and_malformed_ones_refused() {
        assert_eq!(
            super::percent_decode("ip%3A2001%3Adb8%3A%3A1").as_deref(),
            Some("ip:2001:db8::1")
        );
        assert_eq!(
            super::percent_decode("user:alice").as_deref(),
            Some("user:alice")
        );
        assert_eq!(super::percent_decode("%zz"), None);
        assert_eq!(super::percent_decode("%ff"), None);
    }
}
