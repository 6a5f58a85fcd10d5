//! HeyGen's API, as documented at <https://developers.heygen.com>: create an avatar video,
//! read its status. Two versions are spoken:
//!
//! - **v3** (the default; v1/v2 were retired on 2026-11-01): `POST /v3/videos` with
//!   `{"type": "avatar", "avatar_id", "script", "voice_id", …}`, answered
//!   `{"data": {"video_id", "status": "waiting"}}`; `GET /v3/videos/{video_id}`, answered
//!   `{"data": {"id", "status": "pending|processing|completed|failed", "video_url",
//!   "thumbnail_url", "duration", "failure_code", "failure_message"}}`. Creation carries an
//!   `Idempotency-Key`, so a retry after a lost answer replays the first creation instead of
//!   paying for a second.
//! - **v2** (`AURORA_HEYGEN_API=v2`, for accounts or gateways that still serve it):
//!   `POST /v2/video/generate` with `video_inputs[]`, answered `{"data": {"video_id"}}`;
//!   `GET /v1/video_status.get?video_id=…`, answered `{"code": 100, "data": {"status":
//!   "waiting|pending|processing|completed|failed", "video_url", "error": {"message"}}}`.
//!   It has no idempotency key: a creation whose answer is lost is not retried.
//!
//! The key goes in the `X-Api-Key` header only: never in a URL, a log line, an error or an
//! event (errors quote the provider's message, never the request).

use std::time::Duration;

use aurora_domain::run::{Dimension, Step};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The API key: shown to no one (its `Debug` is redacted, it has no `Display`).
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; `None` for an empty one.
    pub fn new(key: &str) -> Option<Self> {
        let key = key.trim();
        (!key.is_empty()).then(|| Self(key.to_string()))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Which version of the API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `POST /v3/videos`, `GET /v3/videos/{id}`.
    V3,
    /// `POST /v2/video/generate`, `GET /v1/video_status.get`.
    V2,
}

impl ApiVersion {
    /// Parses `v3` or `v2`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "v3" | "3" => Ok(Self::V3),
            "v2" | "2" => Ok(Self::V2),
            other => Err(format!("{other:?}: write v3 or v2")),
        }
    }
}

/// Where and how to reach HeyGen.
#[derive(Debug, Clone)]
pub struct HeygenSettings {
    /// `https://api.heygen.com` (a stand-in's address in tests).
    pub base_url: reqwest::Url,
    /// The API key.
    pub api_key: ApiKey,
    /// The API version.
    pub api: ApiVersion,
}

