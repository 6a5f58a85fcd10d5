// (Long: the shared harness of every API test module — apps, processes, tokens, stand-ins — kept in one place so that no module redefines it.)
//! The HTTP API end to end, over real sockets: one test binary, one file per resource
//! (`api/<resource>.rs`) around the shared harness here ([`TestApp`], [`spawn_app`] and
//! the helpers several resources use).
//!
//! A test is named once: one that runs in both storage modes — embedded (SQLite +
//! in-process bus) and production (Postgres + NATS JetStream) — is marked
//! `#[apply(both_modes)]` (the modes are listed once, in the template below), so nextest
//! lists it as `<resource>::<test>::case_1_embedded` and `…::case_2_postgres_nats`; one
//! that needs a single mode (two processes, a server stopped) is a plain `#[tokio::test]`.
//! To add one, copy a test of the resource's file.

use std::sync::Arc;
use std::time::Duration;

use aurora_domain::run::Run;
use aurora_gateway::config::Config;
use aurora_gateway::startup::Application;
use aurora_gateway::state::AppState;
use aurora_projections::testkit::{self, TempDir};
use aurora_projections::Cursor;
use cqrs_es::Aggregate;
use futures::StreamExt;
use reqwest::StatusCode;
use rstest_reuse::{self, template};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// Both storage modes: a test marked `#[apply(both_modes)]` with a `mode: Mode` argument
/// runs as `…::case_1_embedded` and `…::case_2_postgres_nats`. Defined before the resource
/// modules below, which use it.
#[template]
#[rstest]
#[case::embedded(Mode::Embedded)]
#[case::postgres_nats(Mode::Production)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_modes(#[case] mode: Mode) {}

#[path = "api/audit.rs"]
mod audit;

#[path = "api/operations.rs"]
mod operations;

#[path = "api/docs.rs"]
mod docs;

#[path = "api/security.rs"]
mod security;

#[path = "api/pipeline.rs"]
mod pipeline;

#[path = "api/execution.rs"]
mod execution;

#[path = "api/anchoring.rs"]
mod anchoring;

#[path = "api/lifecycle.rs"]
mod lifecycle;

#[path = "api/subscribers.rs"]
mod subscribers;

#[path = "api/tried.rs"]
mod tried;
use tried::Tried;

#[path = "api/read_side.rs"]
mod read_side;

#[path = "api/runs.rs"]
mod runs;

#[path = "api/auth.rs"]
mod auth;

#[path = "api/keys.rs"]
mod keys;

#[path = "api/users.rs"]
mod users;

#[path = "api/limits.rs"]
mod limits;

#[path = "api/browsers.rs"]
mod browsers;

#[path = "api/console.rs"]
mod console;

#[path = "api/cluster.rs"]
mod cluster;

#[path = "api/generate.rs"]
mod generate;

#[path = "api/leftovers.rs"]
mod leftovers;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Embedded,
    Production,
}

struct TestApp {
    base: String,
    /// A session token of `tester`, a user; `client` sends it with every request.
    token: String,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
    config: Config,
    client: reqwest::Client,
    dir: Arc<TempDir>,
}

async fn spawn_app(mode: Mode) -> TestApp {
    spawn_app_with(mode, |_| {}).await
}

/// An Aurora of `mode` (a fresh database and stream prefix) with settings `tune` changes.
async fn spawn_app_with(mode: Mode, tune: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = Config::embedded(dir.path());
    config.nats_prefix = testkit::unique_prefix();
    if mode == Mode::Production {
        config.database_url = Some(testkit::create_postgres_database().await.unwrap());
        config.nats_url = Some(testkit::nats_url());
    }
    tune(&mut config);
    start(config, dir).await
}

