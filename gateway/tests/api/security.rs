//! Security findings, each with the test that failed before its fix: limits that hold on
//! every connection, refusals that always reach the audit trail, and the smaller ones.
//! (Media admission is tried in `pipeline.rs`, beside the other media tests.)

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use std::time::{Duration, Instant};

use aurora_gateway::config::Config;
use aurora_gateway::http::refusals::PER_CLIENT_PER_MINUTE as PER_CLIENT;
use aurora_projections::testkit::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Mode, TestApp, WAIT};

/// Waits until the server counts `n` open connections.
async fn open_connections(app: &TestApp, n: i64) {
    let open = app.state.metrics.connections.open.clone();
    super::operations::eventually(&format!("{n} connections are open"), || {
        std::future::ready(open.get() == n)
    })
    .await;
}

/// An embedded Aurora with settings of the test's choosing.
async fn spawn_tuned(tune: impl FnOnce(&mut Config)) -> TestApp {
    super::spawn_app_with(Mode::Embedded, tune).await
}

/// Everything the server sends on `stream` until it closes it; `None` if it is still open
/// after `WAIT`.
async fn until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut answer = Vec::new();
    match tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => Some(answer),
        // A reset is a close too.
        Ok(Err(_)) => Some(answer),
        Err(_) => None,
    }
}

/// `GET /live`, on a connection the server closes once it idles (the head deadline).
const LIVE: &[u8] = b"GET /live HTTP/1.1\r\nhost: x\r\n\r\n";

/// `GET /live`, on a connection closed after the answer.
const LIVE_ONCE: &[u8] = b"GET /live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

/// Sends `request` on `stream` and returns everything the server sends until it closes the
/// connection, which it must within `WAIT`.
async fn exchange(mut stream: TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let answer = until_closed(&mut stream)
        .await
        .unwrap_or_else(|| panic!("still open after {WAIT:?}"));
    String::from_utf8_lossy(&answer).into_owned()
}

/// Opens `n` connections to `app` that send nothing (once no other is open), then one more
/// that asks for `/live`: the held ones, and the answer to the last, which must be a 503
/// `too-many-connections` problem.
async fn fill_then_knock(app: &TestApp, n: i64) -> (Vec<TcpStream>, String) {
    let address = app.base.trim_start_matches("http://").to_string();
    // The fixture's own client has hung up: only the test's connections count.
    open_connections(app, 0).await;
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    open_connections(app, n).await;
    let knock = TcpStream::connect(&address).await.unwrap();
    let text = exchange(knock, LIVE).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("/problems/too-many-connections"), "{text}");
    (held, text)
}

