//! A run's artifacts: the files its steps produced, listed and downloaded.

use std::sync::Arc;

use aurora_domain::media::Artifact;
use aurora_domain::run::Run;
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use uuid::Uuid;
use warp::reply::Response;

use warp::{Filter, Rejection};

use super::readable_stored;
use crate::http::body::{json, Binary};
use crate::http::context::{context, RequestContext};
use crate::http::error::{respond, ApiError};
use crate::http::problem::TokenRouteProblems;
use crate::http::problem::{Body as ProblemBody, Problem};
use crate::state::AppState;

/// `GET /api/v1/runs/{id}/artifacts` and `GET /api/v1/runs/{id}/artifacts/{artifact}`.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let headers = warp::header::headers_cloned();
    let list = warp::path!("api" / "v1" / "runs" / String / "artifacts")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(headers)
        .then(list_artifacts);
    let download = warp::path!("api" / "v1" / "runs" / String / "artifacts" / String)
        .and(warp::get())
        .and(context())
        .and(with_state)
        .and(headers)
        .then(download_artifact);
    list.or(download).unify()
}

/// The artifacts among a run's step outputs, with the step that produced each.
fn artifacts_of(run: &Run) -> impl Iterator<Item = (usize, &Artifact)> {
    run.outputs()
        .iter()
        .enumerate()
        .filter_map(|(step, output)| output.artifact().map(|a| (step, a)))
}

/// Lists the files a run has produced so far, with their downloads.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/artifacts",
    tag = "runs",
    params(("id" = Uuid, Path, description = "The run id")),
    responses(
        (status = 200, description = "The run's artifacts", body = ArtifactList),
        (status = 400, description = "The id is not a UUID", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the token's to read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No run with this id", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
pub(super) async fn list_artifacts(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    let found = readable_stored(&raw_id, &state, &headers).await;
    respond(
        &ctx,
        found.map(|(run_id, run, _)| listed(run_id, &run, &ctx)),
    )
}

fn listed(run_id: Uuid, run: &Run, ctx: &RequestContext) -> Response {
    let items = artifacts_of(run)
        .map(|(step, artifact)| ListedArtifact {
            url: format!("/api/v1/runs/{run_id}/artifacts/{}", artifact.id),
            artifact: artifact.clone(),
            step: u32::try_from(step).unwrap_or(u32::MAX),
        })
        .collect();
    let body = ArtifactList {
        run_id,
        status: run.status().as_str().to_string(),
        items,
    };
    json(StatusCode::OK, &body, ctx)
}

/// Downloads an artifact (a rendition, a thumbnail), honouring a single byte `Range`.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/artifacts/{artifact}",
    tag = "runs",
    params(
        ("id" = Uuid, Path, description = "The run id"),
        ("artifact" = Uuid, Path, description = "The artifact id"),
        ("range" = Option<String>, Header, description = "One byte range: bytes=a-b, bytes=a- or bytes=-n"),
    ),
    responses(
        (status = 200, description = "The file, of its own media type (e.g. video/webm, image/jpeg)", body = Binary, content_type = "application/octet-stream",
            headers(("content-disposition" = String, description = "attachment, with the file name"), ("accept-ranges" = String, description = "bytes"))),
        (status = 206, description = "The range asked for", body = Binary, content_type = "application/octet-stream",
            headers(("content-range" = String, description = "bytes a-b/size"))),
        (status = 400, description = "An id is not a UUID", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the token's to read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such run or artifact", body = ProblemBody, content_type = "application/problem+json"),
        (status = 416, description = "The range lies outside the file", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
pub(super) async fn download_artifact(
    raw_id: String,
    raw_artifact: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    respond(
        &ctx,
        download(&raw_id, &raw_artifact, &ctx, state.clone(), headers).await,
    )
}

async fn download(
    raw_id: &str,
    raw_artifact: &str,
    ctx: &RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (run_id, run, _) = readable_stored(raw_id, &state, &headers).await?;
    let artifact_id = Uuid::parse_str(raw_artifact).map_err(|_| {
        Problem::bad_request("invalid-artifact-id", "the artifact id must be a UUID")
    })?;
    let Some((_, artifact)) = artifacts_of(&run).find(|(_, a)| a.id == artifact_id) else {
        return Err(Problem::not_found("the run has no artifact with this id").into());
    };
    // Names come from events Aurora wrote; checked all the same.
    let Some(path) = state.media.artifacts.artifact(run_id, &artifact.name) else {
        return Err(Problem::internal(&"stored artifact name is unsafe").into());
    };
    let holds = crate::http::guard::token_holds(
        state.clone(),
        headers.clone(),
        "runs:read",
        Some(("run", run_id.to_string())),
        run.owner().map(str::to_string),
    );
    crate::http::files::serve(
        &path,
        &artifact.content_type,
        &artifact.name,
        &headers,
        ctx,
        holds,
    )
    .await
}

/// An artifact as listed, with the step that made it and where to download it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListedArtifact {
    /// The file.
    #[serde(flatten)]
    pub artifact: Artifact,
    /// The step (index from 0) that produced it.
    pub step: u32,
    /// Its download: `/api/v1/runs/{id}/artifacts/{artifact}`.
    pub url: String,
}

/// A run's artifacts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ArtifactList {
    /// The run.
    pub run_id: Uuid,
    /// The run's status now.
    pub status: String,
    /// The artifacts, in step order.
    pub items: Vec<ListedArtifact>,
}
