//! Old shapes of user events, read as the current ones. Stored events are never rewritten:
//! the store and the bus keep what was written, and readers upcast on load.
//!
//! - `LoginSucceeded` v1 was `{"token_id": …}`; v2 carries the whole [`super::TokenGrant`].
//!   A v1 session is read as a grant that expired at the epoch: sessions lived an hour, so
//!   every v1 session has long expired, and the aggregate forgets it as soon as another
//!   token is issued.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::{json, Value};

/// Upcasts `payload` of a user event named `event_type` at `event_version` to the
/// current shape (unchanged if it is current).
pub fn upcast(event_type: &str, event_version: &str, payload: Value) -> Value {
    match (event_type, event_version) {
        ("LoginSucceeded", "1") => {
            let token_id = payload["LoginSucceeded"]["token_id"].clone();
            json!({"LoginSucceeded": {"token": {
                "token_id": token_id,
                "kind": "session",
                "revocation_id": "",
                "issued_at": "1970-01-01T00:00:00Z",
                "expires_at": "1970-01-01T00:00:00Z",
                "role": "viewer",
            }}})
        }
        _ => payload,
    }
}

/// The upcasters the event store applies when it loads a user.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(LoginSucceededV1)]
}

struct LoginSucceededV1;

impl EventUpcaster for LoginSucceededV1 {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == "LoginSucceeded" && event_version == "1"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        event.payload = upcast(&event.event_type, &event.event_version, event.payload);
        event.event_version = "2".to_string();
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::{TokenKind, UserEvent};

    #[test]
    fn a_v1_login_reads_as_an_expired_session() {
        let v1 = json!({"LoginSucceeded": {"token_id": "t1"}});
        let event: UserEvent = serde_json::from_value(upcast("LoginSucceeded", "1", v1)).unwrap();
        let UserEvent::LoginSucceeded { token } = event else {
            panic!("{event:?}")
        };
        assert_eq!(token.token_id, "t1");
        assert_eq!(token.kind, TokenKind::Session);
        assert!(token.expires_at < chrono::Utc::now());
    }
}
