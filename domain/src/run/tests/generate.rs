//! Given/when/then tests of generate steps: runs without an input, the provider's video
//! recorded once and never replaced, reports of it.

use super::*;

fn generate() -> Step {
    Step::Generate {
        provider: Provider::Heygen,
        avatar_id: "Daisy-inskirt-20220818".into(),
        voice_id: "2d5b0e6cf36f460aa7fc47e3eee4ba54".into(),
        script: "Hello from Aurora.".into(),
        dimension: Some(Dimension {
            width: 1280,
            height: 720,
        }),
        background: Some("#1a2b3c".into()),
    }
}

fn generating() -> Vec<RunEvent> {
    vec![
        RunEvent::RunRequested {
            run_id: run_id(),
            owner: "alice".into(),
            input: None,
            steps: vec![generate(), transcode()],
        },
        started(0, 1),
    ]
}

fn at() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn record(attempt: u32, video_id: &str) -> RunCommand {
    RunCommand::RecordGeneration {
        step: 0,
        attempt,
        video_id: video_id.into(),
        at: at(),
    }
}

fn submitted(attempt: u32, video_id: &str) -> RunEvent {
    RunEvent::GenerationSubmitted {
        step: 0,
        attempt,
        provider: Provider::Heygen,
        video_id: video_id.into(),
        at: at(),
    }
}

#[test]
fn a_generate_step_runs_first_in_a_run_without_input() {
    let spec = RunSpec {
        input: None,
        steps: vec![generate(), transcode()],
    };
    assert_eq!(spec.validate(), Ok(()));
    assert_eq!(spec.generations(), 1);
    let json = serde_json::to_value(&spec).unwrap();
    assert!(json.get("input").is_none(), "{json}");
    assert_eq!(json["steps"][0]["kind"], "generate");
    assert_eq!(json["steps"][0]["provider"], "heygen");
    assert_eq!(serde_json::from_value::<RunSpec>(json).unwrap(), spec);
    RunTest::with(())
        .given_no_previous_events()
        .when(request(spec))
        .then_expect_events(vec![generating().remove(0)]);
}

#[test]
fn generate_steps_break_no_rule_unseen() {
    let with = |input: Option<Input>, steps: Vec<Step>| RunSpec { input, steps }.validate();
    let url = || Some(Input::Url("https://media.example/clip.mov".into()));
    assert_eq!(with(None, vec![Step::Probe {}]), Err(SpecError::NoInput));
    assert_eq!(
        with(url(), vec![generate()]),
        Err(SpecError::InputWithGenerate)
    );
    assert_eq!(
        with(None, vec![generate(), generate()]),
        Err(SpecError::GenerateNotFirst(1))
    );
    let field_of = |change: &dyn Fn(&mut Step)| {
        let mut step = generate();
        change(&mut step);
        match with(None, vec![step]) {
            Err(SpecError::InvalidGenerate { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    };
    type Change = Box<dyn Fn(&mut Step)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "avatar_id",
            Box::new(|s| set(s, |a, _, _, _, _| *a = String::new())),
        ),
        (
            "avatar_id",
            Box::new(|s| set(s, |a, _, _, _, _| *a = "../etc".into())),
        ),
        (
            "voice_id",
            Box::new(|s| set(s, |_, v, _, _, _| *v = "x".repeat(129))),
        ),
        (
            "script",
            Box::new(|s| set(s, |_, _, t, _, _| *t = "  \n ".into())),
        ),
        (
            "script",
            Box::new(|s| set(s, |_, _, t, _, _| *t = "a".repeat(MAX_SCRIPT_CHARS + 1))),
        ),
        (
            "script",
            Box::new(|s| set(s, |_, _, t, _, _| *t = "bell\u{7}".into())),
        ),
        (
            "dimension",
            Box::new(|s| {
                set(s, |_, _, _, d, _| {
                    *d = Some(Dimension {
                        width: 1281,
                        height: 720,
                    })
                })
            }),
        ),
        (
            "dimension",
            Box::new(|s| {
                set(s, |_, _, _, d, _| {
                    *d = Some(Dimension {
                        width: 64,
                        height: 64,
                    })
                })
            }),
        ),
        (
            "dimension",
            Box::new(|s| {
                set(s, |_, _, _, d, _| {
                    *d = Some(Dimension {
                        width: 7680,
                        height: 4320,
                    })
                })
            }),
        ),
        (
            "background",
            Box::new(|s| set(s, |_, _, _, _, b| *b = Some("red".into()))),
        ),
        (
            "background",
            Box::new(|s| set(s, |_, _, _, _, b| *b = Some("#12345g".into()))),
        ),
    ];
    for (field, change) in cases {
        assert_eq!(field_of(&*change), field);
    }
    // A script of exactly the limit, with newlines, is fine.
    let mut long = generate();
    set(&mut long, |_, _, t, _, _| {
        *t = format!("{}\n", "a".repeat(MAX_SCRIPT_CHARS - 1))
    });
    assert_eq!(with(None, vec![long]), Ok(()));
    // Unknown fields and providers are refused by the types.
    let unknown = serde_json::json!({"steps": [{"kind": "generate", "provider": "heygen",
        "avatar_id": "a", "voice_id": "v", "script": "s", "api_key": "x"}]});
    assert!(serde_json::from_value::<RunSpec>(unknown).is_err());
    let provider = serde_json::json!({"steps": [{"kind": "generate", "provider": "sora",
        "avatar_id": "a", "voice_id": "v", "script": "s"}]});
    assert!(serde_json::from_value::<RunSpec>(provider).is_err());
}

type Fields<'a> = (
    &'a mut String,
    &'a mut String,
    &'a mut String,
    &'a mut Option<Dimension>,
    &'a mut Option<String>,
);

