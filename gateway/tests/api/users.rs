//! Users: admins listing and changing them, every identity route by role, the bootstrap command, the identity provider's webhook.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use super::*;

#[apply(both_modes)]
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

#[apply(both_modes)]
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
    let tried = app.trying().await;
    for (who, token, method, path, body, status) in &table {
        let mut request = reqwest::Client::new()
            .request(method.parse().unwrap(), app.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        Tried::answered(&response, *status, &format!("{who} {method} {path}"));
    }
    tried
        .recorded_only_refusals(&app, table.iter().map(|row| row.5))
        .await;
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

#[apply(both_modes)]
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

#[apply(both_modes)]
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

/// Signs `body` as Clerk's sender (Svix) would, with the Standard Webhooks reference
/// library for JavaScript (`scripts/webhook-interop`, installed by `scripts/test`): an
/// implementation outside Aurora. The `signature` header's value.
fn signed_elsewhere(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    use std::io::Write;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/webhook-interop/sign.mjs");
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .args([
            "--secret",
            secret,
            "--id",
            id,
            "--timestamp",
            &timestamp.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node {}: {e}", script.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}: {}; run `npm ci` in scripts/webhook-interop (scripts/test does)",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let signed: Value = serde_json::from_slice(&output.stdout).unwrap();
    signed["signature"].as_str().unwrap().to_string()
}

/// Clerk's messages as Clerk sends them: email sign-ups have no username, the role and
/// tier live in `public_metadata`, deletions carry only the id. Before, such a user was
/// refused with 422 and never arrived.
#[apply(both_modes)]
async fn clerk_users_arrive_as_clerk_sends_them(mode: Mode) {
    use aurora_domain::user::{Role, Tier};
    let app = spawn_app_with(mode, |c| {
        c.identity_webhook_secrets = Some(WEBHOOK_SECRET.to_string());
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let send = |id: &'static str, body: Value| {
        let body = body.to_string();
        let signature = signed_elsewhere(WEBHOOK_SECRET, id, now, &body);
        reqwest::Client::new()
            .post(app.url("/api/v1/webhooks/identity"))
            .header("content-type", "application/json")
            .header("svix-id", id)
            .header("svix-timestamp", now.to_string())
            .header("svix-signature", signature)
            .body(body)
            .send()
    };
    // As in Clerk's documentation's example of user.created, for an email sign-up.
    let clerk_user = |id: &str, email: &str, metadata: Value, banned: bool| {
        json!({
            "data": {
                "id": id, "object": "user", "username": null,
                "first_name": "Ada", "last_name": "Lovelace", "image_url": "https://img.clerk.com/x",
                "email_addresses": [{"id": "idn_1", "object": "email_address",
                    "email_address": email, "linked_to": [],
                    "verification": {"status": "verified", "strategy": "email_code"}}],
                "primary_email_address_id": "idn_1", "phone_numbers": [], "external_accounts": [],
                "public_metadata": metadata, "private_metadata": {}, "unsafe_metadata": {},
                "banned": banned, "locked": false, "two_factor_enabled": false,
                "created_at": 1_654_012_591_514_i64, "updated_at": 1_654_012_591_835_i64
            },
            "event_attributes": {"http_request": {"client_ip": "0.0.0.0", "user_agent": "Mozilla/5.0"}},
            "object": "event",
            "timestamp": 1_654_012_591_835_i64,
            "type": "user.created"
        })
    };
    let created = clerk_user(
        "user_29w83sxmDNGwOuEthce5gg56FcC",
        "Ada.Lovelace@example.org",
        json!({"role": "admin", "tier": "pro"}),
        false,
    );
    let response = send("msg_clerk_1", created).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let user = app.state.identity.users.load("ada.lovelace").await.unwrap();
    assert_eq!(
        (user.role(), user.tier(), user.is_disabled()),
        (Some(Role::Admin), Some(Tier::Pro), false),
        "named after the email, role and tier from public_metadata"
    );
    assert_eq!(user.external_id(), Some("user_29w83sxmDNGwOuEthce5gg56FcC"));

    // Another sign-up with the same local part: a name of its own, from its id.
    let twin = clerk_user(
        "user_2bQ7zzkXy",
        "ada.lovelace@elsewhere.test",
        json!({}),
        false,
    );
    assert_eq!(
        send("msg_clerk_2", twin).await.unwrap().status(),
        StatusCode::OK
    );
    let twin = app.state.identity.users.load("ada.lovelace-7zzkxy").await;
    let twin = twin.unwrap();
    assert_eq!(twin.external_id(), Some("user_2bQ7zzkXy"));
    assert_eq!(
        (twin.role(), twin.tier()),
        (Some(Role::User), Some(Tier::Free))
    );

    // Updated, still without a username, with a role Aurora does not know in the metadata
    // (no role it knows: user; not refused) and banned: the same user, demoted, disabled,
    // tier changed.
    let mut updated = clerk_user(
        "user_29w83sxmDNGwOuEthce5gg56FcC",
        "ada@new-domain.example",
        json!({"tier": "enterprise", "role": "owner"}),
        true,
    );
    updated["type"] = json!("user.updated");
    updated["timestamp"] = json!(1_654_012_600_000_i64);
    assert_eq!(
        send("msg_clerk_3", updated).await.unwrap().status(),
        StatusCode::OK
    );
    let user = app.state.identity.users.load("ada.lovelace").await.unwrap();
    assert_eq!(
        (user.role(), user.tier(), user.is_disabled()),
        (Some(Role::User), Some(Tier::Enterprise), true)
    );
    assert!(app.user_events("ada").await.is_empty(), "no second user");
    // Clerk sends `banned: false` with every change: it enables no one (an admin may have
    // disabled the user in Aurora).
    let mut renamed = clerk_user(
        "user_29w83sxmDNGwOuEthce5gg56FcC",
        "ada@new-domain.example",
        json!({"tier": "enterprise"}),
        false,
    );
    renamed["type"] = json!("user.updated");
    renamed["timestamp"] = json!(1_654_012_700_000_i64);
    renamed["data"]["first_name"] = json!("Augusta Ada");
    let response = send("msg_clerk_3b", renamed).await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "applied", "not stale: {body}");
    let user = app.state.identity.users.load("ada.lovelace").await.unwrap();
    assert!(user.is_disabled(), "still disabled");

    // Deleted as Clerk sends it: the id alone.
    let deleted = json!({"data": {"deleted": true, "id": "user_29w83sxmDNGwOuEthce5gg56FcC",
        "object": "user"}, "object": "event", "type": "user.deleted"});
    assert_eq!(
        send("msg_clerk_4", deleted).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(app
        .state
        .identity
        .users
        .load("ada.lovelace")
        .await
        .unwrap()
        .is_deleted());
    // A deletion of a user Aurora never had: applied, nothing changes.
    let before = app.changes().await;
    let unknown = json!({"data": {"deleted": true, "id": "user_unknown", "object": "user"},
        "object": "event", "type": "user.deleted"});
    let response = send("msg_clerk_5", unknown).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["events"].as_u64()),
        (Some("applied"), Some(0))
    );
    assert_eq!(app.changes().await, before);
    app.stop().await;
}