/// Parses HeyGen's base URL: https, or http to a loopback address only (a stand-in): the
/// key travels in a header, never in plain text past this machine. Ends with `/`.
pub fn base_url(text: &str) -> Result<reqwest::Url, String> {
    let mut url: reqwest::Url = text.trim().parse().map_err(|e| format!("{e}"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return Err("an https URL is needed (http only to a loopback address)".into());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// What the provider says of a video.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Queued or rendering.
    Pending(String),
    /// Done: where to download it (a presigned URL, valid for days).
    Completed {
        /// The video's URL.
        video_url: String,
    },
    /// It will not be made.
    Failed {
        /// The provider's reason.
        message: String,
    },
}

/// Why a call to the provider did not get an answer to act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// Refused for good (a 4xx other than 429): asking again will not help.
    #[error("{0}")]
    Refused(String),
    /// Busy (429), broken (5xx) or unreachable: ask again later, after `retry_after` if it
    /// said. `created_maybe`: a creation that may have happened all the same.
    #[error("{what}")]
    Unavailable {
        /// What happened.
        what: String,
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
        /// The request may have taken effect (a 5xx or a lost answer, not a 429).
        created_maybe: bool,
    },
    /// Not found (404): on a status, the provider does not know the video.
    #[error("{0}")]
    Unknown(String),
}

/// Largest answer read from the provider.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Longest `Retry-After` honoured as given (a longer one is cut to this).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A HeyGen client.
#[derive(Debug, Clone)]
pub struct Heygen {
    http: reqwest::Client,
    settings: HeygenSettings,
}

impl Heygen {
    /// A client; each request may take at most `request_timeout`.
    pub fn new(settings: HeygenSettings, request_timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self { http, settings })
    }

    /// The API version spoken.
    pub fn api(&self) -> ApiVersion {
        self.settings.api
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, ProviderError> {
        self.settings
            .base_url
            .join(path)
            .map_err(|e| ProviderError::Refused(format!("bad provider URL: {e}")))
    }

    /// Asks for the video of a generate step; its id on success. `callback_id` is echoed
    /// in the provider's webhooks; `idempotency_key` makes a repeated creation (v3) replay
    /// the first.
    pub async fn create(
        &self,
        step: &Step,
        callback_id: &str,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        let Step::Generate {
            avatar_id,
            voice_id,
            script,
            dimension,
            background,
            ..
        } = step
        else {
            return Err(ProviderError::Refused("not a generate step".into()));
        };
        let (path, body) = match self.settings.api {
            ApiVersion::V3 => {
                let mut body = json!({
                    "type": "avatar",
                    "avatar_id": avatar_id,
                    "script": script,
                    "voice_id": voice_id,
                    "output_format": "mp4",
                    "callback_id": callback_id,
                    "title": callback_id,
                });
                if let Some(dimension) = dimension {
                    let (resolution, aspect) = v3_size(*dimension);
                    body["resolution"] = json!(resolution);
                    body["aspect_ratio"] = json!(aspect);
                }
                if let Some(colour) = background {
                    body["background"] = json!({"type": "color", "value": colour});
                }
                ("v3/videos", body)
            }
            ApiVersion::V2 => {
                let mut input = json!({
                    "character": {"type": "avatar", "avatar_id": avatar_id, "avatar_style": "normal"},
                    "voice": {"type": "text", "input_text": script, "voice_id": voice_id},
                });
                if let Some(colour) = background {
                    input["background"] = json!({"type": "color", "value": colour});
                }
                let mut body = json!({
                    "video_inputs": [input],
                    "callback_id": callback_id,
                    "title": callback_id,
                });
                if let Some(Dimension { width, height }) = dimension {
                    body["dimension"] = json!({"width": width, "height": height});
                }
                ("v2/video/generate", body)
            }
        };
        let mut request = self
            .http
            .post(self.url(path)?)
            .header("x-api-key", &self.settings.api_key.0)
            .json(&body);
        if self.settings.api == ApiVersion::V3 {
            request = request.header("idempotency-key", idempotency_key);
        }
        let answer = send(request, true).await?;
        let id = answer["data"]["video_id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ProviderError::Unavailable {
                what: "the provider's answer to the creation has no video_id".into(),
                retry_after: None,
                created_maybe: true,
            })?;
        Ok(id.to_string())
    }

    /// Where the video is.
    pub async fn status(&self, video_id: &str) -> Result<Status, ProviderError> {
        let request = match self.settings.api {
            ApiVersion::V3 => {
                let mut url = self.url("v3/videos/")?;
                url.path_segments_mut()
                    .map_err(|()| ProviderError::Refused("bad provider URL".into()))?
                    .pop_if_empty()
                    .push(video_id);
                self.http.get(url)
            }
            ApiVersion::V2 => self
                .http
                .get(self.url("v1/video_status.get")?)
                .query(&[("video_id", video_id)]),
        };
        let request = request.header("x-api-key", &self.settings.api_key.0);
        let answer = send(request, false).await.map_err(|error| match error {
            ProviderError::Unknown(_) => {
                ProviderError::Unknown(format!("the provider has no video {video_id}"))
            }
            other => other,
        })?;
        // v1's envelope says 100 for success.
        if let Some(code) = answer["code"].as_i64().filter(|code| *code != 100) {
            return Err(ProviderError::Unavailable {
                what: format!("the provider answered code {code}"),
                retry_after: None,
                created_maybe: false,
            });
        }
        let data = &answer["data"];
        let status = data["status"].as_str().unwrap_or_default();
        Ok(match status {
            "completed" => match data["video_url"].as_str().filter(|u| !u.is_empty()) {
                Some(url) => Status::Completed {
                    video_url: url.to_string(),
                },
                None => Status::Pending("completed without a video_url yet".into()),
            },
            "failed" => {
                let message = data["failure_message"]
                    .as_str()
                    .or_else(|| data["error"]["message"].as_str())
                    .or_else(|| data["error"]["detail"].as_str())
                    .unwrap_or("no reason given");
                let code = data["failure_code"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| data["error"]["code"].as_i64().map(|c| c.to_string()));
                Status::Failed {
                    message: match code {
                        Some(code) => format!("{code}: {}", clip(message)),
                        None => clip(message),
                    },
                }
            }
            other => Status::Pending(clip(other)),
        })
    }
}

