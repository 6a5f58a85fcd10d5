//! Bucket actors: the rate-limit buckets live in a few shard actors (ractor), each owning
//! the buckets of the keys that hash to it, under a supervisor that restarts a shard that
//! failed, within a budget per shard (`aurora_actor_restarts_total{kind="rate_limit_shard"}`,
//! through the supervision helper every supervisor uses);
//! past it the shard rests for [`REST`] before it is started again, and its keys go
//! unlimited meanwhile. A restarted shard starts with full buckets: a crash forgives, it
//! never refuses more than the policy says.
//!
//! Every replica runs them (an API-only one too: it limits requests but runs no engine), so
//! they have a supervisor of their own beside the engine's root.
//!
//! - [`shard`]: a shard actor and the buckets it owns;
//! - [`supervisor`]: restarts a failed shard within its budget, rests it beyond;
//! - [`Buckets`] (here): the handle the gateway decides requests with.
//!
//! Idle buckets — full again, indistinguishable from new ones — are dropped by a sweep
//! every [`SWEEP_INTERVAL`], so memory follows the keys active within one period, not every
//! key ever seen; and each shard holds at most [`MAX_BUCKETS_PER_SHARD`]: beyond that, a
//! new key's bucket takes the place of an arbitrary other one (which starts over if its key
//! returns), so a flood of fresh keys can neither grow memory nor slip past the limits.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aurora_domain::limits::Policies;
use aurora_domain::user::Tier;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

mod check;
pub mod shard;
pub mod supervisor;

#[cfg(test)]
use check::SHARD_RESTARTS;
pub use check::{
    Check, ShardLabels, ShardMetrics, Verdict, MAX_BUCKETS_PER_SHARD, REST, SWEEP_INTERVAL,
};

use self::shard::ShardMsg;
use self::supervisor::{Supervisor, SupervisorMsg};

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
        metrics: &ShardMetrics,
    ) -> Result<Self, ActorProcessingErr> {
        Self::start_capped(policies, shards, metrics, MAX_BUCKETS_PER_SHARD).await
    }

    /// [`Buckets::start`], each shard keeping at most `cap` buckets.
    pub async fn start_capped(
        policies: Arc<Policies>,
        shards: usize,
        metrics: &ShardMetrics,
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
        let metrics = ShardMetrics::default();
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
            .get_or_create(&crate::supervision::ActorLabels {
                kind: "rate_limit_shard".into(),
            })
            .get();
        assert_eq!(restarts, 1, "the restart is counted");
        assert!(!allowed(&buckets, "ip:a").await, "and limits again");
        buckets.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_distinct_keys_keeps_at_most_the_cap_and_is_still_decided() {
        let buckets = Buckets::start_capped(one_per_hour(), 2, &ShardMetrics::default(), 10)
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
            &ShardMetrics::default(),
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

    /// Lets every actor finish what it was given: on a paused clock the runtime advances
    /// time only once nothing can run, so a virtual millisecond passes after all of it.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_is_swept_once_full_again_on_a_paused_clock() {
        let buckets = Buckets::start(one_per_hour(), 1, &ShardMetrics::default())
            .await
            .unwrap();
        assert!(allowed(&buckets, "ip:a").await);
        // Sweeps within the hour keep the bucket: the key stays limited.
        tokio::time::sleep(SWEEP_INTERVAL * 3).await;
        assert_eq!(buckets.count().await, 1);
        assert!(!allowed(&buckets, "ip:a").await);
        // Full again once the hour has passed: the next sweep drops it.
        tokio::time::sleep(Duration::from_secs(3600) + SWEEP_INTERVAL).await;
        assert_eq!(buckets.count().await, 0, "swept");
        assert!(allowed(&buckets, "ip:a").await, "a fresh bucket");
        buckets.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn a_shard_failing_past_its_budget_rests_then_is_started_again() {
        let metrics = ShardMetrics::default();
        let buckets = Buckets::start(one_per_hour(), 1, &metrics).await.unwrap();
        let labels = crate::supervision::ActorLabels {
            kind: "rate_limit_shard".into(),
        };
        let (budget, _) = SHARD_RESTARTS;
        for _ in 0..=budget {
            buckets.crash_shard_of("ip:a");
            settle().await;
        }
        assert_eq!(
            metrics.supervision.restarts.get_or_create(&labels).get(),
            budget as u64
        );
        assert_eq!(
            metrics.supervision.escalations.get_or_create(&labels).get(),
            1
        );
        // Resting: its keys go unlimited (no verdict) rather than refused.
        assert!(buckets.check(0, "ip:a", None, true).await.is_none());
        tokio::time::sleep(REST).await;
        settle().await;
        assert!(
            allowed(&buckets, "ip:a").await,
            "started again, with full buckets"
        );
        assert!(!allowed(&buckets, "ip:a").await, "and limiting");
        buckets.stop();
    }
}
