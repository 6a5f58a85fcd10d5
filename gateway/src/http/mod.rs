//! The HTTP API: `/api/v1/...`, health, metrics, and the API's documentation (the OpenAPI
//! document at `/api/docs.json`, Swagger UI at `/api-docs/`). warp filters in the
//! `*::routes` functions, handlers beside them, every error as `application/problem+json`.

pub mod audit;
pub mod auth;
pub mod blocks;
pub mod body;
pub mod consistency;
pub mod console;
pub mod context;
pub mod cors;
pub mod credentials;
pub mod docs;
pub mod error;
pub mod files;
pub mod guard;
pub mod health;
pub mod history;
#[cfg(test)]
mod inprocess;
pub mod media;
pub mod page;
pub mod problem;
pub mod refusals;
pub mod routes;
pub mod run_events;
pub mod runs;
pub mod session;
pub mod tokens;
pub mod users;
pub mod vitals;
pub mod webhooks;

pub use routes::ROUTE_TEMPLATES;

use std::convert::Infallible;
use std::sync::Arc;

use warp::{Filter, Reply};

use crate::metrics::HttpLabels;
use crate::state::AppState;

/// Security headers on every response, errors included. The API serves JSON only, so the
/// content security policy allows nothing to load and nothing to frame it but itself.
pub fn security_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'self'; base-uri 'none'",
        ),
        ("x-frame-options", "SAMEORIGIN"),
        ("x-content-type-options", "nosniff"),
        (
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        ),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(name, http::HeaderValue::from_static(value));
    }
    headers
}

/// The content security policy of the API docs UI (`/api-docs/...`), instead of the API's
/// "nothing": its own scripts, styles and images, and calls to this API ("try it out").
/// Swagger UI sets inline style attributes, hence `'unsafe-inline'` for styles only; its
/// scripts are all files served from here. Its stylesheet embeds icons as `data:` URLs.
pub const DOCS_UI_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

/// Is `path` part of the API docs UI (which gets [`DOCS_UI_CSP`])?
fn is_docs_ui(path: &str) -> bool {
    path == "/api-docs" || path.starts_with("/api-docs/")
}

pub use console::CONSOLE_CSP;

/// The content security policy of the pages at `path`, where it is not the API's.
fn page_policy(path: &str) -> Option<&'static str> {
    if is_docs_ui(path) {
        Some(DOCS_UI_CSP)
    } else if console::is_console(path) {
        Some(CONSOLE_CSP)
    } else {
        None
    }
}

/// Every route, with problem+json for rejections, security headers, request metrics and a
/// tracing span per request (which carries the request id into every log line).
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let observed = state.clone();
    let refusals = state.clone();
    let cors = state.clone();
    // CORS preflights are answered before anything else (no token, no limit).
    let preflight = warp::options()
        .and(warp::header::<String>("access-control-request-method"))
        .and(warp::header::optional::<String>("origin"))
        .map(move |_method: String, origin: Option<String>| cors.cors.preflight(origin.as_deref()));
    let api = history::routes(state.clone())
        .or(audit::routes(state.clone()))
        // The runs' event streams first: `/runs/live` is not a run id.
        .or(run_events::routes(state.clone()))
        .or(runs::routes(state.clone()))
        .or(runs::artifacts::routes(state.clone()))
        .or(auth::routes(state.clone()))
        .or(session::routes(state.clone()))
        .or(tokens::routes(state.clone()))
        .or(users::routes(state.clone()))
        .or(webhooks::routes(state.clone()))
        .or(blocks::routes(state.clone()))
        .or(media::routes(state.clone()))
        .or(health::routes(state.clone()))
        .or(vitals::routes(state.clone()))
        .or(docs::routes())
        .or(console::routes());
    // The session guard first: a request another site's page made on a user's session
    // must not spend (and so block) that user's rate limits. Then the limits: a limited or
    // blocked client is answered at once, never held.
    let served = head(state.config.max_header_bytes)
        .and(session::guard())
        .and(crate::limits::filter::filter(state.clone()))
        .and(revocations_current(state))
        .and(api)
        .map(|decision, reply| crate::limits::with_headers(decision, Reply::into_response(reply)))
        .recover(recover)
        .map(Reply::into_response);
    let served = preflight.or(served).unify();
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(crate::server::peer())
        .and(served)
        .then(
            move |method,
                  path: warp::path::FullPath,
                  headers: http::HeaderMap,
                  remote,
                  response| {
                let state = refusals.clone();
                let policy = page_policy(path.as_str());
                async move {
                    let origin = headers
                        .get(http::header::ORIGIN)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let response =
                        refusals::observe(state.clone(), method, path, headers, remote, response)
                            .await;
                    finish(&state, origin.as_deref(), policy, response)
                }
            },
        )
        .with(warp::log::custom(move |info| {
            count(
                &observed,
                info.method(),
                info.path(),
                info.status().as_u16(),
                info.elapsed(),
            );
            tracing::info!(
                target: "aurora::access",
                method = %info.method(),
                path = info.path(),
                status = info.status().as_u16(),
                elapsed_ms = info.elapsed().as_secs_f64() * 1000.0,
                "request served"
            );
        }))
        .with(warp::trace(|info| {
            // `principal` is recorded once the token is authorized (`auth::authorize`).
            tracing::info_span!(
                "request",
                method = %info.method(),
                route = routes::route_template(info.path()),
                path = info.path(),
                request_id = tracing::field::Empty,
                trace_id = tracing::field::Empty,
                principal = tracing::field::Empty,
            )
        }))
}