fn set(
    step: &mut Step,
    change: impl Fn(&mut String, &mut String, &mut String, &mut Option<Dimension>, &mut Option<String>),
) {
    if let Step::Generate {
        avatar_id,
        voice_id,
        script,
        dimension,
        background,
        ..
    } = step
    {
        let fields: Fields = (avatar_id, voice_id, script, dimension, background);
        change(fields.0, fields.1, fields.2, fields.3, fields.4);
    }
}

#[test]
fn a_generation_is_recorded_once_and_never_replaced() {
    RunTest::with(())
        .given(generating())
        .when(record(1, "v-1"))
        .then_expect_events(vec![submitted(1, "v-1")]);
    // The same id again (a retried command): nothing new.
    let mut events = generating();
    events.push(submitted(1, "v-1"));
    RunTest::with(())
        .given(events.clone())
        .when(record(1, "v-1"))
        .then_expect_events(vec![]);
    // A later attempt resumes the recorded video; it can never record a second one.
    events.push(RunEvent::StepAttemptFailed {
        step: 0,
        attempt: 1,
        reason: "interrupted".into(),
        interrupted: true,
    });
    events.push(started(0, 2));
    RunTest::with(())
        .given(events.clone())
        .when(record(2, "v-2"))
        .then_expect_error(RunError::GenerationRecorded {
            step: 0,
            video_id: "v-1".into(),
        });
    let mut run = Run::default();
    for event in events {
        run.apply(event);
    }
    assert_eq!(run.generation(0).map(|g| g.video_id.as_str()), Some("v-1"));
    assert!(run.generation(1).is_none());
}

#[test]
fn a_generation_is_recorded_only_by_the_current_attempt_of_a_generate_step() {
    RunTest::with(())
        .given(generating())
        .when(record(2, "v-1"))
        .then_expect_error(RunError::StaleAttempt {
            step: 0,
            attempt: 2,
        });
    RunTest::with(())
        .given(vec![requested(), started(0, 1)])
        .when(RunCommand::RecordGeneration {
            step: 0,
            attempt: 1,
            video_id: "v".into(),
            at: at(),
        })
        .then_expect_error(RunError::StaleAttempt {
            step: 0,
            attempt: 1,
        });
    for bad in [
        "",
        "a\nb",
        "..",
        "a/b",
        "v 1",
        &"v".repeat(MAX_VIDEO_ID_LEN + 1),
    ] {
        RunTest::with(())
            .given(generating())
            .when(record(1, bad))
            .then_expect_error(RunError::InvalidVideoId);
    }
}

#[test]
fn a_report_names_the_recorded_video_and_repeats_change_nothing() {
    let report = |video_id: &str, succeeded: bool| RunCommand::ReportGeneration {
        step: 0,
        video_id: video_id.into(),
        succeeded,
        message: None,
    };
    RunTest::with(())
        .given(generating())
        .when(report("v-1", true))
        .then_expect_error(RunError::UnknownGeneration("v-1".into()));
    let mut events = generating();
    events.push(submitted(1, "v-1"));
    RunTest::with(())
        .given(events.clone())
        .when(report("v-other", true))
        .then_expect_error(RunError::UnknownGeneration("v-other".into()));
    let reported = RunEvent::GenerationReported {
        step: 0,
        video_id: "v-1".into(),
        succeeded: true,
        message: None,
    };
    RunTest::with(())
        .given(events.clone())
        .when(report("v-1", true))
        .then_expect_events(vec![reported.clone()]);
    events.push(reported);
    // The first report stands: a replay of it, or of another outcome, changes nothing.
    for succeeded in [true, false] {
        RunTest::with(())
            .given(events.clone())
            .when(report("v-1", succeeded))
            .then_expect_events(vec![]);
    }
}

#[test]
fn events_from_before_generate_steps_still_read() {
    // A RunRequested stored before inputs became optional.
    let old = serde_json::json!({"RunRequested": {"run_id": run_id(), "owner": "alice",
        "input": {"url": "https://media.example/clip.mov"}, "steps": [{"kind": "probe"}]}});
    let event: RunEvent = serde_json::from_value(old).unwrap();
    let RunEvent::RunRequested { input, .. } = event else {
        panic!("{event:?}")
    };
    assert_eq!(
        input,
        Some(Input::Url("https://media.example/clip.mov".into()))
    );
}
