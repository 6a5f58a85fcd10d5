//! Tokens and API keys: ownership and roles, keys listed and revoked, keys narrowed offline, revocation reaching another process.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use super::*;

#[apply(both_modes)]
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
    let tried = app.trying().await;
    for (who, token, method, path, status) in &table {
        let response = send(method, path, *token).await.unwrap();
        Tried::answered(&response, *status, &format!("{who} {method} {path}"));
    }
    tried
        .recorded_only_refusals(&app, table.iter().map(|row| row.4))
        .await;
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

#[apply(both_modes)]
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
    let public = app.signing_key().await;
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

#[apply(both_modes)]
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

/// Two gateway processes over one Postgres and one NATS stream: a revocation on one, and
/// a user disabled on the other, are honoured by the other within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_disabling_reach_another_gateway_process_within_a_second() {
    let dir = TempDir::new().unwrap();
    let keys = dir.path().join("keys");
    aurora_gateway::auth::keys::KeyRing::load(&keys, true).unwrap();
    let shared = vec![
        ("DATABASE_URL", dir.database_url().await.unwrap()),
        ("NATS_URL", testkit::nats_url()),
        ("AURORA_NATS_PREFIX", dir.nats_prefix()),
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
    let key = a.create_api_key(&session, "laptop").await;
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

/// Found by the chaos harness: a replica whose NATS connection goes quiet (a server
/// restarted, a network dropping packets) learned of revocations only when its consumer's
/// heartbeats were missed, seconds later, and honoured revoked keys meanwhile. Here the
/// replica's NATS traffic is held by a proxy (nothing passes, nothing closes): it still
/// refuses a key revoked on another replica within a second, from the store. Also found by
/// it: a transaction left open elsewhere (a replica frozen mid-commit) held the revocation
/// back from the store poll, which reads in commit order, for as long as it stayed open
/// (5.7 s); the poll now also applies what is committed beyond that horizon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_partitioned_from_nats_still_refuses_a_revoked_key_within_a_second() {
    use aurora_simulations::live::proxy::{Mode, Proxy};
    let dir = TempDir::new().unwrap();
    let keys = dir.path().join("keys");
    aurora_gateway::auth::keys::KeyRing::load(&keys, true).unwrap();
    let nats = testkit::nats_url();
    let proxy = Proxy::start(nats.trim_start_matches("nats://").to_string())
        .await
        .unwrap();
    let shared = vec![
        ("DATABASE_URL", dir.database_url().await.unwrap()),
        ("AURORA_NATS_PREFIX", dir.nats_prefix()),
        ("AURORA_ROOT_KEYS_DIR", keys.display().to_string()),
    ];
    let replica = |name: &str, nats: String| {
        let mut env = shared.clone();
        env.push(("NATS_URL", nats));
        env.push((
            "AURORA_DATA_DIR",
            dir.path().join(name).display().to_string(),
        ));
        Process::serve(&env)
    };
    let a = replica("a", nats.clone());
    let b = replica("b", format!("nats://127.0.0.1:{}", proxy.port));

    let session = a.register_and_log_in("alice").await;
    let key = a.create_api_key(&session, "laptop").await;
    let api_key = key["token"].as_str().unwrap().to_string();
    let accepted = b
        .request("GET", "/api/v1/users/me", &api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);

    proxy.set(Mode::Partition);
    // And a transaction left open on the database (a replica frozen mid-commit): it holds
    // back what readers of the store in commit order may see, the revocation included.
    use sqlx::Connection as _;
    let mut frozen = sqlx::PgConnection::connect(&shared[0].1).await.unwrap();
    sqlx::query("BEGIN").execute(&mut frozen).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut frozen)
        .await
        .unwrap();
    let path = format!("/api/v1/auth/tokens/{}", key["token_id"].as_str().unwrap());
    let revoked = a.request("DELETE", &path, &session).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let since = std::time::Instant::now();
    let took = b.refused_after(&api_key, since).await;
    println!("revocation reached the partitioned replica in {took:?}");
    sqlx::query("COMMIT").execute(&mut frozen).await.unwrap();
    assert!(
        took < Duration::from_secs(1),
        "the replica cut off from NATS honoured the revoked key for {took:?}"
    );
    proxy.set(Mode::Pass);
}

