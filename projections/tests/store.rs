//! The event store, the relay and the runs projection against real backends:
//! Postgres + NATS JetStream, and the embedded pair SQLite + in-process bus.
//!
//! Each test runs on both pairs unless it is about something only one of them has
//! (transactions that commit late, advisory locks, plain NATS subscribers).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use aurora_domain::run::{Input, RunCommand, RunSpec, Step};
use aurora_domain::EventMetadata;
use aurora_nats::jetstream::JetStreamBus;
use aurora_nats::memory::MemoryBus;
use aurora_nats::{AnyBus, CloudEvent, EventBus, Subjects};
use aurora_projections::read::supervisor::{self, SupervisorMsg};
use aurora_projections::read::{Envelope, Projection};
use aurora_projections::relay::StepOutcome;
use aurora_projections::store::GroupCommit;
use aurora_projections::testkit::{self, TempDir};
use aurora_projections::{
    Cursor, Database, Relay, RelayConfig, RelayMetrics, RunCommands, RunsProjection, StoredEvent,
};
use cqrs_es::persist::{PersistenceError, SerializedEvent};
use futures::StreamExt;
use rstest::rstest;
use rstest_reuse::{self, apply, template};
use tokio::sync::Notify;

use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

/// Both backends: a test marked `#[apply(both_backends)]` with an `f: Fixture` argument
/// runs as `…::case_1_postgres_nats` and `…::case_2_sqlite_memory`. Defined before the
/// modules below, which use it.
#[template]
#[rstest]
#[case::postgres_nats(Fixture::postgres_nats())]
#[case::sqlite_memory(Fixture::sqlite_memory())]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends(
    #[future(awt)]
    #[case]
    f: Fixture,
) {
}

#[path = "store/audit.rs"]
mod audit;

#[path = "store/decode.rs"]
mod decode;

#[path = "store/relay.rs"]
mod relay;

/// Allocations are counted while a dhat profiler runs (see `decode`); otherwise it passes
/// them through.
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

#[test]
fn every_projection_shares_one_decode_of_each_delivered_event() {
    decode::every_projection_shares_one_decode_of_each_delivered_event();
}

/// One backend pair, with the means to make its stream lose messages.
struct Fixture {
    db: Database,
    transport: AnyBus,
    subjects: Subjects,
    _dir: Option<TempDir>,
}

impl Fixture {
    async fn postgres_nats() -> Self {
        // The database and the streams go with the directory.
        let dir = TempDir::new().expect("a temp dir");
        let db = dir.fresh_postgres().await.expect("fresh Postgres database");
        let subjects = Subjects::new(dir.nats_prefix());
        let bus = JetStreamBus::connect(&testkit::nats_url(), subjects.clone(), 1)
            .await
            .expect("NATS JetStream at AURORA_TEST_NATS_URL");
        Self {
            db,
            transport: AnyBus::JetStream(Box::new(bus)),
            subjects,
            _dir: Some(dir),
        }
    }

    async fn sqlite_memory() -> Self {
        let (db, dir) = testkit::fresh_sqlite()
            .await
            .expect("fresh SQLite database");
        let subjects = Subjects::new(testkit::unique_prefix());
        Self {
            db,
            transport: AnyBus::Memory(MemoryBus::new(subjects.clone())),
            subjects,
            _dir: Some(dir),
        }
    }

    fn bus(&self) -> Arc<dyn EventBus> {
        self.transport.shared()
    }

    /// `projections` fed by a projections supervisor of their own.
    async fn supervise(
        &self,
        projections: Vec<Arc<dyn Projection>>,
    ) -> ractor::ActorRef<SupervisorMsg> {
        supervisor::start(
            projections,
            self.bus(),
            Default::default(),
            Default::default(),
        )
        .await
        .expect("the supervisor starts")
        .0
    }

    fn relay(&self) -> Relay {
        Relay::new(
            self.db.clone(),
            self.bus(),
            RelayConfig::for_prefix(self.subjects.prefix()),
            RelayMetrics::default(),
        )
    }

    fn commands(&self) -> RunCommands {
        RunCommands::new(&self.db, Arc::new(Notify::new()))
    }

