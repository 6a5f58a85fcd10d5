//! `/api/v1/runs`: request, read, list and cancel pipeline runs.

use std::sync::Arc;

use aurora_domain::run::{RunCommand, RunError, RunSpec};
use aurora_domain::user::Role;
use cqrs_es::AggregateError;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::auth::{authenticate, authorize, verify_request};
use super::body::{json, json_body, JsonBody};
use super::context::{context, RequestContext};
use super::page;
use super::problem::Problem;
use crate::auth::tokens::Access;
use crate::state::AppState;

/// Largest page of `GET /api/v1/runs`.
pub const MAX_PAGE: i64 = 100;
const DEFAULT_PAGE: i64 = 20;

/// The runs routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let body = json_body(state.config.max_body_bytes);
    let with_state = warp::any().map(move || state.clone());

    // Path before method: a path no route has must be a 404, not a 405.
    let headers = warp::header::headers_cloned();
    let create = warp::path!("api" / "v1" / "runs")
        .and(warp::post())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .and(body.clone())
        .then(create_run);
    let list = warp::path!("api" / "v1" / "runs")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .and(page::optional_raw_query())
        .then(list_runs);
    let get = warp::path!("api" / "v1" / "runs" / String)
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .then(get_run);
    let cancel = warp::path!("api" / "v1" / "runs" / String / "cancel")
        .and(warp::post())
        .and(context())
        .and(with_state)
        .and(headers)
        .and(body)
        .then(cancel_run);
    create.or(list).unify().or(get).unify().or(cancel).unify()
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

async fn create_run(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    let access = Access::own("runs:create");
    let claims = match authenticate(&state, &headers, access) {
        Ok(claims) => claims,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    let spec: RunSpec = match body.parse(None) {
        Ok(spec) => spec,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    let run_id = Uuid::now_v7();
    let metadata = ctx.metadata_as(&claims.username, Some(claims.token_id));
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
        Ok(_) => {
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
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    let run_id = match parse_run_id(&raw_id) {
        Ok(id) => id,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    // The token first: a request without a valid one costs no read of the store.
    let token = match verify_request(&state, &headers) {
        Ok(token) => token,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    // The owner comes from the store, not the view: a run just requested may not be in
    // the view yet, and may be cancelled all the same.
    let run = match state.run_commands.load(&run_id.to_string()).await {
        Ok(run) => run,
        Err(error) => return command_problem(error).response(Some(&ctx)),
    };
    let id = run_id.to_string();
    let access = Access {
        operation: "runs:cancel",
        resource: Some(("run", &id)),
        owner: run.owner(),
    };
    let claims = match authorize(&state, &token, access) {
        Ok(claims) => claims,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    let request: CancelRequest = match body.parse(Some(CancelRequest::default())) {
        Ok(request) => request,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    if run.owner().is_none() {
        return Problem::not_found("no run with this id").response(Some(&ctx));
    }
    let command = RunCommand::CancelRun {
        reason: request.reason,
    };
    match state
        .run_commands
        .execute(
            &id,
            command,
            &ctx.metadata_as(&claims.username, Some(claims.token_id)),
        )
        .await
    {
        Ok(_) => {
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

async fn get_run(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    let run_id = match parse_run_id(&raw_id) {
        Ok(id) => id,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    let id = run_id.to_string();
    match state.runs.get(&id).await {
        Ok(Some(view)) => {
            let access = Access {
                operation: "runs:read",
                resource: Some(("run", &id)),
                owner: Some(&view.owner),
            };
            match authenticate(&state, &headers, access) {
                Ok(_) => json(StatusCode::OK, &view, &ctx),
                Err(problem) => problem.response(Some(&ctx)),
            }
        }
        Ok(None) => Problem::not_found("no run with this id").response(Some(&ctx)),
        Err(error) => Problem::unavailable(&error).response(Some(&ctx)),
    }
}

async fn list_runs(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let access = Access::own("runs:read");
    let claims = match authenticate(&state, &headers, access) {
        Ok(claims) => claims,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    // Admins see every run; everyone else their own.
    let owner = (claims.role != Role::Admin).then_some(claims.username.as_str());
    let (limit, cursor) = match page::parse(&query, DEFAULT_PAGE, MAX_PAGE) {
        Ok(parsed) => parsed,
        Err(problem) => return problem.response(Some(&ctx)),
    };
    let cursor = match cursor.as_deref().map(parse_run_id).transpose() {
        Ok(cursor) => cursor.map(|id| id.to_string()),
        Err(_) => {
            return Problem::bad_request(
                "invalid-cursor",
                "cursor must be the next_cursor of a previous page",
            )
            .response(Some(&ctx))
        }
    };
    match state.runs.list(cursor.as_deref(), limit + 1, owner).await {
        Ok(items) => json(
            StatusCode::OK,
            &page::page(items, limit, |run| run.id.clone()),
            &ctx,
        ),
        Err(error) => Problem::unavailable(&error).response(Some(&ctx)),
    }
}
