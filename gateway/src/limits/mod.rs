//! Rate limits: policies as data and GCRA buckets (`aurora_domain::limits`) held by
//! supervised shard actors (`aurora_actors::limits`), and the warp filter that checks every API request and
//! answers with the `RateLimit-*` headers (IETF draft) — or a 429 problem with
//! `Retry-After`.
//!
//! The key of a request is its principal when it carries a valid token (the verified-token
//! cache makes that cheap), otherwise the client IP; `X-Forwarded-For` is believed only
//! when the peer is one of the configured trusted proxies.

pub mod blocks;
pub mod filter;
pub mod share;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use aurora_domain::client::ClientCommand;
use aurora_domain::user::Tier;
use aurora_domain::EventMetadata;
use aurora_projections::ClientCommands;
use chrono::{TimeDelta, Utc};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio_util::sync::CancellationToken;
use warp::reply::Response;

use aurora_domain::net::{canonical, IpRanges};

use self::blocks::{Block, Blocks};
use self::share::Sharing;
use crate::config::Config;
use crate::http::problem::Problem;
use crate::metrics::RateLimitMetrics;
use aurora_actors::limits::{Buckets, Check, Verdict};
use aurora_domain::limits::Decision;
use aurora_domain::limits::{KeyBy, Mode, Partition, Policies};

/// Addresses (or CIDR ranges) whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(IpRanges);

impl TrustedProxies {
    /// Parses `10.0.0.1, 10.1.0.0/16, ::1`.
    pub fn parse(text: &str) -> Result<Self, String> {
        IpRanges::parse(text).map(Self)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The client of a request from `peer`: the peer itself, unless it is a trusted proxy,
    /// then the rightmost `X-Forwarded-For` entry that is not (garbage ends the walk).
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = canonical(peer?);
        if !self.contains(client) {
            return Some(client);
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in forwarded.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => {
                    client = canonical(ip);
                    if !self.contains(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        Some(client)
    }

    /// Is `ip` one of the trusted proxies?
    pub fn is_proxy(&self, ip: IpAddr) -> bool {
        self.contains(ip)
    }
}

/// One `X-Forwarded-For` hop: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The bucket key of a client address: the address for IPv4, its /64 for IPv6 (one
/// subscriber typically holds a whole /64, and must not get a bucket per address).
fn ip_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1_u128 << 64) - 1);
            format!("ip:{}/64", std::net::Ipv6Addr::from(network))
        }
    }
}

/// The rate limiter: policies, the bucket actors, the block list.
pub struct Limits {
    policies: Arc<Policies>,
    buckets: Buckets,
    proxies: TrustedProxies,
    blocks: Arc<Blocks>,
    clients: ClientCommands,
    metrics: RateLimitMetrics,
    sharing: Option<(Sharing, async_nats::Client)>,
}

/// The principal recorded in the events the rate limiter causes.
pub const PRINCIPAL: &str = aurora_domain::metadata::RATE_LIMITER;

/// A request refused by a limit or a block.
#[derive(Debug)]
pub enum Limited {
    /// Over the limit of a class.
    Refused {
        /// The class.
        class: String,
        /// The bucket's decision.
        decision: Decision,
    },
    /// The client is blocked.
    Blocked(Block),
    /// A `partition = "closed"` class while replicas cannot share consumption.
    Unavailable {
        /// The class.
        class: String,
    },
}

impl warp::reject::Reject for Limited {}

impl Limited {
    /// The 429 problem, with `Retry-After` (and the `RateLimit-*` headers when a limit
    /// refused it).
    pub fn response(&self) -> Response {
        if let Limited::Unavailable { class } = self {
            let mut response = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "rate-limit-unavailable",
                "Service unavailable",
                format!(
                    "the {class} limit cannot be checked across replicas right now; retry soon"
                ),
            )
            .response(None);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(5));
            return response;
        }
        let (retry, slug, detail) = match self {
            Limited::Refused { class, decision } => {
                let retry = decision.retry_after.as_secs_f64().ceil() as u64;
                let detail = format!(
                    "the {class} limit of {} requests is used up; retry in {retry} s",
                    decision.limit
                );
                (retry, "rate-limited", detail)
            }
            Limited::Unavailable { .. } => unreachable!("answered above"),
            Limited::Blocked(block) => {
                let left = (block.until - Utc::now()).num_milliseconds().max(0) as u64;
                let retry = left.div_ceil(1000).max(1);
                let detail = format!(
                    "blocked until {} for repeatedly exceeding the {} limit (offence {})",
                    block
                        .until
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    block.reason,
                    block.offence
                );
                (retry, "client-blocked", detail)
            }
        };
        let mut response = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            slug,
            "Too many requests",
            detail,
        )
        .response(None);
        let headers = response.headers_mut();
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(retry.max(1)));
        if let Limited::Refused { decision, .. } = self {
            insert_headers(headers, decision);
        }
        response
    }
}