/// A request presenting a token while this replica cannot vouch that its revocation set
/// is current (see [`crate::replicated`]).
#[derive(Debug)]
pub struct RevocationsNotCurrent;

impl warp::reject::Reject for RevocationsNotCurrent {}

/// Holds a request that presents a token until this replica's revocation set is current:
/// a replica that was frozen, or cut off from the store, must not honour a token revoked
/// elsewhere meanwhile. At once where it is current (always, embedded); 503 if it does not
/// become so within a moment. Requests without a token pass.
fn revocations_current(
    state: Arc<AppState>,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::header::headers_cloned()
        .and_then(move |headers: http::HeaderMap| {
            let state = state.clone();
            async move {
                let presents = credentials::presents_token(&headers);
                if presents
                    && !state
                        .revocations_are_current(crate::replicated::CURRENT_WAIT)
                        .await
                {
                    return Err(warp::reject::custom(RevocationsNotCurrent));
                }
                Ok(())
            }
        })
        .untuple_one()
}

/// A request head the gateway refuses before routing it.
#[derive(Debug)]
pub enum BadHead {
    /// Header names and values together past the limit, in bytes.
    TooLarge { size: usize, limit: usize },
    /// A `traceparent` that is not W3C trace context.
    Traceparent,
}

impl warp::reject::Reject for BadHead {}

/// Checks what every route relies on in a request's head: its size, and a `traceparent`
/// that can be carried into events (a malformed one is refused rather than silently
/// dropped: the caller's trace would break without telling them).
fn head(limit: usize) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::header::headers_cloned()
        .and_then(move |headers: http::HeaderMap| async move {
            let size: usize = headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum();
            if size > limit {
                return Err(warp::reject::custom(BadHead::TooLarge { size, limit }));
            }
            let mut traceparents = headers.get_all("traceparent").iter();
            if let Some(first) = traceparents.next() {
                let valid = first.to_str().is_ok_and(context::is_traceparent);
                if !valid || traceparents.next().is_some() {
                    return Err(warp::reject::custom(BadHead::Traceparent));
                }
            }
            Ok(())
        })
        .untuple_one()
}

/// The answer to a request that ran past its timeout (see [`crate::server`]): counted,
/// logged, with the request id and CORS headers like any other.
pub fn timed_out(state: &AppState, request: crate::server::TimedOut) -> warp::reply::Response {
    let route = routes::route_template(&request.path);
    let request_id = request
        .request_id
        .filter(|id| context::is_sane_request_id(id))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let after = request.after;
    tracing::warn!(
        method = %request.method,
        route,
        request_id,
        ?after,
        "request timed out"
    );
    count(state, &request.method, &request.path, 503, after);
    let ctx = context::RequestContext {
        request_id,
        client_ip: None,
        traceparent: None,
    };
    let mut response = problem::Problem::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "request-timeout",
        "Request timed out",
        format!(
            "no answer within {} s; the request was abandoned. If it was a command it may \
             still have been applied: read before retrying",
            after.as_secs()
        ),
    )
    .response(Some(&ctx));
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("5"),
    );
    let policy = page_policy(&request.path);
    finish(state, request.origin.as_deref(), policy, response)
}

