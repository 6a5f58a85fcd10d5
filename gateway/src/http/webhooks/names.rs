//! What the identity webhook reads from a provider's user beyond Aurora's own fields
//! (Clerk's shape): role and tier in `public_metadata`, `banned`, and the name a user
//! without a username gets.

use aurora_domain::user::{Role, Tier};

use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct Data {
    /// The provider's user id.
    pub(super) id: String,
    /// Absent or null for a user without one (Clerk's email sign-ups): Aurora derives one.
    #[serde(default)]
    pub(super) username: Option<String>,
    pub(super) role: Option<Role>,
    pub(super) tier: Option<Tier>,
    pub(super) disabled: Option<bool>,
    /// Clerk: a banned user is disabled, an unbanned one enabled.
    #[serde(default)]
    banned: Option<bool>,
    /// Clerk: `role` and `tier` kept in the user's public metadata.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    public_metadata: Option<serde_json::Value>,
    /// Clerk: the user's addresses; the primary one's local part names a user without a
    /// username.
    #[serde(default)]
    email_addresses: Option<Vec<EmailAddress>>,
    #[serde(default)]
    primary_email_address_id: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

/// One of a Clerk user's email addresses.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct EmailAddress {
    #[serde(default)]
    pub(super) id: Option<String>,
    email_address: String,
}

impl Data {
    /// The role: `role`; else, when the message carries `public_metadata` (Clerk), the
    /// role kept there, and `user` when it keeps none or one Aurora does not know: a role
    /// taken away at the provider is taken away here too.
    pub(super) fn role(&self) -> Option<Role> {
        if self.role.is_some() {
            return self.role;
        }
        self.public_metadata.as_ref()?;
        Some(self.in_metadata("role").unwrap_or(Role::User))
    }

    /// The tier: `tier`, else `public_metadata.tier` if Aurora knows it (none there: the
    /// tier stays as it is; an admin may have set it in Aurora).
    pub(super) fn tier(&self) -> Option<Tier> {
        self.tier.or_else(|| self.in_metadata("tier"))
    }

    /// Disabled: `disabled`; else Clerk's `banned: true` disables. `banned: false`, which
    /// Clerk sends with every change, changes nothing: it must not enable a user an admin
    /// disabled in Aurora.
    pub(super) fn disabled(&self) -> Option<bool> {
        self.disabled.or(self.banned.filter(|banned| *banned))
    }

    fn in_metadata<T: serde::de::DeserializeOwned>(&self, field: &str) -> Option<T> {
        let value = self.public_metadata.as_ref()?.get(field)?;
        match serde_json::from_value(value.clone()) {
            Ok(known) => Some(known),
            Err(_) => {
                tracing::warn!(
                    field,
                    value = %value,
                    "the identity provider's public_metadata holds a value Aurora does not \
                     know; ignored"
                );
                None
            }
        }
    }

    /// What to derive a username from, best first: the primary email's local part, the
    /// name, the id.
    pub(super) fn name_stem(&self) -> String {
        let addresses = self.email_addresses.as_deref().unwrap_or_default();
        let primary = addresses
            .iter()
            .find(|a| a.id.is_some() && a.id == self.primary_email_address_id)
            .or_else(|| addresses.first());
        if let Some(local) = primary.and_then(|a| a.email_address.split('@').next()) {
            if local.chars().any(|c| c.is_ascii_alphanumeric()) {
                return local.to_string();
            }
        }
        let name = [&self.first_name, &self.last_name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(".");
        if name.chars().any(|c| c.is_ascii_alphanumeric()) {
            return name;
        }
        "user".to_string()
    }
}

/// Usernames tried for a user without one: the stem made a valid name, then with the
/// provider id's last characters, then with more of them (deterministic: a retried
/// message derives the same names).
pub(super) fn derived_names(stem: &str, external_id: &str) -> Vec<String> {
    use aurora_domain::user::{MAX_USERNAME_LEN, MIN_USERNAME_LEN};
    let mut base: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .collect();
    base = base
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    let id: String = external_id
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut names = Vec::new();
    let fit = |base: &str, suffix: &str| {
        let room = MAX_USERNAME_LEN.saturating_sub(suffix.len());
        let head: String = base.chars().take(room).collect();
        format!("{head}{suffix}")
    };
    if base.chars().count() >= MIN_USERNAME_LEN {
        names.push(fit(&base, ""));
    }
    if base.is_empty() {
        base = "user".to_string();
    }
    for take in [6, 10, 16] {
        let tail: String = id.chars().skip(id.len().saturating_sub(take)).collect();
        if !tail.is_empty() {
            names.push(fit(&base, &format!("-{tail}")));
        }
    }
    // Past those, a random tail (not deterministic: a retry may pick another free name).
    let random = uuid::Uuid::new_v4().simple().to_string();
    names.push(fit(&base, &format!("-{}", &random[..12])));
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: serde_json::Value) -> Data {
        serde_json::from_value(json).expect("a Clerk-shaped user")
    }

