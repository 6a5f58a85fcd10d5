//! ffprobe and ffmpeg: probing, transcoding (through ffmpeg-sidecar, with live progress)
//! and thumbnails, each killable and bounded in time.
//!
//! Failures are sorted by what another attempt could change: [`ToolError::Invalid`] (the
//! input is bad or unsupported: ffmpeg says so and exits) is final; [`ToolError::Failed`]
//! (ffmpeg was killed, could not start, or the worker died) is worth a retry.
//!
//! Every call names the [`Demuxer`] that reads its input, and ffmpeg/ffprobe are told to use
//! that one and no other (`-f`, `-format_whitelist`): left to guess, they follow whatever a
//! file turns out to be — an HLS playlist or an `ffconcat` script behind a valid ID3 tag
//! reads other files on the server (`-protocol_whitelist file` cannot stop that; `file` is
//! the hole). See `docs/threat-model.md`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aurora_domain::media::{MediaInfo, StreamInfo};
use ffmpeg_sidecar::child::FfmpegChild;
use ffmpeg_sidecar::command::FfmpegCommand;
use ffmpeg_sidecar::event::{FfmpegEvent, LogLevel};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

mod demuxer;
mod job;

pub use demuxer::Demuxer;
pub use job::{format_file, Progress, TranscodeJob};

/// Why a tool run did not produce its output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// The input cannot be processed: retrying will not help.
    #[error("{0}")]
    Invalid(String),
    /// Something that another attempt may not meet.
    #[error("{0}")]
    Failed(String),
    /// Cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// The step took longer than its timeout.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The ffmpeg binary.
    pub ffmpeg: PathBuf,
    /// The ffprobe binary.
    pub ffprobe: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
        }
    }
}

/// ffprobe's JSON, the parts Aurora reads.
#[derive(Deserialize)]
struct ProbeJson {
    format: Option<ProbeFormat>,
    #[serde(default)]
    streams: Vec<ProbeStream>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    format_name: String,
    duration: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Deserialize)]
struct ProbeStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u32>,
}

