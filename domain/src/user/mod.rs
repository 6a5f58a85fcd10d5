//! The `User` aggregate: someone who can hold tokens, with a role and a tier.
//!
//! The aggregate's id is the normalised username, so the event store's primary key makes
//! usernames unique: of any number of simultaneous registrations of one name, exactly one
//! appends the first event and the others collide. Passwords never enter an event: the
//! gateway keeps argon2id hashes in a credentials table that is never relayed.

mod aggregate;
mod commands;
mod events;
#[cfg(test)]
mod tests;
mod tokens;
mod upcasters;
mod values;

pub use aggregate::{User, UserError, EXPIRY_GRACE};
pub use commands::UserCommand;
pub use events::{LoginFailure, Registration, UserEvent};
pub use tokens::{
    valid_label, RevocationReason, TokenGrant, TokenKind, MAX_API_KEYS, MAX_LABEL_LEN,
};
pub use upcasters::{upcast, upcasters};
pub use values::{Role, Tier, Username, UsernameError, MAX_USERNAME_LEN, MIN_USERNAME_LEN};