/// Found by the chaos harness: a replica frozen (SIGSTOP) or cut off from both the store
/// and NATS knows of no revocation made meanwhile, and honoured revoked keys for up to
/// 2 s after it came back. It now holds a request that presents a token until it has read
/// the store's revocations through within the last 750 ms: cut off for longer, it answers
/// 503 (`revocations-not-current`), never 200; back, it refuses the key within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_store_and_nats_does_not_honour_a_key_revoked_meanwhile() {
    use aurora_simulations::live::proxy::{Mode, Proxy};
    let dir = TempDir::new().unwrap();
    let keys = dir.path().join("keys");
    aurora_gateway::auth::keys::KeyRing::load(&keys, true).unwrap();
    let nats = testkit::nats_url();
    let database = dir.database_url().await.unwrap();
    let address = |url: &str| {
        let rest = url.split_once("://").unwrap().1;
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        host.split('/').next().unwrap().to_string()
    };
    let nats_proxy = Proxy::start(address(&nats)).await.unwrap();
    let pg_proxy = Proxy::start(address(&database)).await.unwrap();
    let through_proxy = database.replacen(
        &address(&database),
        &format!("127.0.0.1:{}", pg_proxy.port),
        1,
    );
    let replica = |name: &str, nats: String, database: String| {
        Process::serve(&[
            ("DATABASE_URL", database),
            ("NATS_URL", nats),
            ("AURORA_NATS_PREFIX", dir.nats_prefix()),
            ("AURORA_ROOT_KEYS_DIR", keys.display().to_string()),
            (
                "AURORA_DATA_DIR",
                dir.path().join(name).display().to_string(),
            ),
        ])
    };
    let a = replica("a", nats.clone(), database.clone());
    let b = replica(
        "b",
        format!("nats://127.0.0.1:{}", nats_proxy.port),
        through_proxy,
    );

    let session = a.register_and_log_in("alice").await;
    let key = a.create_api_key(&session, "laptop").await;
    let api_key = key["token"].as_str().unwrap().to_string();
    let whoami = || async {
        b.request("GET", "/api/v1/auth/whoami", &api_key)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(whoami().await.status(), StatusCode::OK);

    nats_proxy.set(Mode::Partition);
    pg_proxy.set(Mode::Partition);
    let path = format!("/api/v1/auth/tokens/{}", key["token_id"].as_str().unwrap());
    let revoked = a.request("DELETE", &path, &session).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    // Cut off, the replica may honour the key for as long as what it read last was current
    // (750 ms); past a second, every answer is 503: it cannot tell.
    let since = std::time::Instant::now();
    let mut unavailable = 0;
    while unavailable < 2 {
        let asked = since.elapsed();
        let answer = whoami().await;
        match answer.status() {
            StatusCode::OK => assert!(
                asked < Duration::from_secs(1),
                "the revoked key was honoured {asked:?} after its revocation"
            ),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer.headers()["retry-after"], "1");
                let problem: Value = answer.json().await.unwrap();
                assert_eq!(problem["type"], "/problems/revocations-not-current");
                unavailable += 1;
            }
            other => panic!("cut off, the replica answered {other}"),
        }
        assert!(since.elapsed() < WAIT, "never answered 503 while cut off");
    }
    // A browser's session (the token in the console's cookie) is held to the same gate.
    let from_browser = reqwest::Client::new()
        .get(format!("{}/api/v1/auth/whoami", b.base))
        .header("cookie", format!("aurora_session={api_key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(from_browser.status(), StatusCode::SERVICE_UNAVAILABLE);

    pg_proxy.set(Mode::Pass);
    let since = std::time::Instant::now();
    let took = b.refused_after(&api_key, since).await;
    println!("back in reach of the store, the replica refused the key after {took:?}");
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    nats_proxy.set(Mode::Pass);
}
