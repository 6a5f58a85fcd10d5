//! `GET /api/v1/runs/{id}/events`: a run's events and live progress as Server-Sent Events,
//! authorized like any read of the run.
//!
//! The stream replays the run's stored events (after `Last-Event-ID`, when a client
//! reconnects), then follows new ones from the bus, interleaved with `progress` events, and
//! ends after the event that ends the run. The bus is subscribed before the history is
//! read, and events are sent by sequence, so none falls between the two or comes twice.
//! Each event's SSE id is its sequence in the run.
//!
//! `GET /api/v1/runs/live`: a notice for every event of every run the token may read, as
//! it reaches the bus (what a live list of runs needs to refresh a row).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use aurora_domain::run::Run;
use aurora_nats::CloudEvent;
use cqrs_es::Aggregate;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use serde::Serialize;
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Rejection, Reply};

use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::problem::TokenRouteProblems;
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::tokens::Access;
use crate::state::AppState;
use aurora_domain::user::Role;

/// The events routes: one run's, and every readable run's changes (`/runs/live`, before
/// `/runs/{id}` takes the path).
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let one = warp::path!("api" / "v1" / "runs" / String / "events")
        .and(warp::get())
        .and(context())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .then(events);
    let every = warp::path!("api" / "v1" / "runs" / "live")
        .and(warp::get())
        .and(context())
        .and(with_state)
        .and(warp::header::headers_cloned())
        .then(live);
    one.or(every).unify()
}

/// Event names that end a run.
pub const TERMINAL: [&str; 3] = ["RunSucceeded", "RunFailed", "RunCancelled"];

/// Longest a stream stays open (a client reconnects with `Last-Event-ID`).
const MAX_STREAM: std::time::Duration = std::time::Duration::from_secs(3600);

/// An event as a run's reader sees it: the envelope without who-else's token id and
/// address (an admin's or the system's actions on the run are not the owner's to trace).
fn sse_event(event: &CloudEvent, full: bool) -> Event {
    let value = if full {
        serde_json::to_value(event)
    } else {
        serde_json::to_value(event.clone().for_subscribers())
    }
    .unwrap_or_default();
    Event::default()
        .event(event.eventname.clone())
        .id(event.sequence.to_string())
        .json_data(value)
        .unwrap_or_else(|_| Event::default().event("error").data("unserializable event"))
}