/// The connection-level findings, over raw sockets: HTTP/2 prior knowledge was served
/// (outside the head limits: 300 headers answered 200), a connection that never sent a
/// byte was never closed, and nothing capped how many were open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_http1_only_closed_when_silent_and_capped() {
    let app = spawn_tuned(|c| c.head_timeout_seconds = 1).await;
    let address = app.base.trim_start_matches("http://").to_string();

    // HTTP/2 with prior knowledge: the preface and a SETTINGS frame. No HTTP/2 comes back
    // (a server frame would start with a length and type 4, SETTINGS), only an HTTP/1.1
    // refusal or a close.
    let h2 = TcpStream::connect(&address).await.unwrap();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let answer = exchange(h2, preface).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 "),
        "an HTTP/2 answer: {answer:?}"
    );
    // An h2c upgrade is not taken either: the request is served as HTTP/1.1.
    let upgrade = TcpStream::connect(&address).await.unwrap();
    let text = exchange(
        upgrade,
        b"GET /live HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\n\
          upgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("101 Switching"), "{text}");

    // A connection that sends nothing is closed at the head deadline.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    let answer = until_closed(&mut silent).await;
    assert!(
        answer.is_some(),
        "a silent connection is still open after {WAIT:?}"
    );
    // So is a keep-alive connection idle after its answer.
    let idle = TcpStream::connect(&address).await.unwrap();
    assert!(exchange(idle, LIVE).await.starts_with("HTTP/1.1 200"));
    // And one that trickles its head, a byte at a time, within each second but never done.
    let mut trickle = TcpStream::connect(&address).await.unwrap();
    let began = Instant::now();
    let mut cut = false;
    for byte in b"GET /live HTTP/1.1\r\nx-slow: "
        .iter()
        .chain([b'a'; 64].iter())
    {
        if trickle.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1];
        // Waits up to 300 ms for the server to close (0 bytes read) between bytes.
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(300), trickle.read(&mut probe)).await
        {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a trickled head was not cut off ({:?})",
        began.elapsed()
    );
    // An upload that stalls (no overall deadline: a large file takes what it takes) is
    // ended after three head deadlines without a byte, with a 408.
    let stalled = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/media HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-length: 100000\r\n\r\nID3\x03\0\0\0\0\0\0",
        app.token
    );
    let text = exchange(stalled, head.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("/problems/upload-stalled"), "{text}");
    app.stop().await;

    // The cap: with 16 open, the 17th is answered 503 with a problem, and closed.
    let app = spawn_tuned(|c| {
        c.head_timeout_seconds = 60;
        c.max_connections = 16;
    })
    .await;
    let (address, open) = (
        app.base.trim_start_matches("http://").to_string(),
        app.state.metrics.connections.open.clone(),
    );
    let (mut held, text) = fill_then_knock(&app, 16).await;
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.contains("/problems/too-many-connections"), "{text}");
    assert!(text.contains("retry-after: 5"), "{text}");
    assert_eq!(app.state.metrics.connections.refused.get(), 1);
    // One closed, one more fits.
    drop(held.pop());
    super::operations::eventually("a slot is free", || std::future::ready(open.get() < 16)).await;
    let next = TcpStream::connect(&address).await.unwrap();
    assert!(exchange(next, LIVE_ONCE).await.starts_with("HTTP/1.1 200"));
    drop(held);
    app.stop().await;

    // One client cannot take every slot: past its share, 503, while others still get in.
    let app = spawn_tuned(|c| {
        c.head_timeout_seconds = 60;
        c.max_connections_per_client = 4;
    })
    .await;
    let open = app.state.metrics.connections.open.clone();
    let (held, _) = fill_then_knock(&app, 4).await;
    assert_eq!(open.get(), 4, "the refused connection held no slot");
    // Another address (127.0.0.2 is loopback too) is served.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let address = app.base.trim_start_matches("http://").parse().unwrap();
    let other = socket.connect(address).await.unwrap();
    assert!(exchange(other, LIVE_ONCE).await.starts_with("HTTP/1.1 200"));
    drop(held);
    app.stop().await;
}

/// The refusals stored, oldest first: (event type, payload, metadata).
async fn access_events(app: &TestApp) -> Vec<(String, serde_json::Value, serde_json::Value)> {
    let rows: Vec<(String, String, String)> =
        aurora_projections::on_pool!(&app.state.db, |pool| sqlx::query_as(
            "SELECT event_type, CAST(payload AS TEXT), CAST(metadata AS TEXT) FROM events \
             WHERE aggregate_type = 'access' ORDER BY aggregate_id"
        )
        .fetch_all(pool)
        .await
        .unwrap());
    rows.into_iter()
        .map(|(kind, payload, metadata)| {
            (
                kind,
                serde_json::from_str(&payload).unwrap(),
                serde_json::from_str(&metadata).unwrap(),
            )
        })
        .collect()
}

/// A refusal's fields, whichever event holds it.
fn refusal(payload: &serde_json::Value) -> &serde_json::Value {
    payload
        .get("AccessRefused")
        .or_else(|| payload.get("RefusalsOverflowed"))
        .expect("a refusal")
}

