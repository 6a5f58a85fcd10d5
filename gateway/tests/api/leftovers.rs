//! What a replica killed with `kill -9` leaves behind: its ffmpeg (which the kernel does not
//! stop with it) and its partial files. The next replica on the host kills the one before
//! retrying the step, and removes the others once no live attempt owns them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use aurora_projections::testkit::TempDir;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::pipeline::{clip, RUN_WAIT};
use super::Process;

/// ffmpeg processes still running (not zombies) whose command line names a path under `dir`.
pub(super) fn ffmpeg_under(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_ffmpeg = args.first().is_some_and(|a| a.ends_with("ffmpeg"));
        if is_ffmpeg && args.iter().any(|a| a.contains(&needle)) && !is_zombie(pid) {
            found.push(pid);
        }
    }
    found
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat[stat.rfind(')')? + 1..].trim_start().to_string();
            rest.chars().next()
        })
        .is_none_or(|state| state == 'Z' || state == 'X')
}

/// Every `.part` file under `dir`.
pub(super) fn partial_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir, |path| path.extension().is_some_and(|e| e == "part"))
}

/// The files under `dir`, at any depth, that `keep` keeps.
pub(super) fn files_under(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if keep(&path) {
                found.push(path);
            }
        }
    }
    found
}

/// Waits (polling, up to [`RUN_WAIT`]) until no ffmpeg runs on `artifacts` and no partial
/// file is left in it.
pub(super) async fn nothing_left_in(artifacts: &Path) {
    let deadline = Instant::now() + RUN_WAIT;
    loop {
        let (tools, parts) = (ffmpeg_under(artifacts), partial_files(artifacts));
        if tools.is_empty() && parts.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: ffmpeg {tools:?}, partial files {parts:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The embedded default, as a laptop user runs it: killed mid-transcode and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_aurora_killed_mid_transcode_leaves_no_ffmpeg_and_no_partial_file() {
    let dir = TempDir::new().unwrap();
    let artifacts = dir.path().join("data").join("artifacts");
    let env = vec![
        (
            "AURORA_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("AURORA_ARTIFACTS_DIR", artifacts.display().to_string()),
        ("AURORA_TRANSCODE_WORKERS", "1".to_string()),
        ("AURORA_RETRY_BACKOFF_MS", "100".to_string()),
        ("AURORA_SWEEP_INTERVAL_SECONDS", "1".to_string()),
    ];
    let first = Process::serve(&env);
    let token = first.register_and_log_in("alice").await;
    let clip = clip(dir.path(), "clip.mp4", 60, 1280, 720);
    let uploaded: Value = first
        .request("POST", "/api/v1/media", &token)
        .body(std::fs::read(&clip).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created = first
        .request("POST", "/api/v1/runs", &token)
        .json(&json!({
            "input": {"media_id": uploaded["id"]},
            "steps": [
                {"kind": "transcode", "format": "webm", "quality": "high", "resolution": "720p"}
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The transcode is under way, writing its partial file.
    let deadline = Instant::now() + RUN_WAIT;
    let orphan = loop {
        let tools = ffmpeg_under(&artifacts);
        if let ([pid], false) = (tools.as_slice(), partial_files(&artifacts).is_empty()) {
            break *pid;
        }
        assert!(Instant::now() < deadline, "the transcode never started");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    drop(first); // SIGKILL
    assert_eq!(
        ffmpeg_under(&artifacts),
        vec![orphan],
        "the kernel leaves a killed process's ffmpeg running"
    );

    // Started again: the orphan is gone before the step is retried.
    let second = Process::serve(&env);
    assert!(
        ffmpeg_under(&artifacts).iter().all(|pid| *pid != orphan),
        "the orphaned ffmpeg was killed before the engine took work"
    );
    let deadline = Instant::now() + RUN_WAIT;
    let run = loop {
        let run: Value = second
            .request("GET", &format!("/api/v1/runs/{id}"), &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] == "succeeded" {
            break run;
        }
        assert_ne!(run["status"], "failed", "{run}");
        assert!(Instant::now() < deadline, "the run never ended: {run}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    nothing_left_in(&artifacts).await;
    let run_dir = artifacts.join("runs").join(&id);
    let outputs: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(outputs, vec!["step-0-a2.webm".to_string()], "{run}");
}
