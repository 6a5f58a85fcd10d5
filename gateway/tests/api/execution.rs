//! Runs under stress: injected panics in run actors and transcode workers, an actor that
//! keeps crashing, cancellation killing ffmpeg, a replica killed mid-transcode, per-tier
//! limits and disabled users, step timeouts. The clips, workers and event readers come from
//! `pipeline.rs`.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use std::time::{Duration, Instant};

use aurora_actors::faults::{self, Fault};
use aurora_nats::CloudEvent;
use aurora_projections::testkit::{self, TempDir};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::pipeline::{clip, count, read_sse, spawn_worker, RUN_WAIT};
use super::{Mode, Process, WAIT};

#[apply(both_modes)]
async fn panics_in_a_run_actor_and_a_transcode_worker_are_survived_with_one_output_per_step(
    mode: Mode,
) {
    let app = spawn_worker(mode, |_| {}).await;
    let dir = TempDir::new().unwrap();
    let media = app
        .upload_file(&clip(dir.path(), "clip.mp4", 3, 640, 360))
        .await;
    faults::arm(Fault::RunActorAfterStart, 1);
    faults::arm(Fault::TranscodeWorkerMidway, 1);
    let id = app
        .run_on(
            json!({"media_id": media}),
            json!([
                {"kind": "probe"},
                {"kind": "transcode", "format": "mp4", "quality": "low", "resolution": "source"},
                {"kind": "thumbnail", "at_seconds": 1}
            ]),
        )
        .await;
    let view = app.finished(&id).await;
    assert_eq!(view.status, "succeeded", "{view:?}");
    assert_eq!(faults::remaining(Fault::RunActorAfterStart), 0);
    assert_eq!(faults::remaining(Fault::TranscodeWorkerMidway), 0);
    let events = app.events_of(&id).await;
    for step in 0..3 {
        assert_eq!(count(&events, "StepSucceeded", Some(step)), 1, "{events:?}");
    }
    // The probe was interrupted by the run actor's panic, the transcode by the worker's:
    // each retried once, as attempt 2.
    assert_eq!(
        count(&events, "StepAttemptFailed", Some(0)),
        1,
        "{events:?}"
    );
    assert_eq!(
        count(&events, "StepAttemptFailed", Some(1)),
        1,
        "{events:?}"
    );
    assert_eq!(count(&events, "StepStarted", Some(1)), 2, "{events:?}");
    // Partial output of the crashed attempt was discarded: one rendition on disk.
    let run_dir = app.state.media.artifacts.run_dir(id.parse().unwrap());
    let mut files: Vec<String> = std::fs::read_dir(run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, vec!["step-1-a2.mp4", "step-2-a1.jpg"]);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"aurora_actor_restarts_total{kind="run"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"aurora_actor_restarts_total{kind="transcode_worker"} 1"#));
}

