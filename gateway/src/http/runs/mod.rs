//! `/api/v1/runs`: request, read, list and cancel pipeline runs.

pub mod artifacts;

use std::sync::Arc;

use aurora_domain::run::{Input, Run, RunCommand, RunError, RunSpec, RunStatus};
use aurora_domain::user::Role;
use aurora_projections::runs::RunView;
use aurora_projections::store::committed_position;
use aurora_projections::RunsProjection;
use cqrs_es::Aggregate as _;
use cqrs_es::AggregateError;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::{json, json_body, JsonBody};
use super::consistency;
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::guard::{authenticate, authorize, verify_request};
use super::page::{self, Page};
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::tokens::Access;
use crate::auth::tokens::Claims;
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
        .and(with_state.clone())
        .and(headers)
        .and(body)
        .then(cancel_run);
    create.or(list).unify().or(get).unify().or(cancel).unify()
}

/// A run as requested (the answer of `POST /api/v1/runs`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunCreated<'a> {
    /// The run id (UUIDv7).
    id: Uuid,
    /// `requested`.
    #[schema(example = "requested")]
    status: &'static str,
    /// Who requested it.
    owner: &'a str,
    /// The media the run works on, and the steps, in order.
    #[serde(flatten)]
    spec: &'a RunSpec,
    /// When it was requested (RFC 3339).
    created_at: String,
    /// The global position its request was stored at (also the `Aurora-Position`
    /// header): send it as `Aurora-After-Position` to list reads that must include it.
    position: Option<i64>,
}

/// Body of `POST /api/v1/runs/{id}/cancel` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    /// Why, for the record.
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

/// Requests a run: its input (a URL or an uploaded media id) and its steps.
#[utoipa::path(
    post,
    path = "/api/v1/runs",
    tag = "runs",
    request_body(content = RunSpec, description = "The input and the steps, in order. A run can instead start with a generate step and no input; the steps after it work on the generated video: `{\"steps\": [{\"kind\": \"generate\", \"provider\": \"heygen\", \"avatar_id\": \"Daisy-inskirt-20220818\", \"voice_id\": \"2d5b0e6cf36f460aa7fc47e3eee4ba54\", \"script\": \"Welcome to Aurora.\", \"dimension\": {\"width\": 1280, \"height\": 720}, \"background\": \"#0b1f3a\"}, {\"kind\": \"transcode\", \"format\": \"webm\", \"quality\": \"medium\", \"resolution\": \"720p\"}, {\"kind\": \"thumbnail\", \"at_seconds\": 1}]}`", example = json!({"input": {"url": "https://media.example/clip.mov"}, "steps": [{"kind": "probe"}, {"kind": "transcode", "format": "webm", "quality": "high", "resolution": "1080p"}, {"kind": "thumbnail", "at_seconds": 2.5}]})),
    responses(
        (status = 201, description = "Requested; stored before this answer", body = RunCreated,
            headers(("location" = String, description = "The run: /api/v1/runs/{id}, readable at once"),
                ("aurora-position" = i64, description = "The global position it was stored at: send it as Aurora-After-Position to a list that must include it"))),
        (status = 400, description = "The body is empty or not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow runs:create", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Conflicting state (run-state-conflict)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid run (invalid-body, invalid-run-spec, unknown-media), or a generate step while no provider key is configured (provider-not-configured)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (runs per hour; for a run with a generate step, the owner's generations per day), or blocked; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A backing service is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn create_run(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    respond(&ctx, create(&ctx, &state, &headers, body).await)
}

async fn create(
    ctx: &RequestContext,
    state: &AppState,
    headers: &HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let claims = authenticate(state, headers, Access::own("runs:create"))?;
    let spec: RunSpec = body.parse(None)?;
    // An uploaded input must exist and be the caller's (an admin may use anyone's).
    if let Some(Input::MediaId(media_id)) = &spec.input {
        let media = state
            .media
            .commands
            .load(&media_id.to_string())
            .await
            .map_err(|error| Problem::unavailable(&error))?;
        match media.upload() {
            Some(upload) if upload.owner == claims.username || claims.role == Role::Admin => {}
            found => {
                // The same answer whether it exists or not (no oracle); naming another
                // user's media is a refusal for the audit trail.
                let detail =
                    format!("no media {media_id} of yours; upload it with POST /api/v1/media");
                let problem = Problem::unprocessable("unknown-media", detail.clone())
                    .at("/input/media_id", detail);
                return Err(match found {
                    Some(_) => ApiError::Refused(problem),
                    None => problem.into(),
                });
            }
        }
    }
    if spec.generations() > 0 {
        // Checked before anything is charged (the aggregate checks again).
        spec.validate().map_err(|error| {
            ApiError::Run(cqrs_es::AggregateError::UserError(
                aurora_domain::run::RunError::InvalidSpec(error),
            ))
        })?;
        // Refused here, with a problem that says why, rather than failed later.
        if state.config.heygen_key().is_none() {
            return Err(Problem::unprocessable(
                "provider-not-configured",
                "generate steps need HeyGen, and this Aurora has no key for it \
                 (AURORA_HEYGEN_API_KEY)",
            )
            .into());
        }
        // Paid work: the owner's daily quota of generations.
        if let Some(limits) = &state.limits {
            if let Err(refused) = limits
                .charge("generations", &claims.username, claims.tier)
                .await
            {
                return Ok(refused.response());
            }
        }
    }
    let run_id = Uuid::now_v7();
    let metadata = ctx.metadata_for(&claims);
    let command = RunCommand::RequestRun {
        run_id,
        owner: metadata.principal.clone(),
        spec: spec.clone(),
    };
    let (created, position) = committed_position(state.run_commands.create(
        &run_id.to_string(),
        command,
        &metadata,
    ))
    .await;
    match created {
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
                position,
            };
            let mut response = json(StatusCode::CREATED, &body, ctx);
            if let Ok(location) = http::HeaderValue::from_str(&format!("/api/v1/runs/{run_id}")) {
                response
                    .headers_mut()
                    .insert(http::header::LOCATION, location);
            }
            Ok(response)
        }
        Err(error) => {
            state.metrics.command("RequestRun", outcome(&error));
            Err(error.into())
        }
    }
}

