//! `aurora bench`: commands/s and latency of `POST /api/v1/runs` against Postgres + NATS,
//! beside raw single-row insert transactions/s on the same database at the same
//! concurrency, measured in the same run. It prints figures; it asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aurora_nats::EventBus;
use aurora_projections::store::pg_pool_options;
use aurora_projections::testkit;
use clap::Args;

use crate::config::Config;
use crate::startup::Application;

/// Options of `aurora bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Postgres server to benchmark on; a fresh database is created there and dropped after.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// NATS server to benchmark on; a fresh stream is used.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Postgres connections in Aurora's pool (the raw baseline uses one per client).
    #[arg(long, default_value_t = 32)]
    pub db_connections: u32,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Unmeasured warm-up seconds before each phase.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
}

/// Throughput and latency of one phase.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Successful operations per second.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Successful operations.
    pub ok: usize,
    /// Failed operations.
    pub failed: usize,
}

const RUN_BODY: &str = r#"{"input":{"url":"https://media.example/bench.mov"},"steps":[{"kind":"probe"},{"kind":"transcode","format":"mp4","quality":"medium","resolution":"720p"},{"kind":"thumbnail","at_seconds":1.5}]}"#;

/// Runs `op` from `concurrency` workers: `warmup` unmeasured, then `measure`.
async fn load<F, Fut>(concurrency: usize, warmup: Duration, measure: Duration, op: F) -> Figures
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let start = Instant::now() + warmup;
    let end = start + measure;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let op = op.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let ok = op().await;
                if began >= start {
                    if ok {
                        latencies.push(began.elapsed());
                    } else {
                        failed += 1;
                    }
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for worker in workers {
        let (l, f) = worker.await.expect("bench worker panicked");
        latencies.extend(l);
        failed += f;
    }
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        per_second: latencies.len() as f64 / measure.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        ok: latencies.len(),
        failed,
    }
}

/// Runs the benchmark and prints the figures.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let database_url = testkit::create_database(&args.database_url, "aurora_bench_")
        .await
        .context("creating the bench database")?;
    // The database, the stream with every event the bench made and the data dir go with
    // `scratch`, on an error too.
    let scratch = testkit::TempDir::new()?;
    scratch.drop_database_with_it(&args.database_url, &database_url);
    let prefix = testkit::unique_prefix();
    scratch.delete_streams_with_it(&args.nats_url, &prefix);
    let mut config = Config::embedded(scratch.path());
    config.database_url = Some(database_url);
    config.nats_url = Some(args.nats_url.clone());
    config.nats_prefix = prefix;
    measure(&args, config).await
}

