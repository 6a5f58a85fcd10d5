//! Refused requests that matter for security — 401 and 403 answers — become
//! `AccessRefused` events, so that they are in the audit trail with who tried (the
//! token's holder, if the token was genuine), from where, on which route, and why.
//!
//! A failed login is recorded by the login handler itself: as `LoginFailed` on the user
//! when the user exists, as a refusal otherwise. Rate-limit blocks are `ClientBlocked`
//! events of their own.
//!
//! Recording is bounded per client (an IPv6 client by its /64): past
//! [`PER_CLIENT_PER_MINUTE`] refusals a minute, further ones from that client are counted
//! in `aurora_refusals_unrecorded_total` instead of stored, so that a flood of bad
//! tokens cannot fill the store (the rate limiter blocks such a client soon anyway).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use aurora_domain::access::{RecordRefusal, Refusal};
use aurora_domain::EventMetadata;
use http::{HeaderMap, Method};
use warp::reply::Response;

use super::problem::ProblemSlug;
use crate::state::AppState;

/// Refusals recorded per client per minute, at most (bursts up to the same).
pub const PER_CLIENT_PER_MINUTE: u32 = 60;

/// The per-client budget of recorded refusals.
pub struct Budget {
    limiter: governor::DefaultKeyedRateLimiter<String>,
}

impl Default for Budget {
    fn default() -> Self {
        let quota = governor::Quota::per_minute(
            std::num::NonZeroU32::new(PER_CLIENT_PER_MINUTE).expect("non-zero"),
        );
        Self {
            limiter: governor::RateLimiter::keyed(quota),
        }
    }
}

impl Budget {
    /// May a refusal from `client` be recorded now?
    fn allows(&self, client: Option<&str>) -> bool {
        let key = match client.and_then(|c| c.parse::<IpAddr>().ok()) {
            // An IPv6 client rotates addresses within its /64 at will.
            Some(IpAddr::V6(ip)) => {
                let s = ip.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(ip) => ip.to_string(),
            None => "unknown".to_string(),
        };
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&key).is_ok()
    }
}

/// Records a refusal (never fails the request: an error is logged and counted), unless
/// its client has spent its budget.
pub async fn record(state: &AppState, metadata: &EventMetadata, refusal: Refusal) {
    if !state.refusals.allows(metadata.client_ip.as_deref()) {
        state.metrics.refusals_unrecorded.inc();
        return;
    }
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
    if !matches!(status, 401 | 403) {
        return response;
    }
    let route = super::route_template(path.as_str());
    // Logins record their own failures (see the module doc).
    if route == "/api/v1/auth/login" {
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
    metadata.traceparent = super::context::traceparent(&headers);
    // A genuine token names who tried, revoked or expired as it may be; a forged or
    // unreadable one names no one.
    if let Some(claims) = super::auth::presented_token(&headers)
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
