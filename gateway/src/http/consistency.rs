//! Reads that see the reader's own writes: a list or a query sent with
//! `Aurora-After-Position` (the `Aurora-Position` a command answered with) waits, at most
//! [`READ_WAIT`], until its view has applied that position, and answers
//! `Aurora-Consistency: caught-up` — or, past the bound, what the view has, marked `stale`.
//! Reads by id need no header: they fall back to the store (see the handlers).

use std::time::Duration;

use aurora_projections::read::consistency::{wait_for_position, AFTER_HEADER, CONSISTENCY_HEADER};
use http::{HeaderMap, HeaderValue};
use warp::reply::Response;

use super::problem::Problem;
use crate::state::AppState;

/// The longest a read waits for its view.
pub const READ_WAIT: Duration = Duration::from_secs(2);

/// The position the read asks to see, if it names one.
pub fn asked(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(AFTER_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|p| *p > 0)
        .map(Some)
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid-position",
                "Aurora-After-Position must be a positive integer: the Aurora-Position a \
                 command answered with",
            )
        })
}

/// Waits until read model checkpoint `checkpoint` has reached the position the request
/// asks for; `Some(reached)` if it asked for one.
pub async fn wait(
    state: &AppState,
    headers: &HeaderMap,
    checkpoint: &str,
) -> Result<Option<bool>, Problem> {
    let Some(position) = asked(headers)? else {
        return Ok(None);
    };
    // Without a supervisor (never, when serving) nothing wakes the wait but its own looks:
    // the sender is kept, so that it does not wake at once and spin.
    let (_keep, idle) = tokio::sync::watch::channel(0);
    let changes = match &state.projection_actors {
        Some(statuses) => statuses.changes(),
        None => idle,
    };
    wait_for_position(&state.db, checkpoint, position, READ_WAIT, changes)
        .await
        .map(Some)
        .map_err(|e| Problem::unavailable(&e))
}

/// Marks `response` with whether its view had caught up with the position asked for.
pub fn mark(mut response: Response, reached: Option<bool>) -> Response {
    if let Some(reached) = reached {
        let value = if reached { "caught-up" } else { "stale" };
        response
            .headers_mut()
            .insert(CONSISTENCY_HEADER, HeaderValue::from_static(value));
    }
    response
}
