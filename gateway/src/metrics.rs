//! The Prometheus registry, exposed at `/metrics` in OpenMetrics text.

use aurora_actors::limits::ShardMetrics;
use aurora_actors::supervision::EngineMetrics;
use aurora_projections::RelayMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of HTTP request metrics. `route` is the route template, never the raw path.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// HTTP method.
    pub method: String,
    /// Route template, e.g. `/api/v1/runs/{id}`.
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// Labels of command metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// e.g. `RequestRun`.
    pub command: String,
    /// `accepted`, `refused` or `failed`.
    pub outcome: String,
}

/// Labels of rate-limit decisions.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    /// The route class.
    pub class: String,
    /// `free`, `pro`, `enterprise`, or `anonymous`.
    pub tier: String,
    /// `allowed`, `limited`, `shadow_limited` (a shadow policy's would-be refusal) or
    /// `blocked`.
    pub outcome: String,
}

/// The rate limiter's metrics.
#[derive(Debug, Clone, Default)]
pub struct RateLimitMetrics {
    /// Decisions per class, tier and outcome.
    pub decisions: Family<RateLimitLabels, Counter>,
    /// The bucket shards' own: buckets held, restarts.
    pub shards: ShardMetrics,
}

impl RateLimitMetrics {
    /// Counts one decision.
    pub fn decided(&self, class: &str, tier: Option<aurora_domain::user::Tier>, outcome: &str) {
        self.decisions
            .get_or_create(&RateLimitLabels {
                class: class.to_string(),
                tier: tier.map_or("anonymous", |t| t.as_str()).to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

/// Every metric Aurora exports.
pub struct Metrics {
    registry: Registry,
    /// Requests served.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Requests served, all together (not exported: `http_requests` has them by label;
    /// `/api/v1/health/metrics` reads this one).
    pub requests_answered: Counter,
    /// Request latency.
    pub http_duration: Family<HttpLabels, Histogram>,
    /// Commands executed.
    pub commands: Family<CommandLabels, Counter>,
    /// Relay counters.
    pub relay: RelayMetrics,
    /// Rate-limit decisions and buckets.
    pub rate_limits: RateLimitMetrics,
    /// The execution engine: actors, runs, transcodes.
    pub engine: EngineMetrics,
    /// Refusals not stored because their client spent its budget.
    pub refusals_unrecorded: Counter,
    /// Events each read model is behind the store.
    pub projection_lag: Family<crate::projections::ProjectionLabels, Gauge>,
    /// The projections supervisor's: restarts, stuck, delays.
    pub projections: aurora_projections::read::ProjectionMetrics,
    /// Events stored past the relay's checkpoint.
    pub relay_lag: Gauge,
    /// Events appended to the store, by aggregate type.
    pub events_appended: Family<aurora_projections::store::AggregateLabels, Counter>,
    /// Verified-token cache lookups, by outcome.
    pub token_cache: Family<crate::auth::tokens::CacheLabels, Counter>,
    /// Database pool connections by state (`in_use`, `idle`), set at each scrape.
    pub db_connections: Family<PoolLabels, Gauge>,
    /// The most connections the pool opens.
    pub db_connections_max: Gauge,
    /// HTTP connections open, and refused past the cap.
    pub connections: crate::server::ConnectionMetrics,
    /// The process: CPU, memory, threads, file descriptors (read at each scrape).
    pub process: crate::process::ProcessMetrics,
}

/// Labels of the database pool's gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `in_use` or `idle`.
    pub state: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("aurora");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let commands = Family::<CommandLabels, Counter>::default();
        let relay = RelayMetrics::default();
        let mut rate_limits = RateLimitMetrics::default();
        registry.register(
            "rate_limit_decisions",
            "Rate-limit decisions by route class, tier and outcome",
            rate_limits.decisions.clone(),
        );
        registry.register(
            "rate_limit_buckets",
            "Rate-limit buckets held, per shard actor",
            rate_limits.shards.buckets.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests served",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_duration.clone(),
        );
        registry.register("commands", "Commands executed", commands.clone());
        registry.register(
            "relay_published_events",
            "Events the relay published to the bus",
            relay.published.clone(),
        );
        registry.register(
            "relay_healed_events",
            "Events republished because the stream had lost them",
            relay.healed.clone(),
        );
        registry.register("relay_errors", "Failed relay steps", relay.errors.clone());
        registry.register(
            "relay_leader",
            "1 while this replica runs the active relay",
            relay.leader.clone(),
        );
        registry.register(
            "relay_position",
            "Global position of the last relayed event",
            relay.position.clone(),
        );
        let engine = EngineMetrics::default();
        rate_limits.shards.supervision = EngineMetrics {
            restarts_total: Counter::default(),
            ..engine.clone()
        };
        registry.register(
            "actor_restarts",
            "Actors restarted by their supervisor, by kind",
            engine.restarts.clone(),
        );
        registry.register(
            "supervisor_escalations",
            "Supervisors that gave up on a child (restart budget spent), by kind",
            engine.escalations.clone(),
        );
        registry.register(
            "runs_active",
            "Runs this replica is executing",
            engine.active_runs.clone(),
        );
        registry.register(
            "runs_finished",
            "Runs this replica saw end, by outcome",
            engine.runs_finished.clone(),
        );
        registry.register(
            "generations",
            "Calls to generation providers (HeyGen), by outcome",
            engine.generations.clone(),
        );
        registry.register(
            "janitor_cleared",
            "Tools of killed replicas killed and partial files removed by the janitor, by kind",
            engine.janitor.clone(),
        );
        registry.register(
            "transcodes_active",
            "Transcodes running on this replica",
            engine.transcodes_active.clone(),
        );
        registry.register_with_unit(
            "transcode_duration",
            "Wall time of finished transcodes",
            prometheus_client::registry::Unit::Seconds,
            engine.transcode_seconds.clone(),
        );
        registry.register(
            "transcode_fps",
            "Encoding speed of finished transcodes (frames per second, last report)",
            engine.transcode_fps.clone(),
        );
        let projection_lag = Family::<crate::projections::ProjectionLabels, Gauge>::default();
        registry.register(
            "projection_lag_events",
            "Events stored past a read model's checkpoint that it follows",
            projection_lag.clone(),
        );
        let projections = aurora_projections::read::ProjectionMetrics::default();
        registry.register(
            "projection_restarts",
            "Projection actors restarted by the projections supervisor",
            projections.restarts.clone(),
        );
        registry.register(
            "projection_stuck",
            "1 while a projection is stuck (its restart budget spent; tried again after a \
             cool-down), else 0",
            projections.stuck.clone(),
        );
        registry.register_with_unit(
            "projection_delay",
            "Time from a command's acceptance to its event being applied, by projection",
            prometheus_client::registry::Unit::Seconds,
            projections.delay.clone(),
        );
        let refusals_unrecorded = Counter::default();
        registry.register(
            "refusals_unrecorded",
            "Refused requests (401/403) not stored in the audit trail because their client \
             exceeded its budget of recorded refusals",
            refusals_unrecorded.clone(),
        );
        let relay_lag = Gauge::default();
        registry.register(
            "relay_lag_events",
            "Events stored past the relay's saved checkpoint (not yet known to be on the bus)",
            relay_lag.clone(),
        );
        let events_appended = Family::default();
        registry.register(
            "events_appended",
            "Events appended to the event store, by aggregate type",
            events_appended.clone(),
        );
        registry.register(
            "consumer_redeliveries",
            "Messages delivered again to a durable consumer (not acked in time, given back, \
             or the consumer restarted before acking), by consumer",
            aurora_nats::redeliveries().clone(),
        );
        let token_cache = Family::default();
        registry.register(
            "token_cache_lookups",
            "Verified-token cache lookups by outcome (hit: no parse or signature check)",
            token_cache.clone(),
        );
        let db_connections = Family::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (in_use, idle)",
            db_connections.clone(),
        );
        let db_connections_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "The most connections the database pool opens",
            db_connections_max.clone(),
        );
        let connections = crate::server::ConnectionMetrics::default();
        registry.register(
            "http_connections_open",
            "HTTP connections open",
            connections.open.clone(),
        );
        registry.register(
            "http_connections_refused",
            "HTTP connections refused with 503 because AURORA_MAX_CONNECTIONS were open",
            connections.refused.clone(),
        );
        let process = crate::process::ProcessMetrics::register(&mut registry);
        Self {
            process,
            connections,
            registry,
            relay_lag,
            events_appended,
            token_cache,
            db_connections,
            db_connections_max,
            refusals_unrecorded,
            projection_lag,
            projections,
            http_requests,
            requests_answered: Counter::default(),
            http_duration,
            commands,
            relay,
            rate_limits,
            engine,
        }
    }

    /// Counts one command outcome.
    pub fn command(&self, command: &str, outcome: &str) {
        self.commands
            .get_or_create(&CommandLabels {
                command: command.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Sets the pool gauges from `db` (called at each scrape).
    pub fn observe_pool(&self, db: &aurora_projections::Database) {
        let pool = db.pool_use();
        let idle = pool.idle.min(pool.open);
        self.db_connections
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(i64::from(pool.open - idle));
        self.db_connections
            .get_or_create(&PoolLabels { state: "idle" })
            .set(i64::from(idle));
        self.db_connections_max.set(i64::from(pool.max));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
