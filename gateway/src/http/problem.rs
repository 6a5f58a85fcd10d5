//! RFC 9457 problem details: every error the gateway returns.

use http::StatusCode;
use serde::Serialize;
use warp::reply::Response;
use warp::Reply;

use super::context::RequestContext;

/// The kind of problem a response carries, for what looks at responses on their way out.
#[derive(Debug, Clone, Copy)]
pub struct ProblemSlug(pub &'static str);

/// One kind of failure, with a status and a message a person can act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The fields of the request at fault, if the problem is about some (JSON pointers
    /// into the body, RFC 6901).
    pub errors: Vec<FieldError>,
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable kind; the `type` is `/problems/<slug>`.
    pub slug: &'static str,
    /// Short summary, the same for every occurrence of this kind.
    pub title: &'static str,
    /// What went wrong this time, and what to do about it.
    pub detail: String,
}

/// The problems every route behind a token may answer besides its own, for the API docs
/// (`responses(..., TokenRouteProblems)`): no valid token, rate limited, a backing service
/// away.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Describes responses; never built.
pub(crate) enum TokenRouteProblems {
    #[response(
        status = 401,
        description = "No valid token",
        content_type = "application/problem+json"
    )]
    Unauthorized(Body<'static>),
    #[response(
        status = 429,
        description = "Rate limited or blocked; see Retry-After",
        content_type = "application/problem+json"
    )]
    RateLimited(Body<'static>),
    #[response(
        status = 503,
        description = "A backing service is unavailable",
        content_type = "application/problem+json"
    )]
    Unavailable(Body<'static>),
}

/// An RFC 9457 problem details body, sent as `application/problem+json`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct Body<'a> {
    /// `/problems/<slug>`: the stable, machine-readable kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "/problems/not-found")]
    kind: String,
    /// Short summary, the same for every occurrence of this kind.
    title: &'a str,
    /// The HTTP status.
    status: u16,
    /// What went wrong this time, and what to do about it.
    detail: &'a str,
    /// The request's id (also in `x-request-id`); quote it when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    /// The fields at fault, for a problem about the request's body (RFC 9457 extension):
    /// a form shows each message next to its field.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

/// A field of the request at fault.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// A JSON pointer (RFC 6901) into the request's body, e.g. `/steps/1/format`.
    #[schema(example = "/steps/2/at_seconds")]
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

impl Problem {
    /// A problem of kind `slug`.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            errors: Vec::new(),
            status,
            slug,
            title,
            detail: detail.into(),
        }
    }

    /// The problem, as being about the body's field at `pointer` (a JSON pointer), which
    /// `detail` says what is wrong with.
    pub fn at(mut self, pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            pointer: pointer.into(),
            detail: detail.into(),
        });
        self
    }

    /// 400: the request cannot be parsed.
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, slug, "Bad request", detail)
    }

    /// 422: the request parsed, but its content is not acceptable.
    pub fn unprocessable(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            slug,
            "Unprocessable request",
            detail,
        )
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 500 for anything unexpected; the cause is logged, never sent.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "something went wrong on our side; quote the request id when reporting it",
        )
    }

    /// 503 when a backing service is down; the cause is logged, never sent.
    pub fn unavailable(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "backing service unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "a backing service is unavailable; retry later",
        )
    }

    /// The response, tagged with the request's id.
    pub fn response(&self, ctx: Option<&RequestContext>) -> Response {
        let request_id = ctx.map(|c| c.request_id.as_str());
        let body = Body {
            kind: format!("/problems/{}", self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            request_id,
            errors: &self.errors,
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        response.extensions_mut().insert(ProblemSlug(self.slug));
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/problem+json"),
        );
        if let Some(id) = request_id.and_then(|id| http::HeaderValue::from_str(id).ok()) {
            headers.insert("x-request-id", id);
        }
        response
    }
}
