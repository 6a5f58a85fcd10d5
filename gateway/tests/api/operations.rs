//! Operations: log files and what they hold, metric families, bad request heads and the
//! settings file. (A replica's life — readiness, timeouts, SIGTERM — is in `lifecycle.rs`.)

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aurora_gateway::config::Config;
use aurora_gateway::telemetry::{self, LogSettings};
use aurora_projections::testkit::{self, TempDir};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{problem, start, valid_run, Mode, WAIT};

/// Polls `check` until it holds or `WAIT` passes: for conditions another process or a
/// background task brings about, with nothing to wait on directly.
pub(super) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) fn config_for(mode: Mode, dir: &TempDir) -> Config {
    let mut config = Config::embedded(dir.path());
    config.nats_prefix = testkit::unique_prefix();
    if mode == Mode::Production {
        config.nats_url = Some(testkit::nats_url());
    }
    config
}

// ---- logs ----

const WEBHOOK_SECRET: &str = "whsec_c2VjcmV0LW9mLXRoZS1sb2dzLXRlc3Q=";
const DB_PASSWORD: &str = "db-pw-never-logged-5c1e";
const NATS_PASSWORD: &str = "nats-pw-never-logged-0b7a";
const LOGGER_PASSWORD: &str = "pw-of-the-logger-9a7f3b";
const WRONG_PASSWORD: &str = "wrong-pw-of-the-logger-2e4d";

