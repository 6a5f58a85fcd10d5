//! The audit trail end to end: who did what with which token from where, answered in one
//! request and proven unedited; refusals in the trail; bad queries; exports; rebuilds
//! while serving; history and time travel; projection lag in health.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use std::time::Duration;

use aurora_domain::user::Role;
use aurora_projections::audit::AuditLog;
use aurora_projections::testkit;
use biscuit_auth::builder::BlockBuilder;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{problem, spawn_app, token_with_role, valid_run, Mode, TestApp, PASSWORD, WAIT};

impl TestApp {
    /// Waits until the audit log has an entry for every stored event.
    async fn audit_caught_up(&self) {
        let stored = self.stored_events().await;
        assert!(
            self.state.audit.wait_for(stored, WAIT).await,
            "the audit log covers all {stored} stored events"
        );
    }

    async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// Runs `aurora <args>` against `app`'s storage; returns the exit status and stdout.
fn aurora(app: &TestApp, args: &[&str]) -> (bool, String) {
    let (ok, _, stdout) = super::anchoring::cli(&app.config, args);
    (ok, stdout)
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_default()
}

#[apply(both_modes)]
async fn an_auditor_answers_who_did_what_with_which_token_from_where_in_one_request(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = token_with_role(&app, "root", Role::Admin).await;
    let started = chrono::Utc::now() - chrono::TimeDelta::minutes(1);
    let tester_token_id = app.get_json("/api/v1/auth/whoami").await["token_id"]
        .as_str()
        .unwrap()
        .to_string();

    // What tester does: a run, a cancel, an admin-only read (403), a wrong password.
    let response = app
        .client
        .post(app.url("/api/v1/runs"))
        .header("x-request-id", "audit-req-1")
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let run_id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel = app
        .client
        .post(app.url(&format!("/api/v1/runs/{run_id}/cancel")))
        .json(&json!({"reason": "changed my mind"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::OK);
    let forbidden = app
        .client
        .get(app.url("/api/v1/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.login("tester", "not the password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // And strangers: a forged token, a login as nobody.
    let forged = app.get_as("/api/v1/runs", "not-a-token").await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("nobody", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.audit_caught_up().await;

    // One request: what did tester do since a minute ago, with which token, from where.
    let ended = chrono::Utc::now() + chrono::TimeDelta::minutes(1);
    let query = serde_urlencoded::to_string([
        ("actor", "tester"),
        ("from", &started.to_rfc3339()),
        ("to", &ended.to_rfc3339()),
        ("limit", "100"),
    ])
    .unwrap();
    let response = app.get_as(&format!("/api/v1/audit?{query}"), &admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    let entries = items(&page);
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "RunRequested",
        "RunCancelled",
        "AccessRefused",
        "LoginFailed",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let requested = entries
        .iter()
        .find(|e| e["action"] == "RunRequested")
        .unwrap();
    assert_eq!(requested["token_id"], tester_token_id.as_str());
    assert_eq!(requested["client_ip"], "127.0.0.1");
    assert_eq!(requested["request_id"], "audit-req-1");
    assert_eq!(requested["role"], "user");
    assert_eq!(
        (
            requested["resource_type"].as_str(),
            requested["resource_id"].as_str()
        ),
        (Some("run"), Some(run_id.as_str()))
    );
    let refused = entries
        .iter()
        .find(|e| e["action"] == "AccessRefused")
        .unwrap();
    assert_eq!(refused["details"]["route"], "/api/v1/users");
    assert_eq!(refused["details"]["status"], 403);
    assert_eq!(refused["token_id"], tester_token_id.as_str());
    // Entries come in chain order, each linked to the one before.
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    // Strangers are in the trail too, anonymous.
    let anonymous: Value = app
        .get_as("/api/v1/audit?actor=anonymous&action=AccessRefused", &admin)
        .await
        .json()
        .await
        .unwrap();
    let reasons: Vec<String> = items(&anonymous)
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(reasons.contains(&"invalid-token".into()), "{reasons:?}");
    assert!(reasons.contains(&"login-failed".into()), "{reasons:?}");

    // Pages: two at a time, nothing repeated, nothing skipped.
    let mut cursor: Option<String> = None;
    let mut paged = Vec::new();
    loop {
        let mut path = "/api/v1/audit?actor=tester&limit=2".to_string();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = app.get_as(&path, &admin).await.json().await.unwrap();
        paged.extend(items(&page).iter().map(|e| e["seq"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let all: Value = app
        .get_as("/api/v1/audit?actor=tester&limit=1000", &admin)
        .await
        .json()
        .await
        .unwrap();
    let all: Vec<i64> = items(&all)
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(paged, all);

    // The export carries the chain, holds no secret, and verifies.
    let export = app.get_as("/api/v1/audit/export", &admin).await;
    assert_eq!(export.status(), StatusCode::OK);
    assert_eq!(
        export.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = export.text().await.unwrap();
    assert!(!text.contains(PASSWORD) && !text.contains(&app.token) && !text.contains(&admin));
    assert!(!text.contains("$argon2"));
    let verdict = aurora_gateway::cli::maintenance::verify_lines(text.as_bytes(), false).unwrap();
    assert_eq!(verdict.finding, None);
    assert_eq!(verdict.entries as i64, app.stored_events().await);
    let path = app.dir.path().join("export.ndjson");
    std::fs::write(&path, &text).unwrap();
    let (ok, out) = aurora(&app, &["audit", "verify", "--file", path.to_str().unwrap()]);
    assert!(ok, "{out}");

    // A time range is an unbroken stretch of the chain; a selection is checked entry by
    // entry; an entry edited in a file is found either way.
    let query = serde_urlencoded::to_string([("from", started.to_rfc3339())]).unwrap();
    let stretch = app
        .get_as(&format!("/api/v1/audit/export?{query}"), &admin)
        .await;
    assert_eq!(stretch.headers()["x-audit-chain"], "stretch");
    let stretch = stretch.text().await.unwrap();
    let verdict =
        aurora_gateway::cli::maintenance::verify_lines(stretch.as_bytes(), false).unwrap();
    assert_eq!(verdict.finding, None);
    assert!(verdict.entries > 0);
    let selection = app
        .get_as("/api/v1/audit/export?actor=tester", &admin)
        .await;
    assert_eq!(selection.headers()["x-audit-chain"], "selection");
    let selection = selection.text().await.unwrap();
    let verdict =
        aurora_gateway::cli::maintenance::verify_lines(selection.as_bytes(), true).unwrap();
    assert_eq!(
        (verdict.finding, verdict.entries as usize),
        (None, all.len())
    );
    let edited = selection.replacen("\"actor\":\"tester\"", "\"actor\":\"someone\"", 1);
    std::fs::write(&path, &edited).unwrap();
    let (ok, out) = aurora(
        &app,
        &[
            "audit",
            "verify",
            "--file",
            path.to_str().unwrap(),
            "--selection",
        ],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("\"changed\""), "{out}");

    // Proven unedited in the database too; an edit with SQL is found by the CLI.
    let (ok, out) = aurora(&app, &["audit", "verify"]);
    assert!(ok, "{out}");
    let head = app.state.audit.head().await.unwrap().unwrap();
    assert!(out.contains(&head.hash), "{out}");
    aurora_projections::on_pool!(&app.state.db, |pool| sqlx::query(
        "UPDATE audit_log SET client_ip = '203.0.113.66' WHERE seq = 2"
    )
    .execute(pool)
    .await
    .map(drop)
    .unwrap());
    let (ok, out) = aurora(&app, &["audit", "verify"]);
    assert!(!ok);
    let verdict: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verdict["finding"]["kind"], "changed");
    assert_eq!(verdict["finding"]["seq"], 2);
    app.stop().await;
}

#[apply(both_modes)]
async fn only_admins_and_audit_read_tokens_read_the_trail_and_bad_queries_get_problems(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = token_with_role(&app, "root", Role::Admin).await;
    app.audit_caught_up().await;

    // A user may not; an admin's token narrowed to audit:read may, and nothing else.
    let refused = app
        .client
        .get(app.url("/api/v1/audit"))
        .send()
        .await
        .unwrap();
    problem(refused, 403, "forbidden").await;
    let auditor = app
        .state
        .identity
        .tokens
        .verify(&admin)
        .unwrap()
        .append(
            BlockBuilder::new()
                .code(r#"check if operation("audit:read")"#)
                .unwrap(),
        )
        .unwrap()
        .to_base64()
        .unwrap();
    assert_eq!(
        app.get_as("/api/v1/audit", &auditor).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_as("/api/v1/audit/export", &auditor).await.status(),
        StatusCode::OK
    );
    problem(
        app.get_as("/api/v1/users", &auditor).await,
        403,
        "forbidden",
    )
    .await;
    problem(
        reqwest::get(app.url("/api/v1/audit")).await.unwrap(),
        401,
        "missing-token",
    )
    .await;

    let page: Value = app
        .get_as("/api/v1/audit?limit=1", &admin)
        .await
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let mut tampered = cursor.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let stored = app.stored_events().await;
    for (query, slug) in [
        ("from=yesterday", "invalid-time"),
        ("to=2026-13-01T00:00:00Z", "invalid-time"),
        (
            "from=2026-11-25T00:00:00Z&to=2026-11-18T00:00:00Z",
            "invalid-range",
        ),
        (
            "from=2026-11-25T00:00:00Z&to=2026-11-25T00:00:00Z",
            "invalid-range",
        ),
        ("limit=100000", "invalid-limit"),
        ("limit=0", "invalid-limit"),
        ("limit=ten", "invalid-limit"),
        ("colour=red", "invalid-query"),
        ("actor=", "invalid-filter"),
        (&format!("actor={}", "x".repeat(300)), "invalid-filter"),
        (&format!("cursor={tampered}"), "invalid-cursor"),
        ("cursor=%00%01", "invalid-cursor"),
        (&format!("actor=tester&cursor={cursor}"), "invalid-cursor"),
    ] {
        let response = app.get_as(&format!("/api/v1/audit?{query}"), &admin).await;
        problem(response, 400, slug).await;
    }
    problem(
        app.get_as("/api/v1/audit/export?limit=5", &admin).await,
        400,
        "invalid-query",
    )
    .await;
    problem(
        app.get_as("/api/v1/audit/export?from=later", &admin).await,
        400,
        "invalid-time",
    )
    .await;
    // An export of an empty range is valid and empty.
    let empty = app
        .get_as(
            "/api/v1/audit/export?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z",
            &admin,
        )
        .await;
    assert_eq!(empty.status(), StatusCode::OK);
    assert_eq!(empty.text().await.unwrap(), "");
    // Bad queries stored nothing (refusals aside, none were made here by a bad query).
    assert_eq!(app.stored_events().await, stored);
    app.stop().await;
}

#[apply(both_modes)]
async fn a_rebuild_while_serving_reads_and_writes_ends_on_the_same_chain_head(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = token_with_role(&app, "root", Role::Admin).await;
    for _ in 0..10 {
        app.created_id(&valid_run()).await;
    }
    app.audit_caught_up().await;
    let live_before = app.state.audit.head().await.unwrap().unwrap();

    // Writes and reads go on through the rebuild.
    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = tokio::spawn({
        let (client, base, admin, stop) = (
            app.client.clone(),
            app.base.clone(),
            admin.clone(),
            stop.clone(),
        );
        async move {
            let (mut written, mut read) = (0, 0);
            while !stop.is_cancelled() || written < 5 {
                let posted = client
                    .post(format!("{base}/api/v1/runs"))
                    .json(&valid_run())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(posted.status(), StatusCode::CREATED);
                written += 1;
                let listed = reqwest::Client::new()
                    .get(format!("{base}/api/v1/audit?limit=5"))
                    .bearer_auth(&admin)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(listed.status(), StatusCode::OK, "reads go on");
                read += 1;
            }
            (written, read)
        }
    });
    let (ok, out) = aurora(&app, &["projections", "rebuild", "audit-log"]);
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    stop.cancel();
    let (written, read) = traffic.await.unwrap();
    assert!(written >= 5 && read >= 5);
    assert!(report["report"]["events"].as_i64().unwrap() >= live_before.seq);

    app.audit_caught_up().await;
    let verdict = app.state.audit.verify().await.unwrap();
    assert_eq!(verdict.finding, None);
    assert_eq!(
        verdict.entries as i64,
        app.stored_events().await,
        "nothing lost"
    );
    let replayed = AuditLog::new(app.state.db.clone())
        .replayed_head()
        .await
        .unwrap();
    assert_eq!(verdict.head, replayed, "the same chain head as a replay");
    let at_live_head: Value = app
        .get_as(
            "/api/v1/audit?limit=1&actor=root&from=2000-01-01T00:00:00Z",
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(!items(&at_live_head).is_empty());
    let entries = app
        .state
        .audit
        .query(&Default::default(), live_before.seq - 1, 1)
        .await
        .unwrap();
    assert_eq!(
        entries[0].hash, live_before.hash,
        "the live chain, unchanged"
    );

    // The runs view rebuilds the same way, and other projections by name.
    let (ok, out) = aurora(&app, &["projections", "rebuild", "runs"]);
    assert!(ok, "{out}");
    let (ok, out) = aurora(&app, &["projections", "rebuild", "users"]);
    assert!(ok, "{out}");
    let (ok, out) = aurora(&app, &["replay", "verify"]);
    assert!(ok, "{out}");
    let replay: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        replay["events"].as_i64().unwrap(),
        app.stored_events().await
    );
    assert_eq!(replay["failures"], json!([]));
    app.stop().await;
}

#[apply(both_modes)]
async fn time_travel_returns_the_state_a_run_and_a_user_had_then(mode: Mode) {
    let app = spawn_app(mode).await;
    let id = app.created_id(&valid_run()).await;
    let before: Value = app.get_json(&format!("/api/v1/runs/{id}/history")).await;
    assert_eq!(before["state"]["status"], "requested");
    let requested_at = before["events"][0]["time"].as_str().unwrap().to_string();
    let requested_position = before["events"][0]["position"].as_i64().unwrap();
    let cancel = app
        .client
        .post(app.url(&format!("/api/v1/runs/{id}/cancel")))
        .json(&json!({"reason": "too slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::OK);

    let now: Value = app.get_json(&format!("/api/v1/runs/{id}/history")).await;
    assert_eq!(now["state"]["status"], "cancelled");
    assert_eq!(now["version"], 2);
    let types: Vec<&str> = now["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["RunRequested", "RunCancelled"]);
    assert_eq!(
        now["events"][1]["data"]["RunCancelled"]["reason"],
        "too slow"
    );

    // Back to when it was requested: by position, and by time.
    for as_of in [requested_position.to_string(), urlencode(&requested_at)] {
        let then: Value = app
            .get_json(&format!("/api/v1/runs/{id}/history?as_of={as_of}"))
            .await;
        assert_eq!(then["state"]["status"], "requested", "as of {as_of}");
        assert_eq!(then["version"], 1);
        assert_eq!(then["events"].as_array().unwrap().len(), 1);
    }
    let earlier: Value = app
        .get_json(&format!(
            "/api/v1/runs/{id}/history?as_of=2001-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(
        (earlier["state"].clone(), earlier["version"].clone()),
        (Value::Null, json!(0))
    );

    // Authorized like reads of the run; bad as_of refused.
    let other = token_with_role(&app, "other", Role::User).await;
    let response = app
        .get_as(&format!("/api/v1/runs/{id}/history"), &other)
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    for bad in ["as_of=yesterday", "as_of=-3", "since=1"] {
        let response = app
            .client
            .get(app.url(&format!("/api/v1/runs/{id}/history?{bad}")))
            .send()
            .await
            .unwrap();
        problem(
            response,
            400,
            if bad.starts_with("since") {
                "invalid-query"
            } else {
                "invalid-as-of"
            },
        )
        .await;
    }

    // A user's own history, and as it was at registration.
    let mine: Value = app.get_json("/api/v1/users/tester/history").await;
    assert_eq!(mine["events"][0]["type"], "UserRegistered");
    let registered = mine["events"][0]["position"].as_i64().unwrap();
    let admin = token_with_role(&app, "root", Role::Admin).await;
    let changed = reqwest::Client::new()
        .patch(app.url("/api/v1/users/tester"))
        .bearer_auth(&admin)
        .json(&json!({"tier": "pro"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let now: Value = app
        .get_as("/api/v1/users/tester/history", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["state"]["tier"], "pro");
    let then: Value = app
        .get_as(
            &format!("/api/v1/users/tester/history?as_of={registered}"),
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (then["state"]["tier"].clone(), then["version"].clone()),
        (json!("free"), json!(1))
    );
    // Someone else's history is the admin's to read, not another user's.
    let response = app.get_as("/api/v1/users/root/history", &other).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)]).unwrap()[2..].to_string()
}

#[apply(both_modes)]
async fn health_reports_projection_lag_and_a_stuck_projection_degrades_it(mode: Mode) {
    let mut app = spawn_app(mode).await;
    app.created_id(&valid_run()).await;
    let (mut config, dir) = app.stop().await;
    config.projection_stuck_seconds = 0;
    app = super::start(config, dir).await;
    app.audit_caught_up().await;

    // Caught up: every projection healthy, lag 0.
    let deadline = tokio::time::Instant::now() + WAIT;
    let health = loop {
        let health: Value = reqwest::get(app.url("/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["services"]["projections"]["status"] == "healthy" {
            break health;
        }
        assert!(tokio::time::Instant::now() < deadline, "{health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for name in ["audit-log", "runs", "users"] {
        assert_eq!(
            health["services"]["projections"]["projections"][name]["lag"], 0,
            "{health}"
        );
    }

    // An event the runs view cannot read: it stops there, and health says so.
    let corrupt = testkit::RawEvent {
        aggregate_type: "run".into(),
        aggregate_id: uuid::Uuid::now_v7().to_string(),
        sequence: 1,
        event_type: "StepStarted".into(),
        event_version: "1".into(),
        payload: json!({"StepStarted": {"bogus": true}}),
        metadata: json!({"principal": "intruder", "request_id": "raw"}),
    };
    testkit::insert_raw(&app.state.db, &[corrupt])
        .await
        .unwrap();
    app.audit_caught_up().await;
    // /health reuses a measurement for up to a second.
    let deadline = tokio::time::Instant::now() + WAIT;
    let health = loop {
        let response = reqwest::get(app.url("/health")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let health: Value = response.json().await.unwrap();
        if health["services"]["projections"]["projections"]["runs"]["status"] == "stuck" {
            break health;
        }
        assert!(tokio::time::Instant::now() < deadline, "{health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["status"], "degraded", "{health}");
    let projections = &health["services"]["projections"];
    assert_eq!(projections["status"], "degraded");
    assert_eq!(projections["projections"]["runs"]["status"], "stuck");
    assert_eq!(projections["projections"]["runs"]["lag"], 1);
    assert_eq!(projections["projections"]["audit-log"]["lag"], 0);
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aurora_projection_lag_events{projection=\"runs\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}
