//! Given/when/then tests for every `Run` command.

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use uuid::Uuid;

use super::*;

type RunTest = TestFramework<Run>;

fn run_id() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)
}

fn spec(steps: Vec<Step>) -> RunSpec {
    RunSpec {
        input: Some(Input::Url("https://media.example/clip.mov".into())),
        steps,
    }
}

fn transcode() -> Step {
    Step::Transcode {
        format: Format::Mp4,
        quality: Quality::High,
        resolution: Resolution::P1080,
        upscale: false,
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
        input: Some(Input::Url("https://media.example/clip.mov".into())),
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
                input: Some(Input::MediaId(media)),
                steps: vec![Step::Thumbnail { at_seconds: 2.5 }],
            },
        })
        .then_expect_events(vec![RunEvent::RunRequested {
            run_id: run_id(),
            owner: "bob".into(),
            input: Some(Input::MediaId(media)),
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
                input: Some(Input::Url(url.to_string())),
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
            resolution: Resolution::P480,
            upscale: false,
        }
    );
    let unknown_kind =
        serde_json::json!({"input": {"url": "https://a.b"}, "steps": [{"kind": "explode"}]});
    assert!(serde_json::from_value::<RunSpec>(unknown_kind).is_err());
}

fn probe_output() -> StepOutput {
    StepOutput::Probe {
        media: crate::media::MediaInfo {
            container: "mov,mp4".into(),
            duration_seconds: Some(10.0),
            bit_rate: None,
            streams: vec![],
        },
    }
}

fn start(step: usize, attempt: u32) -> RunCommand {
    RunCommand::StartStep {
        step,
        attempt,
        executor: "replica-a".into(),
    }
}

fn started(step: usize, attempt: u32) -> RunEvent {
    RunEvent::StepStarted {
        step,
        attempt,
        executor: "replica-a".into(),
    }
}

#[test]
fn the_first_step_starts_with_attempt_one_and_the_run_is_running() {
    let result = RunTest::with(())
        .given(vec![requested()])
        .when(start(0, 1))
        .inspect_result();
    assert_eq!(result, Ok(vec![started(0, 1)]));
    let mut run = Run::default();
    run.apply(requested());
    run.apply(started(0, 1));
    assert_eq!(run.status(), RunStatus::Running);
}

#[test]
fn steps_start_in_order_and_attempts_count_up() {
    for (step, attempt) in [(1, 1), (0, 2), (0, 0)] {
        RunTest::with(())
            .given(vec![requested()])
            .when(start(step, attempt))
            .then_expect_error(RunError::StaleAttempt { step, attempt });
    }
}

#[test]
fn a_new_attempt_supersedes_an_open_one_whose_executor_died() {
    RunTest::with(())
        .given(vec![requested(), started(0, 1)])
        .when(start(0, 2))
        .then_expect_events(vec![
            RunEvent::StepAttemptFailed {
                step: 0,
                attempt: 1,
                reason: "interrupted: superseded by attempt 2".into(),
                interrupted: true,
            },
            started(0, 2),
        ]);
}

#[test]
fn a_superseded_attempt_can_no_longer_complete_so_each_step_has_one_output() {
    RunTest::with(())
        .given(vec![
            requested(),
            started(0, 1),
            RunEvent::StepAttemptFailed {
                step: 0,
                attempt: 1,
                reason: "interrupted".into(),
                interrupted: true,
            },
            started(0, 2),
        ])
        .when(RunCommand::CompleteStep {
            step: 0,
            attempt: 1,
            output: probe_output(),
        })
        .then_expect_error(RunError::StaleAttempt {
            step: 0,
            attempt: 1,
        });
    RunTest::with(())
        .given(vec![
            requested(),
            started(0, 1),
            RunEvent::StepSucceeded {
                step: 0,
                attempt: 1,
                output: probe_output(),
            },
        ])
        .when(RunCommand::CompleteStep {
            step: 0,
            attempt: 1,
            output: probe_output(),
        })
        .then_expect_error(RunError::StaleAttempt {
            step: 0,
            attempt: 1,
        });
}