/// Kills ffmpeg when dropped: a cancelled, timed-out or panicking caller never leaves an
/// encoder running.
struct KillOnDrop(FfmpegChild);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let child = self.0.as_inner_mut();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Tools {
    /// Probes `path` with `demuxer` (and no other). A file it cannot read, or one without
    /// audio or video, is [`ToolError::Invalid`].
    pub async fn probe(
        &self,
        path: &Path,
        demuxer: Demuxer,
        timeout: Duration,
    ) -> Result<MediaInfo, ToolError> {
        let mut command = tokio::process::Command::new(&self.ffprobe);
        command
            .args(["-v", "error"])
            .args(demuxer.input_args())
            .args(["-print_format", "json", "-show_format", "-show_streams"])
            .arg("-i")
            .arg(path)
            .stdin(Stdio::null())
            .env(
                crate::janitor::OWNER_VAR,
                crate::janitor::Owner::this().tag(),
            )
            .kill_on_drop(true);
        let output = tokio::time::timeout(timeout, command.output())
            .await
            .map_err(|_| ToolError::TimedOut(timeout))?
            .map_err(|e| ToolError::Failed(format!("cannot run ffprobe: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let reason = last_line(&stderr).unwrap_or("unreadable media");
            return Err(ToolError::Invalid(format!(
                "not a readable media file: {}",
                scrub(reason, &[path])
            )));
        }
        let parsed: ProbeJson = serde_json::from_slice(&output.stdout)
            .map_err(|e| ToolError::Failed(format!("unexpected ffprobe output: {e}")))?;
        let Some(format) = parsed.format else {
            return Err(ToolError::Invalid("not a readable media file".into()));
        };
        // Forced, so it cannot differ; checked all the same, since admission rests on it.
        if format.format_name != demuxer.format_name {
            return Err(ToolError::Invalid(format!(
                "not a readable {} file",
                demuxer.name
            )));
        }
        let info = MediaInfo {
            container: format.format_name,
            duration_seconds: format
                .duration
                .and_then(|d| d.parse::<f64>().ok())
                .filter(|d| d.is_finite() && *d >= 0.0),
            bit_rate: format.bit_rate.and_then(|b| b.parse().ok()),
            streams: parsed
                .streams
                .into_iter()
                .map(|s| StreamInfo {
                    index: s.index,
                    kind: s.codec_type.unwrap_or_else(|| "unknown".into()),
                    codec: s.codec_name.unwrap_or_else(|| "unknown".into()),
                    width: s.width,
                    height: s.height,
                    frame_rate: s.avg_frame_rate.filter(|r| r != "0/0"),
                    sample_rate: s.sample_rate.and_then(|r| r.parse().ok()),
                    channels: s.channels,
                })
                .collect(),
        };
        if info.video().is_none() && info.audio().is_none() {
            return Err(ToolError::Invalid(
                "the file has no audio or video stream".into(),
            ));
        }
        Ok(info)
    }

    /// Transcodes `job`, calling `progress` as ffmpeg reports it (about twice a second).
    /// Cancelling `cancel` kills ffmpeg at once. Returns the output's picture size as ffmpeg
    /// reported it (its stream summary, parsed by ffmpeg-sidecar).
    pub async fn transcode(
        &self,
        job: &TranscodeJob,
        cancel: &CancellationToken,
        timeout: Duration,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<Option<(u32, u32)>, ToolError> {
        let mut command = FfmpegCommand::new_with_path(&self.ffmpeg);
        command
            .hide_banner()
            // `info`: ffmpeg describes its output streams (their size is read from it).
            .args(["-nostdin", "-v", "info", "-stats"])
            .args(job.demuxer.input_args())
            .input(job.input.as_os_str())
            .args(job.output_args())
            .overwrite()
            .output(job.output.as_os_str());
        let duration = job.duration_seconds.filter(|d| *d > 0.0);
        let paths = [job.input.as_path(), job.output.as_path()];
        self.run_ffmpeg(command, &paths, cancel, timeout, |seconds, fps, speed| {
            let percent = duration
                .map(|d| (seconds / d * 100.0).clamp(0.0, 100.0) as f32)
                .unwrap_or(0.0);
            progress(Progress {
                percent,
                fps,
                speed,
                out_seconds: seconds,
            });
        })
        .await
    }

    /// Writes one frame at `at_seconds` as a JPEG.
    pub async fn thumbnail(
        &self,
        input: &Path,
        demuxer: Demuxer,
        at_seconds: f64,
        output: &Path,
        cancel: &CancellationToken,
        timeout: Duration,
    ) -> Result<(), ToolError> {
        let mut command = FfmpegCommand::new_with_path(&self.ffmpeg);
        command
            .hide_banner()
            .args(["-nostdin", "-v", "error"])
            .args(demuxer.input_args())
            .args(["-ss", &format!("{at_seconds:.3}")])
            .input(input.as_os_str())
            .args([
                "-frames:v",
                "1",
                "-q:v",
                "3",
                "-f",
                "image2",
                "-c:v",
                "mjpeg",
            ])
            .overwrite()
            .output(output.as_os_str());
        self.run_ffmpeg(command, &[input, output], cancel, timeout, |_, _, _| {})
            .await?;
        match tokio::fs::metadata(output).await {
            Ok(meta) if meta.len() > 0 => Ok(()),
            _ => Err(ToolError::Invalid(format!(
                "no frame at {at_seconds} s: the media is shorter"
            ))),
        }
    }

    /// Runs `command`; `paths` are removed from what it says (errors reach users, the
    /// server's layout does not).
    async fn run_ffmpeg(
        &self,
        mut command: FfmpegCommand,
        paths: &[&Path],
        cancel: &CancellationToken,
        timeout: Duration,
        mut on_progress: impl FnMut(f64, f32, f32) + Send,
    ) -> Result<Option<(u32, u32)>, ToolError> {
        // Named for the janitor: if this process is killed, the next one reaps it.
        command.as_inner_mut().env(
            crate::janitor::OWNER_VAR,
            crate::janitor::Owner::this().tag(),
        );
        let mut child = KillOnDrop(
            command
                .spawn()
                .map_err(|e| ToolError::Failed(format!("cannot run ffmpeg: {e}")))?,
        );
        let stderr = child
            .0
            .take_stderr()
            .ok_or_else(|| ToolError::Failed("ffmpeg has no stderr".into()))?;
        // ffmpeg-sidecar parses stderr on its own thread; forward its events to this task.
        let (sync_tx, sync_rx) = std::sync::mpsc::sync_channel(0);
        ffmpeg_sidecar::iter::spawn_stderr_thread(stderr, sync_tx);
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for event in sync_rx {
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let mut errors: Vec<String> = Vec::new();
        let mut picture: Option<(u32, u32)> = None;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return Err(ToolError::Cancelled),
                () = &mut deadline => return Err(ToolError::TimedOut(timeout)),
                event = events.recv() => event,
            };
            match event {
                Some(FfmpegEvent::Progress(p)) => {
                    let seconds =
                        ffmpeg_sidecar::log_parser::parse_time_str(&p.time).unwrap_or(0.0);
                    on_progress(seconds, p.fps, p.speed);
                }
                Some(FfmpegEvent::Log(LogLevel::Error | LogLevel::Fatal, line))
                | Some(FfmpegEvent::Error(line)) => {
                    if !line.contains("No streams found") && errors.len() < 20 {
                        errors.push(scrub(line.trim(), paths));
                    }
                }
                Some(FfmpegEvent::ParsedOutputStream(stream)) => {
                    if let (None, Some(video)) = (picture, stream.video_data()) {
                        picture = Some((video.width, video.height));
                    }
                }
                Some(FfmpegEvent::LogEOF) | None => break,
                Some(_) => {}
            }
        }
        let mut inner = child;
        let status = tokio::task::spawn_blocking(move || {
            let status = inner.0.as_inner_mut().wait();
            (status, inner)
        })
        .await
        .map_err(|e| ToolError::Failed(format!("waiting for ffmpeg: {e}")))?
        .0
        .map_err(|e| ToolError::Failed(format!("waiting for ffmpeg: {e}")))?;
        if status.success() {
            return Ok(picture);
        }
        let reason = errors
            .last()
            .cloned()
            .unwrap_or_else(|| format!("ffmpeg exited with {status}"));
        match status.code() {
            // 255: ffmpeg stopped by SIGINT/SIGTERM (a deploy, not the media).
            Some(255) | None => Err(ToolError::Failed(format!("ffmpeg was stopped: {reason}"))),
            // Out of disk space or an I/O error: the machine, not the media.
            Some(_) if is_environmental(&reason) => {
                Err(ToolError::Failed(format!("ffmpeg failed: {reason}")))
            }
            // ffmpeg refused the input or the settings: the same again fails again.
            Some(_) => Err(ToolError::Invalid(format!("ffmpeg failed: {reason}"))),
        }
    }
}

/// Writes a test clip with ffmpeg's `lavfi` sources: `seconds` of `width`×`height` at 30 fps
/// (the `testsrc2` pattern) with a 440 Hz tone, H.264/AAC in MP4. For benchmarks, simulations
/// and tests, which generate their media rather than download it.
pub fn generate_clip(path: &Path, seconds: u32, width: u32, height: u32) -> std::io::Result<()> {
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-shortest", "-f", "mp4"])
        .arg(path)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ffmpeg exited with {status}"
        )))
    }
}

