//! Runs: posting, reading, listing, cancelling; bad input; restarts; the row and the message a run becomes.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use super::*;

#[apply(both_modes)]
async fn a_posted_run_is_stored_with_who_caused_it_in_which_request_and_when(mode: Mode) {
    let app = spawn_app(mode).await;
    let before = chrono::Utc::now();
    let response = app
        .client
        .post(app.url("/api/v1/runs"))
        .header("x-request-id", "it-req-1")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-request-id"], "it-req-1");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/runs/{id}"));
    assert_eq!(body["status"], "requested");
    assert_eq!(body["steps"], valid_run()["steps"]);

    // Answered 2xx: the event is in the store already, with its metadata.
    let events = app
        .state
        .db
        .read_aggregate_after(Run::TYPE, id, 0)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.event_type, "RunRequested");
    assert_eq!(event.metadata.principal, "tester");
    assert!(event.metadata.token_id.is_some());
    assert_eq!(event.metadata.request_id, "it-req-1");
    assert_eq!(event.metadata.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        event.metadata.traceparent.as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert!(event.metadata.time >= before - chrono::Duration::milliseconds(1));
    assert!(event.metadata.time <= chrono::Utc::now());

    // Without an x-request-id, one is generated, returned and recorded.
    let response = app.post_run(&valid_run()).await;
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    let events = app
        .state
        .db
        .read_aggregate_after(Run::TYPE, body["id"].as_str().unwrap(), 0)
        .await
        .unwrap();
    assert_eq!(events[0].metadata.request_id, generated);
    app.stop().await;
}

#[apply(both_modes)]
async fn runs_can_be_read_listed_page_by_page_and_cancelled(mode: Mode) {
    let app = spawn_app(mode).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.created_id(&valid_run()).await);
    }
    for id in &ids {
        app.await_view(id, 1).await;
    }

    let run: Value = app.get_json(&format!("/api/v1/runs/{}", ids[0])).await;
    assert_eq!(run["id"], ids[0].as_str());
    assert_eq!(run["status"], "requested");
    assert_eq!(
        run["input"],
        json!({"url": "https://media.example/clip.mov"})
    );

    let page: Value = app.get_json("/api/v1/runs?limit=2").await;
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        vec![ids[2].as_str(), ids[1].as_str()],
        "newest first"
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let page: Value = app
        .get_json(&format!("/api/v1/runs?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(page["items"][0]["id"], ids[0].as_str());
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_null());

    let cancel = |id: &str| {
        app.client
            .post(app.url(&format!("/api/v1/runs/{id}/cancel")))
            .json(&json!({"reason": "wrong file"}))
            .send()
    };
    let response = cancel(&ids[1]).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let again = cancel(&ids[1]).await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(again.headers()["content-type"], "application/problem+json");
    // A cancel without a body is fine too.
    let bare = app
        .client
        .post(app.url(&format!("/api/v1/runs/{}/cancel", ids[2])))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::OK);

    app.await_view(&ids[1], 2).await;
    let run: Value = app.get_json(&format!("/api/v1/runs/{}", ids[1])).await;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["cancel_reason"], "wrong file");
    assert_eq!(run["version"], 2);
    app.stop().await;
}