    /// Empties the stream, as `nats stream purge` would.
    async fn purge(&self) {
        match &self.transport {
            AnyBus::JetStream(bus) => {
                let stream = bus
                    .context()
                    .get_stream(self.subjects.stream())
                    .await
                    .unwrap();
                stream.purge().await.unwrap();
            }
            AnyBus::Memory(bus) => bus.purge(),
        }
    }

    /// Deletes one message by stream sequence, as a lost write would.
    async fn delete(&self, sequence: u64) {
        match &self.transport {
            AnyBus::JetStream(bus) => {
                let stream = bus
                    .context()
                    .get_stream(self.subjects.stream())
                    .await
                    .unwrap();
                assert!(stream.delete_message(sequence).await.unwrap());
            }
            AnyBus::Memory(bus) => assert!(bus.delete(sequence)),
        }
    }

    /// Every event in the stream, in stream order, read by a fresh durable consumer.
    async fn stream_events(&self) -> Vec<CloudEvent> {
        let bus = self.bus();
        let count = bus.state().await.unwrap().messages as usize;
        let durable = format!("check-{}", &Uuid::new_v4().simple().to_string()[..8]);
        let mut deliveries = bus
            .consume(&durable, &self.subjects.all_events())
            .await
            .unwrap();
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            let delivery = tokio::time::timeout(WAIT, deliveries.next())
                .await
                .expect("the stream delivers what it holds")
                .unwrap()
                .unwrap();
            events.push(delivery.event.clone());
            delivery.ack().await.unwrap();
        }
        events
    }

    async fn store_count(&self) -> i64 {
        store_count(&self.db).await
    }
}

fn spec() -> RunSpec {
    RunSpec {
        input: Some(Input::Url("https://media.example/clip.mov".into())),
        steps: vec![Step::Probe {}, Step::Thumbnail { at_seconds: 1.0 }],
    }
}

fn metadata(n: usize) -> EventMetadata {
    let mut m = EventMetadata::new("tester", format!("req-{n}"));
    m.client_ip = Some("192.0.2.1".into());
    m
}

/// Requests `runs` runs and cancels every other one. Returns the run ids.
async fn write_runs(commands: &RunCommands, runs: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..runs {
        let run_id = Uuid::now_v7();
        let id = run_id.to_string();
        let request = RunCommand::RequestRun {
            run_id,
            owner: "tester".into(),
            spec: spec(),
        };
        commands.execute(&id, request, &metadata(n)).await.unwrap();
        if n % 2 == 0 {
            let cancel = RunCommand::CancelRun {
                reason: Some(format!("reason {n}")),
            };
            commands.execute(&id, cancel, &metadata(n)).await.unwrap();
        }
        ids.push(id);
    }
    ids
}

/// Polls until `condition` holds, failing after `WAIT`. Used only where nothing can notify
/// us: the gap-safe fence is cluster-wide, so a transaction held open by a test running in
/// another database delays (never hides) our events, and its end is not observable here.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Steps the relay until it has published every committed event.
async fn drain(relay: &mut Relay, db: &Database) -> usize {
    let mut published = 0;
    loop {
        match relay.step().await.unwrap() {
            StepOutcome::Published(n) => published += n,
            StepOutcome::Idle => {
                let relayed = db.count_through(relay.cursor()).await.unwrap();
                if relayed == store_count(db).await {
                    return published;
                }
                eventually("an open transaction elsewhere ends", || async {
                    !db.read_after(relay.cursor(), 1).await.unwrap().is_empty()
                })
                .await;
            }
            StepOutcome::Standby => panic!("the only relay must be active"),
        }
    }
}

async fn store_count(db: &Database) -> i64 {
    db.count_through(Cursor {
        xid: i64::MAX,
        position: i64::MAX,
    })
    .await
    .unwrap()
}

/// Every stored event as it arrives from the bus, once the fence has let all of them through.
async fn all_events(f: &Fixture) -> Vec<Arc<Envelope>> {
    let total = f.store_count().await as usize;
    eventually("every event is behind the fence", || async {
        f.db.read_after(Cursor::START, 10_000).await.unwrap().len() == total
    })
    .await;
    let page = f.db.read_after(Cursor::START, 10_000).await.unwrap();
    delivered(page)
}

