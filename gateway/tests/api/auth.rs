//! Signing in: registration, login and logout, bad credentials and bad tokens.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use super::*;

#[apply(both_modes)]
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

/// Each login appends to its user's history: simultaneous logins of one account collide,
/// and were answered 409 once a command ran out of attempts (found by the load test). They
/// back off for a random moment before trying again, and all get in.
#[apply(both_modes)]
async fn a_burst_of_logins_of_one_account_all_get_in(mode: Mode) {
    let app = Arc::new(spawn_app(mode).await);
    let logins: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.login("tester", PASSWORD).await.status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for login in logins {
        statuses.push(login.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let Ok(app) = Arc::try_unwrap(app) else {
        panic!("every login has finished")
    };
    app.stop().await;
}

#[apply(both_modes)]
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
    // The rest are told the name is taken, or (password hashing being one per core, a
    // wait past passwords::HASHING_WAIT on a busy machine) to retry: 503 busy.
    assert!(
        statuses.iter().all(|(_, s)| [201, 409, 503].contains(s)),
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

#[apply(both_modes)]
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

#[apply(both_modes)]
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
