//! Projection chaos on SQLite + the in-process bus.
//!
//! The projections supervisor feeds the audit log, the runs view and the users view from
//! the relay's stream while commands are written. A seeded schedule makes the projection
//! actors panic — before applying a batch, or after applying it and before answering, so
//! that the batch is given back and delivered again to every projection (redeliveries of
//! events some of them already applied). When the writing stops and the projections have
//! settled, every one must equal a rebuild from the store (digests), the audit log must
//! hold each event exactly once in a chain that verifies, and the supervisor must have
//! restarted the projections exactly once per panic.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aurora_domain::run::{Input, RunCommand, RunSpec, Step};
use aurora_domain::user::{Registration, Role, Tier, UserCommand, Username};
use aurora_domain::EventMetadata;
use aurora_nats::memory::MemoryBus;
use aurora_nats::Subjects;
use aurora_projections::read::supervisor::{self, SupervisorSettings};
use aurora_projections::read::{Envelope, Interest, Projection, Scope};
use aurora_projections::{
    testkit, AuditLog, Cursor, Relay, RelayConfig, RelayMetrics, RunCommands, RunsProjection,
    StoreError, UserCommands, UsersProjection,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{ok, Violation};
use crate::rng::Rng;

/// What a simulation did and found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events stored.
    pub stored: usize,
    /// Panics injected into projection actors.
    pub panics: usize,
    /// Of them, panics after a batch was applied (its redelivery follows).
    pub after_apply: usize,
    /// Restarts the supervisor made.
    pub restarts: u64,
}

/// A projection that panics when its seeded schedule says so.
struct Faulty {
    inner: Arc<dyn Projection>,
    rng: Mutex<Rng>,
    /// Chance of a panic per batch, in percent (half before applying, half after).
    percent: u64,
    panics: AtomicUsize,
    after_apply: AtomicUsize,
    /// No more faults (the writing has stopped; the projections settle).
    quiet: AtomicBool,
}

#[async_trait]
impl Projection for Faulty {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn interest(&self) -> Interest {
        self.inner.interest()
    }

    fn scope(&self) -> Scope {
        self.inner.scope()
    }

    async fn catch_up(&self) -> Result<(), StoreError> {
        self.inner.catch_up().await
    }

    async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        let roll = match self.quiet.load(Ordering::SeqCst) {
            true => u64::MAX,
            false => self
                .rng
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .below(200),
        };
        if roll < self.percent {
            self.panics.fetch_add(1, Ordering::SeqCst);
            panic!("injected: {} panics before applying", self.name());
        }
        self.inner.apply(batch).await?;
        if roll < 2 * self.percent {
            // Applied, and never answered: the batch is given back and delivered again.
            self.panics.fetch_add(1, Ordering::SeqCst);
            self.after_apply.fetch_add(1, Ordering::SeqCst);
            panic!("injected: {} panics after applying", self.name());
        }
        Ok(())
    }
}

