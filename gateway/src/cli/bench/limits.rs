//! `aurora bench-limits`: what a rate-limit decision costs, and what a bucket weighs.
//!
//! 1. **Decision latency**: sequential checks against the bucket actors (a message to a
//!    shard actor and its answer), cycling over many keys, beside the same number of
//!    checks against an in-process keyed `governor` limiter (a concurrent map, no actor),
//!    in the same run: p50 / p99 in µs.
//! 2. **Per request over HTTP**: an embedded Aurora with generous limits on, and one with
//!    them off, the same route (`GET /api/v1/auth/keys`) sent one after another; the
//!    median difference is what the limiter adds to a request (filter, key, one or two
//!    checks, headers).
//! 3. **Memory**: the resident set before and after one check for each of N distinct keys;
//!    bytes per bucket, and how many buckets are kept (each shard keeps at most
//!    `MAX_BUCKETS_PER_SHARD`, so a flood of distinct keys is bounded).
//!
//! It prints figures; it asserts nothing.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aurora_projections::testkit::TempDir;
use clap::Args;
use governor::{Quota, RateLimiter};

use crate::cli::bench::auth::{median_us, phase};
use crate::config::Config;
use crate::startup::Application;
use aurora_actors::limits::{Buckets, ShardMetrics, MAX_BUCKETS_PER_SHARD};
use aurora_domain::limits::Policies;

/// Options of `aurora bench-limits`.
#[derive(Debug, Clone, Args)]
pub struct LimitsBenchArgs {
    /// Checks per limiter in the latency phase.
    #[arg(long, default_value_t = 100_000)]
    pub checks: usize,
    /// Distinct keys the latency phase cycles over.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// HTTP requests per configuration per round.
    #[arg(long, default_value_t = 3000)]
    pub requests: usize,
    /// Distinct keys for the memory phase.
    #[arg(long, default_value_t = 1_000_000)]
    pub memory_keys: usize,
}

const HOURLY: &str = "[[class]]\nname = \"all\"\nroutes = [\"*\"]\nlimit = \"1/h\"\n";
const GENEROUS: &str = "[[class]]\nname = \"all\"\nroutes = [\"*\"]\nlimit = \"1000000000/h\"\n";

