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
