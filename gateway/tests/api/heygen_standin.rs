//! A local stand-in for HeyGen's API, faithful to its documentation: `POST /v3/videos` and
//! `GET /v3/videos/{id}` (and the retired v2/v1 pair), the `X-Api-Key` header, 429 with
//! `Retry-After`, `Idempotency-Key` replays, videos that render for a while then complete
//! or fail, finished files served over HTTP, and webhook deliveries (`avatar_video.success`
//! / `avatar_video.fail`) signed as HeyGen signs them for a registered endpoint. What it is
//! told to do (be busy, fail, hold a video, lose or repeat webhooks) is set per test, and
//! it counts what it was asked (creations above all: each is a paid video).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::Filter;

/// How a video renders.
#[derive(Debug, Clone)]
pub enum Render {
    /// Completes this long after it was created.
    After(Duration),
    /// Stays `processing` until [`StandIn::release`].
    Held,
    /// Fails this long after it was created, with this message.
    Fails(Duration, String),
}

/// What the stand-in does.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Answer this many creation requests 429 before taking one.
    pub busy: u32,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after: u64,
    /// How videos render.
    pub render: Render,
    /// Deliveries of each webhook event: 0 (lost), 1, or more (duplicated).
    pub webhook_copies: u32,
    /// The host named in `video_url` (the provider's file host).
    pub video_host: String,
    /// Create this many videos whose answer is lost (a 502 after the video was made).
    pub lose_answers: u32,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            busy: 0,
            retry_after: 1,
            render: Render::After(Duration::from_millis(300)),
            webhook_copies: 1,
            video_host: "127.0.0.1".into(),
            lose_answers: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Video {
    Processing,
    Completed,
    Failed(String),
}

/// A creation the stand-in took (a paid video).
#[derive(Debug, Clone)]
pub struct Created {
    pub video_id: String,
    pub body: Value,
    pub idempotency_key: Option<String>,
    /// How long after the first creation request it was made.
    pub created_after_requests: Duration,
}

#[derive(Default)]
struct Inner {
    create_requests: u32,
    first_request: Option<std::time::Instant>,
    created: Vec<Created>,
    by_key: HashMap<String, String>,
    videos: HashMap<String, (Video, Option<String>)>,
    status_requests: u32,
    webhook: Option<(String, String)>,
    webhooks_sent: u32,
    answers_lost: u32,
}

struct Shared {
    key: String,
    clip: Vec<u8>,
    behaviour: Mutex<Behaviour>,
    inner: Mutex<Inner>,
    port: u16,
}

/// The running stand-in.
pub struct StandIn {
    /// Its base URL (`AURORA_HEYGEN_BASE_URL`).
    pub base: String,
    /// The API key it accepts.
    pub key: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StandIn {
    /// Starts on a free port; finished videos are `clip` (an MP4's bytes).
    pub async fn start(behaviour: Behaviour, clip: Vec<u8>) -> StandIn {
        let key = format!("hg-test-key-{}", uuid::Uuid::new_v4().simple());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            key: key.clone(),
            clip,
            behaviour: Mutex::new(behaviour),
            inner: Mutex::default(),
            port,
        });
        let routes = routes(shared.clone());
        let server = tokio::spawn(warp::serve(routes).incoming(listener).run());
        StandIn {
            base: format!("http://127.0.0.1:{port}"),
            key,
            shared,
            server,
        }
    }

    /// Webhook events go to `url`, signed with `secret`.
    pub fn send_webhooks_to(&self, url: &str, secret: &str) {
        self.shared.inner.lock().unwrap().webhook = Some((url.to_string(), secret.to_string()));
    }

    /// Videos created (paid for).
    pub fn created(&self) -> Vec<Created> {
        self.shared.inner.lock().unwrap().created.clone()
    }

    /// Creation requests received, refused ones included.
    pub fn create_requests(&self) -> u32 {
        self.shared.inner.lock().unwrap().create_requests
    }

    /// Status requests received.
    pub fn status_requests(&self) -> u32 {
        self.shared.inner.lock().unwrap().status_requests
    }

    /// Webhook deliveries made.
    pub fn webhooks_sent(&self) -> u32 {
        self.shared.inner.lock().unwrap().webhooks_sent
    }

    /// Completes a held video (and sends its webhook).
    pub async fn release(&self, video_id: &str) {
        finish(&self.shared, video_id, Video::Completed).await;
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    use warp::Reply;
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    reply(
        status,
        json!({"error": {"code": code, "message": message}, "data": null}),
    )
}

fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with = {
        let shared = shared.clone();
        warp::any().map(move || shared.clone())
    };
    let create_v3 = warp::path!("v3" / "videos")
        .and(warp::post())
        .and(with.clone())
        .and(warp::header::headers_cloned())
        .and(warp::body::json())
        .then(|shared, headers, body| create(shared, headers, body, "v3"));
    let create_v2 = warp::path!("v2" / "video" / "generate")
        .and(warp::post())
        .and(with.clone())
        .and(warp::header::headers_cloned())
        .and(warp::body::json())
        .then(|shared, headers, body| create(shared, headers, body, "v2"));
    let status_v3 = warp::path!("v3" / "videos" / String)
        .and(warp::get())
        .and(with.clone())
        .and(warp::header::headers_cloned())
        .map(|id: String, shared, headers| status(shared, headers, &id, "v3"));
    let status_v2 = warp::path!("v1" / "video_status.get")
        .and(warp::get())
        .and(with.clone())
        .and(warp::header::headers_cloned())
        .and(warp::query::<HashMap<String, String>>())
        .map(|shared, headers, query: HashMap<String, String>| {
            let id = query.get("video_id").cloned().unwrap_or_default();
            status(shared, headers, &id, "v2")
        });
    let files = warp::path!("files" / String)
        .and(warp::get())
        .and(with)
        .map(|name: String, shared: Arc<Shared>| {
            let id = name.trim_end_matches(".mp4");
            let done = matches!(
                shared.inner.lock().unwrap().videos.get(id),
                Some((Video::Completed, _))
            );
            if !done {
                return error(StatusCode::NOT_FOUND, "not_found", "no such file");
            }
            warp::http::Response::builder()
                .header("content-type", "video/mp4")
                .body(shared.clip.clone().into())
                .unwrap()
        });
    create_v3
        .or(create_v2)
        .unify()
        .or(status_v3)
        .unify()
        .or(status_v2)
        .unify()
        .or(files)
        .unify()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(shared.key.as_str())
}

async fn create(shared: Arc<Shared>, headers: HeaderMap, body: Value, api: &str) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "invalid API key");
    }
    let behaviour = shared.behaviour.lock().unwrap().clone();
    let (avatar, script, voice, callback_id) = match api {
        "v3" => (
            body["avatar_id"].as_str(),
            body["script"].as_str(),
            body["voice_id"].as_str(),
            body["callback_id"].as_str(),
        ),
        _ => {
            let input = &body["video_inputs"][0];
            (
                input["character"]["avatar_id"].as_str(),
                input["voice"]["input_text"].as_str(),
                input["voice"]["voice_id"].as_str(),
                body["callback_id"].as_str(),
            )
        }
    };
    if api == "v3" && body["type"] != "avatar" {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "type is required",
        );
    }
    let (Some(_), Some(_), Some(_)) = (avatar, script, voice) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "avatar_id, script and voice_id are required",
        );
    };
    if avatar == Some("unknown-avatar") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "avatar not found",
        );
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let video_id = {
        let mut inner = shared.inner.lock().unwrap();
        inner.create_requests += 1;
        let first = *inner
            .first_request
            .get_or_insert_with(std::time::Instant::now);
        if inner.create_requests <= behaviour.busy {
            drop(inner);
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "too many concurrent jobs",
            );
            response
                .headers_mut()
                .insert("retry-after", behaviour.retry_after.into());
            return response;
        }
        if let Some(id) = idempotency_key
            .as_ref()
            .and_then(|key| inner.by_key.get(key))
        {
            // A replay: the first creation's answer, nothing paid.
            let id = id.clone();
            return reply(
                StatusCode::OK,
                json!({"data": {"video_id": id, "status": "waiting"}}),
            );
        }
        let video_id = format!("v{}", uuid::Uuid::new_v4().simple());
        inner.created.push(Created {
            video_id: video_id.clone(),
            body: body.clone(),
            idempotency_key: idempotency_key.clone(),
            created_after_requests: first.elapsed(),
        });
        if let Some(key) = idempotency_key {
            inner.by_key.insert(key, video_id.clone());
        }
        inner.videos.insert(
            video_id.clone(),
            (Video::Processing, callback_id.map(str::to_string)),
        );
        // Made and paid for, but (for the first few) the answer never arrives.
        let lost = inner.answers_lost < behaviour.lose_answers;
        if lost {
            inner.answers_lost += 1;
        }
        (video_id, lost)
    };
    let (video_id, lost) = video_id;
    let done = match behaviour.render {
        Render::After(after) => Some((after, Video::Completed)),
        Render::Fails(after, message) => Some((after, Video::Failed(message))),
        Render::Held => None,
    };
    if let Some((after, outcome)) = done {
        let shared = shared.clone();
        let id = video_id.clone();
        // The provider renders on its own time.
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            finish(&shared, &id, outcome).await;
        });
    }
    if lost {
        return error(
            StatusCode::BAD_GATEWAY,
            "internal_error",
            "upstream timeout",
        );
    }
    let data = match api {
        "v3" => json!({"video_id": video_id, "status": "waiting", "output_format": "mp4"}),
        _ => json!({"video_id": video_id}),
    };
    reply(StatusCode::OK, json!({"error": null, "data": data}))
}

