//! Run chaos: the execution engine (real actors, real ffmpeg) on SQLite + the in-process
//! bus, with panics injected into run actors and transcode workers on a seeded schedule.
//! Supervisors must restart what crashed and every run must still succeed with exactly one
//! output per step; every injected panic must show as one interrupted or failed attempt.
//!
//! Timing is real (actors, processes), so a seed fixes the schedule of faults, not the
//! interleaving; the invariants must hold for every interleaving.

use std::sync::Arc;
use std::time::Duration;

use aurora_actors::artifacts::ArtifactStore;
use aurora_actors::faults::{self, Fault};
use aurora_actors::progress::ProgressHub;
use aurora_actors::supervision::EngineMetrics;
use aurora_actors::tools::{Demuxer, Tools};
use aurora_actors::{Deps, Engine, EngineSettings};
use aurora_domain::media::{InputFormat, MediaCommand, Upload};
use aurora_domain::net::IpRanges;
use aurora_domain::run::{Format, Input, Quality, Resolution, RunCommand, RunSpec, Step};
use aurora_domain::EventMetadata;
use aurora_nats::memory::MemoryBus;
use aurora_nats::{EventBus, Subjects};
use aurora_projections::testkit;
use aurora_projections::{MediaCommands, Relay, RelayConfig, RelayMetrics, RunCommands};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{ok, Violation};
use crate::rng::Rng;

/// What a run-chaos simulation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunChaosReport {
    /// Runs executed.
    pub runs: usize,
    /// Panics injected into run actors.
    pub actor_panics: u32,
    /// Panics injected into transcode workers.
    pub worker_panics: u32,
    /// Actor restarts the supervisors counted.
    pub restarts: u64,
}