/// Cancels a run that has not finished; the body (a reason) is optional.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    tag = "runs",
    params(("id" = Uuid, Path, description = "The run id")),
    request_body(content = CancelRequest, description = "Optional: why (no body at all is fine)", example = json!({"reason": "uploaded the wrong file"})),
    responses(
        (status = 200, description = "Cancelled", body = RunCancelled),
        (status = 400, description = "The id is not a UUID, or the body is not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the token's to cancel", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No run with this id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Already finished, or changed at the same time (retry)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad body or a reason too long", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn cancel_run(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    respond(&ctx, cancel(&raw_id, &ctx, &state, &headers, body).await)
}

async fn cancel(
    raw_id: &str,
    ctx: &RequestContext,
    state: &AppState,
    headers: &HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let run_id = parse_run_id(raw_id)?;
    // The token first: a request without a valid one costs no read of the store.
    let token = verify_request(state, headers)?;
    // The owner comes from the store, not the view: a run just requested may not be in
    // the view yet, and may be cancelled all the same.
    let id = run_id.to_string();
    let run = state.run_commands.load(&id).await?;
    let access = Access {
        operation: "runs:cancel",
        resource: Some(("run", &id)),
        owner: run.owner(),
    };
    let claims = authorize(state, &token, access)?;
    let request: CancelRequest = body.parse(Some(CancelRequest::default()))?;
    if run.owner().is_none() {
        return Err(Problem::not_found("no run with this id").into());
    }
    let command = RunCommand::CancelRun {
        reason: request.reason,
    };
    match state
        .run_commands
        .execute(&id, command, &ctx.metadata_for(&claims))
        .await
    {
        Ok(_) => {
            state.metrics.command("CancelRun", "accepted");
            let body = RunCancelled {
                id: run_id,
                status: "cancelled",
            };
            Ok(json(StatusCode::OK, &body, ctx))
        }
        Err(error) => {
            state.metrics.command("CancelRun", outcome(&error));
            Err(error.into())
        }
    }
}

fn outcome(error: &AggregateError<RunError>) -> &'static str {
    match error {
        AggregateError::UserError(_) | AggregateError::AggregateConflict => "refused",
        _ => "failed",
    }
}

