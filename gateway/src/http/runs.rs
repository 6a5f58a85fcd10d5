//! `/api/v1/runs`: request, read, list and cancel pipeline runs.

use std::sync::Arc;

use aurora_domain::run::{RunCommand, RunError, RunSpec};
use bytes::Bytes;
use cqrs_es::AggregateError;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::context::{context, RequestContext};
use super::problem::Problem;
use crate::state::AppState;

/// Largest page of `GET /api/v1/runs`.
pub const MAX_PAGE: i64 = 100;
const DEFAULT_PAGE: i64 = 20;

/// The runs routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let body = warp::header::headers_cloned()
        .and(bounded_body(state.config.max_body_bytes))
        .map(|headers, bytes| JsonBody { headers, bytes });
    let with_state = warp::any().map(move || state.clone());

    // Path before method: a path no route has must be a 404, not a 405.
    let create = warp::path!("api" / "v1" / "runs")
        .and(warp::post())
        .and(context())
        .and(with_state.clone())
        .and(body.clone())
        .then(create_run);
    let list = warp::path!("api" / "v1" / "runs")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(optional_raw_query())
        .then(list_runs);
    let get = warp::path!("api" / "v1" / "runs" / String)
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .then(get_run);
    let cancel = warp::path!("api" / "v1" / "runs" / String / "cancel")
        .and(warp::post())
        .and(context())
        .and(with_state)
        .and(body)
        .then(cancel_run);
    create.or(list).unify().or(get).unify().or(cancel).unify()
}

/// A request body with the headers that describe it.
#[derive(Debug)]
struct JsonBody {
    headers: HeaderMap,
    bytes: Bytes,
}

/// The body was larger than the configured limit.
#[derive(Debug)]
pub struct BodyTooLarge {
    /// The limit in bytes.
    pub limit: u64,
}

impl warp::reject::Reject for BodyTooLarge {}

/// The request body, at most `limit` bytes (declared or chunked).
fn bounded_body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared, stream| read_bounded(declared, stream, limit))
}

/// Bodies up to this size are read to the end even when refused, so that the client,
/// still sending, gets to read the 413 instead of a reset connection.
const DRAIN_CAP: u64 = 1024 * 1024;

async fn read_bounded<S, B>(
    declared: Option<u64>,
    stream: S,
    limit: u64,
) -> Result<Bytes, Rejection>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use bytes::BufMut;
    use futures::StreamExt;
    let too_large = || warp::reject::custom(BodyTooLarge { limit });
    if declared.is_some_and(|n| n > limit.max(DRAIN_CAP)) {
        return Err(too_large());
    }
    let mut stream = std::pin::pin!(stream);
    let mut body = bytes::BytesMut::new();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| warp::reject::reject())?;
        received += chunk.remaining() as u64;
        if received > limit.max(DRAIN_CAP) {
            return Err(too_large());
        }
        if received <= limit {
            body.put(chunk);
        }
    }
    if received > limit {
        return Err(too_large());
    }
    Ok(body.freeze())
}

impl JsonBody {
    /// Parses the body as `T` (an empty body is `empty`, if given), or says precisely why not.
    fn parse<T: DeserializeOwned>(&self, empty: Option<T>) -> Result<T, Problem> {
        if let Some(content_type) = self.headers.get(http::header::CONTENT_TYPE) {
            let media = content_type.to_str().unwrap_or_default();
            let essence = media.split(';').next().unwrap_or_default().trim();
            if !(essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")) {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported media type",
                    format!("send the body as application/json, not {media:?}"),
                ));
            }
        }
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return empty.ok_or_else(|| {
                Problem::bad_request(
                    "empty-body",
                    "the request body is empty; send a JSON object",
                )
            });
        }
        // Two steps, so that "not JSON" (400) and "JSON of the wrong shape" (422) are told
        // apart reliably.
        let value: serde_json::Value = serde_json::from_slice(&self.bytes).map_err(|e| {
            Problem::bad_request("malformed-json", format!("the body is not valid JSON: {e}"))
        })?;
        serde_json::from_value(value).map_err(|e| {
            Problem::unprocessable("invalid-body", format!("invalid request body: {e}"))
        })
    }
}

/// A run as returned by the API.
#[derive(Debug, Serialize)]
struct RunCreated<'a> {
    id: Uuid,
    status: &'static str,
    owner: &'a str,
    #[serde(flatten)]
    spec: &'a RunSpec,
    created_at: String,
}

/// Body of `POST /api/v1/runs/{id}/cancel` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    reason: Option<String>,
}

/// Query of `GET /api/v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct Page {
    items: Vec<aurora_projections::runs::RunView>,
    next_cursor: Option<String>,
}

fn optional_raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone
{
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

fn json(status: StatusCode, body: &impl Serialize, ctx: &RequestContext) -> Response {
    let mut response = warp::reply::with_status(warp::reply::json(body), status).into_response();
    if let Ok(id) = http::HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

fn parse_run_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| {
        Problem::bad_request(
            "invalid-run-id",
            "the run id in the path must be a UUID, e.g. 01900000-0000-7000-8000-000000000001",
        )
    })
}

