//! Commands the `User` aggregate accepts.

use uuid::Uuid;

use super::{LoginFailure, Registration, Role, Tier, TokenGrant, Username};

/// A request to change a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// Register a new user under a username nobody holds.
    Register {
        /// A stable id, chosen by the caller (the gateway uses UUIDv7).
        user_id: Uuid,
        /// The username, also the aggregate's id.
        username: Username,
        /// Initial role.
        role: Role,
        /// Initial tier.
        tier: Tier,
        /// How the user came to be.
        registration: Registration,
    },
    /// Record a login whose password the gateway verified, and the session token minted
    /// for it; refused for disabled users.
    RecordLogin {
        /// The session token.
        token: TokenGrant,
    },
    /// Record an API key minted for the user; refused for disabled users, for a label that
    /// is empty or too long, and beyond [`super::MAX_API_KEYS`] live keys.
    CreateApiKey {
        /// The key.
        token: TokenGrant,
    },
    /// Revoke one of the user's live tokens.
    RevokeToken {
        /// Its id.
        token_id: String,
    },
    /// Record a login that failed (wrong password, disabled user).
    RecordLoginFailure {
        /// Why.
        failure: LoginFailure,
    },
    /// End a session: its token is revoked. Nothing happens for a token that is not live.
    LogOut {
        /// Id of the session token ended.
        token_id: String,
    },
    /// Set the role, revoking every live token (they state the old role); nothing happens
    /// if it is already the role.
    ChangeRole {
        /// The new role.
        role: Role,
    },
    /// Set the tier; nothing happens if it is already the tier.
    ChangeTier {
        /// The new tier.
        tier: Tier,
    },
    /// Disable the user: no login, every live token revoked. Nothing happens if already
    /// disabled.
    Disable {
        /// Why, as given by the admin.
        reason: Option<String>,
    },
    /// Enable a disabled user. Nothing happens if enabled.
    Enable,
    /// Remove the user (identity provider deleted it): like disabling, for good.
    Delete,
}

impl UserCommand {
    /// The commands that set what is given — role, tier, disabled (with `reason`) — in
    /// that order; nothing for what is not given.
    pub fn changes(
        role: Option<Role>,
        tier: Option<Tier>,
        disabled: Option<bool>,
        reason: Option<String>,
    ) -> Vec<UserCommand> {
        let mut commands = Vec::new();
        if let Some(role) = role {
            commands.push(UserCommand::ChangeRole { role });
        }
        if let Some(tier) = tier {
            commands.push(UserCommand::ChangeTier { tier });
        }
        match disabled {
            Some(true) => commands.push(UserCommand::Disable { reason }),
            Some(false) => commands.push(UserCommand::Enable),
            None => {}
        }
        commands
    }
}
