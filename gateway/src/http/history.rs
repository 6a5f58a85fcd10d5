//! History and time travel: `GET /api/v1/runs/{id}/history` and
//! `GET /api/v1/users/{id}/history` return the aggregate's events in order and the state
//! they make; `?as_of=<RFC 3339 time or global position>` stops at that point, so the
//! state is the one the aggregate had then. Authorized like reads of the aggregate.

use std::sync::Arc;

use aurora_domain::run::Run;
use aurora_domain::user::{Role, User};
use aurora_projections::runs::RunView;
use aurora_projections::{RunsProjection, StoredEvent, UserView, UsersProjection};
use chrono::{DateTime, SecondsFormat, Utc};
use cqrs_es::Aggregate;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::json;
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::guard::authenticate;
use super::page::optional_raw_query;
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::tokens::{Access, Claims};
use crate::state::AppState;

/// The routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let run = warp::path!("api" / "v1" / "runs" / String / "history")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .and(optional_raw_query())
        .then(run_history);
    let user = warp::path!("api" / "v1" / "users" / String / "history")
        .and(warp::get())
        .and(context())
        .and(with_state)
        .and(warp::header::headers_cloned())
        .and(optional_raw_query())
        .then(user_history);
    run.or(user).unify()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    as_of: Option<String>,
}

/// Where to stop: a time, or a global position.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AsOf {
    Time(DateTime<Utc>),
    Position(i64),
}

impl AsOf {
    fn parse(raw_query: &str) -> Result<Option<Self>, Problem> {
        let query: Query = serde_urlencoded::from_str(raw_query).map_err(|e| {
            Problem::bad_request(
                "invalid-query",
                format!("invalid query: {e}; the only parameter is as_of"),
            )
        })?;
        let Some(raw) = query.as_of else {
            return Ok(None);
        };
        if let Ok(position) = raw.parse::<i64>() {
            return if position >= 0 {
                Ok(Some(AsOf::Position(position)))
            } else {
                Err(Problem::bad_request(
                    "invalid-as-of",
                    "a position is a whole number from 0",
                ))
            };
        }
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| Some(AsOf::Time(t.with_timezone(&Utc))))
            .map_err(|_| {
                Problem::bad_request(
                    "invalid-as-of",
                    "as_of is an RFC 3339 time (2026-11-18T09:00:00Z) or a global position",
                )
            })
    }

    fn includes(&self, event: &StoredEvent) -> bool {
        match self {
            AsOf::Time(time) => event.metadata.time <= *time,
            AsOf::Position(position) => event.cursor.position <= *position,
        }
    }
}

/// One event as a reader of the aggregate sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct HistoryEvent {
    /// Its sequence in the aggregate, from 1.
    sequence: i64,
    /// Its global position in the store.
    position: i64,
    /// The event type, e.g. `RunRequested`.
    #[serde(rename = "type")]
    event_type: String,
    /// The event's schema version.
    version: String,
    /// When (RFC 3339).
    time: String,
    /// Who caused it.
    actor: String,
    /// Their role then.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    /// The token used (an admin's view, or the reader's own actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<String>,
    /// The request that caused it.
    request_id: String,
    /// From where (an admin's view, or the reader's own actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<String>,
    /// The payload, secrets removed.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

/// An aggregate's events and the state they make.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct History<S> {
    /// `run` or `user`.
    aggregate_type: &'static str,
    /// The aggregate's id.
    id: String,
    /// Where it stops, if asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    as_of: Option<String>,
    /// Events up to `as_of` (all without it).
    version: i64,
    /// The state those events make; `null` if it did not exist yet.
    state: Option<S>,
    events: Vec<HistoryEvent>,
}

/// The events up to `as_of`, shown to `reader`: admins see every token id and address,
/// others only those of their own actions.
fn shown(
    history: Vec<StoredEvent>,
    as_of: Option<AsOf>,
    reader: &Claims,
) -> (Vec<StoredEvent>, Vec<HistoryEvent>) {
    let kept: Vec<StoredEvent> = history
        .into_iter()
        .take_while(|e| as_of.is_none_or(|a| a.includes(e)))
        .collect();
    let full = reader.role == Role::Admin;
    let events = kept
        .iter()
        .map(|e| {
            let m = &e.metadata;
            let own = full || m.principal == reader.username;
            HistoryEvent {
                sequence: e.sequence,
                position: e.cursor.position,
                event_type: e.event_type.clone(),
                version: e.event_version.clone(),
                time: m.time.to_rfc3339_opts(SecondsFormat::Micros, true),
                actor: m.principal.clone(),
                role: m.role.clone(),
                token_id: m.token_id.clone().filter(|_| own),
                request_id: m.request_id.clone(),
                client_ip: m.client_ip.clone().filter(|_| own),
                data: aurora_projections::audit::redact(e.payload.clone()),
            }
        })
        .collect();
    (kept, events)
}

