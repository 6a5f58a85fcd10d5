//! `/api/v1/media`: upload a media file (the raw bytes as the body) and download it.
//!
//! An upload streams to a temporary file in the artifact store — never the whole body in
//! memory — under a name Aurora generates, with a size limit and a SHA-256 computed on the
//! way. Its type is judged by its structure: the first bytes name a candidate among the
//! admitted formats ([`InputFormat`]) and ffprobe must read the file with that format's
//! demuxer forced and no other allowed; the declared content type and any file name are
//! ignored. Only then is the file moved to its final name and `MediaUploaded` recorded.

use std::sync::Arc;

use aurora_actors::artifacts::{ArtifactStore, SNIFF_BYTES};
use aurora_actors::tools::{Demuxer, ToolError};
use aurora_domain::media::{InputFormat, MediaCommand, Upload};
use bytes::Buf;
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::json;
use super::body::Binary;
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::guard::{authenticate, authorize, verify_request};
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::tokens::Access;
use crate::state::AppState;

/// How long ffprobe may take to check an upload.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The media routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let upload = warp::path!("api" / "v1" / "media")
        .and(warp::post())
        .and(context())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(upload_stream);
    let download = warp::path!("api" / "v1" / "media" / String)
        .and(warp::get())
        .and(context())
        .and(with_state)
        .and(warp::header::headers_cloned())
        .then(download);
    upload.or(download).unify()
}

/// A temporary file removed on drop unless taken.
struct PartFile(Option<std::path::PathBuf>);

impl Drop for PartFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn too_large(limit: u64) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Payload too large",
        format!("uploads are limited to {limit} bytes"),
    )
}

/// Streams the body to `part`, returning its size, SHA-256 and first bytes. Uploads have
/// no overall deadline (a large file on a slow link takes what it takes) but may not
/// stall: `idle` without a byte ends it with 408.
async fn receive(
    part: &std::path::Path,
    mut body: impl futures::Stream<Item = Result<bytes::Bytes, warp::Error>> + Unpin,
    limit: u64,
    idle: std::time::Duration,
) -> Result<(u64, String, Vec<u8>), Problem> {
    let mut file = tokio::fs::File::create(part)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut size = 0u64;
    loop {
        let Ok(next) = tokio::time::timeout(idle, body.next()).await else {
            return Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload-stalled",
                "Request timeout",
                format!("the upload sent nothing for {} s", idle.as_secs()),
            ));
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            Problem::bad_request("upload-interrupted", format!("the upload broke off: {e}"))
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| Problem::internal(&e))?;
    }
    file.sync_all().await.map_err(|e| Problem::internal(&e))?;
    Ok((size, hex::encode(hasher.finalize()), head))
}

async fn upload_stream<S, B>(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let body = body.map(|chunk| chunk.map(|mut buf| buf.copy_to_bytes(buf.remaining())));
    upload(ctx, state, headers, Box::pin(body)).await
}

