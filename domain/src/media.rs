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

/// A container Aurora admits as a run's input, decided by the file's structure.
///
/// A file is admitted only as one of these: its first bytes name a candidate (the sniff),
/// and ffprobe must then read it with *that demuxer forced* (`-f`) and no other allowed
/// (`-format_whitelist`). Every later ffprobe/ffmpeg call on the file forces the same
/// demuxer. A file that merely starts like one of these and continues as something else
/// (an HLS playlist or an `ffconcat` script behind an ID3 tag, say) is therefore never
/// read as that something else: reference-following demuxers (playlists, concat, image
/// sequences …) cannot open user input, and through them other files on the server.
///
/// AVI, FLV and MPEG program streams are deliberately not admitted (rarely needed, large
/// demuxers); nor is anything ffprobe would only recognise by guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// MP4 and QuickTime (ISO base media file format): ffmpeg's `mov` demuxer.
    Mp4,
    /// Matroska and WebM (EBML).
    Matroska,
    /// MPEG transport stream.
    MpegTs,
    /// RIFF/WAVE audio.
    Wav,
    /// Ogg (Vorbis, Opus, Theora …).
    Ogg,
    /// FLAC audio.
    Flac,
    /// MPEG audio layer III (with or without an ID3v2 tag).
    Mp3,
}

impl InputFormat {
    /// Every admitted format.
    pub const ALL: [InputFormat; 7] = [
        InputFormat::Mp4,
        InputFormat::Matroska,
        InputFormat::MpegTs,
        InputFormat::Wav,
        InputFormat::Ogg,
        InputFormat::Flac,
        InputFormat::Mp3,
    ];

    /// The candidate format named by a file's first bytes (magic numbers), `None` for
    /// anything else. A candidate only: admission is decided by ffprobe reading the file
    /// with this format's demuxer forced.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        let at =
            |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
        if at(4, b"ftyp") {
            return Some(Self::Mp4);
        }
        if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
            return Some(Self::Matroska);
        }
        if at(0, b"RIFF") && at(8, b"WAVE") {
            return Some(Self::Wav);
        }
        if at(0, b"OggS") {
            return Some(Self::Ogg);
        }
        if at(0, b"fLaC") {
            return Some(Self::Flac);
        }
        if at(0, b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
            return Some(Self::Mp3);
        }
        if head.len() >= 189 && head[0] == 0x47 && head[188] == 0x47 {
            return Some(Self::MpegTs);
        }
        None
    }

    /// ffmpeg's name of the demuxer that reads this format (what `-f` takes).
    pub fn demuxer(self) -> &'static str {
        match self {
            Self::Mp4 => "mov",
            Self::Matroska => "matroska",
            Self::MpegTs => "mpegts",
            Self::Wav => "wav",
            Self::Ogg => "ogg",
            Self::Flac => "flac",
            Self::Mp3 => "mp3",
        }
    }

    /// What ffprobe reports as `format_name` when this format's demuxer read the file.
    pub fn format_name(self) -> &'static str {
        match self {
            Self::Mp4 => "mov,mp4,m4a,3gp,3g2,mj2",
            Self::Matroska => "matroska,webm",
            other => other.demuxer(),
        }
    }

    /// The media type recorded for an upload of this format.
    pub fn content_type(self, head: &[u8]) -> &'static str {
        match self {
            Self::Mp4 if head.get(8..12) == Some(b"qt  ") => "video/quicktime",
            Self::Mp4 => "video/mp4",
            Self::Matroska => "video/webm",
            Self::MpegTs => "video/mp2t",
            Self::Wav => "audio/wav",
            Self::Ogg => "audio/ogg",
            Self::Flac => "audio/flac",
            Self::Mp3 => "audio/mpeg",
        }
    }

    /// The format of an upload recorded with `content_type` (uploads record their media
    /// type, not the demuxer). `None` for types no longer admitted (AVI, FLV, MPEG-PS
    /// uploads of earlier versions): such media cannot be a run's input.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        Some(match content_type {
            "video/mp4" | "video/quicktime" => Self::Mp4,
            "video/webm" => Self::Matroska,
            "video/mp2t" => Self::MpegTs,
            "audio/wav" => Self::Wav,
            "audio/ogg" => Self::Ogg,
            "audio/flac" => Self::Flac,
            "audio/mpeg" => Self::Mp3,
            _ => return None,
        })
    }

    /// The admitted formats, named for error messages.
    pub fn names() -> &'static str {
        "MP4/MOV, Matroska/WebM, MPEG-TS, WAV, Ogg, FLAC, MP3"
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
    fn formats_are_named_by_their_first_bytes_not_their_name() {
        let mut mp4 = vec![0, 0, 0, 0x20];
        mp4.extend(b"ftypisom");
        assert_eq!(InputFormat::sniff(&mp4), Some(InputFormat::Mp4));
        assert_eq!(InputFormat::Mp4.content_type(&mp4), "video/mp4");
        let mut mov = vec![0, 0, 0, 0x14];
        mov.extend(b"ftypqt  ");
        assert_eq!(InputFormat::Mp4.content_type(&mov), "video/quicktime");
        let ebml = [0x1A, 0x45, 0xDF, 0xA3, 1];
        assert_eq!(InputFormat::sniff(&ebml), Some(InputFormat::Matroska));
        assert_eq!(
            InputFormat::sniff(b"RIFF\0\0\0\0WAVEfmt "),
            Some(InputFormat::Wav)
        );
        assert_eq!(InputFormat::sniff(b"OggS\0\x02"), Some(InputFormat::Ogg));
        assert_eq!(
            InputFormat::sniff(b"fLaC\0\0\0\x22"),
            Some(InputFormat::Flac)
        );
        assert_eq!(
            InputFormat::sniff(b"ID3\x03\0\0\0\0\0\0"),
            Some(InputFormat::Mp3)
        );
        assert_eq!(
            InputFormat::sniff(&[0xFF, 0xFB, 0x90]),
            Some(InputFormat::Mp3)
        );
        let mut ts = vec![0u8; 189];
        (ts[0], ts[188]) = (0x47, 0x47);
        assert_eq!(InputFormat::sniff(&ts), Some(InputFormat::MpegTs));
        // No longer admitted, or never media.
        assert_eq!(InputFormat::sniff(b"RIFF\0\0\0\0AVI LIST"), None);
        assert_eq!(InputFormat::sniff(b"FLV\x01"), None);
        assert_eq!(InputFormat::sniff(&[0, 0, 1, 0xBA]), None);
        assert_eq!(InputFormat::sniff(b"#EXTM3U\n"), None);
        assert_eq!(InputFormat::sniff(b"ffconcat version 1.0\n"), None);
        assert_eq!(
            InputFormat::sniff(b"hello, this is text named clip.mp4"),
            None
        );
        assert_eq!(InputFormat::sniff(b""), None);
    }

    #[test]
    fn a_recorded_content_type_names_the_format_it_was_admitted_as() {
        for format in InputFormat::ALL {
            let head: &[u8] = b"";
            assert_eq!(
                InputFormat::from_content_type(format.content_type(head)),
                Some(format)
            );
        }
        for retired in ["video/x-msvideo", "video/x-flv", "video/mpeg", "text/plain"] {
            assert_eq!(InputFormat::from_content_type(retired), None);
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
