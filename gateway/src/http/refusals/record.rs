//! Recording refusals: the handlers' and the response observer's way in (they need the
//! replica's state; the budget they are judged by does not).

use std::net::SocketAddr;
use std::sync::Arc;

use aurora_domain::access::{RecordRefusal, Refusal};
use aurora_domain::EventMetadata;
use http::{HeaderMap, Method};
use warp::reply::Response;

use super::{AuditRefusal, Verdict};
use crate::http::problem::ProblemSlug;
use crate::state::AppState;

/// Records a refusal (never fails the request: an error is logged and counted), within its
/// budget.
pub async fn record(state: &AppState, metadata: &EventMetadata, refusal: Refusal) {
    let command = match state.refusals.judge(metadata) {
        Verdict::Record => RecordRefusal::Refused(refusal),
        Verdict::Overflow => {
            state.metrics.refusals_unrecorded.inc();
            RecordRefusal::Overflowed(refusal)
        }
        Verdict::Count => {
            state.metrics.refusals_unrecorded.inc();
            return;
        }
    };
    let id = uuid::Uuid::now_v7().to_string();
    match state.identity.access.create(&id, command, metadata).await {
        Ok(_) => state.metrics.command("RecordRefusal", "accepted"),
        Err(error) => {
            tracing::warn!(%error, "could not record a refused request");
            state.metrics.command("RecordRefusal", "failed");
        }
    }
}

/// Looks at a response on its way out; a refusal is recorded before it is sent.
pub async fn observe(
    state: Arc<AppState>,
    method: Method,
    path: warp::path::FullPath,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    response: Response,
) -> Response {
    let status = response.status().as_u16();
    let marked = response.extensions().get::<AuditRefusal>().is_some();
    if !(matches!(status, 401 | 403 | 429) || marked) {
        return response;
    }
    let route = crate::http::routes::route_template(path.as_str());
    // A request another site's page made on someone's session is not that user's act, and
    // comes before any rate limit (it must not spend theirs): logged and counted, never
    // written to the trail (a page could otherwise write to it without limit).
    if response
        .extensions()
        .get::<ProblemSlug>()
        .is_some_and(|slug| slug.0 == "csrf-refused")
    {
        tracing::warn!(%method, route, "a session request from another site refused");
        return response;
    }
    // Logins record their own failures (see the module doc); their 429s are recorded here.
    let signs_in = route == "/api/v1/auth/login"
        || (route == crate::http::routes::SIGN_IN && method == Method::POST);
    if signs_in && status != 429 {
        return response;
    }
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut metadata = EventMetadata::new(aurora_domain::metadata::ANONYMOUS, request_id);
    metadata.client_ip = state.client_ip(remote, &headers);
    metadata.traceparent = crate::http::context::traceparent(&headers);
    // A genuine token names who tried, revoked or expired as it may be; a forged or
    // unreadable one names no one.
    if let Some(claims) = crate::http::credentials::presented_token(&headers)
        .ok()
        .and_then(|token| state.identity.tokens.holder(token))
    {
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
