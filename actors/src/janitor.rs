//! What a killed replica leaves behind, cleared by the next one on the host.
//!
//! `kill -9` of Aurora does not reach its children: an ffmpeg it started encodes on to the
//! end (beside the retry of the same step), and the `.part` file it was writing stays on
//! disk for good. So every tool Aurora starts carries [`OWNER_VAR`] in its environment,
//! naming the Aurora process that started it (pid and start time, so a reused pid is not
//! mistaken for it). The janitor kills every tool whose owner is gone ([`reap_orphans`]):
//! once when the engine starts, before it takes any run, and then periodically, so a
//! surviving replica on the host clears after a dead one too.
//!
//! It then removes the partial files no live attempt will finish ([`sweep_parts`]): a
//! step's `.part` whose attempt is not the run's current one or whose run has ended (read
//! from the store, not a view that may lag), and an upload's `.part` whose uploading process
//! is gone (on this host; elsewhere, once it has not changed for a day). And a step's
//! second complete file — left by a superseded attempt that finished all the same — once
//! the store says it is not the step's output: one file per step.

use std::path::Path;
use std::time::Duration;

use aurora_domain::run::{Run, RunStatus};
use aurora_projections::RunCommands;
use uuid::Uuid;

use crate::artifacts::ArtifactStore;
pub use crate::owner::Owner;

/// The environment variable naming the Aurora process that started a tool.
pub const OWNER_VAR: &str = "AURORA_TOOL_OWNER";

/// An upload's `.part` whose uploader is on another host is removed once unchanged this long.
pub const FOREIGN_UPLOAD_STALE: Duration = Duration::from_secs(24 * 3600);

/// Kills every process of this host whose environment names an owner that is gone; returns
/// how many. Processes of other users cannot be read and are left alone.
pub fn reap_orphans() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let Some(owner) = owner_in(&environ) else {
            continue;
        };
        if owner.is_local() && !owner.is_alive() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                tracing::warn!(
                    pid = pid.as_raw(),
                    owner = owner.pid,
                    "killed a tool whose Aurora is gone"
                );
                killed += 1;
            }
        }
    }
    killed
}

/// The owner named by [`OWNER_VAR`] in a `/proc/<pid>/environ`.
fn owner_in(environ: &[u8]) -> Option<Owner> {
    let prefix = format!("{OWNER_VAR}=");
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()))
        .and_then(|tag| std::str::from_utf8(tag).ok())
        .and_then(Owner::parse)
}

/// What [`sweep_parts`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Partial files of runs' steps and inputs.
    pub run_parts: usize,
    /// Complete outputs of superseded attempts (a step's second file).
    pub run_outputs: usize,
    /// Partial uploads.
    pub uploads: usize,
}

/// Removes the partial files no live attempt or upload will finish.
pub async fn sweep_parts(artifacts: &ArtifactStore, runs: &RunCommands) -> Swept {
    let mut swept = Swept::default();
    if let Ok(mut dirs) = tokio::fs::read_dir(artifacts.root().join("runs")).await {
        while let Ok(Some(dir)) = dirs.next_entry().await {
            let Some(run_id) = dir
                .file_name()
                .to_str()
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            // One listing of the directory for both kinds of leftovers.
            let names = names_in(&dir.path()).await;
            let parts: Vec<&String> = names.iter().filter(|n| is_part(n)).collect();
            let extra = extra_outputs(&names);
            if parts.is_empty() && extra.is_empty() {
                continue;
            }
            // The store decides; when it cannot be read, nothing is removed.
            let Ok(run) = runs.load(&run_id.to_string()).await else {
                continue;
            };
            for name in parts {
                if !run_part_is_live(&run, name) && remove(&dir.path().join(name)).await {
                    swept.run_parts += 1;
                }
            }
            for name in extra {
                if !run_output_is_kept(&run, name) && remove(&dir.path().join(name)).await {
                    swept.run_outputs += 1;
                }
            }
        }
    }
    let media = artifacts.root().join("media");
    for name in names_in(&media).await.into_iter().filter(|n| is_part(n)) {
        let path = media.join(&name);
        let live = match upload_owner(&name) {
            Some(owner) if owner.is_local() => owner.is_alive(),
            _ => unchanged_for(&path).await < FOREIGN_UPLOAD_STALE,
        };
        if !live && remove(&path).await {
            swept.uploads += 1;
        }
    }
    swept
}

