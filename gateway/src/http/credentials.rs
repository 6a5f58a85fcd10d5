//! The credentials a request presents, read from its headers (checking them is `auth`'s).

use http::{HeaderMap, StatusCode};

use super::problem::Problem;

/// Does the request carry a token in a header (`Authorization` or `x-api-key`)? Such a
/// request is judged by that token alone: a session cookie beside it is ignored.
pub fn presents_header_token(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::AUTHORIZATION) || headers.contains_key("x-api-key")
}

/// Does the request present a token in any of the ways [`presented_token`] reads?
pub fn presents_token(headers: &HeaderMap) -> bool {
    presents_header_token(headers) || cookie_token(headers).is_some()
}

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
    if let Some(token) = cookie_token(headers) {
        return Ok(token);
    }
    Err(unauthorized(
        "missing-token",
        "this endpoint needs a token: 'Authorization: Bearer <token>' or 'x-api-key: <token>' \
         (log in at POST /api/v1/auth/login), or a browser session (POST /api/v1/auth/session)",
    ))
}

/// The cookie that holds the session token (over plain HTTP: a laptop's localhost).
pub const SESSION_COOKIE: &str = "aurora_session";
/// The cookie that holds it over TLS: browsers only accept a `__Host-` cookie from this
/// host itself, `Secure`, for `Path=/` and no `Domain`, so a sibling subdomain cannot plant
/// one ("cookie tossing").
pub const HOST_SESSION_COOKIE: &str = "__Host-aurora_session";
/// The session token a request's cookies carry, if any: the `__Host-` cookie when there
/// is one; else the plain cookie, if there is exactly one (two mean one was planted by
/// another host of the domain: neither is trusted).
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    let cookies = || {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .map(|(name, value)| (name, value.trim().trim_matches('"')))
    };
    let value = |wanted: &str| {
        let mut found = cookies().filter(move |(name, _)| *name == wanted);
        match (found.next(), found.next()) {
            (Some((_, value)), None) => Some(value),
            _ => None,
        }
    };
    value(HOST_SESSION_COOKIE)
        .or_else(|| value(SESSION_COOKIE))
        .filter(|value| !value.is_empty())
}