/// The answer: the events up to `as_of` as `reader` may see them, and the state `fold`
/// makes of them.
fn history_body<S>(
    aggregate_type: &'static str,
    id: String,
    history: Vec<StoredEvent>,
    as_of: Option<AsOf>,
    reader: &Claims,
    fold: impl FnOnce(&[StoredEvent]) -> Result<Option<S>, aurora_projections::StoreError>,
) -> Result<History<S>, Problem> {
    let (kept, events) = shown(history, as_of, reader);
    let state = fold(&kept).map_err(|e| Problem::internal(&e))?;
    Ok(History {
        aggregate_type,
        id,
        as_of: as_of_text(as_of),
        version: kept.last().map_or(0, |e| e.sequence),
        state,
        events,
    })
}

fn as_of_text(as_of: Option<AsOf>) -> Option<String> {
    as_of.map(|a| match a {
        AsOf::Time(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        AsOf::Position(p) => p.to_string(),
    })
}

/// A run's events in order and the state they make, up to `as_of` if given.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/history",
    tag = "history",
    params(
        ("id" = Uuid, Path, description = "The run id"),
        ("as_of" = Option<String>, Query, description = "Stop at this RFC 3339 time or global position"),
    ),
    responses(
        (status = 200, description = "The events and the state", body = History<RunView>),
        (status = 400, description = "A bad id or as_of", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the token's to read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No run with this id", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn run_history(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let as_of = AsOf::parse(&query)?;
        let (run_id, _, claims) = super::runs::readable_stored(&raw_id, &state, &headers).await?;
        let id = run_id.to_string();
        let history = state
            .db
            .read_aggregate_after(Run::TYPE, &id, 0)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        let body = history_body(Run::TYPE, id, history, as_of, &claims, |kept| {
            RunsProjection::fold(kept)
        })?;
        Ok(json(StatusCode::OK, &body, &ctx))
    }
    .await;
    respond(&ctx, result)
}

/// A user's events in order and the state they make, up to `as_of` if given: one's own,
/// or anyone's for an admin.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/history",
    tag = "history",
    params(
        ("id" = String, Path, description = "The user id (UUID) or username"),
        ("as_of" = Option<String>, Query, description = "Stop at this RFC 3339 time or global position"),
    ),
    responses(
        (status = 200, description = "The events and the state", body = History<UserView>),
        (status = 400, description = "A bad as_of", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the token's to read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn user_history(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
    query: String,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let as_of = AsOf::parse(&query)?;
        let token = super::guard::verify_request(&state, &headers)?;
        let username = super::users::resolve(&state, &raw_id).await?;
        let claims = if token.claims().username == username {
            super::guard::authorize(&state, &token, Access::own("users:read"))?
        } else {
            authenticate(
                &state,
                &headers,
                Access::admin("users:read", Some(("user", &username))),
            )?
        };
        let history = state
            .db
            .read_aggregate_after(User::TYPE, &username, 0)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        if history.is_empty() {
            return Err(Problem::not_found("no user with this id").into());
        }
        let name = username.clone();
        let body = history_body(User::TYPE, username, history, as_of, &claims, |kept| {
            UsersProjection::fold(&name, kept)
        })?;
        Ok(json(StatusCode::OK, &body, &ctx))
    }
    .await;
    respond(&ctx, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_is_a_time_or_a_position_and_nothing_else() {
        assert_eq!(AsOf::parse("").unwrap(), None);
        assert_eq!(AsOf::parse("as_of=42").unwrap(), Some(AsOf::Position(42)));
        assert!(matches!(
            AsOf::parse("as_of=2026-11-18T09:00:00Z").unwrap(),
            Some(AsOf::Time(_))
        ));
        for bad in ["as_of=-1", "as_of=yesterday", "as_of=1&x=2", "when=3"] {
            assert!(AsOf::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::AsOf;

    proptest! {
        #![proptest_config(crate::properties())]

        #[test]
        fn any_history_query_is_a_time_a_position_or_a_400(
            query in prop_oneof![".{0,60}", "as_of=-?[0-9]{0,20}", "as_of=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{0,12}Z?"],
        ) {
            match AsOf::parse(&query) {
                Ok(Some(AsOf::Position(p))) => prop_assert!(p >= 0),
                Ok(_) => {}
                Err(problem) => prop_assert_eq!(problem.status.as_u16(), 400),
            }
        }
    }
}