fn percentile_us(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort_unstable();
    let index = ((samples.len() as f64 * p) as usize).min(samples.len() - 1);
    samples[index].as_secs_f64() * 1e6
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: LimitsBenchArgs) -> anyhow::Result<()> {
    let policies = Arc::new(Policies::parse(GENEROUS).map_err(anyhow::Error::msg)?);
    let shards = std::thread::available_parallelism().map_or(2, |n| n.get());
    let keys: Vec<String> = (0..args.keys)
        .map(|i| format!("ip:10.0.{}.{}", i / 256, i % 256))
        .collect();

    // 1. Decision latency: actors vs governor. On a runtime worker, as a request handler
    // runs (the main thread is outside the worker pool).
    let buckets = Buckets::start(policies.clone(), shards, &ShardMetrics::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (checks, our_keys, ours_buckets) = (args.checks, keys.clone(), buckets.clone());
    let mut ours = tokio::spawn(async move {
        let mut ours = Vec::with_capacity(checks);
        for n in 0..checks + 10_000 {
            let key = &our_keys[n % our_keys.len()];
            let began = Instant::now();
            let verdict = ours_buckets.check(0, key, None, true).await;
            if n >= 10_000 {
                ours.push(began.elapsed());
            }
            anyhow::ensure!(verdict.is_some_and(|v| v.decision.allowed), "refused");
        }
        anyhow::Ok(ours)
    })
    .await??;
    buckets.stop();
    let governor = RateLimiter::keyed(Quota::per_hour(
        NonZeroU32::new(1_000_000_000).expect("non-zero"),
    ));
    let mut theirs = Vec::with_capacity(args.checks);
    for n in 0..args.checks + 10_000 {
        let key = &keys[n % keys.len()];
        let began = Instant::now();
        let allowed = governor.check_key(key).is_ok();
        if n >= 10_000 {
            theirs.push(began.elapsed());
        }
        anyhow::ensure!(allowed, "governor refused");
    }

    // 2. Per request over HTTP.
    let serve = |limits: &str| {
        let limits = limits.to_string();
        async move {
            let dir = TempDir::new().context("temporary dir")?;
            let mut config = Config::embedded(dir.path());
            if limits != "off" {
                let path = dir.path().join("limits.toml");
                std::fs::write(&path, &limits)?;
                config.rate_limits = path.display().to_string();
            }
            let app = Application::build(config).await?;
            let base = format!("http://127.0.0.1:{}", app.port());
            let shutdown = app.shutdown_token();
            let server = tokio::spawn(app.run_until_stopped());
            anyhow::Ok((base, shutdown, server, dir))
        }
    };
    let (on, on_stop, on_server, _on_dir) = serve(GENEROUS).await?;
    let (off, off_stop, off_server, _off_dir) = serve("off").await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let (on_url, off_url) = (
        format!("{on}/api/v1/auth/keys"),
        format!("{off}/api/v1/auth/keys"),
    );
    phase(&client, &on_url, 500, |_| None).await?;
    phase(&client, &off_url, 500, |_| None).await?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        without.extend(phase(&client, &off_url, args.requests, |_| None).await?);
        with.extend(phase(&client, &on_url, args.requests, |_| None).await?);
    }
    on_stop.cancel();
    off_stop.cancel();
    on_server.await??;
    off_server.await??;

    // 3. Memory per bucket, and the bound: buckets that stay in use (1 per hour, so none
    // is idle and swept during the run).
    let policies = Arc::new(Policies::parse(HOURLY).map_err(anyhow::Error::msg)?);
    let buckets = Buckets::start(policies, shards, &ShardMetrics::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let before = resident_bytes();
    for n in 0..args.memory_keys {
        buckets
            .check(0, &format!("ip:flood-{n}"), None, true)
            .await
            .context("a shard did not answer")?;
    }
    let held = buckets.count().await;
    let after = resident_bytes();
    buckets.stop();
    let cap = shards * MAX_BUCKETS_PER_SHARD;

    let (ours_p50, ours_p99) = (
        percentile_us(&mut ours, 0.5),
        percentile_us(&mut ours, 0.99),
    );
    let (gov_p50, gov_p99) = (
        percentile_us(&mut theirs, 0.5),
        percentile_us(&mut theirs, 0.99),
    );
    let (with_us, without_us) = (median_us(&mut with), median_us(&mut without));
    println!(
        "rate-limit decision cost ({} checks over {} keys; {} shard actors)",
        args.checks, args.keys, shards
    );
    println!("  bucket actors (message + answer)   p50 {ours_p50:7.2} µs   p99 {ours_p99:7.2} µs");
    println!("  governor keyed, in-process         p50 {gov_p50:7.2} µs   p99 {gov_p99:7.2} µs");
    println!(
        "  ratio actors/governor at p50       {:.1}",
        ours_p50 / gov_p50.max(0.001)
    );
    println!(
        "per HTTP request (median of {} sequential GET /api/v1/auth/keys each)",
        args.requests * 3
    );
    println!("  limits off {without_us:7.1} µs   limits on {with_us:7.1} µs   the limiter adds {:6.1} µs (target < 10 µs at p50)", with_us - without_us);
    println!("memory ({} distinct keys)", args.memory_keys);
    println!(
        "  buckets kept {held} (cap {cap}), resident set +{:.1} MiB, {:.0} bytes per bucket",
        after.saturating_sub(before) as f64 / (1024.0 * 1024.0),
        after.saturating_sub(before) as f64 / held.max(1) as f64
    );
    Ok(())
}