/// `events` as the bus delivers them.
fn delivered(events: Vec<StoredEvent>) -> Vec<Arc<Envelope>> {
    events
        .into_iter()
        .map(|e| Arc::new(Envelope::delivered(e.to_cloud_event())))
        .collect()
}

async fn apply_everything(f: &Fixture, projection: &RunsProjection) {
    projection.apply_batch(&all_events(f).await).await.unwrap();
}

#[apply(both_backends)]
async fn the_live_runs_view_equals_a_rebuild_from_the_store(f: Fixture) {
    let projection = Arc::new(RunsProjection::new(f.db.clone()));
    let supervisor = f.supervise(vec![projection.clone()]).await;

    let ids = write_runs(&f.commands(), 9).await;
    let mut relay = f.relay();
    drain(&mut relay, &f.db).await;
    // The last run was requested and, with 9 runs, the ninth (index 8) cancelled.
    let last = projection
        .wait_for(ids.last().unwrap(), 2, WAIT)
        .await
        .unwrap()
        .expect("the live view catches up");
    assert_eq!(last.status, "cancelled");
    for id in &ids {
        assert!(projection.wait_for(id, 1, WAIT).await.unwrap().is_some());
    }
    supervisor.stop(None);

    let live = projection.digest().await.unwrap();
    all_events(&f).await; // a rebuild replays what is behind the fence
    let replayed = projection.rebuild(4, |_| {}).await.unwrap();
    assert_eq!(replayed as i64, f.store_count().await);
    assert_eq!(
        projection.digest().await.unwrap(),
        live,
        "live view == rebuilt view"
    );
    assert_eq!(projection.list(None, 100, None).await.unwrap().len(), 9);
}

#[apply(both_backends)]
async fn redelivered_and_reordered_events_change_nothing_in_the_runs_view(f: Fixture) {
    write_runs(&f.commands(), 4).await;
    let projection = RunsProjection::new(f.db.clone());
    apply_everything(&f, &projection).await;
    let once = projection.digest().await.unwrap();

    apply_everything(&f, &projection).await;
    assert_eq!(
        projection.digest().await.unwrap(),
        once,
        "redelivery changes nothing"
    );

    // A fresh view that receives each run's second event before its first (the stream
    // lost or reordered them) catches up from the store and ends up identical.
    projection.rebuild(1000, |_| {}).await.unwrap();
    let fresh = RunsProjection::new(f.db.clone());
    for table in ["runs_view", "projection_checkpoints"] {
        aurora_projections::on_pool!(&f.db, |pool| sqlx::query(&format!("DELETE FROM {table}"))
            .execute(pool)
            .await
            .map(drop))
        .unwrap();
    }
    let mut events = delivered(f.db.read_after(Cursor::START, 1000).await.unwrap());
    events.reverse();
    fresh.apply_batch(&events).await.unwrap();
    assert_eq!(
        fresh.digest().await.unwrap(),
        once,
        "order on the bus does not matter"
    );
}

#[apply(both_backends)]
async fn concurrent_commands_on_one_run_store_exactly_one_change(f: Fixture) {
    let commands = Arc::new(f.commands());
    // The second run is requested and not cancelled.
    let id = write_runs(&commands, 2).await.pop().unwrap();
    let cancels: Vec<_> = (0..10)
        .map(|n| {
            let commands = commands.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let cancel = RunCommand::CancelRun {
                    reason: Some(format!("attempt {n}")),
                };
                commands.execute(&id, cancel, &metadata(n)).await
            })
        })
        .collect();
    let mut accepted = 0;
    for cancel in cancels {
        match cancel.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(cqrs_es::AggregateError::AggregateConflict)
            | Err(cqrs_es::AggregateError::UserError(_)) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(accepted, 1, "exactly one cancellation wins");
    let events = f.db.read_aggregate_after("run", &id, 0).await.unwrap();
    assert_eq!(events.len(), 2, "requested + one cancellation");
}