#[apply(both_modes)]
async fn bad_input_gets_a_problem_and_changes_nothing(mode: Mode) {
    let app = spawn_app(mode).await;
    let run_with = |patch: Value| {
        let mut run = valid_run();
        for (k, v) in patch.as_object().unwrap() {
            run[k] = v.clone();
        }
        run.to_string()
    };
    let unknown = uuid::Uuid::now_v7();
    let mut cases = vec![
        bad(
            "unknown top-level field",
            "POST",
            "/api/v1/runs",
            run_with(json!({"priority": 1})),
            422,
            "invalid-body",
        ),
        bad(
            "unknown field in a step",
            "POST",
            "/api/v1/runs",
            run_with(json!({"steps": [{"kind": "probe", "deep": true}]})),
            422,
            "invalid-body",
        ),
        bad(
            "steps of the wrong type",
            "POST",
            "/api/v1/runs",
            run_with(json!({"steps": "probe"})),
            422,
            "invalid-body",
        ),
        bad(
            "input of the wrong type",
            "POST",
            "/api/v1/runs",
            run_with(json!({"input": 42})),
            422,
            "invalid-body",
        ),
        bad(
            "thumbnail time of the wrong type",
            "POST",
            "/api/v1/runs",
            run_with(json!({"steps": [{"kind": "thumbnail", "at_seconds": "soon"}]})),
            422,
            "invalid-body",
        ),
        bad(
            "empty steps",
            "POST",
            "/api/v1/runs",
            run_with(json!({"steps": []})),
            422,
            "invalid-run-spec",
        ),
        bad(
            "unknown step kind",
            "POST",
            "/api/v1/runs",
            run_with(json!({"steps": [{"kind": "explode"}]})),
            422,
            "invalid-body",
        ),
        bad(
            "unknown resolution",
            "POST",
            "/api/v1/runs",
            run_with(
                json!({"steps": [{"kind": "transcode", "format": "mp4", "quality": "low", "resolution": "4k"}]}),
            ),
            422,
            "invalid-body",
        ),
        bad(
            "negative thumbnail time",
            "POST",
            "/api/v1/runs",
            run_with(json!({"steps": [{"kind": "thumbnail", "at_seconds": -3}]})),
            422,
            "invalid-run-spec",
        ),
        bad(
            "non-http input url",
            "POST",
            "/api/v1/runs",
            run_with(json!({"input": {"url": "file:///etc/passwd"}})),
            422,
            "invalid-run-spec",
        ),
        bad(
            "missing steps",
            "POST",
            "/api/v1/runs",
            r#"{"input": {"url": "https://a.example/x"}}"#,
            422,
            "invalid-body",
        ),
        bad(
            "malformed JSON",
            "POST",
            "/api/v1/runs",
            "{\"input\": ",
            400,
            "malformed-json",
        ),
        bad("empty body", "POST", "/api/v1/runs", "", 400, "empty-body"),
        bad(
            "JSON array",
            "POST",
            "/api/v1/runs",
            "[]",
            422,
            "invalid-body",
        ),
        bad(
            "huge body",
            "POST",
            "/api/v1/runs",
            vec![b' '; 64 * 1024 + 1],
            413,
            "body-too-large",
        ),
        bad(
            "non-UUID id",
            "GET",
            "/api/v1/runs/123",
            "",
            400,
            "invalid-run-id",
        ),
        bad(
            "path traversal in the id",
            "GET",
            "/api/v1/runs/..%2F..%2Fetc%2Fpasswd",
            "",
            400,
            "invalid-run-id",
        ),
        bad(
            "unknown run",
            "GET",
            &format!("/api/v1/runs/{unknown}"),
            "",
            404,
            "not-found",
        ),
        bad(
            "cancel of a non-UUID",
            "POST",
            "/api/v1/runs/abc/cancel",
            "",
            400,
            "invalid-run-id",
        ),
        bad(
            "cancel of an unknown run",
            "POST",
            &format!("/api/v1/runs/{unknown}/cancel"),
            "",
            404,
            "not-found",
        ),
        bad(
            "cancel with an unknown field",
            "POST",
            &format!("/api/v1/runs/{unknown}/cancel"),
            r#"{"why": "x"}"#,
            422,
            "invalid-body",
        ),
        bad(
            "limit zero",
            "GET",
            "/api/v1/runs?limit=0",
            "",
            400,
            "invalid-limit",
        ),
        bad(
            "limit too large",
            "GET",
            "/api/v1/runs?limit=1000",
            "",
            400,
            "invalid-limit",
        ),
        bad(
            "limit not a number",
            "GET",
            "/api/v1/runs?limit=ten",
            "",
            400,
            "invalid-limit",
        ),
        bad(
            "cursor not a run id",
            "GET",
            "/api/v1/runs?cursor=%27%20OR%201%3D1",
            "",
            400,
            "invalid-cursor",
        ),
        bad(
            "unknown query parameter",
            "GET",
            "/api/v1/runs?owner=bob",
            "",
            400,
            "invalid-query",
        ),
        bad("unknown route", "GET", "/api/v2/runs", "", 404, "not-found"),
        bad(
            "wrong method",
            "DELETE",
            "/api/v1/runs",
            "",
            405,
            "method-not-allowed",
        ),
    ];
    let mut wrong_type = bad(
        "form-encoded body",
        "POST",
        "/api/v1/runs",
        "input=x",
        415,
        "unsupported-media-type",
    );
    wrong_type.content_type = Some("application/x-www-form-urlencoded");
    cases.push(wrong_type);

    for case in cases {
        let mut request = app.client.request(case.method.clone(), app.url(&case.path));
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        if !case.body.is_empty() || case.method == reqwest::Method::POST {
            request = request.body(case.body.clone());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.what);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{}",
            case.what
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            format!("/problems/{}", case.slug),
            "{}",
            case.what
        );
        assert_eq!(problem["status"], case.status, "{}", case.what);
        assert!(problem["title"].is_string(), "{}", case.what);
        assert!(
            problem["detail"].as_str().is_some_and(|d| d.len() > 10),
            "{}: a detail a person can act on",
            case.what
        );
    }
    // Raw paths, as a client that does not normalise them would send them.
    for (path, status) in [
        ("/api/v1/runs/..", 400),
        ("/api/v1/runs/../../../etc/passwd", 404),
        ("/api/v1/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
    ] {
        let (code, content_type) = raw_get(&app.base, path, &app.token).await;
        assert_eq!(code, status, "{path}");
        assert_eq!(content_type, "application/problem+json", "{path}");
    }
    assert_eq!(app.run_events().await, 0, "no run was stored");
    let page: Value = app.get_json("/api/v1/runs").await;
    assert_eq!(page["items"], json!([]));
    app.stop().await;
}

