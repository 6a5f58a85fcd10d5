//! Media: the `Media` aggregate (an uploaded file) and the value objects that describe media
//! and the artifacts runs produce.
//!
//! An upload is one event, `MediaUploaded`, recorded after the file is complete in the
//! artifact store and its type was checked: the event is the proof the file is there, and
//! whose it is. The bytes never enter an event.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One stream of a media file, as ffprobe reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamInfo {
    /// Index in the container.
    pub index: u32,
    /// `video`, `audio`, `subtitle`, `data` …
    pub kind: String,
    /// Codec name (`h264`, `vp9`, `aac`, `opus` …).
    pub codec: String,
    /// Frame width (video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Frame height (video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Average frame rate as a fraction, e.g. `30/1` (video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<String>,
    /// Samples per second (audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// Channels (audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
}

/// What ffprobe says about a media file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaInfo {
    /// Container (ffprobe's `format_name`, e.g. `mov,mp4,m4a,3gp,3g2,mj2`).
    pub container: String,
    /// Duration in seconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Overall bit rate in bits per second, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_rate: Option<u64>,
    /// The streams.
    pub streams: Vec<StreamInfo>,
}

impl MediaInfo {
    /// The first video stream.
    pub fn video(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == "video")
    }

    /// The first audio stream.
    pub fn audio(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == "audio")
    }
}

/// A file a run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Artifact {
    /// The artifact's id (its download is `/api/v1/runs/{run}/artifacts/{id}`).
    pub id: Uuid,
    /// The file name Aurora gave it (never a client's).
    pub name: String,
    /// Its media type, e.g. `video/webm`.
    pub content_type: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Width of the picture, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height of the picture, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Duration in seconds, for audio and video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
}

/// A request to change a media file's record.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Record a completed, checked upload.
    RecordUpload(Upload),
}

/// A completed, checked upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// The media id.
    pub media_id: Uuid,
    /// The uploader.
    pub owner: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// The type found by looking at the content (magic number), e.g. `video/mp4`.
    pub content_type: String,
    /// What ffprobe found.
    pub info: MediaInfo,
}

/// Something that happened to a media file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MediaEvent {
    /// A file was uploaded, stored and checked.
    MediaUploaded(Upload),
}

impl DomainEvent for MediaEvent {
    fn event_type(&self) -> String {
        match self {
            MediaEvent::MediaUploaded(_) => "MediaUploaded".to_string(),
        }
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// Why a media command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MediaError {
    /// The media id is taken.
    #[error("media already exists")]
    AlreadyExists,
}

/// An uploaded media file.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    upload: Option<Upload>,
}

impl Media {
    /// The upload, if there was one.
    pub fn upload(&self) -> Option<&Upload> {
        self.upload.as_ref()
    }
}

impl Aggregate for Media {
    const TYPE: &'static str = "media";
    type Command = MediaCommand;
    type Event = MediaEvent;
    type Error = MediaError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            MediaCommand::RecordUpload(upload) => {
                if self.upload.is_some() {
                    return Err(MediaError::AlreadyExists);
                }
                sink.write(MediaEvent::MediaUploaded(upload), self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            MediaEvent::MediaUploaded(upload) => self.upload = Some(upload),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn upload() -> Upload {
        Upload {
            media_id: Uuid::from_u128(7),
            owner: "alice".into(),
            bytes: 1234,
            sha256: "ab".repeat(32),
            content_type: "video/mp4".into(),
            info: MediaInfo {
                container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
                duration_seconds: Some(10.0),
                bit_rate: Some(1_000_000),
                streams: vec![],
            },
        }
    }

    #[test]
    fn an_upload_is_recorded_once() {
        TestFramework::<Media>::with(())
            .given_no_previous_events()
            .when(MediaCommand::RecordUpload(upload()))
            .then_expect_events(vec![MediaEvent::MediaUploaded(upload())]);
        TestFramework::<Media>::with(())
            .given(vec![MediaEvent::MediaUploaded(upload())])
            .when(MediaCommand::RecordUpload(upload()))
            .then_expect_error(MediaError::AlreadyExists);
    }
}
