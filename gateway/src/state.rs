//! What every handler shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use aurora_nats::AnyBus as Bus;
use aurora_projections::{Database, RunCommands, RunsProjection, UserCommands, UsersProjection};

use aurora_domain::user::{UserCommand, UserError, UserEvent};
use aurora_domain::EventMetadata;
use cqrs_es::AggregateError;

use crate::auth::tokens::Tokens;
use crate::config::Config;
use crate::metrics::Metrics;

/// Users, their passwords (in the database) and their tokens.
pub struct Identity {
    /// User commands. Use [`Identity::execute`] for anything that may revoke tokens.
    pub users: UserCommands,
    /// Minting, verifying and authorizing tokens.
    pub tokens: Tokens,
}

impl Identity {
    /// Executes `command` on user `username` and applies the revocations it recorded to
    /// this replica's revocation set before returning (other replicas learn them from the
    /// stream): a token revoked here is refused here by the next request.
    pub async fn execute(
        &self,
        username: &str,
        command: UserCommand,
        metadata: &EventMetadata,
    ) -> Result<Vec<UserEvent>, AggregateError<UserError>> {
        let events = self.users.execute(username, command, metadata).await?;
        self.tokens.revocations().apply(&events);
        Ok(events)
    }
}

/// Shared by all handlers.
pub struct AppState {
    /// Settings.
    pub config: Config,
    /// Event store and read models.
    pub db: Database,
    /// The bus.
    pub bus: Bus,
    /// Run commands.
    pub run_commands: RunCommands,
    /// Users and their tokens.
    pub identity: Identity,
    /// The runs read model.
    pub runs: Arc<RunsProjection>,
    /// The users read model.
    pub users: Arc<UsersProjection>,
    /// Metrics.
    pub metrics: Metrics,
    /// Rate limits, unless they are off.
    pub limits: Option<crate::limits::Limits>,
    /// Process start.
    pub started: Instant,
    draining: AtomicBool,
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        config: Config,
        db: Database,
        bus: Bus,
        run_commands: RunCommands,
        identity: Identity,
        views: (Arc<RunsProjection>, Arc<UsersProjection>),
        metrics: Metrics,
    ) -> Self {
        let (runs, users) = views;
        Self {
            config,
            db,
            bus,
            run_commands,
            identity,
            runs,
            users,
            metrics,
            limits: None,
            started: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    /// With rate limits.
    pub fn with_limits(mut self, limits: Option<crate::limits::Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// Marks the process as draining: `/ready` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Is the process draining?
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
