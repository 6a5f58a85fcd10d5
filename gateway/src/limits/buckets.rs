//! Bucket actors: the rate-limit buckets live in a few shard actors (ractor), each owning
//! the buckets of the keys that hash to it, under a supervisor that restarts a shard that
//! failed, within a budget per shard (`aurora_actor_restarts_total{kind="rate_limit_shard"}`);
//! past it the shard rests for [`REST`] before it is started again, and its keys go
//! unlimited meanwhile. A restarted shard starts with full buckets: a crash forgives, it
//! never refuses more than the policy says.
//!
//! (Long: the shard, its supervisor and the handle callers use are one protocol; a fifth of
//! it is their tests.)
//!
//! Idle buckets — full again, indistinguishable from new ones — are dropped by a sweep
//! every [`SWEEP_INTERVAL`], so memory follows the keys active within one period, not every
//! key ever seen; and each shard holds at most [`MAX_BUCKETS_PER_SHARD`]: beyond that, a
//! new key's bucket takes the place of an arbitrary other one (which starts over if its key
//! returns), so a flood of fresh keys can neither grow memory nor slip past the limits.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aurora_domain::user::Tier;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use aurora_actors::supervision::{EngineMetrics, Restarts, Verdict as Restart};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::metrics::{RateLimitMetrics, ShardLabels};

use super::gcra::{Bucket, Decision};
use super::policy::Policies;

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
const SHARD_RESTARTS: (usize, Duration) = (20, Duration::from_secs(60));
/// How long a shard that kept failing rests before it is started again.
pub const REST: Duration = Duration::from_secs(10);

/// A question for a shard.
pub enum ShardMsg {
    /// Decide one request against several buckets of this shard, in order, stopping at
    /// the first refusal that counts (later buckets are not used by a refused request;
    /// a shadow class's refusal refuses nothing).
    Check {
        /// The buckets.
        checks: Vec<Check>,
        /// One verdict per bucket decided (fewer than asked after a refusal).
        reply: RpcReplyPort<Vec<Verdict>>,
    },
    /// Use a bucket for requests another replica admitted.
    Consume {
        /// Index into the policies' classes.
        class: usize,
        /// Principal or IP.
        key: String,
        /// The principal's tier, if any.
        tier: Option<Tier>,
        /// How many.
        n: u32,
    },
    /// How many buckets the shard holds.
    Count(RpcReplyPort<usize>),
    /// Drop idle buckets.
    Sweep,
    /// Fail, for tests and simulations of a crashing shard.
    #[cfg(any(test, feature = "faults"))]
    Crash,
}

struct Shard {
    policies: Arc<Policies>,
    epoch: Instant,
    /// Buckets this shard holds.
    held: Gauge,
    /// Most buckets it keeps.
    cap: usize,
}

struct ShardState {
    buckets: HashMap<(usize, String), Bucket>,
    /// Refusals per key: when the window began, how many.
    refusals: HashMap<String, (u64, u32)>,
}

impl Shard {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn decide(&self, state: &mut ShardState, check: Check, now: u64) -> Verdict {
        let rate = self.policies.classes[check.class].rate(check.tier);
        let decision = match state.buckets.get_mut(&(check.class, check.key.clone())) {
            Some(bucket) => bucket.check(rate, now),
            None => {
                let mut bucket = Bucket::default();
                let decision = bucket.check(rate, now);
                // Full: some other bucket makes room (it starts over if its key returns).
                // Keeping the new key's bucket means a flood of fresh keys cannot get past
                // the limits by filling the shard.
                if state.buckets.len() >= self.cap {
                    if let Some(victim) = state.buckets.keys().next().cloned() {
                        state.buckets.remove(&victim);
                    }
                }
                state
                    .buckets
                    .insert((check.class, check.key.clone()), bucket);
                self.held.set(state.buckets.len() as i64);
                decision
            }
        };
        let escalate = !decision.allowed
            && check.counts
            && check.blocks
            && self.refused(state, check.key, now);
        Verdict { decision, escalate }
    }

    /// Counts a refusal of `key`; true when it reaches the blocking threshold (the count
    /// starts over).
    fn refused(&self, state: &mut ShardState, key: String, now: u64) -> bool {
        let Some(blocking) = self.policies.blocking else {
            return false;
        };
        let window = blocking.within.as_nanos() as u64;
        if state.refusals.len() >= self.cap && !state.refusals.contains_key(&key) {
            // As bounded as the buckets: make room.
            if let Some(victim) = state.refusals.keys().next().cloned() {
                state.refusals.remove(&victim);
            }
        }
        let entry = state.refusals.entry(key).or_insert((now, 0));
        if now.saturating_sub(entry.0) > window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 >= blocking.after {
            *entry = (now, 0);
            return true;
        }
        false
    }
}

