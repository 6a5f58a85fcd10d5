//! Files dressed as media: a valid first header of each admitted format, followed by
//! something ffmpeg would read as a *reference* to other files if it were left to guess the
//! format (an HLS playlist, an `ffconcat` script, a DASH manifest). These are the attacks
//! media admission exists to stop (`docs/threat-model.md`); tests and the security
//! benchmarks build them here so that every layer is tried with the same set.

/// A header that makes a file look like one of the admitted formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// An empty ID3v2 tag (MP3).
    Id3,
    /// A RIFF/WAVE header with a PCM `fmt ` chunk and a `data` chunk.
    Wave,
    /// An Ogg page header.
    Ogg,
    /// `fLaC` and a STREAMINFO block.
    Flac,
    /// An ISO BMFF `ftyp` box (MP4).
    Ftyp,
    /// An EBML header (Matroska/WebM).
    Ebml,
    /// One MPEG-TS null packet (the payload then starts with a sync byte).
    MpegTs,
}

impl Header {
    /// Every header.
    pub const ALL: [Header; 7] = [
        Header::Id3,
        Header::Wave,
        Header::Ogg,
        Header::Flac,
        Header::Ftyp,
        Header::Ebml,
        Header::MpegTs,
    ];

    /// The header's bytes, for a payload of `payload_len` bytes after it.
    pub fn bytes(self, payload_len: usize) -> Vec<u8> {
        let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        match self {
            Header::Id3 => b"ID3\x03\x00\x00\x00\x00\x00\x00".to_vec(),
            Header::Wave => {
                let mut h = b"RIFF".to_vec();
                h.extend(len32(36 + payload_len));
                h.extend(b"WAVEfmt ");
                h.extend(16u32.to_le_bytes());
                h.extend(1u16.to_le_bytes()); // PCM
                h.extend(1u16.to_le_bytes()); // mono
                h.extend(8000u32.to_le_bytes());
                h.extend(8000u32.to_le_bytes());
                h.extend(1u16.to_le_bytes());
                h.extend(8u16.to_le_bytes());
                h.extend(b"data");
                h.extend(len32(payload_len));
                h
            }
            Header::Ogg => {
                let mut h = b"OggS\x00\x02".to_vec();
                h.extend([0u8; 21]);
                h
            }
            Header::Flac => {
                let mut h = b"fLaC".to_vec();
                h.extend([0x80, 0, 0, 34]); // last block: STREAMINFO, 34 bytes
                h.extend([0x10, 0x00, 0x10, 0x00]); // block sizes
                h.extend([0u8; 6]); // frame sizes
                h.extend([0x0A, 0xC4, 0x40, 0xF0]); // 44.1 kHz, mono, 16 bit
                h.extend([0u8; 20]);
                h
            }
            Header::Ftyp => {
                let mut h = vec![0, 0, 0, 0x18];
                h.extend(b"ftypisom\x00\x00\x02\x00isomiso2");
                h
            }
            Header::Ebml => vec![0x1A, 0x45, 0xDF, 0xA3, 0x80],
            Header::MpegTs => {
                let mut h = vec![0x47, 0x1F, 0xFF, 0x10];
                h.resize(188, 0xFF);
                h
            }
        }
    }
}

/// What follows the header: a format that reads other files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// An HLS media playlist whose one segment is the target.
    Hls,
    /// An `ffconcat` script naming the target.
    Concat,
    /// A DASH manifest whose one segment is the target.
    Dash,
}

impl Payload {
    /// Every payload.
    pub const ALL: [Payload; 3] = [Payload::Hls, Payload::Concat, Payload::Dash];

    /// The payload's text, naming `target` (a path, absolute or relative to the file).
    pub fn text(self, target: &str) -> String {
        match self {
            Payload::Hls => format!(
                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n\
                 #EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n"
            ),
            Payload::Concat => format!("ffconcat version 1.0\nfile '{target}'\n"),
            Payload::Dash => format!(
                "<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
                 type=\"static\" mediaPresentationDuration=\"PT1S\" minBufferTime=\"PT1S\" \
                 profiles=\"urn:mpeg:dash:profile:isoff-on-demand:2011\"><Period><AdaptationSet>\
                 <Representation id=\"0\" bandwidth=\"1000\" mimeType=\"video/mp4\">\
                 <BaseURL>{target}</BaseURL></Representation></AdaptationSet></Period></MPD>\n"
            ),
        }
    }
}

