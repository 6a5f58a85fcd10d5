//! `aurora bench-transcode`: Aurora's wall time for a transcode beside the same ffmpeg
//! command run directly, in the same run; and, when built with the `faults` feature, the
//! time from an injected run-actor panic to the run making progress again.
//!
//! A clip is generated with ffmpeg's `lavfi` sources (default 10 s of 1280×720 at 30 fps,
//! H.264/AAC). Then, for each round, interleaved:
//!
//! - **direct**: `ffmpeg -i clip <Aurora's own output arguments> out` as a child process;
//! - **aurora**: an embedded Aurora (SQLite, in-process bus, one transcode worker) is asked
//!   for a run with one transcode step over the uploaded clip; the time is from
//!   `POST /api/v1/runs` to the run's `RunSucceeded` in the view — intake, the input's
//!   probe, the transcode, the output's read-back probe and SHA-256, every event and the
//!   read model included.
//!
//! Two figures are compared with the direct run (medians): the **transcode step** — from
//! `StepStarted` to `StepSucceeded`, the events' own times: pool dispatch, ffmpeg through
//! ffmpeg-sidecar with live progress and milestone events, the read-back probe, hashing and
//! the rename — and the **whole run** from `POST` to `RunSucceeded` in the view, which adds
//! the API, the queue, the slot and the read model. Target: step ratio ≤ 1.05. It asserts
//! nothing.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{ensure, Context};
use aurora_actors::tools::{generate_clip, Demuxer, TranscodeJob};
use aurora_domain::media::InputFormat;
use aurora_domain::run::{Format, Quality, Resolution};
use aurora_domain::user::{Role, Tier, TokenKind};
use aurora_projections::runs::RunView;
use aurora_projections::testkit::TempDir;
use clap::Args;
use serde_json::{json, Value};

use crate::cli::bench::auth::median_us;
use crate::config::Config;
use crate::startup::Application;