fn video_url(shared: &Shared, id: &str) -> String {
    let host = shared.behaviour.lock().unwrap().video_host.clone();
    format!(
        "http://{host}:{}/files/{id}.mp4?Expires=1999999999&Signature=abc",
        shared.port
    )
}

fn status(shared: Arc<Shared>, headers: HeaderMap, id: &str, api: &str) -> Response {
    if !authorized(&shared, &headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "invalid API key");
    }
    let video = {
        let mut inner = shared.inner.lock().unwrap();
        inner.status_requests += 1;
        inner.videos.get(id).map(|(video, _)| video.clone())
    };
    let Some(video) = video else {
        return error(StatusCode::NOT_FOUND, "not_found", "video not found");
    };
    let url = video_url(&shared, id);
    let data = match (api, video) {
        ("v3", Video::Processing) => json!({"id": id, "status": "processing"}),
        ("v3", Video::Completed) => json!({"id": id, "status": "completed", "video_url": url,
            "thumbnail_url": url.replace(".mp4", ".jpg"), "duration": 2.0}),
        ("v3", Video::Failed(message)) => json!({"id": id, "status": "failed",
            "failure_code": "render_failed", "failure_message": message}),
        (_, Video::Processing) => json!({"id": id, "status": "processing", "error": null}),
        (_, Video::Completed) => json!({"id": id, "status": "completed", "video_url": url,
            "duration": 2.0, "error": null}),
        (_, Video::Failed(message)) => json!({"id": id, "status": "failed",
            "error": {"code": 40119, "message": message, "detail": message}}),
    };
    match api {
        "v3" => reply(StatusCode::OK, json!({"data": data})),
        _ => reply(
            StatusCode::OK,
            json!({"code": 100, "data": data, "message": "Success"}),
        ),
    }
}

/// Ends a video and delivers its webhook event (as many copies as the behaviour says).
async fn finish(shared: &Arc<Shared>, id: &str, outcome: Video) {
    let (callback_id, webhook) = {
        let mut inner = shared.inner.lock().unwrap();
        let Some(entry) = inner.videos.get_mut(id) else {
            return;
        };
        entry.0 = outcome.clone();
        let callback_id = entry.1.clone();
        (callback_id, inner.webhook.clone())
    };
    let copies = shared.behaviour.lock().unwrap().webhook_copies;
    let Some((url, secret)) = webhook else {
        return;
    };
    let body = match &outcome {
        Video::Completed => json!({"event_type": "avatar_video.success", "event_data": {
            "video_id": id, "url": video_url(shared, id), "callback_id": callback_id}}),
        Video::Failed(message) => json!({"event_type": "avatar_video.fail", "event_data": {
            "video_id": id, "msg": message, "callback_id": callback_id}}),
        Video::Processing => return,
    };
    let body = serde_json::to_vec(&body).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let signature = hex::encode(mac.finalize().into_bytes());
    let client = reqwest::Client::new();
    for _ in 0..copies {
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .header("heygen-signature", &signature)
            .header("heygen-event-id", format!("evt_{id}"))
            .body(body.clone())
            .send()
            .await;
        if sent.is_ok() {
            shared.inner.lock().unwrap().webhooks_sent += 1;
        }
    }
}
