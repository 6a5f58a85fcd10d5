//! Property tests of the domain's parsers of outside input: media sniffing, usernames,
//! IP ranges, run specs. Each runs a bounded number of cases (`PROPTEST_CASES`, 256 by
//! default) in well under a second; none may panic on any input, and each keeps the
//! promise its doc makes.

use proptest::prelude::*;

use crate::media::InputFormat;
use crate::net::IpRanges;
use crate::run::{RunSpec, Step};
use crate::user::{Username, UsernameError};

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The first bytes of each admitted format, as a file of it starts.
fn magic(format: InputFormat) -> Vec<u8> {
    match format {
        InputFormat::Mp4 => b"\0\0\0\x20ftypisom".to_vec(),
        InputFormat::Matroska => vec![0x1A, 0x45, 0xDF, 0xA3],
        InputFormat::Wav => b"RIFF\0\0\0\0WAVE".to_vec(),
        InputFormat::Ogg => b"OggS".to_vec(),
        InputFormat::Flac => b"fLaC".to_vec(),
        InputFormat::Mp3 => b"ID3".to_vec(),
        InputFormat::MpegTs => {
            let mut ts = vec![0u8; 189];
            (ts[0], ts[188]) = (0x47, 0x47);
            ts
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sniffing_any_bytes_never_panics_and_names_a_format_only_by_its_magic(
        head in proptest::collection::vec(any::<u8>(), 0..600)
    ) {
        if let Some(format) = InputFormat::sniff(&head) {
            // A named format round-trips through the media type recorded for it.
            prop_assert_eq!(InputFormat::from_content_type(format.content_type(&head)), Some(format));
            let starts = match format {
                InputFormat::Mp4 => head.get(4..8) == Some(b"ftyp"),
                InputFormat::Matroska => head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
                InputFormat::Wav => head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE"),
                InputFormat::Ogg => head.starts_with(b"OggS"),
                InputFormat::Flac => head.starts_with(b"fLaC"),
                InputFormat::Mp3 => head.starts_with(b"ID3") || (head[0] == 0xFF && head[1] & 0xE0 == 0xE0),
                InputFormat::MpegTs => head[0] == 0x47 && head[188] == 0x47,
            };
            prop_assert!(starts, "{:?} named without its magic", format);
        }
    }

    #[test]
    fn a_formats_magic_names_it_whatever_follows(
        index in 0..InputFormat::ALL.len(),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let format = InputFormat::ALL[index];
        let mut head = magic(format);
        head.extend(tail);
        prop_assert_eq!(InputFormat::sniff(&head), Some(format));
    }

    #[test]
    fn usernames_parse_or_say_why_and_parsed_ones_are_canonical(
        raw in prop_oneof![".{0,40}", "[A-Za-z0-9._-]{0,34}", "(anonymous|system|rate-limiter|aurora)"]
    ) {
        match Username::parse(&raw) {
            Ok(name) => {
                let text = name.as_str();
                prop_assert!((3..=32).contains(&text.chars().count()));
                prop_assert!(text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c)));
                let again = Username::parse(text);
                prop_assert_eq!(again.as_ref().map(Username::as_str), Ok(text));
                match Username::parse_new(&raw) {
                    Ok(_) => prop_assert!(!crate::metadata::RESERVED_PRINCIPALS.contains(&text)),
                    Err(e) => prop_assert_eq!(e, UsernameError::Reserved),
                }
            }
            Err(_) => prop_assert!(Username::parse_new(&raw).is_err()),
        }
    }

    #[test]
    fn ip_ranges_parse_or_say_why_and_a_range_holds_its_own_address(
        raw in "[0-9a-f.:/, ]{0,40}",
        octets in any::<[u8; 4]>(),
        prefix in 0u8..=32,
    ) {
        let _ = IpRanges::parse(&raw);
        let ip = std::net::Ipv4Addr::from(octets);
        let ranges = IpRanges::parse(&format!("{ip}/{prefix}")).unwrap();
        prop_assert!(ranges.contains(ip.into()));
    }

    #[test]
    fn run_specs_from_any_json_are_refused_cleanly_or_valid(
        steps in proptest::collection::vec(step_json(), 0..40),
        url in prop_oneof![Just("https://a.example/clip.mp4".to_string()), ".{0,60}"],
        extra in proptest::option::of("[a-z]{1,8}"),
    ) {
        let mut body = serde_json::json!({"input": {"url": url}, "steps": steps});
        if let Some(key) = extra {
            body[key] = serde_json::json!(1);
        }
        if let Ok(spec) = serde_json::from_value::<RunSpec>(body) {
            if spec.validate().is_ok() {
                prop_assert!((1..=crate::run::MAX_STEPS).contains(&spec.steps.len()));
                for step in &spec.steps {
                    if let Step::Thumbnail { at_seconds } = step {
                        prop_assert!(at_seconds.is_finite() && *at_seconds >= 0.0);
                    }
                }
                // A valid spec survives its own serialization.
                let again: RunSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
                prop_assert_eq!(again, spec);
            }
        }
    }
}

/// A step as JSON: mostly well-formed, sometimes not.
fn step_json() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::json!({"kind": "probe"})),
        (
            prop_oneof![Just("mp4"), Just("webm"), Just("avi")],
            prop_oneof![Just("low"), Just("medium"), Just("ultra")],
            prop_oneof![Just("480p"), Just("source"), Just("8k")],
            any::<bool>(),
        )
            .prop_map(|(f, q, r, up)| serde_json::json!({
                "kind": "transcode", "format": f, "quality": q, "resolution": r, "upscale": up
            })),
        prop_oneof![any::<f64>(), -10.0f64..100_000.0]
            .prop_map(|at| serde_json::json!({"kind": "thumbnail", "at_seconds": at})),
        ".{0,12}".prop_map(|kind| serde_json::json!({"kind": kind})),
    ]
}
