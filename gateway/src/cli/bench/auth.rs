//! `aurora bench-auth`: what authorization costs per request, in µs.
//!
//! An embedded Aurora (SQLite under a temporary dir, in-process bus) is started, and one
//! client sends requests one after another over a kept-alive connection, so that each
//! figure is the server's work per request plus a constant loopback round trip:
//!
//! - **baseline**: `GET /api/v1/auth/keys`, the same filter chain (request context,
//!   JSON reply) without a token or the store;
//! - **cache hit**: `GET /api/v1/auth/whoami` with one token — verified once, then served
//!   from the verified-token cache (revocation check and Datalog authorization still run);
//! - **cache miss**: the same route with a fresh token every request (parse, signature
//!   check, then authorization).
//!
//! The phases are interleaved for several rounds and the medians compared: authorization
//! costs `hit − baseline` and `miss − baseline`. A hit repeats one access, so it is also
//! served by the per-second decision memo (see `Tokens::authorize`); the in-process line
//! "Datalog run" shows a cached token whose decision must be computed. In-process timings of `verify` +
//! `authorize` alone are printed beside them. It prints figures; it asserts nothing.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{ensure, Context};
use aurora_domain::user::{Role, Tier, TokenKind};
use aurora_projections::testkit::TempDir;
use clap::Args;

use crate::auth::tokens::Access;
use crate::config::Config;
use crate::startup::Application;

/// Options of `aurora bench-auth`.
#[derive(Debug, Clone, Args)]
pub struct AuthBenchArgs {
    /// Requests per phase per round.
    #[arg(long, default_value_t = 5000)]
    pub requests: usize,
    /// Rounds (each runs every phase once; medians over all rounds are reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// Median of `samples` in µs.
pub(crate) fn median_us(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

/// Times `requests` sequential GETs of `path`, the n-th with `token(n)` if any.
pub(crate) async fn phase(
    client: &reqwest::Client,
    url: &str,
    requests: usize,
    token: impl Fn(usize) -> Option<String>,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(requests);
    for n in 0..requests {
        let mut request = client.get(url);
        if let Some(token) = token(n) {
            request = request.bearer_auth(token);
        }
        let began = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        response.bytes().await?;
        latencies.push(began.elapsed());
        ensure!(status.is_success(), "GET {url} answered {status}");
    }
    Ok(latencies)
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: AuthBenchArgs) -> anyhow::Result<()> {
    let dir = TempDir::new().context("creating a temporary data dir")?;
    let app = Application::build(Config::embedded(dir.path())).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let tokens = &state.identity.tokens;
    let mint = || {
        tokens.mint(
            TokenKind::Session,
            "bench",
            Role::User,
            Tier::Free,
            SystemTime::now(),
            Duration::from_secs(3600),
        )
    };
    let hot = mint()?.token;
    let fresh: Vec<String> = (0..args.requests * args.rounds + 100)
        .map(|_| mint().map(|m| m.token))
        .collect::<Result<_, _>>()?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let live = format!("{base}/api/v1/auth/keys");
    let whoami = format!("{base}/api/v1/auth/whoami");
    // Warm-up: connections, caches, allocator.
    phase(&client, &live, 500, |_| None).await?;
    phase(&client, &whoami, 500, |_| Some(hot.clone())).await?;

    let (mut baseline, mut hit, mut miss) = (Vec::new(), Vec::new(), Vec::new());
    let mut next = 100;
    for _ in 0..args.rounds {
        baseline.extend(phase(&client, &live, args.requests, |_| None).await?);
        hit.extend(phase(&client, &whoami, args.requests, |_| Some(hot.clone())).await?);
        let start = next;
        miss.extend(
            phase(&client, &whoami, args.requests, |n| {
                Some(fresh[start + n].clone())
            })
            .await?,
        );
        next += args.requests;
    }
    let (baseline, hit, miss) = (
        median_us(&mut baseline),
        median_us(&mut hit),
        median_us(&mut miss),
    );

    // In-process: verify + authorize alone.
    let access = Access::own("users:read");
    let mut direct_hit = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let began = Instant::now();
        let token = tokens.verify(&hot)?;
        tokens.authorize(&token, access, SystemTime::now())?;
        direct_hit.push(began.elapsed());
    }
    // The token cached, but its decision not: each call in another second (all within the
    // token's hour), so Datalog runs every time.
    let mut direct_datalog = Vec::with_capacity(args.requests);
    let start = SystemTime::now();
    for n in 0..args.requests {
        let at = start + Duration::from_secs(1 + (n % 3000) as u64);
        let began = Instant::now();
        let token = tokens.verify(&hot)?;
        tokens.authorize(&token, access, at)?;
        direct_datalog.push(began.elapsed());
    }
    let mut direct_miss = Vec::with_capacity(100);
    for token in &fresh[..100] {
        let began = Instant::now();
        let verified = tokens.verify(token)?;
        tokens.authorize(&verified, access, SystemTime::now())?;
        direct_miss.push(began.elapsed());
    }
    let (direct_hit, direct_datalog, direct_miss) = (
        median_us(&mut direct_hit),
        median_us(&mut direct_datalog),
        median_us(&mut direct_miss),
    );

    let samples = args.requests * args.rounds;
    println!("authorization cost per request ({samples} sequential requests per phase, medians)");
    println!("  baseline GET /api/v1/auth/keys (no token) {baseline:7.1} µs");
    println!(
        "  GET /api/v1/auth/whoami, cache hit       {hit:8.1} µs   authorization adds {:6.1} µs",
        hit - baseline
    );
    println!(
        "  GET /api/v1/auth/whoami, cache miss      {miss:8.1} µs   authorization adds {:6.1} µs",
        miss - baseline
    );
    println!("  in-process verify + authorize, hit       {direct_hit:8.1} µs");
    println!("  in-process, token cached, Datalog run    {direct_datalog:8.1} µs");
    println!("  in-process verify + authorize, miss      {direct_miss:8.1} µs");
    println!(
        "  ratio hit/baseline {:.2}, miss/baseline {:.2} (target: hit adds < 20 µs)",
        hit / baseline,
        miss / baseline
    );

    shutdown.cancel();
    server.await??;
    Ok(())
}
