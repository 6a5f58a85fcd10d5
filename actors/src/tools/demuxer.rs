//! The one demuxer a tool may read an input with (invariant 12): named, never guessed.

use aurora_domain::media::InputFormat;
use aurora_domain::run::Format;

/// The demuxer a tool must read its input with: an admitted user format, or one of Aurora's
/// own outputs (read back to measure them). There is no way to ask for a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demuxer {
    pub(super) name: &'static str,
    /// What ffprobe reports for a file this demuxer read.
    pub(super) format_name: &'static str,
}

impl Demuxer {
    /// A JPEG Aurora wrote (a thumbnail).
    pub const JPEG: Demuxer = Demuxer {
        name: "jpeg_pipe",
        format_name: "jpeg_pipe",
    };

    /// The demuxer of an admitted input format.
    pub fn of(format: InputFormat) -> Self {
        Self {
            name: format.demuxer(),
            format_name: format.format_name(),
        }
    }

    /// The demuxer of a transcode's output format.
    pub fn of_output(format: Format) -> Self {
        Self::of(match format {
            Format::Mp4 => InputFormat::Mp4,
            Format::Webm => InputFormat::Matroska,
        })
    }

    /// ffmpeg's name for it.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The input options that force this demuxer and forbid every other, nested ones
    /// included (they go before `-i`).
    pub fn input_args(self) -> Vec<&'static str> {
        let mut args = vec![
            // Local files only: nothing is ever fetched (SSRF).
            "-protocol_whitelist",
            "file",
            "-f",
            self.name,
            "-format_whitelist",
            self.name,
        ];
        if self.name == "mov" {
            // External data references (`dref` atoms) stay off, as is ffmpeg's default:
            // said out loud, since a default can change.
            args.extend(["-enable_drefs", "0"]);
        }
        args
    }
}