impl Actor for Shard {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ();

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        me.send_interval(SWEEP_INTERVAL, || ShardMsg::Sweep);
        // A restarted shard starts empty.
        self.held.set(0);
        Ok(ShardState {
            buckets: HashMap::new(),
            refusals: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::Check { checks, reply } => {
                let now = self.now();
                let mut verdicts = Vec::with_capacity(checks.len());
                for check in checks {
                    let counts = check.counts;
                    let verdict = self.decide(state, check, now);
                    verdicts.push(verdict);
                    if !verdict.decision.allowed && counts {
                        break;
                    }
                }
                let _ = reply.send(verdicts);
            }
            ShardMsg::Consume {
                class,
                key,
                tier,
                n,
            } => {
                let rate = self.policies.classes[class].rate(tier);
                let now = self.now();
                let full = state.buckets.len() >= self.cap;
                match state.buckets.get_mut(&(class, key.clone())) {
                    Some(bucket) => bucket.consume(rate, now, n),
                    None if !full => {
                        let mut bucket = Bucket::default();
                        bucket.consume(rate, now, n);
                        state.buckets.insert((class, key), bucket);
                        self.held.set(state.buckets.len() as i64);
                    }
                    None => {}
                }
            }
            ShardMsg::Count(reply) => {
                let _ = reply.send(state.buckets.len());
            }
            ShardMsg::Sweep => {
                let now = self.now();
                state.buckets.retain(|_, bucket| !bucket.is_idle(now));
                self.held.set(state.buckets.len() as i64);
                if let Some(blocking) = self.policies.blocking {
                    let window = blocking.within.as_nanos() as u64;
                    state
                        .refusals
                        .retain(|_, (since, _)| now.saturating_sub(*since) <= window);
                }
            }
            #[cfg(any(test, feature = "faults"))]
            ShardMsg::Crash => panic!("injected shard crash"),
        }
        Ok(())
    }
}

/// The supervisor's messages.
pub enum SupervisorMsg {
    /// Shard `index` has rested: a fresh budget, and start it.
    Revive(usize),
}

struct Supervisor {
    policies: Arc<Policies>,
    shards: Arc<RwLock<Vec<ActorRef<ShardMsg>>>>,
    epoch: Instant,
    held: Family<ShardLabels, Gauge>,
    supervision: EngineMetrics,
    cap: usize,
}

impl Supervisor {
    /// Starts shard `index` in its place (its keys find it from the next check on).
    async fn replace(&self, me: &ActorRef<SupervisorMsg>, index: usize) {
        match self.spawn_shard(me, index).await {
            Ok(shard) => {
                self.shards.write().unwrap_or_else(|e| e.into_inner())[index] = shard;
            }
            // Its keys go unlimited (checks find no shard) rather than the supervisor,
            // and every shard with it, going down; tried again after a rest.
            Err(error) => {
                tracing::error!(shard = index, %error, "could not restart a rate-limit shard");
                me.send_after(REST, move || SupervisorMsg::Revive(index));
            }
        }
    }

    async fn spawn_shard(
        &self,
        me: &ActorRef<SupervisorMsg>,
        index: usize,
    ) -> Result<ActorRef<ShardMsg>, ActorProcessingErr> {
        let shard = Shard {
            policies: self.policies.clone(),
            epoch: self.epoch,
            held: self
                .held
                .get_or_create(&ShardLabels {
                    shard: index as u32,
                })
                .clone(),
            cap: self.cap,
        };
        let (shard, _) = Actor::spawn_linked(None, shard, (), me.get_cell()).await?;
        Ok(shard)
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    /// Each shard's restarts.
    type State = Vec<Restarts>;
    type Arguments = usize;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        count: usize,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut shards = Vec::with_capacity(count);
        for index in 0..count {
            shards.push(self.spawn_shard(&me, index).await?);
        }
        *self.shards.write().unwrap_or_else(|e| e.into_inner()) = shards;
        Ok((0..count)
            .map(|_| Restarts::new("rate_limit_shard", SHARD_RESTARTS))
            .collect())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        message: Self::Msg,
        restarts: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisorMsg::Revive(index) = message;
        restarts[index].reset();
        self.replace(&me, index).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        restarts: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, error) = match &event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                reason.clone().unwrap_or_else(|| "stopped".to_string()),
            ),
            _ => return Ok(()),
        };
        let index = {
            let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
            shards.iter().position(|s| s.get_id() == cell.get_id())
        };
        let Some(index) = index else {
            return Ok(());
        };
        let verdict = {
            let _shard = tracing::warn_span!("rate_limit_shard", shard = index).entered();
            restarts[index].failed(&self.supervision, &error)
        };
        match verdict {
            Restart::Restart => self.replace(&me, index).await,
            Restart::GiveUp(_) => {
                me.send_after(REST, move || SupervisorMsg::Revive(index));
            }
        }
        Ok(())
    }
}

