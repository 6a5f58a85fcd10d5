//! The route templates the router serves: metric labels, refusal records and the API docs
//! name routes by them (bounded cardinality).

/// Every route template the router serves, for metric labels and the API docs. A template
/// segment in braces stands for any one path segment, but a last segment `{path}` for one or
/// more (a file path, as in `/console/{path}`); a path takes the first template that fits it (so `/api/v1/users/me` comes before `/api/v1/users/{id}`). The OpenAPI document
/// describes exactly these paths (a test holds the router, this list and the document to
/// one another).
pub const ROUTE_TEMPLATES: &[&str] = &[
    "/api/v1/runs",
    "/api/v1/runs/live",
    "/api/v1/runs/{id}",
    "/api/v1/runs/{id}/cancel",
    "/api/v1/runs/{id}/artifacts",
    "/api/v1/runs/{id}/artifacts/{artifact}",
    "/api/v1/runs/{id}/events",
    "/api/v1/runs/{id}/history",
    "/api/v1/users/me",
    "/api/v1/users/{id}/history",
    "/api/v1/audit",
    "/api/v1/audit/export",
    "/api/v1/media",
    "/api/v1/media/{id}",
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/logout",
    "/api/v1/auth/whoami",
    "/api/v1/auth/session",
    "/api/v1/auth/keys",
    "/api/v1/auth/tokens",
    "/api/v1/auth/tokens/{id}",
    "/api/v1/users",
    "/api/v1/users/{id}",
    "/api/v1/webhooks/identity",
    "/api/v1/webhooks/heygen",
    "/api/v1/admin/blocks",
    "/api/v1/admin/blocks/{key}",
    "/api/v1/health/metrics",
    "/api/docs.json",
    "/api/docs",
    "/api-docs",
    "/api-docs/{file}",
    "/health",
    "/ready",
    "/live",
    "/metrics",
    "/",
    "/console",
    "/console/{path}",
];

/// The browser's sign-in (`POST`): the one state-changing request a browser session may
/// make without a CSRF token (see `http::session`).
pub const SIGN_IN: &str = "/api/v1/auth/session";

/// The template of paths no route serves.
pub const UNMATCHED: &str = "unmatched";

/// The route template of a path, for metric labels (bounded cardinality): the first of
/// [`ROUTE_TEMPLATES`] that fits it, or [`UNMATCHED`].
pub fn route_template(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    ROUTE_TEMPLATES
        .iter()
        .find(|template| {
            let mut parts = template.trim_start_matches('/').split('/').peekable();
            let mut rest = false;
            segments.iter().all(|segment| {
                if rest {
                    return true;
                }
                let part = parts.next();
                if part == Some("{path}") && parts.peek().is_none() {
                    rest = true;
                }
                part.is_some_and(|part| part.starts_with('{') || part == *segment)
            }) && parts.next().is_none()
        })
        .copied()
        .unwrap_or(UNMATCHED)
}
