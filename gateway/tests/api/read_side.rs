//! The read side seen from outside: clients read their own writes at once, lists and the
//! audit trail wait for a position they are given, and a projection that keeps failing is
//! reported stuck while the others go on.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use super::*;

/// The position header of a command's answer.
fn position_of(response: &reqwest::Response) -> i64 {
    response
        .headers()
        .get("aurora-position")
        .expect("a command's answer says where it was stored")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Creates a run and reads it back at once through its `Location`; the run's id and
/// position.
async fn create_then_read(app: &TestApp, client: &reqwest::Client) -> (String, i64) {
    let created = client
        .post(app.url("/api/v1/runs"))
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let position = position_of(&created);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["position"], position, "the body says the position too");
    let id = body["id"].as_str().unwrap().to_string();
    let read = client.get(app.url(&location)).send().await.unwrap();
    assert_eq!(
        read.status(),
        StatusCode::OK,
        "run {id} read right after its 201 (position {position})"
    );
    let run: Value = read.json().await.unwrap();
    assert_eq!(run["id"], id.as_str());
    assert_eq!(run["status"], "requested");
    (id, position)
}

#[apply(both_modes)]
async fn a_client_reads_its_own_writes_at_once(mode: Mode) {
    let app = spawn_app(mode).await;
    let mut last = 0;
    let mut newest = String::new();
    for _ in 0..1000 {
        let (id, position) = create_then_read(&app, &app.client).await;
        assert!(position > last, "positions grow: {position} after {last}");
        (last, newest) = (position, id);
    }

    // A list sent with the last position includes the last run, and says it caught up.
    let listed = app
        .client
        .get(app.url("/api/v1/runs?limit=1"))
        .header("aurora-after-position", last.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(listed.headers()["aurora-consistency"], "caught-up");
    let page: Value = listed.json().await.unwrap();
    assert_eq!(page["items"][0]["id"], newest.as_str());

    // So does the audit trail, for an admin.
    let admin = token_with_role(&app, "ada", aurora_domain::user::Role::Admin).await;
    let cancelled = app
        .client
        .post(app.url(&format!("/api/v1/runs/{newest}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let position = position_of(&cancelled);
    let trail = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/audit?action=RunCancelled&resource_id={newest}"
        )))
        .bearer_auth(&admin)
        .header("aurora-after-position", position.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(trail.status(), StatusCode::OK);
    assert_eq!(trail.headers()["aurora-consistency"], "caught-up");
    let page: Value = trail.json().await.unwrap();
    assert_eq!(page["items"][0]["position"], position);

    // A position no event has yet: the answer comes within the bound, marked stale.
    let ahead = app
        .client
        .get(app.url("/api/v1/runs?limit=1"))
        .header("aurora-after-position", (position + 1_000_000).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ahead.status(), StatusCode::OK);
    assert_eq!(ahead.headers()["aurora-consistency"], "stale");

    // A position that is no number is bad input.
    let before = app.changes().await;
    for bad in ["soon", "-3", "0", "1e9", "99999999999999999999"] {
        let response = app
            .client
            .get(app.url("/api/v1/runs"))
            .header("aurora-after-position", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(app.changes().await, before);
    // A refused request learns no position.
    let refused = reqwest::Client::new()
        .post(app.url("/api/v1/runs"))
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get("aurora-position").is_none());
    app.stop().await;
}

#[apply(both_modes)]
async fn sixty_four_clients_read_their_own_writes_at_once(mode: Mode) {
    let app = Arc::new(spawn_app(mode).await);
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                // A connection of its own, as a separate client would have.
                let mut headers = reqwest::header::HeaderMap::new();
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", app.token).parse().unwrap(),
                );
                let client = reqwest::Client::builder()
                    .default_headers(headers)
                    .build()
                    .unwrap();
                for _ in 0..15 {
                    create_then_read(&app, &client).await;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(app.run_events().await, 64 * 15);
}

#[apply(both_modes)]
async fn a_user_found_by_id_right_after_registering(mode: Mode) {
    let app = spawn_app(mode).await;
    let admin = token_with_role(&app, "ada", aurora_domain::user::Role::Admin).await;
    let plain = reqwest::Client::new();
    if let Some(url) = &app.config.database_url {
        // Another client's transaction left open holds back what the log lets readers see
        // (gap safety): the new user is found by id all the same.
        use sqlx::Connection as _;
        let mut other = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut other).await.unwrap();
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut other)
            .await
            .unwrap();
        let registered = app.register("held").await;
        assert_eq!(registered.status(), StatusCode::CREATED);
        let body: Value = registered.json().await.unwrap();
        let changed = plain
            .patch(app.url(&format!("/api/v1/users/{}", body["id"].as_str().unwrap())))
            .bearer_auth(&admin)
            .json(&json!({"tier": "pro"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            changed.status(),
            StatusCode::OK,
            "found behind an open transaction"
        );
        sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    }
    for n in 0..50 {
        let name = format!("newcomer{n}");
        let registered = app.register(&name).await;
        assert_eq!(registered.status(), StatusCode::CREATED);
        let position = position_of(&registered);
        let body: Value = registered.json().await.unwrap();
        let id = body["id"].as_str().unwrap();
        // Changed by id at once: the id is found although the view may not have it yet.
        let changed = plain
            .patch(app.url(&format!("/api/v1/users/{id}")))
            .bearer_auth(&admin)
            .json(&json!({"tier": "pro"}))
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::OK, "user {name} by id {id}");
        // Listed with the registration's position: there.
        let listed = plain
            .get(app.url("/api/v1/users?limit=100"))
            .bearer_auth(&admin)
            .header("aurora-after-position", position.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(listed.headers()["aurora-consistency"], "caught-up");
        let page: Value = listed.json().await.unwrap();
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["username"] == name.as_str()),
            "{name} is listed"
        );
    }
    app.stop().await;
}

/// Lists `/api/v1/runs` (one item) waiting for `position`; whether the answer says the view
/// caught up with it.
async fn runs_caught_up_with(app: &TestApp, position: i64) -> bool {
    let listed = app
        .client
        .get(app.url("/api/v1/runs?limit=1"))
        .header("aurora-after-position", position.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    listed.headers()["aurora-consistency"] == "caught-up"
}

/// Found by the chaos harness: the event stream deleted while a replica was cut off from
/// NATS. Back online, the replica's projections consumer asked a consumer that no longer
/// existed for messages; the client reported "no responders" and missed heartbeats as
/// errors of single messages, the feed skipped them, and the read models stayed where they
/// were for good (1673 events behind after four minutes). Deliveries now end at the first
/// error of the consumer itself, and the feed opens its consumer again (made anew).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_models_go_on_after_the_stream_was_deleted_while_nats_was_out_of_reach() {
    use aurora_simulations::live::proxy::{Mode as Net, Proxy};
    let nats = testkit::nats_url();
    let proxy = Proxy::start(nats.trim_start_matches("nats://").to_string())
        .await
        .unwrap();
    let app = spawn_app_with(Mode::Production, |config| {
        config.nats_url = Some(format!("nats://127.0.0.1:{}", proxy.port));
    })
    .await;
    let (_, position) = create_then_read(&app, &app.client).await;
    assert!(runs_caught_up_with(&app, position).await);

    proxy.set(Net::Cut);
    let deadline = std::time::Instant::now() + WAIT;
    while app.state.bus.is_connected() {
        assert!(std::time::Instant::now() < deadline, "never disconnected");
        tokio::task::yield_now().await;
    }
    let client = async_nats::connect(&nats).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream(aurora_nats::Subjects::new(app.config.nats_prefix.clone()).stream())
        .await
        .unwrap();
    proxy.set(Net::Pass);

    let (_, position) = create_then_read(&app, &app.client).await;
    // Each list waits up to its bound for the position; a few bounds are ample.
    let deadline = std::time::Instant::now() + 3 * WAIT;
    while !runs_caught_up_with(&app, position).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the runs view never reached position {position}"
        );
    }
    app.stop().await;
}