fn insert_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    let reset = decision.reset.as_secs_f64().ceil() as u64;
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
}

impl Limits {
    /// Starts the bucket actors for `policies`; blocks go through `clients` into `blocks`.
    pub async fn start(
        policies: Policies,
        proxies: TrustedProxies,
        clients: ClientCommands,
        blocks: Arc<Blocks>,
        metrics: RateLimitMetrics,
    ) -> anyhow::Result<Self> {
        let policies = Arc::new(policies);
        let shards = std::thread::available_parallelism().map_or(2, |n| n.get());
        let buckets = Buckets::start(policies.clone(), shards, &metrics.shards)
            .await
            .map_err(|e| anyhow::anyhow!("starting the rate-limit buckets: {e}"))?;
        Ok(Self {
            policies,
            buckets,
            proxies,
            blocks,
            clients,
            metrics,
            sharing: None,
        })
    }

    /// Shares consumption with the other replicas over `client` (see [`share`]).
    pub async fn share(
        &mut self,
        client: async_nats::Client,
        subject: String,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let sharing = Sharing::start(
            client.clone(),
            subject,
            self.policies.clone(),
            self.buckets.clone(),
            shutdown,
        )
        .await?;
        self.sharing = Some((sharing, client));
        Ok(())
    }

    /// The sharing with other replicas, if any.
    pub fn sharing(&self) -> Option<&Sharing> {
        self.sharing.as_ref().map(|(sharing, _)| sharing)
    }

    /// Can consumption be shared right now (or is there nothing to share with)?
    fn shared(&self) -> bool {
        self.sharing.as_ref().is_none_or(|(sharing, client)| {
            sharing.listening()
                && client.connection_state() == async_nats::connection::State::Connected
        })
    }

    /// The block list.
    pub fn blocks(&self) -> &Arc<Blocks> {
        &self.blocks
    }

    /// The client commands (blocks, unblocks).
    pub fn clients(&self) -> &ClientCommands {
        &self.clients
    }

    /// Blocks `key` for exceeding `class` again and again; the block in force after.
    async fn block(&self, key: &str, class: &str, client_ip: Option<String>) -> Option<Block> {
        let blocking = self.policies.blocking?;
        let command = ClientCommand::Block {
            reason: class.to_string(),
            at: Utc::now(),
            base: TimeDelta::from_std(blocking.base).unwrap_or(TimeDelta::MAX),
            max: TimeDelta::from_std(blocking.max).unwrap_or(TimeDelta::MAX),
        };
        let mut metadata = EventMetadata::system(PRINCIPAL, uuid::Uuid::now_v7().to_string());
        metadata.client_ip = client_ip;
        match self.clients.execute(key, command, &metadata).await {
            Ok(events) => {
                self.blocks.apply(key, &events);
                tracing::warn!(%key, %class, "client blocked");
            }
            Err(error) => tracing::error!(%key, %error, "could not record a block"),
        }
        self.blocks.blocked(key, Utc::now())
    }

