//! Given/when/then tests for every `User` command.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

type UserTest = TestFramework<User>;

fn user_id() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0007)
}

fn alice() -> Username {
    Username::parse("alice").unwrap()
}

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        user_id: user_id(),
        username: alice(),
        role: Role::User,
        tier: Tier::Free,
        registration: Registration::SelfService,
    }
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

/// A token issued at minute `issued`, live for `ttl` minutes.
fn grant(id: &str, kind: TokenKind, issued: i64, ttl: i64) -> TokenGrant {
    TokenGrant {
        token_id: id.into(),
        kind,
        label: (kind == TokenKind::ApiKey).then(|| format!("key {id}")),
        revocation_id: format!("rev-{id}"),
        issued_at: at(issued),
        expires_at: at(issued + ttl),
        role: Role::User,
    }
}

fn session(id: &str) -> TokenGrant {
    grant(id, TokenKind::Session, 0, 60)
}

fn revoked(token: &TokenGrant, reason: RevocationReason) -> UserEvent {
    UserEvent::TokenRevoked {
        token_id: token.token_id.clone(),
        revocation_id: token.revocation_id.clone(),
        expires_at: token.expires_at,
        reason,
    }
}

fn register() -> UserCommand {
    UserCommand::Register {
        user_id: user_id(),
        username: alice(),
        role: Role::User,
        tier: Tier::Free,
        registration: Registration::SelfService,
    }
}

#[test]
fn registering_a_free_username_records_the_user() {
    UserTest::with(())
        .given_no_previous_events()
        .when(register())
        .then_expect_events(vec![registered()]);
}

#[test]
fn registering_a_taken_username_is_refused() {
    UserTest::with(())
        .given(vec![registered()])
        .when(register())
        .then_expect_error(UserError::AlreadyRegistered);
}

#[test]
fn a_login_is_recorded_with_its_token() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::RecordLogin {
            token: session("t1"),
        })
        .then_expect_events(vec![UserEvent::LoginSucceeded {
            token: session("t1"),
        }]);
}

#[test]
fn a_token_minted_for_a_role_the_user_no_longer_has_is_not_recorded() {
    let mut stale = session("t1");
    stale.role = Role::Admin;
    UserTest::with(())
        .given(vec![
            registered(),
            UserEvent::RoleChanged {
                from: Role::User,
                to: Role::Admin,
            },
            UserEvent::RoleChanged {
                from: Role::Admin,
                to: Role::User,
            },
        ])
        .when(UserCommand::RecordLogin {
            token: stale.clone(),
        })
        .then_expect_error(UserError::RoleChanged);
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::CreateApiKey {
            token: TokenGrant {
                kind: TokenKind::ApiKey,
                label: Some("k".into()),
                ..stale
            },
        })
        .then_expect_error(UserError::RoleChanged);
}

#[test]
fn a_disabled_user_cannot_log_in() {
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDisabled { reason: None }])
        .when(UserCommand::RecordLogin {
            token: session("t1"),
        })
        .then_expect_error(UserError::Disabled);
}

#[test]
fn a_deleted_user_cannot_log_in() {
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDeleted])
        .when(UserCommand::RecordLogin {
            token: session("t1"),
        })
        .then_expect_error(UserError::Disabled);
}

#[test]
fn a_failed_login_is_recorded() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::RecordLoginFailure {
            failure: LoginFailure::WrongPassword,
        })
        .then_expect_events(vec![UserEvent::LoginFailed {
            failure: LoginFailure::WrongPassword,
        }]);
}

#[test]
fn commands_for_an_unknown_user_are_refused() {
    for command in [
        UserCommand::RecordLogin {
            token: session("t"),
        },
        UserCommand::CreateApiKey {
            token: grant("k", TokenKind::ApiKey, 0, 60),
        },
        UserCommand::RevokeToken {
            token_id: "t".into(),
        },
        UserCommand::RecordLoginFailure {
            failure: LoginFailure::WrongPassword,
        },
        UserCommand::LogOut {
            token_id: "t".into(),
        },
        UserCommand::ChangeRole { role: Role::Admin },
        UserCommand::ChangeTier { tier: Tier::Pro },
        UserCommand::Disable { reason: None },
        UserCommand::Enable,
        UserCommand::Delete,
    ] {
        UserTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(UserError::NotFound);
    }
}