/// Handle on the bucket actors.
#[derive(Clone)]
pub struct Buckets {
    shards: Arc<RwLock<Vec<ActorRef<ShardMsg>>>>,
    supervisor: ActorRef<SupervisorMsg>,
}

impl Buckets {
    /// Starts `shards` shard actors under a supervisor; `metrics` count their buckets
    /// and restarts.
    pub async fn start(
        policies: Arc<Policies>,
        shards: usize,
        metrics: &RateLimitMetrics,
    ) -> Result<Self, ActorProcessingErr> {
        Self::start_capped(policies, shards, metrics, MAX_BUCKETS_PER_SHARD).await
    }

    /// [`Buckets::start`], each shard keeping at most `cap` buckets.
    pub async fn start_capped(
        policies: Arc<Policies>,
        shards: usize,
        metrics: &RateLimitMetrics,
        cap: usize,
    ) -> Result<Self, ActorProcessingErr> {
        let registry = Arc::new(RwLock::new(Vec::new()));
        let supervisor = Supervisor {
            policies,
            shards: registry.clone(),
            epoch: Instant::now(),
            held: metrics.buckets.clone(),
            supervision: metrics.supervision.clone(),
            cap,
        };
        let (supervisor, _) = Actor::spawn(None, supervisor, shards.max(1)).await?;
        Ok(Self {
            shards: registry,
            supervisor,
        })
    }

    fn shard_index(&self, key: &str) -> usize {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let count = self.shards.read().unwrap_or_else(|e| e.into_inner()).len();
        (hasher.finish() % count as u64) as usize
    }

    fn shard_of(&self, key: &str) -> ActorRef<ShardMsg> {
        let index = self.shard_index(key);
        self.shards.read().unwrap_or_else(|e| e.into_inner())[index].clone()
    }

    /// Decides one request against one bucket; `None` if the shard could not answer (it
    /// is being restarted). `counts`: a refusal counts towards a block.
    pub async fn check(
        &self,
        class: usize,
        key: &str,
        tier: Option<Tier>,
        counts: bool,
    ) -> Option<Verdict> {
        let check = Check {
            class,
            key: key.to_string(),
            tier,
            counts,
            blocks: counts,
        };
        self.check_all(vec![check]).await.pop().flatten()
    }

    /// Decides one request against several buckets, in order: one message per shard
    /// involved (usually one: a request's buckets share its key). Stops at the first
    /// refusal that counts; a `None` is a bucket whose shard could not answer (being
    /// restarted).
    pub async fn check_all(&self, checks: Vec<Check>) -> Vec<Option<Verdict>> {
        let mut verdicts = Vec::with_capacity(checks.len());
        let mut rest = checks.into_iter().peekable();
        while let Some(first) = rest.next() {
            // The run of consecutive checks on the same shard goes in one message.
            let shard = self.shard_index(&first.key);
            let mut batch = vec![first];
            while rest
                .peek()
                .is_some_and(|c| self.shard_index(&c.key) == shard)
            {
                batch.extend(rest.next());
            }
            let asked = batch.len();
            let target = self.shards.read().unwrap_or_else(|e| e.into_inner())[shard].clone();
            let answer = target
                .call(
                    |reply| ShardMsg::Check {
                        checks: batch,
                        reply,
                    },
                    None,
                )
                .await
                .ok()
                .and_then(|result| result.success_or(()).ok());
            match answer {
                Some(answer) => {
                    let refused = answer.len() < asked;
                    verdicts.extend(answer.into_iter().map(Some));
                    if refused {
                        break;
                    }
                }
                None => verdicts.extend(std::iter::repeat_n(None, asked)),
            }
        }
        verdicts
    }