#[apply(both_modes)]
async fn a_run_actor_that_keeps_crashing_is_given_up_visibly(mode: Mode) {
    let app = spawn_worker(mode, |c| c.max_attempts = 10).await;
    let dir = TempDir::new().unwrap();
    let media = app
        .upload_file(&clip(dir.path(), "clip.mp4", 1, 160, 120))
        .await;
    // The first crash and three restarts (the budget): the fourth crash escalates.
    faults::arm(Fault::RunActorAfterStart, 4);
    let id = app
        .run_on(json!({"media_id": media}), json!([{"kind": "probe"}]))
        .await;
    let view = app.finished(&id).await;
    assert_eq!(view.status, "failed");
    let reason = view.failure_reason.unwrap();
    assert!(reason.contains("supervisor gave up"), "{reason}");
    assert_eq!(faults::remaining(Fault::RunActorAfterStart), 0);
    let events = app.events_of(&id).await;
    let failed = events.iter().find(|(n, _)| n == "RunFailed").unwrap();
    assert_eq!(count(&events, "StepStarted", None), 4, "{events:?}");
    assert!(failed.1.to_string().contains("supervisor gave up"));
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains(r#"aurora_supervisor_escalations_total{kind="run"} 1"#));
    assert!(metrics.contains(r#"aurora_actor_restarts_total{kind="run"} 3"#));
}

#[apply(both_modes)]
async fn cancelling_a_run_kills_ffmpeg_within_a_second(mode: Mode) {
    let app = spawn_worker(mode, |_| {}).await;
    let dir = TempDir::new().unwrap();
    // Long enough that it is still encoding when cancelled.
    let media = app
        .upload_file(&clip(dir.path(), "long.mp4", 60, 1280, 720))
        .await;
    let mut progress = app.state.media.progress.subscribe_local();
    let id = app
        .run_on(
            json!({"media_id": media}),
            json!([{"kind": "transcode", "format": "mp4", "quality": "high", "resolution": "source"}]),
        )
        .await;
    // A client follows it live over Server-Sent Events.
    let follower = tokio::spawn(read_sse(
        app.download(&format!("/api/v1/runs/{id}/events"), None)
            .await,
    ));
    // ffmpeg is running once it reports progress.
    let report = tokio::time::timeout(RUN_WAIT, progress.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.run_id, id);
    let active = || app.state.metrics.engine.transcodes_active.get();
    assert_eq!(active(), 1);
    let cancelled = app
        .post_json(
            &format!("/api/v1/runs/{id}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let since = Instant::now();
    // ffmpeg is gone (the worker's gauge drops when its process has been reaped).
    while active() != 0 {
        assert!(
            since.elapsed() < Duration::from_secs(1),
            "ffmpeg still running {:?} after the cancel",
            since.elapsed()
        );
        tokio::task::yield_now().await;
    }
    println!(
        "ffmpeg stopped {:?} after the cancel was answered",
        since.elapsed()
    );
    let view = app.finished(&id).await;
    assert_eq!(view.status, "cancelled");
    let followed = follower.await.unwrap();
    let names: Vec<&str> = followed.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"RunRequested"), "{names:?}");
    assert!(names.contains(&"StepStarted"), "{names:?}");
    assert!(
        names.contains(&"progress"),
        "live progress reached the client: {names:?}"
    );
    assert_eq!(names.last(), Some(&"RunCancelled"));
    assert_eq!(view.cancel_reason.as_deref(), Some("changed my mind"));
    let events = app.events_of(&id).await;
    assert_eq!(count(&events, "StepSucceeded", None), 0);
    assert_eq!(
        count(&events, "StepAttemptFailed", None),
        0,
        "a cancel is not a failure"
    );
    // Nothing half-written is left under a final name.
    let run_dir = app.state.media.artifacts.run_dir(id.parse().unwrap());
    let finals: Vec<_> = std::fs::read_dir(run_dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(finals.is_empty(), "{finals:?}");
}

/// What `aurora serve` replicas on one Postgres database and NATS prefix share (root keys,
/// artifacts, a 3 s ack wait), with `more`: (prefix, database URL, settings).
pub(super) async fn shared_replica_env(
    dir: &TempDir,
    more: &[(&'static str, String)],
) -> (String, String, Vec<(&'static str, String)>) {
    let keys = dir.path().join("keys");
    aurora_gateway::auth::keys::KeyRing::load(&keys, true).unwrap();
    let prefix = dir.nats_prefix();
    let database = dir.database_url().await.unwrap();
    let mut shared = vec![
        ("DATABASE_URL", database.clone()),
        ("NATS_URL", testkit::nats_url()),
        ("AURORA_NATS_PREFIX", prefix.clone()),
        ("AURORA_ROOT_KEYS_DIR", keys.display().to_string()),
        (
            "AURORA_ARTIFACTS_DIR",
            dir.path().join("artifacts").display().to_string(),
        ),
        ("AURORA_RUN_ACK_WAIT_SECONDS", "3".to_string()),
        ("AURORA_RETRY_BACKOFF_MS", "100".to_string()),
    ];
    shared.extend(more.iter().cloned());
    (prefix, database, shared)
}

/// Replica `name` of [`shared_replica_env`]'s settings.
pub(super) fn replica_named(dir: &TempDir, shared: &[(&str, String)], name: &str) -> Process {
    let mut env = shared.to_vec();
    env.push((
        "AURORA_DATA_DIR",
        dir.path().join(name).display().to_string(),
    ));
    env.push(("AURORA_REPLICA_ID", name.to_string()));
    Process::serve(&env)
}

/// The executor that started attempt `attempt` of step `step`, in a run's stored events.
pub(super) fn executor_of(
    events: &[aurora_projections::StoredEvent],
    step: u64,
    attempt: u64,
) -> Option<String> {
    events
        .iter()
        .map(|e| e.to_cloud_event())
        .find(|e| {
            e.eventname == "StepStarted"
                && e.data["StepStarted"]["step"] == step
                && e.data["StepStarted"]["attempt"] == attempt
        })
        .map(|e| {
            e.data["StepStarted"]["executor"]
                .as_str()
                .unwrap()
                .to_string()
        })
}

/// Two gateway processes on one Postgres and NATS: the one transcoding is killed; the
/// other takes the run over after the ack wait and finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_replica_is_killed_mid_transcode_is_finished_by_the_other() {
    let dir = TempDir::new().unwrap();
    let (prefix, database, shared) = shared_replica_env(
        &dir,
        &[
            ("AURORA_TRANSCODE_WORKERS", "1".to_string()),
            ("AURORA_SWEEP_INTERVAL_SECONDS", "1".to_string()),
        ],
    )
    .await;
    let replica = |name: &str| replica_named(&dir, &shared, name);
    let mut replicas = [Some(replica("a")), Some(replica("b"))];
    let a = replicas[0].as_ref().unwrap();

    let token = a.register_and_log_in("alice").await;
    let clip = clip(dir.path(), "clip.mp4", 30, 1280, 720);
    let uploaded: Value = a
        .request("POST", "/api/v1/media", &token)
        .body(std::fs::read(&clip).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let media = uploaded["id"].as_str().unwrap();

    let nats = async_nats::connect(testkit::nats_url()).await.unwrap();
    let mut progress = nats
        .subscribe(format!("{prefix}.progress.run.*"))
        .await
        .unwrap();
    let mut ended = nats
        .subscribe(format!("{prefix}.events.run.*.RunSucceeded"))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let created: Value = a
        .request("POST", "/api/v1/runs", &token)
        .json(&json!({
            "input": {"media_id": media},
            "steps": [
                {"kind": "probe"},
                {"kind": "transcode", "format": "webm", "quality": "medium", "resolution": "720p"}
            ]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();

    // The transcode is under way on one of them: find which, and kill it.
    tokio::time::timeout(RUN_WAIT, progress.next())
        .await
        .unwrap()
        .unwrap();
    let db = aurora_projections::Database::postgres(&database, 2)
        .await
        .unwrap();
    let executor_of = |events: &[_], attempt| executor_of(events, 1, attempt);
    let events = db.read_aggregate_after("run", &id, 0).await.unwrap();
    let first = executor_of(&events, 1).expect("the transcode started");
    let victim = if first == "a" { 0 } else { 1 };
    let killed_at = Instant::now();
    drop(replicas[victim].take()); // SIGKILL

    // The survivor takes it over after the ack wait and finishes it.
    tokio::time::timeout(RUN_WAIT, ended.next())
        .await
        .expect("the run succeeded on the surviving replica")
        .unwrap();
    println!(
        "run finished {:?} after its replica was killed",
        killed_at.elapsed()
    );
    let events = db.read_aggregate_after("run", &id, 0).await.unwrap();
    let second = executor_of(&events, 2).expect("a second attempt");
    assert_ne!(first, second, "the other replica took the run over");
    let names: Vec<String> = events
        .iter()
        .map(|e| e.to_cloud_event().eventname)
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "StepSucceeded").count(),
        2,
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("RunSucceeded"));
    let survivor = replicas.iter().flatten().next().unwrap();
    // Artifacts are read from the store: current as soon as the run ended.
    let artifacts: Value = survivor
        .request("GET", &format!("/api/v1/runs/{id}/artifacts"), &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(artifacts["status"], "succeeded");
    let items = artifacts["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{artifacts}");
    assert_eq!(items[0]["name"], "step-1-a2.webm");
    // The killed replica's ffmpeg and partial file: the survivor on this host clears both.
    super::leftovers::nothing_left_in(&dir.path().join("artifacts")).await;
}

#[apply(both_modes)]
async fn a_free_user_runs_one_at_a_time_and_disabling_them_cancels_their_runs(mode: Mode) {
    let app = spawn_worker(mode, |_| {}).await;
    let dir = TempDir::new().unwrap();
    let media = app
        .upload_file(&clip(dir.path(), "long.mp4", 60, 1280, 720))
        .await;
    // Services follow all of one user's runs on the run feed (NATS only).
    let mut feed = match app.state.bus.nats_client() {
        Some(client) => {
            let subject = format!("{}.runs.tester.>", app.config.nats_prefix);
            let subscriber = client.subscribe(subject).await.unwrap();
            client.flush().await.unwrap();
            Some(subscriber)
        }
        None => None,
    };
    let mut progress = app.state.media.progress.subscribe_local();
    let long =
        json!([{"kind": "transcode", "format": "mp4", "quality": "high", "resolution": "source"}]);
    let first = app.run_on(json!({"media_id": media}), long.clone()).await;
    let second = app.run_on(json!({"media_id": media}), long).await;
    // One of them transcodes; tester is on the free tier (one run at a time), so the other
    // waits for the slot without starting.
    let report = tokio::time::timeout(RUN_WAIT, progress.recv())
        .await
        .unwrap()
        .unwrap();
    let waiting = if report.run_id == first {
        &second
    } else {
        &first
    };
    let waiting_events = app.events_of(waiting).await;
    assert_eq!(
        count(&waiting_events, "StepStarted", None),
        0,
        "{waiting_events:?}"
    );
    assert_eq!(
        app.get_json(&format!("/api/v1/runs/{waiting}")).await["status"],
        "requested"
    );

    // An admin disables tester: both runs are cancelled, by the user actor.
    let admin = super::token_with_role(&app, "root", aurora_domain::user::Role::Admin).await;
    let disabled = reqwest::Client::new()
        .patch(app.url("/api/v1/users/tester"))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    for id in [&first, &second] {
        let view = app.finished(id).await;
        assert_eq!(view.status, "cancelled", "{view:?}");
        assert_eq!(
            view.cancel_reason.as_deref(),
            Some("the owner was disabled")
        );
        let events = app
            .state
            .db
            .read_aggregate_after("run", id, 0)
            .await
            .unwrap();
        let last = events.last().unwrap().to_cloud_event();
        assert_eq!(
            (last.eventname.as_str(), last.principal.as_str()),
            ("RunCancelled", "actor:user")
        );
        assert_eq!(count(&app.events_of(id).await, "StepSucceeded", None), 0);
    }
    if let Some(feed) = &mut feed {
        let mut ended = std::collections::HashSet::new();
        while ended.len() < 2 {
            let message = tokio::time::timeout(WAIT, feed.next())
                .await
                .unwrap()
                .unwrap();
            let event: CloudEvent = serde_json::from_slice(&message.payload).unwrap();
            assert_eq!(
                message.subject.as_str(),
                format!(
                    "{}.runs.tester.{}.{}",
                    app.config.nats_prefix, event.aggregateid, event.eventname
                )
            );
            if event.eventname == "RunCancelled" {
                ended.insert(event.aggregateid);
            }
        }
    }
}

#[apply(both_modes)]
async fn a_step_that_outlasts_its_timeout_is_retried_then_fails_the_run(mode: Mode) {
    let app = spawn_worker(mode, |c| {
        c.step_timeout_seconds = 1;
        c.max_attempts = 2;
    })
    .await;
    let dir = TempDir::new().unwrap();
    let media = app
        .upload_file(&clip(dir.path(), "long.mp4", 30, 1280, 720))
        .await;
    let id = app
        .run_on(
            json!({"media_id": media}),
            json!([{"kind": "transcode", "format": "mp4", "quality": "high", "resolution": "source"}]),
        )
        .await;
    let view = app.finished(&id).await;
    assert_eq!(view.status, "failed", "{view:?}");
    let reason = view.failure_reason.unwrap();
    assert!(
        reason.contains("failed 2 times") && reason.contains("timed out"),
        "{reason}"
    );
    let events = app.events_of(&id).await;
    assert_eq!(count(&events, "StepStarted", Some(0)), 2, "{events:?}");
    assert_eq!(
        count(&events, "StepAttemptFailed", Some(0)),
        2,
        "{events:?}"
    );
    assert_eq!(app.state.metrics.engine.transcodes_active.get(), 0);
    let health = app.get_json("/health").await;
    assert_eq!(
        health["services"]["actors"]["status"], "healthy",
        "{health}"
    );
}
