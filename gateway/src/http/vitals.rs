//! `GET /api/v1/health/metrics`: the chat write-up's basic figures as JSON (memory, CPU,
//! uptime) with this replica's request and event rates, for operators and their scripts
//! without a Prometheus. Admins only: unlike `/metrics`, which stays inside the cluster, it
//! is under `/api`, which the Ingress publishes (the version, memory and file-descriptor
//! headroom are no one else's business).

use std::sync::Arc;

use aurora_domain::{access, client::Client, media::Media, run::Run, user::User};
use cqrs_es::Aggregate;
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::json;
use super::context::{context, RequestContext};
use super::error::respond;
use super::guard::authenticate;
use super::problem::Body as ProblemBody;
use crate::auth::tokens::Access;
use crate::state::AppState;

/// The route.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "health" / "metrics")
        .and(warp::get())
        .and(context())
        .and(warp::any().map(move || state.clone()))
        .and(warp::header::headers_cloned())
        .map(health_metrics)
}

/// This replica's basic figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthMetrics {
    /// When measured (RFC 3339).
    timestamp: String,
    /// Aurora's version.
    version: &'static str,
    /// Seconds since start.
    uptime: u64,
    memory: Memory,
    cpu: Cpu,
    /// Threads of the process.
    threads: i64,
    /// Open file descriptors, and the most the process may open.
    open_files: i64,
    max_open_files: i64,
    requests: Rate,
    /// Events this replica appended to the store.
    events: Rate,
    /// The rates are measured over this many seconds (the last minute, or since start).
    rate_window_seconds: f64,
}

/// Memory, bytes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Memory {
    resident_bytes: i64,
    virtual_bytes: i64,
}

/// CPU time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Cpu {
    /// User and system time since start, seconds.
    seconds: f64,
    /// Use over the rate window, percent of one core.
    percent: f64,
}

/// A count and its rate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Rate {
    total: u64,
    per_second: f64,
}

/// Memory, CPU, uptime, and the request and event rates of this replica.
#[utoipa::path(
    get,
    path = "/api/v1/health/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The replica's figures", body = HealthMetrics),
        (status = 401, description = "No valid token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin's token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited or blocked; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("biscuit" = []), ("api_key" = []))
)]
pub(super) fn health_metrics(
    ctx: RequestContext,
    state: Arc<AppState>,
    headers: HeaderMap,
) -> Response {
    let result = authenticate(&state, &headers, Access::admin("metrics:read", None))
        .map(|_| json(StatusCode::OK, &figures(&state), &ctx));
    respond(&ctx, result)
}

fn figures(state: &AppState) -> HealthMetrics {
    let metrics = &state.metrics;
    let process = &metrics.process;
    process.observe();
    let requests = metrics.requests_answered.get();
    let events: u64 = [
        User::TYPE,
        Run::TYPE,
        Media::TYPE,
        access::Access::TYPE,
        Client::TYPE,
    ]
    .into_iter()
    .map(|aggregate| {
        metrics
            .events_appended
            .get_or_create(&aurora_projections::store::AggregateLabels {
                aggregate: aggregate.to_string(),
            })
            .get()
    })
    .sum();
    let rates = process.rates(state.started.elapsed(), requests, events);
    let round = |x: f64| (x * 100.0).round() / 100.0;
    HealthMetrics {
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: env!("CARGO_PKG_VERSION"),
        uptime: state.started.elapsed().as_secs(),
        memory: Memory {
            resident_bytes: process.resident_bytes.get(),
            virtual_bytes: process.virtual_bytes.get(),
        },
        cpu: Cpu {
            seconds: round(process.cpu_seconds.get()),
            percent: round(rates.cpu_percent),
        },
        threads: process.threads.get(),
        open_files: process.open_fds.get(),
        max_open_files: process.max_fds.get(),
        requests: Rate {
            total: requests,
            per_second: round(rates.requests_per_second),
        },
        events: Rate {
            total: events,
            per_second: round(rates.events_per_second),
        },
        rate_window_seconds: round(rates.window_seconds),
    }
}
