//! User actors: one per user with runs on this replica, holding the user's run slots, so
//! that a user has at most their tier's number of runs executing at once (free 1, pro 4,
//! enterprise 16 by default). A run actor asks its owner's actor for a slot before its
//! first step. Granted, it runs; denied, it gives its message back to the work queue for a
//! few seconds (so it holds neither a lease nor a replica slot meanwhile, and other users'
//! runs go ahead). The slot returns when the run actor stops or dies.
//!
//! Slots count this replica's runs and the runs other replicas are executing (the runs
//! view's `running`), so the limit holds across replicas up to the view's lag: two replicas
//! granting in the same instant can exceed it by one each, briefly. Only starting needs a
//! slot: a run that has started carries on wherever it is delivered.
//!
//! The [`UserReaper`] cancels every unfinished run of a user who is disabled or deleted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aurora_domain::run::{RunCommand, RunError};
use aurora_domain::user::{Tier, User};
use aurora_domain::EventMetadata;
use aurora_projections::read::{Envelope, Interest, Projection};
use aurora_projections::{RunCommands, RunsProjection, StoreError, UserCommands, UsersProjection};
use cqrs_es::{Aggregate, AggregateError};
use ractor::{Actor, ActorProcessingErr, ActorRef, DerivedActorRef, SupervisionEvent};
use uuid::Uuid;

use crate::supervision::{Counted, EngineMetrics};

/// Runs a user of each tier may have executing at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    /// Free tier.
    pub free: usize,
    /// Pro tier.
    pub pro: usize,
    /// Enterprise tier.
    pub enterprise: usize,
}

impl Default for TierLimits {
    fn default() -> Self {
        Self {
            free: 1,
            pro: 4,
            enterprise: 16,
        }
    }
}

impl TierLimits {
    /// Parses `free=1,pro=4,enterprise=16` (tiers left out keep their default).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut limits = Self::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (tier, n) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: write tier=number"))?;
            let n: usize = n
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{item:?}: the limit must be a whole number above 0"))?;
            match tier.trim() {
                "free" => limits.free = n,
                "pro" => limits.pro = n,
                "enterprise" => limits.enterprise = n,
                other => return Err(format!("{other:?} is not a tier (free, pro, enterprise)")),
            }
        }
        Ok(limits)
    }

    /// The limit of `tier`.
    pub fn of(&self, tier: Tier) -> usize {
        match tier {
            Tier::Free => self.free,
            Tier::Pro => self.pro,
            Tier::Enterprise => self.enterprise,
        }
    }
}

/// A user actor's answer to a run asking for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The run may start.
    Granted,
    /// The owner has no free slot: the run goes back for later.
    Denied,
    /// The owner was disabled or deleted: the run is cancelled, not started.
    OwnerInactive,
}

/// Messages of the users supervisor (it routes to, and supervises, the user actors).
pub enum UsersMsg {
    /// Run `run` of `owner` (actor `actor`) wants a slot: a [`Slot`] answer follows.
    Acquire {
        /// The run's owner.
        owner: String,
        /// The run.
        run: Uuid,
        /// Its actor.
        actor: DerivedActorRef<Slot>,
    },
    /// The run's actor stopped: its slot is free.
    Release {
        /// The run's owner.
        owner: String,
        /// The run.
        run: Uuid,
    },
}

/// What the user actors need.
#[derive(Clone)]
pub struct UserDeps {
    /// Users (for the tier).
    pub users: Arc<UserCommands>,
    /// The runs view (runs executing elsewhere).
    pub runs_view: Arc<RunsProjection>,
    /// Limits per tier.
    pub limits: TierLimits,
    /// Metrics.
    pub metrics: EngineMetrics,
}

/// Supervises one [`UserActor`] per user with runs here.
pub struct UsersSupervisor {
    pub(crate) deps: UserDeps,
}

/// The supervisor's state.
#[derive(Default)]
pub struct UsersState {
    actors: HashMap<String, ActorRef<UserMsg>>,
}

impl UsersSupervisor {
    async fn actor_of(
        &self,
        me: &ActorRef<UsersMsg>,
        state: &mut UsersState,
        owner: &str,
    ) -> Result<ActorRef<UserMsg>, ActorProcessingErr> {
        if let Some(actor) = state.actors.get(owner) {
            return Ok(actor.clone());
        }
        let actor = UserActor {
            owner: owner.to_string(),
            deps: self.deps.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, actor, (), me.get_cell()).await?;
        state.actors.insert(owner.to_string(), actor.clone());
        Ok(actor)
    }
}

