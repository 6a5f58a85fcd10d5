//! Per-request context: request id (honoured from `x-request-id` or generated), client IP
//! and trace context. Every event caused by the request carries it (invariant 7).

use std::convert::Infallible;
use std::net::SocketAddr;

use aurora_domain::metadata::ANONYMOUS;
use aurora_domain::EventMetadata;
use http::HeaderMap;
use warp::Filter;

use crate::auth::tokens::Claims;

/// Longest request id accepted from a client; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// What the gateway knows about the request it is serving.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Honoured from `x-request-id` if it is sane, else a fresh UUID.
    pub request_id: String,
    /// The peer address.
    pub client_ip: Option<String>,
    /// W3C `traceparent`, if sent and well-formed.
    pub traceparent: Option<String>,
}

impl RequestContext {
    /// Metadata for events `principal` causes in this request, with the token they used.
    pub fn metadata_as(&self, principal: &str, token_id: Option<String>) -> EventMetadata {
        let mut metadata = self.metadata();
        metadata.principal = principal.to_string();
        metadata.token_id = token_id;
        metadata
    }

    /// Metadata for events the holder of `claims` causes in this request: who, with which
    /// token, in which role.
    pub fn metadata_for(&self, claims: &Claims) -> EventMetadata {
        let mut metadata = self.metadata_as(&claims.username, Some(claims.token_id.clone()));
        metadata.role = Some(claims.role.as_str().to_string());
        metadata
    }

    /// Metadata for events caused by this request.
    pub fn metadata(&self) -> EventMetadata {
        let mut metadata = EventMetadata::new(ANONYMOUS, self.request_id.clone());
        metadata.client_ip = self.client_ip.clone();
        metadata.traceparent = self.traceparent.clone();
        metadata
    }
}

/// Extracts the request context; never rejects.
pub fn context() -> impl Filter<Extract = (RequestContext,), Error = Infallible> + Clone {
    warp::header::headers_cloned()
        .and(crate::server::peer())
        .map(|headers: HeaderMap, remote: Option<SocketAddr>| {
            let request_id = header(&headers, "x-request-id")
                .filter(|id| is_sane_request_id(id))
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let span = tracing::Span::current();
            span.record("request_id", request_id.as_str());
            let traceparent = traceparent(&headers);
            if let Some(trace_id) = traceparent.as_deref().and_then(|t| t.get(3..35)) {
                // Log lines join the caller's trace.
                span.record("trace_id", trace_id);
            }
            RequestContext {
                request_id,
                client_ip: remote.map(|addr| addr.ip().to_string()),
                traceparent,
            }
        })
}

/// The request's W3C `traceparent`, if sent and well-formed; of a later version, the four
/// fields version 00 defines (what Aurora understands and passes on).
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    header(headers, "traceparent")
        .filter(|t| is_traceparent(t))
        .map(|t| t.chars().take(55).collect())
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A request id safe to echo and log: short, and only `[A-Za-z0-9-_.:]`.
pub fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// W3C trace context, version 00: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`,
/// lower case, ids not all zeros (version `ff` is invalid; later versions may append fields).
pub fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    };
    let nonzero = |s: &str| s.chars().any(|c| c != '0');
    parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && (parts[0] != "00" || parts.len() == 4)
        && hex(parts[1], 32)
        && nonzero(parts[1])
        && hex(parts[2], 16)
        && nonzero(parts[2])
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_that_could_break_logs_are_replaced() {
        assert!(is_sane_request_id("req-42_a.b:c"));
        assert!(!is_sane_request_id("bad id"));
        assert!(!is_sane_request_id("line\nbreak"));
        assert!(!is_sane_request_id(&"x".repeat(MAX_REQUEST_ID_LEN + 1)));
    }

    #[test]
    fn only_well_formed_traceparents_are_kept() {
        assert!(is_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        ));
        assert!(!is_traceparent("00-xyz-b7ad6b7169203331-01"));
        assert!(!is_traceparent(
            "00-00000000000000000000000000000000-b7ad6b7169203331-01"
        ));
        assert!(!is_traceparent(
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"
        ));
        assert!(!is_traceparent(
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        ));
        assert!(!is_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"
        ));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::{is_sane_request_id, is_traceparent};

    proptest! {
        #![proptest_config(crate::properties())]

        #[test]
        fn a_traceparent_is_exactly_the_w3c_shape(
            trace in "[0-9a-f]{32}",
            parent in "[0-9a-f]{16}",
            flags in "[0-9a-f]{2}",
            noise in ".{0,60}",
        ) {
            let good = format!("00-{trace}-{parent}-{flags}");
            let zero = |s: &str| s.chars().all(|c| c == '0');
            prop_assert_eq!(is_traceparent(&good), !zero(&trace) && !zero(&parent));
            // Any other text: never a panic, and never accepted unless it has the shape.
            if is_traceparent(&noise) {
                prop_assert!(noise.split('-').count() >= 4 && noise.is_ascii());
            }
            prop_assert!(!is_traceparent(&good.to_uppercase()) || good == good.to_uppercase());
            let extended = format!("{good}-extra");
            prop_assert!(!is_traceparent(&extended));
        }

        #[test]
        fn request_ids_that_are_kept_are_log_safe(id in ".{0,300}") {
            if is_sane_request_id(&id) {
                prop_assert!(!id.is_empty() && id.len() <= 200);
                prop_assert!(id.chars().all(|c| c.is_ascii_graphic()));
            }
        }
    }
}
