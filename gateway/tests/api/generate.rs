//! Generate steps against a faithful local HeyGen stand-in (`heygen_standin.rs`): a run
//! generate → transcode → thumbnail end to end, webhooks lost and duplicated, a replica
//! killed while it waits (the survivor waits for the same video: one paid creation), a busy
//! provider (429 with `Retry-After`), a failed generation, a video on a foreign host, the
//! daily quota, bad specs and bad webhook signatures — and the key nowhere it must not be.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use std::time::Duration;

use aurora_nats::CloudEvent;
use aurora_projections::testkit::{self, TempDir};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::execution::{executor_of, replica_named, shared_replica_env};
use super::pipeline::{clip, count, spawn_worker, RUN_WAIT};
use super::{problem, spawn_app_with, spawn_limited_with, Mode, TestApp};

#[path = "heygen_standin.rs"]
mod standin;
use standin::{Behaviour, Render, StandIn};

/// The secret of the webhook endpoint "registered" with the stand-in.
const SECRET: &str = "whsec_aurora-test-endpoint-secret";

/// A stand-in whose finished videos are a generated 2-second 640×360 clip.
async fn stand_in(behaviour: Behaviour) -> StandIn {
    let scratch = TempDir::new().unwrap();
    let clip = std::fs::read(clip(scratch.path(), "avatar.mp4", 2, 640, 360)).unwrap();
    StandIn::start(behaviour, clip).await
}

/// An Aurora executing runs, pointed at the stand-in, its webhook registered there.
async fn generating(
    mode: Mode,
    stand_in: &StandIn,
    tune: impl FnOnce(&mut aurora_gateway::config::Config),
) -> TestApp {
    let app = spawn_worker(mode, |config| {
        point_at(config, stand_in);
        tune(config);
    })
    .await;
    stand_in.send_webhooks_to(&app.url("/api/v1/webhooks/heygen"), SECRET);
    app
}

fn point_at(config: &mut aurora_gateway::config::Config, stand_in: &StandIn) {
    config.heygen_api_key = Some(stand_in.key.clone());
    config.heygen_base_url = stand_in.base.clone();
    config.heygen_webhook_secret = Some(SECRET.into());
    // The stand-in serves its files from loopback.
    config.heygen_media_hosts = "127.0.0.1".into();
    config.fetch_allow = "127.0.0.0/8".into();
    config.generate_poll_ms = 100;
    config.retry_backoff_ms = 100;
}

fn generate_step() -> Value {
    json!({"kind": "generate", "provider": "heygen", "avatar_id": "Daisy-inskirt-20220818",
        "voice_id": "2d5b0e6cf36f460aa7fc47e3eee4ba54", "script": "Welcome to Aurora.",
        "dimension": {"width": 1280, "height": 720}, "background": "#0b1f3a"})
}

fn generate_then(steps: &[Value]) -> Value {
    let mut all = vec![generate_step()];
    all.extend(steps.iter().cloned());
    json!({ "steps": all })
}

/// A stand-in behaving as `behaviour`, an Aurora (`tune`d) pointed at it, and a run
/// generate → probe there, finished: (stand-in, app, run id, run).
async fn generate_and_probe(
    mode: Mode,
    behaviour: Behaviour,
    tune: impl FnOnce(&mut aurora_gateway::config::Config),
) -> (StandIn, TestApp, String, aurora_projections::runs::RunView) {
    let stand_in = stand_in(behaviour).await;
    let app = generating(mode, &stand_in, tune).await;
    let id = app
        .created_id(&generate_then(&[json!({"kind": "probe"})]))
        .await;
    let view = app.finished(&id).await;
    (stand_in, app, id, view)
}

/// Every stored event, as text.
async fn all_events_text(app: &TestApp) -> String {
    aurora_projections::on_pool!(&app.state.db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT CAST(payload AS TEXT) || ' ' || CAST(metadata AS TEXT) FROM events"
    )
    .fetch_all(pool)
    .await
    .unwrap())
    .join("\n")
}

/// Files under `dir` (logs, artifacts, databases) whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    super::leftovers::files_under(dir, |path| {
        std::fs::read(path)
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