fn command_problem(error: AggregateError<RunError>) -> Problem {
    match error {
        AggregateError::UserError(error) => match error {
            RunError::InvalidSpec(_) | RunError::ReasonTooLong => {
                Problem::unprocessable("invalid-run-spec", error.to_string())
            }
            RunError::NotFound => Problem::not_found("no run with this id"),
            RunError::AlreadyExists | RunError::AlreadyFinished(_) => Problem::new(
                StatusCode::CONFLICT,
                "run-state-conflict",
                "Conflict",
                error.to_string(),
            ),
        },
        AggregateError::AggregateConflict => Problem::new(
            StatusCode::CONFLICT,
            "concurrent-modification",
            "Conflict",
            "the run was changed by another request at the same time; retry",
        ),
        AggregateError::DatabaseConnectionError(error) => Problem::unavailable(&error),
        other => Problem::internal(&other),
    }
}

async fn create_run(ctx: RequestContext, state: Arc<AppState>, body: JsonBody) -> Response {
    let spec: RunSpec = match body.parse(None) {
        Ok(spec) => spec,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    let run_id = Uuid::now_v7();
    let metadata = ctx.metadata();
    let command = RunCommand::RequestRun {
        run_id,
        owner: metadata.principal.clone(),
        spec: spec.clone(),
    };
    match state
        .run_commands
        .create(&run_id.to_string(), command, &metadata)
        .await
    {
        Ok(()) => {
            state.metrics.command("RequestRun", "accepted");
            tracing::info!(%run_id, "run requested");
            let body = RunCreated {
                id: run_id,
                status: "requested",
                owner: &metadata.principal,
                spec: &spec,
                created_at: metadata
                    .time
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            };
            let mut response = json(StatusCode::CREATED, &body, &ctx);
            if let Ok(location) = http::HeaderValue::from_str(&format!("/api/v1/runs/{run_id}")) {
                response
                    .headers_mut()
                    .insert(http::header::LOCATION, location);
            }
            response
        }
        Err(error) => {
            state.metrics.command("RequestRun", outcome(&error));
            command_problem(error).response(Some(&ctx))
        }
    }
}

async fn cancel_run(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    body: JsonBody,
) -> Response {
    let run_id = match parse_run_id(&raw_id) {
        Ok(id) => id,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    let request: CancelRequest = match body.parse(Some(CancelRequest::default())) {
        Ok(request) => request,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    let command = RunCommand::CancelRun {
        reason: request.reason,
    };
    match state
        .run_commands
        .execute(&run_id.to_string(), command, &ctx.metadata())
        .await
    {
        Ok(()) => {
            state.metrics.command("CancelRun", "accepted");
            let body = serde_json::json!({"id": run_id, "status": "cancelled"});
            json(StatusCode::OK, &body, &ctx)
        }
        Err(error) => {
            state.metrics.command("CancelRun", outcome(&error));
            command_problem(error).response(Some(&ctx))
        }
    }
}

fn outcome(error: &AggregateError<RunError>) -> &'static str {
    match error {
        AggregateError::UserError(_) | AggregateError::AggregateConflict => "refused",
        _ => "failed",
    }
}

async fn get_run(raw_id: String, ctx: RequestContext, state: Arc<AppState>) -> Response {
    let run_id = match parse_run_id(&raw_id) {
        Ok(id) => id,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    match state.runs.get(&run_id.to_string()).await {
        Ok(Some(view)) => json(StatusCode::OK, &view, &ctx),
        Ok(None) => Problem::not_found("no run with this id").response(Some(&ctx)),
        Err(error) => Problem::unavailable(&error).response(Some(&ctx)),
    }
}

async fn list_runs(ctx: RequestContext, state: Arc<AppState>, query: String) -> Response {
    let query: ListQuery = match serde_urlencoded::from_str(&query) {
        Ok(query) => query,
        Err(e) => {
            return Problem::bad_request(
                "invalid-query",
                format!("invalid query: {e}; use limit and cursor"),
            )
            .response(Some(&ctx))
        }
    };
    let limit = match query.limit.as_deref().map(str::parse::<i64>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return Problem::bad_request(
                "invalid-limit",
                format!("limit must be a whole number from 1 to {MAX_PAGE}"),
            )
            .response(Some(&ctx))
        }
    };
    let cursor = match query.cursor.as_deref().map(parse_run_id).transpose() {
        Ok(cursor) => cursor.map(|id| id.to_string()),
        Err(_) => {
            return Problem::bad_request(
                "invalid-cursor",
                "cursor must be the next_cursor of a previous page",
            )
            .response(Some(&ctx))
        }
    };
    match state.runs.list(cursor.as_deref(), limit + 1).await {
        Ok(mut items) => {
            let next_cursor = if items.len() as i64 > limit {
                items.truncate(limit as usize);
                items.last().map(|run| run.id.clone())
            } else {
                None
            };
            json(StatusCode::OK, &Page { items, next_cursor }, &ctx)
        }
        Err(error) => Problem::unavailable(&error).response(Some(&ctx)),
    }
}