#[test]
fn logging_out_ends_the_session_and_revokes_its_token() {
    let t1 = session("t1");
    UserTest::with(())
        .given(vec![
            registered(),
            UserEvent::LoginSucceeded { token: t1.clone() },
        ])
        .when(UserCommand::LogOut {
            token_id: "t1".into(),
        })
        .then_expect_events(vec![
            UserEvent::LoggedOut {
                token_id: "t1".into(),
            },
            revoked(&t1, RevocationReason::Logout),
        ]);
}

#[test]
fn logging_out_a_token_that_is_not_live_changes_nothing() {
    let t1 = session("t1");
    UserTest::with(())
        .given(vec![
            registered(),
            UserEvent::LoginSucceeded { token: t1.clone() },
            revoked(&t1, RevocationReason::Revoked),
        ])
        .when(UserCommand::LogOut {
            token_id: "t1".into(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn an_api_key_is_recorded_with_its_label() {
    let key = grant("k1", TokenKind::ApiKey, 0, 60 * 24 * 90);
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::CreateApiKey { token: key.clone() })
        .then_expect_events(vec![UserEvent::ApiKeyCreated { token: key }]);
}

#[test]
fn an_api_key_needs_a_sane_label() {
    for label in [
        None,
        Some(String::new()),
        Some("   ".into()),
        Some("a\nb".into()),
        Some("x".repeat(MAX_LABEL_LEN + 1)),
    ] {
        let mut key = grant("k1", TokenKind::ApiKey, 0, 60);
        key.label = label;
        UserTest::with(())
            .given(vec![registered()])
            .when(UserCommand::CreateApiKey { token: key })
            .then_expect_error(UserError::InvalidLabel);
    }
}

#[test]
fn a_disabled_user_gets_no_api_key() {
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDisabled { reason: None }])
        .when(UserCommand::CreateApiKey {
            token: grant("k1", TokenKind::ApiKey, 0, 60),
        })
        .then_expect_error(UserError::Disabled);
}

#[test]
fn live_api_keys_are_capped_and_expired_ones_do_not_count() {
    let mut history = vec![registered()];
    history.extend((0..MAX_API_KEYS).map(|i| UserEvent::ApiKeyCreated {
        token: grant(&format!("k{i}"), TokenKind::ApiKey, 0, 60),
    }));
    UserTest::with(())
        .given(history.clone())
        .when(UserCommand::CreateApiKey {
            token: grant("one-more", TokenKind::ApiKey, 1, 60),
        })
        .then_expect_error(UserError::TooManyApiKeys);
    // An hour later the first keys have expired.
    let later = grant("one-more", TokenKind::ApiKey, 61, 60);
    UserTest::with(())
        .given(history)
        .when(UserCommand::CreateApiKey {
            token: later.clone(),
        })
        .then_expect_events(vec![UserEvent::ApiKeyCreated { token: later }]);
}

#[test]
fn revoking_a_live_token_records_its_revocation_id() {
    let key = grant("k1", TokenKind::ApiKey, 0, 600);
    UserTest::with(())
        .given(vec![
            registered(),
            UserEvent::ApiKeyCreated { token: key.clone() },
        ])
        .when(UserCommand::RevokeToken {
            token_id: "k1".into(),
        })
        .then_expect_events(vec![revoked(&key, RevocationReason::Revoked)]);
}

#[test]
fn revoking_a_token_twice_or_one_never_issued_is_refused() {
    let key = grant("k1", TokenKind::ApiKey, 0, 600);
    UserTest::with(())
        .given(vec![
            registered(),
            UserEvent::ApiKeyCreated { token: key.clone() },
            revoked(&key, RevocationReason::Revoked),
        ])
        .when(UserCommand::RevokeToken {
            token_id: "k1".into(),
        })
        .then_expect_error(UserError::TokenNotFound);
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::RevokeToken {
            token_id: "someone-elses".into(),
        })
        .then_expect_error(UserError::TokenNotFound);
}

#[test]
fn disabling_revokes_every_live_token_and_forgets_expired_ones() {
    let old = grant("old", TokenKind::Session, 0, 60);
    let s1 = grant("s1", TokenKind::Session, 120, 60);
    let k1 = grant("k1", TokenKind::ApiKey, 121, 6000);
    UserTest::with(())
        .given(vec![
            registered(),
            UserEvent::LoginSucceeded { token: old },
            UserEvent::LoginSucceeded { token: s1.clone() },
            UserEvent::ApiKeyCreated { token: k1.clone() },
        ])
        .when(UserCommand::Disable { reason: None })
        .then_expect_events(vec![
            UserEvent::UserDisabled { reason: None },
            revoked(&k1, RevocationReason::UserDisabled),
            revoked(&s1, RevocationReason::UserDisabled),
        ]);
}

