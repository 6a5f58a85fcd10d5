//! `POST /api/v1/webhooks/heygen`: HeyGen's webhook events about the videos generate steps
//! asked for (`avatar_video.success`, `avatar_video.fail`), from the endpoint registered
//! with `POST /v3/webhooks/endpoints` (its secret is `AURORA_HEYGEN_WEBHOOK_SECRET`).
//!
//! **Signature.** HeyGen signs deliveries to a registered endpoint (per-job `callback_url`
//! deliveries are not signed, so Aurora does not use them) with an HMAC-SHA256 in hex, in
//! `Heygen-Signature` (`Signature` on the legacy v1 endpoints), keyed with the endpoint's
//! secret as given (`whsec_…`), over the raw body — or over `{Heygen-Timestamp}.{body}`,
//! which is checked too and then must be within 5 minutes of now. Every configured secret
//! is tried (rotation), in constant time. A bad or missing signature gets 401 and changes
//! nothing.
//!
//! **Effect.** A webhook only hurries things: the step waiting for the video polls its
//! status anyway, and the status, not the webhook, decides. A verified report about a video
//! a run recorded is stored on the run (`GenerationReported`, once per outcome: a duplicate
//! changes nothing); every replica hears of it through the bus, and the one waiting looks
//! at the status at once. Reports about videos Aurora did not ask for, runs that ended, or
//! events it does not use are answered 200 and ignored, so the provider does not retry
//! them.

use std::sync::Arc;

use aurora_domain::run::{RunCommand, RunError};
use cqrs_es::AggregateError;
use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::http::body::{json, json_body, JsonBody};
use crate::http::context::{context, RequestContext};
use crate::http::error::{respond, ApiError};
use crate::http::problem::{Body as ProblemBody, Problem};
use crate::state::AppState;

/// The principal recorded in events the webhook causes.
pub const PRINCIPAL: &str = aurora_domain::metadata::GENERATION_WEBHOOK;

/// How far a signed timestamp may be from now.
const TOLERANCE_SECONDS: i64 = 5 * 60;

/// The route.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let body = json_body(state.config.max_body_bytes);
    let with_state = warp::any().map(move || state.clone());
    warp::path!("api" / "v1" / "webhooks" / "heygen")
        .and(warp::post())
        .and(context())
        .and(with_state)
        .and(body)
        .then(heygen)
}

/// A HeyGen webhook event (fields Aurora does not use are ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct Event {
    /// `avatar_video.success`, `avatar_video.fail`, …
    event_type: String,
    #[serde(default)]
    event_data: EventData,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
struct EventData {
    /// The provider's id of the video.
    #[serde(default)]
    video_id: Option<String>,
    /// What Aurora sent as `callback_id`: `aurora:<run id>:<step>`.
    #[serde(default)]
    callback_id: Option<String>,
    /// Why it failed (`avatar_video.fail`).
    #[serde(default)]
    msg: Option<String>,
}

/// What the webhook did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Outcome {
    /// `applied` (stored on the run) or `ignored`.
    status: &'static str,
    /// Events stored (0 for a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<usize>,
    /// Why it was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl Outcome {
    fn ignored(reason: impl Into<String>) -> Self {
        Self {
            status: "ignored",
            events: None,
            reason: Some(reason.into()),
        }
    }
}

/// HeyGen's report that a video a generate step asked for is ready or failed. Signed by
/// HeyGen (`Heygen-Signature`: hex HMAC-SHA256 of the body under the endpoint's secret)
/// instead of a token.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/heygen",
    operation_id = "heygen_webhook",
    tag = "webhooks",
    params(
        ("Heygen-Signature" = String, Header, description = "Hex HMAC-SHA256 of the raw body (or of `{Heygen-Timestamp}.{body}`) under the endpoint's secret; `Signature` on legacy endpoints"),
        ("Heygen-Timestamp" = Option<i64>, Header, description = "Seconds since the epoch, when the signature covers it"),
    ),
    request_body(content = Event, description = "The event", example = json!({"event_type": "avatar_video.success", "event_data": {"video_id": "9f1c0e7a2b", "url": "https://files2.heygen.ai/…/9f1c0e7a2b.mp4", "callback_id": "aurora:019a0000-0000-7000-8000-000000000001:0"}})),
    responses(
        (status = 200, description = "Stored on the run, a duplicate, or ignored (not Aurora's video, an ended run, an event Aurora does not use)", body = Outcome),
        (status = 400, description = "The body is empty or not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "A bad or missing signature, or a signed timestamp outside the tolerance", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The webhook is not configured", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Not a HeyGen event (no event_type, a bad video_id)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A backing service is unavailable (HeyGen retries)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn heygen(ctx: RequestContext, state: Arc<AppState>, body: JsonBody) -> Response {
    respond(&ctx, try_heygen(&ctx, &state, body).await)
}

async fn try_heygen(
    ctx: &RequestContext,
    state: &AppState,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let Some(secrets) = state
        .config
        .heygen_webhook_secret
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    else {
        return Err(Problem::not_found(
            "the HeyGen webhook is not configured (AURORA_HEYGEN_WEBHOOK_SECRET)",
        )
        .into());
    };
    verify(
        secrets,
        body.headers_map(),
        body.bytes(),
        chrono::Utc::now(),
    )
    .map_err(|why| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-webhook-signature",
            "Unauthorized",
            format!("webhook refused: {why}"),
        )
    })?;
    let event: Event = body.parse(None)?;
    let succeeded = match event.event_type.as_str() {
        "avatar_video.success" => true,
        "avatar_video.fail" => false,
        other => {
            let outcome = Outcome::ignored(format!("{other} is not an event Aurora uses"));
            return Ok(json(StatusCode::OK, &outcome, ctx));
        }
    };
    let video_id = event
        .event_data
        .video_id
        .as_deref()
        .filter(|id| aurora_domain::run::is_video_id(id))
        .ok_or_else(|| {
            Problem::unprocessable(
                "invalid-field",
                "event_data.video_id is the provider's video id: 1 to 128 letters, digits, '-' or '_'",
            )
        })?;
    let Some((run_id, step)) = event.event_data.callback_id.as_deref().and_then(ours) else {
        let outcome = Outcome::ignored("the callback_id names no Aurora run");
        return Ok(json(StatusCode::OK, &outcome, ctx));
    };
    let mut metadata = ctx.metadata_as(PRINCIPAL, None);
    metadata.role = Some(aurora_domain::metadata::SYSTEM_ROLE.to_string());
    let command = RunCommand::ReportGeneration {
        step,
        video_id: video_id.to_string(),
        succeeded,
        message: event.event_data.msg.clone(),
    };
    match state
        .run_commands
        .execute(&run_id.to_string(), command, &metadata)
        .await
    {
        Ok(events) => {
            state.metrics.command("ReportGeneration", "accepted");
            let outcome = Outcome {
                status: "applied",
                events: Some(events.len()),
                reason: None,
            };
            Ok(json(StatusCode::OK, &outcome, ctx))
        }
        Err(AggregateError::UserError(
            error @ (RunError::NotFound
            | RunError::AlreadyFinished(_)
            | RunError::UnknownGeneration(_)),
        )) => {
            tracing::info!(%run_id, %video_id, %error, "a HeyGen report ignored");
            Ok(json(
                StatusCode::OK,
                &Outcome::ignored(error.to_string()),
                ctx,
            ))
        }
        Err(error) => Err(ApiError::Run(error)),
    }
}

