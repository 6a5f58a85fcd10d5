//! `POST /api/v1/webhooks/identity`: users created, updated and deleted by an external
//! identity provider, signed in the Standard Webhooks / Svix scheme.
//!
//! The body:
//! ```json
//! {"type": "user.created" | "user.updated" | "user.deleted",
//!  "data": {"id": "<the provider's id>", "username": "alice",
//!           "role": "user", "tier": "pro", "disabled": false}}
//! ```
//! `role`, `tier` and `disabled` are optional; so is a top-level `timestamp` (the
//! provider's event time, ms since the epoch or RFC 3339): with it, a message older than
//! one already applied to the user changes nothing, so a retry overtaken by a newer change
//! cannot undo it. Created and updated are both upserts; deleting an unknown user changes
//! nothing. The provider only changes users it created, under the same provider id: a
//! name someone registered themselves gets 409 `identity-conflict`. A bad signature,
//! missing headers or a timestamp outside the tolerance get 401 and store nothing; a
//! message id already applied gets 200 and changes nothing. Users synced this way have no
//! password: they reach Aurora through API keys an admin or the provider's flow arranges.
//!
//! **Clerk's messages as Clerk sends them** are understood too: a user without a username
//! (an email sign-up: `"username": null`) gets one derived from its primary email address
//! (else its name, else its id), unique among Aurora's users; `role` and `tier` are read
//! from `public_metadata` (values Aurora does not know are ignored, not refused, so the
//! user still arrives); `banned` disables. The provider's id is remembered with the name,
//! so later messages without a username (updates, and deletions, which carry only the id)
//! reach the same user.
use std::sync::Arc;

use aurora_domain::user::{Registration, Role, Tier, UserCommand, UserError, Username};
use aurora_domain::EventMetadata;
use cqrs_es::AggregateError;
use http::StatusCode;
use serde::Deserialize;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::{json, json_body, JsonBody};
use super::context::{context, RequestContext};
use super::error::{respond, ApiError};
use super::problem::{Body as ProblemBody, Problem};
use crate::auth::webhook::{self, WebhookError, WebhookSecrets};
use crate::state::AppState;

pub mod heygen;
mod names;
use names::{derived_names, Data};

/// The principal recorded in events the webhook causes.
pub const PRINCIPAL: &str = aurora_domain::metadata::IDENTITY_WEBHOOK;

/// The route.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let heygen = heygen::routes(state.clone());
    let body = json_body(state.config.max_body_bytes);
    let with_state = warp::any().map(move || state.clone());
    warp::path!("api" / "v1" / "webhooks" / "identity")
        .and(warp::post())
        .and(context())
        .and(with_state)
        .and(body)
        .then(identity)
        .or(heygen)
        .unify()
}

/// Fields Aurora does not use (a provider's `timestamp`, `email`, …) are ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct Message {
    #[serde(rename = "type")]
    kind: Kind,
    /// When the provider's event happened: milliseconds since the epoch, or RFC 3339.
    #[serde(default)]
    timestamp: Option<EventTime>,
    data: Data,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum EventTime {
    Millis(i64),
    Text(chrono::DateTime<chrono::Utc>),
}

