//! The generic cell rate algorithm (GCRA): a token bucket kept as one timestamp.
//!
//! A limit of `count` per `period` admits one request every `interval = period / count`,
//! with bursts of up to `count`. The bucket stores the *theoretical arrival time* (TAT):
//! when it would be full again if nothing more came. A request at `now` is admitted if
//! `TAT − now ≤ period − interval` (room for one more), and then moves TAT forward by one
//! interval. Nothing ticks in the background; a bucket whose TAT has passed is full, which
//! is the same as having no bucket at all — so idle buckets can be dropped.

use std::time::Duration;

/// A rate: `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period (also the largest burst).
    pub count: u32,
    /// The period.
    pub period: Duration,
}

impl Rate {
    fn interval_ns(&self) -> u64 {
        (self.period.as_nanos() / u128::from(self.count.max(1))).max(1) as u64
    }

    fn tolerance_ns(&self) -> u64 {
        (self.period.as_nanos() as u64).saturating_sub(self.interval_ns())
    }
}

/// What a check decided, with what the `RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Admitted?
    pub allowed: bool,
    /// The limit (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests still admitted right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`).
    pub reset: Duration,
    /// When refused: until one more request would be admitted (`Retry-After`).
    pub retry_after: Duration,
}

/// One bucket: its theoretical arrival time in nanoseconds on the caller's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    tat: u64,
}

impl Bucket {
    /// Is the bucket full at `now` (indistinguishable from a new one)?
    pub fn is_idle(&self, now: u64) -> bool {
        self.tat <= now
    }

    /// Uses the bucket for `n` requests admitted elsewhere (another replica), without a
    /// decision: the bucket may go past empty, and then refuses until it has drained.
    /// The debt is capped at one period: however large a report, the bucket is full again
    /// one period after the last request.
    pub fn consume(&mut self, rate: Rate, now: u64, n: u32) {
        let used = rate.interval_ns().saturating_mul(u64::from(n));
        let ceiling = now.saturating_add(rate.period.as_nanos().min(u128::from(u64::MAX)) as u64);
        self.tat = self.tat.max(now).saturating_add(used).min(ceiling);
    }

    /// Decides a request at `now` (nanoseconds, monotonic) under `rate`; an admitted
    /// request uses the bucket, a refused one leaves it as it was.
    pub fn check(&mut self, rate: Rate, now: u64) -> Decision {
        let interval = rate.interval_ns();
        let tolerance = rate.tolerance_ns();
        let tat = self.tat.max(now);
        let ahead = tat - now;
        if ahead > tolerance {
            return Decision {
                allowed: false,
                limit: rate.count,
                remaining: 0,
                reset: Duration::from_nanos(ahead),
                retry_after: Duration::from_nanos(ahead - tolerance),
            };
        }
        self.tat = tat + interval;
        let ahead = self.tat - now;
        // The next request is admitted while TAT − now ≤ tolerance, each moving TAT on by
        // one interval.
        let remaining = if ahead <= tolerance {
            (tolerance - ahead) / interval + 1
        } else {
            0
        };
        Decision {
            allowed: true,
            limit: rate.count,
            remaining: remaining.min(u64::from(rate.count)) as u32,
            reset: Duration::from_nanos(ahead),
            retry_after: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn five_per_15_minutes() -> Rate {
        Rate {
            count: 5,
            period: Duration::from_secs(900),
        }
    }

    #[test]
    fn a_full_bucket_admits_a_burst_of_count_then_refuses() {
        let mut bucket = Bucket::default();
        let now = 1_000 * S;
        let remaining: Vec<u32> = (0..5)
            .map(|_| {
                let d = bucket.check(five_per_15_minutes(), now);
                assert!(d.allowed);
                d.remaining
            })
            .collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        let sixth = bucket.check(five_per_15_minutes(), now);
        assert!(!sixth.allowed);
        assert_eq!(sixth.remaining, 0);
        // One more is admitted once one interval (180 s) has passed.
        assert_eq!(sixth.retry_after, Duration::from_secs(180));
        assert_eq!(sixth.reset, Duration::from_secs(900));
        let before = bucket;
        assert!(!bucket.check(five_per_15_minutes(), now + 179 * S).allowed);
        assert_eq!(bucket, before, "a refusal uses nothing");
        assert!(bucket.check(five_per_15_minutes(), now + 180 * S).allowed);
    }

    #[test]
    fn a_steady_rate_at_the_limit_is_always_admitted() {
        let mut bucket = Bucket::default();
        for n in 0..1000 {
            let d = bucket.check(five_per_15_minutes(), n * 180 * S);
            assert!(d.allowed, "request {n}");
        }
    }

    #[test]
    fn consumption_elsewhere_uses_the_bucket_here() {
        let mut bucket = Bucket::default();
        let now = 1_000 * S;
        bucket.consume(five_per_15_minutes(), now, 4);
        let d = bucket.check(five_per_15_minutes(), now);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(!bucket.check(five_per_15_minutes(), now).allowed);
        // A report of any size is at most one period of debt.
        let mut bucket = Bucket::default();
        bucket.consume(five_per_15_minutes(), now, u32::MAX);
        assert!(bucket.is_idle(now + 900 * S));
    }

    #[test]
    fn a_bucket_is_idle_once_full_again() {
        let mut bucket = Bucket::default();
        let now = 10 * S;
        bucket.check(five_per_15_minutes(), now);
        assert!(!bucket.is_idle(now + 179 * S));
        assert!(bucket.is_idle(now + 180 * S));
    }
}
