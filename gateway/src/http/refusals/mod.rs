//! Refused requests that matter for security become events, so that they are in the
//! audit trail with who tried (the token's holder, if the token was genuine), from where,
//! on which route, and why: every 401, 403 and 429 answer, and a 422 that a handler marks
//! with [`AuditRefusal`] (a request naming another user's resource, e.g. their media as a
//! run's input).
//!
//! A failed login is recorded by the login handler itself: as `LoginFailed` on the user
//! when the user exists, as a refusal otherwise. Rate-limit blocks are `ClientBlocked`
//! events of their own.
//!
//! Recording is bounded, so that a flood cannot fill the store, and the bound cannot be
//! used to hide anything that matters:
//! - a refusal carrying a *genuine* token (revoked and expired ones included) is charged to
//!   that token, with a generous budget ([`PER_TOKEN_PER_MINUTE`]), under a ceiling for all
//!   of its principal's tokens ([`PER_PRINCIPAL_PER_MINUTE`]): garbage tokens from the same
//!   address, every client behind one proxy, or one old token of the same user never spend
//!   another token's budget;
//! - an anonymous refusal (no token, or one that is not Aurora's) is charged to its client
//!   (an IPv6 client by its /64), [`PER_CLIENT_PER_MINUTE`];
//! - the refusal that finds its budget spent is recorded as `RefusalsOverflowed` (at most
//!   one a minute per token or client), so that the trail says that, from whom and
//!   from when refusals went uncounted; the ones after it are counted in
//!   `aurora_refusals_unrecorded_total`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use aurora_domain::EventMetadata;

mod record;

pub use self::record::{observe, record};

/// Anonymous refusals recorded per client per minute, at most (bursts up to the same).
pub const PER_CLIENT_PER_MINUTE: u32 = 60;

/// Refusals of one genuine token recorded per minute, at most.
pub const PER_TOKEN_PER_MINUTE: u32 = 600;

/// Refusals of all of a principal's tokens together recorded per minute, at most: one
/// token (a revoked one found in an old log, say) cannot spend the others' budget, and a
/// principal with many cannot flood the store.
pub const PER_PRINCIPAL_PER_MINUTE: u32 = 3000;

/// Marks a response whose refusal belongs in the audit trail although its status alone
/// would not say so (a 422 caused by another user's resource).
#[derive(Debug, Clone, Copy)]
pub struct AuditRefusal;

type Limiter = governor::DefaultKeyedRateLimiter<String>;

fn per_minute(n: u32) -> Limiter {
    governor::RateLimiter::keyed(governor::Quota::per_minute(
        NonZeroU32::new(n).expect("non-zero"),
    ))
}

/// The budgets of recorded refusals.
pub struct Budget {
    clients: Limiter,
    tokens: Limiter,
    principals: Limiter,
    /// One `RefusalsOverflowed` a minute per key.
    overflows: Limiter,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            clients: per_minute(PER_CLIENT_PER_MINUTE),
            tokens: per_minute(PER_TOKEN_PER_MINUTE),
            principals: per_minute(PER_PRINCIPAL_PER_MINUTE),
            overflows: per_minute(1),
        }
    }
}

/// What to do with a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Record,
    Overflow,
    Count,
}

impl Budget {
    /// May a refusal with `metadata` be recorded now? A genuine token (`token_id` set)
    /// is charged to its principal, anything else to its client.
    fn judge(&self, metadata: &EventMetadata) -> Verdict {
        for limiter in [
            &self.clients,
            &self.tokens,
            &self.principals,
            &self.overflows,
        ] {
            if limiter.len() > 100_000 {
                limiter.retain_recent();
            }
        }
        let (allowed, key) = match &metadata.token_id {
            Some(token) => {
                let principal = format!("principal:{}", metadata.principal);
                let key = format!("{principal}:{token}");
                if self.tokens.check_key(&key).is_err() {
                    (false, key)
                } else {
                    // Past the principal's ceiling, one overflow event a minute for the
                    // principal, not one per token.
                    (self.principals.check_key(&principal).is_ok(), principal)
                }
            }
            None => {
                let key = client_key(metadata.client_ip.as_deref());
                (self.clients.check_key(&key).is_ok(), key)
            }
        };
        if allowed {
            Verdict::Record
        } else if self.overflows.check_key(&key).is_ok() {
            Verdict::Overflow
        } else {
            Verdict::Count
        }
    }
}

/// The budget key of an anonymous client: its address (an IPv6 client by its /64, since it
/// rotates addresses within it at will).
fn client_key(client: Option<&str>) -> String {
    match client.and_then(|c| c.parse::<IpAddr>().ok()) {
        Some(IpAddr::V6(ip)) => {
            let s = ip.segments();
            format!("client:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(ip) => format!("client:{ip}"),
        None => "client:unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(principal: &str, token: bool, ip: &str) -> EventMetadata {
        let mut metadata = EventMetadata::new(principal, "req");
        metadata.token_id = token.then(|| "t1".to_string());
        metadata.client_ip = Some(ip.to_string());
        metadata
    }

    #[test]
    fn garbage_from_an_address_never_spends_a_genuine_tokens_budget() {
        let budget = Budget::default();
        let garbage = metadata("anonymous", false, "198.51.100.7");
        let verdicts: Vec<_> = (0..PER_CLIENT_PER_MINUTE + 5)
            .map(|_| budget.judge(&garbage))
            .collect();
        assert!(verdicts[..PER_CLIENT_PER_MINUTE as usize]
            .iter()
            .all(|v| *v == Verdict::Record));
        // The first refusal past the budget says so, once; the rest are counted.
        assert_eq!(verdicts[PER_CLIENT_PER_MINUTE as usize], Verdict::Overflow);
        assert!(verdicts[PER_CLIENT_PER_MINUTE as usize + 1..]
            .iter()
            .all(|v| *v == Verdict::Count));
        // Same address, a genuine token: its own budget.
        let genuine = metadata("mallory", true, "198.51.100.7");
        for _ in 0..PER_TOKEN_PER_MINUTE {
            assert_eq!(budget.judge(&genuine), Verdict::Record);
        }
        assert_eq!(budget.judge(&genuine), Verdict::Overflow);
        // Another token of the same principal has a budget of its own, up to the
        // principal's ceiling.
        let mut other = metadata("mallory", true, "198.51.100.7");
        other.token_id = Some("t2".into());
        assert_eq!(budget.judge(&other), Verdict::Record);
        let mut spent = 0;
        for n in 0..PER_PRINCIPAL_PER_MINUTE * 2 {
            let mut token = metadata("flood", true, "198.51.100.8");
            token.token_id = Some(format!("t{}", n % 10));
            if budget.judge(&token) == Verdict::Record {
                spent += 1;
            }
        }
        // (A few more may be recorded as the ceiling refills while the loop runs.)
        assert!(
            (PER_PRINCIPAL_PER_MINUTE..PER_PRINCIPAL_PER_MINUTE + 100).contains(&spent),
            "the principal's ceiling holds: {spent}"
        );
        // Another principal behind the same proxy address is untouched.
        assert_eq!(
            budget.judge(&metadata("alice", true, "198.51.100.7")),
            Verdict::Record
        );
        // An IPv6 client is one client across its /64.
        let a = metadata("anonymous", false, "2001:db8:1:2::1");
        let b = metadata("anonymous", false, "2001:db8:1:2:ffff::9");
        for _ in 0..PER_CLIENT_PER_MINUTE {
            assert_eq!(budget.judge(&a), Verdict::Record);
        }
        assert_eq!(budget.judge(&b), Verdict::Overflow);
    }
}
