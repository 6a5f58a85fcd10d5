//! The web console's server side: its files from the binary under their own policy, the
//! browser session in a cookie with CSRF tokens, and what the console's pages read (runs
//! by status, every readable run's changes live, problems that name their fields). The
//! pages themselves are driven in a real browser by `scripts/console-test`.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use super::*;

/// A client that keeps nothing and follows no redirect: each request says what it sends.
fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `username` in as a browser would: the session cookie (`name=value`) and the
/// answer's body.
async fn sign_in(app: &TestApp, username: &str) -> (String, Value, String) {
    let response = bare()
        .post(app.url("/api/v1/auth/session"))
        .header("origin", &app.base)
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    (cookie, body, set)
}

#[apply(both_modes)]
async fn the_console_is_served_from_the_binary_under_its_own_policy(mode: Mode) {
    let app = spawn_app(mode).await;
    let client = bare();
    let root = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::FOUND);
    assert_eq!(root.headers()["location"], "/console/");
    let bare_console = client.get(app.url("/console")).send().await.unwrap();
    assert_eq!(bare_console.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare_console.headers()["location"], "/console/");

    let page = client.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"),
        "{csp}"
    );
    let etag = page.headers()["etag"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<script type="module" src="js/app.js"></script>"#),
        "{html}"
    );

    // The same file again, revalidated: 304 without a body.
    let again = client
        .get(app.url("/console/index.html"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());

    for (path, kind) in [
        ("/console/js/app.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
        (
            "/console/vendor/biscuit-wasm/biscuit_bg.wasm",
            "application/wasm",
        ),
    ] {
        let file = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(file.status(), StatusCode::OK, "{path}");
        assert_eq!(file.headers()["content-type"], kind, "{path}");
        assert!(!file.bytes().await.unwrap().is_empty(), "{path}");
    }
    // The wasm is the vendored file, byte for byte (no toolchain builds it).
    let wasm = client
        .get(app.url("/console/vendor/biscuit-wasm/biscuit_bg.wasm"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&wasm[..4], b"\0asm");

    // Nothing outside the console's own files, however the path is spelled.
    for path in [
        "/console/../Cargo.toml",
        "/console/..%2f..%2fCargo.toml",
        "/console/%2e%2e/%2e%2e/Cargo.toml",
        "/console/js/../../../../etc/passwd",
        "/console/..\\..\\Cargo.toml",
        "/console//etc/passwd",
        "/console/%00",
        "/console/js",
        "/console/build.rs",
        "/console/.gitignore",
    ] {
        let (status, body) = raw_request(&app, "GET", path).await;
        assert!(status == 404 || status == 400, "{path}: {status} {body}");
        assert!(
            !body.contains("[package]") && !body.contains("root:"),
            "{path}: {body}"
        );
    }
}

/// A request with its path exactly as written (no client normalises it): status and body.
async fn raw_request(app: &TestApp, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[apply(both_modes)]
async fn a_browser_session_lives_in_an_http_only_cookie_and_changes_need_its_csrf_token(
    mode: Mode,
) {
    let app = spawn_app(mode).await;
    // A page asking before anyone signed in: no session, and no refusal to record.
    let refusals = app.refusals().await;
    let none = bare()
        .get(app.url("/api/v1/auth/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.refusals().await, refusals);
    let (cookie, body, set) = sign_in(&app, "tester").await;
    for part in ["HttpOnly", "SameSite=Strict", "Path=/api/", "Max-Age="] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert_eq!(body["user"]["username"], "tester");
    assert!(
        body.get("token").is_none(),
        "the token stays in the cookie: {body}"
    );
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    assert!(!cookie.contains(&csrf));

    // Reads with the cookie alone; the session says the same CSRF token again.
    let session: Value = bare()
        .get(app.url("/api/v1/auth/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["csrf_token"], csrf.as_str());
    let me = app.me(("cookie", &cookie)).await;
    assert_eq!(me.status(), StatusCode::OK);

    // A change with the cookie needs the CSRF token: without, a wrong one, or the right one
    // from another site's page, it is refused and changes nothing.
    let key = json!({"label": "from the console"});
    let before = app.changes().await;
    let refusals = app.refusals().await;
    // A read on the session from a sibling site's page is refused too, before the rate
    // limits (it must not spend the user's).
    let sibling = bare()
        .get(app.url("/api/v1/users/me"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    problem(sibling, 403, "csrf-refused").await;
    for (token, site) in [
        (None, "same-origin"),
        (Some("not-the-token"), "same-origin"),
        (Some(csrf.as_str()), "cross-site"),
        (Some(csrf.as_str()), "same-site"),
    ] {
        let mut request = bare()
            .post(app.url("/api/v1/auth/tokens"))
            .header("cookie", &cookie)
            .header("sec-fetch-site", site)
            .json(&key);
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        let refused = request.send().await.unwrap();
        problem(refused, 403, "csrf-refused").await;
    }
    // Without Sec-Fetch-Site (older browsers), a foreign Origin is refused too.
    let foreign = bare()
        .post(app.url("/api/v1/auth/tokens"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", "https://evil.example")
        .json(&key)
        .send()
        .await
        .unwrap();
    problem(foreign, 403, "csrf-refused").await;
    assert_eq!(
        app.changes().await,
        before,
        "a refused change changed something"
    );
    // Not the user's acts, and not to be written without limit: not in the trail.
    assert_eq!(app.refusals().await, refusals);

    let created = bare()
        .post(app.url("/api/v1/auth/tokens"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("sec-fetch-site", "same-origin")
        .json(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Signing in from another site's page is refused (it would sign the browser in as
    // someone else); over TLS the cookie is Secure.
    let cross = bare()
        .post(app.url("/api/v1/auth/session"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"username": "tester", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    problem(cross, 403, "csrf-refused").await;
    let tls = bare()
        .post(app.url("/api/v1/auth/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"username": "tester", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let tls = tls.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        tls.starts_with("__Host-aurora_session=") && tls.contains("; Secure"),
        "{tls}"
    );
    assert!(tls.contains("Path=/;"), "{tls}");
    // A second plain cookie (planted by a sibling host) makes neither count.
    let tossed = app
        .me(("cookie", &format!("aurora_session=planted; {cookie}")))
        .await;
    problem(tossed, 401, "missing-token").await;
    let wrong = bare()
        .post(app.url("/api/v1/auth/session"))
        .json(&json!({"username": "tester", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    let wrong = problem(wrong, 401, "login-failed").await;
    assert!(wrong.get("csrf_token").is_none());

    // Signing out needs the CSRF token too; then the cookie is cleared and its token
    // revoked: the old cookie no longer works.
    let unproven = bare()
        .delete(app.url("/api/v1/auth/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    problem(unproven, 403, "csrf-refused").await;
    let out = bare()
        .delete(app.url("/api/v1/auth/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("aurora_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let after = app.me(("cookie", &cookie)).await;
    problem(after, 401, "token-revoked").await;
}

#[apply(both_modes)]
async fn runs_are_listed_by_status(mode: Mode) {
    let app = spawn_app(mode).await;
    let kept = app.created_id(&valid_run()).await;
    let cancelled = app.created_id(&valid_run()).await;
    let cancel = app
        .post_json(
            &format!("/api/v1/runs/{cancelled}/cancel"),
            &json!({"reason": "no"}),
        )
        .await;
    assert_eq!(cancel.status(), StatusCode::OK);
    app.await_view(&cancelled, 2).await;
    app.await_view(&kept, 1).await;
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["id"].as_str().unwrap().to_string())
            .collect()
    };
    let page = app.get_json("/api/v1/runs?status=cancelled").await;
    assert_eq!(ids(&page), std::slice::from_ref(&cancelled));
    assert_eq!(page["items"][0]["status"], "cancelled");
    let page = app.get_json("/api/v1/runs?status=requested&limit=5").await;
    assert_eq!(ids(&page), std::slice::from_ref(&kept));
    assert_eq!(ids(&app.get_json("/api/v1/runs").await), [cancelled, kept]);
    assert!(ids(&app.get_json("/api/v1/runs?status=failed").await).is_empty());
    for query in ["status=done", "status=running&status=failed", "status="] {
        let refused = app
            .client
            .get(app.url(&format!("/api/v1/runs?{query}")))
            .send()
            .await
            .unwrap();
        problem(refused, 400, "invalid-status").await;
    }
}

#[apply(both_modes)]
async fn the_live_runs_stream_tells_each_reader_of_the_runs_it_may_read(mode: Mode) {
    let app = spawn_app(mode).await;
    assert_eq!(app.register("other").await.status(), StatusCode::CREATED);
    let other: Value = app.login("other", PASSWORD).await.json().await.unwrap();
    let other = other["token"].as_str().unwrap().to_string();
    let (cookie, _, _) = sign_in(&app, "tester").await;
    let stream = bare()
        .get(app.url("/api/v1/runs/live"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut events = Box::pin(sse_data(stream, "run"));

    // Another user's run first, then tester's: the stream is in bus order, so had the
    // other's been told, it would come first.
    let theirs = app
        .with("POST", "/api/v1/runs", &other)
        .json(&valid_run())
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::CREATED);
    let theirs: Value = theirs.json().await.unwrap();
    let mine = app.created_id(&valid_run()).await;
    let first = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("a run event within the wait")
        .expect("the stream goes on");
    assert_eq!(first["id"], mine.as_str(), "{first} (theirs was {theirs})");
    assert_eq!(first["event"], "RunRequested");
    assert_eq!(first["status"], "requested");
    assert_eq!(first["sequence"], 1);
    let position = first["position"].as_i64().unwrap();

    // Reading the run at the position told: the view has it.
    let run = app
        .client
        .get(app.url(&format!("/api/v1/runs/{mine}")))
        .header("aurora-after-position", position.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), StatusCode::OK);

    // A cancellation is told too.
    app.post_json(&format!("/api/v1/runs/{mine}/cancel"), &json!({}))
        .await;
    let next = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("the cancellation within the wait")
        .expect("the stream goes on");
    assert_eq!(next["id"], mine.as_str());
    assert_eq!(next["event"], "RunCancelled");

    // Without a token: 401, no stream.
    let anonymous = bare()
        .get(app.url("/api/v1/runs/live"))
        .send()
        .await
        .unwrap();
    problem(anonymous, 401, "missing-token").await;
}

/// The data (JSON) of each event named `name` in a Server-Sent Events response.
fn sse_data(response: reqwest::Response, name: &'static str) -> impl futures::Stream<Item = Value> {
    futures::stream::unfold(
        (response, String::new()),
        move |(mut response, mut buffer)| async move {
            loop {
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let mut event = "message";
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(rest) = line.strip_prefix("event:") {
                            event = if rest.trim() == name { name } else { "other" };
                        } else if let Some(rest) = line.strip_prefix("data:") {
                            data.push_str(rest.trim());
                        }
                    }
                    if event == name {
                        let value: Value = serde_json::from_str(&data).unwrap();
                        return Some((value, (response, buffer)));
                    }
                }
                let chunk = response.chunk().await.ok()??;
                buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        },
    )
}

#[apply(both_modes)]
async fn a_refused_run_names_the_fields_at_fault(mode: Mode) {
    let app = spawn_app(mode).await;
    for (body, pointer) in [
        (
            json!({"input": {"url": "https://media.example/a.mov"},
                   "steps": [{"kind": "probe"}, {"kind": "thumbnail", "at_seconds": -3}]}),
            "/steps/1/at_seconds",
        ),
        (
            json!({"input": {"url": "https://media.example/a.mov"},
                   "steps": [{"kind": "probe"}, {"kind": "transcode", "format": "avi",
                              "quality": "high", "resolution": "480p"}]}),
            "/steps/1",
        ),
        (
            json!({"input": {"media_id": 7}, "steps": [{"kind": "probe"}]}),
            "/input/media_id",
        ),
        (
            json!({"input": {"url": "https://media.example/a.mov"}, "steps": []}),
            "/steps",
        ),
        (
            json!({"input": {"media_id": "01900000-0000-7000-8000-0000000000aa"},
                   "steps": [{"kind": "probe"}]}),
            "/input/media_id",
        ),
    ] {
        let response = app.post_run(&body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["errors"][0]["pointer"], pointer,
            "{body}: {problem}"
        );
        assert!(!problem["errors"][0]["detail"].as_str().unwrap().is_empty());
    }
    assert_eq!(app.run_events().await, 0);
}
