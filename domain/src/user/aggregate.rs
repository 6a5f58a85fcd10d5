//! The `User` aggregate's state and rules.

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    valid_label, Registration, RevocationReason, Role, Tier, TokenGrant, TokenKind, UserCommand,
    UserEvent, MAX_API_KEYS, MAX_LABEL_LEN,
};
use crate::run::MAX_REASON_LEN;

/// Why the `User` aggregate refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// `Register` under a username that is taken.
    #[error("username is taken")]
    AlreadyRegistered,
    /// A command for a user that was never registered.
    #[error("user not found")]
    NotFound,
    /// A login for a disabled or deleted user.
    #[error("user is disabled")]
    Disabled,
    /// A change to a deleted user.
    #[error("user was deleted")]
    Deleted,
    /// A reason longer than [`MAX_REASON_LEN`].
    #[error("reason is longer than {MAX_REASON_LEN} characters")]
    ReasonTooLong,
    /// An API key label that is empty, too long, or has control characters.
    #[error("a label has 1 to {MAX_LABEL_LEN} characters and no control characters")]
    InvalidLabel,
    /// A new API key beyond [`MAX_API_KEYS`] live ones.
    #[error("at most {MAX_API_KEYS} API keys may be live at once; revoke one first")]
    TooManyApiKeys,
    /// A token the user does not hold (never issued to them, expired, or revoked).
    #[error("no such live token")]
    TokenNotFound,
    /// A token minted for a role the user no longer has: mint it again.
    #[error("the user's role changed while the token was minted")]
    RoleChanged,
}

/// How long after a token's expiry the aggregate still remembers it: replicas' clocks
/// differ, and a token forgotten while some replica still accepts it could not be revoked.
pub const EXPIRY_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// A user. Holds only what its rules need.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    user_id: Option<Uuid>,
    role: Option<Role>,
    tier: Option<Tier>,
    disabled: bool,
    deleted: bool,
    /// Live tokens by id. A token is forgotten when revoked, and when a later token is
    /// issued well after it expired (so the map stays as small as the live set).
    tokens: BTreeMap<String, TokenGrant>,
    /// The identity provider's id, for users it created.
    external_id: Option<String>,
}

