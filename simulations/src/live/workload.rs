//! The clients: each registers and logs in, uploads a tiny clip, then until told to stop
//! creates runs, cancels some, reads them back, creates API keys and revokes them, through
//! replicas chosen at random. Every answer is recorded: a 2xx is *acknowledged* (and must
//! hold), a 4xx *refused*, anything else (5xx, timeout, connection refused) *unknown*.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::rng::Rng;

/// What the clients were told.
#[derive(Debug, Default)]
pub struct History {
    /// Runs whose creation was acknowledged (ids).
    pub runs: Vec<String>,
    /// Runs whose cancellation was acknowledged.
    pub cancels: Vec<String>,
    /// Users whose registration was acknowledged (ids).
    pub users: Vec<String>,
    /// API keys whose creation was acknowledged (token ids).
    pub keys: Vec<String>,
    /// Revocations acknowledged: token id, and how long after the acknowledgement a replica
    /// (named) still honoured it (`None`: none did past the first second).
    pub revocations: Vec<(String, Option<(Duration, String)>)>,
    /// Answers by command and outcome.
    pub answers: BTreeMap<(&'static str, Outcome), u64>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 2xx.
    Acknowledged,
    /// 4xx.
    Refused,
    /// 5xx, timeout, no connection.
    Unknown,
}

impl History {
    /// Answers of `outcome`, all commands together.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.answers
            .iter()
            .filter(|((_, o), _)| *o == outcome)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The shared record.
pub type Shared = Arc<Mutex<History>>;

/// Runs `clients` clients against `bases` until `stop`; each has its own seeded generator.
pub async fn run(
    seed: u64,
    clients: usize,
    bases: Vec<String>,
    clip: Vec<u8>,
    history: Shared,
    stop: CancellationToken,
) {
    let clip = Arc::new(clip);
    let mut tasks = Vec::new();
    for n in 0..clients {
        let client = Client {
            name: format!("c{n}s{seed}"),
            rng: Rng::new(seed.wrapping_mul(1000).wrapping_add(n as u64)),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            bases: bases.clone(),
            history: history.clone(),
            token: String::new(),
            media: String::new(),
            runs: Vec::new(),
        };
        tasks.push(tokio::spawn(client.work(clip.clone(), stop.clone())));
    }
    for task in tasks {
        let _ = task.await;
    }
}

struct Client {
    name: String,
    rng: Rng,
    http: reqwest::Client,
    bases: Vec<String>,
    history: Shared,
    token: String,
    media: String,
    /// Its acknowledged runs, and whether each was last seen ended.
    runs: Vec<(String, bool)>,
}

/// Runs a client leaves unfinished at most before it waits for one to end (a person or a
/// script does not queue work without bound; the free tier runs one at a time).
const OUTSTANDING: usize = 2;

/// Password of every workload user.
const PASSWORD: &str = "chaos-harness-password-1";

impl Client {
    fn base(&mut self) -> String {
        let i = self.rng.below(self.bases.len() as u64) as usize;
        self.bases[i].clone()
    }

    /// Sends a request to a random replica and records its outcome under `command`.
    async fn send(
        &mut self,
        command: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> (Outcome, Option<(StatusCode, Value)>) {
        let url = format!("{}{path}", self.base());
        let mut request = self.http.request(method, url);
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        request = match body {
            Some(Body::Json(value)) => request.json(&value),
            Some(Body::Bytes(bytes)) => request.body(bytes),
            None => request,
        };
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let value = response.json::<Value>().await.unwrap_or(Value::Null);
                Some((status, value))
            }
            Err(_) => None,
        };
        let outcome = match &answer {
            Some((status, _)) if status.is_success() => Outcome::Acknowledged,
            Some((status, _)) if status.is_client_error() => Outcome::Refused,
            _ => Outcome::Unknown,
        };
        *self
            .history
            .lock()
            .unwrap()
            .answers
            .entry((command, outcome))
            .or_default() += 1;
        (outcome, answer)
    }

    async fn work(mut self, clip: Arc<Vec<u8>>, stop: CancellationToken) {
        // Set up: an account, a session and a clip, asked for until they are had.
        let credentials = json!({"username": self.name, "password": PASSWORD});
        while !stop.is_cancelled() {
            let post = reqwest::Method::POST;
            match self
                .send(
                    "register",
                    post,
                    "/api/v1/auth/register",
                    Some(Body::Json(credentials.clone())),
                )
                .await
            {
                (Outcome::Acknowledged, Some((_, body))) => {
                    let id = body["id"].as_str().unwrap_or_default().to_string();
                    self.history.lock().unwrap().users.push(id);
                    break;
                }
                // Taken: an earlier attempt whose answer was lost did register it.
                (_, Some((StatusCode::CONFLICT, _))) => break,
                _ => pause(&stop).await,
            }
        }
        while self.token.is_empty() && !stop.is_cancelled() {
            if !self.log_in(&credentials).await {
                pause(&stop).await;
            }
        }
        while self.media.is_empty() && !stop.is_cancelled() {
            let bytes = Body::Bytes(clip.as_ref().clone());
            match self
                .send(
                    "upload",
                    reqwest::Method::POST,
                    "/api/v1/media",
                    Some(bytes),
                )
                .await
            {
                (Outcome::Acknowledged, Some((_, body))) => {
                    self.media = body["id"].as_str().unwrap_or_default().to_string();
                }
                _ => pause(&stop).await,
            }
        }
        while !stop.is_cancelled() {
            match self.rng.below(100) {
                0..=39 => self.create_run().await,
                40..=59 => self.read_run().await,
                60..=69 => self.cancel_run().await,
                70..=79 => self.key_lifecycle(&stop).await,
                80..=89 => {
                    let _ = self
                        .send(
                            "list runs",
                            reqwest::Method::GET,
                            "/api/v1/runs?limit=20",
                            None,
                        )
                        .await;
                }
                _ => {
                    let _ = self.log_in(&credentials).await;
                }
            }
        }
    }