/// Errors that say more about the machine than about the media.
fn is_environmental(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "no space left",
        "input/output error",
        "cannot allocate memory",
        "resource temporarily unavailable",
    ]
    .iter()
    .any(|needle| reason.contains(needle))
}

/// `text` without the server paths in it: each of `paths` (and its directory) becomes
/// `<file>` / `<dir>`.
pub fn scrub(text: &str, paths: &[&Path]) -> String {
    let mut text = text.to_string();
    for path in paths {
        let file = path.to_string_lossy();
        if !file.is_empty() {
            text = text.replace(file.as_ref(), "<file>");
        }
        if let Some(dir) = path.parent().map(|d| d.to_string_lossy()) {
            if dir.len() > 1 {
                text = text.replace(dir.as_ref(), "<dir>");
            }
        }
    }
    text
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurora_domain::media::InputFormat;
    use aurora_domain::run::{Format, Quality, Resolution};

    #[test]
    fn server_paths_are_scrubbed_from_what_tools_say() {
        let input = Path::new("/srv/aurora/artifacts/media/0190-abc.part");
        let said =
            "/srv/aurora/artifacts/media/0190-abc.part: Invalid data found when processing input";
        assert_eq!(
            scrub(said, &[input]),
            "<file>: Invalid data found when processing input"
        );
        assert_eq!(
            scrub("Could not open /srv/aurora/artifacts/media/other", &[input]),
            "Could not open <dir>/other"
        );
    }

    #[test]
    fn webm_480p_keeps_the_aspect_ratio_and_never_upscales() {
        let job = TranscodeJob {
            input: "in".into(),
            demuxer: Demuxer::of(InputFormat::Mp4),
            output: "out".into(),
            format: Format::Webm,
            quality: Quality::Low,
            resolution: Resolution::P480,
            upscale: false,
            has_audio: true,
            duration_seconds: Some(10.0),
        };
        let args = job.output_args().join(" ");
        assert!(args.contains("scale=-2:'trunc(min(480,ih)/2)*2'"), "{args}");
        assert!(
            args.contains("libvpx-vp9") && args.contains("libopus"),
            "{args}"
        );
        let silent = TranscodeJob {
            has_audio: false,
            format: Format::Mp4,
            ..job
        };
        let args = silent.output_args().join(" ");
        assert!(!args.contains("0:a:0") && !args.contains("-c:a"), "{args}");
        assert!(args.contains("libx264"), "{args}");
        let asked = TranscodeJob {
            upscale: true,
            resolution: Resolution::P1080,
            ..silent
        };
        assert!(asked.output_args().join(" ").contains("scale=-2:1080"));
    }
}
