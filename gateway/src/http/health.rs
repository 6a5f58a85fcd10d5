//! `/health` (detail), `/ready` (may this replica take traffic?), `/live` (is the process
//! alive?) and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::state::AppState;

/// A dependency this long to answer is reported as degraded.
const SLOW: Duration = Duration::from_millis(500);
/// Projection lags younger than this (the background measurement's period) are reused
/// rather than measured again.
const LAG_MAX_AGE: Duration = crate::projections::MEASURE_EVERY;
/// A dependency that has not answered by then is reported as unhealthy.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The operational routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let health = warp::path!("health")
        .and(warp::get())
        .and(with_state.clone())
        .then(health);
    let ready = warp::path!("ready")
        .and(warp::get())
        .and(with_state.clone())
        .then(ready);
    let live = warp::path!("live").and(warp::get()).map(live);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state)
        .map(metrics);
    health
        .or(ready)
        .unify()
        .or(live)
        .unify()
        .or(metrics)
        .unify()
}

#[derive(Debug, Serialize)]
struct ServiceHealth {
    status: &'static str,
    /// Round trip in milliseconds.
    latency: Option<f64>,
    backend: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl ServiceHealth {
    fn from_check<E: std::fmt::Display>(
        backend: &'static str,
        result: Result<Result<Duration, E>, tokio::time::error::Elapsed>,
    ) -> Self {
        match result {
            Ok(Ok(latency)) => Self {
                status: if latency > SLOW {
                    "degraded"
                } else {
                    "healthy"
                },
                latency: Some(latency.as_secs_f64() * 1000.0),
                backend,
                error: None,
            },
            Ok(Err(error)) => Self {
                status: "unhealthy",
                latency: None,
                backend,
                error: Some(error.to_string()),
            },
            Err(_) => Self {
                status: "unhealthy",
                latency: None,
                backend,
                error: Some(format!("no answer within {CHECK_TIMEOUT:?}")),
            },
        }
    }
}

/// The execution engine on this replica.
#[derive(Debug, Serialize)]
struct ActorsHealth {
    /// `healthy`, `unhealthy` (its supervisor gave up), or `disabled` (an API-only
    /// replica).
    status: &'static str,
    /// Runs executing here.
    active_runs: i64,
    /// Transcodes running here.
    transcodes_active: i64,
    /// Actor restarts since start.
    restarts: u64,
}

/// The read models: each one's lag and whether it moves.
#[derive(Debug, Serialize)]
struct ProjectionsHealth {
    /// `healthy`, `degraded` (one is stuck) or `unhealthy` (lags cannot be measured).
    status: &'static str,
    /// Milliseconds to measure the lags.
    latency: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Per read model.
    projections: std::collections::BTreeMap<&'static str, crate::projections::ProjectionHealth>,
    /// Per projection actor on this replica (its supervisor's view): running, starting,
    /// down or stuck, restarts, last error.
    actors: std::collections::BTreeMap<&'static str, aurora_projections::read::ProjectionReport>,
}

impl ProjectionsHealth {
    async fn check(state: &AppState) -> Self {
        let started = std::time::Instant::now();
        match tokio::time::timeout(
            CHECK_TIMEOUT,
            state.projections.measure_recent(&state.db, LAG_MAX_AGE),
        )
        .await
        {
            Ok(Ok(measured)) => {
                let projections: std::collections::BTreeMap<_, _> = measured
                    .into_iter()
                    .map(|(lag, health)| (lag.projection, health))
                    .collect();
                let actors = state
                    .projection_actors
                    .as_ref()
                    .map(|s| s.report())
                    .unwrap_or_default();
                let stuck = projections.values().any(|p| p.status == "stuck")
                    || actors
                        .values()
                        .any(|a| a.state == aurora_projections::read::supervisor::Health::Stuck);
                Self {
                    status: if stuck { "degraded" } else { "healthy" },
                    latency: Some(started.elapsed().as_secs_f64() * 1000.0),
                    error: None,
                    projections,
                    actors,
                }
            }
            Ok(Err(error)) => Self::unhealthy(error.to_string()),
            Err(_) => Self::unhealthy(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }

    fn unhealthy(error: String) -> Self {
        Self {
            status: "unhealthy",
            latency: None,
            error: Some(error),
            projections: Default::default(),
            actors: Default::default(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Services {
    database: ServiceHealth,
    nats: ServiceHealth,
    actors: ActorsHealth,
    projections: ProjectionsHealth,
}

/// The replica's health in detail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `healthy`, `degraded` (serving, but something is slow or stale) or `unhealthy`.
    status: &'static str,
    /// When measured (RFC 3339).
    timestamp: String,
    /// Aurora's version.
    version: &'static str,
    /// The configured environment name.
    environment: String,
    /// Seconds since start.
    uptime: u64,
    /// Each dependency: `database` and `nats` (`status` healthy, degraded (slow) or
    /// unhealthy, `latency` in ms, `backend`, `error`), `actors` (the execution engine) and
    /// `projections` (the read models' lags and their actors).
    #[schema(value_type = Object)]
    services: Services,
}

/// The replica's health in detail: database, bus, execution engine, read models.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy or degraded (still serving)", body = Health),
        (status = 503, description = "Unhealthy: the database or the bus is down", body = Health),
    )
)]
pub(super) async fn health(state: Arc<AppState>) -> Response {
    let (database, nats, projections) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, state.probe.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, state.bus.ping()),
        ProjectionsHealth::check(&state),
    );
    let engine = &state.metrics.engine;
    let actors = ActorsHealth {
        status: match state.engine_running() {
            None => "disabled",
            Some(true) => "healthy",
            Some(false) => "unhealthy",
        },
        active_runs: engine.active_runs.get(),
        transcodes_active: engine.transcodes_active.get(),
        restarts: engine.total_restarts(),
    };
    let services = Services {
        database: ServiceHealth::from_check(state.db.backend(), database),
        nats: ServiceHealth::from_check(state.bus.kind(), nats),
        actors,
        projections,
    };
    let statuses = [services.database.status, services.nats.status];
    let status = if statuses.contains(&"unhealthy") {
        "unhealthy"
    } else if statuses.contains(&"degraded")
        || services.actors.status == "unhealthy"
        || services.projections.status != "healthy"
    {
        // The API still serves; runs wait for another replica, reads may be stale.
        "degraded"
    } else {
        "healthy"
    };
    let body = Health {
        status,
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: env!("CARGO_PKG_VERSION"),
        environment: state.config.environment.clone(),
        uptime: state.started.elapsed().as_secs(),
        services,
    };
    let code = if status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    warp::reply::with_status(warp::reply::json(&body), code).into_response()
}

/// `/ready` waits this long for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// May this replica take traffic (not draining, bus connected, revocations current,
/// database reachable)?
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Not ready, with the reason", body = Status),
    )
)]
pub(super) async fn ready(state: Arc<AppState>) -> Response {
    // Migrations run before the listener opens, so a serving process has them.
    let reason = if state.is_draining() {
        Some("draining")
    } else if !state.bus.is_connected() {
        Some("nats disconnected")
    } else if !state.replica_state_current() || !state.revocations_current_now() {
        // A replica whose revocation set or block list is not following the events would
        // let a revoked token or a blocked client in.
        Some("token revocations or client blocks not current")
    } else if !matches!(
        tokio::time::timeout(READY_TIMEOUT, state.probe.ping()).await,
        Ok(Ok(_))
    ) {
        Some("database unreachable")
    } else {
        None
    };
    match reason {
        None => warp::reply::json(&Status::answer("ready", None)).into_response(),
        Some(reason) => warp::reply::with_status(
            warp::reply::json(&Status::answer("not ready", Some(reason))),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response(),
    }
}

/// Is the process alive?
#[utoipa::path(
    get,
    path = "/live",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Status))
)]
pub(super) fn live() -> Response {
    warp::reply::json(&Status::answer("alive", None)).into_response()
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "The metrics", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"))
)]
pub(super) fn metrics(state: Arc<AppState>) -> Response {
    state.metrics.observe_pool(&state.db);
    state.metrics.process.observe();
    warp::reply::with_header(
        state.metrics.encode(),
        "content-type",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
    .into_response()
}

/// The answer of `/live` and `/ready`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `alive`, `ready` or `not ready`.
    status: &'static str,
    /// Why not ready (`draining`, `nats disconnected` …).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

impl Status {
    fn answer(status: &'static str, reason: Option<&'static str>) -> Self {
        Self { status, reason }
    }
}
