//! A transcode as ffmpeg arguments, and its live progress.

use std::path::PathBuf;

use aurora_domain::run::{Format, Quality, Resolution};

use super::Demuxer;

/// Live progress of a transcode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Percent of the input's duration done (0 when the duration is unknown).
    pub percent: f32,
    /// Frames encoded per second.
    pub fps: f32,
    /// Speed relative to real time.
    pub speed: f32,
    /// Position in the output, in seconds.
    pub out_seconds: f64,
}

/// One transcode.
#[derive(Debug, Clone)]
pub struct TranscodeJob {
    /// The input file.
    pub input: PathBuf,
    /// What reads it.
    pub demuxer: Demuxer,
    /// Where to write (a temporary name; the caller renames it when complete).
    pub output: PathBuf,
    /// Container and codecs.
    pub format: Format,
    /// Encoder settings.
    pub quality: Quality,
    /// Target height.
    pub resolution: Resolution,
    /// Scale a smaller input up to the target height (else it keeps its size).
    pub upscale: bool,
    /// Does the input have an audio stream?
    pub has_audio: bool,
    /// The input's duration, for percentages.
    pub duration_seconds: Option<f64>,
}

impl TranscodeJob {
    /// ffmpeg's arguments after the input, up to (not including) the output path.
    pub fn output_args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["-map".into(), "0:v:0".into()];
        if self.has_audio {
            args.extend(["-map".into(), "0:a:0".into()]);
        }
        // Keep the aspect ratio; even dimensions for 4:2:0; no upscaling unless asked.
        let height = match self.resolution {
            Resolution::P480 => Some(480),
            Resolution::P720 => Some(720),
            Resolution::P1080 => Some(1080),
            Resolution::Source => None,
        };
        let scale = match (height, self.upscale) {
            (Some(h), false) => format!("scale=-2:'trunc(min({h},ih)/2)*2'"),
            (Some(h), true) => format!("scale=-2:{h}"),
            (None, _) => "scale='trunc(iw/2)*2':'trunc(ih/2)*2'".to_string(),
        };
        args.extend(["-vf".into(), scale, "-pix_fmt".into(), "yuv420p".into()]);
        let (crf, audio_bitrate) = match (self.format, self.quality) {
            (Format::Mp4, Quality::Low) => ("30", "96k"),
            (Format::Mp4, Quality::Medium) => ("23", "128k"),
            (Format::Mp4, Quality::High) => ("18", "192k"),
            (Format::Webm, Quality::Low) => ("40", "64k"),
            (Format::Webm, Quality::Medium) => ("33", "96k"),
            (Format::Webm, Quality::High) => ("24", "128k"),
        };
        match self.format {
            Format::Mp4 => args.extend(
                [
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-crf",
                    crf,
                    "-movflags",
                    "+faststart",
                    "-f",
                    "mp4",
                ]
                .map(String::from),
            ),
            Format::Webm => args.extend(
                [
                    "-c:v",
                    "libvpx-vp9",
                    "-b:v",
                    "0",
                    "-crf",
                    crf,
                    "-deadline",
                    "realtime",
                    "-cpu-used",
                    "8",
                    "-row-mt",
                    "1",
                    "-f",
                    "webm",
                ]
                .map(String::from),
            ),
        }
        if self.has_audio {
            let codec = match self.format {
                Format::Mp4 => "aac",
                Format::Webm => "libopus",
            };
            args.extend([
                "-c:a".into(),
                codec.into(),
                "-b:a".into(),
                audio_bitrate.into(),
            ]);
        }
        args
    }
}

/// File extension and media type of a format's output.
pub fn format_file(format: Format) -> (&'static str, &'static str) {
    match format {
        Format::Mp4 => ("mp4", "video/mp4"),
        Format::Webm => ("webm", "video/webm"),
    }
}