impl User {
    /// The stable id, once registered.
    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }

    /// The role, once registered.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// The tier, once registered.
    pub fn tier(&self) -> Option<Tier> {
        self.tier
    }

    /// Registered, not disabled, not deleted: may log in and use tokens.
    pub fn is_active(&self) -> bool {
        self.user_id.is_some() && !self.disabled && !self.deleted
    }

    /// Disabled by an admin (and not deleted).
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Deleted (by the identity provider).
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The user's live tokens (revoked ones are gone; expired ones may linger until the
    /// next token is issued: compare `expires_at` with the clock).
    pub fn tokens(&self) -> impl Iterator<Item = &TokenGrant> {
        self.tokens.values()
    }

    /// The identity provider's id for the user, if the provider created it.
    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    /// One live token.
    pub fn token(&self, token_id: &str) -> Option<&TokenGrant> {
        self.tokens.get(token_id)
    }

    fn active(&self) -> Result<(), UserError> {
        self.registered()?;
        if self.disabled || self.deleted {
            return Err(UserError::Disabled);
        }
        Ok(())
    }

    fn current_role(&self, token: &TokenGrant) -> Result<(), UserError> {
        if self.role != Some(token.role) {
            return Err(UserError::RoleChanged);
        }
        Ok(())
    }

    fn revocation(token: &TokenGrant, reason: RevocationReason) -> UserEvent {
        UserEvent::TokenRevoked {
            token_id: token.token_id.clone(),
            revocation_id: token.revocation_id.clone(),
            expires_at: token.expires_at,
            reason,
        }
    }

    /// `first`, then the revocation of every live token.
    fn revoking_all(&self, first: UserEvent, reason: RevocationReason) -> Vec<UserEvent> {
        std::iter::once(first)
            .chain(self.tokens.values().map(|t| Self::revocation(t, reason)))
            .collect()
    }

    fn registered(&self) -> Result<(), UserError> {
        if self.user_id.is_none() {
            return Err(UserError::NotFound);
        }
        Ok(())
    }

    fn changeable(&self) -> Result<(), UserError> {
        self.registered()?;
        if self.deleted {
            return Err(UserError::Deleted);
        }
        Ok(())
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            UserCommand::Register {
                user_id,
                username,
                role,
                tier,
                registration,
            } => {
                if self.user_id.is_some() {
                    return Err(UserError::AlreadyRegistered);
                }
                vec![UserEvent::UserRegistered {
                    user_id,
                    username,
                    role,
                    tier,
                    registration,
                }]
            }
            UserCommand::RecordLogin { token } => {
                self.active()?;
                self.current_role(&token)?;
                vec![UserEvent::LoginSucceeded { token }]
            }
            UserCommand::CreateApiKey { token } => {
                self.active()?;
                self.current_role(&token)?;
                if !token.label.as_deref().is_some_and(valid_label) {
                    return Err(UserError::InvalidLabel);
                }
                let live = self
                    .tokens
                    .values()
                    .filter(|t| t.kind == TokenKind::ApiKey && t.expires_at > token.issued_at)
                    .count();
                if live >= MAX_API_KEYS {
                    return Err(UserError::TooManyApiKeys);
                }
                vec![UserEvent::ApiKeyCreated { token }]
            }
            UserCommand::RevokeToken { token_id } => {
                self.registered()?;
                let token = self.tokens.get(&token_id).ok_or(UserError::TokenNotFound)?;
                vec![Self::revocation(token, RevocationReason::Revoked)]
            }
            UserCommand::RecordLoginFailure { failure } => {
                self.registered()?;
                vec![UserEvent::LoginFailed { failure }]
            }
            UserCommand::LogOut { token_id } => {
                self.registered()?;
                match self.tokens.get(&token_id) {
                    Some(token) => vec![
                        UserEvent::LoggedOut {
                            token_id: token_id.clone(),
                        },
                        Self::revocation(token, RevocationReason::Logout),
                    ],
                    None => vec![],
                }
            }
            UserCommand::ChangeRole { role } => {
                self.changeable()?;
                match self.role {
                    Some(from) if from != role => self.revoking_all(
                        UserEvent::RoleChanged { from, to: role },
                        RevocationReason::RoleChanged,
                    ),
                    _ => vec![],
                }
            }
            UserCommand::ChangeTier { tier } => {
                self.changeable()?;
                match self.tier {
                    Some(from) if from != tier => vec![UserEvent::TierChanged { from, to: tier }],
                    _ => vec![],
                }
            }
            UserCommand::Disable { reason } => {
                self.changeable()?;
                if reason
                    .as_ref()
                    .is_some_and(|r| r.chars().count() > MAX_REASON_LEN)
                {
                    return Err(UserError::ReasonTooLong);
                }
                if self.disabled {
                    return Ok(());
                }
                self.revoking_all(
                    UserEvent::UserDisabled { reason },
                    RevocationReason::UserDisabled,
                )
            }
            UserCommand::Enable => {
                self.changeable()?;
                if !self.disabled {
                    return Ok(());
                }
                vec![UserEvent::UserEnabled]
            }
            UserCommand::Delete => {
                self.registered()?;
                if self.deleted {
                    return Ok(());
                }
                self.revoking_all(UserEvent::UserDeleted, RevocationReason::UserDeleted)
            }
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            UserEvent::UserRegistered {
                user_id,
                role,
                tier,
                registration,
                ..
            } => {
                self.user_id = Some(user_id);
                self.role = Some(role);
                self.tier = Some(tier);
                if let Registration::IdentityProvider { external_id } = registration {
                    self.external_id = Some(external_id);
                }
            }
            UserEvent::RoleChanged { to, .. } => self.role = Some(to),
            UserEvent::TierChanged { to, .. } => self.tier = Some(to),
            UserEvent::UserDisabled { .. } => self.disabled = true,
            UserEvent::UserEnabled => self.disabled = false,
            UserEvent::UserDeleted => self.deleted = true,
            UserEvent::LoginSucceeded { token } | UserEvent::ApiKeyCreated { token } => {
                let now = token.issued_at;
                self.tokens.retain(|_, t| t.expires_at + EXPIRY_GRACE > now);
                self.tokens.insert(token.token_id.clone(), token);
            }
            UserEvent::TokenRevoked { token_id, .. } => {
                self.tokens.remove(&token_id);
            }
            UserEvent::LoginFailed { .. } | UserEvent::LoggedOut { .. } => {}
        }
    }
}
