//! The HTTP API end to end, over real sockets. Every test runs twice: embedded (SQLite +
//! in-process bus) and production (Postgres + NATS JetStream).

use std::sync::Arc;
use std::time::Duration;

use aurora_domain::run::Run;
use aurora_gateway::config::Config;
use aurora_gateway::startup::Application;
use aurora_gateway::state::AppState;
use aurora_projections::testkit::{self, TempDir};
use aurora_projections::Cursor;
use cqrs_es::Aggregate;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

#[path = "api/audit.rs"]
mod audit;
use audit::{
    a_rebuild_while_serving_reads_and_writes_ends_on_the_same_chain_head,
    an_auditor_answers_who_did_what_with_which_token_from_where_in_one_request,
    health_reports_projection_lag_and_a_stuck_projection_degrades_it,
    only_admins_and_audit_read_tokens_read_the_trail_and_bad_queries_get_problems,
    time_travel_returns_the_state_a_run_and_a_user_had_then,
};

#[path = "api/operations.rs"]
mod operations;
use operations::{
    bad_heads_get_problems_and_change_nothing, every_metric_family_exists_and_a_flow_moves_them,
    logs_carry_the_request_and_never_a_secret,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_fails_while_the_database_is_away_and_recovers() {
    operations::ready_fails_while_the_database_is_away_and_recovers().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_abandoned_with_a_problem() {
    operations::a_request_past_its_timeout_is_abandoned_with_a_problem().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_request_in_flight_finish_then_exits_cleanly() {
    operations::sigterm_lets_a_request_in_flight_finish_then_exits_cleanly().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aurora_config_check_reads_a_settings_file_beneath_the_environment() {
    operations::aurora_config_check_reads_a_settings_file_beneath_the_environment().await
}

#[path = "api/docs.rs"]
mod docs;
use docs::{
    the_docs_ui_is_served_from_the_binary_and_loads_nothing_from_elsewhere,
    the_openapi_document_is_valid_3_1_and_matches_the_router_both_ways,
};

#[path = "api/security.rs"]
mod security;
use security::{
    refusals_of_a_genuine_token_are_recorded_whatever_its_address_spent,
    the_audit_trail_is_anchored_outside_its_database, the_smaller_findings_are_closed,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_http1_only_closed_when_silent_and_capped() {
    security::connections_are_http1_only_closed_when_silent_and_capped().await
}

#[path = "api/pipeline.rs"]
mod pipeline;
use pipeline::{
    a_file_dressed_as_media_is_refused_and_reads_no_other_file,
    a_free_user_runs_one_at_a_time_and_disabling_them_cancels_their_runs,
    a_run_actor_that_keeps_crashing_is_given_up_visibly,
    a_small_input_keeps_its_size_unless_upscaling_is_asked,
    a_step_that_outlasts_its_timeout_is_retried_then_fails_the_run,
    an_uploaded_clip_is_probed_transcoded_to_webm_480p_and_thumbnailed,
    bad_media_is_refused_or_fails_its_run_with_the_reason_and_the_pool_carries_on,
    cancelling_a_run_kills_ffmpeg_within_a_second,
    panics_in_a_run_actor_and_a_transcode_worker_are_survived_with_one_output_per_step,
};

#[path = "api/read_side.rs"]
mod read_side;
use read_side::{
    a_client_reads_its_own_writes_at_once, a_user_found_by_id_right_after_registering,
    sixty_four_clients_read_their_own_writes_at_once,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Embedded,
    Production,
}

struct TestApp {
    base: String,
    /// A session token of `tester`, a user; `client` sends it with every request.
    token: String,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
    config: Config,
    client: reqwest::Client,
    dir: Arc<TempDir>,
}

async fn spawn_app(mode: Mode) -> TestApp {
    spawn_app_with(mode, |_| {}).await
}

/// An Aurora of `mode` (a fresh database and stream prefix) with settings `tune` changes.
async fn spawn_app_with(mode: Mode, tune: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = Config::embedded(dir.path());
    config.nats_prefix = testkit::unique_prefix();
    if mode == Mode::Production {
        config.database_url = Some(testkit::create_postgres_database().await.unwrap());
        config.nats_url = Some(testkit::nats_url());
    }
    tune(&mut config);
    start(config, dir).await
}

async fn start(config: Config, dir: Arc<TempDir>) -> TestApp {
    let app = Application::build(config.clone())
        .await
        .expect("the application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let token = tester_token(&base).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    TestApp {
        base,
        token,
        state,
        shutdown,
        server,
        config,
        client: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap(),
        dir,
    }
}

/// Registers `tester` (unless a restart finds it registered) and logs in.
async fn tester_token(base: &str) -> String {
    let client = reqwest::Client::new();
    let credentials = json!({"username": "tester", "password": PASSWORD});
    let registered = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .status();
    assert!(registered == StatusCode::CREATED || registered == StatusCode::CONFLICT);
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"].as_str().expect("tester logs in").to_string()
}

impl TestApp {
    async fn stop(self) -> (Config, Arc<TempDir>) {
        self.shutdown.cancel();
        self.server.await.unwrap().expect("a clean stop");
        (self.config, self.dir)
    }

    async fn restart(self) -> TestApp {
        let (config, dir) = self.stop().await;
        start(config, dir).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post_run(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/runs"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The `/metrics` exposition.
    async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn created_id(&self, body: &Value) -> String {
        let response = self.post_run(body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    async fn stored_events(&self) -> i64 {
        self.state
            .db
            .count_through(Cursor {
                xid: i64::MAX,
                position: i64::MAX,
            })
            .await
            .unwrap()
    }

    /// Stored events other than refusals (`AccessRefused`, recorded for the audit trail):
    /// what a refused request must leave unchanged.
    async fn changes(&self) -> i64 {
        self.stored_events().await - self.refusals().await
    }

    /// Refused requests recorded.
    async fn refusals(&self) -> i64 {
        aurora_projections::on_pool!(&self.state.db, |pool| sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_type = 'access'"
        )
        .fetch_one(pool)
        .await
        .unwrap())
    }

    /// Stored events of runs (the fixture's user has events of its own).
    async fn run_events(&self) -> i64 {
        aurora_projections::on_pool!(&self.state.db, |pool| sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_type = 'run'"
        )
        .fetch_one(pool)
        .await
        .unwrap())
    }

    async fn await_view(&self, id: &str, version: i64) {
        self.state
            .runs
            .wait_for(id, version, WAIT)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("run {id} reached version {version} in the view"));
    }
}

fn valid_run() -> Value {
    json!({
        "input": {"url": "https://media.example/clip.mov"},
        "steps": [
            {"kind": "probe"},
            {"kind": "transcode", "format": "webm", "quality": "high", "resolution": "1080p"},
            {"kind": "thumbnail", "at_seconds": 2.5}
        ]
    })
}

macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Mode::Embedded).await
                }
            )*
        }
        mod postgres_nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Mode::Production).await
                }
            )*
        }
    };
}

