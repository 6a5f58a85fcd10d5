//! Runs executed end to end: uploads, the actors, real ffmpeg and ffprobe, artifacts, bad
//! media and media admission; the helpers the execution tests (`execution.rs`) share.
//! Media is generated here with ffmpeg's `lavfi` sources; nothing is downloaded.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aurora_gateway::config::Config;
use aurora_nats::CloudEvent;
use aurora_projections::runs::RunView;
use aurora_projections::testkit::{self, TempDir};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{problem, start, Mode, TestApp, PASSWORD, WAIT};

/// Long enough for a transcode of a few seconds of 720p on a loaded 2-core machine.
pub(super) const RUN_WAIT: Duration = Duration::from_secs(180);

/// Generates an H.264/AAC MP4 of `seconds` at `width`×`height` with ffmpeg's test sources.
pub(super) fn clip(dir: &Path, name: &str, seconds: u32, width: u32, height: u32) -> PathBuf {
    let path = dir.join(name);
    aurora_actors::tools::generate_clip(&path, seconds, width, height)
        .expect("ffmpeg is installed (scripts/test installs it) and generates the clip");
    path
}

/// What ffprobe says about `path`.
fn ffprobe(path: &Path) -> Value {
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "ffprobe reads {}", path.display());
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
        .unwrap_or_else(|| panic!("a {kind} stream in {probe}"))
}

/// An app that executes runs.
pub(super) async fn spawn_worker(mode: Mode, tune: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = Config::embedded(dir.path());
    config.nats_prefix = testkit::unique_prefix();
    if mode == Mode::Production {
        config.database_url = Some(testkit::create_postgres_database().await.unwrap());
        config.nats_url = Some(testkit::nats_url());
    }
    config.worker = true;
    config.transcode_workers = Some(2);
    tune(&mut config);
    start(config, dir).await
}

impl TestApp {
    pub(super) async fn upload(&self, bytes: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/media"))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    pub(super) async fn upload_file(&self, path: &Path) -> String {
        let response = self.upload(std::fs::read(path).unwrap()).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    pub(super) async fn run_on(&self, input: Value, steps: Value) -> String {
        self.created_id(&json!({"input": input, "steps": steps}))
            .await
    }

    /// Waits until the run has ended, and returns its view.
    pub(super) async fn finished(&self, id: &str) -> RunView {
        let ended = |v: &RunView| matches!(v.status.as_str(), "succeeded" | "failed" | "cancelled");
        let view = self
            .state
            .runs
            .wait_until(id, ended, RUN_WAIT)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("run {id} is in the view"));
        assert!(ended(&view), "run {id} did not end: {view:?}");
        view
    }

    /// The run's stored events: (name, data).
    pub(super) async fn events_of(&self, id: &str) -> Vec<(String, Value)> {
        self.state
            .db
            .read_aggregate_after("run", id, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                let event = e.to_cloud_event();
                (event.eventname, event.data)
            })
            .collect()
    }

    pub(super) async fn download(&self, path: &str, range: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send().await.unwrap()
    }
}

/// Reads Server-Sent Events from `response` until one named like a run's end: (event, id,
/// data) of each.
pub(super) async fn read_sse(mut response: reqwest::Response) -> Vec<(String, Option<i64>, Value)> {
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut frames = Vec::new();
    let mut buffer = String::new();
    while let Some(chunk) = tokio::time::timeout(RUN_WAIT, response.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::new(), None, String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if event.is_empty() {
                continue; // keep-alive comment
            }
            let end = matches!(
                event.as_str(),
                "RunSucceeded" | "RunFailed" | "RunCancelled"
            );
            frames.push((event, id, serde_json::from_str(&data).unwrap()));
            if end {
                return frames;
            }
        }
    }
    frames
}

/// The step index of an event, if it has one.
fn step_of(data: &Value) -> Option<u64> {
    data.as_object()?.values().next()?.get("step")?.as_u64()
}

pub(super) fn count(events: &[(String, Value)], name: &str, step: Option<u64>) -> usize {
    events
        .iter()
        .filter(|(n, data)| n == name && (step.is_none() || step_of(data) == step))
        .count()
}

