//! The credentials a request presents, read from its headers (checking them is `auth`'s).

use http::{HeaderMap, StatusCode};

use super::problem::Problem;

/// The token of a request: `Authorization: Bearer <token>`, `x-api-key: <token>`, or else
/// the browser session's cookie (see [`super::session`]).
pub fn presented_token(headers: &HeaderMap) -> Result<&str, Problem> {
    let unauthorized =
        |slug, detail: &str| Problem::new(StatusCode::UNAUTHORIZED, slug, "Unauthorized", detail);
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| unauthorized("invalid-token", "the Authorization header is not text"))?;
        return match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
            _ => Err(unauthorized(
                "invalid-token",
                "use 'Authorization: Bearer <token>' (or the x-api-key header)",
            )),
        };
    }
    if let Some(value) = headers.get("x-api-key") {
        return value
            .to_str()
            .map(str::trim)
            .map_err(|_| unauthorized("invalid-token", "the x-api-key header is not text"));
    }
    // A browser's session (the web console): the token in the HttpOnly cookie.
    if let Some(token) = super::session::cookie_token(headers) {
        return Ok(token);
    }
    Err(unauthorized(
        "missing-token",
        "this endpoint needs a token: 'Authorization: Bearer <token>' or 'x-api-key: <token>' \
         (log in at POST /api/v1/auth/login), or a browser session (POST /api/v1/auth/session)",
    ))
}
