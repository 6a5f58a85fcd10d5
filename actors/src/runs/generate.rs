//! The work of one attempt of a `generate` step (see [`crate::generate`]): create or
//! resume the provider's video, wait for it, download it into the run's artifacts.

use aurora_domain::media::InputFormat;
use aurora_domain::run::{RunCommand, RunError, Step, StepOutput};
use cqrs_es::AggregateError;
use tokio::time::Instant;

use super::metadata;
use super::step::StepWork;
use crate::artifacts::ArtifactStore;
use crate::generate::{next_pause, ApiVersion, Heygen, ProviderError, Status};
use crate::tools::{Demuxer, ToolError};
use std::time::Duration;

impl StepWork<'_> {
    /// The step's video: the one the run recorded for it, else a new one.
    pub(super) async fn generate(&self, step: &Step) -> Result<StepOutput, ToolError> {
        let recorded = self.run.generation(self.step);
        let Some(client) = &self.deps.heygen else {
            let why = "generate steps need a provider key, and this replica has none for \
                       heygen (AURORA_HEYGEN_API_KEY)";
            // A video already paid for is not given up over one replica's settings.
            return Err(match recorded {
                Some(_) => ToolError::Failed(why.into()),
                None => ToolError::Invalid(why.into()),
            });
        };
        let timeout = self.deps.settings.generate.timeout;
        let (video_id, deadline) = match recorded {
            Some(recorded) => {
                tracing::info!(run_id = %self.run_id, step = self.step, video_id = %recorded.video_id,
                    "resuming the wait for the recorded generation");
                // The step's timeout counts from when the provider took the request, over
                // every attempt.
                let left = (recorded.submitted_at + timeout - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default();
                (recorded.video_id.clone(), Instant::now() + left)
            }
            None => {
                let video_id = self.create(client, step, Instant::now() + timeout).await?;
                self.record(client, &video_id).await?;
                (video_id, Instant::now() + timeout)
            }
        };
        let video_url = self.wait(client, &video_id, deadline).await?;
        self.download(&video_url).await
    }

    /// Asks the provider for the video, retrying busy and failed answers until `deadline`.
    async fn create(
        &self,
        client: &Heygen,
        step: &Step,
        deadline: Instant,
    ) -> Result<String, ToolError> {
        let settings = &self.deps.settings.generate;
        // The same on every attempt of the step: a creation repeated after a lost answer
        // is replayed by the provider (v3), not paid for twice.
        let key = format!("aurora:{}:{}", self.run_id, self.step);
        let mut backoff = settings.poll;
        loop {
            let error = match client.create(step, &key, &key).await {
                Ok(video_id) => {
                    self.deps.metrics.generations("created");
                    tracing::info!(run_id = %self.run_id, step = self.step, %video_id, "generation submitted");
                    return Ok(video_id);
                }
                Err(error) => error,
            };
            match error {
                ProviderError::Refused(why) | ProviderError::Unknown(why) => {
                    self.deps.metrics.generations("refused");
                    return Err(ToolError::Invalid(format!(
                        "the provider refused the generation: {why}"
                    )));
                }
                ProviderError::Unavailable {
                    what,
                    created_maybe: true,
                    ..
                } if client.api() == ApiVersion::V2 => {
                    self.deps.metrics.generations("ambiguous");
                    return Err(ToolError::Invalid(format!(
                        "{what}; the video may have been created all the same, and without an \
                         idempotency key (API v2) it is not asked for again, so as not to pay twice"
                    )));
                }
                ProviderError::Unavailable {
                    what, retry_after, ..
                } => {
                    self.deps.metrics.generations("retried");
                    let pause = next_pause(backoff, retry_after);
                    backoff = (backoff * 2).min(settings.poll_max);
                    if Instant::now() + pause > deadline {
                        return Err(ToolError::Failed(format!(
                            "{what}; no video was asked for in this attempt"
                        )));
                    }
                    tracing::info!(run_id = %self.run_id, step = self.step, %what, ?pause,
                        "the provider did not take the generation; asking again");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = self.cancel.cancelled() => return Err(ToolError::Cancelled),
                    }
                }
            }
        }
    }

    /// Records the provider's id before anything waits on it (an id that is not one ends
    /// the run). A store that fails is asked again for a while: the video is paid for, and
    /// only the record keeps a later attempt from paying again.
    async fn record(&self, client: &Heygen, video_id: &str) -> Result<(), ToolError> {
        let command = RunCommand::RecordGeneration {
            step: self.step,
            attempt: self.attempt,
            video_id: video_id.to_string(),
            at: chrono::Utc::now(),
        };
        let what = format!("{}:{}:generation", self.step, self.attempt);
        let mut pause = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            tries += 1;
            let error = match self
                .deps
                .runs
                .execute(
                    &self.run_id.to_string(),
                    command.clone(),
                    &metadata(self.run_id, &what),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            match error {
                AggregateError::UserError(
                    error @ (RunError::StaleAttempt { .. }
                    | RunError::AlreadyFinished(_)
                    | RunError::GenerationRecorded { .. }),
                ) => {
                    // The run moved on meanwhile; whoever has it recorded its video, or
                    // asks with the same idempotency key.
                    tracing::warn!(run_id = %self.run_id, %video_id, %error, "the generation is not recorded: the run moved on");
                    return Err(ToolError::Cancelled);
                }
                AggregateError::UserError(error) => {
                    return Err(ToolError::Invalid(format!(
                        "the provider's video {video_id} cannot be recorded: {error}"
                    )));
                }
                error if tries >= 6 => {
                    tracing::error!(run_id = %self.run_id, %video_id, %error, "the generation could not be recorded");
                    let why =
                        format!("the provider's video {video_id} could not be recorded: {error}");
                    // Without an idempotency key the next attempt would pay again.
                    return Err(match client.api() {
                        ApiVersion::V2 => ToolError::Invalid(why),
                        ApiVersion::V3 => ToolError::Failed(why),
                    });
                }
                error => {
                    tracing::warn!(run_id = %self.run_id, %video_id, %error, "recording the generation; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
    }

    /// Waits for the video: its status, polled with backoff, or at once when a webhook
    /// reports it. Its URL when it is ready.
    async fn wait(
        &self,
        client: &Heygen,
        video_id: &str,
        deadline: Instant,
    ) -> Result<String, ToolError> {
        let settings = &self.deps.settings.generate;
        let waiter = self.deps.signals.waiter(video_id);
        let mut pause = settings.poll;
        let mut unknown = 0;
        loop {
            let trouble = match client.status(video_id).await {
                Ok(Status::Completed { video_url }) => {
                    self.deps.metrics.generations("completed");
                    return Ok(video_url);
                }
                Ok(Status::Failed { message }) => {
                    self.deps.metrics.generations("failed");
                    return Err(ToolError::Invalid(format!(
                        "the provider failed video {video_id}: {message}"
                    )));
                }
                Ok(Status::Pending(_)) => {
                    unknown = 0;
                    None
                }
                // Three answers in a row, not one: a video can be unknown for a moment
                // right after it was created.
                Err(ProviderError::Unknown(_)) if unknown >= 2 => {
                    return Err(ToolError::Invalid(format!(
                        "the provider has no video {video_id}"
                    )));
                }
                Err(error @ ProviderError::Unknown(_)) => {
                    unknown += 1;
                    Some(error.to_string())
                }
                Err(ProviderError::Refused(why)) => Some(why),
                Err(ProviderError::Unavailable {
                    what, retry_after, ..
                }) => {
                    pause = next_pause(pause, retry_after);
                    Some(what)
                }
            };
            let now = Instant::now();
            if now >= deadline {
                let last = trouble.map(|t| format!(" (last: {t})")).unwrap_or_default();
                self.deps.metrics.generations("timed_out");
                return Err(ToolError::Invalid(format!(
                    "video {video_id} was not ready within {:?} of being asked for{last}",
                    settings.timeout
                )));
            }
            tokio::select! {
                () = tokio::time::sleep(pause.min(deadline - now)) => {}
                () = waiter.notified() => {
                    tracing::debug!(%video_id, "the provider reported the video; looking now");
                }
                () = self.cancel.cancelled() => return Err(ToolError::Cancelled),
            }
            pause = (pause * 2).min(settings.poll_max);
        }
    }

    /// Downloads the finished video through the guarded fetcher into the run's artifacts.
    async fn download(&self, video_url: &str) -> Result<StepOutput, ToolError> {
        let (_, staging) = self.output("download").await?;
        let format = crate::fetch::download(
            &self.deps.settings.fetch,
            &staging,
            video_url,
            self.cancel,
            Some(&self.deps.settings.generate.media_hosts),
        )
        .await
        // A presigned URL may have expired, a download may break: the next attempt asks
        // for the status (a fresh URL) and downloads again, without paying again.
        .map_err(|error| match error {
            ToolError::Cancelled => ToolError::Cancelled,
            other => ToolError::Failed(format!("downloading the generated video: {other}")),
        })?;
        let (extension, content_type) = match format {
            InputFormat::Mp4 => ("mp4", "video/mp4"),
            InputFormat::Matroska => ("webm", "video/webm"),
            other => {
                let _ = tokio::fs::remove_file(&staging).await;
                return Err(ToolError::Failed(format!(
                    "the generated file is {}, not a video",
                    other.demuxer()
                )));
            }
        };
        let name = ArtifactStore::step_file_name(self.step, self.attempt, extension);
        let final_path = staging.with_file_name(name);
        self.finish_file(
            Ok(()),
            &staging,
            &final_path,
            content_type,
            Demuxer::of(format),
            None,
        )
        .await
    }
}