/// Is the complete output `name` of `run`'s directory the step's recorded output, or one
/// an attempt still going may record? A superseded attempt that finished all the same (its
/// replica was frozen past the takeover) leaves a second file for the step: not kept.
pub fn run_output_is_kept(run: &Run, name: &str) -> bool {
    let Some((step, attempt)) = step_attempt(&format!(".{name}")) else {
        return true;
    };
    if let Some(output) = run.outputs().get(step) {
        return output.artifact().is_some_and(|a| a.name == name);
    }
    !run.status().is_finished() && step == run.next_step() && attempt >= run.attempt().number
}

/// Outputs of steps that have more than one file among `names`
/// (`step-<n>-a<attempt>.<ext>`): the only ones that may be stray.
fn extra_outputs(names: &[String]) -> Vec<&String> {
    let mut by_step: std::collections::HashMap<usize, Vec<&String>> = Default::default();
    for name in names.iter().filter(|n| !is_part(n)) {
        if let Some((step, _)) = step_attempt(&format!(".{name}")) {
            by_step.entry(step).or_default().push(name);
        }
    }
    by_step
        .into_values()
        .filter(|names| names.len() > 1)
        .flatten()
        .collect()
}

/// Is the partial file `name` of `run`'s directory one an attempt may still finish?
pub fn run_part_is_live(run: &Run, name: &str) -> bool {
    if run.status().is_finished() || run.status() == RunStatus::New {
        return false;
    }
    match step_attempt(name) {
        // A newer attempt than the one loaded may have started since.
        Some((step, attempt)) => step == run.next_step() && attempt >= run.attempt().number,
        // The run's fetched input, while the run goes on.
        None => true,
    }
}

/// `(step, attempt)` of a step's partial file (`.step-<n>-a<attempt>.<ext>.part`).
fn step_attempt(name: &str) -> Option<(usize, u32)> {
    let rest = name.strip_prefix(".step-")?;
    let (step, rest) = rest.split_once("-a")?;
    let (attempt, _) = rest.split_once('.')?;
    Some((step.parse().ok()?, attempt.parse().ok()?))
}

/// The uploader named in an upload's partial file (`.<uuid>.<owner tag>.part`).
fn upload_owner(name: &str) -> Option<Owner> {
    let inner = name.strip_prefix('.')?.strip_suffix(".part")?;
    let (_, tag) = inner.split_once('.')?;
    Owner::parse(tag)
}

/// Is `name` a partial file's (`.<name>.part`)?
fn is_part(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".part")
}

/// The names of the files directly in `dir`.
async fn names_in(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
    }
    names
}

/// How long since `path` last changed (zero when unknown).
async fn unchanged_for(path: &Path) -> Duration {
    tokio::fs::metadata(path)
        .await
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| at.elapsed().ok())
        .unwrap_or_default()
}