    /// Uses the bucket of `key` for `n` requests admitted by another replica.
    pub fn consume(&self, class: usize, key: &str, tier: Option<Tier>, n: u32) {
        let _ = self.shard_of(key).cast(ShardMsg::Consume {
            class,
            key: key.to_string(),
            tier,
            n,
        });
    }

    /// Buckets held, over all shards.
    pub async fn count(&self) -> usize {
        let shards = self
            .shards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut total = 0;
        for shard in shards {
            if let Ok(ractor::rpc::CallResult::Success(n)) = shard
                .call(ShardMsg::Count, Some(Duration::from_secs(1)))
                .await
            {
                total += n;
            }
        }
        total
    }

    /// Makes the shard of `key` crash (tests and simulations).
    #[cfg(any(test, feature = "faults"))]
    pub fn crash_shard_of(&self, key: &str) {
        let _ = self.shard_of(key).cast(ShardMsg::Crash);
    }

    /// Stops the shards and their supervisor.
    pub fn stop(&self) {
        self.supervisor.stop(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_per_hour() -> Arc<Policies> {
        let text = "[[class]]\nname = \"x\"\nroutes = [\"*\"]\nlimit = \"1/h\"\n";
        Arc::new(Policies::parse(text).unwrap())
    }

    async fn allowed(buckets: &Buckets, key: &str) -> bool {
        buckets
            .check(0, key, None, true)
            .await
            .unwrap()
            .decision
            .allowed
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buckets_are_per_key_and_a_crashed_shard_is_restarted_with_full_buckets() {
        let metrics = RateLimitMetrics::default();
        let buckets = Buckets::start(one_per_hour(), 2, &metrics).await.unwrap();
        assert!(allowed(&buckets, "ip:a").await);
        assert!(!allowed(&buckets, "ip:a").await);
        assert!(allowed(&buckets, "ip:b").await, "own bucket");
        assert_eq!(buckets.count().await, 2);

        buckets.crash_shard_of("ip:a");
        // The supervisor replaces the shard; until then a check may find none. Wait for
        // the replacement to answer (every call is a round trip, not a sleep).
        let decision = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(verdict) = buckets.check(0, "ip:a", None, true).await {
                    if verdict.decision.allowed {
                        return verdict.decision;
                    }
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the shard came back");
        assert!(
            decision.allowed,
            "a restarted shard starts with full buckets"
        );
        let restarts = metrics
            .supervision
            .restarts
            .get_or_create(&aurora_actors::supervision::ActorLabels {
                kind: "rate_limit_shard".into(),
            })
            .get();
        assert_eq!(restarts, 1, "the restart is counted");
        assert!(!allowed(&buckets, "ip:a").await, "and limits again");
        buckets.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_distinct_keys_keeps_at_most_the_cap_and_is_still_decided() {
        let buckets = Buckets::start_capped(one_per_hour(), 2, &RateLimitMetrics::default(), 10)
            .await
            .unwrap();
        for n in 0..500 {
            assert!(allowed(&buckets, &format!("ip:flood-{n}")).await);
        }
        assert_eq!(buckets.count().await, 20, "2 shards × 10");
        // The newest keys are still limited.
        assert!(!allowed(&buckets, "ip:flood-499").await);
        buckets.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_nth_counted_refusal_within_the_window_escalates() {
        let text = "[blocking]\nafter = 3\nwithin = \"1h\"\nfor = \"1m\"\nmax = \"1h\"\n\n\
                    [[class]]\nname = \"x\"\nroutes = [\"*\"]\nlimit = \"1/h\"\n";
        let buckets = Buckets::start(
            Arc::new(Policies::parse(text).unwrap()),
            1,
            &RateLimitMetrics::default(),
        )
        .await
        .unwrap();
        let mut escalations = Vec::new();
        for _ in 0..8 {
            let verdict = buckets.check(0, "ip:a", None, true).await.unwrap();
            escalations.push(verdict.escalate);
        }
        // One admitted, then refusals 1, 2, 3 (escalates), 4, 5, 6 (escalates), 7.
        assert_eq!(
            escalations,
            [false, false, false, true, false, false, true, false]
        );
        let shadow = buckets.check(0, "ip:a", None, false).await.unwrap();
        assert!(!shadow.decision.allowed && !shadow.escalate, "uncounted");
        buckets.stop();
    }
}