/// v3 sizes a video by a resolution and an aspect ratio, not by pixels.
fn v3_size(Dimension { width, height }: Dimension) -> (&'static str, String) {
    let short = width.min(height);
    let resolution = if short >= 2160 {
        "4k"
    } else if short >= 1080 {
        "1080p"
    } else {
        "720p"
    };
    let gcd = gcd(width, height).max(1);
    let aspect = match (width / gcd, height / gcd) {
        (16, 9) => "16:9",
        (9, 16) => "9:16",
        (1, 1) => "1:1",
        (4, 5) => "4:5",
        (5, 4) => "5:4",
        _ if width >= height => "16:9",
        _ => "9:16",
    };
    (resolution, aspect.to_string())
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A provider's text cut to something a reason can hold.
fn clip(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() <= MAX {
        return text.to_string();
    }
    text.chars().take(MAX).chain(['…']).collect()
}

/// Sends a request and reads its JSON answer; `creates`: the request pays for something
/// (an ambiguous failure may have taken effect).
async fn send(request: reqwest::RequestBuilder, creates: bool) -> Result<Value, ProviderError> {
    let response = request.send().await.map_err(|e| {
        let connect = e.is_connect();
        ProviderError::Unavailable {
            // Without the URL (the key is in a header, but a stand-in's URL says little).
            what: format!("the provider is unreachable: {}", e.without_url()),
            retry_after: None,
            created_maybe: creates && !connect,
        }
    })?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    // An answer is small; a provider (or whoever answers in its name) sending more is cut
    // off instead of filling the memory.
    let mut response = response;
    let mut body = Vec::new();
    let mut complete = true;
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            complete = false;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let json: Value = if complete {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let message = json["error"]["message"]
        .as_str()
        .or_else(|| json["message"].as_str())
        .or_else(|| json["error"].as_str())
        .map(clip)
        .unwrap_or_default();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(ProviderError::Unavailable {
            what: format!("the provider is busy (429) {message}")
                .trim_end()
                .to_string(),
            retry_after,
            created_maybe: false,
        });
    }
    if status == StatusCode::CONFLICT && creates {
        // v3: the same idempotency key is still being processed.
        return Err(ProviderError::Unavailable {
            what: "the provider is still processing the same creation (409)".into(),
            retry_after: retry_after.or(Some(Duration::from_secs(1))),
            created_maybe: true,
        });
    }
    if status.is_server_error() {
        return Err(ProviderError::Unavailable {
            what: format!("the provider failed ({status}) {message}")
                .trim_end()
                .to_string(),
            retry_after,
            created_maybe: creates,
        });
    }
    if status == StatusCode::NOT_FOUND {
        return Err(ProviderError::Unknown(
            format!("404 {message}").trim_end().to_string(),
        ));
    }
    if !status.is_success() {
        let why = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                "the provider refused Aurora's API key".to_string()
            }
            _ => message,
        };
        return Err(ProviderError::Refused(
            format!("{} {why}", status.as_u16()).trim_end().to_string(),
        ));
    }
    if json.is_null() {
        return Err(ProviderError::Unavailable {
            what: "the provider's answer is not JSON".into(),
            retry_after: None,
            created_maybe: creates,
        });
    }
    Ok(json)
}

/// `Retry-After` in seconds or as an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after", "999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(30)).to_rfc2822();
        headers.insert("retry-after", soon.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(25));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn the_key_goes_to_https_or_to_loopback_only() {
        let url = |text| base_url(text).map(|u| u.to_string());
        assert_eq!(
            url("https://api.heygen.com"),
            Ok("https://api.heygen.com/".into())
        );
        assert_eq!(
            url("http://127.0.0.1:9/x"),
            Ok("http://127.0.0.1:9/x/".into())
        );
        assert!(url("http://[::1]:9").is_ok() && url("http://localhost:9").is_ok());
        assert!(
            url("http://api.heygen.com").is_err(),
            "plain text past this machine"
        );
        assert!(url("ftp://127.0.0.1").is_err());
        assert!(url("not a url").is_err());
    }

    #[test]
    fn v3_sizes_follow_the_dimension() {
        let size = |width, height| v3_size(Dimension { width, height });
        assert_eq!(size(1920, 1080), ("1080p", "16:9".to_string()));
        assert_eq!(size(720, 1280), ("720p", "9:16".to_string()));
        assert_eq!(size(3840, 3840), ("4k", "1:1".to_string()));
        assert_eq!(size(1080, 1350), ("1080p", "4:5".to_string()));
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let key = ApiKey::new("sk-very-secret").unwrap();
        let settings = HeygenSettings {
            base_url: "https://api.heygen.com".parse().unwrap(),
            api_key: key,
            api: ApiVersion::V3,
        };
        let shown = format!(
            "{settings:?} {:?}",
            Heygen::new(settings.clone(), Duration::from_secs(1)).unwrap()
        );
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(ApiKey::new("  ").is_none());
    }
}