async fn measure(args: &BenchArgs, mut config: Config) -> anyhow::Result<()> {
    let warmup = Duration::from_secs(args.warmup_seconds);
    let duration = Duration::from_secs(args.seconds);
    config.db_max_connections = args.db_connections;
    config.environment = "bench".into();
    let database_url = config.database_url.clone().unwrap_or_default();
    let app = Application::build(config).await?;
    let state = app.state();
    let app_port = app.port();
    let url = format!("http://127.0.0.1:{app_port}/api/v1/runs");
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let token = bench_token(&format!("http://127.0.0.1:{}", app_port)).await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .default_headers(headers)
        .build()?;
    // Projection delays are counted from the measured phase on.
    let forget = state.projection_actors.clone().map(|statuses| {
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            statuses.forget_delays();
        })
    });
    let aurora = load(args.concurrency, warmup, duration, move || {
        let client = client.clone();
        let url = url.clone();
        async move {
            matches!(
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(RUN_BODY)
                    .send()
                    .await,
                Ok(response) if response.status() == reqwest::StatusCode::CREATED
            )
        }
    })
    .await;

    // Every command must reach the stream: time how long the relay needs to catch up.
    let stored = count_events(&state.db).await?;
    let caught_up = Instant::now();
    let bus = state.bus.shared();
    let in_stream = wait_for_stream(&*bus, stored, Duration::from_secs(60)).await?;
    let relay_catch_up = caught_up.elapsed();
    // Then every projection with a checkpoint: how long after the load stopped it had
    // applied every event it follows.
    let projections_caught_up = wait_for_projections(&state.db, Duration::from_secs(60)).await?;
    let projections_catch_up = caught_up.elapsed();
    if let Some(forget) = forget {
        forget.abort();
    }
    let delays: Vec<(&'static str, Option<Duration>, Option<Duration>)> =
        match &state.projection_actors {
            Some(statuses) => statuses
                .report()
                .into_keys()
                .map(|name| {
                    (
                        name,
                        statuses.delay_quantile(name, 0.5),
                        statuses.delay_quantile(name, 0.99),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
    shutdown.cancel();
    server.await??;

    let pool = Arc::new(
        pg_pool_options(args.concurrency as u32)
            .connect(&database_url)
            .await?,
    );
    sqlx::query("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, payload json NOT NULL)")
        .execute(&*pool)
        .await?;
    let raw = load(args.concurrency, warmup, duration, move || {
        let pool = pool.clone();
        async move {
            sqlx::query("INSERT INTO bench_raw (payload) VALUES ($1::json)")
                .bind(RUN_BODY)
                .execute(&*pool)
                .await
                .is_ok()
        }
    })
    .await;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\nAurora bench: {} concurrent clients, {}s measured after {}s warm-up\n",
        args.concurrency, args.seconds, args.warmup_seconds
    );
    println!("| measure | per second | p50 ms | p99 ms | ok | failed |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, f) in [
        ("POST /api/v1/runs (Aurora, Postgres + NATS)", &aurora),
        ("raw single-row INSERT transactions (same database)", &raw),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} | {} |",
            f.per_second,
            ms(f.p50),
            ms(f.p99),
            f.ok,
            f.failed
        );
    }
    println!(
        "\nratio Aurora commands/s ÷ raw inserts/s = {:.2} (target ≥ 0.6)",
        aurora.per_second / raw.per_second
    );
    println!(
        "p99 at {} clients = {:.2} ms (target < 20 ms)",
        args.concurrency,
        ms(aurora.p99)
    );
    println!(
        "relay: {in_stream} of {stored} stored events in the stream, {:.0} ms after the load stopped",
        ms(relay_catch_up)
    );
    println!(
        "projections: {} {:.0} ms after the load stopped (target: within 1 s)",
        if projections_caught_up {
            "every one caught up"
        } else {
            "NOT all caught up within 60 s"
        },
        ms(projections_catch_up)
    );
    println!("\n| projection | delay p50 ms | delay p99 ms (target < 100) |");
    println!("|---|---:|---:|");
    let shown = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1}", ms(d)));
    for (name, p50, p99) in delays {
        println!("| {name} | {} | {} |", shown(p50), shown(p99));
    }
    println!(
        "(delay: from a command's acceptance to its event applied by the projection, \
         measured phase only)"
    );
    Ok(())
}

/// Waits until every projection with a checkpoint has no lag; whether they all got there.
async fn wait_for_projections(
    db: &aurora_projections::Database,
    limit: Duration,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        let lags = aurora_projections::lag::lags(db).await?;
        if lags.iter().all(|lag| lag.lag == 0) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Registers a bench user and logs in: every command is authorized, as in production.
async fn bench_token(base: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let credentials = serde_json::json!({"username": "bench", "password": "bench password"});
    client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&credentials)
        .send()
        .await?
        .error_for_status()?;
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&credentials)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    login["token"]
        .as_str()
        .map(str::to_string)
        .context("login answered without a token")
}

async fn count_events(db: &aurora_projections::Database) -> anyhow::Result<u64> {
    let count = db.count_through(aurora_projections::Cursor {
        xid: i64::MAX,
        position: i64::MAX,
    });
    Ok(count.await? as u64)
}

async fn wait_for_stream(bus: &dyn EventBus, want: u64, limit: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + limit;
    loop {
        let messages = bus.state().await?.messages;
        if messages >= want || Instant::now() >= deadline {
            return Ok(messages);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