#[apply(both_modes)]
async fn concurrent_posts_are_each_stored_once_and_all_answered(mode: Mode) {
    let app = Arc::new(spawn_app(mode).await);
    let posts: Vec<_> = (0..50)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.created_id(&valid_run()).await })
        })
        .collect();
    let mut ids = Vec::new();
    for post in posts {
        ids.push(post.await.unwrap());
    }
    assert_eq!(app.run_events().await, 50);
    for id in &ids {
        app.await_view(id, 1).await;
    }
    let page: Value = app.get_json("/api/v1/runs?limit=100").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
    Arc::into_inner(app).unwrap().stop().await;
}

#[apply(both_modes)]
async fn health_readiness_liveness_and_metrics_tell_the_truth(mode: Mode) {
    let app = spawn_app(mode).await;
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime"].is_u64());
    let (database, nats) = match mode {
        Mode::Embedded => ("sqlite", "in-process"),
        Mode::Production => ("postgres", "nats"),
    };
    assert_eq!(health["services"]["database"]["backend"], database);
    assert_eq!(health["services"]["database"]["status"], "healthy");
    assert!(health["services"]["database"]["latency"].is_number());
    assert_eq!(health["services"]["nats"]["backend"], nats);
    assert_eq!(health["services"]["nats"]["status"], "healthy");

    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let live = app.client.get(app.url("/live")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);

    let id = app.created_id(&valid_run()).await;
    app.await_view(&id, 1).await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = metrics.text().await.unwrap();
    assert!(text.contains(
        r#"aurora_http_requests_total{method="POST",route="/api/v1/runs",status="201"} 1"#
    ));
    assert!(text.contains(r#"aurora_commands_total{command="RequestRun",outcome="accepted"} 1"#));
    assert!(text.contains("aurora_relay_leader 1"));
    assert!(text.contains("# TYPE aurora_relay_published_events counter"));
    assert!(text.ends_with("# EOF\n"));

    // While draining, the replica stops taking new traffic.
    app.state.start_draining();
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await;
}

#[apply(both_modes)]
async fn runs_survive_a_restart(mode: Mode) {
    let app = spawn_app(mode).await;
    let first = app.created_id(&valid_run()).await;
    app.await_view(&first, 1).await;
    let app = app.restart().await;

    let run = app
        .client
        .get(app.url(&format!("/api/v1/runs/{first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), StatusCode::OK);
    let second = app.created_id(&valid_run()).await;
    app.await_view(&second, 1).await;
    assert_eq!(app.run_events().await, 2);
    // The bus holds every stored event exactly once: the embedded bus was rebuilt from the
    // store, the JetStream stream kept the first ones and got the rest.
    let stored = app.stored_events().await;
    let bus = app.state.bus.shared();
    let deadline = tokio::time::Instant::now() + WAIT;
    while bus.state().await.unwrap().messages < stored as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay caught up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(bus.state().await.unwrap().messages, stored as u64);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_run_is_a_row_in_postgres_and_a_message_for_a_plain_nats_subscriber() {
    let app = spawn_app(Mode::Production).await;
    let client = async_nats::connect(testkit::nats_url()).await.unwrap();
    let mut subscriber = client
        .subscribe(format!("{}.events.run.>", app.config.nats_prefix))
        .await
        .unwrap();
    client.flush().await.unwrap();

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .client
        .post(app.url("/api/v1/runs"))
        .header("traceparent", traceparent)
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let aurora_projections::Database::Postgres(pool) = &app.state.db else {
        unreachable!()
    };
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'run' AND aggregate_id = $1",
    )
    .bind(&id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(rows, 1);

    let message = tokio::time::timeout(WAIT, subscriber.next())
        .await
        .expect("the relay publishes right after commit")
        .unwrap();
    assert_eq!(
        message.subject.as_str(),
        format!("{}.events.run.{id}.RunRequested", app.config.nats_prefix)
    );
    let event: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(event["type"], "aurora.run.RunRequested.v1");
    assert_eq!(event["subject"], format!("run/{id}"));
    assert_eq!(event["principal"], "tester");
    // The caller's trace continues on the bus: in the message's headers and its envelope.
    let headers = message
        .headers
        .as_ref()
        .expect("event messages carry headers");
    assert_eq!(
        headers.get("traceparent").map(|v| v.as_str()),
        Some(traceparent)
    );
    assert_eq!(event["traceparent"], traceparent);
    app.stop().await;
}