/// The run and step of a `callback_id` Aurora sent.
fn ours(callback_id: &str) -> Option<(Uuid, usize)> {
    let rest = callback_id.strip_prefix("aurora:")?;
    let (run, step) = rest.split_once(':')?;
    Some((Uuid::parse_str(run).ok()?, step.parse().ok()?))
}

/// Why a signature was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum SignatureError {
    #[error("missing header Heygen-Signature")]
    Missing,
    #[error("the signature is not hex")]
    NotHex,
    #[error("no matching signature")]
    Mismatch,
    #[error("the signed timestamp is outside the tolerated window")]
    Stale,
}

/// Checks a delivery's signature under any of the comma-separated `secrets`.
fn verify(
    secrets: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), SignatureError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let signature = header("heygen-signature")
        .or_else(|| header("signature"))
        .ok_or(SignatureError::Missing)?;
    let signature = signature.strip_prefix("sha256=").unwrap_or(signature);
    let signature = hex::decode(signature).map_err(|_| SignatureError::NotHex)?;
    let timestamp = header("heygen-timestamp");
    for secret in secrets.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if mac(secret, &[body]).verify_slice(&signature).is_ok() {
            return Ok(());
        }
        if let Some(timestamp) = timestamp {
            if mac(secret, &[timestamp.as_bytes(), b".", body])
                .verify_slice(&signature)
                .is_ok()
            {
                let at: i64 = timestamp.parse().map_err(|_| SignatureError::Stale)?;
                if (now.timestamp() - at).abs() > TOLERANCE_SECONDS {
                    return Err(SignatureError::Stale);
                }
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

fn mac(secret: &str, parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &str, parts: &[&[u8]]) -> String {
        hex::encode(mac(secret, parts).finalize().into_bytes())
    }

    #[test]
    fn signatures_over_the_body_or_the_timestamped_body_verify_under_any_secret() {
        let body = br#"{"event_type":"avatar_video.success"}"#;
        let now = chrono::Utc::now();
        let mut headers = HeaderMap::new();
        assert_eq!(
            verify("whsec_a", &headers, body, now),
            Err(SignatureError::Missing)
        );
        headers.insert(
            "heygen-signature",
            signed("whsec_b", &[body]).parse().unwrap(),
        );
        assert_eq!(verify("whsec_a, whsec_b", &headers, body, now), Ok(()));
        assert_eq!(
            verify("whsec_a", &headers, body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_b", &headers, b"{\"event_type\":\"other\"}", now),
            Err(SignatureError::Mismatch),
            "another body"
        );
        // The legacy header name, upper-case hex.
        let mut legacy = HeaderMap::new();
        legacy.insert(
            "signature",
            signed("s", &[body]).to_uppercase().parse().unwrap(),
        );
        assert_eq!(verify("s", &legacy, body, now), Ok(()));
        // Over `{timestamp}.{body}`: the timestamp must be recent.
        let ts = now.timestamp().to_string();
        let mut timed = HeaderMap::new();
        timed.insert("heygen-timestamp", ts.parse().unwrap());
        timed.insert(
            "heygen-signature",
            signed("s", &[ts.as_bytes(), b".", body]).parse().unwrap(),
        );
        assert_eq!(verify("s", &timed, body, now), Ok(()));
        let later = now + chrono::TimeDelta::minutes(6);
        assert_eq!(verify("s", &timed, body, later), Err(SignatureError::Stale));
        timed.insert("heygen-signature", "zz".parse().unwrap());
        assert_eq!(verify("s", &timed, body, now), Err(SignatureError::NotHex));
    }

    #[test]
    fn only_aurora_callback_ids_name_a_run() {
        let id = Uuid::now_v7();
        assert_eq!(ours(&format!("aurora:{id}:0")), Some((id, 0)));
        assert_eq!(ours(&format!("other:{id}:0")), None);
        assert_eq!(ours("aurora:not-a-uuid:0"), None);
        assert_eq!(ours(&format!("aurora:{id}:x")), None);
    }
}
