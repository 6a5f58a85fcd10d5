//! The `User` aggregate's state and rules.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Role, Tier, UserCommand, UserEvent};
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
}

/// A user. Holds only what its rules need.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    user_id: Option<Uuid>,
    role: Option<Role>,
    tier: Option<Tier>,
    disabled: bool,
    deleted: bool,
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
        let event = match command {
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
                UserEvent::UserRegistered {
                    user_id,
                    username,
                    role,
                    tier,
                    registration,
                }
            }
            UserCommand::RecordLogin { token_id } => {
                self.registered()?;
                if self.disabled || self.deleted {
                    return Err(UserError::Disabled);
                }
                UserEvent::LoginSucceeded { token_id }
            }
            UserCommand::RecordLoginFailure { failure } => {
                self.registered()?;
                UserEvent::LoginFailed { failure }
            }
            UserCommand::LogOut { token_id } => {
                self.registered()?;
                UserEvent::LoggedOut { token_id }
            }
            UserCommand::ChangeRole { role } => {
                self.changeable()?;
                match self.role {
                    Some(from) if from != role => UserEvent::RoleChanged { from, to: role },
                    _ => return Ok(()),
                }
            }
            UserCommand::ChangeTier { tier } => {
                self.changeable()?;
                match self.tier {
                    Some(from) if from != tier => UserEvent::TierChanged { from, to: tier },
                    _ => return Ok(()),
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
                UserEvent::UserDisabled { reason }
            }
            UserCommand::Enable => {
                self.changeable()?;
                if !self.disabled {
                    return Ok(());
                }
                UserEvent::UserEnabled
            }
            UserCommand::Delete => {
                self.registered()?;
                if self.deleted {
                    return Ok(());
                }
                UserEvent::UserDeleted
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            UserEvent::UserRegistered {
                user_id,
                role,
                tier,
                ..
            } => {
                self.user_id = Some(user_id);
                self.role = Some(role);
                self.tier = Some(tier);
            }
            UserEvent::RoleChanged { to, .. } => self.role = Some(to),
            UserEvent::TierChanged { to, .. } => self.tier = Some(to),
            UserEvent::UserDisabled { .. } => self.disabled = true,
            UserEvent::UserEnabled => self.disabled = false,
            UserEvent::UserDeleted => self.deleted = true,
            UserEvent::LoginSucceeded { .. }
            | UserEvent::LoginFailed { .. }
            | UserEvent::LoggedOut { .. } => {}
        }
    }
}
