//! What a run does: its input and its ordered steps.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// At most this many steps in one run.
pub const MAX_STEPS: usize = 32;
/// Input URLs longer than this are refused.
pub const MAX_INPUT_URL_LEN: usize = 2048;
/// Thumbnails can be taken at most this far into the media (24 hours).
pub const MAX_THUMBNAIL_SECONDS: f64 = 86_400.0;
/// Longest script of a generate step, in characters (HeyGen's limit for a text voice).
pub const MAX_SCRIPT_CHARS: usize = 5000;
/// Longest avatar or voice id, in characters.
pub const MAX_PROVIDER_ID_LEN: usize = 128;
/// Smallest and largest side of a generated video, in pixels.
pub const GENERATED_SIDE: std::ops::RangeInclusive<u32> = 128..=3840;

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

/// The service a generate step asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// HeyGen's avatar videos (`POST /v3/videos`).
    Heygen,
}

impl Provider {
    /// Its name in the API, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Heygen => "heygen",
        }
    }
}

/// The picture size of a generated video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// Width in pixels (even, 128 to 3840).
    pub width: u32,
    /// Height in pixels (even, 128 to 3840).
    pub height: u32,
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
    /// Generate a talking-avatar video with a provider: the run's first step, in a run
    /// without an input; the steps after it work on the video it made.
    Generate {
        /// Who generates it.
        provider: Provider,
        /// The provider's avatar (look) id.
        avatar_id: String,
        /// The provider's voice id.
        voice_id: String,
        /// What the avatar says (at most 5000 characters).
        script: String,
        /// The picture size (the provider's default if absent). HeyGen's v3 API sizes by
        /// resolution and aspect ratio: the nearest (720p/1080p/4k; 16:9, 9:16, 1:1, 4:5,
        /// 5:4) is asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dimension: Option<Dimension>,
        /// A background colour, `#rrggbb` (the avatar's own background if absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        background: Option<String>,
    },
}

impl Step {
    /// The step's kind as written in a spec.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Probe {} => "probe",
            Step::Transcode { .. } => "transcode",
            Step::Thumbnail { .. } => "thumbnail",
            Step::Generate { .. } => "generate",
        }
    }
}

/// A run's input and its ordered steps, as requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The media the run works on; absent when the first step generates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
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
    /// A run without an input whose first step does not generate one.
    #[error("a run needs an input, unless its first step is a generate step")]
    NoInput,
    /// A run with an input whose first step generates one.
    #[error("a run whose first step is a generate step has no input: remove input")]
    InputWithGenerate,
    /// A generate step that is not the first.
    #[error("step {0}: a generate step can only be the first step")]
    GenerateNotFirst(usize),
    /// A generate step's field broke a rule.
    #[error("step {step}: {field} {reason}")]
    InvalidGenerate {
        /// Index of the offending step (0-based).
        step: usize,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl SpecError {
    /// Where in a run's JSON the fault is, as a JSON pointer (RFC 6901): a form shows the
    /// message next to that field.
    pub fn pointer(&self) -> String {
        match self {
            SpecError::NoSteps | SpecError::TooManySteps(_) => "/steps".to_string(),
            SpecError::InvalidUrl => "/input/url".to_string(),
            SpecError::InvalidThumbnailTime { step, .. } => format!("/steps/{step}/at_seconds"),
            SpecError::NoInput | SpecError::InputWithGenerate => "/input".to_string(),
            SpecError::GenerateNotFirst(step) => format!("/steps/{step}/kind"),
            SpecError::InvalidGenerate { step, field, .. } => format!("/steps/{step}/{field}"),
        }
    }
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
        if let Some(Input::Url(url)) = &self.input {
            if !is_acceptable_url(url) {
                return Err(SpecError::InvalidUrl);
            }
        }
        match (&self.input, self.steps.first()) {
            (Some(_), Some(Step::Generate { .. })) => return Err(SpecError::InputWithGenerate),
            (None, Some(Step::Generate { .. })) | (Some(_), _) => {}
            (None, _) => return Err(SpecError::NoInput),
        }
        for (index, step) in self.steps.iter().enumerate() {
            match step {
                Step::Thumbnail { at_seconds } => {
                    if !(at_seconds.is_finite()
                        && (0.0..=MAX_THUMBNAIL_SECONDS).contains(at_seconds))
                    {
                        return Err(SpecError::InvalidThumbnailTime {
                            step: index,
                            at: *at_seconds,
                        });
                    }
                }
                Step::Generate { .. } if index > 0 => {
                    return Err(SpecError::GenerateNotFirst(index))
                }
                Step::Generate {
                    avatar_id,
                    voice_id,
                    script,
                    dimension,
                    background,
                    ..
                } => {
                    let invalid = |field, reason: &str| SpecError::InvalidGenerate {
                        step: index,
                        field,
                        reason: reason.to_string(),
                    };
                    for (field, id) in [("avatar_id", avatar_id), ("voice_id", voice_id)] {
                        if !is_provider_id(id) {
                            return Err(invalid(
                                field,
                                "must be 1 to 128 letters, digits, '-', '_' or '.'",
                            ));
                        }
                    }
                    if script.trim().is_empty() {
                        return Err(invalid("script", "must not be empty"));
                    }
                    if script.chars().count() > MAX_SCRIPT_CHARS {
                        return Err(invalid("script", "must be at most 5000 characters"));
                    }
                    if script
                        .chars()
                        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
                    {
                        return Err(invalid("script", "must not contain control characters"));
                    }
                    if let Some(Dimension { width, height }) = dimension {
                        for side in [width, height] {
                            if !GENERATED_SIDE.contains(side) || side % 2 != 0 {
                                return Err(invalid(
                                    "dimension",
                                    "sides must be even numbers from 128 to 3840",
                                ));
                            }
                        }
                    }
                    if let Some(colour) = background {
                        let hex = colour.strip_prefix('#').unwrap_or_default();
                        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                            return Err(invalid("background", "must be a colour like #1a2b3c"));
                        }
                    }
                }
                Step::Probe {} | Step::Transcode { .. } => {}
            }
        }
        Ok(())
    }

    /// How many paid generations the run asks for.
    pub fn generations(&self) -> u32 {
        let count = self
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Generate { .. }))
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }
}

fn is_provider_id(id: &str) -> bool {
    (1..=MAX_PROVIDER_ID_LEN).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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
