//! Rate-limit policies as data: named route classes with a limit, or limits per tier.
//!
//! ```toml
//! [[class]]
//! name = "auth"
//! routes = ["POST /api/v1/auth/login", "POST /api/v1/auth/session", "POST /api/v1/auth/register"]
//! limit = "5/15m"        # N per period: s, m, h or d, optionally with a count ("15m")
//! key = "ip"             # "ip", or "principal" (the default: the token's user if the
//!                        # request carries a valid token, else the client's IP)
//! mode = "enforce"       # or "shadow": counted, refusals only in metrics and logs
//! partition = "local"    # while replicas cannot share consumption (NATS down): "local"
//!                        # limits per replica, "closed" refuses (503)
//! blocks = true          # false: requests of this class are never refused for a block,
//!                        # and no refusal of theirs (in any class) counts towards one
//!
//! [[class]]
//! name = "generations"
//! charged = true         # no routes: charged by the handler for what a request asks
//!                        # (a run's paid generation), per principal
//! tiers = { free = "5/d", pro = "50/d", enterprise = "500/d" }
//!
//! [[class]]
//! name = "runs"
//! routes = ["POST /api/v1/runs"]
//! tiers = { free = "100/h", pro = "1000/h", enterprise = "10000/h" }
//! ```
//!
//! A request belongs to the first class listing its route (`"METHOD /template"`, or just
//! the template for every method); an API route no class lists belongs to the class whose
//! routes are `["*"]`, if any. Classes with `global = true` apply to every API request on
//! top. A tiered class applies the free tier's rate to requests without a valid token.
//! [`PRESETS`] are the product write-ups' defaults.

use std::collections::HashMap;
use std::time::Duration;

use crate::user::Tier;
use serde::Deserialize;

use super::gcra::Rate;

/// The shipped defaults: the media pipeline write-up's limits (API 100 per 15 minutes per
/// client, auth 5 per 15 minutes, pipeline triggers 10 per hour, auto-block after a
/// violation), with higher multiples for the paid tiers and the chat write-up's global and
/// upload limits on top.
pub const PRESETS: &str = r#"
# Auto-block after a violation: a client refused once (over any class that blocks) is
# blocked for 15 minutes on every route; each further offence doubles the block, up to a
# day, until a day passes without one. An admin lifts a block with
# DELETE /api/v1/admin/blocks/{key}.
[blocking]
after = 1
within = "15m"
for = "15m"
max = "24h"

# Login and registration: 5 attempts per 15 minutes per client IP.
[[class]]
name = "auth"
routes = ["POST /api/v1/auth/login", "POST /api/v1/auth/session", "POST /api/v1/auth/register"]
limit = "5/15m"
key = "ip"

# Pipeline triggers: 10 per hour on the free tier (and for requests without a token);
# the paid tiers get 10 and 100 times that.
[[class]]
name = "runs"
routes = ["POST /api/v1/runs"]
tiers = { free = "10/h", pro = "100/h", enterprise = "1000/h" }

# The identity provider's and HeyGen's webhooks: their own bucket, generous, never blocked
# (a bulk sync and its retries must not lock the provider out).
[[class]]
name = "webhooks"
routes = ["POST /api/v1/webhooks/identity", "POST /api/v1/webhooks/heygen"]
limit = "10000/h"
key = "ip"
blocks = false

# Paid generations (generate steps: HeyGen videos), per user over a rolling day: charged
# when a run that generates is requested, not by route. Exceeding it is refused (429) but
# never blocks the user.
[[class]]
name = "generations"
charged = true
tiers = { free = "5/d", pro = "50/d", enterprise = "500/d" }
blocks = false

# Uploads.
[[class]]
name = "uploads"
routes = ["POST /api/v1/media"]
limit = "50/h"

# Every other API route (reads and listings included): 100 per 15 minutes per client on
# the free tier, 10 and 100 times that on the paid ones.
[[class]]
name = "api"
routes = ["*"]
tiers = { free = "100/15m", pro = "1000/15m", enterprise = "10000/15m" }

# Every API request, on top of its class, per tier.
[[class]]
name = "global"
global = true
tiers = { free = "1000/h", pro = "10000/h", enterprise = "100000/h" }
"#;

