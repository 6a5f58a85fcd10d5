//! The checker: once the faults stop and everything is healed, it waits for the system to
//! settle, then checks what the clients were told against the store, the stream, the read
//! models, the audit log and the disk. Each broken invariant is a violation.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use aurora_nats::EventBus;
use aurora_projections::{Cursor, Database};
use futures::StreamExt;

use super::cluster::Cluster;
use super::sabotage::Sabotage;
use super::workload::History;

/// Longest the system may take to settle after the faults stop.
const SETTLE: Duration = Duration::from_secs(240);

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    /// Events stored.
    pub stored: usize,
    /// Runs by final status.
    pub runs: HashMap<String, usize>,
    /// Supervisor restarts (actors, projections, limit shards), summed over the replicas'
    /// last lives.
    pub restarts: u64,
    /// Escalations.
    pub escalations: u64,
    /// Tools the janitors killed and partial files they removed (last lives).
    pub janitor: u64,
    /// Seconds the system took to settle.
    pub settled_in: f64,
    /// Broken invariants.
    pub violations: Vec<String>,
    /// What the harness broke on purpose before checking (`--sabotage`).
    pub sabotaged: Vec<String>,
}

/// Settles `cluster` and checks `history` against it.
pub async fn check(
    cluster: &mut Cluster,
    history: &History,
    aurora: &Path,
    sabotage: &[Sabotage],
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let db = Database::postgres(&cluster.database_url, 4).await?;
    let started = Instant::now();
    let deadline = started + SETTLE;

    // 1. Every acknowledged run ends.
    let mut unfinished: Vec<String> = history.runs.clone();
    let mut said = Instant::now();
    while !unfinished.is_empty() && Instant::now() < deadline {
        if said.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "settling: {} acknowledged runs not ended yet",
                unfinished.len()
            );
            said = Instant::now();
        }
        let mut still = Vec::new();
        for id in &unfinished {
            if final_status(&db, id).await?.is_none() {
                still.push(id.clone());
            }
        }
        unfinished = still;
        if !unfinished.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    for id in &unfinished {
        report
            .violations
            .push(format!("acknowledged run {id} never ended"));
    }
    // 2. The relay publishes everything; the read models catch up; the janitors clear.
    let stored_count = || async {
        Ok::<_, anyhow::Error>(db.read_after(Cursor::default(), i64::MAX).await?.len())
    };
    let mut said = Instant::now();
    loop {
        let stored = stored_count().await?;
        let streamed = stream_messages(cluster).await.unwrap_or(0);
        let lags = lags(cluster).await;
        let leftovers = leftovers(&cluster.artifacts);
        if streamed >= stored && lags == Some(0) && leftovers.is_empty() {
            break;
        }
        if said.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "settling: {stored} events stored, {streamed} in the stream, read models \
                 behind by {lags:?}, {} left on disk",
                leftovers.len()
            );
            said = Instant::now();
        }
        if Instant::now() > deadline {
            report.violations.push(format!(
                "the system did not settle within {SETTLE:?}: {stored} events stored, \
                 {streamed} in the stream, read models behind by {lags:?}, left on disk: \
                 {leftovers:?}"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.settled_in = started.elapsed().as_secs_f64();
    for base in cluster.replicas.iter().map(|r| r.base()) {
        if let Some(metrics) = metrics(&base).await {
            report.restarts += sum(&metrics, "restarts_total");
            report.escalations += sum(&metrics, "escalations_total");
            report.janitor += sum(&metrics, "janitor_cleared_total");
        }
    }
    for replica in &mut cluster.replicas {
        replica.stop(Duration::from_secs(20)).await;
    }
    for kind in sabotage {
        report.sabotaged.push(kind.apply(cluster, history).await?);
    }

    // 3. Every acknowledged command is in the store, once.
    let stored = db.read_after(Cursor::default(), i64::MAX).await?;
    report.stored = stored.len();
    let named = |aggregate: &str, name: &str| {
        stored
            .iter()
            .filter(|e| e.aggregate_type == aggregate && e.event_type == name)
            .collect::<Vec<_>>()
    };
    let mut requested: HashMap<&str, usize> = HashMap::new();
    for event in named("run", "RunRequested") {
        *requested.entry(event.aggregate_id.as_str()).or_default() += 1;
    }
    for id in &history.runs {
        match requested.get(id.as_str()) {
            Some(1) => {}
            n => report.violations.push(format!(
                "acknowledged run {id} requested {n:?} times in the store"
            )),
        }
    }
    let cancelled: HashSet<&str> = named("run", "RunCancelled")
        .iter()
        .map(|e| e.aggregate_id.as_str())
        .collect();
    for id in &history.cancels {
        if !cancelled.contains(id.as_str()) {
            report.violations.push(format!(
                "acknowledged cancellation of run {id} is not in the store"
            ));
        }
    }
    let registered: HashSet<&str> = named("user", "UserRegistered")
        .iter()
        .filter_map(|e| e.payload["UserRegistered"]["user_id"].as_str())
        .collect();
    for id in &history.users {
        if !registered.contains(id.as_str()) {
            report.violations.push(format!(
                "acknowledged registration of user {id} is not in the store"
            ));
        }
    }
    let payload_ids = |name: &str, field: &str| -> HashSet<String> {
        named("user", name)
            .iter()
            .filter_map(|e| {
                let value = &e.payload[name];
                value[field]
                    .as_str()
                    .or_else(|| value["token"][field].as_str())
                    .map(str::to_string)
            })
            .collect()
    };
    let keys = payload_ids("ApiKeyCreated", "token_id");
    for id in &history.keys {
        if !keys.contains(id) {
            report
                .violations
                .push(format!("acknowledged API key {id} is not in the store"));
        }
    }
    let revoked = payload_ids("TokenRevoked", "token_id");
    for (id, honoured) in &history.revocations {
        if !revoked.contains(id) {
            report.violations.push(format!(
                "acknowledged revocation of {id} is not in the store"
            ));
        }
        if let Some((after, replica)) = honoured {
            report.violations.push(format!(
                "revoked key {id} was honoured by {replica} {after:?} after its revocation \
                 was acknowledged"
            ));
        }
    }

    // 4. Every run ended once, with one output per step.
    let mut by_run: HashMap<&str, Vec<&aurora_projections::StoredEvent>> = HashMap::new();
    for event in stored.iter().filter(|e| e.aggregate_type == "run") {
        by_run
            .entry(event.aggregate_id.as_str())
            .or_default()
            .push(event);
    }
    for (id, events) in &by_run {
        let ends: Vec<&str> = events
            .iter()
            .map(|e| e.event_type.as_str())
            .filter(|t| matches!(*t, "RunSucceeded" | "RunFailed" | "RunCancelled"))
            .collect();
        if ends.len() != 1 {
            report
                .violations
                .push(format!("run {id} ended {} times: {ends:?}", ends.len()));
            continue;
        }
        *report.runs.entry(ends[0].to_string()).or_default() += 1;
        let mut outputs: HashMap<u64, usize> = HashMap::new();
        for event in events.iter().filter(|e| e.event_type == "StepSucceeded") {
            let step = event.payload["StepSucceeded"]["step"]
                .as_u64()
                .unwrap_or(u64::MAX);
            *outputs.entry(step).or_default() += 1;
        }
        if let Some((step, n)) = outputs.iter().find(|(_, n)| **n != 1) {
            report
                .violations
                .push(format!("run {id}: step {step} succeeded {n} times"));
        }
        let mut files: HashMap<u64, usize> = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(cluster.artifacts.join("runs").join(id)) {
            for name in entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
            {
                if let Some(step) = name
                    .strip_prefix("step-")
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    *files.entry(step).or_default() += 1;
                }
            }
        }
        if let Some((step, n)) = files.iter().find(|(_, n)| **n > 1) {
            report
                .violations
                .push(format!("run {id}: {n} files for step {step}"));
        }
        if ends[0] == "RunSucceeded" {
            for step in outputs.keys().filter(|s| **s > 0) {
                if files.get(step) != Some(&1) {
                    report.violations.push(format!(
                        "run {id} succeeded without the file of step {step}"
                    ));
                }
            }
        }
    }

    // 5. The stream holds every stored event exactly once.
    match stream_ids(cluster, stored.len()).await {
        Ok(ids) => {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for id in &ids {
                *seen.entry(id.as_str()).or_default() += 1;
            }
            let twice = seen.values().filter(|n| **n > 1).count();
            if twice > 0 {
                report
                    .violations
                    .push(format!("{twice} events twice in the stream"));
            }
            let missing: Vec<String> = stored
                .iter()
                .map(|e| e.to_cloud_event().id)
                .filter(|id| !seen.contains_key(id.as_str()))
                .take(5)
                .collect();
            if !missing.is_empty() {
                report.violations.push(format!(
                    "stored events missing from the stream, e.g. {missing:?}"
                ));
            }
            if ids.len() != stored.len() {
                report.violations.push(format!(
                    "{} messages in the stream for {} stored events",
                    ids.len(),
                    stored.len()
                ));
            }
        }
        Err(error) => report
            .violations
            .push(format!("the stream could not be read: {error:#}")),
    }

    // 6. Every read model equals its rebuild; the audit log verifies. A history that
    // cannot even be replayed is a violation too.
    if let Err(error) = read_models(&db, stored.len(), &mut report.violations).await {
        report
            .violations
            .push(format!("the store could not be replayed: {error:#}"));
    }
    let verify = tokio::process::Command::new(aurora)
        .args(["audit", "verify"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(cluster.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("DATABASE_URL", &cluster.database_url)
        .env("NATS_URL", cluster.nats.url())
        .output()
        .await
        .context("running aurora audit verify")?;
    if !verify.status.success() {
        report.violations.push(format!(
            "aurora audit verify failed: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        ));
    }
    db.close().await;
    Ok(report)
}

/// A run's final event in the store, if it has ended.
async fn final_status(db: &Database, id: &str) -> anyhow::Result<Option<String>> {
    let events = db.read_aggregate_after("run", id, 0).await?;
    Ok(events
        .iter()
        .map(|e| e.event_type.clone())
        .find(|t| matches!(t.as_str(), "RunSucceeded" | "RunFailed" | "RunCancelled")))
}

/// Holds each read model to its rebuild and the audit log to a replay of `stored` events.
async fn read_models(
    db: &Database,
    stored: usize,
    violations: &mut Vec<String>,
) -> anyhow::Result<()> {
    let runs = aurora_projections::RunsProjection::new(db.clone());
    let live = runs.digest().await?;
    runs.rebuild(64, |_| {}).await?;
    if live != runs.digest().await? {
        violations.push("the live runs view differs from its rebuild".into());
    }
    let users = aurora_projections::UsersProjection::new(db.clone());
    let live = users.list(None, 100_000).await?;
    users.rebuild().await?;
    if live != users.list(None, 100_000).await? {
        violations.push("the live users view differs from its rebuild".into());
    }
    let audit = aurora_projections::AuditLog::new(db.clone());
    let head = audit.head().await?;
    if head.as_ref().map(|h| h.seq) != Some(stored as i64) {
        violations.push(format!(
            "{stored} events stored, the audit log ends at {head:?}"
        ));
    }
    if head != audit.replayed_head().await? {
        violations.push("the live audit head differs from a replay".into());
    }
    Ok(())
}

/// Messages in the event stream now.
async fn stream_messages(cluster: &Cluster) -> anyhow::Result<usize> {
    let client = async_nats::connect(cluster.nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    let name = aurora_nats::Subjects::new(cluster.prefix.clone()).stream();
    let mut stream = js.get_stream(&name).await?;
    Ok(stream.info().await?.state.messages as usize)
}

/// The ids of the events in the stream, read from its start.
async fn stream_ids(cluster: &Cluster, expected: usize) -> anyhow::Result<Vec<String>> {
    let subjects = aurora_nats::Subjects::new(cluster.prefix.clone());
    let filter = subjects.all_events();
    let bus =
        aurora_nats::jetstream::JetStreamBus::connect(&cluster.nats.url(), subjects, 1).await?;
    let mut deliveries = bus.consume("chaos-checker", &filter).await?;
    let total = stream_messages(cluster).await?.max(expected);
    let mut ids = Vec::with_capacity(total);
    while ids.len() < total {
        let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_secs(10), deliveries.next()).await
        else {
            break;
        };
        let delivery = delivery?;
        ids.push(delivery.event.id.clone());
        delivery.ack().await?;
    }
    Ok(ids)
}

/// The largest read-model lag any replica reports (`None`: none answered).
async fn lags(cluster: &Cluster) -> Option<i64> {
    let mut worst = None;
    for replica in &cluster.replicas {
        let Ok(response) = reqwest::get(format!("{}/health", replica.base())).await else {
            continue;
        };
        let Ok(health) = response.json::<serde_json::Value>().await else {
            continue;
        };
        let projections = &health["services"]["projections"]["projections"];
        let lag = projections
            .as_object()?
            .values()
            .map(|p| p["lag"].as_i64().unwrap_or(i64::MAX))
            .max()
            .unwrap_or(0);
        worst = Some(worst.map_or(lag, |w: i64| w.max(lag)));
    }
    worst
}

/// ffmpeg processes working on the artifacts and partial files in them.
pub fn leftovers(artifacts: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let needle = artifacts.display().to_string();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text
                .split(' ')
                .next()
                .is_some_and(|a| a.ends_with("ffmpeg"))
                && text.contains(&needle)
            {
                found.push(format!(
                    "ffmpeg pid {}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    let mut pending = vec![artifacts.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "part") {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

async fn metrics(base: &str) -> Option<String> {
    reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// The sum of every sample of metrics whose name ends with `suffix`.
fn sum(metrics: &str, suffix: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let name = name.split('{').next()?;
            name.ends_with(suffix).then(|| value.parse::<f64>().ok())?
        })
        .map(|v| v as u64)
        .sum()
}
