//! The relay and tailing readers: every stored event reaches the stream once, in order,
//! whatever crashes, purges and late commits happen; and, on Postgres only, transactions
//! that commit late, advisory locks and plain NATS subscribers.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_backends;

use super::*;

fn assert_exactly_once_in_order(events: &[CloudEvent], expected: i64) {
    let ids: HashSet<(&str, i64)> = events
        .iter()
        .map(|e| (e.aggregateid.as_str(), e.sequence))
        .collect();
    assert_eq!(ids.len(), events.len(), "no event twice");
    assert_eq!(events.len() as i64, expected, "every stored event once");
    let mut last: HashMap<&str, i64> = HashMap::new();
    for e in events {
        let previous = last.insert(&e.aggregateid, e.sequence).unwrap_or(0);
        assert_eq!(
            e.sequence,
            previous + 1,
            "per-aggregate order of {}",
            e.aggregateid
        );
    }
}

#[apply(both_backends)]
async fn every_stored_event_reaches_the_stream_exactly_once_in_aggregate_order(f: Fixture) {
    write_runs(&f.commands(), 12).await;
    let mut relay = f.relay();
    let published = drain(&mut relay, &f.db).await;
    assert_eq!(published, 18);
    // A second pass finds nothing new.
    assert_eq!(relay.step().await.unwrap(), StepOutcome::Idle);

    let events = f.stream_events().await;
    assert_exactly_once_in_order(&events, f.store_count().await);
    let first = &events[0];
    assert_eq!(first.principal, "tester");
    assert_eq!(first.requestid, "req-0");
    assert_eq!(first.clientip.as_deref(), Some("192.0.2.1"));
    assert_eq!(first.eventname, "RunRequested");
    assert_eq!(first.event_type, "aurora.run.RunRequested.v1");
}

#[apply(both_backends)]
async fn events_committed_while_no_relay_runs_are_published_when_one_starts(f: Fixture) {
    // Commit, and "die" before publishing: no relay runs at all.
    write_runs(&f.commands(), 5).await;
    assert_eq!(f.bus().state().await.unwrap().messages, 0);

    let mut relay = f.relay();
    drain(&mut relay, &f.db).await;
    assert_exactly_once_in_order(&f.stream_events().await, f.store_count().await);
}

#[apply(both_backends)]
async fn a_relay_killed_between_publish_and_checkpoint_publishes_nothing_twice(f: Fixture) {
    write_runs(&f.commands(), 6).await;
    let mut doomed = f.relay();
    doomed.crash_after_next_publish();
    // The fence is the server's oldest running transaction, in any database: another
    // test's open transaction can hold the new events back for a moment (Idle).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match doomed.step().await {
            Err(_) => break,
            Ok(StepOutcome::Idle) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(outcome) => panic!("the injected crash never fired: {outcome:?}"),
        }
    }
    drop(doomed);

    write_runs(&f.commands(), 2).await;
    let mut restarted = f.relay();
    drain(&mut restarted, &f.db).await;
    assert_exactly_once_in_order(&f.stream_events().await, f.store_count().await);
}

#[apply(both_backends)]
async fn a_purged_stream_is_healed_from_the_store(f: Fixture) {
    write_runs(&f.commands(), 6).await;
    let mut relay = f.relay();
    drain(&mut relay, &f.db).await;
    f.purge().await;
    assert_eq!(f.bus().state().await.unwrap().messages, 0);

    let healed = relay.heal().await.unwrap();
    assert_eq!(healed as i64, f.store_count().await);
    assert_exactly_once_in_order(&f.stream_events().await, f.store_count().await);
    assert_eq!(
        relay.heal().await.unwrap(),
        0,
        "a healthy stream needs no healing"
    );
}

/// Found by the chaos harness: a stream deleted (by an operator, or lost with a server's
/// store) was never made again — publishes failed with "no stream found" until a replica
/// restarted, and no event reached a consumer meanwhile. The bus makes it again when it
/// looks for it, and the relay, seeing it short, heals it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_is_made_again_and_healed_from_the_store() {
    let f = Fixture::postgres_nats().await;
    write_runs(&f.commands(), 4).await;
    let mut relay = f.relay();
    drain(&mut relay, &f.db).await;
    let relayed = f.store_count().await;
    let AnyBus::JetStream(bus) = &f.transport else {
        unreachable!("a JetStream fixture")
    };
    bus.context()
        .delete_stream(f.subjects.stream())
        .await
        .unwrap();

    write_runs(&f.commands(), 2).await;
    let healed = relay.heal().await.unwrap();
    assert_eq!(healed as i64, relayed, "everything it had relayed, again");
    drain(&mut relay, &f.db).await;
    assert_exactly_once_in_order(&f.stream_events().await, f.store_count().await);
}

