//! The audit log, rebuilds without downtime, and replaying history with today's code.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_backends;

use std::sync::Arc;

use aurora_projections::audit::{AuditFilter, AuditLog, Tampering, GENESIS};
use aurora_projections::replay;
use aurora_projections::testkit;
use aurora_projections::{on_pool, Database, RunsProjection, UsersProjection};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{eventually, store_count, write_runs, Fixture, WAIT};

/// Catches the log up until it holds an entry for every stored event (a transaction held
/// open by a test in another database may delay the store's fence, never hide events).
async fn caught_up(log: &AuditLog, db: &Database) {
    let total = store_count(db).await;
    eventually("the audit log covers every stored event", || async {
        log.catch_up().await.unwrap();
        log.head().await.unwrap().map(|h| h.seq) == Some(total)
    })
    .await;
}

async fn execute(db: &Database, sql: &str) {
    on_pool!(db, |pool| sqlx::query(sql).execute(pool).await.map(drop)).unwrap();
}

#[apply(both_backends)]
async fn every_event_is_an_audit_entry_in_a_chain_that_finds_edits_removals_and_swaps(f: Fixture) {
    let ids = write_runs(&f.commands(), 6).await;
    let log = AuditLog::new(f.db.clone());
    caught_up(&log, &f.db).await;
    let intact = log.verify().await.unwrap();
    assert_eq!(intact.finding, None);
    assert_eq!(intact.entries as i64, store_count(&f.db).await);
    let head = log.head().await.unwrap().unwrap();
    assert_eq!(intact.head.as_ref(), Some(&head));

    // Each entry says who, from where, in which request, did what to which resource.
    let first = log
        .query(&AuditFilter::default(), 0, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (first.seq, first.prev_hash.as_str(), first.actor.as_str()),
        (1, GENESIS, "tester")
    );
    assert_eq!(first.action, "RunRequested");
    assert_eq!(
        (first.resource_type.as_str(), first.resource_id.as_str()),
        ("run", ids[0].as_str())
    );
    assert_eq!(first.client_ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(first.request_id, "req-0");
    assert_eq!(first.details["owner"], "tester");
    let cancelled = AuditFilter {
        action: Some("RunCancelled".into()),
        ..Default::default()
    };
    assert_eq!(log.query(&cancelled, 0, 100).await.unwrap().len(), 3);

    // Edited with SQL: found, at that entry.
    execute(
        &f.db,
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
    )
    .await;
    let finding = log.verify().await.unwrap().finding.unwrap();
    assert_eq!((finding.kind, finding.seq), (Tampering::Changed, 3));

    // A rebuild from the store restores the log exactly.
    log.rebuild(|_| {}).await.unwrap();
    let restored = log.verify().await.unwrap();
    assert_eq!(
        (restored.finding, restored.head),
        (None, Some(head.clone()))
    );

    // Deleted: found, where the gap is.
    execute(&f.db, "DELETE FROM audit_log WHERE seq = 5").await;
    let finding = log.verify().await.unwrap().finding.unwrap();
    assert_eq!((finding.kind, finding.seq), (Tampering::Removed, 6));
    log.rebuild(|_| {}).await.unwrap();

    // Two entries swapped (their numbers exchanged): found, at the first out of place.
    for sql in [
        "UPDATE audit_log SET seq = -7 WHERE seq = 7",
        "UPDATE audit_log SET seq = 7 WHERE seq = 8",
        "UPDATE audit_log SET seq = 8 WHERE seq = -7",
    ] {
        execute(&f.db, sql).await;
    }
    let finding = log.verify().await.unwrap().finding.unwrap();
    assert_eq!((finding.kind, finding.seq), (Tampering::Reordered, 7));

    // Deleted and renumbered to close the gap: the chain's links still find it.
    log.rebuild(|_| {}).await.unwrap();
    execute(&f.db, "DELETE FROM audit_log WHERE seq = 4").await;
    execute(&f.db, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 4").await;
    let finding = log.verify().await.unwrap().finding.unwrap();
    assert_eq!((finding.kind, finding.seq), (Tampering::Removed, 4));

    // The last entries deleted: the chain that is left is intact, but it no longer ends
    // where the checkpoint recorded; and the writer refuses to build on it.
    log.rebuild(|_| {}).await.unwrap();
    let last = head.seq;
    execute(
        &f.db,
        &format!("DELETE FROM audit_log WHERE seq > {}", last - 2),
    )
    .await;
    let finding = log.verify().await.unwrap().finding.unwrap();
    assert_eq!((finding.kind, finding.seq), (Tampering::Removed, last - 1));
    write_runs(&f.commands(), 1).await;
    assert!(
        log.catch_up().await.is_err(),
        "no entry is chained to a cut log"
    );
    log.rebuild(|_| {}).await.unwrap();
    caught_up(&log, &f.db).await;
    assert_eq!(log.verify().await.unwrap().finding, None);
}

#[apply(both_backends)]
async fn a_rebuild_under_concurrent_writes_loses_nothing_and_keeps_the_live_chain(f: Fixture) {
    let log = Arc::new(AuditLog::new(f.db.clone()));
    write_runs(&f.commands(), 20).await;
    caught_up(&log, &f.db).await;
    let live_before = log.head().await.unwrap().unwrap();

    // A writer keeps committing (and the live log keeps catching up) during the rebuild.
    let stop = CancellationToken::new();
    let writer = tokio::spawn({
        let (commands, log, stop) = (f.commands(), log.clone(), stop.clone());
        async move {
            let mut rounds = 0;
            while !stop.is_cancelled() || rounds < 3 {
                write_runs(&commands, 2).await;
                log.catch_up().await.unwrap();
                rounds += 1;
            }
            rounds
        }
    });
    let mut reports = 0;
    let rebuilt = log.rebuild(|_| reports += 1).await.unwrap();
    stop.cancel();
    let rounds = writer.await.unwrap();
    assert!(rounds >= 3 && reports >= 1);
    assert!(rebuilt.events >= live_before.seq as u64);

    caught_up(&log, &f.db).await;
    let verdict = log.verify().await.unwrap();
    assert_eq!(verdict.finding, None);
    assert_eq!(
        verdict.entries as i64,
        store_count(&f.db).await,
        "one entry per event"
    );
    // The rebuilt chain is the live one: same hash where the live head was, and the same
    // head as a replay of the store computes.
    let at_live_head = log
        .query(&AuditFilter::default(), live_before.seq - 1, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(at_live_head.hash, live_before.hash);
    assert_eq!(verdict.head, log.replayed_head().await.unwrap());
}

#[apply(both_backends)]
async fn a_runs_rebuild_under_concurrent_writes_ends_equal_to_the_live_view(f: Fixture) {
    let projection = Arc::new(RunsProjection::new(f.db.clone()));
    let shutdown = CancellationToken::new();
    let supervisor = f.supervise(vec![projection.clone()]).await;
    let committed = Arc::new(Notify::new());
    let relay = tokio::spawn(f.relay().run(committed.clone(), shutdown.clone()));
    write_runs(&f.commands(), 10).await;
    committed.notify_one();

    let stop = CancellationToken::new();
    let writer = tokio::spawn({
        let (commands, committed, stop) = (f.commands(), committed.clone(), stop.clone());
        async move {
            let mut ids = Vec::new();
            while !stop.is_cancelled() || ids.len() < 6 {
                ids.extend(write_runs(&commands, 2).await);
                committed.notify_one();
            }
            ids
        }
    });
    projection.rebuild(7, |_| {}).await.unwrap();
    stop.cancel();
    let ids = writer.await.unwrap();
    // Every run written during the rebuild reaches the swapped-in view, at its last event
    // (every other run is cancelled: version 2).
    for (n, id) in ids.iter().enumerate() {
        let version = if n % 2 == 0 { 2 } else { 1 };
        assert!(
            projection
                .wait_for(id, version, WAIT)
                .await
                .unwrap()
                .is_some(),
            "run {id} is in the rebuilt view"
        );
    }
    shutdown.cancel();
    supervisor.stop(None);
    relay.await.unwrap();
    let live = projection.digest().await.unwrap();
    projection.rebuild(1000, |_| {}).await.unwrap();
    assert_eq!(projection.digest().await.unwrap(), live);
    assert_eq!(
        projection.list(None, 1000, None).await.unwrap().len(),
        10 + ids.len()
    );
}

const OLD_EVENTS: &str = include_str!("../fixtures/events-0.1.ndjson");

#[apply(both_backends)]
async fn events_written_by_an_older_version_replay_with_todays_code(f: Fixture) {
    let old = testkit::parse_fixture(OLD_EVENTS).unwrap();
    testkit::insert_raw(&f.db, &old).await.unwrap();
    write_runs(&f.commands(), 2).await;

    let report = replay::verify(&f.db, |_| {}).await.unwrap();
    assert_eq!(report.failures, vec![]);
    assert_eq!(report.events as i64, store_count(&f.db).await);
    assert_eq!(report.aggregates, 3 + 2);

    // The old user reads as today's: v1 login upcast, later tier change applied.
    let alice = f.db.read_aggregate_after("user", "alice", 0).await.unwrap();
    let view = UsersProjection::fold("alice", &alice).unwrap().unwrap();
    assert_eq!((view.role.as_str(), view.tier.as_str()), ("user", "pro"));
    let run_id = "0190f5c6-2000-7000-8000-000000000001";
    let run = f.db.read_aggregate_after("run", run_id, 0).await.unwrap();
    let view = RunsProjection::fold(&run).unwrap().unwrap();
    assert_eq!(view.status, "cancelled");
    assert_eq!(view.steps[1]["resolution"], "720p");

    // Their audit entries say what they can: no role was recorded then.
    let log = AuditLog::new(f.db.clone());
    caught_up(&log, &f.db).await;
    let login = AuditFilter {
        action: Some("LoginSucceeded".into()),
        ..Default::default()
    };
    let entry = log.query(&login, 0, 10).await.unwrap().remove(0);
    assert_eq!(
        (entry.role.as_str(), entry.version.as_str()),
        ("unknown", "1")
    );
    assert_eq!(entry.token_id.as_deref(), Some("tok-old-1"));

    // An event no code can read is reported with its aggregate and sequence.
    let mut broken = old[3].clone();
    broken.sequence = 5;
    broken.payload = serde_json::json!({"TierChanged": {"from": "free", "to": "platinum"}});
    testkit::insert_raw(&f.db, &[broken]).await.unwrap();
    let report = replay::verify(&f.db, |_| {}).await.unwrap();
    assert_eq!(report.failures.len(), 1);
    let failure = &report.failures[0];
    assert_eq!(
        (failure.aggregate_id.as_str(), failure.sequence),
        ("alice", 5)
    );
    assert!(
        failure.error.contains("TierChanged v1"),
        "{}",
        failure.error
    );
}
