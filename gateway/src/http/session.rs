//! `/api/v1/auth/session`: the browser's session, for the web console.
//!
//! Signing in checks the password like login does (same limits, same single answer for
//! every failure) and puts the session token in a cookie the page's scripts cannot read
//! (`HttpOnly`), that no other site's request carries (`SameSite=Strict`), and that
//! travels only over TLS when the page was served over it (`Secure`). Requests that
//! authenticate by that cookie and change anything must also carry `X-CSRF-Token`: a
//! value derived from the session token, which only a page that read
//! `GET /api/v1/auth/session` knows ([`csrf`]). Bearer tokens and `x-api-key` work as
//! before and need no CSRF token: browsers never attach them on their own.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aurora_domain::user::UserCommand;
use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha256};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::auth::{log_in, rfc3339, UserBody};
use super::body::{json, json_body, no_content, JsonBody};
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::guard::authenticate;
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::tokens::Access;
use crate::state::AppState;

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Where the cookie is sent: the API (the console's files need no session).
const COOKIE_PATH: &str = "/api/";
pub use super::credentials::{cookie_token, HOST_SESSION_COOKIE, SESSION_COOKIE};
use super::credentials::{presents_header_token, presents_token};
/// The sign-in route, the one unsafe request that may come without a CSRF token.
pub use super::routes::SIGN_IN;

/// The CSRF token of session `token`: derived from it (so it needs no storage, and dies
/// with the session), and telling nothing about it.
pub fn csrf(token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"aurora csrf v1\0");
    hash.update(token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.finalize())
}

/// A state-changing request that rode on the session cookie without proving it came
/// from the console.
#[derive(Debug)]
pub struct CsrfRefused(pub &'static str);

impl warp::reject::Reject for CsrfRefused {}

impl CsrfRefused {
    /// The problem it is answered with.
    pub fn problem(&self) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "csrf-refused", "Forbidden", self.0)
    }
}

/// Refuses cross-site and unproven state-changing requests that authenticate by the
/// session cookie (see the module doc). Requests presenting a bearer token or
/// `x-api-key` are judged by that token alone.
pub fn guard() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(
            |method: Method, path: warp::path::FullPath, headers: HeaderMap| async move {
                check(&method, path.as_str(), &headers).map_err(warp::reject::custom)
            },
        )
        .untuple_one()
}

/// What [`guard`] decides.
pub fn check(method: &Method, path: &str, headers: &HeaderMap) -> Result<(), CsrfRefused> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let bearer = presents_header_token(headers);
    let cookie = !bearer && cookie_token(headers).is_some();
    if safe {
        // A read riding on the session from a page of another site (a sibling subdomain:
        // SameSite lets those through) is refused too: it could drain the user's rate
        // limits and get them blocked. The console only ever asks from its own origin.
        return if cookie && browser_says_another_site(headers) {
            Err(CsrfRefused(
                "a request from another site cannot use this session",
            ))
        } else {
            Ok(())
        };
    }
    if method == Method::POST && path.trim_end_matches('/') == SIGN_IN {
        // Signing in: no session to prove yet, but never from another site's page (it
        // would sign the browser in as someone else).
        return if from_another_site(headers) {
            Err(CsrfRefused(
                "signing in is only possible from this site's own pages",
            ))
        } else {
            Ok(())
        };
    }
    let Some(token) = cookie_token(headers).filter(|_| !bearer) else {
        return Ok(());
    };
    if from_another_site(headers) {
        return Err(CsrfRefused(
            "a request from another site cannot act on this session",
        ));
    }
    let expected = csrf(token);
    let given = headers
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if constant_time_eq(given, expected.as_bytes()) {
        Ok(())
    } else {
        Err(CsrfRefused(
            "a request that changes something and is authenticated by the session cookie \
             must carry X-CSRF-Token, as GET /api/v1/auth/session gives it",
        ))
    }
}

/// Did the browser's `Sec-Fetch-Site` say the request comes from a page of another site
/// or origin?
fn browser_says_another_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| !matches!(site, "same-origin" | "none"))
}