async fn remove(path: &Path) -> bool {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed a partial file nothing will finish");
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run from its events, written as they are stored.
    fn run_from(events: &[serde_json::Value]) -> Run {
        use cqrs_es::Aggregate;
        let mut run = Run::default();
        for event in events {
            run.apply(serde_json::from_value(event.clone()).unwrap());
        }
        run
    }

    fn requested() -> serde_json::Value {
        serde_json::json!({"RunRequested": {
            "input": {"media_id": "01a24878-4543-77fd-9df6-4c2501f2624e"},
            "owner": "alice", "run_id": "01a24878-4695-7201-8cd1-fc660d1e6bed",
            "steps": [{"kind": "probe"},
                      {"kind": "transcode", "format": "mp4", "quality": "low", "resolution": "source"}]}})
    }

    fn started(step: usize, attempt: u32) -> serde_json::Value {
        serde_json::json!({"StepStarted": {"step": step, "attempt": attempt, "executor": "r0"}})
    }

    fn succeeded(step: usize, attempt: u32, name: &str) -> serde_json::Value {
        serde_json::json!({"StepSucceeded": {"step": step, "attempt": attempt, "output": {
            "kind": "artifact", "artifact": {"bytes": 1, "content_type": "video/mp4",
            "id": "9fc0290d-0eff-4860-bcf4-1d21f5db8302", "name": name, "sha256": "00"}}}})
    }

    #[test]
    fn what_a_run_keeps_is_its_current_attempt_and_its_recorded_outputs() {
        let probe = serde_json::json!({"StepSucceeded": {"step": 0, "attempt": 1, "output": {
            "kind": "probe", "media": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "streams": []}}}});
        // Step 1 taken over: attempt 2 runs, attempt 1 (its replica frozen) may finish late.
        let running = run_from(&[
            requested(),
            started(0, 1),
            probe.clone(),
            started(1, 1),
            started(1, 2),
        ]);
        assert!(run_part_is_live(&running, ".step-1-a2.mp4.part"));
        assert!(
            run_part_is_live(&running, ".step-1-a3.mp4.part"),
            "newer than loaded"
        );
        assert!(
            !run_part_is_live(&running, ".step-1-a1.mp4.part"),
            "superseded"
        );
        assert!(
            !run_part_is_live(&running, ".step-0-a1.mp4.part"),
            "an earlier step"
        );
        assert!(run_part_is_live(&running, ".input.part"));
        assert!(run_output_is_kept(&running, "step-1-a2.mp4"));
        assert!(!run_output_is_kept(&running, "step-1-a1.mp4"));

        // Attempt 2 recorded its file: attempt 1's, finished late, is stray.
        let done = run_from(&[
            requested(),
            started(0, 1),
            probe,
            started(1, 1),
            started(1, 2),
            succeeded(1, 2, "step-1-a2.mp4"),
            serde_json::json!({"RunSucceeded": {}}),
        ]);
        assert!(run_output_is_kept(&done, "step-1-a2.mp4"));
        assert!(!run_output_is_kept(&done, "step-1-a1.mp4"));
        assert!(
            !run_part_is_live(&done, ".step-1-a2.mp4.part"),
            "the run has ended"
        );
        assert!(!run_part_is_live(&done, ".input.part"));
        assert!(
            !run_part_is_live(&Run::default(), ".input.part"),
            "a run the store lacks"
        );
        assert!(run_output_is_kept(&done, "input"), "not a step's file");
    }

    #[test]
    fn the_owner_is_found_among_the_variables() {
        let environ = b"PATH=/bin\0AURORA_TOOL_OWNER=7-99-box\0HOME=/\0";
        assert_eq!(
            owner_in(environ),
            Some(Owner {
                pid: 7,
                start: 99,
                host: "box".into()
            })
        );
        assert_eq!(owner_in(b"PATH=/bin\0XAURORA_TOOL_OWNER=7-99-box\0"), None);
    }

    #[test]
    fn partial_files_are_read_by_their_names() {
        assert_eq!(step_attempt(".step-1-a2.webm.part"), Some((1, 2)));
        assert_eq!(step_attempt(".step-10-a12.jpg.part"), Some((10, 12)));
        assert_eq!(step_attempt(".input.part"), None);
        assert_eq!(step_attempt(".step-x-a1.mp4.part"), None);
        let id = Uuid::from_u128(5);
        let tag = Owner::this().tag();
        assert_eq!(
            upload_owner(&format!(".{id}.{tag}.part")).as_ref(),
            Some(Owner::this())
        );
        assert_eq!(upload_owner(&format!(".{id}.part")), None);
    }
}
