//! A replica's life: readiness while the database is away, a request past its timeout,
//! SIGTERM with a request in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aurora_projections::testkit::{self, TempDir};
use reqwest::StatusCode;
use serde_json::Value;

use super::operations::{config_for, eventually};
use super::{problem, start, valid_run, Mode, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_fails_while_the_database_is_away_and_recovers() {
    let dir = Arc::new(TempDir::new().unwrap());
    let url = testkit::create_postgres_database().await.unwrap();
    // The server's address: between the credentials (or the scheme) and the database name.
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let server = authority.rsplit('@').next().unwrap();
    let target = tokio::net::lookup_host(server)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let mut config = config_for(Mode::Production, &dir);
    config.database_url = Some(url.replacen(server, &format!("127.0.0.1:{}", proxy.port), 1));
    let app = start(config, dir).await;
    let status = |path: &'static str| {
        let app = &app;
        async move { app.client.get(app.url(path)).send().await.unwrap().status() }
    };
    assert_eq!(status("/ready").await, StatusCode::OK);

    proxy.cut(true);
    eventually("/ready fails", || async {
        status("/ready").await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let ready: Value = app.get_json("/ready").await;
    assert_eq!(ready["reason"], "database unreachable");
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["services"]["database"]["status"], "unhealthy");
    assert_eq!(health["services"]["nats"]["status"], "healthy");
    assert_eq!(
        status("/live").await,
        StatusCode::OK,
        "the process itself is fine"
    );
    // A command meanwhile: a clear 503, not a hang.
    let refused = app.post_run(&valid_run()).await;
    problem(refused, 503, "unavailable").await;

    proxy.cut(false);
    eventually("/ready recovers", || async {
        status("/ready").await == StatusCode::OK
    })
    .await;
    let health: Value = app.get_json("/health").await;
    assert_eq!(health["services"]["database"]["status"], "healthy");
    // The connections the database dropped are replaced before requests meet them: every
    // command succeeds from the first.
    for _ in 0..5 {
        let id = app.created_id(&valid_run()).await;
        app.await_view(&id, 1).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_abandoned_with_a_problem() {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = config_for(Mode::Production, &dir);
    config.database_url = Some(testkit::create_postgres_database().await.unwrap());
    config.request_timeout_seconds = 2;
    let app = start(config, dir).await;
    let aurora_projections::Database::Postgres(pool) = &app.state.db else {
        unreachable!()
    };
    // Another session holds the runs view: listing runs waits for it.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE runs_view IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = Instant::now();
    let response = app
        .client
        .get(app.url("/api/v1/runs"))
        .header("x-request-id", "slow-list-1")
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.headers()["x-request-id"], "slow-list-1");
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body = problem(response, 503, "request-timeout").await;
    assert!(body["detail"].as_str().unwrap().contains("2 s"));
    assert_eq!(body["request_id"], "slow-list-1");
    assert!(
        waited >= Duration::from_secs(2),
        "answered after the timeout, not before"
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains(
        r#"aurora_http_requests_total{method="GET",route="/api/v1/runs",status="503"} 1"#
    ));
    holder.rollback().await.unwrap();
    let listed = app
        .client
        .get(app.url("/api/v1/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_request_in_flight_finish_then_exits_cleanly() {
    use std::io::BufRead;
    let dir = TempDir::new().unwrap();
    let url = dir.database_url().await.unwrap();
    /// Kills the server if the test fails before it exits.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"))
        .arg("serve")
        .env("AURORA_LISTEN", "127.0.0.1:0")
        .env("AURORA_DATA_DIR", dir.path())
        .env("DATABASE_URL", &url)
        .env("NATS_URL", testkit::nats_url())
        .env("AURORA_NATS_PREFIX", dir.nats_prefix())
        .env("AURORA_RATE_LIMITS", "off")
        .env("AURORA_WORKER", "false")
        .env("AURORA_DRAIN_SECONDS", "20")
        .env("AURORA_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Ok(line) = serde_json::from_str(&line) {
                let _ = lines_tx.send(line);
            }
        }
    });
    let mut seen = Vec::new();
    let port = loop {
        let line = tokio::time::timeout(WAIT, lines.recv())
            .await
            .unwrap()
            .expect("aurora starts");
        if line["message"] == "aurora is listening" {
            break line["port"].as_u64().unwrap();
        }
        seen.push(line);
    };
    let base = format!("http://127.0.0.1:{port}");
    let token = super::tester_token(&base).await;

    // Hold the runs view so that a listing stays in flight.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE runs_view IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let in_flight = tokio::spawn({
        let url = format!("{base}/api/v1/runs");
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
        }
    });
    eventually("the listing waits on the lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query ILIKE '%runs_view%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        waiting > 0
    })
    .await;

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Draining: no new request is served (a new connection is refused or told 503).
    eventually("the replica stops taking traffic", || async {
        match reqwest::Client::new()
            .get(format!("{base}/ready"))
            .send()
            .await
        {
            Ok(response) => response.status() == StatusCode::SERVICE_UNAVAILABLE,
            Err(_) => true,
        }
    })
    .await;
    assert!(
        !in_flight.is_finished(),
        "the request in flight is still waiting"
    );
    holder.rollback().await.unwrap();
    let response = tokio::time::timeout(WAIT, in_flight)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the request in flight finished"
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["items"].is_array());

    eventually("aurora exits after draining", || {
        let exited = child.0.try_wait().unwrap().is_some();
        async move { exited }
    })
    .await;
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    while let Ok(line) = lines.try_recv() {
        seen.push(line);
    }
    // The rest of stdout arrives once the reader thread sees the pipe close.
    while let Some(line) = tokio::time::timeout(WAIT, lines.recv()).await.unwrap() {
        seen.push(line);
    }
    let messages: Vec<&str> = seen.iter().filter_map(|l| l["message"].as_str()).collect();
    for expected in [
        "SIGTERM received",
        "shutting down: draining in-flight requests",
        "nats connection flushed",
        "stopped",
    ] {
        assert!(messages.contains(&expected), "{expected:?} in {messages:?}");
    }
    let drained = messages
        .iter()
        .position(|m| *m == "shutting down: draining in-flight requests");
    let stopped = messages.iter().position(|m| *m == "stopped");
    assert!(drained < stopped);
    // Log files are on by default, under the data dir: the same lines, flushed at exit.
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let files: Vec<String> = std::fs::read_dir(dir.path().join("logs"))
        .expect("a logs directory under the data dir")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let file = files
        .iter()
        .find(|name| name.starts_with("aurora.") && name.contains(&day[..7]))
        .unwrap_or_else(|| panic!("today's log file in {files:?}"));
    let text = std::fs::read_to_string(dir.path().join("logs").join(file)).unwrap();
    assert!(text.contains("aurora is listening") && text.contains("SIGTERM received"));
}

/// A TCP proxy to Postgres that can be cut (every connection dropped, new ones refused)
/// and restored.
struct Proxy {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *watch.borrow() {
                    drop(client);
                    continue;
                }
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { port, cut }
    }

    fn cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}
