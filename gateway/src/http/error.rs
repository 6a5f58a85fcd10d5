//! The HTTP boundary's one error type. A handler's work returns `Result<Response, ApiError>`
//! and uses `?` on whatever fails — a [`Problem`] stated where it arose (bad input, not
//! found), a refused token, a failed user or run command — and [`respond`] turns the error
//! into `application/problem+json`. How a domain error reads to a client (status, slug,
//! detail) is decided here and nowhere else.

use aurora_domain::run::RunError;
use aurora_domain::user::UserError;
use cqrs_es::AggregateError;
use http::StatusCode;
use warp::reply::Response;

use super::context::RequestContext;
use super::problem::Problem;
use super::refusals::AuditRefusal;
use crate::auth::tokens::TokenError;

/// Every way a request can fail.
#[derive(Debug)]
pub enum ApiError {
    /// A problem stated where it arose.
    Problem(Problem),
    /// A problem the audit trail records as a refusal although it is no 401/403: a
    /// request naming another user's resource (see [`super::refusals`]).
    Refused(Problem),
    /// The token was refused; for a 403, the operation it did not allow.
    Token(TokenError, String),
    /// A user command or load failed.
    User(AggregateError<UserError>),
    /// A run command or load failed.
    Run(AggregateError<RunError>),
}

/// The response, or the error as a problem.
pub fn respond(ctx: &RequestContext, result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|error| {
        let refused = matches!(error, ApiError::Refused(_));
        let mut response = Problem::from(error).response(Some(ctx));
        if refused {
            response.extensions_mut().insert(AuditRefusal);
        }
        response
    })
}

/// `409 username-taken`.
pub fn username_taken() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "username-taken",
        "Conflict",
        "that username is taken; choose another",
    )
}

/// `409 concurrent-modification`: `what` was changed by another request meanwhile.
fn concurrent(what: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "concurrent-modification",
        "Conflict",
        format!("the {what} was changed by another request at the same time; retry"),
    )
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Problem(problem) | ApiError::Refused(problem) => problem,
            ApiError::Token(error, operation) => refused(error, &operation),
            ApiError::User(error) => user(error),
            ApiError::Run(error) => run(error),
        }
    }
}

fn refused(error: TokenError, operation: &str) -> Problem {
    let unauthorized = |slug| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            slug,
            "Unauthorized",
            error.to_string(),
        )
    };
    match error {
        TokenError::Invalid => unauthorized("invalid-token"),
        TokenError::Revoked => unauthorized("token-revoked"),
        TokenError::Expired => unauthorized("token-expired"),
        TokenError::Busy => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "authorization-busy",
            "Service unavailable",
            format!("{error} ('{operation}')"),
        ),
        TokenError::Forbidden => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            format!(
                "{error}: '{operation}' is not allowed by this token (narrowed, or not your \
                 role)"
            ),
        ),
    }
}

fn user(error: AggregateError<UserError>) -> Problem {
    match error {
        AggregateError::UserError(UserError::AlreadyRegistered) => username_taken(),
        AggregateError::AggregateConflict => concurrent("user"),
        AggregateError::UserError(UserError::NotFound) => Problem::not_found("no such user"),
        AggregateError::UserError(UserError::TokenNotFound) => {
            Problem::not_found("you hold no live token with that id")
        }
        AggregateError::UserError(error @ (UserError::InvalidLabel | UserError::ReasonTooLong)) => {
            Problem::unprocessable("invalid-field", error.to_string())
        }
        AggregateError::UserError(error) => Problem::new(
            StatusCode::CONFLICT,
            "user-state",
            "Conflict",
            error.to_string(),
        ),
        AggregateError::DatabaseConnectionError(error) => Problem::unavailable(&error),
        other => Problem::internal(&other),
    }
}

fn run(error: AggregateError<RunError>) -> Problem {
    match error {
        AggregateError::UserError(error) => match error {
            RunError::InvalidSpec(ref spec) => {
                Problem::unprocessable("invalid-run-spec", error.to_string())
                    .at(spec.pointer(), spec.to_string())
            }
            RunError::ReasonTooLong => {
                Problem::unprocessable("invalid-run-spec", error.to_string())
                    .at("/reason", error.to_string())
            }
            RunError::UnknownGeneration(_) | RunError::InvalidVideoId => {
                Problem::unprocessable("unknown-generation", error.to_string())
            }
            RunError::NotFound => Problem::not_found("no run with this id"),
            RunError::AlreadyExists
            | RunError::AlreadyFinished(_)
            | RunError::StaleAttempt { .. }
            | RunError::GenerationRecorded { .. } => Problem::new(
                StatusCode::CONFLICT,
                "run-state-conflict",
                "Conflict",
                error.to_string(),
            ),
        },
        AggregateError::AggregateConflict => concurrent("run"),
        AggregateError::DatabaseConnectionError(error) => Problem::unavailable(&error),
        other => Problem::internal(&other),
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(problem)
    }
}

impl From<AggregateError<UserError>> for ApiError {
    fn from(error: AggregateError<UserError>) -> Self {
        Self::User(error)
    }
}

impl From<AggregateError<RunError>> for ApiError {
    fn from(error: AggregateError<RunError>) -> Self {
        Self::Run(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_reads_as_its_problem() {
        let cases: Vec<(ApiError, StatusCode, &str)> = vec![
            (
                ApiError::Token(TokenError::Invalid, String::new()),
                StatusCode::UNAUTHORIZED,
                "invalid-token",
            ),
            (
                ApiError::Token(TokenError::Forbidden, "runs:create".into()),
                StatusCode::FORBIDDEN,
                "forbidden",
            ),
            (
                ApiError::Token(TokenError::Busy, "runs:read".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "authorization-busy",
            ),
            (
                AggregateError::UserError(UserError::AlreadyRegistered).into(),
                StatusCode::CONFLICT,
                "username-taken",
            ),
            (
                AggregateError::<UserError>::AggregateConflict.into(),
                StatusCode::CONFLICT,
                "concurrent-modification",
            ),
            (
                AggregateError::UserError(RunError::NotFound).into(),
                StatusCode::NOT_FOUND,
                "not-found",
            ),
            (
                AggregateError::<RunError>::DatabaseConnectionError("down".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                Problem::bad_request("invalid-run-id", "x").into(),
                StatusCode::BAD_REQUEST,
                "invalid-run-id",
            ),
        ];
        for (error, status, slug) in cases {
            let problem = Problem::from(error);
            assert_eq!((problem.status, problem.slug), (status, slug));
        }
    }

    #[test]
    fn a_forbidden_operation_is_named() {
        let problem = Problem::from(ApiError::Token(TokenError::Forbidden, "runs:cancel".into()));
        assert!(
            problem.detail.contains("'runs:cancel'"),
            "{}",
            problem.detail
        );
    }
}
