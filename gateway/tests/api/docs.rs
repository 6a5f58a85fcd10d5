//! The API documents itself: the OpenAPI document at `/api/docs.json` is valid OpenAPI 3.1,
//! describes exactly what the router serves (checked both ways, by asking the router), and
//! Swagger UI at `/api-docs/` is served from the binary with nothing from elsewhere.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use std::collections::BTreeSet;

use aurora_gateway::http::{DOCS_UI_CSP, ROUTE_TEMPLATES};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{spawn_app, Mode, TestApp};

/// The official OpenAPI 3.1 schema (`https://spec.openapis.org/oas/3.1/schema/2022-10-07`),
/// vendored: see `tests/fixtures/README.md`.
const OPENAPI_3_1_SCHEMA: &str = include_str!("../fixtures/openapi-3.1-schema-2022-10-07.json");

/// The methods probed on every route template.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Routes anyone may call: no security requirement in the document.
const PUBLIC: [&str; 16] = [
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/keys",
    "/api/v1/webhooks/identity",
    "/api/v1/webhooks/heygen",
    "/health",
    "/ready",
    "/live",
    "/metrics",
    "/api/docs.json",
    "/api/docs",
    "/api-docs",
    "/api-docs/{file}",
    "/",
    "/console",
    "/console/{path}",
];

/// Operations anyone may call on a route whose others need a token: signing in.
const PUBLIC_OPERATIONS: [(&str, &str); 1] = [("POST", "/api/v1/auth/session")];

/// Routes whose answers are not problems (operational and docs routes).
const NO_PROBLEMS: [&str; 10] = [
    "/health",
    "/ready",
    "/live",
    "/metrics",
    "/api/docs.json",
    "/api/docs",
    "/api-docs",
    "/api-docs/{file}",
    "/",
    "/console",
];

/// A made-up value for every path parameter: no such run, user, token, block or file.
const MADE_UP: &str = "01900000-0000-7000-8000-0000000000aa";

/// A client without a token that does not follow redirects.
fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Does `path` (concrete) fit `template` (segments in braces stand for any one segment)?
fn fits(template: &str, path: &str) -> bool {
    let template: Vec<&str> = template.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| t.starts_with('{') || t == p)
}

/// `template` with every parameter made up.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                MADE_UP
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// How the router answered a request.
enum Answer {
    /// No route has the path (the router's own 404).
    NoRoute,
    /// A route has the path, but not the method.
    WrongMethod,
    /// A route served it (whatever it answered).
    Served(StatusCode),
}

/// Sends `method path` without a token or body and tells whether a route served it.
async fn ask(app: &TestApp, method: &str, path: &str) -> Answer {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let response = plain()
        .request(method.clone(), app.url(path))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_ne!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "{method} {path}: rate limits would hide the routing"
    );
    let problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json");
    if !problem {
        return Answer::Served(status);
    }
    let body: Value = response.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap_or_default();
    match (status.as_u16(), body["type"].as_str().unwrap_or_default()) {
        (404, "/problems/not-found") if detail.starts_with("no such resource") => Answer::NoRoute,
        (405, "/problems/method-not-allowed") => Answer::WrongMethod,
        _ => Answer::Served(status),
    }
}

/// Every `$ref` in `value`, with where it is.
fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => out.push((at.clone(), target)),
                    _ => refs(value, format!("{at}/{key}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refs(item, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The document's operations: (upper-case method, path template, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method.to_lowercase()) {
                found.push((method.to_string(), path.clone(), operation));
            }
        }
        for other in ["head", "options", "trace"] {
            assert!(item.get(other).is_none(), "{other} {path}: never served");
        }
    }
    found
}

