//! `aurora bench-audit`: how fast the audit log rebuilds, against a raw read of the
//! events table on the same database in the same run, and how much memory it takes.
//!
//! A fresh Postgres database is filled with generated run events (server-side, so that
//! filling is quick), in two stages: a quarter of `--events`, then the rest. At each
//! stage it measures
//!
//! - **raw read**: every row of `events` in the log's order, `(xid, position)`, streamed
//!   with the columns the log reads (the floor any replay pays);
//! - **read + chain**: `AuditLog::replayed_head` — the rebuild's reads and hashing,
//!   writing nothing;
//! - **rebuild**: `AuditLog::rebuild` — read, redact, hash-chain, write a shadow table,
//!   index it, swap it in;
//! - **peak memory**: the process's resident set sampled every 20 ms during the rebuild,
//!   above what it was before.
//!
//! The ratio rebuild ÷ raw read is the figure to watch (target ≥ 0.3), and peak memory at
//! the two stages shows whether memory grows with the number of events (it should not).
//! It prints figures; it asserts nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aurora_projections::audit::AuditLog;
use aurora_projections::{testkit, Database};
use clap::Args;
use futures::TryStreamExt;

/// Options of `aurora bench-audit`.
#[derive(Debug, Clone, Args)]
pub struct BenchAuditArgs {
    /// Events in the store at the end (a quarter of them at the first stage).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: i64,
    /// The Postgres server to create the benchmark's database on.
    #[arg(
        long,
        env = "AURORA_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub server_url: String,
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Appends events `from..to` (five per run: requested, started, two progress, cancelled).
async fn generate(db: &Database, from: i64, to: i64) -> anyhow::Result<()> {
    let Database::Postgres(pool) = db else {
        anyhow::bail!("the benchmark runs on Postgres")
    };
    const CHUNK: i64 = 100_000;
    let mut start = from;
    while start < to {
        let end = (start + CHUNK).min(to);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) \
             SELECT 'run', 'run-' || (g / 5), (g % 5) + 1, \
                    (ARRAY['RunRequested','StepStarted','StepProgressed','StepProgressed','RunCancelled'])[(g % 5) + 1], \
                    '1', \
                    CASE g % 5 \
                      WHEN 0 THEN json_build_object('RunRequested', json_build_object( \
                          'run_id', 'run-' || (g / 5), 'owner', 'user-' || (g % 997), \
                          'input', json_build_object('url', 'https://media.example/' || g || '.mov'), \
                          'steps', json_build_array(json_build_object('kind', 'probe'), \
                              json_build_object('kind', 'transcode', 'format', 'webm', \
                                  'quality', 'high', 'resolution', '1080p')))) \
                      WHEN 1 THEN json_build_object('StepStarted', json_build_object( \
                          'step', 0, 'attempt', 1, 'executor', 'replica-a')) \
                      WHEN 4 THEN json_build_object('RunCancelled', json_build_object( \
                          'reason', 'benchmark')) \
                      ELSE json_build_object('StepProgressed', json_build_object( \
                          'step', 0, 'attempt', 1, 'percent', (g % 5) * 25)) \
                    END, \
                    json_build_object('principal', 'user-' || (g % 997), \
                        'request_id', md5(g::text), 'token_id', 'tok-' || (g % 997), \
                        'client_ip', '10.0.' || (g % 250) || '.' || (g % 199), \
                        'role', 'user', \
                        'time', to_char(timestamp '2026-01-01' + g * interval '1 second', \
                                        'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) \
             FROM generate_series($1::bigint, $2::bigint - 1) AS g",
        )
        .bind(start)
        .bind(end)
        .execute(pool)
        .await?;
        start = end;
    }
    Ok(())
}

/// Streams every row of `events` in the log's order; returns events per second.
async fn raw_read(db: &Database) -> anyhow::Result<(u64, f64)> {
    let Database::Postgres(pool) = db else {
        anyhow::bail!("the benchmark runs on Postgres")
    };
    let started = Instant::now();
    let mut rows = sqlx::query_as::<
        _,
        (
            i64,
            i64,
            String,
            String,
            i64,
            String,
            String,
            String,
            String,
        ),
    >(
        "SELECT xid::text::bigint, position, aggregate_type, aggregate_id, sequence, \
         event_type, event_version, payload::text, metadata::text FROM events \
         ORDER BY events.xid, events.position",
    )
    .fetch(pool);
    let (mut count, mut bytes) = (0_u64, 0_usize);
    while let Some(row) = rows.try_next().await? {
        count += 1;
        bytes += row.7.len() + row.8.len();
    }
    std::hint::black_box(bytes);
    Ok((count, count as f64 / started.elapsed().as_secs_f64()))
}

/// One stage's figures.
struct Stage {
    events: u64,
    raw_rate: f64,
    chain_rate: f64,
    rebuild_rate: f64,
    peak_extra_mib: f64,
}

async fn stage(db: &Database) -> anyhow::Result<Stage> {
    let (events, raw_rate) = raw_read(db).await?;
    let log = AuditLog::new(db.clone());
    // Read and chain, writing nothing: what the rebuild's writes add is the difference.
    let started = Instant::now();
    log.replayed_head().await?;
    let chain_rate = events as f64 / started.elapsed().as_secs_f64();
    let before = rss_bytes();
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let started = Instant::now();
    let rebuilt = log.rebuild(|_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
    sampling.abort();
    anyhow::ensure!(rebuilt.events == events, "the rebuild covered every event");
    let verdict = log.verify().await?;
    anyhow::ensure!(verdict.finding.is_none(), "the rebuilt chain verifies");
    Ok(Stage {
        events,
        raw_rate,
        chain_rate,
        rebuild_rate: rebuilt.events as f64 / seconds,
        peak_extra_mib: peak.load(Ordering::Relaxed).saturating_sub(before) as f64 / 1048576.0,
    })
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: BenchAuditArgs) -> anyhow::Result<()> {
    let url = testkit::create_database(&args.server_url, testkit::TEST_DATABASE_PREFIX)
        .await
        .context("creating the benchmark's database")?;
    // Dropped with `scratch`, on an error too.
    let scratch = testkit::TempDir::new()?;
    scratch.drop_database_with_it(&args.server_url, &url);
    let db = Database::postgres(&url, 8).await?;
    db.migrate().await?;
    let first = args.events / 4;
    let mut stages = Vec::new();
    for (from, to) in [(0, first), (first, args.events)] {
        let filling = Instant::now();
        generate(&db, from, to).await?;
        sqlx::query("ANALYZE events")
            .execute(match &db {
                Database::Postgres(pool) => pool,
                Database::Sqlite(_) => unreachable!("Postgres only"),
            })
            .await?;
        eprintln!(
            "{} events stored in {:.1} s",
            to,
            filling.elapsed().as_secs_f64()
        );
        let s = stage(&db).await?;
        println!(
            "{:>9} events: raw read {:>9.0} events/s, read+chain {:>8.0} events/s, \
             rebuild {:>8.0} events/s, ratio {:.3}; peak memory +{:.1} MiB",
            s.events,
            s.raw_rate,
            s.chain_rate,
            s.rebuild_rate,
            s.rebuild_rate / s.raw_rate,
            s.peak_extra_mib
        );
        stages.push(s);
    }
    db.close().await;
    drop(scratch);
    if let [small, large] = stages.as_slice() {
        println!(
            "events ×{:.1} → peak memory ×{:.2} (flat in the number of events if close to 1)",
            large.events as f64 / small.events as f64,
            large.peak_extra_mib.max(0.1) / small.peak_extra_mib.max(0.1)
        );
    }
    Ok(())
}