/// What every response gets on its way out: CORS headers for `origin`, the security
/// headers (replacing any a handler set), and the docs UI's and console's own policies on
/// their pages.
fn finish(
    state: &AppState,
    origin: Option<&str>,
    policy: Option<&'static str>,
    response: warp::reply::Response,
) -> warp::reply::Response {
    let mut response = state.cors.decorate(origin, response);
    response.headers_mut().extend(security_headers());
    if let Some(policy) = policy {
        response.headers_mut().insert(
            http::header::CONTENT_SECURITY_POLICY,
            http::HeaderValue::from_static(policy),
        );
    }
    response
}

/// Counts a request served (or abandoned) in the HTTP metrics, by route template.
fn count(
    state: &AppState,
    method: &http::Method,
    path: &str,
    status: u16,
    elapsed: std::time::Duration,
) {
    let labels = HttpLabels {
        method: method.to_string(),
        route: routes::route_template(path).to_string(),
        status,
    };
    state.metrics.http_requests.get_or_create(&labels).inc();
    state.metrics.requests_answered.inc();
    state
        .metrics
        .http_duration
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
}

/// Turns warp's own rejections (no route, wrong method, body too large …) into problems.
async fn recover(rejection: warp::Rejection) -> Result<warp::reply::Response, Infallible> {
    use warp::reject;
    if let Some(limited) = rejection.find::<crate::limits::Limited>() {
        return Ok(limited.response());
    }
    let problem = if rejection.is_not_found() {
        problem::Problem::not_found("no such resource; the API lives under /api/v1")
    } else if let Some(bad) = rejection.find::<BadHead>() {
        match bad {
            BadHead::TooLarge { size, limit } => problem::Problem::new(
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request header fields too large",
                format!("the headers take {size} bytes; the limit is {limit}"),
            ),
            BadHead::Traceparent => problem::Problem::bad_request(
                "invalid-traceparent",
                "traceparent must be W3C trace context: \
                 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lower case, ids not \
                 all zeros, sent once",
            ),
        }
    } else if rejection.find::<RevocationsNotCurrent>().is_some() {
        let mut response = problem::Problem::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "revocations-not-current",
            "Service unavailable",
            "this replica cannot tell yet whether the token was revoked (it lost sight of \
             the event store); retry in a moment",
        )
        .response(None);
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        return Ok(response);
    } else if let Some(refused) = rejection.find::<session::CsrfRefused>() {
        refused.problem()
    } else if let Some(e) = rejection.find::<body::BodyTooLarge>() {
        problem::Problem::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Payload too large",
            format!("the body is larger than the limit of {} bytes", e.limit),
        )
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        problem::Problem::new(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this resource does not support that method",
        )
    } else if let Some(e) = rejection.find::<reject::InvalidHeader>() {
        problem::Problem::bad_request("invalid-header", e.to_string())
    } else if let Some(e) = rejection.find::<reject::InvalidQuery>() {
        problem::Problem::bad_request("invalid-query", e.to_string())
    } else {
        problem::Problem::internal(&format!("unhandled rejection: {rejection:?}"))
    };
    Ok(problem.response(None))
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_paths_collapse_to_route_templates() {
        assert_eq!(
            super::routes::route_template("/api/v1/runs/abc"),
            "/api/v1/runs/{id}"
        );
        assert_eq!(
            super::routes::route_template("/api/v1/runs"),
            "/api/v1/runs"
        );
        assert_eq!(
            super::routes::route_template("/api/v1/runs/"),
            "/api/v1/runs"
        );
        assert_eq!(
            super::routes::route_template("/api/v1/users/me"),
            "/api/v1/users/me"
        );
        assert_eq!(
            super::routes::route_template("/api/v1/users/alice"),
            "/api/v1/users/{id}"
        );
        assert_eq!(super::routes::route_template("/api-docs/"), "/api-docs");
        assert_eq!(super::routes::route_template("/api/v1"), "unmatched");
        assert_eq!(
            super::routes::route_template("/api/v1/runs/a/b"),
            "unmatched"
        );
        assert_eq!(super::routes::route_template("/"), "/");
        assert_eq!(super::routes::route_template("/console/"), "/console");
        assert_eq!(
            super::routes::route_template("/console/js/admin/users.js"),
            "/console/{path}"
        );
        assert_eq!(super::routes::route_template("/consoles/x"), "unmatched");
        assert_eq!(
            super::routes::route_template("/../../etc/passwd"),
            "unmatched"
        );
    }

    #[test]
    fn every_template_is_its_own_template() {
        for template in super::ROUTE_TEMPLATES {
            let path = template.replace('{', "x").replace('}', "");
            assert_eq!(super::routes::route_template(&path), *template, "{path}");
        }
    }
}