    /// Decides a request; `Ok` carries the tightest decision for the headers (`None` when
    /// no class applies).
    pub(crate) async fn decide(
        &self,
        tokens: &crate::auth::tokens::Tokens,
        method: &Method,
        path: &str,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
    ) -> Result<Option<Decision>, Limited> {
        let template = crate::http::routes::route_template(path);
        if !template.starts_with("/api/") {
            return Ok(None);
        }
        let classes = self.policies.classes_for(method.as_str(), template);
        if classes.is_empty() {
            return Ok(None);
        }
        // A principal is whoever a valid, unexpired token speaks for as itself (a narrowed
        // or expired token is keyed by its IP: it must not drain its issuer's buckets).
        let principal = crate::http::credentials::presented_token(headers)
            .ok()
            .and_then(|token| tokens.verify(token).ok())
            .and_then(|token| {
                let own = crate::auth::tokens::Access::own("users:read");
                tokens
                    .authorize(&token, own, std::time::SystemTime::now())
                    .ok()
            })
            .map(|claims| (claims.username, claims.tier));
        let client = self.proxies.client(peer.map(|p| p.ip()), headers);
        let ip = client.map_or_else(|| "ip:unknown".to_string(), ip_key);
        // A trusted proxy's own address is never blocked: it carries everyone behind it.
        let blockable_ip = client.is_none_or(|ip| !self.proxies.is_proxy(ip));
        // A route whose class never blocks (the identity provider's webhook) is never
        // refused for a block, nor blocks, by any class: its senders' addresses are shared
        // (Svix sends for many customers), and one of them must not lock the provider out.
        let never_blocked = classes
            .iter()
            .any(|&index| !self.policies.classes[index].blocks);
        let mut checks = Vec::with_capacity(classes.len());
        for &index in &classes {
            let class = &self.policies.classes[index];
            let (key, tier): (String, Option<Tier>) = match (&principal, class.key) {
                (Some((user, tier)), KeyBy::Principal) => (format!("user:{user}"), Some(*tier)),
                _ => (ip.clone(), None),
            };
            let block = (!never_blocked)
                .then(|| self.blocks.blocked(&key, Utc::now()))
                .flatten();
            if let Some(block) = block {
                self.metrics.decided(&class.name, tier, "blocked");
                return Err(Limited::Blocked(block));
            }
            if class.partition == Partition::Closed && !self.shared() {
                self.metrics.decided(&class.name, tier, "unavailable");
                return Err(Limited::Unavailable {
                    class: class.name.clone(),
                });
            }
            let blocks =
                class.blocks && !never_blocked && (key.starts_with("user:") || blockable_ip);
            checks.push(Check {
                class: index,
                key,
                tier,
                counts: class.mode == Mode::Enforce,
                blocks,
            });
        }
        let verdicts = self.buckets.check_all(checks.clone()).await;
        let mut tightest: Option<Decision> = None;
        for (check, verdict) in checks.iter().zip(verdicts) {
            // A shard being restarted cannot answer: the request is let through.
            let Some(verdict) = verdict else {
                continue;
            };
            let Some(decision) = self.settle(check, verdict, client).await? else {
                continue; // shadow
            };
            if tightest.is_none_or(|t| decision.remaining < t.remaining) {
                tightest = Some(decision);
            }
        }
        Ok(tightest)
    }

    /// What a bucket's verdict on `check` means for the request: `Ok(Some)` admitted (and
    /// reported to the other replicas), `Ok(None)` refused in shadow mode, `Err` refused
    /// (a block when the refusal escalates).
    async fn settle(
        &self,
        check: &Check,
        verdict: Verdict,
        client: Option<IpAddr>,
    ) -> Result<Option<Decision>, Limited> {
        let class = &self.policies.classes[check.class];
        let (key, tier) = (&check.key, check.tier);
        let decision = verdict.decision;
        if !decision.allowed {
            if !check.counts {
                tracing::info!(class = %class.name, %key, "would be rate-limited (shadow)");
                self.metrics.decided(&class.name, tier, "shadow_limited");
                return Ok(None);
            }
            tracing::info!(class = %class.name, %key, "rate-limited");
            if verdict.escalate {
                let client_ip = client.map(|ip| ip.to_string());
                if let Some(block) = self.block(key, &class.name, client_ip).await {
                    self.metrics.decided(&class.name, tier, "blocked");
                    return Err(Limited::Blocked(block));
                }
            }
            self.metrics.decided(&class.name, tier, "limited");
            return Err(Limited::Refused {
                class: class.name.clone(),
                decision,
            });
        }
        self.metrics.decided(&class.name, tier, "allowed");
        if let Some((sharing, _)) = &self.sharing {
            sharing.admitted(check.class, key, tier);
        }
        Ok(Some(decision))
    }

