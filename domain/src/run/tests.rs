//! Given/when/then tests for every `Run` command.

use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

type RunTest = TestFramework<Run>;

fn run_id() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)
}

fn spec(steps: Vec<Step>) -> RunSpec {
    RunSpec {
        input: Input::Url("https://media.example/clip.mov".into()),
        steps,
    }
}

fn transcode() -> Step {
    Step::Transcode {
        format: Format::Mp4,
        quality: Quality::High,
        resolution: Resolution::P1080,
    }
}

fn request(spec: RunSpec) -> RunCommand {
    RunCommand::RequestRun {
        run_id: run_id(),
        owner: "alice".into(),
        spec,
    }
}

fn requested() -> RunEvent {
    RunEvent::RunRequested {
        run_id: run_id(),
        owner: "alice".into(),
        input: Input::Url("https://media.example/clip.mov".into()),
        steps: vec![Step::Probe {}, transcode()],
    }
}

#[test]
fn requesting_a_valid_run_records_it() {
    RunTest::with(())
        .given_no_previous_events()
        .when(request(spec(vec![Step::Probe {}, transcode()])))
        .then_expect_events(vec![requested()]);
}

#[test]
fn requesting_a_run_by_media_id_records_the_media_id() {
    let media = Uuid::from_u128(42);
    RunTest::with(())
        .given_no_previous_events()
        .when(RunCommand::RequestRun {
            run_id: run_id(),
            owner: "bob".into(),
            spec: RunSpec {
                input: Input::MediaId(media),
                steps: vec![Step::Thumbnail { at_seconds: 2.5 }],
            },
        })
        .then_expect_events(vec![RunEvent::RunRequested {
            run_id: run_id(),
            owner: "bob".into(),
            input: Input::MediaId(media),
            steps: vec![Step::Thumbnail { at_seconds: 2.5 }],
        }]);
}

#[test]
fn a_run_without_steps_is_refused() {
    RunTest::with(())
        .given_no_previous_events()
        .when(request(spec(vec![])))
        .then_expect_error(RunError::InvalidSpec(SpecError::NoSteps));
}

#[test]
fn a_run_with_too_many_steps_is_refused() {
    RunTest::with(())
        .given_no_previous_events()
        .when(request(spec(vec![Step::Probe {}; MAX_STEPS + 1])))
        .then_expect_error(RunError::InvalidSpec(SpecError::TooManySteps(
            MAX_STEPS + 1,
        )));
}

#[test]
fn a_run_with_a_bad_url_is_refused() {
    for url in [
        "ftp://media.example/a.mov",
        "https://",
        "media.example/a.mov",
        "https://media.example/a b.mov",
        &format!("https://media.example/{}", "a".repeat(MAX_INPUT_URL_LEN)),
    ] {
        RunTest::with(())
            .given_no_previous_events()
            .when(request(RunSpec {
                input: Input::Url(url.to_string()),
                steps: vec![Step::Probe {}],
            }))
            .then_expect_error(RunError::InvalidSpec(SpecError::InvalidUrl));
    }
}

#[test]
fn a_thumbnail_outside_the_media_is_refused() {
    for at in [-1.0, MAX_THUMBNAIL_SECONDS + 1.0, f64::NAN, f64::INFINITY] {
        let result = RunTest::with(())
            .given_no_previous_events()
            .when(request(spec(vec![
                Step::Probe {},
                Step::Thumbnail { at_seconds: at },
            ])))
            .inspect_result();
        assert!(
            matches!(
                result,
                Err(RunError::InvalidSpec(SpecError::InvalidThumbnailTime {
                    step: 1,
                    ..
                }))
            ),
            "{at}: {result:?}"
        );
    }
}

#[test]
fn requesting_an_existing_run_again_is_refused() {
    RunTest::with(())
        .given(vec![requested()])
        .when(request(spec(vec![Step::Probe {}])))
        .then_expect_error(RunError::AlreadyExists);
}

#[test]
fn cancelling_a_requested_run_records_the_cancellation() {
    RunTest::with(())
        .given(vec![requested()])
        .when(RunCommand::CancelRun {
            reason: Some("wrong file".into()),
        })
        .then_expect_events(vec![RunEvent::RunCancelled {
            reason: Some("wrong file".into()),
        }]);
}

#[test]
fn cancelling_an_unknown_run_is_refused() {
    RunTest::with(())
        .given_no_previous_events()
        .when(RunCommand::CancelRun { reason: None })
        .then_expect_error(RunError::NotFound);
}

#[test]
fn cancelling_a_cancelled_run_is_refused() {
    RunTest::with(())
        .given(vec![requested(), RunEvent::RunCancelled { reason: None }])
        .when(RunCommand::CancelRun { reason: None })
        .then_expect_error(RunError::AlreadyFinished(RunStatus::Cancelled));
}

#[test]
fn a_cancellation_reason_that_is_too_long_is_refused() {
    RunTest::with(())
        .given(vec![requested()])
        .when(RunCommand::CancelRun {
            reason: Some("x".repeat(super::aggregate::MAX_REASON_LEN + 1)),
        })
        .then_expect_error(RunError::ReasonTooLong);
}

#[test]
fn step_kinds_and_options_use_the_documented_json_names() {
    let json = serde_json::json!({
        "input": {"url": "https://media.example/a.mov"},
        "steps": [
            {"kind": "probe"},
            {"kind": "transcode", "format": "webm", "quality": "low", "resolution": "480p"},
            {"kind": "thumbnail", "at_seconds": 3}
        ]
    });
    let spec: RunSpec = serde_json::from_value(json).unwrap();
    assert_eq!(
        spec.steps[1],
        Step::Transcode {
            format: Format::Webm,
            quality: Quality::Low,
            resolution: Resolution::P480
        }
    );
    let unknown_kind =
        serde_json::json!({"input": {"url": "https://a.b"}, "steps": [{"kind": "explode"}]});
    assert!(serde_json::from_value::<RunSpec>(unknown_kind).is_err());
}
