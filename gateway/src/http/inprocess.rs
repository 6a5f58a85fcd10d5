//! The route logic every handler shares — the request context, a bounded JSON body parsed
//! in two steps, the error boundary, warp's own rejections — driven in-process with
//! `warp::test`: no socket, no server, no database. (What needs the stores is tested
//! against them in `gateway/tests/`.)

use std::convert::Infallible;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use warp::reply::Response;
use warp::Filter;

use super::body::{json, json_body, JsonBody};
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::problem::Problem;
use crate::auth::tokens::TokenError;

const LIMIT: u64 = 64;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Thing {
    name: String,
}

/// A route of the shape every resource module has: `POST /things` takes a `Thing`;
/// a name "forbidden" is refused as a token would be.
fn things() -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    warp::path!("things")
        .and(warp::post())
        .and(context())
        .and(json_body(LIMIT))
        .map(|ctx: RequestContext, body: JsonBody| {
            let result = body
                .parse::<Thing>(None)
                .map_err(ApiError::from)
                .and_then(|thing| match thing.name.as_str() {
                    "forbidden" => Err(ApiError::Token(
                        TokenError::Forbidden,
                        "things:create".into(),
                    )),
                    "taken" => Err(Problem::new(
                        StatusCode::CONFLICT,
                        "thing-taken",
                        "Conflict",
                        "that thing exists",
                    )
                    .into()),
                    _ => Ok(json(StatusCode::CREATED, &thing, &ctx)),
                });
            respond(&ctx, result)
        })
        .recover(super::recover)
        .unify()
}

async fn send(request: warp::test::RequestBuilder) -> http::Response<bytes::Bytes> {
    request
        .header("x-request-id", "req-in-process-1")
        .reply(&things())
        .await
}

async fn problem(request: warp::test::RequestBuilder) -> (StatusCode, serde_json::Value) {
    let response = request
        .header("x-request-id", "req-in-process-1")
        .reply(&things())
        .await;
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "application/problem+json",
        "{response:?}"
    );
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    (response.status(), body)
}

fn post(body: &str) -> warp::test::RequestBuilder {
    warp::test::request()
        .method("POST")
        .path("/things")
        .header("content-type", "application/json")
        .body(body)
}

#[tokio::test]
async fn a_good_body_is_answered_with_the_request_id() {
    let response = send(post(r#"{"name":"lamp"}"#)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-request-id"], "req-in-process-1");
}

#[tokio::test]
async fn each_bad_request_is_its_own_problem_with_the_request_id() {
    let too_large = format!(r#"{{"name":"{}"}}"#, "x".repeat(LIMIT as usize));
    let cases: Vec<(warp::test::RequestBuilder, StatusCode, &str)> = vec![
        (post("{not json"), StatusCode::BAD_REQUEST, "malformed-json"),
        (post("   "), StatusCode::BAD_REQUEST, "empty-body"),
        (
            post(r#"{"name": 5}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            post(r#"{"name":"a","name":"b"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate-key",
        ),
        (
            post(r#"{"name":"a","admin":true}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            post(r#"{"name":"a"}"#).header("content-type", "text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            post(&too_large),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
        ),
        (
            post(r#"{"name":"forbidden"}"#),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            post(r#"{"name":"taken"}"#),
            StatusCode::CONFLICT,
            "thing-taken",
        ),
        (
            warp::test::request().method("GET").path("/things"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
        (
            warp::test::request().method("POST").path("/../etc/passwd"),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
    ];
    for (request, status, slug) in cases {
        let (got, body) = problem(request).await;
        assert_eq!(
            (got, body["type"].as_str()),
            (status, Some(&*format!("/problems/{slug}"))),
            "{body}"
        );
        assert_eq!(body["status"], status.as_u16());
    }
}

#[tokio::test]
async fn a_problem_names_the_request_it_answers() {
    let (_, body) = problem(post("{")).await;
    assert_eq!(body["request_id"], "req-in-process-1");
}