impl Actor for UsersSupervisor {
    type Msg = UsersMsg;
    type State = UsersState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(UsersState::default())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            UsersMsg::Acquire { owner, run, actor } => {
                let user = self.actor_of(&me, state, &owner).await?;
                let _ = user.cast(UserMsg::Acquire { run, actor });
            }
            UsersMsg::Release { owner, run } => {
                if let Some(user) = state.actors.get(&owner) {
                    let _ = user.cast(UserMsg::Release { run });
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A user actor that stops or dies is forgotten; the next request starts a fresh
        // one, which counts the runs executing elsewhere from the view.
        if let SupervisionEvent::ActorTerminated(cell, _, _)
        | SupervisionEvent::ActorFailed(cell, _) = &event
        {
            if matches!(event, SupervisionEvent::ActorFailed(..)) {
                self.deps.metrics.restarted("user");
            }
            state.actors.retain(|_, a| a.get_id() != cell.get_id());
        }
        Ok(())
    }
}

/// Messages of a user actor.
pub enum UserMsg {
    /// A run wants a slot.
    Acquire {
        /// The run.
        run: Uuid,
        /// Its actor, told the [`Slot`] answer.
        actor: DerivedActorRef<Slot>,
    },
    /// A run's slot is free.
    Release {
        /// The run.
        run: Uuid,
    },
}

/// One user's run slots on this replica.
struct UserActor {
    owner: String,
    deps: UserDeps,
}

/// Its state: the runs holding a slot here.
struct UserState {
    active: HashSet<Uuid>,
}

impl UserActor {
    /// The user's limit, or `None` if the user was disabled or deleted (their runs are
    /// not started: the reaper may not have seen them yet).
    async fn limit(&self) -> Option<usize> {
        let tier = match self.deps.users.load(&self.owner).await {
            Ok(user) if user.is_disabled() || user.is_deleted() => return None,
            Ok(user) => User::tier(&user).unwrap_or(Tier::Free),
            Err(error) => {
                tracing::warn!(owner = %self.owner, %error, "cannot load the user; using the free tier");
                Tier::Free
            }
        };
        Some(self.deps.limits.of(tier))
    }

    /// Runs of the user executing on other replicas (running in the view, not held here,
    /// not the one asking).
    async fn elsewhere(&self, state: &UserState, asking: Uuid) -> usize {
        match self.deps.runs_view.unfinished_of(&self.owner, 1000).await {
            Ok(runs) => runs
                .iter()
                .filter(|(id, status)| {
                    status == "running"
                        && Uuid::parse_str(id)
                            .is_ok_and(|id| id != asking && !state.active.contains(&id))
                })
                .count(),
            Err(error) => {
                tracing::warn!(owner = %self.owner, %error, "cannot count runs elsewhere");
                0
            }
        }
    }
}

impl Actor for UserActor {
    type Msg = UserMsg;
    type State = UserState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(UserState {
            active: HashSet::new(),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            UserMsg::Acquire { run, actor } => {
                let granted = state.active.contains(&run) || {
                    match self.limit().await {
                        Some(limit) => {
                            state.active.len() + self.elsewhere(state, run).await < limit
                        }
                        None => {
                            let _ = actor.send_message(Slot::OwnerInactive);
                            return Ok(());
                        }
                    }
                };
                if granted {
                    state.active.insert(run);
                    let _ = actor.send_message(Slot::Granted);
                } else {
                    let _ = actor.send_message(Slot::Denied);
                }
            }
            UserMsg::Release { run } => {
                state.active.remove(&run);
            }
        }
        if state.active.is_empty() {
            me.stop(None); // idle: nothing to remember
        }
        Ok(())
    }
}

/// The reaper's name as a projection.
pub const REAPER: &str = "run-reaper";

/// The principal of cancellations for disabled users.
pub const REAPER_PRINCIPAL: &str = "actor:user";

/// Cancels every unfinished run of a user who was disabled or deleted.
pub struct UserReaper {
    /// Run commands.
    pub runs: RunCommands,
    /// The runs view (the user's unfinished runs).
    pub runs_view: Arc<RunsProjection>,
    /// User commands (a user's state now: an old event is acted on only if it still holds).
    pub users: UserCommands,
    /// The users view (who is inactive, for a catch-up).
    pub users_view: Arc<UsersProjection>,
}

impl UserReaper {
    /// The runs view is fed beside this projection, at its own pace: it is caught up from
    /// the store before the reaper looks in it, so that a run requested before its owner
    /// was disabled is among their unfinished runs even if the view has not applied it
    /// yet (idempotent: the view's checkpoint is locked and only moves past events applied).
    /// Rare work: only disabled and deleted users bring the reaper here.
    async fn runs_view_current(&self) -> Result<(), StoreError> {
        Projection::catch_up(&*self.runs_view).await
    }