/// Every event of run `id` a subscriber receives, in arrival order, until the run ends.
pub(super) async fn subscribe_run_events(
    app: &TestApp,
    mode: Mode,
) -> futures::stream::BoxStream<'static, CloudEvent> {
    let subjects = app.state.bus.shared().subjects().clone();
    let filter = subjects.aggregate_events("run");
    match mode {
        // A plain NATS client, as any outside service would subscribe.
        Mode::Production => {
            let client = async_nats::connect(testkit::nats_url()).await.unwrap();
            let subscriber = client.subscribe(filter).await.unwrap();
            client.flush().await.unwrap();
            subscriber
                .map(move |m| {
                    let _keep = &client;
                    serde_json::from_slice::<CloudEvent>(&m.payload).unwrap()
                })
                .boxed()
        }
        Mode::Embedded => app
            .state
            .bus
            .shared()
            .tail(&filter)
            .await
            .unwrap()
            .map(|e| e.unwrap())
            .boxed(),
    }
}

#[apply(both_modes)]
async fn an_uploaded_clip_is_probed_transcoded_to_webm_480p_and_thumbnailed(mode: Mode) {
    let app = spawn_worker(mode, |_| {}).await;
    let dir = TempDir::new().unwrap();
    let clip = clip(dir.path(), "clip.mp4", 4, 1280, 720);
    let upload = app.upload(std::fs::read(&clip).unwrap()).await;
    assert_eq!(upload.status(), StatusCode::CREATED);
    let uploaded: Value = upload.json().await.unwrap();
    assert_eq!(uploaded["content_type"], "video/mp4");
    assert_eq!(uploaded["bytes"], std::fs::metadata(&clip).unwrap().len());
    let media_id = uploaded["id"].as_str().unwrap().to_string();

    // The upload downloads back byte for byte, whole and by range.
    let original = std::fs::read(&clip).unwrap();
    let whole = app
        .download(&format!("/api/v1/media/{media_id}"), None)
        .await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), original.as_slice());
    let part = app
        .download(&format!("/api/v1/media/{media_id}"), Some("bytes=100-199"))
        .await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", original.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &original[100..200]);

    let mut events = subscribe_run_events(&app, mode).await;
    let mut progress = match app.state.bus.nats_client() {
        Some(client) => {
            let subject = format!("{}.progress.run.*", app.config.nats_prefix);
            let subscriber = client.subscribe(subject).await.unwrap();
            client.flush().await.unwrap();
            subscriber.map(|m| m.payload.to_vec()).boxed()
        }
        None => {
            let local = app.state.media.progress.subscribe_local();
            tokio_stream_from(local)
        }
    };
    let id = app
        .run_on(
            json!({"media_id": media_id}),
            json!([
                {"kind": "probe"},
                {"kind": "transcode", "format": "webm", "quality": "low", "resolution": "480p"},
                {"kind": "thumbnail", "at_seconds": 1.5}
            ]),
        )
        .await;
    let view = app.finished(&id).await;
    assert_eq!(view.status, "succeeded", "{view:?}");

    // The subscriber saw every event of the run, in order, ending with RunSucceeded.
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(WAIT, events.next()).await.unwrap() {
        if event.aggregateid != id {
            continue;
        }
        let done = event.eventname == "RunSucceeded";
        seen.push(event);
        if done {
            break;
        }
    }
    let stored = app.events_of(&id).await;
    let seen_names: Vec<&str> = seen.iter().map(|e| e.eventname.as_str()).collect();
    let stored_names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(seen_names, stored_names);
    let sequences: Vec<i64> = seen.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=stored.len() as i64).collect::<Vec<_>>());
    for event in &seen[1..] {
        assert_eq!(event.principal, "actor:run-executor", "{event:?}");
    }
    for step in 0..3 {
        assert_eq!(count(&stored, "StepSucceeded", Some(step)), 1, "{stored:?}");
    }
    // Live progress reached subscribers while ffmpeg ran.
    let report = tokio::time::timeout(WAIT, progress.next())
        .await
        .unwrap()
        .unwrap();
    let report: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["run_id"], id.as_str());
    assert!(report["percent"].as_f64().unwrap() >= 0.0);

    // The probe is stored in the run.
    let probe = &view.outputs[0]["media"];
    assert!(probe["container"].as_str().unwrap().contains("mp4"));
    assert!((probe["duration_seconds"].as_f64().unwrap() - 4.0).abs() < 0.2);

    // Artifacts: a WebM rendition at 480p (aspect kept) and a JPEG of the source size.
    let listed = app.get_json(&format!("/api/v1/runs/{id}/artifacts")).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    let rendition = app.download(items[0]["url"].as_str().unwrap(), None).await;
    assert_eq!(rendition.status(), StatusCode::OK);
    assert_eq!(rendition.headers()["content-type"], "video/webm");
    let webm = dir.path().join("out.webm");
    std::fs::write(&webm, rendition.bytes().await.unwrap()).unwrap();
    let probed = ffprobe(&webm);
    assert!(probed["format"]["format_name"]
        .as_str()
        .unwrap()
        .contains("webm"));
    let video = stream(&probed, "video");
    assert_eq!(video["codec_name"], "vp9");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(854), Some(480))
    );
    assert_eq!(stream(&probed, "audio")["codec_name"], "opus");
    assert_eq!(items[0]["height"], 480);
    let thumbnail = app.download(items[1]["url"].as_str().unwrap(), None).await;
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    let jpeg = dir.path().join("thumb.jpg");
    std::fs::write(&jpeg, thumbnail.bytes().await.unwrap()).unwrap();
    let picture = ffprobe(&jpeg);
    let picture = stream(&picture, "video");
    assert_eq!(
        (picture["width"].as_u64(), picture["height"].as_u64()),
        (Some(1280), Some(720))
    );
    // The engine's metrics saw it: one run succeeded, its transcode timed.
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"aurora_runs_finished_total{outcome="succeeded"} 1"#));
    assert!(
        metrics.contains("aurora_transcode_duration_seconds_count 1\n"),
        "{metrics}"
    );

    // Server-Sent Events replay the finished run: every event, ids = sequences.
    let replay = read_sse(
        app.download(&format!("/api/v1/runs/{id}/events"), None)
            .await,
    )
    .await;
    let replayed: Vec<&str> = replay.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(replayed, stored_names);
    assert_eq!(replay[2].1, Some(3));
    // Reconnecting with Last-Event-ID resumes after it.
    let resumed = app
        .client
        .get(app.url(&format!("/api/v1/runs/{id}/events")))
        .header("last-event-id", (stored.len() - 2).to_string())
        .send()
        .await
        .unwrap();
    let resumed = read_sse(resumed).await;
    assert_eq!(resumed.len(), 2, "{resumed:?}");

    // Another user can neither read the run's artifacts nor the upload.
    app.register("mallory").await;
    let login: Value = app.login("mallory", PASSWORD).await.json().await.unwrap();
    let mallory = login["token"].as_str().unwrap();
    for path in [
        format!("/api/v1/runs/{id}/artifacts"),
        format!("/api/v1/runs/{id}/events"),
        items[0]["url"].as_str().unwrap().to_string(),
        format!("/api/v1/media/{media_id}"),
    ] {
        let response = reqwest::Client::new()
            .get(app.url(&path))
            .bearer_auth(mallory)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // Nor can mallory run a pipeline on tester's upload.
    let stolen = reqwest::Client::new()
        .post(app.url("/api/v1/runs"))
        .bearer_auth(mallory)
        .json(&json!({"input": {"media_id": media_id}, "steps": [{"kind": "probe"}]}))
        .send()
        .await
        .unwrap();
    problem(stolen, 422, "unknown-media").await;
}