/// A run generate → transcode → thumbnail succeeds; the webhook (delivered twice) wakes the
/// wait at once — the status poll is set to minutes, longer than the test waits — and is
/// stored once; the key is in no event, metric or file.
#[apply(both_modes)]
async fn a_generated_video_is_transcoded_and_thumbnailed(mode: Mode) {
    let stand_in = stand_in(Behaviour {
        webhook_copies: 2,
        ..Behaviour::default()
    })
    .await;
    let app = generating(mode, &stand_in, |config| {
        config.generate_poll_ms = 600_000;
    })
    .await;
    let id = app
        .created_id(&generate_then(&[
            json!({"kind": "transcode", "format": "webm", "quality": "low", "resolution": "480p"}),
            json!({"kind": "thumbnail", "at_seconds": 0.5}),
        ]))
        .await;
    let view = app.finished(&id).await;
    assert_eq!(view.status, "succeeded", "{view:?}");

    // One paid video, asked for as documented.
    let created = stand_in.created();
    assert_eq!(created.len(), 1, "{created:?}");
    let body = &created[0].body;
    assert_eq!(body["type"], "avatar");
    assert_eq!(body["avatar_id"], "Daisy-inskirt-20220818");
    assert_eq!(body["voice_id"], "2d5b0e6cf36f460aa7fc47e3eee4ba54");
    assert_eq!(body["script"], "Welcome to Aurora.");
    assert_eq!(body["resolution"], "720p");
    assert_eq!(body["aspect_ratio"], "16:9");
    assert_eq!(
        body["background"],
        json!({"type": "color", "value": "#0b1f3a"})
    );
    assert_eq!(body["callback_id"], format!("aurora:{id}:0"));
    assert_eq!(
        created[0].idempotency_key.as_deref(),
        Some(format!("aurora:{id}:0").as_str())
    );

    // Recorded before the wait; the duplicated webhook stored once.
    assert_eq!(stand_in.webhooks_sent(), 2);
    let events = app.events_of(&id).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(count(&events, "GenerationSubmitted", None), 1, "{names:?}");
    assert_eq!(count(&events, "GenerationReported", None), 1, "{names:?}");
    assert_eq!(count(&events, "StepSucceeded", None), 3, "{names:?}");
    let submitted = names.iter().position(|n| *n == "GenerationSubmitted");
    let first_output = names.iter().position(|n| *n == "StepSucceeded");
    assert!(submitted < first_output, "{names:?}");
    let video_id = &created[0].video_id;
    assert!(
        events.iter().any(|(n, d)| n == "GenerationSubmitted"
            && d["GenerationSubmitted"]["video_id"] == *video_id.as_str()),
        "{events:?}"
    );

    // The generated video is the run's first artifact; the next steps worked on it.
    let artifacts = app.get_json(&format!("/api/v1/runs/{id}/artifacts")).await;
    let items = artifacts["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["step-0-a1.mp4", "step-1-a1.webm", "step-2-a1.jpg"]);
    assert_eq!(items[0]["content_type"], "video/mp4");
    assert_eq!(items[0]["width"], 640);
    assert_eq!(
        items[1]["height"], 360,
        "a 360p video is not upscaled to 480p: {items:?}"
    );

    // The key: never in events, metrics or files.
    assert!(!all_events_text(&app).await.contains(&stand_in.key));
    let metrics = app.metrics().await;
    assert!(!metrics.contains(&stand_in.key));
    assert!(
        metrics.contains("generations_total{outcome=\"created\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        files_containing(app.dir.path(), &stand_in.key),
        Vec::<std::path::PathBuf>::new()
    );
}

/// Two replicas: the one waiting for the video is killed; the other takes the run over
/// after the ack wait and waits for the same video — the provider was asked once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_waiting_resumes_the_same_video() {
    let stand_in = stand_in(Behaviour {
        render: Render::Held,
        ..Behaviour::default()
    })
    .await;
    let dir = TempDir::new().unwrap();
    let (prefix, database, shared) = shared_replica_env(
        &dir,
        &[
            ("AURORA_HEYGEN_API_KEY", stand_in.key.clone()),
            ("AURORA_HEYGEN_BASE_URL", stand_in.base.clone()),
            ("AURORA_HEYGEN_WEBHOOK_SECRET", SECRET.to_string()),
            ("AURORA_HEYGEN_MEDIA_HOSTS", "127.0.0.1".to_string()),
            ("AURORA_FETCH_ALLOW", "127.0.0.0/8".to_string()),
            ("AURORA_GENERATE_POLL_MS", "200".to_string()),
        ],
    )
    .await;
    let replica = |name: &str| replica_named(&dir, &shared, name);
    let mut replicas = [Some(replica("a")), Some(replica("b"))];
    let a = replicas[0].as_ref().unwrap();
    let token = a.register_and_log_in("alice").await;

    let nats = async_nats::connect(testkit::nats_url()).await.unwrap();
    let mut submitted = nats
        .subscribe(format!("{prefix}.events.run.*.GenerationSubmitted"))
        .await
        .unwrap();
    let mut started = nats
        .subscribe(format!("{prefix}.events.run.*.StepStarted"))
        .await
        .unwrap();
    let mut ended = nats
        .subscribe(format!("{prefix}.events.run.*.RunSucceeded"))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let created: Value = a
        .request("POST", "/api/v1/runs", &token)
        .json(&generate_then(&[
            json!({"kind": "thumbnail", "at_seconds": 1}),
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();

    // The video is asked for and recorded; whoever waits for it is killed.
    tokio::time::timeout(RUN_WAIT, submitted.next())
        .await
        .expect("the generation was recorded")
        .unwrap();
    let db = aurora_projections::Database::postgres(&database, 2)
        .await
        .unwrap();
    let executor_of = |events: &[_], attempt| executor_of(events, 0, attempt);
    let events = db.read_aggregate_after("run", &id, 0).await.unwrap();
    let first = executor_of(&events, 1).expect("the generate step started");
    let victim = usize::from(first != "a");
    drop(replicas[victim].take()); // SIGKILL
    let survivor = replicas.iter().flatten().next().unwrap();

    // The survivor takes the step over, waiting for the same video; then it is ready.
    let takeover = async {
        while let Some(message) = started.next().await {
            let event: CloudEvent = serde_json::from_slice(&message.payload).unwrap();
            let started = &event.data["StepStarted"];
            if started["step"] == 0 && started["attempt"] == 2 {
                return;
            }
        }
    };
    tokio::time::timeout(RUN_WAIT, takeover)
        .await
        .expect("the survivor took the step over");
    stand_in.send_webhooks_to(&format!("{}/api/v1/webhooks/heygen", survivor.base), SECRET);
    let video_id = stand_in.created()[0].video_id.clone();
    stand_in.release(&video_id).await;
    tokio::time::timeout(RUN_WAIT, ended.next())
        .await
        .expect("the run succeeded on the survivor")
        .unwrap();

    assert_eq!(stand_in.create_requests(), 1, "the provider was asked once");
    assert_eq!(stand_in.created().len(), 1);
    let events = db.read_aggregate_after("run", &id, 0).await.unwrap();
    let second = executor_of(&events, 2).expect("a second attempt");
    assert_ne!(first, second, "the other replica took the step over");
    let names: Vec<String> = events
        .iter()
        .map(|e| e.to_cloud_event().eventname)
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "GenerationSubmitted").count(),
        1,
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("RunSucceeded"));
    let artifacts: Value = survivor
        .request("GET", &format!("/api/v1/runs/{id}/artifacts"), &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = artifacts["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{artifacts}");
    assert_eq!(items[0]["name"], "step-0-a2.mp4");
    // The key is in neither replica's logs.
    for process in replicas.iter().flatten() {
        let logs = process.logs.lock().unwrap().join("\n");
        assert!(logs.contains(&video_id), "the logs name the video");
        assert!(!logs.contains(&stand_in.key), "the key is not logged");
    }
}

/// A busy provider (429) is asked again after its `Retry-After`; one video is paid for.
#[apply(both_modes)]
async fn a_busy_provider_is_asked_again_after_retry_after(mode: Mode) {
    let behaviour = Behaviour {
        busy: 2,
        retry_after: 1,
        webhook_copies: 0,
        ..Behaviour::default()
    };
    let (stand_in, app, id, view) = generate_and_probe(mode, behaviour, |_| {}).await;
    let first_create = stand_in.created()[0].created_after_requests;
    assert_eq!(view.status, "succeeded", "{view:?}");
    assert_eq!(stand_in.create_requests(), 3);
    assert_eq!(stand_in.created().len(), 1);
    assert!(
        first_create >= Duration::from_secs(2),
        "two Retry-After: 1 answers were honoured: {first_create:?}"
    );
    // Without a webhook (lost), polling found the video.
    assert_eq!(stand_in.webhooks_sent(), 0);
    assert!(stand_in.status_requests() >= 1);
    let events = app.events_of(&id).await;
    assert_eq!(count(&events, "GenerationReported", None), 0);
    assert_eq!(count(&events, "StepStarted", Some(0)), 1, "one attempt");
}

/// The provider made the video but its answer was lost (a 502): the creation is asked
/// again with the same idempotency key, which the provider replays — one video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_a_creation_is_replayed_not_paid_again() {
    let behaviour = Behaviour {
        lose_answers: 1,
        ..Behaviour::default()
    };
    let (stand_in, _app, _, view) = generate_and_probe(Mode::Embedded, behaviour, |_| {}).await;
    assert_eq!(view.status, "succeeded", "{view:?}");
    assert_eq!(stand_in.create_requests(), 2);
    assert_eq!(stand_in.created().len(), 1, "one video");
}

/// HeyGen's retired v2 API works end to end; without an idempotency key, a creation whose
/// answer was lost is not asked again: the run fails rather than pay twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_v2_api_a_lost_answer_fails_the_run_rather_than_pay_twice() {
    let stand_in = stand_in(Behaviour {
        lose_answers: 1,
        ..Behaviour::default()
    })
    .await;
    let app = generating(Mode::Embedded, &stand_in, |config| {
        config.heygen_api = "v2".into();
    })
    .await;
    let id = app
        .created_id(&generate_then(&[json!({"kind": "probe"})]))
        .await;
    let view = app.finished(&id).await;
    assert_eq!(view.status, "failed", "{view:?}");
    let reason = view.failure_reason.unwrap_or_default();
    assert!(reason.contains("not asked for again"), "{reason}");
    assert_eq!(stand_in.create_requests(), 1);
    // The next run's answer arrives: v2's create, status and files.
    let id = app
        .created_id(&generate_then(&[
            json!({"kind": "thumbnail", "at_seconds": 1}),
        ]))
        .await;
    let view = app.finished(&id).await;
    assert_eq!(view.status, "succeeded", "{view:?}");
    let created = stand_in.created();
    assert_eq!(created.len(), 2);
    let body = &created[1].body;
    assert_eq!(
        body["video_inputs"][0]["character"]["avatar_id"],
        "Daisy-inskirt-20220818"
    );
    assert_eq!(
        body["video_inputs"][0]["voice"]["input_text"],
        "Welcome to Aurora."
    );
    assert_eq!(body["dimension"], json!({"width": 1280, "height": 720}));
    assert_eq!(created[1].idempotency_key, None);
}

/// A provider that stays busy fails the run after its attempts, and nothing is paid for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_stays_busy_fails_the_run_and_nothing_is_paid() {
    let (stand_in, app, id, view) = generate_and_probe(
        Mode::Embedded,
        Behaviour {
            busy: u32::MAX,
            retry_after: 1,
            ..Behaviour::default()
        },
        |config| {
            config.generate_timeout_seconds = 2;
            config.max_attempts = 2;
        },
    )
    .await;
    assert_eq!(view.status, "failed", "{view:?}");
    let reason = view.failure_reason.unwrap_or_default();
    assert!(reason.contains("429"), "{reason}");
    assert!(stand_in.create_requests() >= 2);
    assert!(stand_in.created().is_empty());
    let events = app.events_of(&id).await;
    assert_eq!(count(&events, "GenerationSubmitted", None), 0);
    assert_eq!(count(&events, "StepStarted", Some(0)), 2, "two attempts");
}