/// Follows a run as Server-Sent Events: its stored events (after `Last-Event-ID`), then
/// new ones as they happen, with `progress` events between; the stream ends after the
/// event that ends the run. Each event's id is its sequence in the run.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/events",
    operation_id = "follow_run_events",
    tag = "runs",
    params(
        ("id" = Uuid, Path, description = "The run id"),
        ("last-event-id" = Option<i64>, Header, description = "Resume after this sequence"),
    ),
    responses(
        (status = 200, description = "The event stream: each event's data is a CloudEvent (JSON), or a progress report", body = String, content_type = "text/event-stream"),
        (status = 204, description = "Resumed after the end of a finished run: nothing more will come"),
        (status = 400, description = "The id is not a UUID", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the token's to read", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No run with this id", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
async fn events(
    raw_id: String,
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    respond(&ctx, stream(&raw_id, &ctx, state.clone(), headers).await)
}

async fn stream(
    raw_id: &str,
    ctx: &RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (run_id, run, claims) = super::runs::readable_stored(raw_id, &state, &headers).await?;
    let id = run_id.to_string();
    let full = claims.role == aurora_domain::user::Role::Admin;
    let after: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);

    // Live first, then history: nothing falls in between.
    let bus = state.bus.shared();
    let filter = bus.subjects().event(Run::TYPE, &id, "*");
    let mut live = bus
        .tail(&filter)
        .await
        .map_err(|error| Problem::unavailable(&error))?;
    let mut progress = progress_of(&state, &id).await;
    let history = state
        .db
        .read_aggregate_after(Run::TYPE, &id, after)
        .await
        .map_err(|error| Problem::unavailable(&error))?;
    // Resuming after the end of a finished run: nothing will come. 204 also tells an
    // EventSource to stop reconnecting.
    if history.is_empty() && run.status().is_finished() {
        return Ok(super::body::no_content(ctx));
    }
    let (mut tx, rx) = mpsc::channel::<Event>(64);
    let drain = state.drain_token();
    // A stream lives as long as its token: revoked (or its user disabled) or expired, the
    // stream ends within a second, with an event that says why.
    let still_allowed = super::guard::token_holds(
        state.clone(),
        headers.clone(),
        "runs:read",
        Some(("run", id.clone())),
        run.owner().map(str::to_string),
    );
    tokio::spawn(async move {
        let mut sent = after;
        for stored in history {
            let event = stored.to_cloud_event();
            sent = event.sequence;
            if tx.send(sse_event(&event, full)).await.is_err()
                || TERMINAL.contains(&event.eventname.as_str())
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(MAX_STREAM);
        tokio::pin!(deadline);
        let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // This replica is draining: end the stream, the client reconnects (with
                // Last-Event-ID) to another one.
                () = drain.cancelled() => return,
                _ = check.tick() => {
                    if !still_wanted(&mut tx, &still_allowed).await {
                        return;
                    }
                }
                () = &mut deadline => return,
                event = live.next() => match event {
                    Some(Ok(event)) if event.sequence > sent => {
                        sent = event.sequence;
                        let end = TERMINAL.contains(&event.eventname.as_str());
                        if tx.send(sse_event(&event, full)).await.is_err() || end {
                            return;
                        }
                    }
                    Some(_) => {}
                    // The subscription broke: end; the client reconnects with Last-Event-ID.
                    None => return,
                },
                report = progress.next() => match report {
                    Some(data) => {
                        let event = Event::default().event("progress").data(data);
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    None => progress = futures::stream::pending().boxed(),
                },
            }
        }
    });
    let stream = rx.map(Ok::<_, Infallible>);
    let response = warp::sse::reply(warp::sse::keep_alive().stream(stream)).into_response();
    Ok(super::body::with_request_id(response, ctx))
}

/// Whether a stream goes on, asked once a second: not once its client went away, nor once
/// its token stopped holding (revoked, its user disabled, expired), which it is told.
async fn still_wanted(tx: &mut mpsc::Sender<Event>, still_allowed: &impl Fn() -> bool) -> bool {
    if tx.is_closed() {
        return false;
    }
    if !still_allowed() {
        let end = Event::default()
            .event("unauthorized")
            .data("the token was revoked or has expired");
        let _ = tx.send(end).await;
        return false;
    }
    true
}

/// Live progress of run `id` as JSON texts: from NATS (any replica's transcodes), or
/// in-process in embedded mode.
async fn progress_of(state: &AppState, id: &str) -> futures::stream::BoxStream<'static, String> {
    let hub = &state.media.progress;
    if let Some(client) = hub.nats() {
        if let Ok(subscriber) = client.subscribe(hub.subjects().run_progress(id)).await {
            return subscriber
                .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
                .boxed();
        }
    }
    let id = id.to_string();
    futures::stream::unfold(hub.subscribe_local(), move |mut receiver| {
        let id = id.clone();
        async move {
            loop {
                match receiver.recv().await {
                    Ok(report) if report.run_id == id => {
                        let text = serde_json::to_string(&report).unwrap_or_default();
                        return Some((text, receiver));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    })
    .boxed()
}

/// Owners remembered per stream of [`live`] before the memory is cleared.
const OWNERS_REMEMBERED: usize = 10_000;

/// A run changed: which, by what event, and the position a read must reach to see it.
#[derive(Serialize, utoipa::ToSchema)]
struct RunChanged {
    /// The run.
    id: String,
    /// The event's name, e.g. `StepStarted`.
    event: String,
    /// The run's status after it, when the event says (`requested`, `running`,
    /// `succeeded`, `failed`, `cancelled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    /// The event's sequence in the run.
    sequence: i64,
    /// Its global position: send it as `Aurora-After-Position` to read the run with it.
    position: i64,
}

/// Every change to the runs the token may read (an admin's: all), as Server-Sent Events
/// named `run`, from now on: what a live list of runs refreshes its rows by. Nothing is
/// replayed; a client that reconnects reads the list again.
#[utoipa::path(
    get,
    path = "/api/v1/runs/live",
    operation_id = "follow_runs",
    tag = "runs",
    responses(
        (status = 200, description = "The event stream: each `run` event's data is a RunChanged (JSON)", body = String, content_type = "text/event-stream"),
        (status = 403, description = "The token does not allow runs:read", body = ProblemBody, content_type = "application/problem+json"),
        TokenRouteProblems,
    ),
    security(("session_cookie" = []), ("biscuit" = []), ("api_key" = []))
)]
async fn live(ctx: RequestContext, state: Arc<AppState>, headers: HeaderMap) -> Response {
    respond(&ctx, follow_runs(&ctx, state, headers).await)
}

async fn follow_runs(
    ctx: &RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = super::guard::verify_request(&state, &headers)?;
    let claims = super::guard::authorize(&state, &token, Access::own("runs:read"))?;
    let bus = state.bus.shared();
    let filter = bus.subjects().aggregate_events(Run::TYPE);
    let mut live = bus
        .tail(&filter)
        .await
        .map_err(|error| Problem::unavailable(&error))?;
    let (mut tx, rx) = mpsc::channel::<Event>(64);
    let drain = state.drain_token();
    let still_allowed = super::guard::token_holds(state.clone(), headers, "runs:read", None, None);
    tokio::spawn(async move {
        let mut owners: HashMap<String, String> = HashMap::new();
        let deadline = tokio::time::sleep(MAX_STREAM);
        tokio::pin!(deadline);
        let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = drain.cancelled() => return,
                () = &mut deadline => return,
                _ = check.tick() => {
                    if !still_wanted(&mut tx, &still_allowed).await {
                        return;
                    }
                }
                event = live.next() => match event {
                    Some(Ok(event)) => {
                        let id = event.aggregateid.clone();
                        if owners.len() >= OWNERS_REMEMBERED {
                            owners.clear();
                        }
                        let owner = match owners.get(&id) {
                            Some(owner) => owner.clone(),
                            None => {
                                // Not remembered when it cannot be told: asked again.
                                let Some(owner) = owner_of(&state, &event).await else {
                                    continue;
                                };
                                owners.insert(id.clone(), owner.clone());
                                owner
                            }
                        };
                        // Another's run: only an admin may read it (no authorizer run).
                        if owner != claims.username && claims.role != Role::Admin {
                            continue;
                        }
                        let access = Access {
                            operation: "runs:read",
                            resource: Some(("run", &id)),
                            owner: Some(&owner),
                        };
                        if super::guard::authorize(&state, &token, access).is_err() {
                            continue;
                        }
                        let changed = RunChanged {
                            id,
                            status: status_after(&event.eventname),
                            event: event.eventname.clone(),
                            sequence: event.sequence,
                            position: event.position,
                        };
                        let Ok(sse) = Event::default().event("run").json_data(&changed) else {
                            continue;
                        };
                        if tx.send(sse).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(_)) => {}
                    // The subscription broke: end; the client reconnects and reads again.
                    None => return,
                },
            }
        }
    });
    let stream = rx.map(Ok::<_, Infallible>);
    let response = warp::sse::reply(warp::sse::keep_alive().stream(stream)).into_response();
    Ok(super::body::with_request_id(response, ctx))
}

/// Whose run an event is of: said by the event that requests it, else by the runs view
/// (one row), else by the store (the run's history, for a run the view has not reached).
/// `None` if it cannot be told (the event is then not shown).
async fn owner_of(state: &AppState, event: &CloudEvent) -> Option<String> {
    if let Some(owner) = event
        .data
        .get("RunRequested")
        .and_then(|requested| requested.get("owner"))
        .and_then(|owner| owner.as_str())
    {
        return Some(owner.to_string());
    }
    if let Ok(Some(view)) = state.runs.get(&event.aggregateid).await {
        return Some(view.owner);
    }
    let run = state.run_commands.load(&event.aggregateid).await.ok()?;
    run.owner().map(str::to_string)
}

/// The status a run is in after an event of this name, when the name alone says.
fn status_after(event: &str) -> Option<&'static str> {
    match event {
        "RunRequested" => Some("requested"),
        "StepStarted" | "StepSucceeded" | "StepAttemptFailed" | "StepProgressed" => Some("running"),
        "RunSucceeded" => Some("succeeded"),
        "RunFailed" => Some("failed"),
        "RunCancelled" => Some("cancelled"),
        _ => None,
    }
}