/// What a class's buckets are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyBy {
    /// The token's user if the request carries a valid token, else the client IP.
    Principal,
    /// Always the client IP.
    Ip,
}

/// Enforce, or only count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse over the limit.
    Enforce,
    /// Count; would-be refusals go to metrics and logs only.
    Shadow,
}

/// What a class does while replicas cannot share consumption (NATS unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partition {
    /// Each replica keeps limiting on its own (a client spread over N replicas may get up
    /// to N times the limit meanwhile).
    Local,
    /// Refuse the class's requests (503) until sharing is back.
    Closed,
}

/// One route class, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    /// Its name (metrics label, problem detail).
    pub name: String,
    /// `(method, template)`; a `None` method matches every method.
    pub routes: Vec<(Option<String>, String)>,
    /// For every route no other class lists.
    pub fallback: bool,
    /// For every API request, on top of its class.
    pub global: bool,
    /// The rate without tiers.
    pub limit: Option<Rate>,
    /// Rates per tier.
    pub tiers: HashMap<Tier, Rate>,
    /// How buckets are keyed.
    pub key: KeyBy,
    /// Enforce or shadow.
    pub mode: Mode,
    /// While replicas cannot share consumption.
    pub partition: Partition,
    /// Do refusals in this class count towards a block?
    pub blocks: bool,
    /// Charged by a handler for what a request asks, not matched by route.
    pub charged: bool,
}

impl Class {
    /// The rate for a request of `tier` (the free tier's for anonymous requests).
    pub fn rate(&self, tier: Option<Tier>) -> Rate {
        let tier = tier.unwrap_or(Tier::Free);
        self.tiers
            .get(&tier)
            .or(self.limit.as_ref())
            .or_else(|| self.tiers.get(&Tier::Free))
            .copied()
            .expect("a class has a limit or a free tier (checked at parse)")
    }

    fn lists(&self, method: &str, template: &str) -> bool {
        self.routes.iter().any(|(m, t)| {
            t == template && m.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
        })
    }
}

/// When refusals turn into a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// Refusals that trigger a block…
    pub after: u32,
    /// …within this window.
    pub within: Duration,
    /// The first block's length; each further offence doubles it…
    pub base: Duration,
    /// …up to this.
    pub max: Duration,
}

/// Every class, and the blocking rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    /// In file order.
    pub classes: Vec<Class>,
    /// `None`: refusals never block.
    pub blocking: Option<Blocking>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    class: Vec<RawClass>,
    blocking: Option<RawBlocking>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlocking {
    after: u32,
    within: String,
    #[serde(rename = "for")]
    base: String,
    max: String,
}