/// A generation the provider fails ends the run with the provider's reason, at once: the
/// step is not retried (another attempt would pay again).
#[apply(both_modes)]
async fn a_failed_generation_fails_the_run_with_the_providers_reason(mode: Mode) {
    let behaviour = Behaviour {
        render: Render::Fails(
            Duration::from_millis(200),
            "avatar Daisy is not available on this plan".into(),
        ),
        ..Behaviour::default()
    };
    let (stand_in, app, id, view) = generate_and_probe(mode, behaviour, |_| {}).await;
    assert_eq!(view.status, "failed", "{view:?}");
    let reason = view.failure_reason.unwrap_or_default();
    assert!(
        reason.contains("avatar Daisy is not available on this plan")
            && reason.contains("render_failed"),
        "{reason}"
    );
    assert_eq!(stand_in.created().len(), 1);
    let events = app.events_of(&id).await;
    assert_eq!(count(&events, "StepStarted", None), 1, "{events:?}");
    assert_eq!(count(&events, "StepSucceeded", None), 0);
}

/// A video the provider says is on another host (a compromised answer, a redirect to an
/// internal service) is never downloaded; the retries wait on the same video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_on_a_host_that_is_not_the_providers_is_not_downloaded() {
    let (stand_in, app, id, view) = generate_and_probe(
        Mode::Embedded,
        Behaviour {
            video_host: "localhost".into(),
            ..Behaviour::default()
        },
        |config| {
            config.max_attempts = 2;
        },
    )
    .await;
    assert_eq!(view.status, "failed", "{view:?}");
    let reason = view.failure_reason.unwrap_or_default();
    assert!(
        reason.contains("not one of the provider's hosts"),
        "{reason}"
    );
    assert_eq!(stand_in.created().len(), 1, "the retry did not pay again");
    let run_dir = app.dir.path().join("artifacts/runs").join(&id);
    let left: Vec<_> = std::fs::read_dir(&run_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "nothing downloaded or left behind: {left:?}"
    );
}

