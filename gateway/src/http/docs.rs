//! The API's own documentation: an OpenAPI 3.1 document generated from the handlers'
//! `#[utoipa::path]` annotations and the types they send and take (`GET /api/docs.json`),
//! and Swagger UI to read and try it (`GET /api-docs/`).
//!
//! Nothing is fetched from anywhere else: Swagger UI's scripts, styles and images are
//! compiled into the binary (`utoipa-swagger-ui`'s `vendored` assets) and served from
//! here, its validator badge (which would call validator.swagger.io) is off, and "try it
//! out" calls this server. Neither route needs a token.

use std::sync::{Arc, LazyLock};

use http::{HeaderValue, StatusCode};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::Required;
use utoipa::{Modify, OpenApi};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::with_request_id;
use super::context::{context, RequestContext};
use super::problem::Problem;

/// Where the OpenAPI document is served.
pub const SPEC_PATH: &str = "/api/docs.json";

/// Where Swagger UI is served (its files below it).
pub const UI_PATH: &str = "/api-docs/";

const DESCRIPTION: &str = "\
Aurora runs media pipelines (probe, transcode, thumbnail) as event-sourced runs: every \
accepted command is an event with who caused it, in which request, from where.

**Tokens.** Most routes need a Biscuit capability token, sent as \
`Authorization: Bearer <token>` (or `x-api-key: <token>`): a session from \
`POST /api/v1/auth/login`, or an API key from `POST /api/v1/auth/tokens`. Tokens can be \
narrowed offline (attenuated) with the public keys at `GET /api/v1/auth/keys`. Routes \
without a security requirement are public.

**Errors.** Every error is an RFC 9457 problem (`application/problem+json`, schema \
`Problem`); its `type` (`/problems/<slug>`) is stable. Requests to `/api/...` are rate \
limited per client and route class: a refused one gets 429 with `Retry-After`, and the \
`RateLimit-*` headers tell what is left. On every route: a malformed or repeated \
`traceparent` is 400 `invalid-traceparent` (a valid one is carried into the events and \
their NATS messages); headers past 16 KiB (configurable) are 431 `headers-too-large`; a \
request unanswered within 30 s (configurable; uploads exempt) is 503 `request-timeout`; \
503 `unavailable` means a backing service is away (retry later).

**This documentation.** This document is generated from the code and served at \
`GET /api/docs.json`; Swagger UI, served from this binary with nothing fetched from \
elsewhere, is at `GET /api-docs/`.";

/// The OpenAPI document: every route the router serves, with what it takes and answers.
#[derive(OpenApi)]
#[openapi(
    info(title = "Aurora API", description = DESCRIPTION),
    servers((url = "/", description = "This server")),
    paths(
        super::runs::create_run,
        super::runs::list_runs,
        super::runs::get_run,
        super::runs::cancel_run,
        super::runs::artifacts::list_artifacts,
        super::runs::artifacts::download_artifact,
        super::run_events::events,
        super::run_events::live,
        super::history::run_history,
        super::history::user_history,
        super::media::upload,
        super::media::download,
        super::auth::register,
        super::auth::login,
        super::auth::me,
        super::auth::whoami,
        super::auth::public_keys,
        super::session::sign_in,
        super::session::current,
        super::session::sign_out,
        super::tokens::logout,
        super::tokens::list,
        super::tokens::create,
        super::tokens::revoke,
        super::users::list,
        super::users::patch,
        super::blocks::list,
        super::blocks::lift,
        super::audit::list,
        super::audit::export,
        super::webhooks::identity,
        super::webhooks::heygen::heygen,
        super::health::health,
        super::health::ready,
        super::health::live,
        super::health::metrics,
        super::vitals::health_metrics,
        spec,
        ui_root,
        ui_alias,
        ui_file,
        super::console::to_console,
        super::console::console_root,
        super::console::console_file,
    ),
    components(schemas(super::problem::Body)),
    modifiers(&SecuritySchemes, &OptionalBodies),
    tags(
        (name = "console", description = "The web console's pages (GET / sends browsers there)"),
        (name = "runs", description = "Pipeline runs: request, read, follow, cancel, download what they made"),
        (name = "media", description = "Uploaded media files"),
        (name = "auth", description = "Registration, login, who a token is, the public keys"),
        (name = "tokens", description = "A user's own tokens: sessions and API keys"),
        (name = "users", description = "Users (listing and changing them is for admins)"),
        (name = "history", description = "An aggregate's events and the state it had at any point"),
        (name = "audit", description = "The hash-chained audit trail (admins and audit:read tokens)"),
        (name = "admin", description = "Rate-limit blocks"),
        (name = "webhooks", description = "Signed messages from an identity provider and from HeyGen"),
        (name = "operations", description = "Health, readiness, liveness, metrics"),
        (name = "docs", description = "This document and its UI"),
    )
)]
pub struct ApiDoc;

/// The security schemes the operations name: a Biscuit token as a bearer token, or the
/// same token in `x-api-key`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "biscuit",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("Biscuit")
                    .description(Some(
                        "A Biscuit capability token (a session from login, or an API key), \
                         possibly narrowed offline",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "aurora_session",
                "A browser's session from POST /api/v1/auth/session (HttpOnly); requests that \
                 change something also carry X-CSRF-Token",
            ))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The same Biscuit token, in the x-api-key header instead of Authorization",
            ))),
        );
    }
}

/// POST routes whose body may be left out (utoipa would make it required, or allow a JSON
/// `null`, which these routes refuse).
const OPTIONAL_POST_BODIES: &[&str] = &["/api/v1/runs/{id}/cancel"];