async fn start(config: Config, dir: Arc<TempDir>) -> TestApp {
    // The database and streams go with the directory, when the test ends or fails.
    if let Some(url) = &config.database_url {
        dir.drop_database_with_it(&testkit::admin_database_url(), url);
    }
    if let Some(url) = &config.nats_url {
        dir.delete_streams_with_it(url, &config.nats_prefix);
    }
    let app = Application::build(config.clone())
        .await
        .expect("the application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let token = tester_token(&base).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    TestApp {
        base,
        token,
        state,
        shutdown,
        server,
        config,
        client: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap(),
        dir,
    }
}

/// Registers `tester` (unless a restart finds it registered) and logs in.
async fn tester_token(base: &str) -> String {
    let client = reqwest::Client::new();
    let credentials = json!({"username": "tester", "password": PASSWORD});
    let registered = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .status();
    assert!(registered == StatusCode::CREATED || registered == StatusCode::CONFLICT);
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"].as_str().expect("tester logs in").to_string()
}

impl TestApp {
    async fn stop(self) -> (Config, Arc<TempDir>) {
        self.shutdown.cancel();
        self.server.await.unwrap().expect("a clean stop");
        (self.config, self.dir)
    }

    async fn restart(self) -> TestApp {
        let (config, dir) = self.stop().await;
        start(config, dir).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post_run(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/runs"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The `/metrics` exposition.
    async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn created_id(&self, body: &Value) -> String {
        let response = self.post_run(body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    async fn stored_events(&self) -> i64 {
        self.state
            .db
            .count_through(Cursor {
                xid: i64::MAX,
                position: i64::MAX,
            })
            .await
            .unwrap()
    }

    /// Stored events other than refusals (`AccessRefused`, recorded for the audit trail):
    /// what a refused request must leave unchanged.
    async fn changes(&self) -> i64 {
        self.stored_events().await - self.refusals().await
    }

    /// Refused requests recorded.
    async fn refusals(&self) -> i64 {
        aurora_projections::on_pool!(&self.state.db, |pool| sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_type = 'access'"
        )
        .fetch_one(pool)
        .await
        .unwrap())
    }

    /// Stored events of runs (the fixture's user has events of its own).
    async fn run_events(&self) -> i64 {
        aurora_projections::on_pool!(&self.state.db, |pool| sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_type = 'run'"
        )
        .fetch_one(pool)
        .await
        .unwrap())
    }

    async fn await_view(&self, id: &str, version: i64) {
        self.state
            .runs
            .wait_for(id, version, WAIT)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("run {id} reached version {version} in the view"));
    }
}

fn valid_run() -> Value {
    json!({
        "input": {"url": "https://media.example/clip.mov"},
        "steps": [
            {"kind": "probe"},
            {"kind": "transcode", "format": "webm", "quality": "high", "resolution": "1080p"},
            {"kind": "thumbnail", "at_seconds": 2.5}
        ]
    })
}

struct BadRequest {
    what: &'static str,
    method: reqwest::Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    slug: &'static str,
}

fn bad(
    what: &'static str,
    method: &str,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
    slug: &'static str,
) -> BadRequest {
    BadRequest {
        what,
        method: method.parse().unwrap(),
        path: path.to_string(),
        content_type: Some("application/json"),
        body: body.into(),
        status,
        slug,
    }
}

/// Sends `GET path` byte for byte; returns the status and content type.
async fn raw_get(base: &str, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let content_type = response
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (status, content_type)
}

// ---- identity ----

const PASSWORD: &str = "correct horse battery";

impl TestApp {
    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn register(&self, username: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/register",
            &json!({"username": username, "password": PASSWORD}),
        )
        .await
    }

    async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    async fn me(&self, header: (&str, &str)) -> reqwest::Response {
        // Not `self.client`: it sends tester's token with every request.
        reqwest::Client::new()
            .get(self.url("/api/v1/users/me"))
            .header(header.0, header.1)
            .send()
            .await
            .unwrap()
    }

    async fn user_events(&self, username: &str) -> Vec<aurora_projections::StoredEvent> {
        self.state
            .db
            .read_aggregate_after("user", username, 0)
            .await
            .unwrap()
    }
}

async fn problem(response: reqwest::Response, status: u16, slug: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("/problems/{slug}"), "{body}");
    body
}