/// Parses a period: `30s`, `15m`, `h`, `24h`, `1d`.
pub fn parse_period(text: &str) -> Result<Duration, String> {
    parse_rate(&format!("1/{}", text.trim()))
        .map(|rate| rate.period)
        .map_err(|_| format!("{text:?} is not a period: write 30s, 15m, 1h or 1d"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    name: String,
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    global: bool,
    #[serde(default)]
    charged: bool,
    limit: Option<String>,
    #[serde(default)]
    tiers: HashMap<Tier, String>,
    key: Option<KeyBy>,
    mode: Option<Mode>,
    partition: Option<Partition>,
    blocks: Option<bool>,
}

/// Parses `"N/period"`: `5/15m`, `100/h`, `10/30s`, `1000/1d`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let bad = || format!("{text:?} is not a rate: write N/period, like 5/15m, 100/h or 10/30s");
    let (count, period) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let period = period.trim();
    let unit_at = period.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = period.split_at(unit_at);
    let n: u64 = if n.is_empty() {
        1
    } else {
        n.parse().map_err(|_| bad())?
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    if count == 0 || n == 0 {
        return Err(format!(
            "{text:?}: a rate needs a count and a period above zero"
        ));
    }
    // Beyond a year, or more than a million per second, is a typo, not a policy.
    let period_seconds = n.saturating_mul(seconds);
    if period_seconds > 366 * 86_400 {
        return Err(format!("{text:?}: a period is at most a year"));
    }
    if u64::from(count) > period_seconds.saturating_mul(1_000_000) {
        return Err(format!("{text:?}: more than a million per second"));
    }
    Ok(Rate {
        count,
        period: Duration::from_secs(n.saturating_mul(seconds)),
    })
}

impl Policies {
    /// The shipped presets.
    pub fn presets() -> Self {
        Self::parse(PRESETS).expect("the presets parse")
    }

    /// Parses and checks a policy file; an error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        // Semantic errors name the line of the class's `name`.
        let line_of = |name: &str| {
            text.lines()
                .position(|l| l.contains(&format!("\"{name}\"")))
                .map(|i| format!("line {}: ", i + 1))
                .unwrap_or_default()
        };
        let mut classes = Vec::with_capacity(file.class.len());
        for raw in file.class {
            let at = line_of(&raw.name);
            let fail = |what: String| format!("{at}class {:?}: {what}", raw.name);
            if raw.name.trim().is_empty() {
                return Err(fail("a class needs a name".into()));
            }
            if classes.iter().any(|c: &Class| c.name == raw.name) {
                return Err(fail("the name is used twice".into()));
            }
            let limit = raw
                .limit
                .as_deref()
                .map(parse_rate)
                .transpose()
                .map_err(fail)?;
            let mut tiers = HashMap::new();
            for (tier, rate) in &raw.tiers {
                tiers.insert(*tier, parse_rate(rate).map_err(fail)?);
            }
            if limit.is_none() && !tiers.contains_key(&Tier::Free) {
                return Err(fail("give a limit, or tiers including free".into()));
            }
            let fallback = raw.routes.iter().any(|r| r == "*");
            let mut routes = Vec::new();
            for route in raw.routes.iter().filter(|r| *r != "*") {
                let (method, template) = match route.split_once(' ') {
                    Some((m, t)) => (Some(m.trim().to_ascii_uppercase()), t.trim()),
                    None => (None, route.trim()),
                };
                if !template.starts_with('/') {
                    return Err(fail(format!(
                        "{route:?} is not \"METHOD /path\" or \"/path\""
                    )));
                }
                routes.push((method, template.to_string()));
            }
            if raw.charged && (raw.global || fallback || !routes.is_empty()) {
                return Err(fail(
                    "a charged class is charged by its handler: list no routes".into(),
                ));
            }
            if routes.is_empty() && !fallback && !raw.global && !raw.charged {
                return Err(fail(
                    "list routes, \"*\", or set global = true or charged = true".into(),
                ));
            }
            if raw.global && (fallback || !routes.is_empty()) {
                return Err(fail(
                    "a global class applies to every route: list none".into(),
                ));
            }
            classes.push(Class {
                name: raw.name,
                routes,
                fallback,
                global: raw.global,
                limit,
                tiers,
                key: raw.key.unwrap_or(KeyBy::Principal),
                mode: raw.mode.unwrap_or(Mode::Enforce),
                partition: raw.partition.unwrap_or(Partition::Local),
                blocks: raw.blocks.unwrap_or(true),
                charged: raw.charged,
            });
        }
        let blocking = match file.blocking {
            None => None,
            Some(raw) => {
                let at = text
                    .lines()
                    .position(|l| l.trim() == "[blocking]")
                    .map(|i| format!("line {}: ", i + 1))
                    .unwrap_or_default();
                let fail = |what: String| format!("{at}[blocking]: {what}");
                if raw.after == 0 {
                    return Err(fail("after must be at least 1".into()));
                }
                let blocking = Blocking {
                    after: raw.after,
                    within: parse_period(&raw.within).map_err(fail)?,
                    base: parse_period(&raw.base).map_err(fail)?,
                    max: parse_period(&raw.max).map_err(fail)?,
                };
                if blocking.max < blocking.base {
                    return Err(fail("max is shorter than for".into()));
                }
                Some(blocking)
            }
        };
        Ok(Self { classes, blocking })
    }

    /// The classes a request to `template` by `method` is checked against: its own (a
    /// class listing it, else the fallback) and every global one, as indexes.
    pub fn classes_for(&self, method: &str, template: &str) -> Vec<usize> {
        let own = self
            .classes
            .iter()
            .position(|c| c.lists(method, template))
            .or_else(|| self.classes.iter().position(|c| c.fallback));
        own.into_iter()
            .chain(
                self.classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.global)
                    .map(|(i, _)| i),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_like_the_write_ups() {
        assert_eq!(
            parse_rate("5/15m").unwrap(),
            Rate {
                count: 5,
                period: Duration::from_secs(900)
            }
        );
        assert_eq!(
            parse_rate("100/h").unwrap().period,
            Duration::from_secs(3600)
        );
        assert_eq!(parse_rate(" 10 / 30s ").unwrap().count, 10);
        for bad in [
            "0/h",
            "5/0m",
            "-1/h",
            "5",
            "5/fortnight",
            "x/h",
            "5/",
            "5/99999999999999d",
            "4000000000/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_presets_classify_requests() {
        let p = Policies::presets();
        let names = |method, path| -> Vec<String> {
            p.classes_for(method, path)
                .into_iter()
                .map(|i| p.classes[i].name.clone())
                .collect()
        };
        assert_eq!(names("POST", "/api/v1/auth/login"), ["auth", "global"]);
        assert_eq!(names("POST", "/api/v1/auth/session"), ["auth", "global"]);
        assert_eq!(names("POST", "/api/v1/runs"), ["runs", "global"]);
        assert_eq!(names("GET", "/api/v1/runs"), ["api", "global"]);
        assert_eq!(names("GET", "/api/v1/runs/{id}"), ["api", "global"]);
        // The media pipeline write-up's numbers are the free tier's.
        let class = |method, path| &p.classes[p.classes_for(method, path)[0]];
        let runs = class("POST", "/api/v1/runs");
        assert_eq!(runs.rate(None).count, 10, "anonymous: the free tier");
        assert_eq!(
            runs.rate(Some(Tier::Free)).period,
            Duration::from_secs(3600)
        );
        assert_eq!(runs.rate(Some(Tier::Pro)).count, 100);
        let api = class("GET", "/api/v1/runs");
        assert_eq!(api.rate(Some(Tier::Free)).count, 100);
        assert_eq!(
            api.rate(Some(Tier::Free)).period,
            Duration::from_secs(15 * 60)
        );
        assert!(api.rate(Some(Tier::Enterprise)).count > api.rate(Some(Tier::Pro)).count);
        let auth = class("POST", "/api/v1/auth/login");
        assert_eq!((auth.rate(None).count, auth.key), (5, KeyBy::Ip));
        assert_eq!(
            p.blocking.as_ref().map(|b| b.after),
            Some(1),
            "auto-block after a violation"
        );
    }

    #[test]
    fn a_bad_file_is_refused_with_the_line() {
        let zero = "[[class]]\nname = \"x\"\nroutes = [\"*\"]\nlimit = \"0/h\"\n";
        let error = Policies::parse(zero).unwrap_err();
        assert!(error.starts_with("line 2: class \"x\""), "{error}");
        let negative = "[[class]]\nname = \"x\"\nroutes = [\"*\"]\nlimit = \"-5/h\"\n";
        assert!(Policies::parse(negative).is_err());
        let typo = "[[class]]\nname = \"x\"\nroutes = [\"*\"]\nlimt = \"5/h\"\n";
        let error = Policies::parse(typo).unwrap_err();
        assert!(error.contains("line 4"), "{error}");
        let no_limit = "[[class]]\nname = \"x\"\nroutes = [\"*\"]\n";
        assert!(Policies::parse(no_limit).is_err());
        let bad_tier = "[[class]]\nname = \"x\"\nroutes = [\"*\"]\ntiers = { gold = \"5/h\" }\n";
        assert!(Policies::parse(bad_tier).is_err());
        let bad_block = "[blocking]\nafter = 0\nwithin = \"1m\"\nfor = \"1m\"\nmax = \"1h\"\n";
        let error = Policies::parse(bad_block).unwrap_err();
        assert!(error.starts_with("line 1: [blocking]"), "{error}");
        let backwards = "[blocking]\nafter = 3\nwithin = \"1m\"\nfor = \"1h\"\nmax = \"1m\"\n";
        assert!(Policies::parse(backwards).is_err());
    }
}