impl EventTime {
    fn millis(&self) -> i64 {
        match self {
            EventTime::Millis(ms) => *ms,
            EventTime::Text(time) => time.timestamp_millis(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
enum Kind {
    #[serde(rename = "user.created")]
    Created,
    #[serde(rename = "user.updated")]
    Updated,
    #[serde(rename = "user.deleted")]
    Deleted,
}

/// Users created, updated and deleted by an external identity provider. Signed in the
/// Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`)
/// instead of a token; a message id already applied changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/identity",
    operation_id = "identity_webhook",
    tag = "webhooks",
    params(
        ("webhook-id" = String, Header, description = "The message id"),
        ("webhook-timestamp" = i64, Header, description = "Seconds since the epoch; must be within the tolerance"),
        ("webhook-signature" = String, Header, description = "v1,<base64 HMAC-SHA256 of id.timestamp.body> (space-separated if several)"),
    ),
    request_body(content = Message, description = "What happened to which user", example = json!({"type": "user.created", "timestamp": "2026-11-25T00:00:00Z", "data": {"id": "idp-42", "username": "grace", "role": "user", "tier": "pro"}})),
    responses(
        (status = 200, description = "Applied, or already applied, or stale (nothing changed)", body = WebhookResult),
        (status = 400, description = "The body is empty or not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "A bad signature, missing headers, or a timestamp outside the tolerance", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The webhook is not configured", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The user exists and is not the provider's (identity-conflict), or its state forbids the change", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad body, username or data.id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited or blocked; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A backing service is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn identity(ctx: RequestContext, state: Arc<AppState>, body: JsonBody) -> Response {
    respond(&ctx, try_identity(&ctx, &state, body).await)
}

async fn try_identity(
    ctx: &RequestContext,
    state: &AppState,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let Some(secrets) = &state.config.identity_webhook_secrets else {
        return Err(Problem::not_found(
            "the identity webhook is not configured (AURORA_IDENTITY_WEBHOOK_SECRETS)",
        )
        .into());
    };
    let secrets = WebhookSecrets::parse(secrets).map_err(|e| Problem::internal(&e))?;
    let verified = webhook::verify(
        &secrets,
        body.headers_map(),
        body.bytes(),
        chrono::Utc::now(),
    )
    .map_err(|error| match error {
        WebhookError::InvalidSecret => Problem::internal(&error),
        error => Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-webhook-signature",
            "Unauthorized",
            format!("webhook refused: {error}"),
        ),
    })?;
    if state
        .db
        .webhook_seen(&verified.id)
        .await
        .map_err(|e| Problem::unavailable(&e))?
    {
        let body = WebhookResult::unchanged(&verified.id, "duplicate");
        return Ok(json(StatusCode::OK, &body, ctx));
    }
    let message: Message = body.parse(None)?;
    let external_id = message.data.id.trim();
    if external_id.is_empty() || external_id.len() > 256 {
        return Err(Problem::unprocessable(
            "invalid-field",
            "data.id is the provider's user id: 1 to 256 characters",
        )
        .into());
    }
    let Some(username) = resolve(state, &message, external_id).await? else {
        // A deletion of a user Aurora never had.
        state
            .db
            .webhook_applied(&verified.id)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        let body = WebhookResult {
            id: verified.id.clone(),
            status: "applied",
            events: Some(0),
        };
        return Ok(json(StatusCode::OK, &body, ctx));
    };
    // A user the provider did not create (self-registered, bootstrap) or created under
    // another id is not the provider's to change: someone registering a name before the
    // provider syncs it must not inherit what the provider grants that name.
    let user = state.identity.users.load(username.as_str()).await?;
    // A new user may not take one of Aurora's own names (one the provider created before
    // the name was reserved stays the provider's to change).
    if user.user_id().is_none() {
        Username::parse_new(username.as_str())
            .map_err(|e| Problem::unprocessable("invalid-username", e.to_string()))?;
    }
    if user.user_id().is_some() && user.external_id() != Some(external_id) {
        return Err(identity_conflict(&username, external_id).into());
    }
    // A message older than one already applied (a retry overtaken by a newer change)
    // changes nothing.
    let event_ms = message.timestamp.as_ref().map(EventTime::millis);
    // An event time past the signature's tolerance in the future would make every later
    // change to this user look stale: refused, as a signed timestamp that far ahead is.
    let tolerance_ms = i64::try_from(crate::auth::webhook::TOLERANCE.as_millis()).unwrap_or(0);
    if event_ms.is_some_and(|ms| ms > chrono::Utc::now().timestamp_millis() + tolerance_ms) {
        return Err(Problem::unprocessable(
            "invalid-field",
            "timestamp is in the future (beyond the 5-minute tolerance): the provider's event \
             time must not be later than now",
        )
        .into());
    }
    if let Some(ms) = event_ms {
        let last = state
            .db
            .identity_event_ms(username.as_str())
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        if last.is_some_and(|last| ms < last) {
            state
                .db
                .webhook_applied(&verified.id)
                .await
                .map_err(|e| Problem::unavailable(&e))?;
            let body = WebhookResult::unchanged(&verified.id, "stale");
            return Ok(json(StatusCode::OK, &body, ctx));
        }
    }
    let mut metadata = ctx.metadata_as(PRINCIPAL, None);
    metadata.role = Some(aurora_domain::metadata::SYSTEM_ROLE.to_string());
    metadata.request_id = format!("{}:{}", metadata.request_id, verified.id);
    let changed = match message.kind {
        Kind::Created | Kind::Updated => {
            upsert(state, &metadata, &username, external_id, &message.data).await?
        }
        Kind::Deleted => run(state, &metadata, &username, UserCommand::Delete)
            .await
            .or_else(|e| match e {
                AggregateError::UserError(UserError::NotFound) => Ok(0),
                e => Err(e),
            })?,
    };
    if !matches!(message.kind, Kind::Deleted) {
        state
            .db
            .set_identity_user(external_id, username.as_str())
            .await
            .map_err(|e| Problem::unavailable(&e))?;
    }
    if let Some(ms) = event_ms {
        state
            .db
            .set_identity_event_ms(username.as_str(), ms)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
    }
    state
        .db
        .webhook_applied(&verified.id)
        .await
        .map_err(|e| Problem::unavailable(&e))?;
    state.metrics.command("IdentityWebhook", "accepted");
    let body = WebhookResult {
        id: verified.id.clone(),
        status: "applied",
        events: Some(changed),
    };
    Ok(json(StatusCode::OK, &body, ctx))
}

/// 409: `username` is not the provider's user `external_id`.
fn identity_conflict(username: &Username, external_id: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "identity-conflict",
        "Conflict",
        format!(
            "user {username} exists and was not created by the identity provider as {external_id}"
        ),
    )
}

/// The user a message is about: the one the provider's id was synced to before; else the
/// message's username; else, for a user without one, the first derived name that is free
/// or already this provider user's. `None`: a deletion of a user Aurora never had.
async fn resolve(
    state: &AppState,
    message: &Message,
    external_id: &str,
) -> Result<Option<Username>, ApiError> {
    let invalid = |e: aurora_domain::user::UsernameError| {
        Problem::unprocessable("invalid-username", e.to_string())
    };
    let known = state
        .db
        .identity_user(external_id)
        .await
        .map_err(|e| Problem::unavailable(&e))?;
    if let Some(known) = known {
        return Ok(Some(Username::parse(&known).map_err(invalid)?));
    }
    if let Some(name) = message.data.username.as_deref() {
        return Ok(Some(Username::parse(name).map_err(invalid)?));
    }
    if matches!(message.kind, Kind::Deleted) {
        return Ok(None);
    }
    for name in derived_names(&message.data.name_stem(), external_id) {
        let Ok(name) = Username::parse_new(&name) else {
            continue;
        };
        let user = state.identity.users.load(name.as_str()).await?;
        if user.user_id().is_none() || user.external_id() == Some(external_id) {
            return Ok(Some(name));
        }
    }
    Err(Problem::unprocessable(
        "invalid-username",
        "no free username could be derived for this user; send one in data.username",
    )
    .into())
}

/// Runs one command on `username` (revocations apply at once); how many events it stored.
async fn run(
    state: &AppState,
    metadata: &EventMetadata,
    username: &Username,
    command: UserCommand,
) -> Result<usize, AggregateError<UserError>> {
    let events = state
        .identity
        .execute(username.as_str(), command, metadata)
        .await?;
    Ok(events.len())
}

async fn upsert(
    state: &AppState,
    metadata: &EventMetadata,
    username: &Username,
    external_id: &str,
    data: &Data,
) -> Result<usize, ApiError> {
    let mut changed = 0;
    let mut created = false;
    let register = UserCommand::Register {
        user_id: uuid::Uuid::now_v7(),
        username: username.clone(),
        role: data.role().unwrap_or(Role::User),
        tier: data.tier().unwrap_or(Tier::Free),
        registration: Registration::IdentityProvider {
            external_id: external_id.to_string(),
        },
    };
    match state
        .identity
        .users
        .create(username.as_str(), register, metadata)
        .await
    {
        Ok(events) => {
            changed += events.len();
            created = true;
        }
        // Known already: an update, if the user is still this provider user (someone may
        // have taken the name since it was checked).
        Err(
            AggregateError::AggregateConflict
            | AggregateError::UserError(UserError::AlreadyRegistered),
        ) => {
            let user = state.identity.users.load(username.as_str()).await?;
            if user.external_id() != Some(external_id) {
                return Err(identity_conflict(username, external_id).into());
            }
        }
        Err(error) => return Err(error.into()),
    }
    let reason = Some("disabled by the identity provider".to_string());
    let commands = UserCommand::changes(data.role(), data.tier(), data.disabled(), reason);
    for command in commands {
        changed += run(state, metadata, username, command).await?;
    }
    // Shown as the whole message left it (role, tier, disabled), not as first registered.
    if created {
        state.show_new_user(username.as_str()).await;
    }
    Ok(changed)
}

/// What an identity webhook message did.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct WebhookResult {
    /// The message id (`webhook-id`).
    pub id: String,
    /// `applied`, `duplicate` (already applied: nothing changed) or `stale` (older than
    /// a change already applied: nothing changed).
    #[schema(example = "applied")]
    pub status: &'static str,
    /// Events stored (only when `applied`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<usize>,
}

impl WebhookResult {
    /// A message that changed nothing.
    fn unchanged(id: &str, status: &'static str) -> Self {
        Self {
            id: id.to_string(),
            status,
            events: None,
        }
    }
}