    async fn log_in(&mut self, credentials: &Value) -> bool {
        let saved = std::mem::take(&mut self.token);
        let body = Some(Body::Json(credentials.clone()));
        match self
            .send("login", reqwest::Method::POST, "/api/v1/auth/login", body)
            .await
        {
            (Outcome::Acknowledged, Some((_, body))) => {
                self.token = body["token"].as_str().unwrap_or_default().to_string();
                true
            }
            _ => {
                self.token = saved;
                false
            }
        }
    }

    async fn create_run(&mut self) {
        if self.runs.iter().filter(|(_, ended)| !ended).count() >= OUTSTANDING {
            return self.read_run().await;
        }
        let spec = json!({
            "input": {"media_id": self.media},
            "steps": [
                {"kind": "probe"},
                {"kind": "transcode", "format": "mp4", "quality": "low", "resolution": "source"},
                {"kind": "thumbnail", "at_seconds": 0.5}
            ]
        });
        if let (Outcome::Acknowledged, Some((_, body))) = self
            .send(
                "create run",
                reqwest::Method::POST,
                "/api/v1/runs",
                Some(Body::Json(spec)),
            )
            .await
        {
            if let Some(id) = body["id"].as_str() {
                self.runs.push((id.to_string(), false));
                self.history.lock().unwrap().runs.push(id.to_string());
            }
        }
    }

    fn some_run(&mut self) -> Option<String> {
        if self.runs.is_empty() {
            return None;
        }
        let i = self.rng.below(self.runs.len() as u64) as usize;
        Some(self.runs[i].0.clone())
    }

    /// Reads a run, an unfinished one first (and notes whether it has ended).
    async fn read_run(&mut self) {
        let unfinished: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, ended)| !ended)
            .map(|(id, _)| id.clone())
            .collect();
        let id = if unfinished.is_empty() {
            self.some_run()
        } else {
            let i = self.rng.below(unfinished.len() as u64) as usize;
            Some(unfinished[i].clone())
        };
        let Some(id) = id else { return };
        let path = format!("/api/v1/runs/{id}");
        if let (Outcome::Acknowledged, Some((_, run))) = self
            .send("read run", reqwest::Method::GET, &path, None)
            .await
        {
            let ended = matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            );
            if let Some(entry) = self.runs.iter_mut().find(|(known, _)| *known == id) {
                entry.1 |= ended;
            }
        }
    }

    async fn cancel_run(&mut self) {
        if let Some(id) = self.some_run() {
            let path = format!("/api/v1/runs/{id}/cancel");
            let body = Some(Body::Json(json!({"reason": "chaos"})));
            if let (Outcome::Acknowledged, _) = self
                .send("cancel run", reqwest::Method::POST, &path, body)
                .await
            {
                self.history.lock().unwrap().cancels.push(id);
            }
        }
    }

    /// Creates an API key, uses it, revokes it, and checks that no replica honours it
    /// once a second has passed since the revocation was acknowledged.
    async fn key_lifecycle(&mut self, stop: &CancellationToken) {
        let body = Some(Body::Json(json!({"label": "chaos", "expires_in_days": 1})));
        let (Outcome::Acknowledged, Some((_, key))) = self
            .send(
                "create key",
                reqwest::Method::POST,
                "/api/v1/auth/tokens",
                body,
            )
            .await
        else {
            return;
        };
        let (Some(secret), Some(id)) = (key["token"].as_str(), key["token_id"].as_str()) else {
            return;
        };
        let (secret, id) = (secret.to_string(), id.to_string());
        self.history.lock().unwrap().keys.push(id.clone());
        let path = format!("/api/v1/auth/tokens/{id}");
        if self
            .send("revoke key", reqwest::Method::DELETE, &path, None)
            .await
            .0
            != Outcome::Acknowledged
        {
            return;
        }
        let acked = Instant::now();
        let honoured = self.honoured_after(&secret, acked, stop).await;
        self.history
            .lock()
            .unwrap()
            .revocations
            .push((id, honoured));
    }

    /// Asks every replica with the revoked `secret` until all refuse it (at most 10 s after
    /// `acked`): the latest time past the first second at which one still answered 2xx to a
    /// request sent then.
    async fn honoured_after(
        &self,
        secret: &str,
        acked: Instant,
        stop: &CancellationToken,
    ) -> Option<(Duration, String)> {
        let mut worst: Option<(Duration, String)> = None;
        while acked.elapsed() < Duration::from_secs(10) && !stop.is_cancelled() {
            let mut honoured = false;
            let asks = self.bases.iter().map(|base| {
                let sent = acked.elapsed();
                let request = self
                    .http
                    .get(format!("{base}/api/v1/users/me"))
                    .bearer_auth(secret)
                    .timeout(Duration::from_secs(2))
                    .send();
                async move { (sent, base, request.await.map(|r| r.status())) }
            });
            for (sent, base, status) in futures::future::join_all(asks).await {
                let ok = status.is_ok_and(|s| s.is_success());
                honoured |= ok;
                let late = sent > Duration::from_secs(1) && ok;
                if late && worst.as_ref().is_none_or(|(w, _)| sent > *w) {
                    worst = Some((sent, base.clone()));
                }
            }
            if !honoured {
                break;
            }
        }
        worst
    }
}

enum Body {
    Json(Value),
    Bytes(Vec<u8>),
}

/// A short pause between attempts at setting up (the nemesis may be holding everything).
async fn pause(stop: &CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
}