/// Each test runs in a process of its own (nextest): the global subscriber is this test's.
#[apply(both_modes)]
async fn logs_carry_the_request_and_never_a_secret(mode: Mode) {
    let dir = Arc::new(TempDir::new().unwrap());
    let logs = dir.path().join("logs");
    let logging = telemetry::init(&LogSettings {
        // As verbose as it gets for Aurora and the libraries that see secrets: sqlx sees
        // the database URL and statements, hyper and reqwest see headers.
        filter: "debug,h2=info,rustls=info".into(),
        stderr: false,
        dir: Some(logs.clone()),
        ..LogSettings::default()
    })
    .unwrap();
    assert!(
        logging.installed,
        "this test needs a process of its own (cargo nextest) to own the subscriber"
    );
    let mut config = config_for(mode, &dir);
    config.identity_webhook_secrets = Some(WEBHOOK_SECRET.into());
    if mode == Mode::Production {
        let url = testkit::create_postgres_database().await.unwrap();
        // The test server trusts local connections: the password is accepted, and must
        // never be written anywhere.
        config.database_url =
            Some(url.replacen("://postgres@", &format!("://postgres:{DB_PASSWORD}@"), 1));
        assert!(config
            .database_url
            .as_deref()
            .unwrap()
            .contains(DB_PASSWORD));
        // The test server has no NATS accounts: credentials are accepted and ignored.
        config.nats_url =
            Some(testkit::nats_url().replacen("://", &format!("://aurora:{NATS_PASSWORD}@"), 1));
    }
    let app = start(config, dir.clone()).await;

    // A full flow: register, log in, read, an API key, a run, a failed login, a webhook,
    // a tampered token, log out.
    let registered = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"username": "logger", "password": LOGGER_PASSWORD}),
        )
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let login: Value = app
        .login("logger", LOGGER_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let session = login["token"].as_str().unwrap().to_string();
    let key: Value = app
        .create_api_key(&session, json!({"label": "logs"}))
        .await
        .json()
        .await
        .unwrap();
    let api_key = key["token"].as_str().unwrap().to_string();
    let runs = app
        .with("GET", "/api/v1/runs", &api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(runs.status(), StatusCode::OK);
    let created = app
        .with("POST", "/api/v1/runs", &session)
        .header("x-request-id", "logs-test-run-1")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let refused = app.login("logger", WRONG_PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let tampered = format!(
        "{}x{}",
        &session[..session.len() / 2],
        &session[session.len() / 2 + 1..]
    );
    let bad = app
        .with("GET", "/api/v1/runs", &tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let secret = aurora_gateway::auth::webhook::decode_secret(WEBHOOK_SECRET).unwrap();
    let body = json!({"type": "user.created", "timestamp": "2026-11-25T00:00:00Z",
        "data": {"id": "idp-7", "username": "webhooked", "role": "user", "tier": "free"}})
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let signature = aurora_gateway::auth::webhook::sign(&secret, "msg_logs", now, body.as_bytes());
    let hooked = reqwest::Client::new()
        .post(app.url("/api/v1/webhooks/identity"))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_logs")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", &signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(hooked.status(), StatusCode::OK);
    let out = app
        .with("POST", "/api/v1/auth/logout", &session)
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success());
    tracing::error!(target: "aurora_test", "an error for the error file");
    let tester_token = app.token.clone();
    app.stop().await;
    // Every line queued for the files is written once the writers stop.
    drop(logging);

    let mut all = String::new();
    let mut errors = String::new();
    for entry in std::fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.starts_with("aurora-error.") {
            errors.push_str(&text);
        } else {
            assert!(name.starts_with("aurora."), "unexpected file {name}");
            all.push_str(&text);
        }
    }
    let today = chrono::Utc::now().date_naive();
    assert!(logs.join(format!("aurora.{today}.log")).exists());
    assert!(all.lines().count() > 50, "a full flow at debug logs plenty");

    // No secret, whole or in part.
    let mut secrets = vec![
        LOGGER_PASSWORD.to_string(),
        WRONG_PASSWORD.to_string(),
        super::PASSWORD.to_string(),
        WEBHOOK_SECRET.to_string(),
        WEBHOOK_SECRET.trim_start_matches("whsec_").to_string(),
        signature.clone(),
        DB_PASSWORD.to_string(),
        NATS_PASSWORD.to_string(),
    ];
    for token in [&session, &api_key, &tampered, &tester_token] {
        secrets.push(token.clone());
        let middle = token.len() / 2;
        secrets.push(token[middle - 12..middle + 12].to_string());
    }
    for secret in &secrets {
        for (name, text) in [("log", &all), ("error log", &errors)] {
            let line = text.lines().find(|line| line.contains(secret.as_str()));
            assert!(line.is_none(), "the {name} holds a secret: {line:?}");
        }
    }

    // Every line of a request carries its id, route and principal; the access line its
    // status and latency.
    let lines: Vec<Value> = all
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    let of_run: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["request_id"] == "logs-test-run-1")
        .collect();
    assert!(
        of_run.len() >= 2,
        "the request logged more than its access line"
    );
    for line in &of_run {
        assert_eq!(line["span"]["route"], "/api/v1/runs", "{line}");
        assert_eq!(
            line["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
            "{line}"
        );
        assert_eq!(line["span"]["method"], "POST", "{line}");
    }
    let access = of_run
        .iter()
        .find(|line| line["message"] == "request served")
        .expect("an access line");
    assert_eq!(access["span"]["principal"], "logger");
    assert_eq!(access["status"], 201);
    assert!(access["elapsed_ms"].as_f64().unwrap() > 0.0);
    assert!(lines
        .iter()
        .any(|line| line["target"] == "aurora_test" && line["level"] == "ERROR"));

    // The error file: errors only, this one among them.
    assert!(errors.contains("an error for the error file"));
    for line in errors.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["level"], "ERROR", "{line}");
    }
}

// ---- metrics ----

/// The value of the sample `series` (name and labels as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

