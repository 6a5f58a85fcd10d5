//! The tokens a user holds, as the `User` aggregate records them: enough to list them,
//! revoke them one by one, and revoke them all when the user is disabled or changes role.
//! The token itself (a signed Biscuit) never enters an event; its id and the revocation id
//! of its authority block do.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Role;

/// Longest API key label, in characters.
pub const MAX_LABEL_LEN: usize = 64;
/// Most live API keys one user may hold.
pub const MAX_API_KEYS: usize = 100;

/// What kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// From a login; short-lived.
    Session,
    /// Created by the user; long-lived, labelled, revocable.
    ApiKey,
}

impl TokenKind {
    /// `session` or `api_key`, as in the token's `token_kind` fact.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::ApiKey => "api_key",
        }
    }
}

/// A token issued to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// The token's id (its `token_id` fact).
    pub token_id: String,
    /// Session or API key.
    pub kind: TokenKind,
    /// The user's name for an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Revocation id of the token's authority block, hex: every token derived from it by
    /// attenuation shares it, so revoking it revokes them all.
    pub revocation_id: String,
    /// When it was minted.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// The role it states: the aggregate records it only if that is still the user's role,
    /// so a token minted just before a role change cannot outlive the change.
    pub role: Role,
}

/// Why a token was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// Its session was logged out.
    Logout,
    /// Its holder (or an admin) revoked it.
    Revoked,
    /// The user was disabled.
    UserDisabled,
    /// The user was deleted.
    UserDeleted,
    /// The user's role changed: tokens state the role, so they are reissued by logging in.
    RoleChanged,
}

/// Checks an API key label: 1–[`MAX_LABEL_LEN`] characters, no control characters.
pub fn valid_label(label: &str) -> bool {
    let count = label.chars().count();
    (1..=MAX_LABEL_LEN).contains(&count)
        && !label.chars().any(char::is_control)
        && !label.trim().is_empty()
}