#[apply(both_backends)]
async fn creating_a_run_under_an_id_that_has_history_is_a_conflict_and_changes_nothing(f: Fixture) {
    let commands = f.commands();
    let id = write_runs(&commands, 1).await.pop().unwrap();
    let before = f.db.read_aggregate_after("run", &id, 0).await.unwrap();
    let again = RunCommand::RequestRun {
        run_id: id.parse().unwrap(),
        owner: "intruder".into(),
        spec: spec(),
    };
    let outcome = commands.create(&id, again, &metadata(99)).await;
    assert!(
        matches!(outcome, Err(cqrs_es::AggregateError::AggregateConflict)),
        "got {outcome:?}"
    );
    let after = f.db.read_aggregate_after("run", &id, 0).await.unwrap();
    assert_eq!(before, after);
    // A fresh id is created without a load, and stored.
    let fresh = Uuid::now_v7();
    let request = RunCommand::RequestRun {
        run_id: fresh,
        owner: "tester".into(),
        spec: spec(),
    };
    commands
        .create(&fresh.to_string(), request, &metadata(100))
        .await
        .unwrap();
    let stored =
        f.db.read_aggregate_after("run", &fresh.to_string(), 0)
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].metadata.request_id, "req-100");
}

fn serialized(aggregate_id: &str, sequence: usize) -> SerializedEvent {
    SerializedEvent {
        aggregate_id: aggregate_id.into(),
        sequence,
        aggregate_type: "probe".into(),
        event_type: "Probed".into(),
        event_version: "1".into(),
        payload: serde_json::json!({ "n": sequence }),
        metadata: serde_json::json!({ "principal": "tester" }),
    }
}

async fn wait_until_queued(appends: &GroupCommit, n: usize) {
    eventually(&format!("{n} appends queued"), || async {
        appends.queued() == n
    })
    .await;
}

