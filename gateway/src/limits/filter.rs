//! The limits as a warp filter over the replica's state (the limits themselves know
//! nothing of it).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method};
use warp::path::FullPath;
use warp::{Filter, Rejection};

use crate::state::AppState;
use aurora_domain::limits::Decision;

/// Checks the request against the limits: extracts the decision for the headers, or
/// rejects with [`Limited`].
pub fn filter(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Option<Decision>,), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(crate::server::peer())
        .and(warp::header::headers_cloned())
        .and_then(
            move |method: Method, path: FullPath, peer: Option<SocketAddr>, headers: HeaderMap| {
                let state = state.clone();
                async move {
                    let Some(limits) = &state.limits else {
                        return Ok(None);
                    };
                    limits
                        .decide(
                            &state.identity.tokens,
                            &method,
                            path.as_str(),
                            peer,
                            &headers,
                        )
                        .await
                        .map_err(warp::reject::custom)
                }
            },
        )
}