#[apply(both_modes)]
async fn the_openapi_document_is_valid_3_1_and_matches_the_router_both_ways(mode: Mode) {
    let app = spawn_app(mode).await;
    let response = plain().get(app.url("/api/docs.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-frame-options"], "SAMEORIGIN");
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["servers"][0]["url"], "/");

    // Valid against the official OpenAPI 3.1 schema (which checks the document's
    // structure; the schemas inside are checked as JSON Schemas below).
    let schema: Value = serde_json::from_str(OPENAPI_3_1_SCHEMA).unwrap();
    assert_eq!(
        schema["$id"],
        "https://spec.openapis.org/oas/3.1/schema/2022-10-07"
    );
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the OpenAPI 3.1 schema compiles offline");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");
    // A document that is not OpenAPI 3.1 is refused: the validation can fail.
    let mut broken = doc.clone();
    broken["openapi"] = "3.0.3".into();
    broken["paths"]["/health"]["get"]["responses"] = Value::Null;
    assert!(!validator.is_valid(&broken));

    // Every schema is a valid JSON Schema (OpenAPI 3.1's dialect is 2020-12 with a few
    // annotations more), and every `$ref` resolves inside the document's components.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("Problem"), "{:?}", schemas.keys());
    for (name, schema) in schemas {
        if let Err(error) = jsonschema::draft202012::meta::validate(schema) {
            panic!("components.schemas.{name} is not a valid JSON Schema: {error}");
        }
    }
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 50, "only {} $refs", found.len());
    for (at, target) in &found {
        assert!(
            target.starts_with("#/components/"),
            "{at}: $ref {target} points outside the components"
        );
        assert!(
            doc.pointer(&target[1..]).is_some(),
            "{at}: $ref {target} resolves to nothing"
        );
    }

    // The security scheme: Biscuit tokens as bearer tokens (or in x-api-key).
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["biscuit"]["type"], "http");
    assert_eq!(schemes["biscuit"]["scheme"], "bearer");
    assert_eq!(schemes["biscuit"]["bearerFormat"], "Biscuit");
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "x-api-key");

    // The document describes exactly the route templates.
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let templates: BTreeSet<&str> = ROUTE_TEMPLATES.iter().copied().collect();
    assert_eq!(paths, templates);
    assert!(!paths.contains("unmatched"));

    let operations = operations(&doc);
    assert!(operations.len() >= ROUTE_TEMPLATES.len());
    let mut ids = BTreeSet::new();
    for (method, path, operation) in &operations {
        let what = format!("{method} {path}");
        assert!(
            ids.insert(operation["operationId"].as_str().unwrap()),
            "{what}: operationId used twice"
        );
        assert!(!operation["tags"].as_array().unwrap().is_empty(), "{what}");
        // Public routes need no token; every other names the Biscuit bearer scheme.
        let security = operation.get("security").and_then(Value::as_array);
        if PUBLIC.contains(&path.as_str())
            || PUBLIC_OPERATIONS.contains(&(method.as_str(), path.as_str()))
        {
            assert!(security.is_none_or(Vec::is_empty), "{what}: {security:?}");
        } else {
            let schemes: Vec<&str> = security
                .unwrap_or_else(|| panic!("{what}: no security requirement"))
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
                .collect();
            assert!(schemes.contains(&"biscuit"), "{what}: {schemes:?}");
        }
        // Every parameter in the template is declared as a path parameter.
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(['{', '}']);
            assert!(
                operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path")),
                "{what}: path parameter {name} undeclared"
            );
        }
        // The errors it can answer are problems.
        if !NO_PROBLEMS.contains(&path.as_str()) {
            let responses = operation["responses"].as_object().unwrap();
            let problems = responses.iter().filter(|(status, response)| {
                status.starts_with('4')
                    && response["content"]["application/problem+json"]["schema"]["$ref"]
                        == "#/components/schemas/Problem"
            });
            assert!(problems.count() > 0, "{what}: no 4xx problem response");
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object().unwrap();
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        ["application/problem+json"],
                        "{what} {status}"
                    );
                }
            }
        }
    }

    // Document ⇒ router: every operation is served (with made-up ids: what it answers does
    // not matter, only that a route took it).
    for (method, path, _) in &operations {
        let url = concrete(path);
        match ask(&app, method, &url).await {
            Answer::Served(_) => {}
            Answer::NoRoute => panic!("{method} {path} is documented but no route has {url}"),
            Answer::WrongMethod => panic!("{method} {path} is documented but not served"),
        }
    }

    // Router ⇒ document: whatever the router serves, on any template and any method, is
    // an operation of the document (of that template, or of another that fits the path:
    // `PATCH /api/v1/users/me` is `PATCH /api/v1/users/{id}` with the id `me`).
    let mut exact = 0;
    for template in ROUTE_TEMPLATES {
        let url = concrete(template);
        for method in METHODS {
            match ask(&app, method, &url).await {
                Answer::NoRoute => panic!("{method} {url}: no route, yet {template} is listed"),
                Answer::WrongMethod => {}
                Answer::Served(status) => {
                    if operations
                        .iter()
                        .any(|(m, path, _)| m == method && path == template)
                    {
                        exact += 1;
                    }
                    let documented = operations
                        .iter()
                        .any(|(m, path, _)| m == method && fits(path, &url));
                    assert!(
                        documented,
                        "{method} {url} is served ({status}) but not in the document"
                    );
                }
            }
        }
    }
    assert_eq!(
        exact,
        operations.len(),
        "every operation found by asking the router"
    );
    // And something no route has is told apart from all of the above.
    assert!(matches!(
        ask(&app, "GET", "/api/v1/nothing-here").await,
        Answer::NoRoute
    ));
    assert!(matches!(
        ask(&app, "PUT", "/api/v1/runs").await,
        Answer::WrongMethod
    ));
    app.stop().await;
}

