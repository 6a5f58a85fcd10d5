//! Watching the read models: each one's lag (events stored past its checkpoint that it
//! follows), exported as `aurora_projection_lag_events`, and whether it is stuck — behind,
//! and its checkpoint unmoved for longer than `AURORA_PROJECTION_STUCK_SECONDS`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aurora_projections::lag::Lag;
use aurora_projections::{Cursor, Database, StoreError};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// How often the lags are measured in the background (for the gauge).
pub const MEASURE_EVERY: Duration = Duration::from_secs(5);

pub use aurora_projections::read::ProjectionLabels;

/// One projection's health.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionHealth {
    /// `healthy`, `catching_up` (behind, but moving) or `stuck`.
    pub status: &'static str,
    /// Events behind the store.
    pub lag: i64,
    /// The global position of its checkpoint.
    pub position: i64,
}

/// The lag watcher, shared by `/health`, `/metrics` and a background task.
pub struct Monitor {
    gauge: Family<ProjectionLabels, Gauge>,
    /// The relay's name and its lag gauge.
    relay: Option<(String, Gauge)>,
    stuck_after: Duration,
    /// Per projection: its checkpoint when last seen, and since when it has been there
    /// while behind.
    seen: Mutex<HashMap<&'static str, (Cursor, Instant)>>,
    /// The last measurement, and when it was taken.
    last: Mutex<Option<(Instant, Measured)>>,
}

/// Every projection's lag and health, as measured once.
pub type Measured = Vec<(Lag, ProjectionHealth)>;

impl Monitor {
    /// A monitor setting `gauge`; a projection behind and unmoved for `stuck_after` is
    /// stuck.
    pub fn new(gauge: Family<ProjectionLabels, Gauge>, stuck_after: Duration) -> Self {
        Self {
            gauge,
            relay: None,
            stuck_after,
            seen: Mutex::new(HashMap::new()),
            last: Mutex::new(None),
        }
    }

    /// Also measures relay `name`'s lag into `gauge`.
    pub fn with_relay(mut self, name: &str, gauge: Gauge) -> Self {
        self.relay = Some((name.to_string(), gauge));
        self
    }

    /// The last measurement if it is younger than `max_age`, else a new one: `/health`
    /// needs no auth, and must not let its callers set how often the store is read.
    pub async fn measure_recent(
        &self,
        db: &Database,
        max_age: Duration,
    ) -> Result<Measured, StoreError> {
        if let Some((at, measured)) = &*self.last.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < max_age {
                return Ok(measured.clone());
            }
        }
        self.measure(db).await
    }

    /// Measures every projection's lag now, updating the gauge.
    pub async fn measure(&self, db: &Database) -> Result<Measured, StoreError> {
        if let Some((name, gauge)) = &self.relay {
            gauge.set(aurora_projections::lag::relay_lag(db, name).await?);
        }
        let lags = aurora_projections::lag::lags(db).await?;
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let measured: Measured = lags
            .into_iter()
            .map(|lag| {
                self.gauge
                    .get_or_create(&ProjectionLabels {
                        projection: lag.projection.to_string(),
                    })
                    .set(lag.lag);
                let since = match seen.get(lag.projection) {
                    Some((cursor, since)) if *cursor == lag.checkpoint && lag.lag > 0 => *since,
                    _ => now,
                };
                seen.insert(lag.projection, (lag.checkpoint, since));
                let status = if lag.lag == 0 {
                    "healthy"
                } else if now.duration_since(since) >= self.stuck_after {
                    "stuck"
                } else {
                    "catching_up"
                };
                let health = ProjectionHealth {
                    status,
                    lag: lag.lag,
                    position: lag.checkpoint.position,
                };
                (lag, health)
            })
            .collect();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, measured.clone()));
        Ok(measured)
    }

    /// Measures every [`MEASURE_EVERY`] until `shutdown`, so that the gauge stays
    /// current between health checks.
    pub async fn run(self: std::sync::Arc<Self>, db: Database, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.measure(&db).await {
                tracing::warn!(%error, "measuring projection lags failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(MEASURE_EVERY) => {}
            }
        }
    }
}