/// Executes `runs` runs (probe → transcode → thumbnail), one after another, each with the
/// panics seed `seed` schedules for it.
pub async fn simulate(seed: u64, runs: usize) -> Result<RunChaosReport, Violation> {
    let mut rng = Rng::new(seed);
    let (db, dir) = ok(testkit::fresh_sqlite().await, "opening SQLite")?;
    let subjects = Subjects::new("runsim");
    let bus = MemoryBus::new(subjects.clone());
    let shared: Arc<dyn EventBus> = Arc::new(bus.clone());
    let committed = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let relay = Relay::new(
        db.clone(),
        shared.clone(),
        RelayConfig::for_prefix(subjects.prefix()),
        RelayMetrics::default(),
    );
    let relay = tokio::spawn(relay.run(committed.clone(), stop.clone()));

    // One small clip, uploaded the way the gateway records uploads.
    let artifacts = ArtifactStore::new(dir.path().join("artifacts"));
    ok(artifacts.prepare().await, "preparing the artifact store")?;
    let media_id = uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, seed);
    let clip = artifacts.media(media_id);
    ok(
        aurora_actors::tools::generate_clip(&clip, 1, 320, 240),
        "generating the clip",
    )?;
    let tools = Tools::default();
    let info = ok(
        tools
            .probe(
                &clip,
                Demuxer::of(InputFormat::Mp4),
                Duration::from_secs(30),
            )
            .await,
        "probing",
    )?;
    let (bytes, sha256) = ok(ArtifactStore::digest(&clip).await, "hashing")?;
    let media = MediaCommands::new(&db, committed.clone());
    let upload = Upload {
        media_id,
        owner: "simulation".into(),
        bytes,
        sha256,
        content_type: "video/mp4".into(),
        info,
    };
    let metadata = EventMetadata::new("simulation", "upload");
    ok(
        media
            .create(
                &media_id.to_string(),
                MediaCommand::RecordUpload(upload),
                &metadata,
            )
            .await,
        "recording the upload",
    )?;

    let metrics = EngineMetrics::default();
    let settings = EngineSettings {
        workers: 2,
        max_active_runs: 4,
        max_attempts: 3,
        backoff: Duration::from_millis(20),
        step_timeout: Duration::from_secs(120),
        ack_wait: Duration::from_secs(30),
        sweep_interval: Duration::from_secs(60),
        run_restarts: (3, Duration::from_secs(60)),
        worker_restarts: (10, Duration::from_secs(60)),
        fetch: aurora_actors::fetch::FetchSettings {
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(5),
            allow: IpRanges::default(),
        },
        generate: aurora_actors::generate::GenerateSettings::default(),
    };
    let deps = Deps::new(
        RunCommands::new(&db, committed.clone()),
        MediaCommands::new(&db, committed.clone()),
        artifacts,
        tools,
        ProgressHub::new(subjects.clone(), None),
        settings,
        metrics.clone(),
        "simulation".into(),
    );
    let engine = ok(
        Engine::start(deps, shared.clone()).await,
        "starting the engine",
    )?;
    let commands = RunCommands::new(&db, committed.clone());
    let mut report = RunChaosReport::default();
    for n in 0..runs {
        let actor_panic = rng.chance(40);
        let worker_panic = rng.chance(40);
        if actor_panic {
            faults::arm(Fault::RunActorAfterStart, 1);
            report.actor_panics += 1;
        }
        if worker_panic {
            faults::arm(Fault::TranscodeWorkerMidway, 1);
            report.worker_panics += 1;
        }
        let mut events = ok(
            shared.tail(&subjects.aggregate_events("run")).await,
            "tailing",
        )?;
        let run_id = uuid::Uuid::from_u64_pair(0x0190_0000_0000_7001, rng.next_u64());
        let spec = RunSpec {
            input: Some(Input::MediaId(media_id)),
            steps: vec![
                Step::Probe {},
                Step::Transcode {
                    format: Format::Mp4,
                    quality: Quality::Low,
                    resolution: Resolution::Source,
                    upscale: false,
                },
                Step::Thumbnail { at_seconds: 0.5 },
            ],
        };
        let request = RunCommand::RequestRun {
            run_id,
            owner: "simulation".into(),
            spec,
        };
        let metadata = EventMetadata::new("simulation", format!("run-{n}"));
        ok(
            commands
                .create(&run_id.to_string(), request, &metadata)
                .await,
            "requesting a run",
        )?;
        let id = run_id.to_string();
        let ended = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                if event.aggregateid == id
                    && matches!(
                        event.eventname.as_str(),
                        "RunSucceeded" | "RunFailed" | "RunCancelled"
                    )
                {
                    return Some(event.eventname);
                }
            }
            None
        })
        .await;
        let ended = ok(ended, "waiting for the run")?;
        check!(
            ended.as_deref() == Some("RunSucceeded"),
            "run {n} ended {ended:?} (actor panic: {actor_panic}, worker panic: {worker_panic})"
        );
        let stored = ok(
            db.read_aggregate_after("run", &id, 0).await,
            "reading the run",
        )?;
        let names: Vec<String> = stored
            .iter()
            .map(|e| e.to_cloud_event().eventname)
            .collect();
        let count = |name: &str| names.iter().filter(|n| *n == name).count();
        check!(
            count("StepSucceeded") == 3,
            "run {n}: one output per step: {names:?}"
        );
        let expected = usize::from(actor_panic) + usize::from(worker_panic);
        check!(
            count("StepAttemptFailed") == expected,
            "run {n}: {expected} injected panics but {names:?}"
        );
        check!(
            faults::remaining(Fault::RunActorAfterStart) == 0
                && faults::remaining(Fault::TranscodeWorkerMidway) == 0,
            "run {n}: an armed panic was not reached"
        );
        report.runs += 1;
    }
    report.restarts = metrics.total_restarts();
    check!(
        report.restarts == u64::from(report.actor_panics + report.worker_panics),
        "every panic restarted exactly one actor: {report:?}"
    );
    engine.stop().await;
    stop.cancel();
    let _ = relay.await;
    Ok(report)
}
