//! The work of one attempt of one step: probe, fetch, transcode, thumbnail.

use std::path::PathBuf;

use aurora_domain::media::{Artifact, InputFormat, MediaInfo};
use aurora_domain::run::{Input, Run, RunCommand, Step, StepOutput};
use ractor::ActorRef;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::metadata;
use crate::artifacts::ArtifactStore;
use crate::deps::Deps;
use crate::progress::RunProgress;
use crate::tools::{format_file, Demuxer, ToolError, TranscodeJob};
use crate::transcode::{PoolMsg, TranscodeRequest};

/// The work of one attempt of one step, outside the actor so that the actor stays
/// responsive (a cancel arrives while ffmpeg runs).
pub(super) struct StepWork<'a> {
    pub(super) deps: &'a Deps,
    /// The transcode pool as it is when the transcode is submitted (the run actor keeps
    /// it current across the pool's restarts).
    pub(super) pool: watch::Receiver<ActorRef<PoolMsg>>,
    pub(super) run_id: Uuid,
    pub(super) run: &'a Run,
    pub(super) step: usize,
    pub(super) attempt: u32,
    pub(super) cancel: &'a CancellationToken,
}

impl StepWork<'_> {
    /// The step's work; a final failure names the step (`step 2 (thumbnail): …`).
    pub(super) async fn run(&self) -> Result<StepOutput, ToolError> {
        let kind = self
            .run
            .steps()
            .get(self.step)
            .map_or("unknown", Step::kind);
        self.work().await.map_err(|error| match error {
            ToolError::Invalid(reason) => {
                ToolError::Invalid(format!("step {} ({kind}): {reason}", self.step))
            }
            other => other,
        })
    }

    async fn work(&self) -> Result<StepOutput, ToolError> {
        if let Some(step @ Step::Generate { .. }) = self.run.steps().get(self.step) {
            return self.generate(step).await;
        }
        let (input, demuxer, known) = self.input().await?;
        let timeout = self.deps.settings.step_timeout;
        match self.run.steps().get(self.step) {
            Some(Step::Probe {}) => {
                let media = self.deps.tools.probe(&input, demuxer, timeout).await?;
                Ok(StepOutput::Probe { media })
            }
            Some(Step::Transcode {
                format,
                quality,
                resolution,
                upscale,
            }) => {
                let info = self.media_info(&input, demuxer, known.clone()).await?;
                if info.video().is_none() {
                    return Err(ToolError::Invalid("the input has no video stream".into()));
                }
                let (extension, content_type) = format_file(*format);
                let (final_path, part) = self.output(extension).await?;
                let job = TranscodeJob {
                    input,
                    demuxer,
                    output: part.clone(),
                    format: *format,
                    quality: *quality,
                    resolution: *resolution,
                    upscale: *upscale,
                    has_audio: info.audio().is_some(),
                    duration_seconds: info.duration_seconds,
                };
                let duration = info.duration_seconds;
                let outcome = self.transcode(job).await;
                // ffmpeg said what it wrote: no read-back probe needed (it costs ~3 % of a
                // short transcode).
                let known = match &outcome {
                    Ok(Some((width, height))) => Some((*width, *height, duration)),
                    _ => None,
                };
                let output = Demuxer::of_output(*format);
                self.finish_file(
                    outcome.map(|_| ()),
                    &part,
                    &final_path,
                    content_type,
                    output,
                    known,
                )
                .await
            }
            Some(Step::Thumbnail { at_seconds }) => {
                let info = self.media_info(&input, demuxer, known.clone()).await?;
                if info.video().is_none() {
                    return Err(ToolError::Invalid("the input has no video stream".into()));
                }
                if let Some(duration) = info.duration_seconds {
                    if *at_seconds >= duration {
                        return Err(ToolError::Invalid(format!(
                            "a thumbnail at {at_seconds} s is past the end of the media ({duration:.2} s)"
                        )));
                    }
                }
                let (final_path, part) = self.output("jpg").await?;
                let outcome = self
                    .deps
                    .tools
                    .thumbnail(&input, demuxer, *at_seconds, &part, self.cancel, timeout)
                    .await;
                self.finish_file(
                    outcome,
                    &part,
                    &final_path,
                    "image/jpeg",
                    Demuxer::JPEG,
                    None,
                )
                .await
            }
            Some(Step::Generate { .. }) => unreachable!("generate steps are handled above"),
            None => Err(ToolError::Invalid(format!(
                "the run has no step {}",
                self.step
            ))),
        }
    }

    /// The input file on local disk, the demuxer it was admitted with, and what ffprobe
    /// found when it was uploaded.
    async fn input(&self) -> Result<(PathBuf, Demuxer, Option<MediaInfo>), ToolError> {
        match self.run.input() {
            Some(Input::MediaId(id)) => {
                let media = self
                    .deps
                    .media
                    .load(&id.to_string())
                    .await
                    .map_err(|e| ToolError::Failed(format!("cannot load media {id}: {e}")))?;
                let Some(upload) = media.upload() else {
                    return Err(ToolError::Invalid(format!("media {id} does not exist")));
                };
                // Read as what it was admitted as, and nothing else.
                let Some(format) = InputFormat::from_content_type(&upload.content_type) else {
                    return Err(ToolError::Invalid(format!(
                        "media {id} is {}, which is no longer admitted as an input ({})",
                        upload.content_type,
                        InputFormat::names()
                    )));
                };
                let path = self.deps.artifacts.media(upload.media_id);
                if tokio::fs::metadata(&path).await.is_err() {
                    return Err(ToolError::Failed(format!(
                        "the file of media {id} is missing from the artifact store"
                    )));
                }
                Ok((path, Demuxer::of(format), Some(upload.info.clone())))
            }
            Some(Input::Url(url)) => {
                let (path, format) = crate::fetch::fetch_input(
                    &self.deps.settings.fetch,
                    &self.deps.artifacts,
                    self.run_id,
                    url,
                    self.cancel,
                )
                .await?;
                Ok((path, Demuxer::of(format), None))
            }
            // Generated by the first step: its video.
            None => {
                let Some(artifact) = self.run.outputs().first().and_then(StepOutput::artifact)
                else {
                    return Err(ToolError::Invalid("the run has no input".into()));
                };
                let format = InputFormat::from_content_type(&artifact.content_type)
                    .ok_or_else(|| ToolError::Invalid("the generated file is not media".into()))?;
                let path = self
                    .deps
                    .artifacts
                    .artifact(self.run_id, &artifact.name)
                    .ok_or_else(|| ToolError::Invalid("the generated file is misnamed".into()))?;
                if tokio::fs::metadata(&path).await.is_err() {
                    return Err(ToolError::Failed(
                        "the generated video is missing from the artifact store".into(),
                    ));
                }
                Ok((path, Demuxer::of(format), None))
            }
        }
    }

    /// What an earlier probe step found, else what the upload's check found, else a probe
    /// now.
    async fn media_info(
        &self,
        input: &std::path::Path,
        demuxer: Demuxer,
        known: Option<MediaInfo>,
    ) -> Result<MediaInfo, ToolError> {
        let earlier = self.run.outputs().iter().rev().find_map(|o| match o {
            StepOutput::Probe { media } => Some(media.clone()),
            StepOutput::Artifact { .. } => None,
        });
        match earlier.or(known) {
            Some(info) => Ok(info),
            None => {
                self.deps
                    .tools
                    .probe(input, demuxer, self.deps.settings.step_timeout)
                    .await
            }
        }
    }

    pub(super) async fn output(&self, extension: &str) -> Result<(PathBuf, PathBuf), ToolError> {
        let dir = self.deps.artifacts.run_dir(self.run_id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ToolError::Failed(format!("cannot create the run's directory: {e}")))?;
        let name = ArtifactStore::step_file_name(self.step, self.attempt, extension);
        let final_path = dir.join(name);
        let part = ArtifactStore::part(&final_path);
        Ok((final_path, part))
    }

    async fn transcode(&self, job: TranscodeJob) -> Result<Option<(u32, u32)>, ToolError> {
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let (reply, outcome) = oneshot::channel();
        let request = TranscodeRequest {
            job,
            cancel: self.cancel.clone(),
            timeout: self.deps.settings.step_timeout,
            progress: progress_tx,
            reply,
        };
        let pool = self.pool.borrow().clone();
        pool.cast(PoolMsg::Submit(Box::new(request)))
            .map_err(|e| ToolError::Failed(format!("the transcode pool is gone: {e}")))?;
        // Live progress to the hub; milestones (25/50/75 %) to the store.
        let forward = async {
            let mut milestone = 0u8;
            while let Some(report) = progress_rx.recv().await {
                self.deps
                    .progress
                    .publish(RunProgress {
                        run_id: self.run_id.to_string(),
                        step: self.step,
                        attempt: self.attempt,
                        percent: report.percent,
                        fps: report.fps,
                        speed: report.speed,
                        out_seconds: report.out_seconds,
                    })
                    .await;
                let reached = [25u8, 50, 75]
                    .into_iter()
                    .rfind(|m| report.percent >= f32::from(*m))
                    .unwrap_or(0);
                if reached > milestone {
                    milestone = reached;
                    let command = RunCommand::RecordProgress {
                        step: self.step,
                        attempt: self.attempt,
                        percent: reached,
                    };
                    let what = format!("{}:{}:progress", self.step, self.attempt);
                    if let Err(error) = self
                        .deps
                        .runs
                        .execute(
                            &self.run_id.to_string(),
                            command,
                            &metadata(self.run_id, &what),
                        )
                        .await
                    {
                        tracing::debug!(%error, "milestone not recorded");
                    }
                }
            }
        };
        let (result, ()) = tokio::join!(
            async {
                outcome.await.unwrap_or_else(|_| {
                    Err(ToolError::Failed(
                        "the transcode worker crashed mid-job".into(),
                    ))
                })
            },
            forward
        );
        result
    }

    /// Checks and names a file a tool wrote at `part`, then moves it to `final_path`.
    /// On failure the partial file is removed.
    /// `known`: the picture size and duration the tool reported; without it the file is
    /// read back with ffprobe.
    pub(super) async fn finish_file(
        &self,
        outcome: Result<(), ToolError>,
        part: &std::path::Path,
        final_path: &std::path::Path,
        content_type: &str,
        demuxer: Demuxer,
        known: Option<(u32, u32, Option<f64>)>,
    ) -> Result<StepOutput, ToolError> {
        let checked = async {
            outcome?;
            let probe = async {
                match known {
                    Some((width, height, duration)) => Ok(MediaInfo {
                        container: String::new(),
                        duration_seconds: duration,
                        bit_rate: None,
                        streams: vec![aurora_domain::media::StreamInfo {
                            index: 0,
                            kind: "video".into(),
                            codec: String::new(),
                            width: Some(width),
                            height: Some(height),
                            frame_rate: None,
                            sample_rate: None,
                            channels: None,
                        }],
                    }),
                    None => {
                        self.deps
                            .tools
                            .probe(part, demuxer, self.deps.settings.step_timeout)
                            .await
                    }
                }
            };
            // Read back (when needed) and hashed at the same time.
            let (info, digest) = tokio::join!(probe, ArtifactStore::digest(part));
            let info =
                info.map_err(|e| ToolError::Failed(format!("the output does not read back: {e}")))?;
            let (bytes, sha256) =
                digest.map_err(|e| ToolError::Failed(format!("cannot read the output: {e}")))?;
            ArtifactStore::commit(part, final_path)
                .await
                .map_err(|e| ToolError::Failed(format!("cannot store the output: {e}")))?;
            let video = info.video();
            Ok(StepOutput::Artifact {
                artifact: Artifact {
                    id: Uuid::new_v4(),
                    name: final_path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    content_type: content_type.into(),
                    bytes,
                    sha256,
                    width: video.and_then(|v| v.width),
                    height: video.and_then(|v| v.height),
                    duration_seconds: info
                        .duration_seconds
                        .filter(|_| content_type.starts_with("video/")),
                },
            })
        }
        .await;
        if checked.is_err() {
            let _ = tokio::fs::remove_file(part).await;
        }
        checked
    }
}
