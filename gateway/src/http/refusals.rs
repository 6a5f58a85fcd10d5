//! Refused requests that matter for security — 401 and 403 answers — become
//! `AccessRefused` events, so that they are in the audit trail with who tried (the
//! token's holder, if the token was genuine), from where, on which route, and why.
//!
//! A failed login is recorded by the login handler itself: as `LoginFailed` on the user
//! when the user exists, as a refusal otherwise. Rate-limit blocks are `ClientBlocked`
//! events of their own.

use std::net::SocketAddr;
use std::sync::Arc;

use aurora_domain::access::{RecordRefusal, Refusal};
use aurora_domain::EventMetadata;
use http::{HeaderMap, Method};
use warp::reply::Response;

use super::problem::ProblemSlug;
use crate::state::AppState;

/// Records a refusal (never fails the request: an error is logged and counted).
pub async fn record(state: &AppState, metadata: &EventMetadata, refusal: Refusal) {
    let id = uuid::Uuid::now_v7().to_string();
    match state
        .identity
        .access
        .create(&id, RecordRefusal(refusal), metadata)
        .await
    {
        Ok(_) => state.metrics.command("RecordRefusal", "accepted"),
        Err(error) => {
            tracing::warn!(%error, "could not record a refused request");
            state.metrics.command("RecordRefusal", "failed");
        }
    }
}

/// Looks at a response on its way out; a 401 or 403 is recorded before it is sent.
pub async fn observe(
    state: Arc<AppState>,
    method: Method,
    path: warp::path::FullPath,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    response: Response,
) -> Response {
    let status = response.status().as_u16();
    let route = super::route_template(path.as_str());
    // Logins record their own failures (see the module doc).
    if !matches!(status, 401 | 403) || route == "/api/v1/auth/login" {
        return response;
    }
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut metadata = EventMetadata::new(aurora_domain::metadata::ANONYMOUS, request_id);
    metadata.client_ip = remote.map(|addr| addr.ip().to_string());
    metadata.traceparent = super::context::traceparent(&headers);
    // A genuine token names who tried; a forged or unreadable one names no one.
    if let Some(token) = super::auth::presented_token(&headers)
        .ok()
        .and_then(|token| state.identity.tokens.verify(token).ok())
    {
        let claims = token.claims();
        metadata.principal = claims.username.clone();
        metadata.token_id = Some(claims.token_id.clone());
        metadata.role = Some(claims.role.as_str().to_string());
    }
    let reason = response
        .extensions()
        .get::<ProblemSlug>()
        .map_or("refused", |slug| slug.0);
    record(
        &state,
        &metadata,
        Refusal::new(method.as_str(), route, status, reason),
    )
    .await;
    response
}