/// Refusals could be kept out of the audit trail: the budget for recording them was per
/// address, so a flood of garbage tokens from one address (or from anyone behind the same
/// untrusted proxy) hid a genuine token's probing of other users' runs; a 422 for another
/// user's media and 429s were never recorded.
#[apply(both_modes)]
async fn refusals_of_a_genuine_token_are_recorded_whatever_its_address_spent(mode: Mode) {
    use aurora_domain::user::Role;
    use serde_json::json;
    let app = super::spawn_limited(mode, aurora_domain::limits::PRESETS).await;
    let run = app.created_id(&super::valid_run()).await;
    let dir = TempDir::new().unwrap();
    let clip = dir.path().join("clip.mp4");
    aurora_actors::tools::generate_clip(&clip, 1, 160, 96).unwrap();
    let media = app.upload_file(&clip).await;
    let mallory = super::token_with_role(&app, "mallory", Role::User).await;
    let address = "198.51.100.9";
    let from = |request: reqwest::RequestBuilder| request.header("x-forwarded-for", address);
    let client = reqwest::Client::new();

    // The flood: garbage tokens from mallory's address, past the address's budget.
    let flood = PER_CLIENT + 10;
    for i in 0..flood {
        let response = from(client.get(app.url("/api/v1/runs")))
            .bearer_auth(format!("garbage-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let stored = access_events(&app).await;
    let anonymous = stored
        .iter()
        .filter(|(_, _, m)| m["principal"] == "anonymous");
    assert_eq!(
        anonymous.clone().count() as u32,
        PER_CLIENT + 1,
        "the address's budget, and one event saying it is spent"
    );
    assert_eq!(
        anonymous
            .filter(|(kind, _, _)| kind == "RefusalsOverflowed")
            .count(),
        1
    );

    // Then the probing, with a genuine token from the same address: every refusal stored.
    let probe = from(client.get(app.url(&format!("/api/v1/runs/{run}"))))
        .bearer_auth(&mallory)
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 403);
    let cancel = from(client.post(app.url(&format!("/api/v1/runs/{run}/cancel"))))
        .bearer_auth(&mallory)
        .json(&json!({"reason": "mine now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 403);
    // Another user's media as an input: 422, the same answer as for media that does not
    // exist (no oracle), but recorded, since it names someone else's.
    let theirs = from(client.post(app.url("/api/v1/runs")))
        .bearer_auth(&mallory)
        .json(&json!({"input": {"media_id": media}, "steps": [{"kind": "probe"}]}))
        .send()
        .await
        .unwrap();
    let body = super::problem(theirs, 422, "unknown-media").await;
    let absent = uuid::Uuid::new_v4().to_string();
    let nowhere = from(client.post(app.url("/api/v1/runs")))
        .bearer_auth(&mallory)
        .json(&json!({"input": {"media_id": absent}, "steps": [{"kind": "probe"}]}))
        .send()
        .await
        .unwrap();
    let other = super::problem(nowhere, 422, "unknown-media").await;
    assert_eq!(
        body["detail"].as_str().unwrap().replace(&media, "X"),
        other["detail"].as_str().unwrap().replace(&absent, "X"),
        "the same answer either way"
    );
    let stored = access_events(&app).await;
    let mallorys: Vec<_> = stored
        .iter()
        .filter(|(_, _, m)| m["principal"] == "mallory")
        .map(|(kind, p, m)| {
            let r = refusal(p);
            assert!(m["token_id"].is_string(), "the token is named: {m}");
            assert_eq!(m["client_ip"], address);
            (
                kind.as_str(),
                r["status"].as_u64().unwrap(),
                r["route"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        mallorys,
        [
            ("AccessRefused", 403, "/api/v1/runs/{id}".to_string()),
            ("AccessRefused", 403, "/api/v1/runs/{id}/cancel".to_string()),
            ("AccessRefused", 422, "/api/v1/runs".to_string()),
        ],
        "each refusal of the genuine token, and only the one naming another's media"
    );

    // 429s are refusals too: the sixth login from one address in 15 minutes.
    let login = |password: &'static str| {
        client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", "203.0.113.50")
            .json(&json!({"username": "nobody-here", "password": password}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(login("wrong password").await.unwrap().status(), 401);
    }
    assert_eq!(login("wrong password").await.unwrap().status(), 429);
    let stored = access_events(&app).await;
    let limited: Vec<_> = stored
        .iter()
        .filter(|(_, p, m)| m["client_ip"] == "203.0.113.50" && refusal(p)["status"] == 429)
        .collect();
    assert_eq!(limited.len(), 1, "{stored:?}");
    assert_eq!(refusal(&limited[0].1)["route"], "/api/v1/auth/login");
}

/// The smaller findings, each through the API: system principal names could be registered;
/// a duplicate JSON key was taken (last wins); a run that exists answered 401 without a
/// token and one that does not 404 (an existence oracle); a signed webhook from the future
/// made every later change to its user "stale"; a downgraded user's tokens kept the old
/// tier's limits; an event stream kept flowing after its token was revoked.
#[apply(both_modes)]
async fn the_smaller_findings_are_closed(mode: Mode) {
    use aurora_domain::user::Role;
    use aurora_gateway::auth::webhook;
    use serde_json::{json, Value};
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let policy = aurora_domain::limits::PRESETS;
    let app = super::spawn_limited_with(mode, policy, |c| {
        c.identity_webhook_secrets = Some(SECRET.to_string());
    })
    .await;
    let client = reqwest::Client::new();
    let before = app.changes().await;

    // Reserved names: not at registration, not from the identity provider.
    for (i, name) in ["anonymous", "System", "rate-limiter", "identity-webhook"]
        .iter()
        .enumerate()
    {
        // From clients of their own (registrations are limited per client).
        let response = client
            .post(app.url("/api/v1/auth/register"))
            .header("x-forwarded-for", format!("203.0.113.{}", 10 + i))
            .json(&json!({"username": name, "password": super::PASSWORD}))
            .send()
            .await
            .unwrap();
        let body = super::problem(response, 422, "invalid-username").await;
        assert!(
            body["detail"].as_str().unwrap().contains("reserved"),
            "{body}"
        );
    }
    let key = webhook::decode_secret(SECRET).unwrap();
    let send = |id: &'static str, body: Value| {
        let body = body.to_string();
        let now = chrono::Utc::now().timestamp();
        let signature = webhook::sign(&key, id, now, body.as_bytes());
        client
            .post(app.url("/api/v1/webhooks/identity"))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
    };
    let reserved =
        json!({"type": "user.created", "data": {"id": "idp-1", "username": "anonymous"}});
    super::problem(
        send("msg_r", reserved).await.unwrap(),
        422,
        "invalid-username",
    )
    .await;
    // An event time from the future: refused, so it cannot freeze the user.
    let future = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let ahead = json!({"type": "user.created", "timestamp": future,
        "data": {"id": "idp-2", "username": "grace"}});
    let body = super::problem(send("msg_f", ahead).await.unwrap(), 422, "invalid-field").await;
    assert!(
        body["detail"].as_str().unwrap().contains("future"),
        "{body}"
    );

    // A key given twice: 422, nothing stored.
    for path in [
        "/api/v1/runs",
        "/api/v1/auth/register",
        "/api/v1/auth/tokens",
    ] {
        let twice = r#"{"input":{"url":"https://a.example/x"},"steps":[{"kind":"probe"}],
            "username":"dup","password":"correct horse battery","label":"a","label":"b",
            "steps":[]}"#;
        let response = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(twice)
            .send()
            .await
            .unwrap();
        let body = super::problem(response, 422, "duplicate-key").await;
        assert!(
            body["detail"].as_str().unwrap().contains("twice"),
            "{path}: {body}"
        );
    }
    assert_eq!(
        app.changes().await,
        before,
        "nothing of the above changed anything"
    );

    // No existence oracle: without a token, an existing run and a missing one look alike.
    let run = app.created_id(&super::valid_run()).await;
    for id in [run.clone(), uuid::Uuid::new_v4().to_string()] {
        for path in [
            format!("/api/v1/runs/{id}"),
            format!("/api/v1/runs/{id}/events"),
            format!("/api/v1/runs/{id}/artifacts"),
            format!("/api/v1/runs/{id}/history"),
        ] {
            let response = client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), 401, "{path}");
        }
    }

    // The tier that decides limits is the user's tier now, not the token's snapshot.
    let admin = super::token_with_role(&app, "ada", Role::Admin).await;
    let limit_of = |response: &reqwest::Response| super::header(response, "ratelimit-limit");
    let run_body = super::valid_run();
    let post = || app.post_run(&run_body);
    let free = post().await;
    assert_eq!(free.status(), 201);
    let free_limit = limit_of(&free).expect("a RateLimit-Limit header");
    let set_tier = |tier: &'static str| {
        client
            .patch(app.url("/api/v1/users/tester"))
            .bearer_auth(&admin)
            .json(&json!({"tier": tier}))
            .send()
    };
    assert_eq!(set_tier("enterprise").await.unwrap().status(), 200);
    let upgraded = limit_of(&post().await).unwrap();
    assert!(upgraded > free_limit, "{upgraded} > {free_limit}");
    assert_eq!(set_tier("free").await.unwrap().status(), 200);
    assert_eq!(
        limit_of(&post().await),
        Some(free_limit),
        "the downgrade holds at once"
    );

    // An event stream ends within a second or so of its token's revocation.
    let app = &app;
    let api_key = move |label: &'static str| async move {
        let key: Value = app
            .client
            .post(app.url("/api/v1/auth/tokens"))
            .json(&json!({ "label": label }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        key
    };
    let revoke = move |token_id: String| async move {
        let revoked = app
            .client
            .delete(app.url(&format!("/api/v1/auth/tokens/{token_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 204);
    };
    let key = api_key("watcher").await;
    let secret = key["token"].as_str().unwrap().to_string();
    let token_id = key["token_id"].as_str().unwrap().to_string();
    let stream = client
        .get(app.url(&format!("/api/v1/runs/{run}/events")))
        .header("x-api-key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut stream = stream;
    // The stored history arrives first (RunRequested), then the stream waits.
    let first = tokio::time::timeout(WAIT, stream.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("RunRequested"));
    revoke(token_id).await;
    let mut rest = String::new();
    let ended = tokio::time::timeout(WAIT, async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream still flows after the revocation: {rest}"
    );
    assert!(rest.contains("event:unauthorized"), "{rest}");

    // So does a download: 40 MB of audio, the key revoked after the first chunk; what the
    // socket buffers held arrives, then the connection is cut, never completed.
    let samples = 40 << 20;
    let mut wav = aurora_actors::disguise::Header::Wave.bytes(samples);
    wav.resize(wav.len() + samples, 0x80);
    let size = wav.len();
    let uploaded: Value = app.upload(wav).await.json().await.unwrap();
    let key = api_key("downloader").await;
    let mut download = client
        .get(app.url(&format!(
            "/api/v1/media/{}",
            uploaded["id"].as_str().unwrap()
        )))
        .header("x-api-key", key["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let mut received = download.chunk().await.unwrap().unwrap().len();
    revoke(key["token_id"].as_str().unwrap().to_string()).await;
    let cut = tokio::time::timeout(WAIT, async {
        loop {
            match download.chunk().await {
                Ok(Some(chunk)) => received += chunk.len(),
                Ok(None) => return false,
                Err(_) => return true,
            }
        }
    })
    .await
    .expect("the download ends");
    assert!(
        cut && received < size,
        "{received} of {size} bytes, cut: {cut}"
    );
}

/// Runs the `aurora` binary with `config`'s database, NATS and data dir: its exit status,
/// stdout as JSON (null if it is not), and stdout itself.
pub fn cli(config: &Config, args: &[&str]) -> (bool, serde_json::Value, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AURORA_LOG", "warn")
        .env("AURORA_DATA_DIR", &config.data_dir)
        .env("AURORA_NATS_PREFIX", &config.nats_prefix);
    if let Some(url) = &config.database_url {
        command.env("DATABASE_URL", url);
    }
    if let Some(url) = &config.nats_url {
        command.env("NATS_URL", url);
    }
    let output = tokio::task::block_in_place(|| command.output()).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (output.status.success(), json, stdout)
}

/// `aurora audit verify`'s finding (its kind), `None` if it found nothing.
fn finding(config: &Config) -> Option<String> {
    let (ok, verdict, out) = cli(config, &["audit", "verify"]);
    assert_eq!(
        ok,
        verdict["finding"].is_null(),
        "exit status and finding agree: {out}"
    );
    assert!(verdict.is_object(), "{out}");
    verdict["finding"]["kind"].as_str().map(str::to_string)
}

/// Runs one statement on `db`, Postgres or SQLite.
async fn sql(db: &aurora_projections::Database, postgres: &str, sqlite: &str) {
    use aurora_projections::Database;
    match db {
        Database::Postgres(pool) => sqlx::query(postgres).execute(pool).await.map(drop),
        Database::Sqlite(pool) => sqlx::query(sqlite).execute(pool).await.map(drop),
    }
    .unwrap();
}

/// The audit trail was tamper-evident only against itself: rewriting an event, deleting the
/// log's tail and fixing the checkpoint row, or re-chaining a stretch all passed
/// `aurora audit verify`. Now the store is replayed against the log, and the log is checked
/// against chain heads signed with a key outside the database and published outside it.
#[apply(both_modes)]
async fn the_audit_trail_is_anchored_outside_its_database(mode: Mode) {
    use aurora_gateway::anchor::{AnchorKey, HeadStore};
    let app = super::spawn_app_with(mode, |c| c.audit_anchor_seconds = 1).await;
    for _ in 0..3 {
        app.created_id(&super::valid_run()).await;
    }
    assert_eq!(app.register("grace").await.status(), 201);
    let stored = app.stored_events().await;
    assert!(app.state.audit.wait_for(stored, WAIT).await);
    let head = app.state.audit.head().await.unwrap().unwrap();
    // The replica signs and publishes the head within a second or so.
    let heads = HeadStore::open(
        &app.config.data_dir,
        app.state.bus.nats_client(),
        &app.config.nats_prefix,
    )
    .await
    .unwrap();
    let key = AnchorKey::load(&app.config.data_dir.join("audit-key"), false).unwrap();
    let deadline = Instant::now() + WAIT;
    while heads
        .last_signed(&key.public())
        .await
        .unwrap()
        .map(|h| h.seq)
        != Some(head.seq)
    {
        assert!(
            Instant::now() < deadline,
            "the head {head:?} was never published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (config, _dir) = app.stop().await;

    let (ok, verdict, out) = cli(&config, &["audit", "verify"]);
    assert!(ok, "{out}");
    assert_eq!(verdict["anchors"]["last_signed"]["seq"], head.seq, "{out}");
    assert_eq!(
        verdict["anchors"]["last_signed"]["hash"],
        head.hash.as_str()
    );
    assert!(verdict["anchors"]["published_heads"].as_u64().unwrap() >= 1);
    // An auditor needs only the public half.
    let public = verdict["anchors"]["public_keys"][0]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, out) = cli(&config, &["audit", "verify", "--audit-public-key", &public]);
    assert!(ok, "{out}");
    let stranger = AnchorKey::load(&config.data_dir.join("stranger"), true).unwrap();
    let stranger_public = aurora_gateway::anchor::public_key_hex(&stranger.public());
    let (ok, verdict, _) = cli(
        &config,
        &["audit", "verify", "--audit-public-key", &stranger_public],
    );
    assert!(!ok);
    assert_eq!(
        verdict["finding"]["kind"], "forged",
        "heads signed by another key"
    );

    let db = aurora_gateway::startup::connect_database(&config)
        .await
        .unwrap();
    // 1. A rewritten event (grace's tier): the store no longer produces the log.
    let grace = "aggregate_type = 'user' AND aggregate_id = 'grace' AND sequence = 1";
    let promote = |to: &str| {
        (
            format!(
                "UPDATE events SET payload = CAST(REPLACE(CAST(payload AS TEXT), '\"tier\":\"free\"', \
                 '\"tier\":\"{to}\"') AS JSON) WHERE {grace}"
            ),
            format!(
                "UPDATE events SET payload = REPLACE(payload, '\"tier\":\"free\"', \
                 '\"tier\":\"{to}\"') WHERE {grace}"
            ),
        )
    };
    let demote = (
        format!(
            "UPDATE events SET payload = CAST(REPLACE(CAST(payload AS TEXT), \
             '\"tier\":\"enterprise\"', '\"tier\":\"free\"') AS JSON) WHERE {grace}"
        ),
        format!(
            "UPDATE events SET payload = REPLACE(payload, '\"tier\":\"enterprise\"', \
             '\"tier\":\"free\"') WHERE {grace}"
        ),
    );
    let (pg, lite) = promote("enterprise");
    sql(&db, &pg, &lite).await;
    assert_eq!(finding(&config).as_deref(), Some("rewritten"));
    sql(&db, &demote.0, &demote.1).await;
    assert_eq!(finding(&config), None, "restored");

    // 2. Rewritten, and the log rebuilt to match: chain and store agree; the signed heads
    //    do not.
    sql(&db, &pg, &lite).await;
    let (ok, _, out) = cli(&config, &["projections", "rebuild", "audit-log"]);
    assert!(ok, "{out}");
    assert_eq!(finding(&config).as_deref(), Some("rechained"));
    sql(&db, &demote.0, &demote.1).await;
    let (ok, _, out) = cli(&config, &["projections", "rebuild", "audit-log"]);
    assert!(ok, "{out}");
    assert_eq!(
        finding(&config),
        None,
        "a rebuild of the true store meets the heads"
    );

    // 3. A statement slipped into the published heads: not signed by the audit key (and
    //    reported only when nothing worse is found).
    let forged = stranger.sign(
        &aurora_projections::audit::Head {
            seq: 1,
            hash: "00".repeat(32),
        },
        chrono::Utc::now(),
    );
    let heads = HeadStore::open(&config.data_dir, None, &config.nats_prefix)
        .await
        .unwrap();
    match &config.nats_url {
        None => heads.publish(&forged).await.unwrap(),
        Some(url) => {
            let client = async_nats::connect(url).await.unwrap();
            let heads = HeadStore::open(&config.data_dir, Some(client), &config.nats_prefix)
                .await
                .unwrap();
            heads.publish(&forged).await.unwrap();
        }
    }
    assert_eq!(finding(&config).as_deref(), Some("forged"));

    // 4. A row written into the log by hand far ahead (to make every later head look
    //    older than the last signed one): the signer refuses it, and signs nothing.
    let log = std::sync::Arc::new(aurora_projections::AuditLog::new(db.clone()));
    let key = AnchorKey::load(&config.data_dir.join("audit-key"), false).unwrap();
    let nats = match &config.nats_url {
        Some(url) => Some(async_nats::connect(url).await.unwrap()),
        None => None,
    };
    let store = HeadStore::open(&config.data_dir, nats.clone(), &config.nats_prefix)
        .await
        .unwrap();
    let signed_before = store.last_signed(&key.public()).await.unwrap();
    let ahead = format!(
        "INSERT INTO audit_log (seq, position, xid, recorded_at, actor, role, token_id, \
         request_id, client_ip, action, resource_type, resource_id, sequence, version, details, \
         prev_hash, hash) SELECT {} AS seq, position, xid, recorded_at, actor, role, \
         token_id, request_id, client_ip, action, resource_type, resource_id, sequence, version, \
         details, hash AS prev_hash, hash FROM audit_log WHERE seq = {}",
        1i64 << 62,
        head.seq
    );
    sql(&db, &ahead, &ahead).await;
    let mut publisher = aurora_gateway::anchor::Publisher::new(log.clone(), key, store);
    let refused = publisher.round().await.unwrap_err().to_string();
    assert!(refused.contains("not signing"), "{refused}");
    let store = HeadStore::open(&config.data_dir, nats, &config.nats_prefix)
        .await
        .unwrap();
    assert_eq!(
        store
            .last_signed(&stranger.public())
            .await
            .unwrap()
            .map(|h| h.seq),
        Some(1)
    );
    let key = AnchorKey::load(&config.data_dir.join("audit-key"), false).unwrap();
    assert_eq!(
        store.last_signed(&key.public()).await.unwrap(),
        signed_before
    );
    let remove = format!("DELETE FROM audit_log WHERE seq = {}", 1i64 << 62);
    sql(&db, &remove, &remove).await;
    // Entries no signed head covers, past the grace: signing stopped, and that is a finding.
    let nobody = AnchorKey::load(&config.data_dir.join("nobody"), true).unwrap();
    let report = aurora_gateway::anchor::check(&log, &store, &[nobody.public()], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        report.finding.map(|f| format!("{:?}", f.kind)).as_deref(),
        Some("Unanchored")
    );

    // 4b. The heads stream deleted (deny_delete guards messages, not the stream), made
    //     again, and an old signed head published into it: heads older than their stream.
    if let Some(url) = &config.nats_url {
        let client = async_nats::connect(url).await.unwrap();
        let name = aurora_nats::Subjects::new(config.nats_prefix.clone()).audit_heads_stream();
        async_nats::jetstream::new(client.clone())
            .delete_stream(&name)
            .await
            .unwrap();
        let store = HeadStore::open(&config.data_dir, Some(client), &config.nats_prefix)
            .await
            .unwrap();
        let key = AnchorKey::load(&config.data_dir.join("audit-key"), false).unwrap();
        let old = key.sign(&head, chrono::Utc::now() - chrono::Duration::minutes(10));
        store.publish(&old).await.unwrap();
        assert_eq!(finding(&config).as_deref(), Some("unanchored"));
    }

    // 5. The log's tail cut, its events deleted, the checkpoint's head fixed: the chain,
    //    the checkpoint and the store agree; a published head is missing.
    let cut = head.seq - 2;
    let (tail_pg, tail_lite) = (
        format!("DELETE FROM events WHERE position IN (SELECT position FROM audit_log WHERE seq > {cut})"),
        format!("DELETE FROM events WHERE position IN (SELECT position FROM audit_log WHERE seq > {cut})"),
    );
    sql(&db, &tail_pg, &tail_lite).await;
    let log = format!("DELETE FROM audit_log WHERE seq > {cut}");
    sql(&db, &log, &log).await;
    let checkpoint = format!(
        "UPDATE projection_checkpoints SET head_seq = {cut}, head_hash = \
         (SELECT hash FROM audit_log WHERE seq = {cut}) WHERE projection = 'audit-log'"
    );
    sql(&db, &checkpoint, &checkpoint).await;
    let (_, verdict, out) = cli(&config, &["audit", "verify"]);
    assert_eq!(verdict["finding"]["kind"], "removed", "{out}");
    assert_eq!(verdict["finding"]["seq"], head.seq, "{out}");
}
