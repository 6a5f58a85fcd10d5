//! The subject scheme: `<prefix>.events.<aggregate_type>.<aggregate_id>.<EventType>`.
//!
//! The prefix (default `aurora`) lets several deployments, or several test runs, share one
//! NATS server: each prefix has its own stream, `<PREFIX>_EVENTS`.

/// Subject and stream names for one deployment prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new("aurora")
    }
}

impl Subjects {
    /// Names under `prefix`, which must be a single subject token (`[A-Za-z0-9_-]+`).
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        assert!(
            is_token(&prefix),
            "NATS prefix must be one token of [A-Za-z0-9_-]: {prefix:?}"
        );
        Self { prefix }
    }

    /// The deployment prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The JetStream stream holding every event: `<PREFIX>_EVENTS`.
    pub fn stream(&self) -> String {
        format!("{}_EVENTS", self.stream_stem())
    }

    /// The append-only stream of the audit chain's signed heads: `<PREFIX>_AUDIT_HEADS`.
    pub fn audit_heads_stream(&self) -> String {
        format!("{}_AUDIT_HEADS", self.stream_stem())
    }

    /// The one subject of [`Subjects::audit_heads_stream`]: `<prefix>.audit.heads`.
    pub fn audit_heads(&self) -> String {
        format!("{}.audit.heads", self.prefix)
    }

    fn stream_stem(&self) -> String {
        self.prefix.to_uppercase().replace('-', "_")
    }

    /// Wildcard matching every event subject.
    pub fn all_events(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// Wildcard matching every event of one aggregate type.
    pub fn aggregate_events(&self, aggregate_type: &str) -> String {
        format!("{}.events.{aggregate_type}.>", self.prefix)
    }

    /// Wildcard matching one event type of every aggregate of a type:
    /// `<prefix>.events.<aggregate_type>.*.<event_type>`.
    pub fn events_named(&self, aggregate_type: &str, event_type: &str) -> String {
        format!("{}.events.{aggregate_type}.*.{event_type}", self.prefix)
    }

    /// The plain (non-stream) subject replicas share rate-limit consumption on.
    pub fn rate_limit_consumption(&self) -> String {
        format!("{}.ratelimit.consumed", self.prefix)
    }

    /// The plain (non-stream) subject live progress of run `run_id` is published on.
    pub fn run_progress(&self, run_id: &str) -> String {
        format!("{}.progress.run.{}", self.prefix, sanitize(run_id))
    }

    /// The plain subject the run feed republishes a run event on, with the owner in the
    /// subject so that a subscriber can follow all of one user's runs:
    /// `<prefix>.runs.<owner>.<run_id>.<EventType>`. A `.` in the owner (usernames may
    /// have one) is written `~`, which no username has: `john.doe` and `john_doe` stay apart.
    pub fn run_feed(&self, owner: &str, run_id: &str, event_type: &str) -> String {
        format!(
            "{}.runs.{}.{}.{event_type}",
            self.prefix,
            sanitize(&owner.replace('.', "~")),
            sanitize(run_id)
        )
    }

    /// Every run event of every owner on the run feed (`<prefix>.runs.>`).
    pub fn all_run_feeds(&self) -> String {
        format!("{}.runs.>", self.prefix)
    }

    /// Every run event of `owner`'s runs on the run feed (`<prefix>.runs.<owner>.>`).
    pub fn user_run_feed(&self, owner: &str) -> String {
        format!(
            "{}.runs.{}.>",
            self.prefix,
            sanitize(&owner.replace('.', "~"))
        )
    }

    /// Every event of one run on the run feed (`<prefix>.runs.<owner>.<run_id>.>`).
    pub fn one_run_feed(&self, owner: &str, run_id: &str) -> String {
        format!(
            "{}.runs.{}.{}.>",
            self.prefix,
            sanitize(&owner.replace('.', "~")),
            sanitize(run_id)
        )
    }

    /// The subject of one event.
    pub fn event(&self, aggregate_type: &str, aggregate_id: &str, event_type: &str) -> String {
        format!(
            "{}.events.{aggregate_type}.{}.{event_type}",
            self.prefix,
            sanitize(aggregate_id)
        )
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Aggregate ids are UUIDs, but a stray `.`, `*`, `>` or space must never split or widen
/// a subject.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

/// Does `subject` match the NATS wildcard `filter` (`*` one token, `>` the rest)?
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in filter.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (t, Some(s)) if t == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_grant_covers_its_owners_runs_and_no_one_elses() {
        let s = Subjects::default();
        let event = |owner, run| s.run_feed(owner, run, "RunSucceeded");
        assert!(matches(&s.user_run_feed("alice"), &event("alice", "r1")));
        assert!(!matches(&s.user_run_feed("alice"), &event("bob", "r1")));
        assert!(!matches(
            &s.user_run_feed("john_doe"),
            &event("john.doe", "r1")
        ));
        assert!(matches(
            &s.user_run_feed("john.doe"),
            &event("john.doe", "r1")
        ));
        assert!(matches(
            &s.one_run_feed("alice", "r1"),
            &event("alice", "r1")
        ));
        assert!(!matches(
            &s.one_run_feed("alice", "r1"),
            &event("alice", "r2")
        ));
        assert!(matches(&s.all_run_feeds(), &event("bob", "r2")));
        assert!(!matches(
            &s.all_run_feeds(),
            &s.event("run", "r2", "RunSucceeded")
        ));
        // A name cannot widen its grant with wildcards.
        assert_eq!(s.user_run_feed("*"), "aurora.runs._.>");
        assert_eq!(s.user_run_feed(">"), "aurora.runs._.>");
    }

    #[test]
    fn subjects_follow_the_documented_scheme() {
        let s = Subjects::default();
        assert_eq!(s.stream(), "AURORA_EVENTS");
        assert_eq!(
            s.event("run", "0190-ab", "RunRequested"),
            "aurora.events.run.0190-ab.RunRequested"
        );
        assert_eq!(s.event("run", "a.b>*", "X"), "aurora.events.run.a_b__.X");
        assert_ne!(
            s.run_feed("john.doe", "r", "RunSucceeded"),
            s.run_feed("john_doe", "r", "RunSucceeded")
        );
        assert_eq!(
            s.run_feed("john.doe", "r", "RunSucceeded"),
            "aurora.runs.john~doe.r.RunSucceeded"
        );
    }

    #[test]
    fn wildcards_match_like_nats() {
        assert!(matches(
            "aurora.events.>",
            "aurora.events.run.1.RunRequested"
        ));
        assert!(matches(
            "aurora.events.run.*.RunRequested",
            "aurora.events.run.1.RunRequested"
        ));
        assert!(!matches(
            "aurora.events.run.>",
            "aurora.events.user.1.Registered"
        ));
        assert!(!matches("aurora.events.>", "aurora.events"));
        assert!(!matches(
            "aurora.events.run.*",
            "aurora.events.run.1.RunRequested"
        ));
        assert!(matches("a.b", "a.b"));
    }
}
