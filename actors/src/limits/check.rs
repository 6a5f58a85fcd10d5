//! What the handle, the supervisor and the shards share: a check and its verdict, the
//! limits on a shard, and the shards' metrics.

use std::time::Duration;

use aurora_domain::limits::Decision;
use aurora_domain::user::Tier;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::supervision::EngineMetrics;

/// One bucket to decide a request against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Index into the policies' classes.
    pub class: usize,
    /// Principal or IP.
    pub key: String,
    /// The principal's tier, if any.
    pub tier: Option<Tier>,
    /// Does a refusal count (an enforced class)? It stops the request's other checks.
    pub counts: bool,
    /// Does a counted refusal count towards a block?
    pub blocks: bool,
}

/// A shard's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The bucket's decision.
    pub decision: Decision,
    /// The key has now been refused often enough to be blocked (see `[blocking]`).
    pub escalate: bool,
}

/// How often idle buckets are dropped.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// Most buckets one shard keeps.
pub const MAX_BUCKETS_PER_SHARD: usize = 250_000;
/// Restarts of one shard allowed within a window.
pub(super) const SHARD_RESTARTS: (usize, Duration) = (20, Duration::from_secs(60));
/// How long a shard that kept failing rests before it is started again.
pub const REST: Duration = Duration::from_secs(10);

/// The shards' metrics.
#[derive(Debug, Clone, Default)]
pub struct ShardMetrics {
    /// Buckets held per shard actor (idle ones are swept).
    pub buckets: Family<ShardLabels, Gauge>,
    /// Where the shards' supervisor counts restarts and escalations: the actors' families
    /// (kind `rate_limit_shard`), but a total of its own, so that `/health`'s count of the
    /// engine's restarts stays the engine's (an API-only replica has no engine).
    pub supervision: EngineMetrics,
}

/// Labels of per-shard metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    /// Shard index.
    pub shard: u32,
}
