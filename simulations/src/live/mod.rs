//! The live chaos harness: three real `aurora serve` replicas on one Postgres database and
//! one nats-server (Aurora's production configuration), each server behind a proxy of the
//! harness's own; clients drive a workload while the nemesis kills, freezes, restarts,
//! deletes, delays, partitions and cuts; then the checker settles the system and checks
//! the history against the store, the stream, the read models and the disk.
//!
//! Run it with `scripts/chaos --seed 7 --minutes 5` (see `docs/chaos.md`).
//!
//! - [`cluster`]: the system under test, and what the nemesis does to it.
//! - [`proxy`]: the TCP proxies (pass, delay, partition, cut).
//! - [`servers`]: nats-server and replica processes.
//! - [`workload`]: the clients and what they were told.
//! - [`nemesis`]: the faults, on a seeded schedule.
//! - [`checker`]: the invariants, checked after the faults stop.

pub mod checker;
pub mod cluster;
pub mod nemesis;
pub mod proxy;
pub mod sabotage;
pub mod servers;
pub mod workload;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub use cluster::Cluster;
use proxy::Proxy;
use servers::{Nats, Replica};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed of the workload and the schedule.
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// Replicas.
    pub replicas: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// The `aurora` binary.
    pub aurora: PathBuf,
    /// nats-server (≥ 2.10: `sync_interval`).
    pub nats_server: PathBuf,
    /// Aurora's production NATS configuration.
    pub nats_config: PathBuf,
    /// A Postgres server URL databases can be created on.
    pub postgres: String,
    /// A shell command that restarts the Postgres server (the fault is drawn only if set).
    pub postgres_restart: Option<String>,
    /// Where the runs' files, logs and the NATS store go.
    pub dir: PathBuf,
    /// Only faults whose kind contains one of these (all when empty).
    pub only: Vec<String>,
    /// Breaks the history on purpose before the checker looks (see [`sabotage`]).
    pub sabotage: Vec<sabotage::Sabotage>,
}

/// The outcome of a run.
pub struct Outcome {
    /// What the clients were told.
    pub history: workload::History,
    /// What the nemesis did.
    pub nemesis: nemesis::Record,
    /// What the checker found.
    pub report: checker::Report,
}

/// Starts everything, runs the workload under the nemesis for `options.duration`, and
/// checks.
pub async fn run(options: &Options) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&options.dir)?;
    let database_url =
        aurora_projections::testkit::create_database(&options.postgres, "aurora_t_chaos_")
            .await
            .context("creating the database")?;
    let result = run_on(options, &database_url).await;
    // Kept for a look when something broke, unless the harness broke it itself.
    if result
        .as_ref()
        .is_ok_and(|o| o.report.violations.is_empty() || !options.sabotage.is_empty())
    {
        let _ = aurora_projections::testkit::drop_database(&options.postgres, &database_url).await;
    }
    result
}

async fn run_on(options: &Options, database_url: &str) -> anyhow::Result<Outcome> {
    let nats = Nats::start(&options.nats_server, &options.nats_config, &options.dir).await?;
    let postgres_address = address_of(database_url)?;
    let postgres_proxy = Proxy::start(postgres_address.clone()).await?;
    let nats_proxy = Proxy::start(format!("127.0.0.1:{}", nats.port)).await?;
    let proxied_database = database_url.replacen(
        &postgres_address,
        &format!("127.0.0.1:{}", postgres_proxy.port),
        1,
    );
    let prefix = format!("chaos{}", options.seed);
    let artifacts = options.dir.join("artifacts");
    let ack_wait = Duration::from_secs(3);
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", proxied_database),
        ("NATS_URL", format!("nats://127.0.0.1:{}", nats_proxy.port)),
        ("AURORA_NATS_PREFIX", prefix.clone()),
        (
            "AURORA_ROOT_KEYS_DIR",
            options.dir.join("keys").display().to_string(),
        ),
        (
            "AURORA_AUDIT_KEY_DIR",
            options.dir.join("audit-keys").display().to_string(),
        ),
        ("AURORA_ARTIFACTS_DIR", artifacts.display().to_string()),
        (
            "AURORA_RUN_ACK_WAIT_SECONDS",
            ack_wait.as_secs().to_string(),
        ),
        ("AURORA_RETRY_BACKOFF_MS", "200".into()),
        ("AURORA_MAX_ATTEMPTS", "10".into()),
        ("AURORA_SWEEP_INTERVAL_SECONDS", "2".into()),
        ("AURORA_TRANSCODE_WORKERS", "2".into()),
        ("AURORA_RATE_LIMITS", "off".into()),
        ("AURORA_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // The keys are the operator's, mounted into every replica as secrets would be.
    make_key(&options.dir.join("keys"), "root-1.pem")?;
    make_key(&options.dir.join("audit-keys"), "audit-signing.pem")?;
    let mut replicas = Vec::new();
    for n in 0..options.replicas {
        let name = format!("r{n}");
        let mut replica = Replica::new(&name, &options.aurora, env.clone(), &options.dir)?;
        replica.start().await?;
        replicas.push(replica);
    }
    let mut cluster = Cluster {
        replicas,
        nats,
        postgres_proxy,
        nats_proxy,
        database_url: database_url.to_string(),
        prefix,
        artifacts,
        env,
        ack_wait,
    };
    let clip = options.dir.join("clip.mp4");
    aurora_actors::tools::generate_clip(&clip, 2, 160, 120).context("generating the clip")?;

    let history = Arc::new(Mutex::new(workload::History::default()));
    let stop = CancellationToken::new();
    let bases: Vec<String> = cluster.replicas.iter().map(Replica::base).collect();
    let clients = tokio::spawn(workload::run(
        options.seed,
        options.clients,
        bases,
        std::fs::read(&clip)?,
        history.clone(),
        stop.clone(),
    ));
    let timer = {
        let stop = stop.clone();
        let duration = options.duration;
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop.cancel();
        })
    };
    let record = nemesis::run(
        options.seed,
        &mut cluster,
        options.postgres_restart.as_deref(),
        &options.only,
        stop.clone(),
    )
    .await;
    let _ = timer.await;
    let _ = clients.await;
    let history = std::mem::take(&mut *history.lock().unwrap());
    cluster.heal().await?;
    let report = checker::check(&mut cluster, &history, &options.aurora, &options.sabotage).await?;
    Ok(Outcome {
        history,
        nemesis: record,
        report,
    })
}

/// An Ed25519 PKCS#8 key at `dir/name`, made with openssl as an operator would.
fn make_key(dir: &std::path::Path, name: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let path = dir.join(name);
    let status = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&path)
        .status()
        .context("running openssl")?;
    anyhow::ensure!(status.success(), "openssl genpkey: {status}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// `host:port` of a Postgres URL.
fn address_of(url: &str) -> anyhow::Result<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    anyhow::ensure!(!host.is_empty(), "no host in the database URL");
    Ok(if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    })
}
