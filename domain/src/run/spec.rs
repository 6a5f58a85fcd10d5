//! What a run does: its input and its ordered steps.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// At most this many steps in one run.
pub const MAX_STEPS: usize = 32;
/// Input URLs longer than this are refused.
pub const MAX_INPUT_URL_LEN: usize = 2048;
/// Thumbnails can be taken at most this far into the media (24 hours).
pub const MAX_THUMBNAIL_SECONDS: f64 = 86_400.0;

/// The media a run works on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Input {
    /// Media previously uploaded to Aurora.
    MediaId(Uuid),
    /// Media fetched from an `http` or `https` URL.
    Url(String),
}

/// Container format of a transcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// H.264 + AAC in MP4.
    Mp4,
    /// VP9 + Opus in WebM.
    Webm,
}

/// Quality preset of a transcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Small files.
    Low,
    /// The default trade-off.
    Medium,
    /// Large files, best picture.
    High,
}

/// Output resolution of a transcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Resolution {
    /// 854×480.
    #[serde(rename = "480p")]
    P480,
    /// 1280×720.
    #[serde(rename = "720p")]
    P720,
    /// 1920×1080.
    #[serde(rename = "1080p")]
    P1080,
    /// Keep the input's resolution.
    #[serde(rename = "source")]
    Source,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Step {
    /// Read the input's container and stream metadata. (A struct variant, so that unknown
    /// fields are refused like everywhere else.)
    Probe {},
    /// Produce a rendition.
    Transcode {
        /// Container format.
        format: Format,
        /// Quality preset.
        quality: Quality,
        /// Output resolution.
        resolution: Resolution,
        /// Scale up an input smaller than `resolution` (by default it keeps its size:
        /// nothing is upscaled unless asked).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        upscale: bool,
    },
    /// Grab one frame as an image.
    Thumbnail {
        /// Position in the media, in seconds from the start.
        at_seconds: f64,
    },
}

/// A run's input and its ordered steps, as requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The media the run works on.
    pub input: Input,
    /// The steps, executed in order.
    pub steps: Vec<Step>,
}

/// Why a run spec was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// A run needs at least one step.
    #[error("a run needs at least one step")]
    NoSteps,
    /// Too many steps.
    #[error("a run has at most {MAX_STEPS} steps, this one has {0}")]
    TooManySteps(usize),
    /// The input URL is not an absolute http(s) URL of sensible length.
    #[error("input url must be an absolute http or https URL of at most {MAX_INPUT_URL_LEN} characters without spaces")]
    InvalidUrl,
    /// A thumbnail time outside `0..=MAX_THUMBNAIL_SECONDS`.
    #[error(
        "step {step}: thumbnail at_seconds must be between 0 and {MAX_THUMBNAIL_SECONDS}, got {at}"
    )]
    InvalidThumbnailTime {
        /// Index of the offending step (0-based).
        step: usize,
        /// The refused time.
        at: f64,
    },
}

impl RunSpec {
    /// Checks the rules that the types alone cannot express.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.steps.is_empty() {
            return Err(SpecError::NoSteps);
        }
        if self.steps.len() > MAX_STEPS {
            return Err(SpecError::TooManySteps(self.steps.len()));
        }
        if let Input::Url(url) = &self.input {
            if !is_acceptable_url(url) {
                return Err(SpecError::InvalidUrl);
            }
        }
        for (index, step) in self.steps.iter().enumerate() {
            if let Step::Thumbnail { at_seconds } = step {
                if !(at_seconds.is_finite() && (0.0..=MAX_THUMBNAIL_SECONDS).contains(at_seconds)) {
                    return Err(SpecError::InvalidThumbnailTime {
                        step: index,
                        at: *at_seconds,
                    });
                }
            }
        }
        Ok(())
    }
}

fn is_acceptable_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    url.len() <= MAX_INPUT_URL_LEN
        && !host.is_empty()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StepOutput {
    /// A probe's findings.
    Probe {
        /// What ffprobe found.
        media: crate::media::MediaInfo,
    },
    /// A file (a rendition, a thumbnail).
    Artifact {
        /// The file.
        artifact: crate::media::Artifact,
    },
}

impl StepOutput {
    /// The artifact, if the step produced a file.
    pub fn artifact(&self) -> Option<&crate::media::Artifact> {
        match self {
            StepOutput::Artifact { artifact } => Some(artifact),
            StepOutput::Probe { .. } => None,
        }
    }
}
