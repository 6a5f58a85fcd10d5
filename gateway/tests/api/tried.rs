//! The account of a table of requests tried against their expected statuses (the
//! authorization tables of `keys.rs` and `users.rs`).

use super::TestApp;

/// The account of a table of requests tried against their expected statuses: taken
/// before the requests, checked after them.
pub(super) struct Tried {
    changes: i64,
    refusals: i64,
}

impl TestApp {
    /// Starts a table of requests: what the store holds now.
    pub(super) async fn trying(&self) -> Tried {
        Tried {
            changes: self.changes().await,
            refusals: self.refusals().await,
        }
    }
}

impl Tried {
    /// One row's answer: its status, and a problem when it is an error.
    pub(super) fn answered(response: &reqwest::Response, status: u16, row: &str) {
        assert_eq!(response.status().as_u16(), status, "{row}");
        if status >= 400 {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json",
                "{row}"
            );
        }
    }

    /// After the table: nothing stored but one audit entry per 401 and 403 answered.
    pub(super) async fn recorded_only_refusals(
        self,
        app: &TestApp,
        statuses: impl Iterator<Item = u16>,
    ) {
        assert_eq!(
            app.changes().await,
            self.changes,
            "refused requests and reads store nothing"
        );
        let refused = statuses.filter(|s| matches!(s, 401 | 403)).count() as i64;
        assert_eq!(
            app.refusals().await,
            self.refusals + refused,
            "but each 401 and 403 is in the audit trail"
        );
    }
}