    /// Charges one unit of the charged class `class` (a run's paid generation) to `user`:
    /// `Ok` (with the decision; `None` if no such class is configured) or
    /// [`Limited::Refused`]. A refusal never counts towards a block. Paid work is not let
    /// through unchecked: a shard that cannot answer (being restarted), or a `closed`
    /// class while replicas cannot share consumption, is [`Limited::Unavailable`] (503).
    pub async fn charge(
        &self,
        class: &str,
        user: &str,
        tier: Tier,
    ) -> Result<Option<Decision>, Limited> {
        let Some(index) = self.charged_class(class) else {
            return Ok(None);
        };
        let class = &self.policies.classes[index];
        let check = Check {
            class: index,
            key: format!("user:{user}"),
            tier: Some(tier),
            counts: class.mode == Mode::Enforce,
            blocks: false,
        };
        let closed = class.partition == Partition::Closed && !self.shared();
        let verdict = match closed {
            true => None,
            false => self
                .buckets
                .check_all(vec![check.clone()])
                .await
                .pop()
                .flatten(),
        };
        let Some(verdict) = verdict else {
            self.metrics.decided(&class.name, Some(tier), "unavailable");
            return Err(Limited::Unavailable {
                class: class.name.clone(),
            });
        };
        self.settle(&check, verdict, None).await
    }

    /// The index of the charged class named `class`, if the policies have one.
    pub fn charged_class(&self, class: &str) -> Option<usize> {
        self.policies
            .classes
            .iter()
            .position(|c| c.charged && c.name == class)
    }

    /// Stops the bucket actors.
    pub fn stop(&self) {
        self.buckets.stop();
    }
}

/// Adds the `RateLimit-*` headers of `decision` to `response`.
pub fn with_headers(decision: Option<Decision>, mut response: Response) -> Response {
    if let Some(decision) = decision {
        insert_headers(response.headers_mut(), &decision);
    }
    response
}

/// The rate-limit policies `config` sets (`AURORA_RATE_LIMITS`): `None` when off, the
/// presets, or a policy file (a bad file is an error naming the line).
pub fn configured(config: &Config) -> anyhow::Result<Option<Policies>> {
    match config.rate_limits.trim() {
        "off" => Ok(None),
        "presets" => Ok(Some(Policies::presets())),
        path => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading rate limits {path}: {e}"))?;
            Policies::parse(&text)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("rate limits {path}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.1.2.3".parse().unwrap());
        let client = |peer: &str, headers: &HeaderMap| {
            proxies
                .client(Some(peer.parse().unwrap()), headers)
                .unwrap()
                .to_string()
        };
        assert_eq!(client("10.9.9.9", &headers), "203.0.113.9");
        assert_eq!(client("198.51.100.7", &headers), "198.51.100.7", "spoofed");
        assert_eq!(client("192.168.1.1", &headers), "203.0.113.9");
        let mut garbage = HeaderMap::new();
        garbage.insert("x-forwarded-for", "not-an-ip, 10.1.2.3".parse().unwrap());
        assert_eq!(
            client("10.9.9.9", &garbage),
            "10.1.2.3",
            "garbage ends the walk"
        );
        assert_eq!(client("10.9.9.9", &HeaderMap::new()), "10.9.9.9");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nonsense").is_err());
        // Hops with ports, IPv4-mapped peers and ranges.
        let mut ported = HeaderMap::new();
        ported.insert(
            "x-forwarded-for",
            "[2001:db8::7]:443, 203.0.113.9:5678".parse().unwrap(),
        );
        assert_eq!(client("10.9.9.9", &ported), "203.0.113.9");
        assert_eq!(client("::ffff:10.9.9.9", &headers), "203.0.113.9");
        let mapped = TrustedProxies::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.is_proxy("10.1.2.3".parse().unwrap()));
        assert!(!mapped.is_proxy("11.1.2.3".parse().unwrap()));
        assert!(TrustedProxies::parse("::ffff:10.0.0.0/8").is_err());
    }

    #[test]
    fn an_ipv6_client_is_keyed_by_its_64() {
        let key = |ip: &str| ip_key(ip.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.9"), "ip:203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "ip:203.0.113.9");
    }
}