/// Reads a run: from its read model, or from the store when the read model has not got it
/// yet (a run whose request was answered is always found), or when the request names a
/// position (`Aurora-After-Position`) the reader must see.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    tag = "runs",
    params(("id" = Uuid, Path, description = "The run id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 400, description = "The id is not a UUID", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the token's to read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No run with this id", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn get_run(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    let view = readable_view(&raw_id, &state, &headers).await;
    respond(&ctx, view.map(|view| json(StatusCode::OK, &view, &ctx)))
}

/// Lists runs, newest first: an admin's every run, anyone else's their own.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    tag = "runs",
    params(
        ("limit" = Option<i64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page"),
        ("status" = Option<String>, Query, description = "Only runs in this status: requested, running, succeeded, failed or cancelled"),
        ("aurora-after-position" = Option<i64>, Header, description = "Wait (at most 2 s) until the list includes what was stored up to this position (a command's Aurora-Position)"),
    ),
    responses(
        (status = 200, description = "A page of runs", body = Page<RunView>,
            headers(("aurora-consistency" = String, description = "With Aurora-After-Position: caught-up, or stale if the list had not reached it within the wait"))),
        (status = 400, description = "A bad query, limit, cursor or status", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow runs:read", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn list_runs(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    respond(&ctx, list(&ctx, &state, &headers, &query).await)
}

async fn list(
    ctx: &RequestContext,
    state: &AppState,
    headers: &HeaderMap,
    query: &str,
) -> Result<Response, ApiError> {
    let claims = authenticate(state, headers, Access::own("runs:read"))?;
    // Admins see every run; everyone else their own.
    let owner = (claims.role != Role::Admin).then_some(claims.username.as_str());
    let (status, query) = status_filter(query)?;
    let (limit, cursor) = page::parse(&query, DEFAULT_PAGE, MAX_PAGE)?;
    let cursor = match cursor.as_deref().map(parse_run_id).transpose() {
        Ok(cursor) => cursor.map(|id| id.to_string()),
        Err(_) => {
            return Err(Problem::bad_request(
                "invalid-cursor",
                "cursor must be the next_cursor of a previous page",
            )
            .into())
        }
    };
    let reached = consistency::wait(state, headers, aurora_projections::runs::NAME).await?;
    let items = state
        .runs
        .list_where(cursor.as_deref(), limit + 1, owner, status)
        .await
        .map_err(|error| Problem::unavailable(&error))?;
    let page = page::page(items, limit, |run| run.id.clone());
    Ok(consistency::mark(json(StatusCode::OK, &page, ctx), reached))
}

/// The statuses a list may be filtered by: a run's, as the domain names them.
const STATUSES: [&str; 5] = [
    RunStatus::Requested.as_str(),
    RunStatus::Running.as_str(),
    RunStatus::Succeeded.as_str(),
    RunStatus::Failed.as_str(),
    RunStatus::Cancelled.as_str(),
];

/// Takes `status` out of a list's query: the status asked for (one of [`STATUSES`]), and
/// the rest of the query for paging.
fn status_filter(query: &str) -> Result<(Option<&'static str>, String), Problem> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| Problem::bad_request("invalid-query", format!("invalid query: {e}")))?;
    let mut status = None;
    let mut rest = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        if name != "status" {
            rest.push((name, value));
            continue;
        }
        let known = STATUSES.iter().find(|s| **s == value);
        match (status, known) {
            (None, Some(known)) => status = Some(*known),
            (Some(_), _) => return Err(Problem::bad_request("invalid-status", "give status once")),
            (None, None) => {
                return Err(Problem::bad_request(
                    "invalid-status",
                    format!("status must be one of {}", STATUSES.join(", ")),
                ))
            }
        }
    }
    let rest = serde_urlencoded::to_string(&rest)
        .map_err(|e| Problem::bad_request("invalid-query", format!("invalid query: {e}")))?;
    Ok((status, rest))
}

/// A run's view (the read model), if the token may read it.
async fn readable_view(
    raw_id: &str,
    state: &AppState,
    headers: &HeaderMap,
) -> Result<RunView, ApiError> {
    let run_id = parse_run_id(raw_id)?;
    // The token before the lookup: without a valid one, a run that exists and one that
    // does not get the same 401 (no existence oracle).
    let token = verify_request(state, headers)?;
    let id = run_id.to_string();
    let asked = consistency::asked(headers)?;
    let view = match asked {
        // A position to see: the store has everything up to it.
        Some(_) => stored_view(state, &id).await,
        None => match state.runs.get(&id).await {
            Ok(None) => stored_view(state, &id).await,
            found => found,
        },
    };
    match view {
        Ok(Some(view)) => {
            let access = Access {
                operation: "runs:read",
                resource: Some(("run", &id)),
                owner: Some(&view.owner),
            };
            authorize(state, &token, access)?;
            Ok(view)
        }
        Ok(None) => Err(Problem::not_found("no run with this id").into()),
        Err(error) => Err(Problem::unavailable(&error).into()),
    }
}

/// Run `id` as the view shows it, made from the store (its events, folded by the view's
/// own rules): current the moment a command commits.
async fn stored_view(
    state: &AppState,
    id: &str,
) -> Result<Option<RunView>, aurora_projections::StoreError> {
    let history = state.db.read_aggregate_after(Run::TYPE, id, 0).await?;
    RunsProjection::fold(&history)
}

/// A run as the event store has it — current the moment a command commits, unlike the
/// view — if the token may read it; with the reader's claims.
pub(crate) async fn readable_stored(
    raw_id: &str,
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Uuid, Run, Claims), ApiError> {
    let run_id = parse_run_id(raw_id)?;
    // The token first: a request without a valid one costs no read of the store.
    let token = verify_request(state, headers)?;
    let id = run_id.to_string();
    let run = state
        .run_commands
        .load(&id)
        .await
        .map_err(|e| Problem::unavailable(&e))?;
    let Some(owner) = run.owner() else {
        return Err(Problem::not_found("no run with this id").into());
    };
    let access = Access {
        operation: "runs:read",
        resource: Some(("run", &id)),
        owner: Some(owner),
    };
    let claims = authorize(state, &token, access)?;
    Ok((run_id, run, claims))
}

/// A run cancelled.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunCancelled {
    /// The run.
    pub id: Uuid,
    /// `cancelled`.
    #[schema(example = "cancelled")]
    pub status: &'static str,
}
