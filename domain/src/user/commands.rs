//! Commands the `User` aggregate accepts.

use uuid::Uuid;

use super::{LoginFailure, Registration, Role, Tier, Username};

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
    /// Record a login whose password the gateway verified; refused for disabled users.
    RecordLogin {
        /// Id of the session token issued.
        token_id: String,
    },
    /// Record a login that failed (wrong password, disabled user).
    RecordLoginFailure {
        /// Why.
        failure: LoginFailure,
    },
    /// End a session.
    LogOut {
        /// Id of the session token ended.
        token_id: String,
    },
    /// Set the role; nothing happens if it is already the role.
    ChangeRole {
        /// The new role.
        role: Role,
    },
    /// Set the tier; nothing happens if it is already the tier.
    ChangeTier {
        /// The new tier.
        tier: Tier,
    },
    /// Disable the user: no login, every token refused. Nothing happens if already disabled.
    Disable {
        /// Why, as given by the admin.
        reason: Option<String>,
    },
    /// Enable a disabled user. Nothing happens if enabled.
    Enable,
    /// Remove the user (identity provider deleted it): like disabling, for good.
    Delete,
}