/// Marks the bodies of [`OPTIONAL_POST_BODIES`] as not required.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for path in OPTIONAL_POST_BODIES {
            let body = openapi
                .paths
                .paths
                .get_mut(*path)
                .and_then(|item| item.post.as_mut())
                .and_then(|operation| operation.request_body.as_mut());
            if let Some(body) = body {
                body.required = Some(Required::False);
            }
        }
    }
}

/// The OpenAPI document, as served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as JSON, made once.
static SPEC_JSON: LazyLock<Result<String, String>> =
    LazyLock::new(|| openapi().to_json().map_err(|e| e.to_string()));

/// Swagger UI's settings: this server's document, no external validator, "try it out" on.
static UI_CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        utoipa_swagger_ui::Config::new([SPEC_PATH])
            .validator_url("none")
            .try_it_out_enabled(true)
            .display_request_duration(true),
    )
});

/// The routes: the document and the UI. Neither needs a token.
pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let spec_route = warp::path!("api" / "docs.json")
        .and(warp::get())
        .and(context())
        .map(|ctx: RequestContext| spec(&ctx));
    let ui_route = warp::path("api-docs")
        .and(warp::path::tail())
        .and(warp::path::full())
        .and(warp::get())
        .and(context())
        .map(
            |tail: warp::path::Tail, full: warp::path::FullPath, ctx: RequestContext| {
                if full.as_str() == "/api-docs" {
                    ui_root(&ctx)
                } else {
                    ui_file(tail.as_str(), &ctx)
                }
            },
        );
    // The docs path of the product write-ups: the same UI.
    let alias_route = warp::path!("api" / "docs")
        .and(warp::get())
        .and(context())
        .map(|ctx: RequestContext| ui_alias(&ctx));
    spec_route.or(ui_route).unify().or(alias_route).unify()
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/api/docs.json",
    tag = "docs",
    operation_id = "openapi_document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document (this one)", body = Object, content_type = "application/json"),
        (status = 429, description = "Rate limited or blocked; see Retry-After", body = super::problem::Body, content_type = "application/problem+json"),
    )
)]
fn spec(ctx: &RequestContext) -> Response {
    match SPEC_JSON.as_ref() {
        Ok(json) => {
            let mut response = Response::new(json.clone().into());
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            with_request_id(response, ctx)
        }
        Err(error) => Problem::internal(error).response(Some(ctx)),
    }
}

/// `/api-docs` sends the browser to `/api-docs/`, where the page's relative links work.
#[utoipa::path(
    get,
    path = "/api-docs",
    tag = "docs",
    operation_id = "docs_ui_redirect",
    responses(
        (status = 308, description = "To the UI at /api-docs/", headers(("location" = String, description = "/api-docs/"))),
    )
)]
fn ui_root(ctx: &RequestContext) -> Response {
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response
        .headers_mut()
        .insert(http::header::LOCATION, HeaderValue::from_static(UI_PATH));
    with_request_id(response, ctx)
}

/// `/api/docs` (where the product write-ups put the docs) sends the browser to the UI too.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "docs",
    operation_id = "docs_ui_alias",
    responses(
        (status = 308, description = "To the UI at /api-docs/", headers(("location" = String, description = "/api-docs/"))),
    )
)]
fn ui_alias(ctx: &RequestContext) -> Response {
    ui_root(ctx)
}

/// A file of Swagger UI (`index.html` for `/api-docs/`).
#[utoipa::path(
    get,
    path = "/api-docs/{file}",
    tag = "docs",
    operation_id = "docs_ui_file",
    params(("file" = String, Path, description = "A file of the UI: index.html (also at /api-docs/), swagger-ui.css, swagger-ui-bundle.js, swagger-initializer.js …")),
    responses(
        (status = 200, description = "The file", content(("text/html"), ("text/javascript"), ("text/css"), ("image/png"))),
        (status = 404, description = "No such file in the UI", body = super::problem::Body, content_type = "application/problem+json"),
    )
)]
fn ui_file(tail: &str, ctx: &RequestContext) -> Response {
    match utoipa_swagger_ui::serve(tail, UI_CONFIG.clone()) {
        Ok(Some(file)) => {
            let mut response = Response::new(file.bytes.into_owned().into());
            if let Ok(content_type) = HeaderValue::from_str(&file.content_type) {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, content_type);
            }
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            with_request_id(response, ctx)
        }
        Ok(None) => Problem::not_found("no such file in the API docs UI").response(Some(ctx)),
        Err(error) => Problem::internal(&error).response(Some(ctx)),
    }
}

#[cfg(test)]
mod tests {
    use super::openapi;

    #[test]
    fn every_json_request_body_has_an_example_and_the_runs_one_is_a_valid_run() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut bodies = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let Some(json) = operation["requestBody"]["content"].get("application/json") else {
                    continue;
                };
                bodies += 1;
                let example = &json["example"];
                assert!(example.is_object(), "{method} {path}: no example");
                if (method.as_str(), path.as_str()) == ("post", "/api/v1/runs") {
                    let spec: aurora_domain::run::RunSpec =
                        serde_json::from_value(example.clone()).expect("a run spec");
                    spec.validate().expect("a valid run spec");
                }
            }
        }
        assert_eq!(bodies, 9, "the JSON request bodies");
    }

    #[test]
    fn the_document_is_openapi_3_1_and_describes_exactly_the_route_templates() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let mut paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut templates = crate::http::routes::ROUTE_TEMPLATES.to_vec();
        paths.sort_unstable();
        templates.sort_unstable();
        assert_eq!(paths, templates);
    }
}
