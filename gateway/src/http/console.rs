//! The web console: `/console/`, files compiled into the binary (`gateway/console/`, see
//! `build.rs`), and `/` sending browsers there. Nothing is read from disk at run time, so
//! no request path can reach a file that is not one of the console's: a path is looked up
//! in a fixed table, never joined to a directory.
//!
//! The console is a client of the public API like any other; it signs in through
//! `POST /api/v1/auth/session`, which keeps the token in an `HttpOnly` cookie
//! (see [`super::session`]).

use std::collections::HashMap;
use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::with_request_id;
use super::context::{context, RequestContext};
use super::problem::Problem;

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// Where the console lives.
pub const CONSOLE_PATH: &str = "/console/";

/// The console's content security policy: its own scripts (and WebAssembly, for the
/// Biscuit library that narrows keys in the page), its own styles, no inline script or
/// style anywhere; media, images and calls from this origin only; never framed.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
     connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'";

/// Is `path` the console's (which gets [`CONSOLE_CSP`])?
pub fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with(CONSOLE_PATH)
}

/// A file of the console, ready to serve.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    CONSOLE_ASSETS
        .iter()
        .map(|(path, bytes)| {
            let digest = Sha256::digest(bytes);
            let etag = format!("\"{}\"", hex::encode(&digest[..16]));
            let asset = Asset {
                bytes,
                content_type: content_type(path),
                etag: HeaderValue::from_str(&etag).expect("hex is a valid header value"),
            };
            (*path, asset)
        })
        .collect()
});

/// The media type of a console file, by its extension (the table is the console's own).
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// The routes: `/`, `/console` and the console's files. None needs a token.
pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let root = warp::path::end()
        .and(warp::get())
        .and(context())
        .map(|ctx: RequestContext| to_console(&ctx));
    let console = warp::path("console")
        .and(warp::path::tail())
        .and(warp::path::full())
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(context())
        .map(
            |tail: warp::path::Tail,
             full: warp::path::FullPath,
             headers: HeaderMap,
             ctx: RequestContext| {
                if full.as_str() == "/console" {
                    console_root(&ctx)
                } else {
                    console_file(tail.as_str(), &headers, &ctx)
                }
            },
        );
    root.or(console).unify()
}

fn redirect(status: StatusCode, ctx: &RequestContext) -> Response {
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::LOCATION,
        HeaderValue::from_static(CONSOLE_PATH),
    );
    with_request_id(response, ctx)
}

/// `/` sends browsers to the console (temporarily: the root may serve more one day).
#[utoipa::path(
    get,
    path = "/",
    tag = "console",
    operation_id = "root_to_console",
    responses(
        (status = 302, description = "To the console at /console/", headers(("location" = String, description = "/console/"))),
    )
)]
fn to_console(ctx: &RequestContext) -> Response {
    redirect(StatusCode::FOUND, ctx)
}

/// `/console` sends the browser to `/console/`, where the page's relative links work.
#[utoipa::path(
    get,
    path = "/console",
    tag = "console",
    operation_id = "console_redirect",
    responses(
        (status = 308, description = "To the console at /console/", headers(("location" = String, description = "/console/"))),
    )
)]
fn console_root(ctx: &RequestContext) -> Response {
    redirect(StatusCode::PERMANENT_REDIRECT, ctx)
}

/// A file of the web console (`index.html` for `/console/`). Revalidated on every use
/// (`no-cache` with an `ETag`), so a new release is picked up at once.
#[utoipa::path(
    get,
    path = "/console/{path}",
    tag = "console",
    operation_id = "console_file",
    params(("path" = String, Path, description = "A file of the console, e.g. index.html (also at /console/), app.css, js/app.js; may contain '/'")),
    responses(
        (status = 200, description = "The file", content(("text/html"), ("text/javascript"), ("text/css"), ("application/wasm"), ("image/svg+xml"))),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 404, description = "No such file in the console", body = super::problem::Body, content_type = "application/problem+json"),
    )
)]
fn console_file(tail: &str, headers: &HeaderMap, ctx: &RequestContext) -> Response {
    let path = if tail.is_empty() { "index.html" } else { tail };
    let Some(asset) = ASSETS.get(path) else {
        return Problem::not_found("no such file in the console; it lives at /console/")
            .response(Some(ctx));
    };
    let fresh = headers
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == asset.etag
        });
    let mut response = if fresh {
        let mut response = Response::new(Vec::new().into());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(asset.bytes.into());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let out = response.headers_mut();
    out.insert(http::header::ETAG, asset.etag.clone());
    out.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    with_request_id(response, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_is_compiled_in_with_its_entry_points() {
        for path in ["index.html", "app.css", "js/app.js", "js/api.js"] {
            assert!(ASSETS.contains_key(path), "{path} is not compiled in");
        }
        assert_eq!(
            ASSETS["js/app.js"].content_type,
            "text/javascript; charset=utf-8"
        );
        assert!(
            !CONSOLE_CSP.contains("unsafe-inline") && !CONSOLE_CSP.contains(" 'unsafe-eval'"),
            "{CONSOLE_CSP}"
        );
    }

    #[test]
    fn no_console_file_carries_an_inline_script_or_style() {
        // The CSP would block them in the browser; this says which file, at build time.
        for (path, bytes) in CONSOLE_ASSETS {
            if !(path.ends_with(".html") || path.ends_with(".js")) {
                continue;
            }
            let text = String::from_utf8_lossy(bytes);
            if path.ends_with(".html") {
                assert!(!text.contains("<script>"), "{path}: an inline script");
                assert!(!text.contains(" style=\""), "{path}: an inline style");
                let handler = text.split(" on").skip(1).any(|rest| {
                    let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
                    !name.is_empty() && rest[name.len()..].starts_with('=')
                });
                assert!(!handler, "{path}: an inline event handler");
            }
        }
    }
}