/// Plays `commands` commands of seed `seed` with a panic in `percent` % of the batches.
pub async fn simulate(seed: u64, commands: usize, percent: u64) -> Result<Report, Violation> {
    let mut rng = Rng::new(seed);
    let (db, _dir) = ok(testkit::fresh_sqlite().await, "opening SQLite")?;
    let subjects = Subjects::new("projsim");
    let bus = Arc::new(MemoryBus::new(subjects.clone()));
    let committed = Arc::new(Notify::new());
    let runs_commands = RunCommands::new(&db, committed.clone());
    let users_commands = UserCommands::new(&db, committed.clone());
    let audit = Arc::new(AuditLog::new(db.clone()));
    let runs = Arc::new(RunsProjection::new(db.clone()));
    let users = Arc::new(UsersProjection::new(db.clone()));
    let faulty: Vec<Arc<Faulty>> = [
        audit.clone() as Arc<dyn Projection>,
        runs.clone(),
        users.clone(),
    ]
    .into_iter()
    .enumerate()
    .map(|(n, inner)| {
        Arc::new(Faulty {
            inner,
            rng: Mutex::new(Rng::new(seed.wrapping_mul(31).wrapping_add(n as u64))),
            percent,
            panics: AtomicUsize::new(0),
            after_apply: AtomicUsize::new(0),
            quiet: AtomicBool::new(false),
        })
    })
    .collect();
    let shutdown = CancellationToken::new();
    let relay = Relay::new(
        db.clone(),
        bus.clone(),
        RelayConfig::for_prefix(subjects.prefix()),
        RelayMetrics::default(),
    );
    let relay = tokio::spawn(relay.run(committed.clone(), shutdown.clone()));
    let settings = SupervisorSettings {
        // Every panic is restarted: the budget is not what this simulation looks at.
        budget: (1_000_000, Duration::from_secs(60)),
        cool_down: Duration::from_millis(10),
    };
    let (supervisor, statuses) = ok(
        supervisor::start(
            faulty
                .iter()
                .map(|f| f.clone() as Arc<dyn Projection>)
                .collect(),
            bus,
            settings,
            Default::default(),
        )
        .await,
        "starting the supervisor",
    )?;

    let mut run_ids = Vec::new();
    for tick in 0..commands {
        let metadata = EventMetadata::new("simulation", format!("tick-{tick}"));
        match rng.below(10) {
            0 => {
                let name = format!("user{tick}");
                let command = UserCommand::Register {
                    user_id: uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, rng.next_u64()),
                    username: ok(Username::parse(&name), "username")?,
                    role: Role::User,
                    tier: Tier::Free,
                    registration: Registration::SelfService,
                };
                ok(
                    users_commands.create(&name, command, &metadata).await,
                    "register",
                )?;
            }
            1..=3 if !run_ids.is_empty() => {
                let id: uuid::Uuid = run_ids[rng.below(run_ids.len() as u64) as usize];
                // A second cancel is refused by the aggregate: that is fine here.
                let _ = runs_commands
                    .execute(
                        &id.to_string(),
                        RunCommand::CancelRun { reason: None },
                        &metadata,
                    )
                    .await;
            }
            _ => {
                let id = uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, rng.next_u64());
                run_ids.push(id);
                let command = RunCommand::RequestRun {
                    run_id: id,
                    owner: "simulation".into(),
                    spec: RunSpec {
                        input: Some(Input::MediaId(id)),
                        steps: vec![Step::Probe {}],
                    },
                };
                ok(
                    runs_commands
                        .create(&id.to_string(), command, &metadata)
                        .await,
                    "request",
                )?;
            }
        }
    }

    // Settle: no more faults; every projection has applied every event and runs, and the
    // supervisor has seen every panic.
    for f in &faulty {
        f.quiet.store(true, Ordering::SeqCst);
    }
    let stored = ok(
        db.count_through(Cursor {
            xid: i64::MAX,
            position: i64::MAX,
        })
        .await,
        "count",
    )? as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut changes = statuses.changes();
    loop {
        changes.borrow_and_update();
        let lags = ok(aurora_projections::lag::lags(&db).await, "lags")?;
        let running = faulty.iter().all(|f| statuses.running(f.name()));
        // Every panic seen by the supervisor (a panic a moment ago may not be yet).
        let panics: usize = faulty.iter().map(|f| f.panics.load(Ordering::SeqCst)).sum();
        let restarts: u64 = statuses.report().values().map(|r| r.restarts).sum();
        if running && lags.iter().all(|lag| lag.lag == 0) && restarts >= panics as u64 {
            break;
        }
        check!(
            Instant::now() < deadline,
            "seed {seed}: the projections did not settle ({panics} panics, {restarts} \
             restarts): {lags:?}, {:?}",
            statuses.report()
        );
        tokio::select! {
            _ = changes.changed() => {}
            // Another look now and then: a restart changes nothing it would wake on.
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    supervisor.stop(None);
    shutdown.cancel();
    let _ = relay.await;

    let panics: usize = faulty.iter().map(|f| f.panics.load(Ordering::SeqCst)).sum();
    let after_apply = faulty
        .iter()
        .map(|f| f.after_apply.load(Ordering::SeqCst))
        .sum();
    let restarts: u64 = statuses.report().values().map(|r| r.restarts).sum();
    check!(
        restarts == panics as u64,
        "seed {seed}: {panics} panics but {restarts} restarts"
    );

    // Nothing applied twice, nothing missing: one audit entry per event, in a chain that
    // verifies and equals a replay of the store.
    let verification = ok(audit.verify().await, "verify")?;
    check!(
        verification.finding.is_none(),
        "seed {seed}: the audit chain has a finding: {:?}",
        verification.finding
    );
    let head = ok(audit.head().await, "head")?;
    check!(
        head.as_ref().map(|h| h.seq) == Some(stored as i64),
        "seed {seed}: {stored} events stored, the audit log ends at {head:?}"
    );
    check!(
        head == ok(audit.replayed_head().await, "replayed head")?,
        "seed {seed}: the live audit head differs from a replay"
    );
    // Every view equals its rebuild.
    let live = ok(runs.digest().await, "digest")?;
    let live_rows = ok(runs.list(None, 100_000, None).await, "runs")?;
    ok(runs.rebuild(64, |_| {}).await, "rebuild")?;
    let rebuilt_rows = ok(runs.list(None, 100_000, None).await, "runs")?;
    let differing: Vec<_> = live_rows
        .iter()
        .zip(&rebuilt_rows)
        .filter(|(a, b)| a != b)
        .take(2)
        .collect();
    check!(
        live == ok(runs.digest().await, "digest")?,
        "seed {seed}: the live runs view differs from a rebuild ({} rows live, {} rebuilt; \
         first differences: {differing:?})",
        live_rows.len(),
        rebuilt_rows.len()
    );
    let live = ok(users.list(None, 10_000).await, "users")?;
    ok(users.rebuild().await, "users rebuild")?;
    check!(
        live == ok(users.list(None, 10_000).await, "users")?,
        "seed {seed}: the live users view differs from a rebuild"
    );
    Ok(Report {
        stored,
        panics,
        after_apply,
        restarts,
    })
}