fn tokio_stream_from(
    receiver: tokio::sync::broadcast::Receiver<aurora_actors::progress::RunProgress>,
) -> futures::stream::BoxStream<'static, Vec<u8>> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(report) => return Some((serde_json::to_vec(&report).unwrap(), receiver)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

#[apply(both_modes)]
async fn bad_media_is_refused_or_fails_its_run_with_the_reason_and_the_pool_carries_on(mode: Mode) {
    // A local media server, allowlisted; everything else non-public stays refused.
    let dir = TempDir::new().unwrap();
    let clip = clip(dir.path(), "clip.mp4", 2, 320, 240);
    let served = std::fs::read(&clip).unwrap();
    use warp::Filter;
    let routes = warp::path!("clip.mp4")
        .map(move || served.clone())
        .or(warp::path!("missing.mp4")
            .map(|| warp::reply::with_status("gone", warp::http::StatusCode::NOT_FOUND)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    let app = spawn_worker(mode, |c| c.fetch_allow = "127.0.0.1/32".into()).await;

    // Refused at upload, nothing stored: empty, text named like a video, truncated video.
    let before = app.stored_events().await;
    problem(app.upload(Vec::new()).await, 422, "empty-upload").await;
    problem(
        app.upload(b"this is not a video, whatever its name says".to_vec())
            .await,
        415,
        "unsupported-media-type",
    )
    .await;
    let whole = std::fs::read(&clip).unwrap();
    let truncated = whole[..whole.len() / 2].to_vec();
    let refused = problem(app.upload(truncated).await, 422, "unreadable-media").await;
    assert!(refused["detail"]
        .as_str()
        .unwrap()
        .contains("not a readable media file"));
    assert_eq!(
        app.stored_events().await,
        before,
        "refused uploads store nothing"
    );
    let leftovers: Vec<_> = std::fs::read_dir(app.state.media.artifacts.root().join("media"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "refused uploads leave no file: {leftovers:?}"
    );

    // Runs that fail, each with its reason.
    let media = app.upload_file(&clip).await;
    let cases = [
        (
            json!({"media_id": media}),
            json!([{"kind": "probe"}, {"kind": "thumbnail", "at_seconds": 30}]),
            "past the end of the media",
        ),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data/clip.mp4"}),
            json!([{"kind": "probe"}]),
            "not public",
        ),
        (
            json!({"url": "http://10.0.0.1/clip.mp4"}),
            json!([{"kind": "probe"}]),
            "not public",
        ),
        (
            json!({"url": format!("http://{address}/missing.mp4")}),
            json!([{"kind": "probe"}]),
            "404",
        ),
    ];
    let mut ids = Vec::new();
    for (input, steps, _) in &cases {
        ids.push(app.run_on(input.clone(), steps.clone()).await);
    }
    // The pool carries on: a good run by URL, from the allowlisted server, succeeds.
    let good = app
        .run_on(
            json!({"url": format!("http://{address}/clip.mp4")}),
            json!([{"kind": "probe"}, {"kind": "thumbnail", "at_seconds": 0.5}]),
        )
        .await;
    for (id, (_, _, reason)) in ids.iter().zip(&cases) {
        let view = app.finished(id).await;
        assert_eq!(view.status, "failed", "{view:?}");
        let stored = view.failure_reason.clone().unwrap_or_default();
        assert!(stored.contains(reason), "{reason:?} in {stored:?}");
        // Which kind of private range a name resolves to, or where files live, is not said.
        for secret in ["private", "link-local", "loopback", "/tmp/", "aurora-test"] {
            assert!(!stored.contains(secret), "{secret:?} in {stored:?}");
        }
        let shown = app.get_json(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(shown["failure_reason"], stored.as_str());
        // Bad input is not retried.
        assert_eq!(
            count(&app.events_of(id).await, "StepAttemptFailed", None),
            0
        );
    }
    let view = app.finished(&good).await;
    assert_eq!(view.status, "succeeded", "{view:?}");

    // Paths that try to leave the artifact store are refused before any file is touched.
    for path in [
        format!("/api/v1/runs/{good}/artifacts/..%2F..%2Fetc%2Fpasswd"),
        "/api/v1/media/..%2F..%2Fetc%2Fpasswd".to_string(),
    ] {
        let response = app.download(&path, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    let unsatisfiable = app
        .download(&format!("/api/v1/media/{media}"), Some("bytes=999999999-"))
        .await;
    assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

impl TestApp {
    pub(super) async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

#[apply(both_modes)]
async fn a_small_input_keeps_its_size_unless_upscaling_is_asked(mode: Mode) {
    let app = spawn_worker(mode, |c| c.tier_concurrent_runs = "free=2".into()).await;
    let dir = TempDir::new().unwrap();
    let media = app
        .upload_file(&clip(dir.path(), "small.mp4", 1, 320, 240))
        .await;
    let mut heights = Vec::new();
    for upscale in [false, true] {
        let id = app
            .run_on(
                json!({"media_id": media}),
                json!([{"kind": "transcode", "format": "mp4", "quality": "low",
                        "resolution": "480p", "upscale": upscale}]),
            )
            .await;
        let view = app.finished(&id).await;
        assert_eq!(view.status, "succeeded", "{view:?}");
        let artifact = &view.outputs[0]["artifact"];
        heights.push((artifact["width"].as_u64(), artifact["height"].as_u64()));
    }
    // 4:3 kept either way.
    assert_eq!(
        heights,
        vec![(Some(320), Some(240)), (Some(640), Some(480))]
    );
}

/// The file-read hole: a file that starts as admitted media (an ID3 tag, a WAVE header …)
/// and continues as an HLS playlist, an `ffconcat` script or a DASH manifest naming
/// another user's upload. Uploaded, it is refused and nothing is stored; fetched as a run's
/// URL input, the run fails and makes no artifact. Before admission forced the demuxer,
/// the ID3 + playlist upload was accepted and a transcode of it re-encoded the victim's
/// file for the attacker.
#[apply(both_modes)]
async fn a_file_dressed_as_media_is_refused_and_reads_no_other_file(mode: Mode) {
    use aurora_actors::disguise::{disguised, Header, Payload};
    let app = spawn_worker(mode, |c| c.fetch_allow = "127.0.0.1/32".into()).await;
    let dir = TempDir::new().unwrap();
    // The victim's upload, another user's.
    let victim = super::token_with_role(&app, "victim", aurora_domain::user::Role::User).await;
    let uploaded: Value = reqwest::Client::new()
        .post(app.url("/api/v1/media"))
        .bearer_auth(&victim)
        .body(std::fs::read(clip(dir.path(), "victim.mp4", 1, 176, 144)).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let victim_id: uuid::Uuid = uploaded["id"].as_str().unwrap().parse().unwrap();
    let absolute = app.state.media.artifacts.media(victim_id);
    let targets = [victim_id.to_string(), absolute.display().to_string()];

    let mut hostile = Vec::new();
    let mut admitted = Vec::new();
    for header in Header::ALL {
        for payload in Payload::ALL {
            for target in &targets {
                let what = format!("{header:?} + {payload:?} naming {target}");
                let file = disguised(header, payload, target);
                let before = app.stored_events().await;
                let response = app.upload(file.clone()).await;
                let status = response.status().as_u16();
                if status == 201 {
                    // Admitted as what its header says and nothing else (a WAVE header
                    // makes the text PCM samples): a run on it reads only those bytes.
                    let body: Value = response.json().await.unwrap();
                    admitted.push((what, json!({"media_id": body["id"]})));
                    continue;
                }
                assert!(matches!(status, 415 | 422), "{what}: answered {status}");
                let slug = if status == 415 {
                    "unsupported-media-type"
                } else {
                    "unreadable-media"
                };
                let body = problem(response, status, slug).await;
                let detail = body["detail"].as_str().unwrap_or_default();
                let root = app
                    .state
                    .media
                    .artifacts
                    .root()
                    .to_string_lossy()
                    .to_string();
                assert!(
                    !detail.contains(&root),
                    "{what}: a server path in {detail:?}"
                );
                assert_eq!(
                    app.stored_events().await,
                    before,
                    "{what}: stored something"
                );
                if target.starts_with('/') {
                    hostile.push((format!("{header:?}-{payload:?}"), file));
                }
            }
        }
    }
    // The ID3 + playlist of the report, above all, is refused at the door.
    assert!(
        !admitted.iter().any(|(what, _)| what.starts_with("Id3")),
        "{admitted:?}"
    );

    // The same files as URL inputs: each run fails, and makes nothing.
    use warp::Filter;
    let served = Arc::new(hostile.clone());
    let routes = warp::path!("hostile" / String).map(move |name: String| {
        let file = served
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f.clone());
        file.unwrap_or_default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    let inputs = hostile
        .iter()
        .map(|(name, _)| {
            (
                name.clone(),
                json!({"url": format!("http://{address}/hostile/{name}")}),
            )
        })
        .chain(admitted);
    let mut runs = Vec::new();
    for (name, input) in inputs {
        let steps = json!([
            {"kind": "transcode", "format": "mp4", "quality": "low", "resolution": "source"},
            {"kind": "thumbnail", "at_seconds": 0.1}
        ]);
        runs.push((name, app.run_on(input, steps).await));
    }
    for (name, id) in runs {
        let view = app.finished(&id).await;
        assert_eq!(view.status, "failed", "{name}: {view:?}");
        let artifacts = app.get_json(&format!("/api/v1/runs/{id}/artifacts")).await;
        assert_eq!(
            artifacts["items"].as_array().map(Vec::len),
            Some(0),
            "{name}: {artifacts}"
        );
    }
}