    #[test]
    fn a_clerk_user_without_a_username_is_named_after_its_primary_email() {
        let user = data(serde_json::json!({
            "id": "user_29w83sxmDNGwOuEthce5gg56FcC", "object": "user", "username": null,
            "first_name": "Ada", "last_name": "Lovelace",
            "email_addresses": [
                {"id": "idn_other", "email_address": "old@example.org"},
                {"id": "idn_primary", "email_address": "Ada.Lovelace+news@example.org"}
            ],
            "primary_email_address_id": "idn_primary",
            "public_metadata": {"role": "admin", "tier": "enterprise"},
            "banned": false
        }));
        assert_eq!(user.name_stem(), "Ada.Lovelace+news");
        let names = derived_names(&user.name_stem(), &user.id);
        assert_eq!(names[0], "ada.lovelace-news");
        assert_eq!(
            names[1], "ada.lovelace-news-g56fcc",
            "then with the id's tail"
        );
        assert_eq!(
            names[1..4],
            derived_names(&user.name_stem(), &user.id)[1..4],
            "stable"
        );
        assert!(names
            .iter()
            .all(|n| aurora_domain::user::Username::parse_new(n).is_ok()));
        assert_eq!(user.role(), Some(Role::Admin));
        assert_eq!(user.tier(), Some(Tier::Enterprise));
        assert_eq!(user.disabled(), None, "banned: false changes nothing");
    }

    #[test]
    fn names_come_from_the_name_or_the_id_when_there_is_no_email() {
        let named =
            data(serde_json::json!({"id": "user_1", "first_name": "Émile", "last_name": "Zola"}));
        assert_eq!(derived_names(&named.name_stem(), &named.id)[0], "mile.zola");
        let nameless = data(serde_json::json!({"id": "user_2Xk", "email_addresses": []}));
        assert_eq!(nameless.name_stem(), "user");
        assert_eq!(
            derived_names(&nameless.name_stem(), &nameless.id)[..2],
            ["user", "user-ser2xk"]
        );
        // Too short, or too long for a name: fitted.
        let short = derived_names("a", "user_abcdefghijklmnop");
        assert_eq!(short[0], "a-klmnop");
        let long = derived_names(&"x".repeat(80), "user_abc");
        assert!(long
            .iter()
            .all(|n| n.len() <= aurora_domain::user::MAX_USERNAME_LEN));
    }

    #[test]
    fn unknown_metadata_values_are_ignored_and_banned_disables() {
        let user = data(serde_json::json!({
            "id": "user_3", "username": "grace",
            "public_metadata": {"role": "owner", "tier": 7}, "banned": true
        }));
        assert_eq!(
            (user.role(), user.tier()),
            (Some(Role::User), None),
            "an unknown role is no role: user"
        );
        assert_eq!(user.disabled(), Some(true));
        let unbanned =
            data(serde_json::json!({"id": "user_3", "banned": false, "public_metadata": {}}));
        assert_eq!(unbanned.disabled(), None, "banned: false enables no one");
        assert_eq!(
            unbanned.role(),
            Some(Role::User),
            "a role taken away at the provider"
        );
        let generic = data(serde_json::json!({"id": "user_3", "username": "grace"}));
        assert_eq!(
            (generic.role(), generic.disabled()),
            (None, None),
            "no metadata: unchanged"
        );
        let explicit = data(serde_json::json!({
            "id": "user_3", "username": "grace", "role": "user", "disabled": false,
            "public_metadata": {"role": "admin"}, "banned": true
        }));
        assert_eq!(explicit.role(), Some(Role::User), "Aurora's own fields win");
        assert_eq!(explicit.disabled(), Some(false));
    }
}