/// Did a browser say the request comes from a page of another site (or origin)?
fn from_another_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site").is_some() {
        return browser_says_another_site(headers);
    }
    // Older browsers: the Origin, if sent, must be this host.
    match (text("origin"), text("host")) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_none_or(|(_, authority)| !authority.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Was the page that asked served over TLS (directly, or by a proxy that says so)?
fn over_tls(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    text("x-forwarded-proto").is_some_and(|p| {
        p.split(',')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }) || text("origin").is_some_and(|o| o.starts_with("https://"))
}

/// The `Set-Cookie` value that stores `token` for `ttl` (or, with `None`, removes it):
/// `__Host-aurora_session` over TLS, `aurora_session` for the API's paths otherwise.
fn cookie(token: Option<&str>, ttl: Duration, secure: bool) -> HeaderValue {
    let (value, max_age) = match token {
        Some(token) => (token, ttl.as_secs()),
        None => ("", 0),
    };
    let (name, path, secure) = if secure {
        (HOST_SESSION_COOKIE, "/", "; Secure")
    } else {
        (SESSION_COOKIE, COOKIE_PATH, "")
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("a token is base64url")
}

/// The routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let body = json_body(state.config.max_body_bytes);
    let with_state = warp::any().map(move || state.clone());
    let headers = warp::header::headers_cloned();
    let sign_in = warp::path!("api" / "v1" / "auth" / "session")
        .and(warp::post())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .and(body)
        .then(sign_in);
    let current = warp::path!("api" / "v1" / "auth" / "session")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .then(current);
    let sign_out = warp::path!("api" / "v1" / "auth" / "session")
        .and(warp::delete())
        .and(context())
        .and(with_state)
        .and(headers)
        .then(sign_out);
    sign_in.or(current).unify().or(sign_out).unify()
}

/// A browser session.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionBody {
    /// Who is signed in.
    user: UserBody,
    /// Send it as `X-CSRF-Token` with every request that changes something (absent when
    /// the request did not authenticate by the session cookie).
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    /// When the session ends (RFC 3339), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

/// Signs a browser in: checks the password like login, and keeps the session token in an
/// `HttpOnly`, `SameSite=Strict` cookie (`Secure` over TLS). The body gives the user and
/// the CSRF token, never the session token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/session",
    tag = "auth",
    operation_id = "sign_in",
    request_body(content = super::auth::Credentials, description = "The username and password", example = json!({"username": "ada", "password": "correct horse battery staple"})),
    responses(
        (status = 200, description = "Signed in; the session is in the aurora_session cookie", body = SessionBody,
            headers(("set-cookie" = String, description = "aurora_session=…; Path=/api/; HttpOnly; SameSite=Strict"))),
        (status = 400, description = "The body is empty or not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "The username or password is wrong, or the account is disabled (login-failed)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Sent from another site's page (csrf-refused)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The user was changed at the same time; retry", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad body", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts, or blocked; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn sign_in(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let minted = log_in(&ctx, &state, body, SIGN_IN).await?;
        let claims = state
            .identity
            .tokens
            .holder(&minted.token)
            .ok_or_else(|| Problem::internal(&"a token just minted does not verify"))?;
        let user = state.identity.users.load(&claims.username).await?;
        let user = UserBody::of(&claims.username, &user)
            .ok_or_else(|| Problem::not_found("the user no longer exists"))?;
        let ttl = minted
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let body = SessionBody {
            user,
            csrf_token: Some(csrf(&minted.token)),
            expires_at: Some(rfc3339(minted.expires_at)),
        };
        let mut response = json(StatusCode::OK, &body, &ctx);
        let headers_out = response.headers_mut();
        headers_out.insert(
            http::header::SET_COOKIE,
            cookie(Some(&minted.token), ttl, over_tls(&headers)),
        );
        headers_out.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        Ok(response)
    }
    .await;
    respond(&ctx, result)
}

/// The session of the request (its cookie, or a bearer token): who, and the CSRF token a
/// page needs for requests that change something; 204 when the request has none.
#[utoipa::path(
    get,
    path = "/api/v1/auth/session",
    tag = "auth",
    operation_id = "current_session",
    responses(
        (status = 200, description = "The session", body = SessionBody),
        (status = 204, description = "No credentials: no session"),
        (status = 403, description = "The token does not allow users:read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The token's user no longer exists", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("session_cookie" = []), ("biscuit" = []), ("api_key" = []))
)]
async fn current(ctx: RequestContext, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let result: Result<Response, ApiError> = async {
        // No credentials at all: simply no session (a page asking on load is not refused,
        // nor recorded as a refusal).
        if !presents_token(&headers) {
            return Ok(no_content(&ctx));
        }
        let claims = authenticate(&state, &headers, Access::own("users:read"))?;
        let user = state.identity.users.load(&claims.username).await?;
        let user = UserBody::of(&claims.username, &user)
            .ok_or_else(|| Problem::not_found("the token's user no longer exists"))?;
        let body = SessionBody {
            user,
            csrf_token: cookie_token(&headers)
                .filter(|_| !presents_header_token(&headers))
                .map(csrf),
            expires_at: None,
        };
        let mut response = json(StatusCode::OK, &body, &ctx);
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        Ok(response)
    }
    .await;
    respond(&ctx, result)
}

