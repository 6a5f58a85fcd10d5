//! Value objects of the `User` aggregate, parsed at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shortest accepted username.
pub const MIN_USERNAME_LEN: usize = 3;
/// Longest accepted username.
pub const MAX_USERNAME_LEN: usize = 32;

/// A username: 3–32 characters of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or
/// digit, compared case-insensitively (stored lowercased).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Fewer than [`MIN_USERNAME_LEN`] or more than [`MAX_USERNAME_LEN`] characters.
    #[error("a username has {MIN_USERNAME_LEN} to {MAX_USERNAME_LEN} characters")]
    Length,
    /// A character outside `a-z 0-9 . _ -`.
    #[error("a username may only contain letters a-z, digits, '.', '_' and '-'")]
    Character,
    /// Starts with `.`, `_` or `-`.
    #[error("a username starts with a letter or a digit")]
    Start,
    /// The name of one of Aurora's own principals.
    #[error("this name is reserved for Aurora's own principals")]
    Reserved,
}

impl Username {
    /// Parses and normalises `raw`.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let count = raw.chars().count();
        if !(MIN_USERNAME_LEN..=MAX_USERNAME_LEN).contains(&count) {
            return Err(UsernameError::Length);
        }
        let name = raw.to_ascii_lowercase();
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        {
            return Err(UsernameError::Character);
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(UsernameError::Start);
        }
        Ok(Self(name))
    }

    /// Parses a name for a *new* user (registration, an identity provider's sync, the
    /// bootstrap admin): as [`Username::parse`], and not one of
    /// [`crate::metadata::RESERVED_PRINCIPALS`]. Names already stored stay readable.
    pub fn parse_new(raw: &str) -> Result<Self, UsernameError> {
        let name = Self::parse(raw)?;
        if crate::metadata::RESERVED_PRINCIPALS.contains(&name.as_str()) {
            return Err(UsernameError::Reserved);
        }
        Ok(name)
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = UsernameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> Self {
        value.0
    }
}

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
        )]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in the API, tokens and read models.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} '{other}' (expected one of: {})",
                        stringify!($name).to_lowercase(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// What a user may do: viewers read, users act on their own resources, admins on all.
    Role {
        /// Everything, on every user's resources.
        Admin = "admin",
        /// Their own resources.
        User = "user",
        /// Read only.
        Viewer = "viewer",
    }
);

named_enum!(
    /// What a user pays for; sets rate limits and quotas.
    Tier {
        /// The default.
        Free = "free",
        /// Paid.
        Pro = "pro",
        /// Contracted.
        Enterprise = "enterprise",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse("Alice.B-2").unwrap().as_str(), "alice.b-2");
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"a".repeat(33)), Err(UsernameError::Length));
        assert_eq!(
            Username::parse("x'; DROP TABLE users;--"),
            Err(UsernameError::Character)
        );
        assert_eq!(Username::parse("../etc"), Err(UsernameError::Character));
        assert_eq!(Username::parse("_admin"), Err(UsernameError::Start));
        assert_eq!(Username::parse("ünïcode"), Err(UsernameError::Character));
    }

    #[test]
    fn aurora_s_own_principals_cannot_be_new_usernames() {
        for name in [
            "anonymous",
            "System",
            "rate-limiter",
            "IDENTITY-WEBHOOK",
            "aurora",
        ] {
            assert_eq!(
                Username::parse_new(name),
                Err(UsernameError::Reserved),
                "{name}"
            );
            // Stored names stay readable (an event of an earlier version replays).
            assert!(Username::parse(name).is_ok(), "{name}");
        }
        assert!(Username::parse_new("anonymous2").is_ok());
    }

    #[test]
    fn roles_and_tiers_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), *role);
        }
        for tier in Tier::ALL {
            assert_eq!(tier.as_str().parse::<Tier>().unwrap(), *tier);
        }
        assert!("root"
            .parse::<Role>()
            .unwrap_err()
            .contains("admin, user, viewer"));
    }
}