/// Families exported from the start. prometheus-client leaves out a labelled family until
/// it has a series; those (actor restarts, escalations, runs finished, rate-limit decisions)
/// are checked by the tests that cause them (pipeline and rate-limit tests).
const FAMILIES: [(&str, &str); 20] = [
    ("aurora_http_requests", "counter"),
    ("aurora_http_request_duration_seconds", "histogram"),
    ("aurora_commands", "counter"),
    ("aurora_events_appended", "counter"),
    ("aurora_relay_published_events", "counter"),
    ("aurora_relay_healed_events", "counter"),
    ("aurora_relay_errors", "counter"),
    ("aurora_relay_leader", "gauge"),
    ("aurora_relay_position", "gauge"),
    ("aurora_relay_lag_events", "gauge"),
    ("aurora_runs_active", "gauge"),
    ("aurora_transcodes_active", "gauge"),
    ("aurora_transcode_duration_seconds", "histogram"),
    ("aurora_transcode_fps", "histogram"),
    ("aurora_db_pool_connections", "gauge"),
    ("aurora_db_pool_max_connections", "gauge"),
    ("aurora_projection_lag_events", "gauge"),
    ("aurora_refusals_unrecorded", "counter"),
    ("aurora_http_connections_open", "gauge"),
    ("aurora_http_connections_refused", "counter"),
];

fn assert_families(text: &str, families: &[(&str, &str)]) {
    for (family, kind) in families {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} ({kind}) is exported"
        );
    }
}