/// A file that starts as `header` and continues as `payload` naming `target`.
pub fn disguised(header: Header, payload: Payload, target: &str) -> Vec<u8> {
    let mut text = payload.text(target).into_bytes();
    if header == Header::MpegTs {
        // The sniff looks for a second sync byte 188 bytes in.
        text.insert(0, 0x47);
    }
    let mut file = header.bytes(text.len());
    file.extend(text);
    file
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aurora_domain::media::{InputFormat, MediaInfo};
    use aurora_domain::run::{Format, Quality, Resolution};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::tools::{generate_clip, Demuxer, Tools, TranscodeJob};

    /// The attack of a file dressed as media: every admitted header, followed by a
    /// playlist, a concat script or a manifest naming a file of the server (absolute, and
    /// relative to the upload). Read with the sniffed format's demuxer forced, none of them
    /// ever reveals that file; a control shows that ffprobe left to guess would.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_dressed_as_media_never_reads_another_file() {
        let dir = aurora_projections::testkit::TempDir::new().unwrap();
        let secret = dir.path().join("secret.ts");
        let made = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc=duration=1:size=176x144:rate=10")
            .args(["-f", "mpegts"])
            .arg(&secret)
            .status()
            .unwrap();
        assert!(made.success());
        let secret_mp4 = dir.path().join("secret.mp4");
        generate_clip(&secret_mp4, 1, 176, 144).unwrap();
        let reveals = |info: &MediaInfo| {
            info.video()
                .is_some_and(|v| v.width == Some(176) && v.height == Some(144))
        };
        let tools = Tools::default();
        let timeout = Duration::from_secs(30);
        let cancel = CancellationToken::new();
        let mut tried = 0;
        for header in Header::ALL {
            for payload in Payload::ALL {
                let targets = match payload {
                    Payload::Concat => ["secret.mp4".to_string(), secret_mp4.display().to_string()],
                    _ => ["secret.ts".to_string(), secret.display().to_string()],
                };
                for target in targets {
                    let name = format!("upload-{header:?}-{payload:?}-{}", target.len());
                    let file = dir.path().join(&name);
                    std::fs::write(&file, disguised(header, payload, &target)).unwrap();
                    let what = format!("{header:?} + {payload:?} naming {target}");
                    let format = InputFormat::sniff(&std::fs::read(&file).unwrap())
                        .unwrap_or_else(|| panic!("{what}: the header names no format"));
                    let demuxer = Demuxer::of(format);
                    tried += 1;
                    if let Ok(info) = tools.probe(&file, demuxer, timeout).await {
                        assert!(
                            !reveals(&info),
                            "{what}: the probe read the target: {info:?}"
                        );
                    }
                    // The tools read it as the admitted format, whatever the probe said.
                    let thumbnail = dir.path().join(format!("{name}.jpg"));
                    if tools
                        .thumbnail(&file, demuxer, 0.0, &thumbnail, &cancel, timeout)
                        .await
                        .is_ok()
                    {
                        let jpeg = tools.probe(&thumbnail, Demuxer::JPEG, timeout).await;
                        assert!(
                            !jpeg.is_ok_and(|i| reveals(&i)),
                            "{what}: a frame of the target"
                        );
                    }
                    let output = dir.path().join(format!("{name}.out.mp4"));
                    let job = TranscodeJob {
                        input: file.clone(),
                        demuxer,
                        output: output.clone(),
                        format: Format::Mp4,
                        quality: Quality::Low,
                        resolution: Resolution::Source,
                        upscale: false,
                        has_audio: false,
                        duration_seconds: None,
                    };
                    if tools
                        .transcode(&job, &cancel, timeout, |_| {})
                        .await
                        .is_ok()
                    {
                        let made = tools
                            .probe(&output, Demuxer::of(InputFormat::Mp4), timeout)
                            .await;
                        assert!(
                            !made.is_ok_and(|i| reveals(&i)),
                            "{what}: a re-encode of the target"
                        );
                    }
                }
            }
        }
        assert_eq!(tried, 7 * 3 * 2);
        // The control: these files are real attacks. ffprobe left to guess (as Aurora once
        // let it) reads the target through the playlist and the concat script.
        for (payload, target) in [(Payload::Hls, &secret), (Payload::Concat, &secret_mp4)] {
            let relative = target.file_name().unwrap().to_string_lossy().to_string();
            let file = dir.path().join(format!("control-{payload:?}"));
            std::fs::write(&file, disguised(Header::Id3, payload, &relative)).unwrap();
            let guessed = std::process::Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-protocol_whitelist",
                    "file",
                    "-show_entries",
                ])
                .args(["stream=width,height", "-of", "csv=p=0"])
                .arg(&file)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&guessed.stdout);
            assert!(
                said.contains("176,144"),
                "{payload:?}: the control did not read the target: {said}"
            );
        }
    }
}