/// Uploads a media file: the raw bytes as the body. Its type is judged from its content
/// (and ffprobe must read it), never from a declared type or name.
#[utoipa::path(
    post,
    path = "/api/v1/media",
    operation_id = "upload_media",
    tag = "media",
    request_body(content = Binary, content_type = "application/octet-stream", description = "The file's bytes (any declared type is ignored)"),
    responses(
        (status = 201, description = "Stored and checked", body = MediaUploaded,
            headers(("location" = String, description = "The media: /api/v1/media/{id}"))),
        (status = 400, description = "The upload broke off", body = ProblemBody, content_type = "application/problem+json"),
        (status = 408, description = "The upload stalled (nothing sent for three head deadlines)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The token does not allow media:create", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the upload limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not a known audio or video container", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Empty, or unreadable by ffprobe", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn upload(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    body: impl futures::Stream<Item = Result<bytes::Bytes, warp::Error>> + Unpin,
) -> Response {
    respond(&ctx, accept(&ctx, &state, &headers, body).await)
}

async fn accept(
    ctx: &RequestContext,
    state: &AppState,
    headers: &HeaderMap,
    body: impl futures::Stream<Item = Result<bytes::Bytes, warp::Error>> + Unpin,
) -> Result<Response, ApiError> {
    // Who first: nothing of an unauthorized client is written.
    let claims = authenticate(state, headers, Access::own("media:create"))?;
    let limit = state.config.max_upload_bytes;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit).into());
    }
    let media = &state.media;
    let id = Uuid::now_v7();
    let part = media.artifacts.media_part(id);
    // Removed however this ends, a client that goes away mid-upload included (the handler
    // is then dropped), unless it becomes the stored file.
    let mut leftover = PartFile(Some(part.clone()));
    let checked = async {
        // Three head deadlines without a byte: the client stalled.
        let idle = state.config.head_timeout() * 3;
        let (bytes, sha256, head) = receive(&part, body, limit, idle).await?;
        if bytes == 0 {
            return Err(Problem::unprocessable(
                "empty-upload",
                "the upload is empty; send the media file's bytes as the body",
            ));
        }
        let Some(format) = InputFormat::sniff(&head) else {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!(
                    "the content is not an admitted audio or video format ({}; judged by its \
                     structure, not its name or declared type)",
                    InputFormat::names()
                ),
            ));
        };
        let content_type = format.content_type(&head);
        let probed = media
            .tools
            .probe(&part, Demuxer::of(format), PROBE_TIMEOUT)
            .await;
        let info = match probed {
            Ok(info) => info,
            Err(ToolError::Invalid(reason)) => {
                return Err(Problem::unprocessable("unreadable-media", reason))
            }
            Err(ToolError::TimedOut(after)) => {
                return Err(Problem::unprocessable(
                    "unreadable-media",
                    format!("ffprobe could not read the file within {after:?}"),
                ))
            }
            Err(error) => return Err(Problem::unavailable(&error)),
        };
        Ok((bytes, sha256, content_type, info))
    };
    // A refused upload's part file goes with `leftover`.
    let (bytes, sha256, content_type, info) = checked.await?;
    let path = media.artifacts.media(id);
    ArtifactStore::commit(&part, &path)
        .await
        .map_err(|error| Problem::internal(&error))?;
    leftover.0 = None;
    let upload = Upload {
        media_id: id,
        owner: claims.username.clone(),
        bytes,
        sha256,
        content_type: content_type.to_string(),
        info,
    };
    let metadata = ctx.metadata_for(&claims);
    match media
        .commands
        .create(
            &id.to_string(),
            MediaCommand::RecordUpload(upload.clone()),
            &metadata,
        )
        .await
    {
        Ok(_) => {
            state.metrics.command("RecordUpload", "accepted");
            tracing::info!(media_id = %id, bytes, "media uploaded");
            let body = MediaUploaded {
                id,
                owner: upload.owner,
                bytes: upload.bytes,
                sha256: upload.sha256,
                content_type: upload.content_type,
                info: upload.info,
                created_at: metadata
                    .time
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            };
            let mut response = json(StatusCode::CREATED, &body, ctx);
            if let Ok(location) = http::HeaderValue::from_str(&format!("/api/v1/media/{id}")) {
                response
                    .headers_mut()
                    .insert(http::header::LOCATION, location);
            }
            Ok(response)
        }
        Err(error) => {
            state.metrics.command("RecordUpload", "failed");
            let _ = tokio::fs::remove_file(&path).await;
            Err(Problem::unavailable(&error).into())
        }
    }
}

/// Downloads an uploaded media file, honouring a single byte `Range`.
#[utoipa::path(
    get,
    path = "/api/v1/media/{id}",
    operation_id = "download_media",
    tag = "media",
    params(
        ("id" = Uuid, Path, description = "The media id"),
        ("range" = Option<String>, Header, description = "One byte range: bytes=a-b, bytes=a- or bytes=-n"),
    ),
    responses(
        (status = 200, description = "The file, of its media type", body = Binary, content_type = "application/octet-stream"),
        (status = 206, description = "The range asked for", body = Binary, content_type = "application/octet-stream",
            headers(("content-range" = String, description = "bytes a-b/size"))),
        (status = 400, description = "The id is not a UUID", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the token's to read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No media with this id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 416, description = "The range lies outside the file", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn download(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    respond(&ctx, send(&raw_id, &ctx, state.clone(), headers).await)
}

async fn send(
    raw_id: &str,
    ctx: &RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = Uuid::parse_str(raw_id).map_err(|_| {
        Problem::bad_request(
            "invalid-media-id",
            "the media id in the path must be a UUID",
        )
    })?;
    let token = verify_request(&state, &headers)?;
    let media = state
        .media
        .commands
        .load(&id.to_string())
        .await
        .map_err(|error| Problem::unavailable(&error))?;
    let Some(upload) = media.upload() else {
        return Err(Problem::not_found("no media with this id").into());
    };
    let key = id.to_string();
    let access = Access {
        operation: "media:read",
        resource: Some(("media", &key)),
        owner: Some(&upload.owner),
    };
    authorize(&state, &token, access)?;
    let path = state.media.artifacts.media(id);
    let holds = super::guard::token_holds(
        state.clone(),
        headers.clone(),
        "media:read",
        Some(("media", key.clone())),
        Some(upload.owner.clone()),
    );
    super::files::serve(&path, &upload.content_type, &key, &headers, ctx, holds).await
}

/// An upload, checked and stored.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MediaUploaded {
    /// The media id, to use as a run's `input.media_id`.
    pub id: Uuid,
    /// Who uploaded it.
    pub owner: String,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Its media type, as judged from the content.
    pub content_type: String,
    /// What ffprobe found.
    pub info: aurora_domain::media::MediaInfo,
    /// When it was stored (RFC 3339).
    pub created_at: String,
}