#[apply(both_modes)]
async fn every_metric_family_exists_and_a_flow_moves_them(mode: Mode) {
    let app = super::spawn_app(mode).await;
    let text = app.metrics().await;
    assert_families(&text, &FAMILIES);
    let before = |series: &str| sample(&text, series).unwrap_or(0.0);
    let created =
        before(r#"aurora_http_requests_total{method="POST",route="/api/v1/runs",status="201"}"#);
    let accepted = before(r#"aurora_commands_total{command="RequestRun",outcome="accepted"}"#);
    let appended = before(r#"aurora_events_appended_total{aggregate="run"}"#);
    let hits = before(r#"aurora_token_cache_lookups_total{outcome="hit"}"#);
    let published = before("aurora_relay_published_events_total");

    let id = app.created_id(&valid_run()).await;
    app.await_view(&id, 1).await;
    let read = app
        .client
        .get(app.url(&format!("/api/v1/runs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    // A redelivery: a durable consumer given a message back.
    let bus = app.state.bus.shared();
    let filter = bus.subjects().aggregate_events("run");
    let consumer = format!("metrics-probe-{}", uuid::Uuid::new_v4().simple());
    let mut deliveries = bus.consume(&consumer, &filter).await.unwrap();
    use futures::StreamExt;
    let first = tokio::time::timeout(WAIT, deliveries.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.event.aggregateid, id);
    first.nak(Duration::ZERO).await.unwrap();
    let again = tokio::time::timeout(WAIT, deliveries.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        again.event.aggregateid, id,
        "the same message, delivered again"
    );
    again.ack().await.unwrap();
    // The relay publishes after commit; wait for it rather than guess.
    eventually("the relay has published the run", || async {
        sample(&app.metrics().await, "aurora_relay_published_events_total").unwrap_or(0.0)
            > published
    })
    .await;

    let text = app.metrics().await;
    assert_families(&text, &FAMILIES);
    assert_families(
        &text,
        &[
            ("aurora_token_cache_lookups", "counter"),
            ("aurora_consumer_redeliveries", "counter"),
            ("aurora_process_cpu_seconds", "counter"),
            ("aurora_process_resident_memory_bytes", "gauge"),
            ("aurora_process_open_fds", "gauge"),
            ("aurora_process_max_fds", "gauge"),
            ("aurora_process_start_time_seconds", "gauge"),
        ],
    );
    let after = |series: &str| sample(&text, series).unwrap_or(0.0);
    assert_eq!(
        after(r#"aurora_http_requests_total{method="POST",route="/api/v1/runs",status="201"}"#),
        created + 1.0
    );
    assert_eq!(
        after(r#"aurora_commands_total{command="RequestRun",outcome="accepted"}"#),
        accepted + 1.0
    );
    assert_eq!(
        after(r#"aurora_events_appended_total{aggregate="run"}"#),
        appended + 1.0
    );
    // The token's first use verified it (a miss), the read after it was a hit.
    assert!(after(r#"aurora_token_cache_lookups_total{outcome="miss"}"#) >= 1.0);
    assert!(after(r#"aurora_token_cache_lookups_total{outcome="hit"}"#) >= hits + 1.0);
    assert!(
        after(&format!(
            r#"aurora_consumer_redeliveries_total{{consumer="{consumer}"}}"#
        )) >= 1.0
    );
    assert!(text.contains(r#"aurora_http_request_duration_seconds_count{method="GET",route="/api/v1/runs/{id}",status="200"}"#));
    let max = after("aurora_db_pool_max_connections");
    assert!(max >= 1.0);
    let open = after(r#"aurora_db_pool_connections{state="in_use"}"#)
        + after(r#"aurora_db_pool_connections{state="idle"}"#);
    assert!(open >= 1.0 && open <= max, "{open} connections of {max}");
    assert!(sample(&text, "aurora_relay_lag_events").is_some());
    // The process's own figures, read at the scrape.
    assert!(after("aurora_process_resident_memory_bytes") > 0.0);
    assert!(after("aurora_process_open_fds") >= 1.0);
    assert!(after("aurora_process_cpu_seconds_total") > 0.0);

    // The same figures as JSON, for admins, with rates over the last minute.
    let path = "/api/v1/health/metrics";
    problem(
        reqwest::get(app.url(path)).await.unwrap(),
        401,
        "missing-token",
    )
    .await;
    problem(
        app.client.get(app.url(path)).send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    let admin = super::token_with_role(&app, "ada", aurora_domain::user::Role::Admin).await;
    let vitals = app.with("GET", path, &admin).send().await.unwrap();
    assert_eq!(vitals.status(), StatusCode::OK);
    let vitals: serde_json::Value = vitals.json().await.unwrap();
    assert!(vitals["memory"]["resident_bytes"].as_i64().unwrap() > 0);
    assert!(vitals["cpu"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(vitals["uptime"].as_u64().is_some());
    assert!(vitals["open_files"].as_i64().unwrap() >= 1);
    let answered = text
        .lines()
        .filter(|line| line.starts_with("aurora_http_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(
        vitals["requests"]["total"].as_f64().unwrap() >= answered,
        "every request answered before it: {vitals} vs {answered}"
    );
    let events = text
        .lines()
        .filter(|line| line.starts_with("aurora_events_appended_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(events >= 1.0 && vitals["events"]["total"].as_f64().unwrap() >= events);
    assert!(vitals["requests"]["per_second"].as_f64().unwrap() > 0.0);
    assert!(vitals["events"]["per_second"].as_f64().unwrap() > 0.0);
    assert!(vitals["rate_window_seconds"].as_f64().unwrap() >= 1.0);
    app.stop().await;
}

// ---- request heads ----

#[apply(both_modes)]
async fn bad_heads_get_problems_and_change_nothing(mode: Mode) {
    let app = super::spawn_app(mode).await;
    let before = app.changes().await;
    let post = |headers: Vec<(String, String)>| {
        let mut request = app.client.post(app.url("/api/v1/runs")).json(&valid_run());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let traceparent = |value: &str| ("traceparent".to_string(), value.to_string());
    for bad in [
        "nonsense",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ] {
        let response = post(vec![traceparent(bad)]).await.unwrap();
        let body = problem(response, 400, "invalid-traceparent").await;
        assert!(body["detail"].as_str().unwrap().contains("W3C"), "{bad}");
    }
    // Sent twice: which one would the trace follow?
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let twice = post(vec![traceparent(good), traceparent(good)])
        .await
        .unwrap();
    problem(twice, 400, "invalid-traceparent").await;

    // Headers past the gateway's limit (16 KiB by default): 431 with a problem.
    let padding = |len: usize| ("x-padding".to_string(), "a".repeat(len));
    let big = post(vec![padding(32 * 1024)]).await.unwrap();
    let body = problem(big, 431, "headers-too-large").await;
    assert!(body["detail"].as_str().unwrap().contains("16384"));
    // Far past it, and past 128 headers: hyper refuses the head before any route sees it
    // (a status line, no body). Raw sockets: a client library may give up writing first.
    let address = app.base.trim_start_matches("http://").to_string();
    let far = format!("x-padding: {}\r\n", "a".repeat(80 * 1024));
    let many: String = (0..200).map(|i| format!("x-h{i}: 1\r\n")).collect();
    for headers in [far, many] {
        let status = raw_status(&address, &headers).await;
        assert_eq!(status, 431, "a head hyper refuses");
    }
    // Bodies past the limit of their route: JSON routes 64 KiB, uploads their own.
    let body = format!("{{\"pad\": \"{}\"}}", "a".repeat(70 * 1024));
    for path in [
        "/api/v1/runs",
        "/api/v1/auth/register",
        "/api/v1/auth/tokens",
    ] {
        let response = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        problem(response, 413, "body-too-large").await;
    }
    // A good traceparent still goes through, and the server took all of this in stride.
    let fine = post(vec![traceparent(good)]).await.unwrap();
    assert_eq!(fine.status(), StatusCode::CREATED);
    assert_eq!(
        app.changes().await,
        before + 1,
        "only the good request changed anything"
    );
    app.stop().await;
}

// ---- the database going away ----

// ---- request timeouts ----

// ---- SIGTERM ----

// ---- settings ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aurora_config_check_reads_a_settings_file_beneath_the_environment() {
    let dir = TempDir::new().unwrap();
    let check = |file: &std::path::Path, env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"));
        command
            .args(["config", "check", "--config"])
            .arg(file)
            .current_dir(dir.path());
        // Only what the test sets: the CI's own AURORA_* must not leak in.
        for (key, _) in std::env::vars() {
            if key.starts_with("AURORA_")
                || key == "DATABASE_URL"
                || key == "NATS_URL"
                || key == "RUST_LOG"
            {
                command.env_remove(key);
            }
        }
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let good = dir.path().join("aurora.toml");
    std::fs::write(
        &good,
        "listen = \"0.0.0.0:9000\"\nmax_attempts = 5\nworker = false\n\
         database_url = \"postgres://aurora:file-secret@db:5432/aurora\"\n\
         log_dir = \"/var/log/aurora\"\n",
    )
    .unwrap();
    let output = check(&good, &[("AURORA_MAX_ATTEMPTS", "7")]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let settings: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(settings["listen"], "0.0.0.0:9000", "from the file");
    assert_eq!(
        settings["max_attempts"], 7,
        "the environment beats the file"
    );
    assert_eq!(settings["worker"], false);
    assert_eq!(settings["log_dir"], "/var/log/aurora");
    assert_eq!(settings["database_url"], "postgres://***@db:5432/aurora");
    assert!(!stdout.contains("file-secret"));
    assert!(
        !dir.path().join("data").exists(),
        "checking creates nothing"
    );

    for (text, env, expected) in [
        (
            "listn = \"0.0.0.0:9000\"\n",
            vec![],
            "unknown setting `listn`",
        ),
        (
            "max_attempts = \"many\"\n",
            vec![],
            "`max_attempts` (AURORA_MAX_ATTEMPTS): invalid value 'many'",
        ),
        ("listen = [1]\n", vec![], "`listen` must be a string"),
        ("cors_origins = \"ftp:/x\"\n", vec![], "AURORA_CORS_ORIGINS"),
        (
            "max_attempts = 0\n",
            vec![],
            "AURORA_MAX_ATTEMPTS must be at least 1",
        ),
        ("", vec![("AURORA_LOG", "info,[")], "AURORA_LOG"),
        ("", vec![("AURORA_LISTEN", "nowhere")], "--listen"),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let output = check(&file, &env);
        assert!(!output.status.success(), "{text} {env:?} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{text} {env:?}: {stderr}");
    }
    let missing = check(&dir.path().join("missing.toml"), &[]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing.toml"));
}

/// Sends `POST /api/v1/runs` with `headers` over a plain socket; the answer's status.
pub(super) async fn raw_status(address: &str, headers: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /api/v1/runs HTTP/1.1\r\nhost: {address}\r\n{headers}content-length: 0\r\n\r\n"
    );
    // The server may stop reading once it has seen enough: a failed write is fine.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default().to_string();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}