/// The `src`/`href` values of `<script>` and `<link>` elements of `html`.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (tag, attribute) in [("<script", "src=\""), ("<link", "href=\"")] {
        for (start, _) in html.match_indices(tag) {
            let element = &html[start..start + html[start..].find('>').unwrap()];
            if let Some(at) = element.find(attribute) {
                let value = &element[at + attribute.len()..];
                found.push(value[..value.find('"').unwrap()].to_string());
            }
        }
    }
    found
}

#[apply(both_modes)]
async fn the_docs_ui_is_served_from_the_binary_and_loads_nothing_from_elsewhere(mode: Mode) {
    let app = spawn_app(mode).await;
    let client = plain();
    let get = |path: &str| client.get(app.url(path)).send();

    for path in ["/api-docs", "/api/docs"] {
        let redirect = get(path).await.unwrap();
        assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT, "{path}");
        assert_eq!(redirect.headers()["location"], "/api-docs/", "{path}");
    }

    let index = get("/api-docs/").await.unwrap();
    assert_eq!(index.status(), StatusCode::OK);
    assert!(index.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let headers = index.headers().clone();
    assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers.contains_key("strict-transport-security"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert_eq!(csp, DOCS_UI_CSP);
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {csp}"))
            .to_string()
    };
    assert_eq!(directive("default-src"), "default-src 'none'");
    assert_eq!(directive("script-src"), "script-src 'self'");
    assert_eq!(directive("connect-src"), "connect-src 'self'");
    assert!(!csp.contains("unsafe-eval"));
    let html = index.text().await.unwrap();
    assert!(html.contains("<div id=\"swagger-ui\">"), "{html}");
    assert!(
        !html.contains("<script>") && !html.contains("<script type"),
        "no inline scripts: {html}"
    );

    // Every script and stylesheet the page names is served from here.
    let referenced = references(&html);
    assert!(
        referenced
            .iter()
            .any(|r| r.ends_with("swagger-initializer.js")),
        "{referenced:?}"
    );
    assert!(
        referenced.len() >= 5,
        "scripts and stylesheets: {referenced:?}"
    );
    for reference in &referenced {
        assert!(
            !reference.contains("//"),
            "{reference}: the page loads from elsewhere"
        );
        let path = format!("/api-docs/{}", reference.trim_start_matches("./"));
        let response = get(&path).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["content-security-policy"],
            DOCS_UI_CSP,
            "{path}"
        );
        assert!(!response.bytes().await.unwrap().is_empty(), "{path}");
    }

    // The initializer loads this server's document, with no validator (which would call
    // validator.swagger.io) and "try it out" on.
    let initializer = get("/api-docs/swagger-initializer.js")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("\"/api/docs.json\""), "{initializer}");
    assert!(
        initializer.contains("\"validatorUrl\": \"none\""),
        "{initializer}"
    );
    assert!(
        initializer.contains("\"tryItOutEnabled\": true"),
        "{initializer}"
    );
    for text in [&html, &initializer] {
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "an absolute URL: {text}"
        );
    }

    // A file the UI does not have is a problem; the API keeps its own policy.
    let missing = get("/api-docs/nope.js").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let spec = get("/api/docs.json").await.unwrap();
    assert!(spec.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'; frame-ancestors"));
    let lookalike = get("/api-docsx").await.unwrap();
    assert_eq!(lookalike.status(), StatusCode::NOT_FOUND);
    assert_ne!(lookalike.headers()["content-security-policy"], DOCS_UI_CSP);
    app.stop().await;
}
