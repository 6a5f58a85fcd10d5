//! Events of the `User` aggregate. Past tense, versioned. No event carries a password or
//! its hash: events are relayed to NATS and read by auditors.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{RevocationReason, Role, Tier, TokenGrant, Username};

/// How a user came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Registration {
    /// Registered themselves through the API.
    SelfService,
    /// Created by `aurora admin create`.
    Bootstrap,
    /// Synced from an external identity provider.
    IdentityProvider {
        /// The provider's id for the user.
        external_id: String,
    },
}

/// Why a login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailure {
    /// The password did not match.
    WrongPassword,
    /// The user is disabled or deleted.
    Disabled,
}

/// Something that happened to a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// A user was registered.
    UserRegistered {
        /// Stable id.
        user_id: Uuid,
        /// Normalised username.
        username: Username,
        /// Initial role.
        role: Role,
        /// Initial tier.
        tier: Tier,
        /// How.
        registration: Registration,
    },
    /// A login succeeded and a session token was issued. Version 2 (v1: `{token_id}`).
    LoginSucceeded {
        /// The session token.
        token: TokenGrant,
    },
    /// An API key was created.
    ApiKeyCreated {
        /// The key.
        token: TokenGrant,
    },
    /// A token was revoked: refused from now on, with every token attenuated from it.
    TokenRevoked {
        /// Its id.
        token_id: String,
        /// Revocation id of its authority block, hex.
        revocation_id: String,
        /// When it would have expired: revocation sets may forget it after that.
        expires_at: chrono::DateTime<chrono::Utc>,
        /// Why.
        reason: RevocationReason,
    },
    /// A login failed.
    LoginFailed {
        /// Why.
        failure: LoginFailure,
    },
    /// A session ended.
    LoggedOut {
        /// The session token's id.
        token_id: String,
    },
    /// The role changed.
    RoleChanged {
        /// The role before.
        from: Role,
        /// The role now.
        to: Role,
    },
    /// The tier changed.
    TierChanged {
        /// The tier before.
        from: Tier,
        /// The tier now.
        to: Tier,
    },
    /// The user was disabled.
    UserDisabled {
        /// Why.
        reason: Option<String>,
    },
    /// The user was enabled again.
    UserEnabled,
    /// The user was deleted.
    UserDeleted,
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::LoginSucceeded { .. } => "LoginSucceeded",
            UserEvent::LoginFailed { .. } => "LoginFailed",
            UserEvent::ApiKeyCreated { .. } => "ApiKeyCreated",
            UserEvent::TokenRevoked { .. } => "TokenRevoked",
            UserEvent::LoggedOut { .. } => "LoggedOut",
            UserEvent::RoleChanged { .. } => "RoleChanged",
            UserEvent::TierChanged { .. } => "TierChanged",
            UserEvent::UserDisabled { .. } => "UserDisabled",
            UserEvent::UserEnabled => "UserEnabled",
            UserEvent::UserDeleted => "UserDeleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        match self {
            // v1 carried only the token id (see `upcast`).
            UserEvent::LoginSucceeded { .. } => "2",
            _ => "1",
        }
        .to_string()
    }
}
