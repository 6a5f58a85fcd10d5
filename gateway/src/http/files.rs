//! Downloads of stored files, with single byte ranges (`Range: bytes=a-b`, `a-`, `-n`):
//! `206` with `Content-Range`, `416` for a range past the end, `200` for the whole file.

use std::path::Path;

use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use warp::reply::Response;
use warp::Reply;

use super::body::with_request_id;
use super::context::RequestContext;
use super::error::ApiError;
use super::problem::Problem;

/// The requested range lies outside the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A byte range of a file of `size` bytes: `Ok(None)` for the whole file (no header, or
/// one this server does not honour, such as several ranges), `Err` if unsatisfiable.
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: the whole file is a valid answer
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.is_empty(), end.is_empty()) {
        (true, true) => return Ok(None),
        (true, false) => {
            let suffix: u64 = end.parse().map_err(|_| Unsatisfiable)?;
            if suffix == 0 || size == 0 {
                return Err(Unsatisfiable);
            }
            (size.saturating_sub(suffix), size - 1)
        }
        (false, _) => {
            let start: u64 = start.parse().map_err(|_| Unsatisfiable)?;
            let end: u64 = if end.is_empty() {
                size.saturating_sub(1)
            } else {
                end.parse::<u64>()
                    .map_err(|_| Unsatisfiable)?
                    .min(size.saturating_sub(1))
            };
            if start >= size || end < start {
                return Err(Unsatisfiable);
            }
            (start, end)
        }
    };
    Ok(Some(range))
}

/// Streams `path` as `content_type`, honouring `Range`, for as long as `holds` (the
/// request's token still allows the download: see [`super::guard::token_holds`]).
pub async fn serve(
    path: &Path,
    content_type: &str,
    file_name: &str,
    headers: &HeaderMap,
    ctx: &RequestContext,
    holds: impl Fn() -> bool + Send + Sync + 'static,
) -> Result<Response, ApiError> {
    let mut file = tokio::fs::File::open(path).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            Problem::not_found("the file is no longer in the artifact store")
        } else {
            Problem::internal(&error)
        }
    })?;
    let size = file
        .metadata()
        .await
        .map_err(|error| Problem::internal(&error))?
        .len();
    let range_header = headers
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok());
    let range = match parse_range(range_header, size) {
        Ok(range) => range,
        Err(Unsatisfiable) => {
            let mut response = Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                "Range not satisfiable",
                format!("the file has {size} bytes"),
            )
            .response(Some(ctx));
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let (status, start, length) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|error| Problem::internal(&error))?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(length), 64 * 1024);
    let stream = super::guard::while_token_holds(stream, holds);
    let mut response = warp::reply::stream(stream).into_response();
    *response.status_mut() = status;
    let out = response.headers_mut();
    let mut set = |name: http::header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.insert(name, value);
        }
    };
    set(http::header::CONTENT_TYPE, content_type.to_string());
    set(http::header::CONTENT_LENGTH, length.to_string());
    set(http::header::ACCEPT_RANGES, "bytes".into());
    set(
        http::header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{file_name}\""),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            http::header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + length - 1),
        );
    }
    Ok(with_request_id(response, ctx))
}

#[cfg(test)]
mod tests {
    use super::{parse_range, Unsatisfiable};

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=9-3"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=x-3"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::parse_range;

    proptest! {
        #![proptest_config(crate::properties())]

        #[test]
        fn any_range_header_is_whole_file_a_range_inside_it_or_unsatisfiable(
            header in prop_oneof![".{0,40}", "bytes=[0-9]{0,21}-[0-9]{0,21}", "bytes= ?-?[0-9]{0,5} ?- ?[0-9]{0,5}"],
            size in 0u64..10_000,
        ) {
            if let Ok(Some((start, end))) = parse_range(Some(&header), size) {
                prop_assert!(start <= end && end < size, "{}..{} of {}", start, end, size);
            }
        }

        #[test]
        fn a_range_inside_the_file_is_served_as_asked(
            size in 1u64..1_000_000,
            a in 0u64..1_000_000,
            len in 0u64..1_000_000,
        ) {
            let start = a % size;
            let end = start.saturating_add(len);
            let served = parse_range(Some(&format!("bytes={start}-{end}")), size);
            prop_assert_eq!(served, Ok(Some((start, end.min(size - 1)))));
        }
    }
}