/// Group commit: appends queued together share one transaction, and each stays
/// all-or-nothing. A single writer is held up by a transaction that owns `blocker`'s first
/// event, so the appends queued meanwhile are taken as one batch.
#[apply(both_backends)]
async fn in_a_shared_commit_a_colliding_append_stores_nothing_and_its_neighbours_everything(
    f: Fixture,
) {
    let appends = GroupCommit::start(&f.db, 1);
    appends.append(&[serialized("x", 2)]).await.unwrap();

    let held = serialized("blocker", 1);
    let release = Arc::new(Notify::new());
    let holder = {
        let db = f.db.clone();
        let release = release.clone();
        let (inserted, holding) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            aurora_projections::on_pool!(&db, |pool| {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) VALUES ($1, $2, 1, 'Probed', '1', '{}', '{}')",
                )
                .bind(&held.aggregate_type)
                .bind(&held.aggregate_id)
                .execute(&mut *tx)
                .await
                .unwrap();
                inserted.send(()).unwrap();
                release.notified().await;
                tx.commit().await.unwrap();
            })
        });
        holding.await.unwrap();
        task
    };
    // The writer takes the blocker's append alone and waits on the open transaction.
    let blocked = tokio::spawn({
        let appends = appends.clone();
        async move { appends.append(&[serialized("blocker", 1)]).await }
    });
    eventually("the writer took the blocker's append", || async {
        appends.taken() == 2
    })
    .await;

    // Queued meanwhile: x collides at sequence 2 only; y and z are free.
    let spawn = |events: Vec<SerializedEvent>| {
        let appends = appends.clone();
        tokio::spawn(async move { appends.append(&events).await })
    };
    let x = spawn(vec![
        serialized("x", 1),
        serialized("x", 2),
        serialized("x", 3),
    ]);
    let y = spawn(vec![serialized("y", 1)]);
    let z = spawn(vec![serialized("z", 1), serialized("z", 2)]);
    wait_until_queued(&appends, 3).await;
    release.notify_one();
    holder.await.unwrap();

    assert!(matches!(
        blocked.await.unwrap(),
        Err(PersistenceError::OptimisticLockError)
    ));
    assert!(matches!(
        x.await.unwrap(),
        Err(PersistenceError::OptimisticLockError)
    ));
    y.await.unwrap().unwrap();
    z.await.unwrap().unwrap();
    let sequences = |id: &'static str| {
        let db = f.db.clone();
        async move {
            db.read_aggregate_after("probe", id, 0)
                .await
                .unwrap()
                .iter()
                .map(|e| (e.sequence, e.payload.clone()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        sequences("x").await,
        vec![(2, serde_json::json!({ "n": 2 }))],
        "nothing of the colliding append was kept"
    );
    assert_eq!(sequences("y").await.len(), 1);
    assert_eq!(sequences("z").await.len(), 2);
    assert_eq!(
        sequences("blocker").await,
        vec![(1, serde_json::json!({}))],
        "the first writer of blocker's event won"
    );
}

/// Migration 0006 moves password hashes from `credentials` (by username) to `passwords`
/// (by user id): users registered before it still have their password after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_registered_before_the_identity_upgrades_keep_their_password_and_history() {
    let dir = TempDir::new().unwrap();
    let url = dir.database_url().await.unwrap();
    let postgres = Database::postgres(&url, 2).await.unwrap();
    let sqlite = Database::sqlite(&dir.path().join("old.db")).await.unwrap();
    for db in [postgres, sqlite] {
        let user_id = "01900000-0000-7000-8000-0000000000aa";
        let payload = format!(
            r#"{{"UserRegistered":{{"user_id":"{user_id}","username":"olduser","role":"user","tier":"free","registration":{{"kind":"self_service"}}}}}}"#
        );
        aurora_projections::on_pool!(&db, |pool| {
            let mut migrator = match db {
                Database::Postgres(_) => sqlx::migrate!("../migrations/postgres"),
                Database::Sqlite(_) => sqlx::migrate!("../migrations/sqlite"),
            };
            migrator.migrations = std::borrow::Cow::Owned(
                migrator
                    .migrations
                    .iter()
                    .filter(|m| m.version <= 5)
                    .cloned()
                    .collect(),
            );
            migrator.run(pool).await.unwrap();
            let cast = if db.backend() == "postgres" {
                "::json"
            } else {
                ""
            };
            // Registered, then a login as version 1 recorded it: the token id only.
            let history = [
                (1_i64, "UserRegistered", payload.as_str()),
                (
                    2,
                    "LoginSucceeded",
                    r#"{"LoginSucceeded":{"token_id":"old-session"}}"#,
                ),
            ];
            for (sequence, event_type, payload) in history {
                sqlx::query(&format!(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) \
                     VALUES ($1, $2, $3, $4, $5, $6{cast}, $7{cast})"
                ))
                .bind("user")
                .bind("olduser")
                .bind(sequence)
                .bind(event_type)
                .bind("1")
                .bind(payload)
                .bind("{}")
                .execute(pool)
                .await
                .unwrap();
            }
            // A user the identity webhook made: migration 0010 maps its provider id.
            sqlx::query(&format!(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) \
                 VALUES ('user', 'synced', 1, 'UserRegistered', '1', $1{cast}, '{{}}'{cast})"
            ))
            .bind(
                r#"{"UserRegistered":{"user_id":"01900000-0000-7000-8000-0000000000bb","username":"synced","role":"user","tier":"free","registration":{"kind":"identity_provider","external_id":"user_2old"}}}"#,
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO credentials (username, password_hash) VALUES ($1, $2)")
                .bind("olduser")
                .bind("$argon2id$v=19$m=19456,t=2,p=1$old")
                .execute(pool)
                .await
                .unwrap();
        });
        db.migrate().await.unwrap();
        assert_eq!(
            db.password_hash(user_id).await.unwrap().as_deref(),
            Some("$argon2id$v=19$m=19456,t=2,p=1$old"),
            "{}",
            db.backend()
        );
        assert_eq!(
            db.identity_user("user_2old").await.unwrap().as_deref(),
            Some("synced"),
            "{}: the provider's earlier users are found by their id",
            db.backend()
        );
        assert_eq!(db.identity_user("olduser").await.unwrap(), None);
        // The old login event still loads (upcast), in the aggregate and in the view.
        let users = aurora_projections::UserCommands::new(&db, Arc::new(Notify::new()));
        let user = users.load("olduser").await.unwrap();
        assert_eq!(
            user.user_id().map(|id| id.to_string()).as_deref(),
            Some(user_id)
        );
        let view = aurora_projections::UsersProjection::new(db.clone());
        let row = view.refresh("olduser").await.unwrap().unwrap();
        assert_eq!(row.version, 2);
        db.close().await;
    }
}