in_both_modes!(
    a_client_reads_its_own_writes_at_once,
    sixty_four_clients_read_their_own_writes_at_once,
    a_user_found_by_id_right_after_registering,
    a_posted_run_is_stored_with_who_caused_it_in_which_request_and_when,
    runs_can_be_read_listed_page_by_page_and_cancelled,
    bad_input_gets_a_problem_and_changes_nothing,
    concurrent_posts_are_each_stored_once_and_all_answered,
    health_readiness_liveness_and_metrics_tell_the_truth,
    runs_survive_a_restart,
    a_user_registers_logs_in_and_reads_who_they_are_and_no_event_holds_the_password,
    of_fifty_simultaneous_registrations_of_one_name_exactly_one_succeeds,
    bad_credentials_and_bad_tokens_get_problems_and_leave_only_the_failed_login_event,
    runs_belong_to_their_owner_and_roles_decide_who_else_may_touch_them,
    an_api_key_narrowed_offline_by_another_implementation_reads_runs_but_cannot_create_one,
    api_keys_are_listed_without_their_secret_and_revoked_only_by_their_holder,
    logging_out_revokes_the_session_and_nothing_else,
    admins_list_and_change_users_and_disabling_or_a_new_role_revokes_every_token,
    every_identity_route_answers_by_role_and_ownership,
    aurora_admin_create_bootstraps_an_admin_whose_token_works,
    the_identity_webhook_applies_signed_messages_once_and_refuses_the_rest,
    the_sixth_login_attempt_in_fifteen_minutes_is_refused_with_retry_after,
    a_shadow_policy_counts_but_never_refuses,
    a_client_that_keeps_hammering_is_blocked_and_an_admin_lifts_it,
    every_response_carries_the_security_headers,
    browsers_on_allowed_origins_may_call_the_api_and_others_may_not,
    an_uploaded_clip_is_probed_transcoded_to_webm_480p_and_thumbnailed,
    bad_media_is_refused_or_fails_its_run_with_the_reason_and_the_pool_carries_on,
    a_file_dressed_as_media_is_refused_and_reads_no_other_file,
    refusals_of_a_genuine_token_are_recorded_whatever_its_address_spent,
    the_smaller_findings_are_closed,
    the_audit_trail_is_anchored_outside_its_database,
    panics_in_a_run_actor_and_a_transcode_worker_are_survived_with_one_output_per_step,
    a_run_actor_that_keeps_crashing_is_given_up_visibly,
    cancelling_a_run_kills_ffmpeg_within_a_second,
    a_free_user_runs_one_at_a_time_and_disabling_them_cancels_their_runs,
    a_step_that_outlasts_its_timeout_is_retried_then_fails_the_run,
    a_small_input_keeps_its_size_unless_upscaling_is_asked,
    an_auditor_answers_who_did_what_with_which_token_from_where_in_one_request,
    only_admins_and_audit_read_tokens_read_the_trail_and_bad_queries_get_problems,
    a_rebuild_while_serving_reads_and_writes_ends_on_the_same_chain_head,
    time_travel_returns_the_state_a_run_and_a_user_had_then,
    health_reports_projection_lag_and_a_stuck_projection_degrades_it,
    logs_carry_the_request_and_never_a_secret,
    every_metric_family_exists_and_a_flow_moves_them,
    bad_heads_get_problems_and_change_nothing,
    the_openapi_document_is_valid_3_1_and_matches_the_router_both_ways,
    the_docs_ui_is_served_from_the_binary_and_loads_nothing_from_elsewhere,
);

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

struct BadRequest {
    what: &'static str,
    method: reqwest::Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    slug: &'static str,
}

fn bad(
    what: &'static str,
    method: &str,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
    slug: &'static str,
) -> BadRequest {
    BadRequest {
        what,
        method: method.parse().unwrap(),
        path: path.to_string(),
        content_type: Some("application/json"),
        body: body.into(),
        status,
        slug,
    }
}

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

/// Sends `GET path` byte for byte; returns the status and content type.
async fn raw_get(base: &str, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let content_type = response
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (status, content_type)
}

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

// ---- identity ----

const PASSWORD: &str = "correct horse battery";

impl TestApp {
    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn register(&self, username: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/register",
            &json!({"username": username, "password": PASSWORD}),
        )
        .await
    }

    async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    async fn me(&self, header: (&str, &str)) -> reqwest::Response {
        // Not `self.client`: it sends tester's token with every request.
        reqwest::Client::new()
            .get(self.url("/api/v1/users/me"))
            .header(header.0, header.1)
            .send()
            .await
            .unwrap()
    }

    async fn user_events(&self, username: &str) -> Vec<aurora_projections::StoredEvent> {
        self.state
            .db
            .read_aggregate_after("user", username, 0)
            .await
            .unwrap()
    }
}

async fn problem(response: reqwest::Response, status: u16, slug: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("/problems/{slug}"), "{body}");
    body
}

async fn a_user_registers_logs_in_and_reads_who_they_are_and_no_event_holds_the_password(
    mode: Mode,
) {
    let app = spawn_app(mode).await;
    let registered = app.register("Alice").await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let user: Value = registered.json().await.unwrap();
    assert_eq!(
        (&user["username"], &user["role"], &user["tier"]),
        (&json!("alice"), &json!("user"), &json!("free"))
    );

    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    let login: Value = login.json().await.unwrap();
    let token = login["token"].as_str().unwrap();
    assert_eq!(login["token_type"], "Bearer");

    for header in [
        ("authorization", format!("Bearer {token}")),
        ("x-api-key", token.to_string()),
    ] {
        let me = app.me((header.0, &header.1)).await;
        assert_eq!(me.status(), StatusCode::OK, "{}", header.0);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["username"], "alice");
        assert_eq!(me["id"], user["id"]);
    }

    let events = app.user_events("alice").await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["UserRegistered", "LoginSucceeded"]);
    assert_eq!(events[1].metadata.principal, "alice");
    assert_eq!(
        events[1].metadata.token_id.as_deref(),
        login["token_id"].as_str()
    );
    let user_id = events[0].payload["UserRegistered"]["user_id"]
        .as_str()
        .unwrap();
    let hash = app.state.db.password_hash(user_id).await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$"));
    for event in &events {
        let text = format!("{} {:?}", event.payload, event.metadata);
        assert!(
            !text.contains(PASSWORD) && !text.contains("argon2"),
            "{text}"
        );
    }
    app.stop().await;
}

async fn of_fifty_simultaneous_registrations_of_one_name_exactly_one_succeeds(mode: Mode) {
    let app = Arc::new(spawn_app(mode).await);
    // Each attempt with its own password: only the winner's may work afterwards.
    let attempts: Vec<_> = (0..50)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let body = json!({"username": "popular", "password": format!("{PASSWORD} {i}")});
                let status = app
                    .post_json("/api/v1/auth/register", &body)
                    .await
                    .status()
                    .as_u16();
                (i, status)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    let winners: Vec<usize> = statuses
        .iter()
        .filter(|(_, s)| *s == 201)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|(_, s)| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(app.user_events("popular").await.len(), 1);
    // The winner's password is the one stored, and works; a loser's does not.
    let winner = winners[0];
    let loser = (winner + 1) % 50;
    assert_eq!(
        app.login("popular", &format!("{PASSWORD} {winner}"))
            .await
            .status(),
        StatusCode::OK
    );
    problem(
        app.login("popular", &format!("{PASSWORD} {loser}")).await,
        401,
        "login-failed",
    )
    .await;
    // The losers' hashes were removed: one row for the name.
    let rows: i64 = aurora_projections::on_pool!(&app.state.db, |pool| sqlx::query_scalar(
        "SELECT count(*) FROM passwords WHERE username = 'popular'"
    )
    .fetch_one(pool)
    .await
    .unwrap());
    assert_eq!(rows, 1);
    let Ok(app) = Arc::try_unwrap(app) else {
        panic!("every attempt has finished")
    };
    app.stop().await;
}

async fn bad_credentials_and_bad_tokens_get_problems_and_leave_only_the_failed_login_event(
    mode: Mode,
) {
    let app = spawn_app(mode).await;
    assert_eq!(app.register("bob").await.status(), StatusCode::CREATED);
    let before = app.changes().await;
    let refused_before = app.refusals().await;

    // Registration input.
    for (username, password, slug) in [
        ("x'; DROP TABLE events;--", PASSWORD, "invalid-username"),
        ("../../etc/passwd", PASSWORD, "invalid-username"),
        (&*"a".repeat(100), PASSWORD, "invalid-username"),
        ("carol", "short", "weak-password"),
    ] {
        let response = app
            .post_json(
                "/api/v1/auth/register",
                &json!({"username": username, "password": password}),
            )
            .await;
        problem(response, 422, slug).await;
    }
    let wrong_type = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"username": 5, "password": PASSWORD}),
        )
        .await;
    problem(wrong_type, 422, "invalid-body").await;
    let extra = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"username": "dave", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    problem(extra, 422, "invalid-body").await;
    problem(app.register("bob").await, 409, "username-taken").await;
    assert_eq!(
        app.changes().await,
        before,
        "refused registrations store nothing"
    );

    // Logins: one answer for every failure.
    let wrong = problem(
        app.login("bob", "wrong password").await,
        401,
        "login-failed",
    )
    .await;
    let unknown = problem(app.login("nobody", PASSWORD).await, 401, "login-failed").await;
    let invalid = problem(app.login("'; --", PASSWORD).await, 401, "login-failed").await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(wrong["detail"], invalid["detail"]);
    let events = app.user_events("bob").await;
    assert_eq!(events.last().unwrap().event_type, "LoginFailed");
    assert_eq!(events.last().unwrap().metadata.principal, "bob");
    assert!(app.user_events("nobody").await.is_empty());
    assert_eq!(
        app.changes().await,
        before + 1,
        "only the failed login of a real user is recorded"
    );
    assert_eq!(
        app.refusals().await,
        refused_before + 2,
        "logins as no one are refusals in the audit trail"
    );

    // Tokens.
    let token: Value = app.login("bob", PASSWORD).await.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let mut tampered = token.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let huge = "A".repeat(12_000);
    let truncated = &token[..token.len() / 2];
    let mut refused = 0;
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    let expired = app
        .state
        .identity
        .tokens
        .mint(
            aurora_domain::user::TokenKind::Session,
            "bob",
            aurora_domain::user::Role::User,
            aurora_domain::user::Tier::Free,
            two_hours_ago,
            Duration::from_secs(3600),
        )
        .unwrap()
        .token;
    for (name, value, slug) in [
        (
            "authorization",
            "Bearer not-a-token".to_string(),
            "invalid-token",
        ),
        (
            "authorization",
            format!("Bearer {tampered}"),
            "invalid-token",
        ),
        (
            "authorization",
            format!("Bearer {truncated}"),
            "invalid-token",
        ),
        ("authorization", format!("Bearer {huge}"), "invalid-token"),
        ("authorization", format!("Basic {token}"), "invalid-token"),
        ("x-api-key", "garbage".to_string(), "invalid-token"),
        ("x-token", token.clone(), "missing-token"),
        (
            "authorization",
            format!("Bearer {expired}"),
            "token-expired",
        ),
    ] {
        problem(app.me((name, &value)).await, 401, slug).await;
        refused += 1;
    }
    assert_eq!(
        app.refusals().await,
        refused_before + 2 + refused,
        "every 401 is in the audit trail"
    );
    app.stop().await;
}