/// Options of `aurora bench-transcode`.
#[derive(Debug, Clone, Args)]
pub struct TranscodeBenchArgs {
    /// Length of the generated clip, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Height of the generated clip (16:9).
    #[arg(long, default_value_t = 720)]
    pub height: u32,
    /// Output format: mp4 or webm.
    #[arg(long, default_value = "mp4")]
    pub format: String,
    /// Rounds (each runs both once; medians are compared).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

async fn wait_for_end(state: &crate::state::AppState, id: &str) -> anyhow::Result<RunView> {
    let view = state
        .runs
        .wait_until(
            id,
            |v| matches!(v.status.as_str(), "succeeded" | "failed" | "cancelled"),
            Duration::from_secs(600),
        )
        .await?
        .context("the run never reached the view")?;
    ensure!(
        view.status == "succeeded",
        "the run ended {}: {:?}",
        view.status,
        view.failure_reason
    );
    Ok(view)
}

/// Requests the run `body`, waits until it has succeeded, and returns its events.
async fn run_to_end(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    state: &crate::state::AppState,
    body: &Value,
) -> anyhow::Result<Vec<aurora_nats::CloudEvent>> {
    let created: Value = client
        .post(format!("{base}/api/v1/runs"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("a run id")?.to_string();
    wait_for_end(state, &id).await?;
    Ok(state
        .db
        .read_aggregate_after("run", &id, 0)
        .await?
        .iter()
        .map(|e| e.to_cloud_event())
        .collect())
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: TranscodeBenchArgs) -> anyhow::Result<()> {
    let format = match args.format.as_str() {
        "mp4" => Format::Mp4,
        "webm" => Format::Webm,
        other => anyhow::bail!("--format must be mp4 or webm, not {other}"),
    };
    let dir = TempDir::new().context("creating a temporary dir")?;
    let clip = dir.path().join("clip.mp4");
    let width = args.height * 16 / 9 / 2 * 2;
    generate_clip(&clip, args.seconds, width, args.height).context("generating the clip")?;

    let mut config = Config::embedded(dir.path().join("aurora"));
    config.worker = true;
    config.transcode_workers = Some(1);
    config.retry_backoff_ms = 0;
    config.tier_concurrent_runs = "free=4".into();
    let app = Application::build(config).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let token = state
        .identity
        .tokens
        .mint(
            TokenKind::Session,
            "bench",
            Role::User,
            Tier::Free,
            SystemTime::now(),
            Duration::from_secs(3600),
        )?
        .token;
    let client = reqwest::Client::new();
    let uploaded: Value = client
        .post(format!("{base}/api/v1/media"))
        .bearer_auth(&token)
        .body(std::fs::read(&clip)?)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let media = uploaded["id"].as_str().context("an upload id")?.to_string();
    let resolution = match args.height {
        h if h <= 480 => Resolution::P480,
        h if h <= 720 => Resolution::P720,
        _ => Resolution::P1080,
    };
    let step = json!({
        "kind": "transcode",
        "format": args.format,
        "quality": "medium",
        "resolution": serde_json::to_value(resolution)?,
    });
    // The same arguments Aurora's worker gives ffmpeg.
    let job = TranscodeJob {
        input: clip.clone(),
        demuxer: Demuxer::of(InputFormat::Mp4),
        output: dir.path().join("direct.out"),
        format,
        quality: Quality::Medium,
        resolution,
        upscale: false,
        has_audio: true,
        duration_seconds: Some(f64::from(args.seconds)),
    };

    let mut direct = Vec::new();
    let mut aurora = Vec::new();
    let mut steps = Vec::new();
    for round in 0..args.rounds {
        let began = Instant::now();
        let status = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "error", "-stats"])
            .args(job.demuxer.input_args())
            .arg("-i")
            .arg(&job.input)
            .args(job.output_args())
            .arg("-y")
            .arg(&job.output)
            .stderr(std::process::Stdio::null())
            .status()?;
        direct.push(began.elapsed());
        ensure!(status.success(), "direct ffmpeg failed");

        let began = Instant::now();
        let body = json!({"input": {"media_id": media}, "steps": [step]});
        let events = run_to_end(&client, &base, &token, &state, &body).await?;
        aurora.push(began.elapsed());
        let time_of = |name: &str| events.iter().find(|e| e.eventname == name).map(|e| e.time);
        let (Some(start), Some(end)) = (time_of("StepStarted"), time_of("StepSucceeded")) else {
            anyhow::bail!("the run has no step events");
        };
        steps.push((end - start).to_std()?);
        println!(
            "round {}: direct {:.3} s, aurora step {:.3} s, aurora run {:.3} s",
            round + 1,
            direct[round].as_secs_f64(),
            steps[round].as_secs_f64(),
            aurora[round].as_secs_f64()
        );
    }
    let direct_s = median_us(&mut direct) / 1e6;
    let step_s = median_us(&mut steps) / 1e6;
    let aurora_s = median_us(&mut aurora) / 1e6;
    println!(
        "transcode of a {} s {}p clip to {} (medians of {} rounds): direct ffmpeg {:.3} s; \
         aurora's transcode step {:.3} s, ratio {:.3} (target <= 1.05); whole run (POST to \
         RunSucceeded in the view) {:.3} s, ratio {:.3}",
        args.seconds,
        args.height,
        args.format,
        args.rounds,
        direct_s,
        step_s,
        step_s / direct_s,
        aurora_s,
        aurora_s / direct_s
    );

    recovery(&client, &base, &token, &media, &state).await?;

    shutdown.cancel();
    server.await??;
    Ok(())
}

/// The time from an injected run-actor panic (right after a step started) to the run making
/// progress again (the restarted actor's next `StepStarted`), from the events' own times.
#[cfg(feature = "faults")]
async fn recovery(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    media: &str,
    state: &crate::state::AppState,
) -> anyhow::Result<()> {
    use aurora_actors::faults::{arm, Fault};
    let mut gaps = Vec::new();
    for _ in 0..5 {
        arm(Fault::RunActorAfterStart, 1);
        let body = json!({"input": {"media_id": media}, "steps": [{"kind": "probe"}]});
        let started: Vec<chrono::DateTime<chrono::Utc>> =
            run_to_end(client, base, token, state, &body)
                .await?
                .into_iter()
                .filter(|e| e.eventname == "StepStarted")
                .map(|e| e.time)
                .collect();
        ensure!(started.len() == 2, "expected a restart, saw {started:?}");
        gaps.push((started[1] - started[0]).to_std()?);
    }
    println!(
        "run-actor panic → progress again (StepStarted of the next attempt), median of 5: {:.1} ms \
         (retry backoff 0)",
        median_us(&mut gaps) / 1e3
    );
    Ok(())
}

#[cfg(not(feature = "faults"))]
async fn recovery(
    _: &reqwest::Client,
    _: &str,
    _: &str,
    _: &str,
    _: &crate::state::AppState,
) -> anyhow::Result<()> {
    println!("panic recovery: skipped (build with --features faults to inject panics)");
    Ok(())
}
