//! Request bodies and JSON replies shared by every route: bounded bodies, JSON parsed in
//! two steps so that "not JSON" (400) and "wrong shape" (422) are told apart.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::context::RequestContext;
use super::problem::Problem;

/// The body, at most `limit` bytes, with the headers that describe it.
pub fn json_body(limit: u64) -> impl Filter<Extract = (JsonBody,), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and(bounded_body(limit))
        .map(|headers, bytes| JsonBody { headers, bytes })
}

/// A request body with the headers that describe it.
#[derive(Debug)]
pub struct JsonBody {
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
    /// The request's headers.
    pub fn headers_map(&self) -> &HeaderMap {
        &self.headers
    }

    /// The raw bytes, as received (signatures are over these).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Parses the body as `T` (an empty body is `empty`, if given), or says precisely why not.
    pub fn parse<T: DeserializeOwned>(&self, empty: Option<T>) -> Result<T, Problem> {
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

/// A JSON reply carrying the request id.
pub fn json(status: StatusCode, body: &impl Serialize, ctx: &RequestContext) -> Response {
    with_request_id(
        warp::reply::with_status(warp::reply::json(body), status).into_response(),
        ctx,
    )
}

/// `204 No Content`, carrying the request id.
pub fn no_content(ctx: &RequestContext) -> Response {
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    with_request_id(response, ctx)
}

pub(crate) fn with_request_id(mut response: Response, ctx: &RequestContext) -> Response {
    if let Ok(id) = http::HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}