/// Logs in `username` (registered, with `role`) and returns its token.
async fn token_with_role(app: &TestApp, username: &str, role: aurora_domain::user::Role) -> String {
    assert_eq!(app.register(username).await.status(), StatusCode::CREATED);
    let metadata = aurora_domain::EventMetadata::new("test-admin", "req-role");
    app.state
        .identity
        .users
        .execute(
            username,
            aurora_domain::user::UserCommand::ChangeRole { role },
            &metadata,
        )
        .await
        .unwrap();
    let login: Value = app.login(username, PASSWORD).await.json().await.unwrap();
    login["token"].as_str().unwrap().to_string()
}

// ---- tokens: API keys, logout, revocation, admin, bootstrap, webhook ----

impl TestApp {
    /// A request with `token` (not tester's).
    fn with(&self, method: &str, path: &str, token: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(token)
    }

    async fn create_api_key(&self, token: &str, body: Value) -> reqwest::Response {
        self.with("POST", "/api/v1/auth/tokens", token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

impl TestApp {
    /// The public root key new tokens are signed with, as `GET /api/v1/auth/keys` publishes
    /// it (`ed25519/<hex>`): what an outside Biscuit library needs to narrow a token.
    async fn signing_key(&self) -> String {
        let keys: Value = reqwest::get(self.url("/api/v1/auth/keys"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let signing = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["signing"] == true)
            .expect("a signing key is published");
        let public = signing["public_key"].as_str().unwrap().to_string();
        assert!(public.starts_with("ed25519/"), "{public}");
        public
    }
}

/// Appends one block of `checks` to `token` with biscuit-python, a Biscuit library outside
/// Aurora's process (Python bindings, installed by `scripts/test`).
fn attenuate_with_python(token: &str, public_key: &str, checks: &[&str]) -> String {
    use std::io::Write;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var("AURORA_BISCUIT_PYTHON").unwrap_or_else(|_| {
        root.join("target/biscuit-interop-venv/bin/python")
            .display()
            .to_string()
    });
    let mut command = std::process::Command::new(&python);
    command
        .arg(root.join("scripts/biscuit-interop/attenuate.py"))
        .args(["--public-key", public_key]);
    for check in checks {
        command.args(["--check", check]);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python}: {e}; run scripts/biscuit-interop/install.sh (scripts/test does)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let output = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    assert!(
        output.status.success(),
        "attenuate.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Waits until the users view shows `username` passing `check` (a change of the view wakes
/// the wait), or fails after `WAIT`.
async fn await_user(
    app: &TestApp,
    admin: &str,
    username: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let wait = async {
        let mut changes = app.state.users.changes();
        loop {
            changes.borrow_and_update();
            let page: Value = app
                .with("GET", "/api/v1/users?limit=100", admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(user) = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["username"] == username && check(u))
            {
                return user.clone();
            }
            changes.changed().await.unwrap();
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("{username} never showed in the users view"))
}

/// Runs `aurora admin create` against `config`'s storage, password on stdin.
fn admin_create(config: &Config, username: &str, password: &str) -> std::process::Output {
    use std::io::Write;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"));
    command
        .args(["admin", "create", "--username", username])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AURORA_LOG", "warn")
        .env("AURORA_DATA_DIR", &config.data_dir);
    if let Some(url) = &config.database_url {
        command.env("DATABASE_URL", url);
    }
    if let Some(keys) = &config.root_keys_dir {
        command.env("AURORA_ROOT_KEYS_DIR", keys);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    tokio::task::block_in_place(|| child.wait_with_output()).unwrap()
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An `aurora serve` process; killed when dropped.
struct Process {
    child: std::process::Child,
    base: String,
    logs: Arc<std::sync::Mutex<Vec<String>>>, // its log lines so far
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `aurora serve` on a free port with `env`, and waits for its "listening" line.
    fn serve(env: &[(&str, String)]) -> Process {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AURORA_LISTEN", "127.0.0.1:0")
            .env("AURORA_LOG", "info,aurora::access=warn")
            // These processes are polled as fast as they answer.
            .env("AURORA_RATE_LIMITS", "off")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("aurora serve exited before listening")
                .unwrap();
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if log["message"] == "aurora is listening" {
                break log["port"].as_u64().unwrap();
            }
        };
        // Keep draining its logs so it never blocks on a full pipe.
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = logs.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
            logs,
        }
    }

    /// Registers `username` here and returns a session token.
    async fn register_and_log_in(&self, username: &str) -> String {
        let credentials = json!({"username": username, "password": PASSWORD});
        let client = reqwest::Client::new();
        let register = client
            .post(format!("{}/api/v1/auth/register", self.base))
            .json(&credentials)
            .send()
            .await
            .unwrap();
        assert_eq!(register.status(), StatusCode::CREATED);
        let login: Value = client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&credentials)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["token"].as_str().unwrap().to_string()
    }

    /// Creates an API key labelled `label` with `token` here; the answer (token, token_id …).
    async fn create_api_key(&self, token: &str, label: &str) -> Value {
        let response = self
            .request("POST", "/api/v1/auth/tokens", token)
            .json(&json!({"label": label}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    fn request(&self, method: &str, path: &str, token: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    /// How long until `token` is refused here, polling as fast as requests return; fails
    /// after `WAIT`.
    async fn refused_after(&self, token: &str, since: std::time::Instant) -> Duration {
        loop {
            let response = self
                .request("GET", "/api/v1/users/me", token)
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::UNAUTHORIZED {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["type"], "/problems/token-revoked");
                return since.elapsed();
            }
            assert_eq!(response.status(), StatusCode::OK);
            assert!(since.elapsed() < WAIT, "the token was never refused");
        }
    }
}

// ---- rate limits ----

/// An app with the rate-limit policy `policy` (TOML) and 127.0.0.1 as a trusted proxy.
async fn spawn_limited(mode: Mode, policy: &str) -> TestApp {
    spawn_limited_with(mode, policy, |_| {}).await
}

/// As [`spawn_limited`], with more settings `tune` changes.
async fn spawn_limited_with(mode: Mode, policy: &str, tune: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(mode, |config| {
        let path = config.data_dir.join("limits.toml");
        std::fs::write(&path, policy).unwrap();
        config.rate_limits = path.display().to_string();
        config.trusted_proxies = "127.0.0.1".into();
        tune(config);
    })
    .await
}

fn header(response: &reqwest::Response, name: &str) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

/// Auth attempts 5 per 15 minutes; 3 refusals within 15 minutes block for 15 minutes.
const BLOCKING_POLICY: &str = r#"
[blocking]
after = 3
within = "15m"
for = "15m"
max = "1h"

[[class]]
name = "auth"
routes = ["POST /api/v1/auth/login", "POST /api/v1/auth/register"]
limit = "5/15m"
key = "ip"

[[class]]
name = "api"
routes = ["*"]
limit = "1000000/15m"
"#;

/// A wrong login from `client` (behind the trusted proxy).
async fn login_from(app: &TestApp, client: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({"username": "tester", "password": "wrong password"}))
        .send()
        .await
        .unwrap()
}

/// A loopback port no one listens on (now).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private nats-server on a free port, for tests that take NATS away.
struct PrivateNats {
    child: std::process::Child,
    port: u16,
    store: Option<TempDir>,
}

impl PrivateNats {
    fn start(port: Option<u16>, store: Option<TempDir>) -> Self {
        let port = port.unwrap_or_else(free_port);
        let store = store.unwrap_or_else(|| TempDir::new().unwrap());
        let child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server on PATH (scripts/test installs it)");
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::yield_now();
        }
        Self {
            child,
            port,
            store: Some(store),
        }
    }

    /// Kills the server; returns what restarts it on the same port and store.
    fn kill(mut self) -> (u16, TempDir) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        (self.port, self.store.take().expect("a store"))
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