#[test]
fn deleting_and_changing_role_revoke_every_live_token() {
    let s1 = session("s1");
    let history = || {
        vec![
            registered(),
            UserEvent::LoginSucceeded { token: s1.clone() },
        ]
    };
    UserTest::with(())
        .given(history())
        .when(UserCommand::Delete)
        .then_expect_events(vec![
            UserEvent::UserDeleted,
            revoked(&s1, RevocationReason::UserDeleted),
        ]);
    UserTest::with(())
        .given(history())
        .when(UserCommand::ChangeRole { role: Role::Viewer })
        .then_expect_events(vec![
            UserEvent::RoleChanged {
                from: Role::User,
                to: Role::Viewer,
            },
            revoked(&s1, RevocationReason::RoleChanged),
        ]);
    // The tier is not a privilege: tokens survive a tier change.
    UserTest::with(())
        .given(history())
        .when(UserCommand::ChangeTier { tier: Tier::Pro })
        .then_expect_events(vec![UserEvent::TierChanged {
            from: Tier::Free,
            to: Tier::Pro,
        }]);
}

#[test]
fn changing_the_role_records_before_and_after() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangeRole { role: Role::Admin })
        .then_expect_events(vec![UserEvent::RoleChanged {
            from: Role::User,
            to: Role::Admin,
        }]);
}

#[test]
fn setting_the_role_it_has_changes_nothing() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangeRole { role: Role::User })
        .then_expect_events(vec![]);
}

#[test]
fn changing_the_tier_records_before_and_after() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangeTier { tier: Tier::Pro })
        .then_expect_events(vec![UserEvent::TierChanged {
            from: Tier::Free,
            to: Tier::Pro,
        }]);
}

#[test]
fn setting_the_tier_it_has_changes_nothing() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangeTier { tier: Tier::Free })
        .then_expect_events(vec![]);
}

#[test]
fn disabling_and_enabling_are_recorded_once() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Disable {
            reason: Some("abuse".into()),
        })
        .then_expect_events(vec![UserEvent::UserDisabled {
            reason: Some("abuse".into()),
        }]);
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDisabled { reason: None }])
        .when(UserCommand::Disable { reason: None })
        .then_expect_events(vec![]);
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDisabled { reason: None }])
        .when(UserCommand::Enable)
        .then_expect_events(vec![UserEvent::UserEnabled]);
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Enable)
        .then_expect_events(vec![]);
}

#[test]
fn an_over_long_disable_reason_is_refused() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Disable {
            reason: Some("x".repeat(crate::run::MAX_REASON_LEN + 1)),
        })
        .then_expect_error(UserError::ReasonTooLong);
}

#[test]
fn a_deleted_user_cannot_be_changed_and_deleting_twice_changes_nothing() {
    let deleted = || vec![registered(), UserEvent::UserDeleted];
    for command in [
        UserCommand::ChangeRole { role: Role::Admin },
        UserCommand::ChangeTier { tier: Tier::Pro },
        UserCommand::Disable { reason: None },
        UserCommand::Enable,
    ] {
        UserTest::with(())
            .given(deleted())
            .when(command)
            .then_expect_error(UserError::Deleted);
    }
    UserTest::with(())
        .given(deleted())
        .when(UserCommand::Delete)
        .then_expect_events(vec![]);
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::Delete)
        .then_expect_events(vec![UserEvent::UserDeleted]);
}

#[test]
fn no_user_event_can_carry_a_password_or_a_token() {
    for event in [
        registered(),
        UserEvent::LoginSucceeded {
            token: session("t1"),
        },
        UserEvent::ApiKeyCreated {
            token: grant("k1", TokenKind::ApiKey, 0, 60),
        },
    ] {
        let json = serde_json::to_string(&event).unwrap().to_lowercase();
        assert!(!json.contains("password"), "{json}");
        assert!(
            !json.contains("\"token\":\"e"),
            "a serialized Biscuit? {json}"
        );
    }
}
