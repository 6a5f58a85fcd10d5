//! Maintenance subcommands: `aurora projections rebuild`, `aurora audit verify`,
//! `aurora replay verify`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use aurora_projections::audit::{AuditEntry, AuditLog, RebuildProgress, Verification, Verifier};
use aurora_projections::{replay, Database, RunsProjection, UsersProjection};

use crate::anchor;
use crate::config::Config;
use crate::startup::connect_database;

/// Which read model to rebuild.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Projection {
    /// The audit log behind GET /api/v1/audit (replayed into a shadow table, swapped in).
    AuditLog,
    /// The runs view behind GET /api/v1/runs (replayed into a shadow table, swapped in).
    Runs,
    /// The users view behind GET /api/v1/users (each user refreshed in place).
    Users,
}

/// A progress bar on stderr: redrawn in place on a terminal, a line a second otherwise.
struct ProgressLine {
    rate: Rate,
    terminal: bool,
    last: Option<Instant>,
}

impl ProgressLine {
    fn new() -> Self {
        Self {
            rate: Rate::default(),
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, progress: RebuildProgress) {
        let due = self.last.is_none_or(|t| {
            t.elapsed() >= Duration::from_millis(if self.terminal { 100 } else { 1000 })
        });
        if !due && progress.done < progress.total {
            return;
        }
        self.last = Some(Instant::now());
        let line = self.rate.line(progress);
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r{line}")
        } else {
            writeln!(err, "{line}")
        };
    }

    fn done(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// Rebuilds `projection` from the event store while Aurora keeps serving.
pub async fn rebuild(db: Database, projection: Projection) -> anyhow::Result<serde_json::Value> {
    let mut bar = ProgressLine::new();
    let started = Instant::now();
    let report = match projection {
        Projection::AuditLog => {
            let rebuilt = AuditLog::new(db).rebuild(|p| bar.show(p)).await?;
            serde_json::to_value(&rebuilt)?
        }
        Projection::Runs => {
            let runs = RunsProjection::new(db);
            let events = runs.rebuild(5000, |p| bar.show(p)).await?;
            serde_json::json!({"events": events, "digest": runs.digest().await?})
        }
        Projection::Users => {
            let users = UsersProjection::new(db).rebuild().await?;
            serde_json::json!({"users": users})
        }
    };
    bar.done();
    let seconds = started.elapsed().as_secs_f64();
    Ok(
        serde_json::json!({"projection": format!("{projection:?}"), "seconds": seconds, "report": report}),
    )
}

/// Checks the audit log in the database three ways, and reports the first finding:
/// 1. its hash chain, up to the head its checkpoint recorded ([`AuditLog::verify`]);
/// 2. the store replayed against it, entry by entry (a rewritten event);
/// 3. every chain head signed and published outside the database: each signature with the
///    audit key's public half, and that the log holds each signed entry with its hash (a
///    cut, re-chained or re-checkpointed log).
///
/// The report: the chain's `entries` and `head`, `anchors` (published heads, the last
/// one signed, the key), and `finding`.
pub async fn verify_anchored(
    config: &Config,
    public_keys: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let keys = match public_keys {
        Some(list) => list
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(anchor::parse_public_key)
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => {
            let (dir, _) = config.audit_key();
            vec![anchor::AnchorKey::load(&dir, false)
                .context("the audit key signs the published heads; give its public half with --audit-public-key")?
                .public()]
        }
    };
    anyhow::ensure!(!keys.is_empty(), "no audit public key given");
    let db = connect_database(config).await?;
    let log = AuditLog::new(db);
    let mut verdict = log.verify().await?;
    if verdict.finding.is_none() {
        verdict.finding = log.compare_with_store().await?;
    }
    let bus = crate::startup::connect_bus(config).await?;
    let heads =
        anchor::HeadStore::existing(&config.data_dir, bus.nats_client(), &config.nats_prefix);
    // Entries older than three publication intervals and a minute must be under a head.
    let grace = Duration::from_secs(config.audit_anchor_seconds * 3 + 60);
    let anchors = anchor::check(&log, &heads, &keys, grace).await?;
    if verdict.finding.is_none() {
        verdict.finding = anchors.finding.clone();
    }
    let mut report = serde_json::to_value(&verdict)?;
    report["anchors"] = serde_json::json!({
        "published_heads": anchors.heads,
        "unsigned_heads": anchors.unsigned,
        "first_signed": anchors.first_signed,
        "last_signed": anchors.last_signed,
        "store_created": anchors.store_created,
        "public_keys": keys.iter().map(anchor::public_key_hex).collect::<Vec<_>>(),
    });
    Ok(report)
}

/// Checks an export's chain, line by line. A line that is not an entry is an error.
pub fn verify_export(path: &std::path::Path, selection: bool) -> anyhow::Result<Verification> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    verify_lines(std::io::BufReader::new(file), selection)
}

/// Checks a chain given as NDJSON lines: a stretch (an export of a time range starts
/// mid-chain) link by link, a selection entry by entry.
pub fn verify_lines(reader: impl BufRead, selection: bool) -> anyhow::Result<Verification> {
    let mut verifier = if selection {
        Verifier::selection()
    } else {
        Verifier::part()
    };
    for (n, line) in reader.lines().enumerate() {
        let line = line.context("reading the export")?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: AuditEntry = serde_json::from_str(&line)
            .with_context(|| format!("line {} is not an audit entry", n + 1))?;
        if !verifier.push(entry) {
            break;
        }
    }
    Ok(verifier.finish())
}

/// Loads every aggregate with today's code.
pub async fn replay_verify(db: &Database) -> anyhow::Result<replay::ReplayReport> {
    let mut last = Instant::now();
    let report = replay::verify(db, |report| {
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            eprintln!(
                "{} events, {} aggregates, {} failures so far",
                report.events,
                report.aggregates,
                report.failures.len()
            );
        }
    })
    .await?;
    Ok(report)
}

/// Speed of a rebuild, for the CLI's progress line.
struct Rate {
    started: Instant,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl Rate {
    /// `done/total`, events per second and time remaining, as one line.
    fn line(&self, progress: RebuildProgress) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-6);
        let rate = progress.done as f64 / elapsed;
        let total = progress.total.max(progress.done);
        let left = if rate > 0.0 {
            (total - progress.done) as f64 / rate
        } else {
            0.0
        };
        let width = 30;
        let filled = if total == 0 {
            width
        } else {
            (progress.done as usize * width) / total as usize
        };
        format!(
            "[{}{}] {}/{} events  {:.0} events/s  {:.0} s left",
            "#".repeat(filled),
            ".".repeat(width - filled),
            progress.done,
            total,
            rate,
            left
        )
    }
}
