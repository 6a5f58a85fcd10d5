//! Rate limits: presets, shadow policies, blocks and their lifting, limits across replicas, a bad policy file.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use super::*;

#[apply(both_modes)]
async fn the_sixth_login_attempt_in_fifteen_minutes_is_refused_and_blocks_the_client(mode: Mode) {
    let app = spawn_limited(mode, aurora_domain::limits::PRESETS).await;
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
    // The presets block a client after its first violation (the media pipeline
    // write-up's auto-block): for 15 minutes, on every route.
    let sixth = attempt("203.0.113.7").await.unwrap();
    let retry_after = header(&sixth, "retry-after").expect("Retry-After");
    assert!((800..=900).contains(&retry_after), "{retry_after}");
    problem(sixth, 429, "client-blocked").await;
    assert_eq!(
        (app.stored_events().await, app.refusals().await),
        (events + 2, refusals + 1),
        "a refused login changes nothing but the block; its refusal is in the audit trail"
    );
    let blocked = reqwest::Client::new()
        .get(app.url("/api/v1/auth/keys"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    problem(blocked, 429, "client-blocked").await;
    // The identity provider's webhook is never blocked: its senders share addresses.
    let webhook = reqwest::Client::new()
        .post(app.url("/api/v1/webhooks/identity"))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"type": "user.created", "data": {"id": "x", "username": "x"}}))
        .send()
        .await
        .unwrap();
    problem(webhook, 404, "not-found").await;
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
        r#"aurora_rate_limit_decisions_total{class="auth",tier="anonymous",outcome="blocked"} 1"#
    ));
    assert!(metrics.contains("# TYPE aurora_rate_limit_buckets gauge"));
    app.stop().await;
}

#[apply(both_modes)]
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

#[apply(both_modes)]
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