/// Signs out: revokes the session token (on every replica, like any revocation) and
/// removes the cookie.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/session",
    tag = "auth",
    operation_id = "sign_out",
    responses(
        (status = 204, description = "Revoked, and the cookie removed",
            headers(("set-cookie" = String, description = "aurora_session=; Max-Age=0"))),
        (status = 403, description = "Without X-CSRF-Token (csrf-refused), or the token does not allow auth:logout", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The token is not live on its user", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The user was changed at the same time; retry", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("session_cookie" = []), ("biscuit" = []), ("api_key" = []))
)]
async fn sign_out(ctx: RequestContext, state: Arc<AppState>, headers: HeaderMap) -> Response {
    let result: Result<Response, ApiError> = async {
        let claims = authenticate(&state, &headers, Access::own("auth:logout"))?;
        let command = UserCommand::LogOut {
            token_id: claims.token_id.clone(),
        };
        super::tokens::on_own_user(&state, &ctx, &claims, command).await?;
        state.metrics.command("LogOut", "accepted");
        let mut response = no_content(&ctx);
        response.headers_mut().insert(
            http::header::SET_COOKIE,
            cookie(None, Duration::ZERO, over_tls(&headers)),
        );
        Ok(response)
    }
    .await;
    respond(&ctx, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; aurora_session=tok.en_-; b=2")]);
        assert_eq!(cookie_token(&h), Some("tok.en_-"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "aurora_session=x")]);
        assert_eq!(cookie_token(&h), Some("x"));
        let h = headers(&[("cookie", "xaurora_session=x; aurora_session=")]);
        assert_eq!(cookie_token(&h), None);
        // Two plain cookies: one was planted; neither counts. The __Host- one wins.
        let h = headers(&[("cookie", "aurora_session=planted; aurora_session=mine")]);
        assert_eq!(cookie_token(&h), None);
        let h = headers(&[(
            "cookie",
            "aurora_session=planted; __Host-aurora_session=mine",
        )]);
        assert_eq!(cookie_token(&h), Some("mine"));
    }

    #[test]
    fn unsafe_cookie_requests_need_the_sessions_csrf_token() {
        let cookie = ("cookie", "aurora_session=secret");
        let post = Method::POST;
        let path = "/api/v1/runs";
        assert!(check(&post, path, &headers(&[cookie])).is_err());
        assert!(check(&post, path, &headers(&[cookie, ("x-csrf-token", "nope")])).is_err());
        let other = csrf("other");
        assert!(check(&post, path, &headers(&[cookie, ("x-csrf-token", &other)])).is_err());
        let right = csrf("secret");
        assert!(check(&post, path, &headers(&[cookie, ("x-csrf-token", &right)])).is_ok());
        for method in [Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(
                check(&method, path, &headers(&[cookie])).is_err(),
                "{method}"
            );
        }
        // Reads need none, but not from another site's page; nor requests that present a
        // bearer token (the cookie is then ignored), nor requests without the cookie.
        assert!(check(&Method::GET, path, &headers(&[cookie])).is_ok());
        let same = ("sec-fetch-site", "same-origin");
        assert!(check(&Method::GET, path, &headers(&[cookie, same])).is_ok());
        let sibling = ("sec-fetch-site", "same-site");
        assert!(check(&Method::GET, path, &headers(&[cookie, sibling])).is_err());
        let bearer = ("authorization", "Bearer t");
        assert!(check(&Method::GET, path, &headers(&[cookie, sibling, bearer])).is_ok());
        assert!(check(&post, path, &headers(&[cookie, bearer])).is_ok());
        assert!(check(&post, path, &headers(&[])).is_ok());
        // The right token from another site's page is still refused.
        let cross = ("sec-fetch-site", "cross-site");
        assert!(check(
            &post,
            path,
            &headers(&[cookie, ("x-csrf-token", &right), cross])
        )
        .is_err());
    }

    #[test]
    fn signing_in_from_another_site_is_refused() {
        let post = Method::POST;
        assert!(check(&post, SIGN_IN, &headers(&[])).is_ok());
        assert!(check(
            &post,
            SIGN_IN,
            &headers(&[("sec-fetch-site", "same-origin")])
        )
        .is_ok());
        for site in ["cross-site", "same-site"] {
            let h = headers(&[("sec-fetch-site", site)]);
            assert!(check(&post, SIGN_IN, &h).is_err(), "{site}");
        }
        let h = headers(&[
            ("origin", "https://evil.example"),
            ("host", "aurora.example"),
        ]);
        assert!(check(&post, SIGN_IN, &h).is_err());
        let h = headers(&[
            ("origin", "https://aurora.example"),
            ("host", "aurora.example"),
        ]);
        assert!(check(&post, SIGN_IN, &h).is_ok());
        assert!(check(&post, SIGN_IN, &headers(&[("origin", "null")])).is_err());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let set = cookie(Some("t"), Duration::from_secs(60), true);
        let set = set.to_str().unwrap();
        for part in [
            "__Host-aurora_session=t",
            "Path=/;",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Max-Age=60",
        ] {
            assert!(set.contains(part), "{set}");
        }
        let plain = cookie(Some("t"), Duration::from_secs(60), false);
        assert!(!plain.to_str().unwrap().contains("Secure"));
        assert!(over_tls(&headers(&[("x-forwarded-proto", "https")])));
        assert!(over_tls(&headers(&[("origin", "https://a.example")])));
        assert!(!over_tls(&headers(&[("origin", "http://a.example")])));
    }
}
