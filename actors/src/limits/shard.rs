//! A rate-limit shard: the buckets of the keys that hash to it, and the refusals counted
//! towards blocks. A restarted shard starts empty (full buckets).

use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

use aurora_domain::limits::{Bucket, Policies};
use aurora_domain::user::Tier;
use prometheus_client::metrics::gauge::Gauge;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::check::{Check, Verdict, SWEEP_INTERVAL};

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

pub(super) struct Shard {
    pub(super) policies: Arc<Policies>,
    /// When the shard's clock began (shared by the shards, kept across restarts).
    pub(super) epoch: Instant,
    /// Buckets this shard holds.
    pub(super) held: Gauge,
    /// Most buckets it keeps.
    pub(super) cap: usize,
}

pub(super) struct ShardState {
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