#[test]
fn completing_the_last_step_succeeds_the_run() {
    RunTest::with(())
        .given(vec![
            requested(),
            started(0, 1),
            RunEvent::StepSucceeded {
                step: 0,
                attempt: 1,
                output: probe_output(),
            },
            started(1, 1),
        ])
        .when(RunCommand::CompleteStep {
            step: 1,
            attempt: 1,
            output: probe_output(),
        })
        .then_expect_events(vec![
            RunEvent::StepSucceeded {
                step: 1,
                attempt: 1,
                output: probe_output(),
            },
            RunEvent::RunSucceeded {},
        ]);
}

#[test]
fn milestones_only_move_forward() {
    let given = vec![
        requested(),
        started(0, 1),
        RunEvent::StepProgressed {
            step: 0,
            attempt: 1,
            percent: 50,
        },
    ];
    let progress = |percent| RunCommand::RecordProgress {
        step: 0,
        attempt: 1,
        percent,
    };
    RunTest::with(())
        .given(given.clone())
        .when(progress(25))
        .then_expect_events(vec![]);
    RunTest::with(())
        .given(given)
        .when(progress(75))
        .then_expect_events(vec![RunEvent::StepProgressed {
            step: 0,
            attempt: 1,
            percent: 75,
        }]);
}

#[test]
fn a_failed_run_and_a_cancelled_run_accept_no_more_work() {
    let failed = RunEvent::RunFailed {
        step: Some(0),
        reason: "not a media file".into(),
    };
    RunTest::with(())
        .given(vec![requested(), started(0, 1), failed])
        .when(start(0, 2))
        .then_expect_error(RunError::AlreadyFinished(RunStatus::Failed));
    RunTest::with(())
        .given(vec![
            requested(),
            started(0, 1),
            RunEvent::RunCancelled { reason: None },
        ])
        .when(RunCommand::CompleteStep {
            step: 0,
            attempt: 1,
            output: probe_output(),
        })
        .then_expect_error(RunError::AlreadyFinished(RunStatus::Cancelled));
}

#[test]
fn a_running_run_can_be_cancelled() {
    RunTest::with(())
        .given(vec![requested(), started(0, 1)])
        .when(RunCommand::CancelRun { reason: None })
        .then_expect_events(vec![RunEvent::RunCancelled { reason: None }]);
}

#[test]
fn failure_reasons_from_executors_are_cut_not_refused() {
    let result = RunTest::with(())
        .given(vec![requested(), started(0, 1)])
        .when(RunCommand::FailRun {
            step: Some(0),
            reason: "x".repeat(5000),
            attempt: Some(1),
        })
        .inspect_result()
        .unwrap();
    let RunEvent::RunFailed { reason, .. } = &result[0] else {
        panic!("{result:?}")
    };
    assert_eq!(reason.chars().count(), MAX_REASON_LEN);
}

#[test]
fn an_executor_that_lost_the_run_cannot_fail_it() {
    RunTest::with(())
        .given(vec![
            requested(),
            started(0, 1),
            RunEvent::StepAttemptFailed {
                step: 0,
                attempt: 1,
                reason: "interrupted".into(),
                interrupted: true,
            },
            started(0, 2),
        ])
        .when(RunCommand::FailRun {
            step: Some(0),
            reason: "ffmpeg failed".into(),
            attempt: Some(1),
        })
        .then_expect_error(RunError::StaleAttempt {
            step: 0,
            attempt: 1,
        });
}

#[test]
fn interruptions_do_not_count_as_failures_of_the_step() {
    let mut run = Run::default();
    for event in [
        requested(),
        started(0, 1),
        RunEvent::StepAttemptFailed {
            step: 0,
            attempt: 1,
            reason: "interrupted".into(),
            interrupted: true,
        },
        started(0, 2),
        RunEvent::StepAttemptFailed {
            step: 0,
            attempt: 2,
            reason: "ffmpeg was killed".into(),
            interrupted: false,
        },
    ] {
        run.apply(event);
    }
    assert_eq!((run.attempt().number, run.attempt().failures), (2, 1));
    // Events written before the field existed read as real failures.
    let old: RunEvent = serde_json::from_value(serde_json::json!(
        {"StepAttemptFailed": {"step": 0, "attempt": 1, "reason": "x"}}
    ))
    .unwrap();
    assert!(matches!(
        old,
        RunEvent::StepAttemptFailed {
            interrupted: false,
            ..
        }
    ));
}

mod generate;
