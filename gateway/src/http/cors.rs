//! CORS from an allowlist (`AURORA_CORS_ORIGINS`): browsers on those origins may call the
//! API. Other origins' tokens travel in headers (the console's session cookie is
//! same-origin only, `SameSite=Strict`), so credentials are never allowed, and `*`
//! (any origin) is therefore safe to offer.
//!
//! - A request without `Origin` (curl, services) is untouched.
//! - A preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is
//!   answered 204 with the methods and headers the API takes; from any other origin 403.
//! - An actual request from an allowed origin gets `Access-Control-Allow-Origin` and the
//!   headers a client may read; from any other origin it is served without them, so the
//!   browser withholds the answer from the page.

use http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;

use super::problem::Problem;

/// Methods the API takes.
const METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
/// Request headers the API reads.
const ALLOW_HEADERS: &str =
    "authorization, content-type, x-api-key, x-request-id, traceparent, last-event-id, range, \
     aurora-after-position";
/// Response headers a page may read.
const EXPOSE_HEADERS: &str = "x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, \
     ratelimit-reset, content-range, x-audit-chain, aurora-position, aurora-consistency";
/// How long a browser may cache a preflight, in seconds.
const MAX_AGE: &str = "600";

/// The allowed origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origins {
    /// None: no CORS headers, preflights refused.
    #[default]
    None,
    /// Any origin (`*`).
    Any,
    /// These, exactly (`scheme://host[:port]`, lowercase).
    Listed(Vec<String>),
}

impl Origins {
    /// Parses `AURORA_CORS_ORIGINS`: empty, `*`, or comma-separated origins.
    pub fn parse(text: &str) -> Result<Self, String> {
        let items: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(Origins::None);
        }
        if items == ["*"] {
            return Ok(Origins::Any);
        }
        let mut origins = Vec::new();
        for item in items {
            if item == "*" {
                return Err("'*' must stand alone (it already allows every origin)".into());
            }
            let Some((scheme, rest)) = item.split_once("://") else {
                return Err(format!("'{item}' is not an origin: scheme://host[:port]"));
            };
            let host_ok = !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
            if !matches!(scheme, "http" | "https") || !host_ok {
                return Err(format!(
                    "'{item}' is not an origin: http(s)://host[:port], no path or trailing slash"
                ));
            }
            origins.push(item.to_ascii_lowercase());
        }
        Ok(Origins::Listed(origins))
    }

    fn allows(&self, origin: &str) -> bool {
        match self {
            Origins::None => false,
            Origins::Any => true,
            Origins::Listed(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }

    /// The answer to a preflight from `origin`.
    pub fn preflight(&self, origin: Option<&str>) -> Response {
        let Some(origin) = origin.filter(|o| self.allows(o)) else {
            return Problem::new(
                StatusCode::FORBIDDEN,
                "cors-forbidden",
                "Forbidden",
                "this origin may not call the API from a browser (AURORA_CORS_ORIGINS)",
            )
            .response(None);
        };
        let mut response = Response::new(Vec::new().into());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        self.allow(headers, origin);
        for (name, value) in [
            ("access-control-allow-methods", METHODS),
            ("access-control-allow-headers", ALLOW_HEADERS),
            ("access-control-max-age", MAX_AGE),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }

    /// Adds the CORS headers to the answer of an actual request from `origin`.
    pub fn decorate(&self, origin: Option<&str>, mut response: Response) -> Response {
        if let Some(origin) = origin.filter(|o| self.allows(o)) {
            let headers = response.headers_mut();
            self.allow(headers, origin);
            headers.insert(
                "access-control-expose-headers",
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
        response
    }

    fn allow(&self, headers: &mut HeaderMap, origin: &str) {
        let value = match self {
            Origins::Any => Some(HeaderValue::from_static("*")),
            _ => HeaderValue::from_str(origin).ok(),
        };
        if let Some(value) = value {
            headers.insert("access-control-allow-origin", value);
        }
        headers.append("vary", HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_from_an_allowlist_and_bad_ones_are_named() {
        assert_eq!(Origins::parse("").unwrap(), Origins::None);
        assert_eq!(Origins::parse(" * ").unwrap(), Origins::Any);
        assert_eq!(
            Origins::parse("https://App.example.com, http://localhost:3000").unwrap(),
            Origins::Listed(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        for bad in [
            "app.example.com",
            "https://a.example/",
            "ftp://a.example",
            "*, https://a.b",
        ] {
            let error = Origins::parse(bad).unwrap_err();
            assert!(error.contains('\''), "{bad}: {error}");
        }
    }
}
