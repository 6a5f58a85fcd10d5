//! Who may do what: the request's token verified and authorized, for handlers (401 without
//! a valid token, 403 when it does not allow the operation) and for long answers that must
//! stop when the token stops holding.

use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;

use super::credentials::presented_token;
use super::error::ApiError;
use crate::auth::tokens::{Access, Claims, VerifiedToken};
use crate::state::AppState;

/// Verifies the request's token and authorizes `access`: 401 without a valid token, 403
/// when the token does not allow it.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    access: Access<'_>,
) -> Result<Claims, ApiError> {
    let token = verify_request(state, headers)?;
    authorize(state, &token, access)
}

/// Verifies the request's token — signature, root key, not revoked — without yet
/// authorizing anything: 401 if it fails.
pub fn verify_request(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Arc<VerifiedToken>, ApiError> {
    let token = presented_token(headers)?;
    state
        .identity
        .tokens
        .verify(token)
        .map_err(|error| ApiError::Token(error, String::new()))
}

/// A check that the request's token still allows what a long response was authorized for
/// (an event stream, a download, an export): true until the token is revoked, its user
/// disabled or its role changed, or it expires — or this replica can no longer vouch that
/// its revocation set is current. Cheap enough to call per chunk: a cached
/// token and a remembered decision within the second cost about a microsecond.
pub fn token_holds(
    state: Arc<AppState>,
    headers: HeaderMap,
    operation: &'static str,
    resource: Option<(&'static str, String)>,
    owner: Option<String>,
) -> impl Fn() -> bool + Send + Sync + 'static {
    move || {
        let access = Access {
            operation,
            resource: resource.as_ref().map(|(kind, id)| (*kind, id.as_str())),
            owner: owner.as_deref(),
        };
        // Not on a revocation set this replica cannot vouch for (cut off, or frozen).
        state.revocations_current_now()
            && verify_request(&state, &headers)
                .and_then(|token| authorize(&state, &token, access))
                .is_ok()
    }
}

/// `body` as long as `holds`: past the moment it says no, the stream yields an error, so
/// the connection is cut and the client sees a truncated answer, not a complete one.
pub fn while_token_holds<S>(
    body: S,
    holds: impl Fn() -> bool + Send + Sync + 'static,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Sync + 'static
where
    S: futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Sync + 'static,
{
    use futures::StreamExt;
    body.map(move |chunk| {
        if holds() {
            chunk
        } else {
            Err(std::io::Error::other(
                "the token was revoked or has expired",
            ))
        }
    })
}

/// Authorizes `access` for a verified token: 403 if the token does not allow it.
pub fn authorize(
    state: &AppState,
    token: &VerifiedToken,
    access: Access<'_>,
) -> Result<Claims, ApiError> {
    let claims = state
        .identity
        .tokens
        .authorize(token, access, SystemTime::now())
        .map_err(|error| ApiError::Token(error, access.operation.to_string()))?;
    tracing::Span::current().record("principal", claims.username.as_str());
    Ok(claims)
}
