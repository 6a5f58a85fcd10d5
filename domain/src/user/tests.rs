//! Given/when/then tests for every `User` command.

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
            token_id: "t1".into(),
        })
        .then_expect_events(vec![UserEvent::LoginSucceeded {
            token_id: "t1".into(),
        }]);
}

#[test]
fn a_disabled_user_cannot_log_in() {
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDisabled { reason: None }])
        .when(UserCommand::RecordLogin {
            token_id: "t1".into(),
        })
        .then_expect_error(UserError::Disabled);
}

#[test]
fn a_deleted_user_cannot_log_in() {
    UserTest::with(())
        .given(vec![registered(), UserEvent::UserDeleted])
        .when(UserCommand::RecordLogin {
            token_id: "t1".into(),
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
fn logging_out_records_the_ended_session() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::LogOut {
            token_id: "t1".into(),
        })
        .then_expect_events(vec![UserEvent::LoggedOut {
            token_id: "t1".into(),
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
fn no_user_event_can_carry_a_password() {
    let json = serde_json::to_string(&registered()).unwrap();
    assert!(!json.to_lowercase().contains("password"), "{json}");
}