/// Without a key a generate step is refused with a problem that says so; bad generate
/// specs are refused naming the field; neither changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_steps_are_refused_without_a_key_and_bad_ones_change_nothing() {
    let app = spawn_app_with(Mode::Embedded, |_| {}).await;
    let before = app.changes().await;
    let body = problem(
        app.post_run(&generate_then(&[])).await,
        422,
        "provider-not-configured",
    )
    .await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("AURORA_HEYGEN_API_KEY"));

    let stand_in = stand_in(Behaviour::default()).await;
    // A replica that executes runs: a refused spec must never reach the provider.
    let keyed = spawn_worker(Mode::Embedded, |config| point_at(config, &stand_in)).await;
    let keyed_before = keyed.changes().await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut spec = generate_then(&[json!({"kind": "probe"})]);
        change(&mut spec);
        spec
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(&|s| s["steps"][0]["script"] = json!("")),
            "invalid-run-spec",
            "script",
        ),
        (
            with(&|s| s["steps"][0]["script"] = json!("a".repeat(5001))),
            "invalid-run-spec",
            "script",
        ),
        (
            with(&|s| s["steps"][0]["avatar_id"] = json!("../../etc/passwd")),
            "invalid-run-spec",
            "avatar_id",
        ),
        (
            with(&|s| s["steps"][0]["dimension"] = json!({"width": 1281, "height": 720})),
            "invalid-run-spec",
            "dimension",
        ),
        (
            with(&|s| s["steps"][0]["background"] = json!("javascript:alert(1)")),
            "invalid-run-spec",
            "background",
        ),
        (
            with(&|s| s["input"] = json!({"url": "https://media.example/a.mp4"})),
            "invalid-run-spec",
            "input",
        ),
        (
            json!({"steps": [{"kind": "probe"}, generate_step()]}),
            "invalid-run-spec",
            "first step",
        ),
        (
            json!({"steps": [{"kind": "probe"}]}),
            "invalid-run-spec",
            "input",
        ),
        (
            with(&|s| s["steps"][0]["api_key"] = json!("sk-leak")),
            "invalid-body",
            "api_key",
        ),
        (
            with(&|s| s["steps"][0]["provider"] = json!("sora")),
            "invalid-body",
            "steps[0]: unknown variant `sora`, expected `heygen`",
        ),
        (
            with(&|s| s["steps"][0]["script"] = json!(42)),
            "invalid-body",
            "steps[0]",
        ),
    ];
    for (spec, slug, mentions) in cases {
        let body = problem(keyed.post_run(&spec).await, 422, slug).await;
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(mentions), "{spec}: {detail}");
    }
    assert_eq!(keyed.changes().await, keyed_before);
    assert!(stand_in.created().is_empty());
    assert_eq!(app.changes().await, before);
}

