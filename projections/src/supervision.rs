//! What every supervisor in Aurora shares — the projections supervisor, the engine's root,
//! the run manager, the transcode pool, the rate-limit shards: a restart budget per child
//! (or kind of child), and one way to decide, count and log what becomes of a child that
//! failed. A supervisor keeps its own policy for giving up (fail the run, report the
//! projection stuck, escalate to its own supervisor); the deciding, counting and logging
//! are here, once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `max` restarts within `within`; beyond that a supervisor gives up.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    max: usize,
    within: Duration,
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    /// A budget of `max` restarts per `within`.
    pub fn new(max: usize, within: Duration) -> Self {
        Self {
            max,
            within,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if the budget allows one; `false` means give up.
    pub fn spend(&mut self, now: Instant) -> bool {
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.within)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= self.max {
            return false;
        }
        self.restarts.push_back(now);
        true
    }

    /// Restarts counted in the current window.
    pub fn spent(&self) -> usize {
        self.restarts.len()
    }
}

/// Where a supervisor counts what became of its children (metric families it owns).
pub trait Counted {
    /// A child of `kind` failed and is started again.
    fn restarted(&self, kind: &str);
    /// A child of `kind` failed past its budget: its supervisor gives up on it.
    fn escalated(&self, kind: &str);
}

/// What becomes of a child that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Start it again.
    Restart,
    /// The budget is spent: give up. Says how often it failed, within what, and last why.
    GiveUp(String),
}

/// One child's (or one kind of children's) restarts: decided within a budget, counted
/// and logged the same way by every supervisor.
#[derive(Debug, Clone)]
pub struct Restarts {
    kind: &'static str,
    max: usize,
    within: Duration,
    budget: RestartBudget,
}

impl Restarts {
    /// `max` restarts per `within` of children of `kind` (a label in metrics and logs).
    pub fn new(kind: &'static str, (max, within): (usize, Duration)) -> Self {
        Self {
            kind,
            max,
            within,
            budget: RestartBudget::new(max, within),
        }
    }

    /// A child failed with `error`: restart it, or give up once the budget is spent.
    /// Either way it is counted in `counted` and logged.
    pub fn failed(&mut self, counted: &dyn Counted, error: &dyn std::fmt::Display) -> Verdict {
        self.failed_as(self.kind, counted, error)
    }

    /// [`Restarts::failed`] for a budget several kinds of children share: counted and
    /// logged as `kind`.
    pub fn failed_as(
        &mut self,
        kind: &'static str,
        counted: &dyn Counted,
        error: &dyn std::fmt::Display,
    ) -> Verdict {
        if self.budget.spend(Instant::now()) {
            counted.restarted(kind);
            tracing::warn!(kind, %error, "a supervised actor failed; restarting it");
            return Verdict::Restart;
        }
        counted.escalated(kind);
        let failures = self.budget.spent() + 1;
        tracing::error!(
            kind,
            %error,
            failures,
            within_seconds = self.within.as_secs(),
            "a supervised actor keeps failing: its supervisor gives up"
        );
        Verdict::GiveUp(format!(
            "the {kind} actor failed {failures} times within {:?}; its supervisor gave up (last: {error})",
            self.within
        ))
    }

    /// Starts over with the whole budget (after a rest).
    pub fn reset(&mut self) {
        self.budget = RestartBudget::new(self.max, self.within);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn the_budget_refuses_the_restart_past_its_maximum_and_forgets_old_ones() {
        let mut budget = RestartBudget::new(2, Duration::from_secs(10));
        let start = Instant::now();
        assert!(budget.spend(start));
        assert!(budget.spend(start + Duration::from_secs(1)));
        assert!(!budget.spend(start + Duration::from_secs(2)));
        assert!(budget.spend(start + Duration::from_secs(12)));
    }

    #[derive(Default)]
    struct Tally(Mutex<Vec<String>>);

    impl Counted for Tally {
        fn restarted(&self, kind: &str) {
            self.0.lock().unwrap().push(format!("restarted {kind}"));
        }
        fn escalated(&self, kind: &str) {
            self.0.lock().unwrap().push(format!("escalated {kind}"));
        }
    }

    #[test]
    fn a_child_is_restarted_within_its_budget_then_given_up_on_and_both_are_counted() {
        let tally = Tally::default();
        let mut restarts = Restarts::new("worker", (2, Duration::from_secs(60)));
        assert_eq!(restarts.failed(&tally, &"boom 1"), Verdict::Restart);
        assert_eq!(restarts.failed(&tally, &"boom 2"), Verdict::Restart);
        let Verdict::GiveUp(reason) = restarts.failed(&tally, &"boom 3") else {
            panic!("the third failure within the window is one too many");
        };
        assert!(reason.contains("worker actor failed 3 times"), "{reason}");
        assert!(
            reason.contains("supervisor gave up (last: boom 3)"),
            "{reason}"
        );
        assert_eq!(
            *tally.0.lock().unwrap(),
            ["restarted worker", "restarted worker", "escalated worker"]
        );
        restarts.reset();
        assert_eq!(restarts.failed(&tally, &"boom 4"), Verdict::Restart);
    }
}