#[apply(both_backends)]
async fn a_stream_that_lost_single_messages_is_healed_without_duplicates(f: Fixture) {
    write_runs(&f.commands(), 6).await;
    let mut relay = f.relay();
    drain(&mut relay, &f.db).await;
    f.delete(2).await;
    f.delete(5).await;

    assert_eq!(relay.heal().await.unwrap(), 2);
    let events = f.stream_events().await;
    let positions: HashSet<i64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions.len(), events.len(), "no event twice");
    assert_eq!(
        events.len() as i64,
        f.store_count().await,
        "every event again"
    );
}

#[apply(both_backends)]
async fn concurrent_appends_are_all_seen_once_by_a_tailing_reader(f: Fixture) {
    let commands = Arc::new(f.commands());
    let written = Arc::new(Notify::new());
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let commands = commands.clone();
            let written = written.clone();
            tokio::spawn(async move {
                for n in 0..15 {
                    let run_id = Uuid::now_v7();
                    let request = RunCommand::RequestRun {
                        run_id,
                        owner: format!("writer-{w}"),
                        spec: spec(),
                    };
                    commands
                        .execute(&run_id.to_string(), request, &metadata(n))
                        .await
                        .unwrap();
                    written.notify_one();
                }
            })
        })
        .collect();

    let mut seen = HashSet::new();
    let mut cursor = Cursor::START;
    while seen.len() < 8 * 15 {
        let page = f.db.read_after(cursor, 7).await.unwrap();
        if page.is_empty() {
            wait_for_more(&written).await;
            continue;
        }
        for event in page {
            assert!(event.cursor > cursor, "the cursor only moves forward");
            cursor = event.cursor;
            assert!(seen.insert(event.cursor.position), "no event twice");
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(f.db.read_after(cursor, 10).await.unwrap().is_empty());
}

/// Waits for a writer's next commit, or briefly, in case the events are held back only by a
/// transaction elsewhere on the cluster (see [`eventually`]).
async fn wait_for_more(committed: &Notify) {
    tokio::select! {
        _ = committed.notified() => {}
        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
    }
}

/// Inserts one event the way postgres-es does, inside `tx`.
async fn insert_raw(tx: &mut sqlx::PgConnection, aggregate_id: &str) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('run', $1, 1, 'RunCancelled', '1', \
         '{\"RunCancelled\":{\"reason\":null}}', '{}')",
    )
    .bind(aggregate_id)
    .execute(tx)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_skips_an_event_whose_transaction_commits_late() {
    let f = Fixture::postgres_nats().await;
    let Database::Postgres(pool) = &f.db else {
        unreachable!()
    };
    // A transaction takes its position first, and stays open.
    let mut late = pool.begin().await.unwrap();
    insert_raw(&mut late, "late").await;
    let late_position: i64 =
        sqlx::query_scalar("SELECT position FROM events WHERE aggregate_id = 'late'")
            .fetch_one(&mut *late)
            .await
            .unwrap();
    // Later transactions take later positions and commit first.
    for n in 0..5 {
        let mut tx = pool.begin().await.unwrap();
        insert_raw(&mut tx, &format!("early-{n}")).await;
        tx.commit().await.unwrap();
    }

    // A position-only reader sees the five and checkpoints past the open one...
    let naive: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM events WHERE position > 0 ORDER BY position")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(naive.len(), 5);
    let naive_checkpoint = *naive.last().unwrap();
    assert!(naive_checkpoint > late_position);
    // ...while the fenced reader holds back everything behind the open transaction.
    assert!(f
        .db
        .read_after(Cursor::START, 100)
        .await
        .unwrap()
        .is_empty());

    late.commit().await.unwrap();

    let missed: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM events WHERE position > $1 ORDER BY position")
            .bind(naive_checkpoint)
            .fetch_all(pool)
            .await
            .unwrap();
    assert!(
        missed.is_empty(),
        "the naive reader has skipped the late event for good"
    );
    eventually("the late event and the five are visible", || async {
        f.db.read_after(Cursor::START, 100).await.unwrap().len() == 6
    })
    .await;
    let fenced = f.db.read_after(Cursor::START, 100).await.unwrap();
    let positions: Vec<i64> = fenced.iter().map(|e| e.cursor.position).collect();
    assert_eq!(fenced.len(), 6);
    assert_eq!(
        positions[0], late_position,
        "the late event comes first: it began first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailing_concurrent_appends_with_transactions_held_open_skips_nothing() {
    let f = Fixture::postgres_nats().await;
    let Database::Postgres(pool) = f.db.clone() else {
        unreachable!()
    };
    let committed = Arc::new(Notify::new());
    let total = 6 * 20;
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let pool = pool.clone();
            let committed = committed.clone();
            tokio::spawn(async move {
                for n in 0..20 {
                    let mut tx = pool.begin().await.unwrap();
                    insert_raw(&mut tx, &format!("w{w}-{n}")).await;
                    // Every third transaction stays open while others commit around it.
                    if n % 3 == 0 {
                        for _ in 0..5 {
                            tokio::task::yield_now().await;
                        }
                        let mut other = pool.begin().await.unwrap();
                        insert_raw(&mut other, &format!("w{w}-{n}-inner")).await;
                        other.commit().await.unwrap();
                        committed.notify_one();
                    }
                    tx.commit().await.unwrap();
                    committed.notify_one();
                }
            })
        })
        .collect();
    let expected = total + 6 * 7;

    let mut seen = HashSet::new();
    let mut cursor = Cursor::START;
    while seen.len() < expected {
        let page = f.db.read_after(cursor, 9).await.unwrap();
        if page.is_empty() {
            wait_for_more(&committed).await;
            continue;
        }
        for event in page {
            assert!(event.cursor > cursor);
            cursor = event.cursor;
            assert!(seen.insert(event.aggregate_id.clone()), "no event twice");
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(seen.len(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_relay_is_active_and_a_standby_takes_over_when_it_dies() {
    let f = Fixture::postgres_nats().await;
    let mut first = f.relay();
    let mut second = f.relay();
    assert!(first.ensure_leadership().await.unwrap());
    assert!(!second.ensure_leadership().await.unwrap());
    write_runs(&f.commands(), 2).await;
    assert_eq!(second.step().await.unwrap(), StepOutcome::Standby);
    assert_eq!(drain(&mut first, &f.db).await, 3);

    drop(first);
    // The lock goes with the connection; the server notices the close at once, but give
    // the standby a bounded number of attempts rather than a fixed wait.
    let mut attempts = 0;
    while !second.ensure_leadership().await.unwrap() {
        attempts += 1;
        assert!(attempts < 1000, "the standby never took over");
        tokio::task::yield_now().await;
    }
    write_runs(&f.commands(), 1).await;
    drain(&mut second, &f.db).await;
    assert_exactly_once_in_order(&f.stream_events().await, f.store_count().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_nats_subscriber_receives_events_on_the_documented_subject() {
    let f = Fixture::postgres_nats().await;
    let client = async_nats::connect(testkit::nats_url()).await.unwrap();
    let mut subscriber = client
        .subscribe(format!("{}.events.run.>", f.subjects.prefix()))
        .await
        .unwrap();
    client.flush().await.unwrap();

    let ids = write_runs(&f.commands(), 1).await;
    drain(&mut f.relay(), &f.db).await;

    let message = tokio::time::timeout(WAIT, subscriber.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        message.subject.as_str(),
        format!("{}.events.run.{}.RunRequested", f.subjects.prefix(), ids[0])
    );
    let event: CloudEvent = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(event.specversion, "1.0");
    assert_eq!(event.id, format!("run:{}:1", ids[0]));
    assert_eq!(event.principal, "tester");
    let headers = message.headers.unwrap();
    assert_eq!(
        headers.get("Nats-Msg-Id").unwrap().as_str(),
        format!("run:{}:1", ids[0])
    );
    // The stream is file-backed with a duplicate window.
    let js = jetstream::new(client);
    let mut stream = js.get_stream(f.subjects.stream()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.storage, jetstream::stream::StorageType::File);
}