/// The daily quota of generations, per tier: past it a run that generates gets 429 with
/// `Retry-After`; runs that do not generate are not charged, and nobody is blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_quota_of_generations_is_enforced() {
    let stand_in = stand_in(Behaviour::default()).await;
    let policy = r#"
[[class]]
name = "generations"
charged = true
tiers = { free = "2/d", pro = "20/d" }
blocks = false

[[class]]
name = "api"
routes = ["*"]
limit = "1000/m"
"#;
    let app = spawn_limited_with(Mode::Embedded, policy, |config| {
        point_at(config, &stand_in);
    })
    .await;
    for _ in 0..2 {
        let response = app.post_run(&generate_then(&[])).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let before = app.changes().await;
    let refused = app.post_run(&generate_then(&[])).await;
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 3600, "about half a day until the next: {retry}");
    let body = problem(refused, 429, "rate-limited").await;
    assert!(
        body["detail"].as_str().unwrap().contains("generations"),
        "{body}"
    );
    assert_eq!(app.changes().await, before, "nothing stored");
    let plain =
        json!({"input": {"url": "https://media.example/a.mp4"}, "steps": [{"kind": "probe"}]});
    assert_eq!(app.post_run(&plain).await.status(), StatusCode::CREATED);
    let listed = app
        .client
        .get(app.url("/api/v1/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK, "not blocked");
}

/// HeyGen's webhook: unsigned or badly signed deliveries are refused; signed ones about
/// videos Aurora did not record, other events or other callers' ids change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heygen_webhooks_are_verified_and_reports_of_unknown_videos_change_nothing() {
    use hmac::{Hmac, Mac};
    let unconfigured = spawn_app_with(Mode::Embedded, |_| {}).await;
    let url = unconfigured.url("/api/v1/webhooks/heygen");
    let response = reqwest::Client::new()
        .post(&url)
        .json(&json!({"event_type": "avatar_video.success"}))
        .send()
        .await
        .unwrap();
    problem(response, 404, "not-found").await;

    let stand_in = stand_in(Behaviour::default()).await;
    let app = spawn_app_with(Mode::Embedded, |config| point_at(config, &stand_in)).await;
    let id = app.created_id(&generate_then(&[])).await;
    let before = app.changes().await;
    let url = app.url("/api/v1/webhooks/heygen");
    let sign = |body: &[u8], secret: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    };
    let send = |body: Value, signature: Option<String>| {
        let url = url.clone();
        async move {
            let mut request = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap());
            if let Some(signature) = signature {
                request = request.header("heygen-signature", signature);
            }
            request.send().await.unwrap()
        }
    };
    let event = |callback: &str| {
        json!({"event_type": "avatar_video.success", "event_data": {"video_id": "v-forged",
            "url": "http://169.254.169.254/latest/meta-data", "callback_id": callback}})
    };
    let ours = event(&format!("aurora:{id}:0"));
    let bytes = serde_json::to_vec(&ours).unwrap();
    problem(
        send(ours.clone(), None).await,
        401,
        "invalid-webhook-signature",
    )
    .await;
    problem(
        send(ours.clone(), Some(sign(&bytes, "whsec_wrong"))).await,
        401,
        "invalid-webhook-signature",
    )
    .await;
    problem(
        send(ours.clone(), Some("not hex".into())).await,
        401,
        "invalid-webhook-signature",
    )
    .await;
    // Signed, but about a video the run never recorded: ignored.
    let response = send(ours, Some(sign(&bytes, SECRET))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ignored", "{body}");
    // Someone else's callback id, an event Aurora does not use.
    for other in [
        event("their-own-id"),
        json!({"event_type": "video_translate.success", "event_data": {"video_id": "x"}}),
    ] {
        let bytes = serde_json::to_vec(&other).unwrap();
        let response = send(other, Some(sign(&bytes, SECRET))).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ignored", "{body}");
    }
    // Signed but not an event.
    let junk = json!({"hello": "world"});
    let bytes = serde_json::to_vec(&junk).unwrap();
    let response = send(junk, Some(sign(&bytes, SECRET))).await;
    assert_eq!(response.status().as_u16(), 422);
    assert_eq!(app.changes().await, before, "nothing stored");
}