/// Logs in `username` (registered, with `role`) and returns its token.
async fn token_with_role(app: &TestApp, username: &str, role: aurora_domain::user::Role) -> String {
    assert_eq!(app.register(username).await.status(), StatusCode::CREATED);
    let metadata = aurora_domain::EventMetadata::new("test-admin", "req-role");
    app.state
        .identity
        .users
        .execute(
            username,
            aurora_domain::user::UserCommand::ChangeRole { role },
            &metadata,
        )
        .await
        .unwrap();
    let login: Value = app.login(username, PASSWORD).await.json().await.unwrap();
    login["token"].as_str().unwrap().to_string()
}

async fn runs_belong_to_their_owner_and_roles_decide_who_else_may_touch_them(mode: Mode) {
    use aurora_domain::user::Role;
    let app = spawn_app(mode).await;
    let id = app.created_id(&valid_run()).await;
    app.await_view(&id, 1).await;
    let other = token_with_role(&app, "mallory", Role::User).await;
    let viewer = token_with_role(&app, "vera", Role::Viewer).await;
    let admin = token_with_role(&app, "ada", Role::Admin).await;
    let run = format!("/api/v1/runs/{id}");
    let cancel = format!("/api/v1/runs/{id}/cancel");
    let plain = reqwest::Client::new();
    let send = |method: &str, path: &str, token: Option<&str>| {
        let mut request = plain
            .request(method.parse().unwrap(), app.url(path))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if method == "POST" && path.ends_with("/cancel") {
            request = request.body("{}");
        } else if method == "POST" {
            request = request.body(valid_run().to_string());
        }
        request.send()
    };
    // (who, method, path, status)
    let table: Vec<(&str, Option<&str>, &str, &str, u16)> = vec![
        ("nobody", None, "GET", "/api/v1/runs", 401),
        ("nobody", None, "POST", "/api/v1/runs", 401),
        ("nobody", None, "GET", &run, 401),
        ("nobody", None, "POST", &cancel, 401),
        ("another user", Some(&other), "GET", &run, 403),
        ("another user", Some(&other), "POST", &cancel, 403),
        ("a viewer", Some(&viewer), "POST", "/api/v1/runs", 403),
        ("a viewer", Some(&viewer), "GET", &run, 403),
        ("an admin", Some(&admin), "GET", &run, 200),
        ("the owner", Some(&app.token), "GET", &run, 200),
    ];
    let before = app.changes().await;
    let refused_before = app.refusals().await;
    for (who, token, method, path, status) in &table {
        let response = send(method, path, *token).await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "{who} {method} {path}");
        if *status >= 400 {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
    }
    assert_eq!(
        app.changes().await,
        before,
        "refused requests store nothing"
    );
    let refusals = table
        .iter()
        .filter(|row| matches!(row.4, 401 | 403))
        .count();
    assert_eq!(
        app.refusals().await,
        refused_before + refusals as i64,
        "but each is in the audit trail"
    );
    // Lists: another user sees none of the owner's runs; an admin sees them.
    let list = |token: String| {
        let plain = plain.clone();
        let url = app.url("/api/v1/runs");
        async move {
            let body: Value = plain
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(!list(other.clone()).await.contains(&id));
    assert!(list(admin.clone()).await.contains(&id));
    assert!(list(app.token.clone()).await.contains(&id));
    // An admin may cancel anyone's run; the event names the admin.
    let cancelled = send("POST", &cancel, Some(&admin)).await.unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let events = app
        .state
        .db
        .read_aggregate_after("run", &id, 0)
        .await
        .unwrap();
    assert_eq!(events.last().unwrap().metadata.principal, "ada");
    app.stop().await;
}

// ---- tokens: API keys, logout, revocation, admin, bootstrap, webhook ----

impl TestApp {
    /// A request with `token` (not tester's).
    fn with(&self, method: &str, path: &str, token: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(token)
    }

    async fn create_api_key(&self, token: &str, body: Value) -> reqwest::Response {
        self.with("POST", "/api/v1/auth/tokens", token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Appends one block of `checks` to `token` with biscuit-python, a Biscuit library outside
/// Aurora's process (Python bindings, installed by `scripts/test`).
fn attenuate_with_python(token: &str, public_key: &str, checks: &[&str]) -> String {
    use std::io::Write;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var("AURORA_BISCUIT_PYTHON").unwrap_or_else(|_| {
        root.join("target/biscuit-interop-venv/bin/python")
            .display()
            .to_string()
    });
    let mut command = std::process::Command::new(&python);
    command
        .arg(root.join("scripts/biscuit-interop/attenuate.py"))
        .args(["--public-key", public_key]);
    for check in checks {
        command.args(["--check", check]);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python}: {e}; run scripts/biscuit-interop/install.sh (scripts/test does)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let output = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    assert!(
        output.status.success(),
        "attenuate.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

async fn an_api_key_narrowed_offline_by_another_implementation_reads_runs_but_cannot_create_one(
    mode: Mode,
) {
    let app = spawn_app(mode).await;
    let run = app.created_id(&valid_run()).await;
    app.await_view(&run, 1).await;
    let response = app
        .create_api_key(&app.token, json!({"label": "ci script"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let key: Value = response.json().await.unwrap();
    let api_key = key["token"].as_str().unwrap();
    assert_eq!(key["label"], "ci script");

    // The key works in the x-api-key header, as the write-up documents.
    let created = reqwest::Client::new()
        .post(app.url("/api/v1/runs"))
        .header("x-api-key", api_key)
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Narrowed offline, by Python, knowing only the public root key (published).
    let keys: Value = reqwest::Client::new()
        .get(app.url("/api/v1/auth/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signing = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["signing"] == true)
        .unwrap();
    let public = signing["public_key"].as_str().unwrap().to_string();
    assert!(public.starts_with("ed25519/"), "{public}");
    let read_only =
        attenuate_with_python(api_key, &public, &[r#"check if operation("runs:read")"#]);
    assert_ne!(read_only, api_key);
    let reads = app
        .with("GET", "/api/v1/runs", &read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(reads.status(), StatusCode::OK);
    let listed: Value = reads.json().await.unwrap();
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == run.as_str()));
    let before = app.run_events().await;
    let refused = app
        .with("POST", "/api/v1/runs", &read_only)
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    problem(refused, 403, "forbidden").await;
    assert_eq!(
        app.run_events().await,
        before,
        "the narrowed key created nothing"
    );

    // One run only, and a deadline already past.
    let one_run = attenuate_with_python(
        api_key,
        &public,
        &[r#"check if resource("run", $id), ["{RUN}"].contains($id)"#
            .replace("{RUN}", &run)
            .as_str()],
    );
    let this = app
        .with("GET", &format!("/api/v1/runs/{run}"), &one_run)
        .send()
        .await
        .unwrap();
    assert_eq!(this.status(), StatusCode::OK);
    let list = app
        .with("GET", "/api/v1/runs", &one_run)
        .send()
        .await
        .unwrap();
    problem(list, 403, "forbidden").await;
    let expired = attenuate_with_python(
        api_key,
        &public,
        &["check if time($t), $t < 2020-01-01T00:00:00Z"],
    );
    let late = app
        .with("GET", "/api/v1/runs", &expired)
        .send()
        .await
        .unwrap();
    problem(late, 403, "forbidden").await;
    // A narrowed key, however loosely narrowed, cannot mint a wider key or revoke its
    // parent.
    let loose = attenuate_with_python(
        api_key,
        &public,
        &["check if time($t), $t < 2100-01-01T00:00:00Z"],
    );
    let widening = app.create_api_key(&loose, json!({"label": "escape"})).await;
    problem(widening, 403, "forbidden").await;
    let parent = format!("/api/v1/auth/tokens/{}", key["token_id"].as_str().unwrap());
    let revoking = app.with("DELETE", &parent, &loose).send().await.unwrap();
    problem(revoking, 403, "forbidden").await;
    let users = app
        .with("GET", "/api/v1/users", &loose)
        .send()
        .await
        .unwrap();
    problem(users, 403, "forbidden").await;

    // Revoking the key revokes what was narrowed from it.
    let key_id = key["token_id"].as_str().unwrap();
    let revoked = app
        .with(
            "DELETE",
            &format!("/api/v1/auth/tokens/{key_id}"),
            &app.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    for token in [api_key, read_only.as_str(), one_run.as_str()] {
        let response = app.with("GET", "/api/v1/runs", token).send().await.unwrap();
        problem(response, 401, "token-revoked").await;
    }
    app.stop().await;
}

async fn api_keys_are_listed_without_their_secret_and_revoked_only_by_their_holder(mode: Mode) {
    use aurora_domain::user::Role;
    let app = spawn_app(mode).await;
    let key: Value = app
        .create_api_key(
            &app.token,
            json!({"label": "backup job", "expires_in_days": 7}),
        )
        .await
        .json()
        .await
        .unwrap();
    let key_id = key["token_id"].as_str().unwrap();
    let listed: Value = app
        .with("GET", "/api/v1/auth/tokens", &app.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    let item = items
        .iter()
        .find(|t| t["id"] == key_id)
        .expect("the key is listed");
    assert_eq!(item["kind"], "api_key");
    assert_eq!(item["label"], "backup job");
    assert!(items
        .iter()
        .any(|t| t["kind"] == "session" && t["current"] == true));
    assert!(
        !listed.to_string().contains(key["token"].as_str().unwrap()),
        "a list never shows a token itself"
    );
    let expires: chrono::DateTime<chrono::Utc> =
        key["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((6.9..=7.0).contains(&days), "{days}");

    // Bad input: 422/400 problems, nothing stored.
    let before = app.stored_events().await;
    for (body, status, slug) in [
        (json!({}), 422, "invalid-body"),
        (json!({"label": ""}), 422, "invalid-field"),
        (json!({"label": "x".repeat(65)}), 422, "invalid-field"),
        (json!({"label": "a\u{0}b"}), 422, "invalid-field"),
        (json!({"label": 7}), 422, "invalid-body"),
        (
            json!({"label": "ok", "expires_in_days": 0}),
            422,
            "invalid-field",
        ),
        (
            json!({"label": "ok", "expires_in_days": 366}),
            422,
            "invalid-field",
        ),
        (
            json!({"label": "ok", "expires_in_days": "ten"}),
            422,
            "invalid-body",
        ),
        (json!({"label": "ok", "role": "admin"}), 422, "invalid-body"),
    ] {
        let response = app.create_api_key(&app.token, body.clone()).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        problem(response, status, slug).await;
    }
    assert_eq!(
        app.stored_events().await,
        before,
        "refused requests store nothing"
    );

    // Another user cannot see or revoke it.
    let mallory = token_with_role(&app, "mallory", Role::User).await;
    let theirs: Value = app
        .with("GET", "/api/v1/auth/tokens", &mallory)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!theirs.to_string().contains(key_id));
    let before = app.stored_events().await;
    for path in [
        format!("/api/v1/auth/tokens/{key_id}"),
        format!("/api/v1/auth/tokens/{}", "x".repeat(500)),
        "/api/v1/auth/tokens/..%2F..%2Fetc%2Fpasswd".to_string(),
    ] {
        let response = app.with("DELETE", &path, &mallory).send().await.unwrap();
        problem(response, 404, "not-found").await;
    }
    assert_eq!(app.stored_events().await, before);
    let still = app
        .with("GET", "/api/v1/runs", key["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK, "mallory revoked nothing");
    // Revoked twice: the second time it is not found.
    let path = format!("/api/v1/auth/tokens/{key_id}");
    let first = app.with("DELETE", &path, &app.token).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let again = app.with("DELETE", &path, &app.token).send().await.unwrap();
    problem(again, 404, "not-found").await;
    let events = app.user_events("tester").await;
    let revoked: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "TokenRevoked")
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].payload["TokenRevoked"]["reason"], "revoked");
    assert_eq!(revoked[0].metadata.principal, "tester");
    app.stop().await;
}

async fn logging_out_revokes_the_session_and_nothing_else(mode: Mode) {
    let app = spawn_app(mode).await;
    let second: Value = app.login("tester", PASSWORD).await.json().await.unwrap();
    let second = second["token"].as_str().unwrap();
    let out = app
        .with("POST", "/api/v1/auth/logout", second)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let after = app
        .with("GET", "/api/v1/users/me", second)
        .send()
        .await
        .unwrap();
    problem(after, 401, "token-revoked").await;
    let again = app
        .with("POST", "/api/v1/auth/logout", second)
        .send()
        .await
        .unwrap();
    problem(again, 401, "token-revoked").await;
    let first = app
        .with("GET", "/api/v1/users/me", &app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK, "the other session lives on");
    let names: Vec<String> = app
        .user_events("tester")
        .await
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    assert_eq!(
        names[names.len() - 2..],
        ["LoggedOut".to_string(), "TokenRevoked".to_string()]
    );
    // The revocation survives a restart: it is loaded from the store.
    let app = app.restart().await;
    let later = app
        .with("GET", "/api/v1/users/me", second)
        .send()
        .await
        .unwrap();
    problem(later, 401, "token-revoked").await;
    app.stop().await;
}

/// Waits until the users view shows `username` passing `check` (a change of the view wakes
/// the wait), or fails after `WAIT`.
async fn await_user(
    app: &TestApp,
    admin: &str,
    username: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let wait = async {
        let mut changes = app.state.users.changes();
        loop {
            changes.borrow_and_update();
            let page: Value = app
                .with("GET", "/api/v1/users?limit=100", admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(user) = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["username"] == username && check(u))
            {
                return user.clone();
            }
            changes.changed().await.unwrap();
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("{username} never showed in the users view"))
}

async fn admins_list_and_change_users_and_disabling_or_a_new_role_revokes_every_token(mode: Mode) {
    use aurora_domain::user::Role;
    let app = spawn_app(mode).await;
    let admin = token_with_role(&app, "ada", Role::Admin).await;
    let key: Value = app
        .create_api_key(&app.token, json!({"label": "k"}))
        .await
        .json()
        .await
        .unwrap();
    let key = key["token"].as_str().unwrap().to_string();
    let tester = await_user(&app, &admin, "tester", |_| true).await;
    assert_eq!(tester["role"], "user");
    let tester_id = tester["id"].as_str().unwrap().to_string();

    let patch = |path: String, body: Value, token: String| {
        let request = app.with("PATCH", &path, &token).json(&body);
        async move { request.send().await.unwrap() }
    };
    // Disable, by user id: every token refused at once, no login.
    let response = patch(
        format!("/api/v1/users/{tester_id}"),
        json!({"disabled": true, "reason": "left the team"}),
        admin.clone(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["disabled"], true);
    for token in [&app.token, &key] {
        let response = app
            .with("GET", "/api/v1/users/me", token)
            .send()
            .await
            .unwrap();
        problem(response, 401, "token-revoked").await;
    }
    problem(app.login("tester", PASSWORD).await, 401, "login-failed").await;
    // Enabled again (by username): logins work, old tokens stay revoked.
    let response = patch(
        "/api/v1/users/tester".into(),
        json!({"disabled": false}),
        admin.clone(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let login: Value = app.login("tester", PASSWORD).await.json().await.unwrap();
    let fresh = login["token"].as_str().unwrap().to_string();
    problem(
        app.with("GET", "/api/v1/users/me", &key)
            .send()
            .await
            .unwrap(),
        401,
        "token-revoked",
    )
    .await;
    // A new role: tokens state the old one, so they are revoked; a new login states it.
    let response = patch(
        "/api/v1/users/tester".into(),
        json!({"role": "viewer", "tier": "pro"}),
        admin.clone(),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["role"].as_str(), body["tier"].as_str()),
        (Some("viewer"), Some("pro"))
    );
    problem(
        app.with("GET", "/api/v1/users/me", &fresh)
            .send()
            .await
            .unwrap(),
        401,
        "token-revoked",
    )
    .await;
    let login: Value = app.login("tester", PASSWORD).await.json().await.unwrap();
    let viewer = login["token"].as_str().unwrap();
    let me: Value = app
        .with("GET", "/api/v1/users/me", viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["role"].as_str(), me["tier"].as_str()),
        (Some("viewer"), Some("pro"))
    );
    let create = app
        .with("POST", "/api/v1/runs", viewer)
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    problem(create, 403, "forbidden").await;

    // Bad input and self-lockout: problems, nothing stored.
    let before = app.stored_events().await;
    for (path, body, status, slug) in [
        ("/api/v1/users/tester", json!({}), 422, "nothing-to-change"),
        (
            "/api/v1/users/tester",
            json!({"role": "god"}),
            422,
            "invalid-body",
        ),
        (
            "/api/v1/users/tester",
            json!({"disabled": "yes"}),
            422,
            "invalid-body",
        ),
        (
            "/api/v1/users/tester",
            json!({"password": "x"}),
            422,
            "invalid-body",
        ),
        (
            "/api/v1/users/nobody-here",
            json!({"tier": "pro"}),
            404,
            "not-found",
        ),
        (
            "/api/v1/users/01900000-0000-7000-8000-000000000001",
            json!({"tier": "pro"}),
            404,
            "not-found",
        ),
        (
            "/api/v1/users/..%2Fetc",
            json!({"tier": "pro"}),
            404,
            "not-found",
        ),
        (
            "/api/v1/users/ada",
            json!({"disabled": true}),
            409,
            "self-lockout",
        ),
        (
            "/api/v1/users/ada",
            json!({"role": "user"}),
            409,
            "self-lockout",
        ),
    ] {
        let response = patch(path.into(), body.clone(), admin.clone()).await;
        assert_eq!(response.status().as_u16(), status, "{path} {body}");
        problem(response, status, slug).await;
    }
    assert_eq!(
        app.stored_events().await,
        before,
        "refused requests store nothing"
    );
    // The view follows, and the events name the admin.
    await_user(&app, &admin, "tester", |u| {
        u["role"] == "viewer" && u["tier"] == "pro"
    })
    .await;
    let events = app.user_events("tester").await;
    let disabled = events
        .iter()
        .find(|e| e.event_type == "UserDisabled")
        .unwrap();
    assert_eq!(disabled.metadata.principal, "ada");
    app.stop().await;
}

async fn every_identity_route_answers_by_role_and_ownership(mode: Mode) {
    use aurora_domain::user::Role;
    let app = spawn_app(mode).await;
    let other = token_with_role(&app, "mallory", Role::User).await;
    let viewer = token_with_role(&app, "vera", Role::Viewer).await;
    let admin = token_with_role(&app, "ada", Role::Admin).await;
    let listed: Value = app
        .with("GET", "/api/v1/auth/tokens", &app.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let testers = listed["items"][0]["id"].as_str().unwrap().to_string();
    let revoke_testers = format!("/api/v1/auth/tokens/{testers}");
    let key = r#"{"label": "k"}"#;
    let tier = r#"{"tier": "pro"}"#;
    // (who, token, method, path, body, status)
    type Row<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, &'a str, u16);
    let table: Vec<Row> = vec![
        ("nobody", None, "GET", "/api/v1/users/me", "", 401),
        ("nobody", None, "GET", "/api/v1/auth/whoami", "", 401),
        ("nobody", None, "GET", "/api/v1/auth/keys", "", 200),
        ("nobody", None, "POST", "/api/v1/auth/logout", "", 401),
        ("nobody", None, "GET", "/api/v1/auth/tokens", "", 401),
        ("nobody", None, "POST", "/api/v1/auth/tokens", key, 401),
        ("nobody", None, "DELETE", &revoke_testers, "", 401),
        ("nobody", None, "GET", "/api/v1/users", "", 401),
        ("nobody", None, "PATCH", "/api/v1/users/tester", tier, 401),
        ("a user", Some(&other), "GET", "/api/v1/users", "", 403),
        (
            "a user",
            Some(&other),
            "PATCH",
            "/api/v1/users/tester",
            tier,
            403,
        ),
        (
            "a user, on themselves",
            Some(&other),
            "PATCH",
            "/api/v1/users/mallory",
            r#"{"role": "admin"}"#,
            403,
        ),
        (
            "another user",
            Some(&other),
            "DELETE",
            &revoke_testers,
            "",
            404,
        ),
        (
            "a viewer",
            Some(&viewer),
            "GET",
            "/api/v1/users/me",
            "",
            200,
        ),
        (
            "a viewer",
            Some(&viewer),
            "GET",
            "/api/v1/auth/tokens",
            "",
            200,
        ),
        ("a viewer", Some(&viewer), "GET", "/api/v1/users", "", 403),
        (
            "a viewer",
            Some(&viewer),
            "GET",
            "/api/v1/auth/whoami",
            "",
            200,
        ),
        (
            "a viewer",
            Some(&viewer),
            "PATCH",
            "/api/v1/users/tester",
            tier,
            403,
        ),
        ("an admin", Some(&admin), "GET", "/api/v1/users", "", 200),
        (
            "the holder",
            Some(&app.token),
            "GET",
            "/api/v1/auth/tokens",
            "",
            200,
        ),
    ];
    let before = app.changes().await;
    let refused_before = app.refusals().await;
    for (who, token, method, path, body, status) in &table {
        let mut request = reqwest::Client::new()
            .request(method.parse().unwrap(), app.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "{who} {method} {path}");
        if *status >= 400 {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
    }
    assert_eq!(
        app.changes().await,
        before,
        "refused requests and reads store nothing"
    );
    let refusals = table
        .iter()
        .filter(|row| matches!(row.5, 401 | 403))
        .count();
    assert_eq!(
        app.refusals().await,
        refused_before + refusals as i64,
        "but each 401 and 403 is in the audit trail"
    );
    // The mutations that are allowed, last: a viewer may keep an API key (it is a viewer's).
    let viewer_key = app
        .create_api_key(&viewer, serde_json::from_str(key).unwrap())
        .await;
    assert_eq!(viewer_key.status(), StatusCode::CREATED);
    let tier_change = app
        .with("PATCH", "/api/v1/users/tester", &admin)
        .body(tier)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(tier_change.status(), StatusCode::OK);
    app.stop().await;
}

/// Runs `aurora admin create` against `config`'s storage, password on stdin.
fn admin_create(config: &Config, username: &str, password: &str) -> std::process::Output {
    use std::io::Write;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"));
    command
        .args(["admin", "create", "--username", username])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AURORA_LOG", "warn")
        .env("AURORA_DATA_DIR", &config.data_dir);
    if let Some(url) = &config.database_url {
        command.env("DATABASE_URL", url);
    }
    if let Some(keys) = &config.root_keys_dir {
        command.env("AURORA_ROOT_KEYS_DIR", keys);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    tokio::task::block_in_place(|| child.wait_with_output()).unwrap()
}

async fn aurora_admin_create_bootstraps_an_admin_whose_token_works(mode: Mode) {
    let app = spawn_app(mode).await;
    let output = admin_create(&app.config, "Root", PASSWORD);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["username"], "root");
    let token = printed["token"].as_str().unwrap();
    let users = app
        .with("GET", "/api/v1/users", token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        users.status(),
        StatusCode::OK,
        "the printed token is an admin's"
    );
    let me: Value = app
        .with("GET", "/api/v1/users/me", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(app.login("root", PASSWORD).await.status(), StatusCode::OK);
    let events = app.user_events("root").await;
    assert_eq!(
        events[0].payload["UserRegistered"]["registration"]["kind"],
        "bootstrap"
    );
    assert!(
        !serde_json::to_string(&events.iter().map(|e| &e.payload).collect::<Vec<_>>())
            .unwrap()
            .contains(PASSWORD)
    );
    // Taken name, weak password, bad name: exit non-zero, nothing stored.
    let before = app.stored_events().await;
    for (name, password) in [
        ("root", PASSWORD),
        ("newadmin", "short"),
        ("x'; DROP TABLE events;--", PASSWORD),
    ] {
        let output = admin_create(&app.config, name, password);
        assert!(!output.status.success(), "{name}");
        assert!(output.stdout.is_empty(), "no token printed for {name}");
    }
    assert_eq!(app.stored_events().await, before);
    app.stop().await;
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn the_identity_webhook_applies_signed_messages_once_and_refuses_the_rest(mode: Mode) {
    use aurora_gateway::auth::webhook;
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = Config::embedded(dir.path());
    config.nats_prefix = testkit::unique_prefix();
    config.identity_webhook_secrets = Some(format!("whsec_b2xkIHNlY3JldA== {WEBHOOK_SECRET}"));
    if mode == Mode::Production {
        config.database_url = Some(testkit::create_postgres_database().await.unwrap());
        config.nats_url = Some(testkit::nats_url());
    }
    let app = start(config, dir).await;
    let key = webhook::decode_secret(WEBHOOK_SECRET).unwrap();
    let send = |id: &str, family: &str, timestamp: i64, body: &Value, signature: Option<String>| {
        let body = body.to_string();
        let signature =
            signature.unwrap_or_else(|| webhook::sign(&key, id, timestamp, body.as_bytes()));
        reqwest::Client::new()
            .post(app.url("/api/v1/webhooks/identity"))
            .header("content-type", "application/json")
            .header(format!("{family}-id"), id)
            .header(format!("{family}-timestamp"), timestamp.to_string())
            .header(format!("{family}-signature"), signature)
            .body(body)
            .send()
    };
    let now = chrono::Utc::now().timestamp();
    let created = json!({"type": "user.created", "timestamp": "2026-11-25T00:00:00Z",
        "data": {"id": "idp-42", "username": "Grace", "role": "user", "tier": "pro", "email": "g@example.org"}});
    let response = send("msg_1", "webhook", now, &created, None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = app.user_events("grace").await;
    assert_eq!(
        events[0].payload["UserRegistered"]["registration"]["external_id"],
        "idp-42"
    );
    assert_eq!(events[0].payload["UserRegistered"]["tier"], "pro");
    assert_eq!(events[0].metadata.principal, "identity-webhook");
    // Replayed: 200, nothing changes.
    let before = app.changes().await;
    let replay = send("msg_1", "webhook", now, &created, None).await.unwrap();
    assert_eq!(replay.status(), StatusCode::OK);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["status"], "duplicate");
    // Refused: 401, nothing stored.
    let forged = webhook::sign(
        b"another secret",
        "msg_2",
        now,
        created.to_string().as_bytes(),
    );
    for (id, family, timestamp, signature) in [
        ("msg_2", "webhook", now, Some(forged)),
        ("msg_3", "webhook", now - 600, None),
        ("msg_4", "webhook", now + 600, None),
        ("msg_5", "webhook", now, Some("v1,".to_string())),
        ("msg_6", "nope", now, None),
    ] {
        let response = send(id, family, timestamp, &created, signature)
            .await
            .unwrap();
        problem(response, 401, "invalid-webhook-signature").await;
    }
    let tampered = reqwest::Client::new()
        .post(app.url("/api/v1/webhooks/identity"))
        .header("webhook-id", "msg_7")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            webhook::sign(&key, "msg_7", now, created.to_string().as_bytes()),
        )
        .body(created.to_string().replace("pro", "enterprise"))
        .send()
        .await
        .unwrap();
    problem(tampered, 401, "invalid-webhook-signature").await;
    // Signed but malformed: 4xx, nothing stored, and the id is not burnt.
    let bad = json!({"type": "user.created", "data": {"id": "idp-9", "username": "x'; DROP TABLE events;--"}});
    problem(
        send("msg_8", "webhook", now, &bad, None).await.unwrap(),
        422,
        "invalid-username",
    )
    .await;
    let squatted = json!({"type": "user.updated", "data": {"id": "idp-7", "username": "tester", "role": "admin"}});
    problem(
        send("msg_13", "webhook", now, &squatted, None)
            .await
            .unwrap(),
        409,
        "identity-conflict",
    )
    .await;
    let other_id = json!({"type": "user.updated", "data": {"id": "idp-43", "username": "grace", "role": "admin"}});
    problem(
        send("msg_14", "webhook", now, &other_id, None)
            .await
            .unwrap(),
        409,
        "identity-conflict",
    )
    .await;
    // Older than what was applied (the created message's time): stale, nothing changes.
    let overtaken = json!({"type": "user.updated", "timestamp": 1_700_000_000_000_i64,
        "data": {"id": "idp-42", "username": "grace", "role": "admin"}});
    let response = send("msg_15", "webhook", now, &overtaken, None)
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "stale");
    let wrong = json!({"type": "user.promoted", "data": {}});
    problem(
        send("msg_9", "webhook", now, &wrong, None).await.unwrap(),
        422,
        "invalid-body",
    )
    .await;
    assert_eq!(
        app.changes().await,
        before,
        "refused messages store nothing but the refusals"
    );

    // Updated with svix-* headers: disabled, and its tokens with it.
    let updated = json!({"type": "user.updated", "data": {"id": "idp-42", "username": "grace", "disabled": true}});
    let response = send("msg_10", "svix", now, &updated, None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let user = app.state.identity.users.load("grace").await.unwrap();
    assert!(user.is_disabled());
    // Deleted; deleting an unknown user changes nothing.
    let deleted = json!({"type": "user.deleted", "data": {"id": "idp-42", "username": "grace"}});
    assert_eq!(
        send("msg_11", "webhook", now, &deleted, None)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert!(app
        .user_events("grace")
        .await
        .iter()
        .any(|e| e.event_type == "UserDeleted"));
    let unknown = json!({"type": "user.deleted", "data": {"id": "idp-0", "username": "nobody"}});
    assert_eq!(
        send("msg_12", "webhook", now, &unknown, None)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert!(app.user_events("nobody").await.is_empty());
    app.stop().await;
}

/// An `aurora serve` process; killed when dropped.
struct Process {
    child: std::process::Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `aurora serve` on a free port with `env`, and waits for its "listening" line.
    fn serve(env: &[(&str, String)]) -> Process {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AURORA_LISTEN", "127.0.0.1:0")
            .env("AURORA_LOG", "info,aurora::access=warn")
            // These processes are polled as fast as they answer.
            .env("AURORA_RATE_LIMITS", "off")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("aurora serve exited before listening")
                .unwrap();
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if log["message"] == "aurora is listening" {
                break log["port"].as_u64().unwrap();
            }
        };
        // Keep draining its logs so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Registers `username` here and returns a session token.
    async fn register_and_log_in(&self, username: &str) -> String {
        let credentials = json!({"username": username, "password": PASSWORD});
        let client = reqwest::Client::new();
        let register = client
            .post(format!("{}/api/v1/auth/register", self.base))
            .json(&credentials)
            .send()
            .await
            .unwrap();
        assert_eq!(register.status(), StatusCode::CREATED);
        let login: Value = client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&credentials)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["token"].as_str().unwrap().to_string()
    }

    fn request(&self, method: &str, path: &str, token: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    /// How long until `token` is refused here, polling as fast as requests return; fails
    /// after `WAIT`.
    async fn refused_after(&self, token: &str, since: std::time::Instant) -> Duration {
        loop {
            let response = self
                .request("GET", "/api/v1/users/me", token)
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::UNAUTHORIZED {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["type"], "/problems/token-revoked");
                return since.elapsed();
            }
            assert_eq!(response.status(), StatusCode::OK);
            assert!(since.elapsed() < WAIT, "the token was never refused");
        }
    }
}

/// Two gateway processes over one Postgres and one NATS stream: a revocation on one, and
/// a user disabled on the other, are honoured by the other within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_disabling_reach_another_gateway_process_within_a_second() {
    let dir = TempDir::new().unwrap();
    let keys = dir.path().join("keys");
    aurora_gateway::auth::keys::KeyRing::load(&keys, true).unwrap();
    let shared = vec![
        (
            "DATABASE_URL",
            testkit::create_postgres_database().await.unwrap(),
        ),
        ("NATS_URL", testkit::nats_url()),
        ("AURORA_NATS_PREFIX", testkit::unique_prefix()),
        ("AURORA_ROOT_KEYS_DIR", keys.display().to_string()),
    ];
    let with_data_dir = |name: &str| {
        let mut env = shared.clone();
        env.push((
            "AURORA_DATA_DIR",
            dir.path().join(name).display().to_string(),
        ));
        env
    };
    let a = Process::serve(&with_data_dir("a"));
    let b = Process::serve(&with_data_dir("b"));

    let mut config = Config::embedded(dir.path().join("admin"));
    config.database_url = Some(shared[0].1.clone());
    config.root_keys_dir = Some(keys.clone());
    let output = admin_create(&config, "root", PASSWORD);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let root: Value = serde_json::from_slice(&output.stdout).unwrap();
    let root = root["token"].as_str().unwrap().to_string();

    let session = a.register_and_log_in("alice").await;
    let key: Value = a
        .request("POST", "/api/v1/auth/tokens", &session)
        .json(&json!({"label": "laptop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_key = key["token"].as_str().unwrap().to_string();
    for token in [&session, &api_key] {
        let response = b
            .request("GET", "/api/v1/users/me", token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "B accepts A's tokens: the keys are shared"
        );
    }

    // Revoked on A: refused by B within a second.
    let path = format!("/api/v1/auth/tokens/{}", key["token_id"].as_str().unwrap());
    let revoked = a.request("DELETE", &path, &session).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let since = std::time::Instant::now();
    let took = b.refused_after(&api_key, since).await;
    println!("revocation on A reached B in {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "B refused the revoked key after {took:?}"
    );

    // Disabled on B: every token of the user refused by A within a second.
    let disabled = b
        .request("PATCH", "/api/v1/users/alice", &root)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    let since = std::time::Instant::now();
    let took = a.refused_after(&session, since).await;
    println!("disabling on B reached A in {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "A refused the disabled user's session after {took:?}"
    );
}

// ---- rate limits ----

/// An app with the rate-limit policy `policy` (TOML) and 127.0.0.1 as a trusted proxy.
async fn spawn_limited(mode: Mode, policy: &str) -> TestApp {
    spawn_limited_with(mode, policy, |_| {}).await
}

/// As [`spawn_limited`], with more settings `tune` changes.
async fn spawn_limited_with(mode: Mode, policy: &str, tune: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(mode, |config| {
        let path = config.data_dir.join("limits.toml");
        std::fs::write(&path, policy).unwrap();
        config.rate_limits = path.display().to_string();
        config.trusted_proxies = "127.0.0.1".into();
        tune(config);
    })
    .await
}

fn header(response: &reqwest::Response, name: &str) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

async fn the_sixth_login_attempt_in_fifteen_minutes_is_refused_with_retry_after(mode: Mode) {
    let app = spawn_limited(mode, aurora_gateway::limits::policy::PRESETS).await;
    // Each client (behind the trusted proxy) has its own bucket; the fixture's own logins
    // came from 127.0.0.1 itself.
    let attempt = |client: &'static str| {
        reqwest::Client::new()
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", client)
            .json(&json!({"username": "tester", "password": "wrong password"}))
            .send()
    };
    for n in 0..5 {
        let response = attempt("203.0.113.7").await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
        assert_eq!(header(&response, "ratelimit-limit"), Some(5));
        assert_eq!(header(&response, "ratelimit-remaining"), Some(4 - n));
    }
    let (events, refusals) = (app.stored_events().await, app.refusals().await);
    let sixth = attempt("203.0.113.7").await.unwrap();
    let retry_after = header(&sixth, "retry-after").expect("Retry-After");
    assert!((1..=180).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&sixth, "ratelimit-remaining"), Some(0));
    problem(sixth, 429, "rate-limited").await;
    assert_eq!(
        (app.stored_events().await, app.refusals().await),
        (events + 1, refusals + 1),
        "a refused login changes nothing; its refusal is in the audit trail"
    );
    // Another client is not affected; a spoofed header from it is believed only because
    // the peer (127.0.0.1) is a trusted proxy here.
    let other = attempt("198.51.100.23").await.unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    // Garbage in the header: the walk stops, the peer's own bucket is used.
    let garbage = reqwest::Client::new()
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "definitely not an address")
        .json(&json!({"username": "tester", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    // Keyed by the proxy itself (127.0.0.1), whose bucket only the fixture's two logins
    // have used: the wrong password is answered, not limited.
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    // Requests with a valid token are limited per principal, not per IP.
    let me = app
        .client
        .get(app.url("/api/v1/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(
        header(&me, "ratelimit-limit"),
        Some(100),
        "the general API class"
    );
    // Every decision is counted by class, tier and outcome.
    let metrics = app.metrics().await;
    assert!(metrics.contains("# TYPE aurora_rate_limit_decisions counter"));
    assert!(metrics.contains(
        r#"aurora_rate_limit_decisions_total{class="auth",tier="anonymous",outcome="limited"} 1"#
    ));
    assert!(metrics.contains("# TYPE aurora_rate_limit_buckets gauge"));
    app.stop().await;
}

async fn a_shadow_policy_counts_but_never_refuses(mode: Mode) {
    let policy = r#"
[[class]]
name = "strict"
routes = ["GET /api/v1/users/me"]
limit = "1/h"
mode = "shadow"
"#;
    let app = spawn_limited(mode, policy).await;
    for _ in 0..3 {
        let me = app
            .client
            .get(app.url("/api/v1/users/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rate_limit_file_is_refused_at_startup_naming_the_line() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("limits.toml");
    std::fs::write(
        &path,
        "[[class]]\nname = \"api\"\nroutes = [\"*\"]\nlimit = \"-5/h\"\n",
    )
    .unwrap();
    let mut config = Config::embedded(dir.path());
    config.rate_limits = path.display().to_string();
    let error = Application::build(config).await.err().expect("refused");
    let message = format!("{error:#}");
    assert!(message.contains("line 2"), "{message}");
}

/// Auth attempts 5 per 15 minutes; 3 refusals within 15 minutes block for 15 minutes.
const BLOCKING_POLICY: &str = r#"
[blocking]
after = 3
within = "15m"
for = "15m"
max = "1h"

[[class]]
name = "auth"
routes = ["POST /api/v1/auth/login", "POST /api/v1/auth/register"]
limit = "5/15m"
key = "ip"

[[class]]
name = "api"
routes = ["*"]
limit = "1000000/15m"
"#;

/// A wrong login from `client` (behind the trusted proxy).
async fn login_from(app: &TestApp, client: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({"username": "tester", "password": "wrong password"}))
        .send()
        .await
        .unwrap()
}

async fn a_client_that_keeps_hammering_is_blocked_and_an_admin_lifts_it(mode: Mode) {
    use aurora_domain::user::Role;
    let app = spawn_limited(mode, BLOCKING_POLICY).await;
    let admin = token_with_role(&app, "ada", Role::Admin).await;
    let client = "203.0.113.77";
    // 5 admitted (wrong password: 401), 2 refused (429 rate-limited), the 3rd refusal
    // blocks.
    let mut slugs = Vec::new();
    for _ in 0..8 {
        let response = login_from(&app, client).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        slugs.push(format!("{status} {}", body["type"].as_str().unwrap_or("")));
    }
    assert_eq!(
        slugs[5..],
        [
            "429 /problems/rate-limited",
            "429 /problems/rate-limited",
            "429 /problems/client-blocked"
        ],
        "{slugs:?}"
    );
    // Blocked everywhere, not only on logins.
    let keys = reqwest::Client::new()
        .get(app.url("/api/v1/auth/keys"))
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap();
    let retry_after = header(&keys, "retry-after").unwrap();
    assert!((800..=900).contains(&retry_after), "{retry_after}");
    problem(keys, 429, "client-blocked").await;
    // The block is an event, by the rate limiter.
    let key = format!("ip:{client}");
    let events = app
        .state
        .db
        .read_aggregate_after("client", &key, 0)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "ClientBlocked");
    assert_eq!(events[0].metadata.principal, "rate-limiter");
    assert_eq!(events[0].payload["ClientBlocked"]["reason"], "auth");
    // Listed for admins only.
    let listed: Value = app
        .with("GET", "/api/v1/admin/blocks", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["key"], key.as_str());
    let refused = app
        .with("GET", "/api/v1/admin/blocks", &app.token)
        .send()
        .await
        .unwrap();
    problem(refused, 403, "forbidden").await;

    // It survives a restart (buckets do not: they are memory).
    let app = app.restart().await;
    problem(login_from(&app, client).await, 429, "client-blocked").await;
    // An admin lifts it; the event names the admin; the client is heard again.
    let lift = app
        .with("DELETE", &format!("/api/v1/admin/blocks/{key}"), &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(lift.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        login_from(&app, client).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let again = app
        .with("DELETE", &format!("/api/v1/admin/blocks/{key}"), &admin)
        .send()
        .await
        .unwrap();
    problem(again, 404, "not-found").await;
    let events = app
        .state
        .db
        .read_aggregate_after("client", &key, 0)
        .await
        .unwrap();
    assert_eq!(events[1].event_type, "ClientUnblocked");
    assert_eq!(events[1].metadata.principal, "ada");
    app.stop().await;
}

/// Two gateways on one Postgres and one NATS stream: a block made by one is honoured by
/// the other within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_holds_on_a_second_replica_within_a_second() {
    let a = spawn_limited(Mode::Production, BLOCKING_POLICY).await;
    let mut config = a.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let b = start(config, a.dir.clone()).await;
    let client = "203.0.113.78";
    let mut blocked = false;
    for _ in 0..8 {
        blocked = login_from(&a, client).await.status() == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(blocked);
    // Polled on a route whose own limit is far away, so that only the block can refuse
    // it (B's login bucket is shared with A's and refuses already).
    let since = std::time::Instant::now();
    loop {
        let response = reqwest::Client::new()
            .get(b.url("/api/v1/auth/keys"))
            .header("x-forwarded-for", client)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            problem(response, 429, "client-blocked").await;
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            since.elapsed() < Duration::from_secs(1),
            "B never saw the block"
        );
    }
    println!("a block on A reached B in {:?}", since.elapsed());
    b.stop().await;
    a.stop().await;
}

/// Two gateways on one Postgres and one NATS: a user alternating requests between them
/// meets one limit, not one per replica. Each request is sent once the other replica has
/// applied the previous report (reports go out every 50 ms): paced like that, the
/// tolerance is zero; see `limits::share` for bursts faster than the reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_spreading_requests_over_two_replicas_meets_one_limit() {
    let policy = r#"
[[class]]
name = "runs"
routes = ["POST /api/v1/runs"]
limit = "10/h"
"#;
    let a = spawn_limited(Mode::Production, policy).await;
    let mut config = a.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let b = start(config, a.dir.clone()).await;
    let received = |app: &TestApp| {
        app.state
            .limits
            .as_ref()
            .unwrap()
            .sharing()
            .expect("sharing over NATS")
            .received()
    };
    let mut admitted = 0;
    let mut refused = 0;
    for n in 0..30 {
        let (here, there) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let mut reports = received(there);
        let before = *reports.borrow_and_update();
        let response = here.post_run(&valid_run()).await;
        match response.status() {
            StatusCode::CREATED => {
                admitted += 1;
                tokio::time::timeout(WAIT, reports.wait_for(|n| *n > before))
                    .await
                    .expect("the other replica applied the report")
                    .unwrap();
            }
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        admitted, 10,
        "one limit across both replicas (refused {refused})"
    );
    b.stop().await;
    a.stop().await;
}

/// A private nats-server on a free port, for tests that take NATS away.
struct PrivateNats {
    child: std::process::Child,
    port: u16,
    store: Option<TempDir>,
}

impl PrivateNats {
    fn start(port: Option<u16>, store: Option<TempDir>) -> Self {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let store = store.unwrap_or_else(|| TempDir::new().unwrap());
        let child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server on PATH (scripts/test installs it)");
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::yield_now();
        }
        Self {
            child,
            port,
            store: Some(store),
        }
    }

    /// Kills the server; returns what restarts it on the same port and store.
    fn kill(mut self) -> (u16, TempDir) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        (self.port, self.store.take().expect("a store"))
    }
}

/// A `partition = "closed"` class refuses (503) while the replica cannot share
/// consumption over NATS, and serves again once NATS is back; a `local` class keeps
/// limiting on its own meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_class_refuses_while_nats_is_away_and_recovers() {
    let policy = r#"
[[class]]
name = "strict"
routes = ["GET /api/v1/users/me"]
limit = "1000/h"
partition = "closed"

[[class]]
name = "api"
routes = ["*"]
limit = "1000/h"
"#;
    let nats = tokio::task::block_in_place(|| PrivateNats::start(None, None));
    let dir = Arc::new(TempDir::new().unwrap());
    let path = dir.path().join("limits.toml");
    std::fs::write(&path, policy).unwrap();
    let mut config = Config::embedded(dir.path());
    config.nats_prefix = testkit::unique_prefix();
    config.rate_limits = path.display().to_string();
    config.database_url = Some(testkit::create_postgres_database().await.unwrap());
    config.nats_url = Some(format!("nats://127.0.0.1:{}", nats.port));
    let app = start(config, dir).await;
    let me = || app.client.get(app.url("/api/v1/users/me")).send();
    let keys = || app.client.get(app.url("/api/v1/auth/keys")).send();
    assert_eq!(me().await.unwrap().status(), StatusCode::OK);

    let (port, store) = tokio::task::block_in_place(|| nats.kill());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let response = me().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert!(header(&response, "retry-after").is_some());
            problem(response, 503, "rate-limit-unavailable").await;
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never refused");
        tokio::task::yield_now().await;
    }
    assert_eq!(
        keys().await.unwrap().status(),
        StatusCode::OK,
        "a local class goes on"
    );

    let nats = tokio::task::block_in_place(|| PrivateNats::start(Some(port), Some(store)));
    let deadline = std::time::Instant::now() + WAIT;
    while me().await.unwrap().status() != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::task::yield_now().await;
    }
    app.stop().await;
    drop(nats);
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn every_response_carries_the_security_headers(mode: Mode) {
    let app = spawn_app(mode).await;
    let plain = reqwest::Client::new();
    let responses = vec![
        (
            "health",
            plain.get(app.url("/health")).send().await.unwrap(),
        ),
        (
            "metrics",
            plain.get(app.url("/metrics")).send().await.unwrap(),
        ),
        (
            "a read",
            app.client
                .get(app.url("/api/v1/users/me"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "401",
            plain.get(app.url("/api/v1/runs")).send().await.unwrap(),
        ),
        ("404", plain.get(app.url("/nope")).send().await.unwrap()),
        (
            "400",
            plain
                .post(app.url("/api/v1/auth/login"))
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap(),
        ),
        (
            "405",
            plain
                .delete(app.url("/api/v1/auth/login"))
                .send()
                .await
                .unwrap(),
        ),
    ];
    for (what, response) in responses {
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN", "{what}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
        assert!(
            headers["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "{what}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{what}"
        );
    }
    app.stop().await;
}

async fn browsers_on_allowed_origins_may_call_the_api_and_others_may_not(mode: Mode) {
    let app = spawn_app(mode).await;
    let (mut config, dir) = app.stop().await;
    config.cors_origins = "*, https://a.example".into();
    let error = Application::build(config.clone()).await.err().unwrap();
    assert!(error.to_string().contains("AURORA_CORS_ORIGINS"), "{error}");
    config.cors_origins = "https://app.example, http://localhost:3000".into();
    let app = start(config, dir).await;
    let plain = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        plain
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/runs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    assert!(allowed
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    assert_eq!(allowed.headers()["x-frame-options"], "SAMEORIGIN");
    problem(
        preflight("https://evil.example").await.unwrap(),
        403,
        "cors-forbidden",
    )
    .await;

    let get = |origin: Option<&'static str>| {
        let mut request = app.client.get(app.url("/api/v1/runs"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let from_app = get(Some("http://localhost:3000")).await.unwrap();
    assert_eq!(from_app.status(), StatusCode::OK);
    assert_eq!(
        from_app.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert!(from_app.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-request-id"));
    for origin in [Some("https://evil.example"), None] {
        let response = get(origin).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response
            .headers()
            .get("access-control-allow-origin")
            .is_none());
    }
    app.stop().await;
}