    /// Cancels the unfinished runs of `owner` if the user is, now, disabled or deleted;
    /// `trigger` names what prompted it (the request id of the cancellations).
    async fn reap(
        &self,
        owner: &str,
        trigger: &str,
        traceparent: Option<&String>,
    ) -> Result<(), StoreError> {
        let user = self
            .users
            .load(owner)
            .await
            .map_err(|e| StoreError::Downstream(format!("loading user {owner}: {e}")))?;
        let reason = if user.is_deleted() {
            "the owner was deleted"
        } else if user.is_disabled() {
            "the owner was disabled"
        } else {
            return Ok(()); // enabled again since: nothing to do
        };
        for (run, _) in self.runs_view.unfinished_of(owner, 10_000).await? {
            let mut metadata = EventMetadata::system(REAPER_PRINCIPAL, format!("reap:{trigger}"));
            metadata.traceparent = traceparent.cloned();
            let command = RunCommand::CancelRun {
                reason: Some(reason.into()),
            };
            match self.runs.execute(&run, command, &metadata).await {
                Ok(_) => tracing::info!(%run, %owner, reason, "run cancelled"),
                Err(AggregateError::UserError(
                    RunError::AlreadyFinished(_) | RunError::NotFound,
                )) => {}
                Err(error) => return Err(StoreError::Downstream(error.to_string())),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Projection for UserReaper {
    fn name(&self) -> &'static str {
        REAPER
    }

    fn interest(&self) -> Interest {
        Interest::named(User::TYPE, &["UserDisabled", "UserDeleted"])
    }

    /// Every inactive user's unfinished runs: what it may have missed while it was down.
    async fn catch_up(&self) -> Result<(), StoreError> {
        self.runs_view_current().await?;
        for owner in self.users_view.inactive().await? {
            self.reap(&owner, &format!("catch-up:{owner}"), None)
                .await?;
        }
        Ok(())
    }

    async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        self.runs_view_current().await?;
        for envelope in batch {
            let event = &envelope.event;
            self.reap(
                &event.aggregate_id,
                &envelope.id(),
                event.metadata.traceparent.as_ref(),
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurora_domain::run::{Input, RunSpec, RunStatus, Step};
    use aurora_domain::user::{Registration, Role, UserCommand, Username};
    use aurora_projections::read::envelope;
    use aurora_projections::{testkit, Cursor, Database};
    use tokio::sync::Notify;

    /// A user disabled right after requesting a run, with the runs view not (yet) fed the
    /// request: the reaper still cancels the run (it catches the view up first).
    async fn the_reaper_cancels_a_run_the_runs_view_has_not_applied(db: Database) {
        let committed = Arc::new(Notify::new());
        let users = UserCommands::new(&db, committed.clone());
        let runs = RunCommands::new(&db, committed);
        let admin = EventMetadata::new("admin", "req");
        let register = UserCommand::Register {
            user_id: Uuid::now_v7(),
            username: Username::parse("owner").unwrap(),
            role: Role::User,
            tier: Tier::Free,
            registration: Registration::SelfService,
        };
        users.execute("owner", register, &admin).await.unwrap();
        let run = Uuid::now_v7();
        let request = RunCommand::RequestRun {
            run_id: run,
            owner: "owner".into(),
            spec: RunSpec {
                input: Some(Input::Url("https://media.example/clip.mov".into())),
                steps: vec![Step::Probe {}],
            },
        };
        runs.execute(
            &run.to_string(),
            request,
            &EventMetadata::new("owner", "req"),
        )
        .await
        .unwrap();
        let disable = UserCommand::Disable { reason: None };
        users.execute("owner", disable, &admin).await.unwrap();

        let runs_view = Arc::new(RunsProjection::new(db.clone()));
        let reaper = UserReaper {
            runs,
            runs_view: runs_view.clone(),
            users,
            users_view: Arc::new(UsersProjection::new(db.clone())),
        };
        // The store's reads stop at the cluster-wide gap-safe fence, which a transaction
        // held open by a test in another database may hold back (never hide): look again
        // until it lets the last one (and so every one before it) through.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let disabled = loop {
            let disabled: Vec<_> =
                envelope::from_store(db.read_after(Cursor::START, 100).await.unwrap())
                    .into_iter()
                    .filter(|e| e.event.event_type == "UserDisabled")
                    .collect();
            if !disabled.is_empty() {
                break disabled;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the fence let the events through"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        assert_eq!(disabled.len(), 1);
        assert!(runs_view
            .unfinished_of("owner", 10)
            .await
            .unwrap()
            .is_empty());
        reaper.apply(&disabled).await.unwrap();

        let state = reaper.runs.load(&run.to_string()).await.unwrap();
        assert_eq!(
            state.status(),
            RunStatus::Cancelled,
            "cancelled by the reaper"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reaper_cancels_a_run_the_runs_view_has_not_applied_on_postgres() {
        let dir = testkit::TempDir::new().unwrap();
        let db = dir.fresh_postgres().await.unwrap();
        the_reaper_cancels_a_run_the_runs_view_has_not_applied(db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reaper_cancels_a_run_the_runs_view_has_not_applied_on_sqlite() {
        let (db, _dir) = testkit::fresh_sqlite().await.unwrap();
        the_reaper_cancels_a_run_the_runs_view_has_not_applied(db).await;
    }

    #[test]
    fn tier_limits_parse_and_refuse_nonsense() {
        let limits = TierLimits::parse("free=2, enterprise=32").unwrap();
        assert_eq!((limits.free, limits.pro, limits.enterprise), (2, 4, 32));
        assert!(TierLimits::parse("free=0").is_err());
        assert!(TierLimits::parse("gold=3").is_err());
        assert!(TierLimits::parse("free").is_err());
    }
}
