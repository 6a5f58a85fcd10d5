//! Seeded chaos against the relay, the runs view and the projections supervisor. Set `AURORA_SIM_SEED` to replay one
//! seed, `AURORA_SIM_SEEDS` to run more.

use aurora_simulations::relay_chaos::simulate;

/// The seed `AURORA_SIM_SEED` names, else seeds 1 to `AURORA_SIM_SEEDS` (`count` unless set).
fn seeds(count: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("AURORA_SIM_SEED") {
        return vec![seed.parse().expect("AURORA_SIM_SEED is a number")];
    }
    let count = std::env::var("AURORA_SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(count);
    (1..=count).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_consumer_chaos_loses_and_duplicates_nothing() {
    let seeds = seeds(24);
    let mut faults = 0;
    for seed in seeds {
        println!("simulating seed {seed}");
        let report = simulate(seed, 400)
            .await
            .unwrap_or_else(|violation| panic!("{violation} (replay: AURORA_SIM_SEED={seed})"));
        assert!(report.stored > 0, "seed {seed} stored nothing: {report:?}");
        faults += report.relay_kills + report.messages_lost + report.consumer_crashes;
    }
    assert!(faults > 0, "the schedule injected no faults at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_survive_panics_and_redeliveries_and_end_equal_to_their_rebuilds() {
    let seeds: Vec<u64> = match std::env::var("AURORA_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("AURORA_SIM_SEED is a number")],
        Err(_) => (1..=12).collect(),
    };
    let (mut panics, mut after_apply) = (0, 0);
    for seed in seeds {
        println!("simulating seed {seed}");
        let report = aurora_simulations::projection_chaos::simulate(seed, 300, 25)
            .await
            .unwrap_or_else(|violation| panic!("{violation} (replay: AURORA_SIM_SEED={seed})"));
        println!("{report:?}");
        assert!(report.stored > 0, "seed {seed} stored nothing");
        panics += report.panics;
        after_apply += report.after_apply;
    }
    assert!(
        panics > 0 && after_apply > 0,
        "the schedule injected too little: {panics} panics, {after_apply} after applying"
    );
}

#[tokio::test]
async fn a_seed_replays_exactly() {
    let first = simulate(42, 200).await.unwrap();
    let second = simulate(42, 200).await.unwrap();
    assert_eq!(first, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_panics_in_their_actors_and_transcode_workers() {
    let seed: u64 = std::env::var("AURORA_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let report = aurora_simulations::run_chaos::simulate(seed, 8)
        .await
        .unwrap_or_else(|violation| panic!("{violation} (replay: AURORA_SIM_SEED={seed})"));
    println!("{report:?}");
    assert_eq!(report.runs, 8);
    assert!(
        report.actor_panics > 0 && report.worker_panics > 0,
        "seed {seed} injected too little: {report:?}"
    );
}

/// The write path by the thousand seeds (`AURORA_SIM_SEEDS`, 2000 by default, of
/// `AURORA_SIM_TICKS` ticks, 60 by default), on every core; prints seeds/s. A failing
/// seed names the command that replays it.
#[test]
fn the_write_path_loses_nothing_acknowledged_over_thousands_of_seeds() {
    use aurora_simulations::write_chaos::{simulate, Report};
    let seeds = seeds(2000);
    let ticks: usize = std::env::var("AURORA_SIM_TICKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(60);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let totals = std::sync::Mutex::new(Report::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                // One current-thread runtime per thread: a seed's rounds are deterministic.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&seed) = seeds.get(n) else { return };
                    let report = runtime.block_on(simulate(seed, ticks)).unwrap_or_else(|v| {
                        panic!(
                            "{v}\nreplay: AURORA_SIM_SEED={seed} cargo nextest run -p \
                             aurora-simulations the_write_path"
                        )
                    });
                    let mut totals = totals.lock().unwrap();
                    totals.stored += report.stored;
                    totals.acknowledged += report.acknowledged;
                    totals.refused += report.refused;
                    totals.unknown += report.unknown;
                    totals.lost_before_commit += report.lost_before_commit;
                    totals.lost_after_commit += report.lost_after_commit;
                    totals.relay_kills += report.relay_kills;
                    totals.messages_lost += report.messages_lost;
                    totals.consumer_crashes += report.consumer_crashes;
                }
            });
        }
    });
    let took = started.elapsed().as_secs_f64();
    let totals = totals.into_inner().unwrap();
    println!(
        "{} seeds in {took:.1} s on {threads} threads: {:.0} seeds/s\n{totals:#?}",
        seeds.len(),
        seeds.len() as f64 / took
    );
    assert!(
        totals.lost_before_commit > 0 && totals.lost_after_commit > 0 && totals.unknown > 0,
        "the seeds injected too few commit failures: {totals:?}"
    );
    assert!(totals.acknowledged > 0 && totals.refused > 0);
}

#[test]
fn a_write_path_seed_replays_exactly() {
    let play = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(aurora_simulations::write_chaos::simulate(7, 200))
            .unwrap()
    };
    let first = play();
    assert!(
        first.lost_before_commit + first.lost_after_commit > 0,
        "{first:?}"
    );
    assert_eq!(first, play());
}

/// The checker does not pass vacuously: against a store that acknowledges commits it lost
/// (what Jepsen found NATS doing without fsync), every seed is caught.
#[test]
fn the_write_path_checker_catches_a_store_that_acknowledges_lost_commits() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for seed in 1..=20 {
        let caught = runtime
            .block_on(aurora_simulations::write_chaos::simulate_lying_store(
                seed, 120,
            ))
            .expect_err("a store that loses acknowledged commits passed the checker");
        assert!(
            caught.0.contains("was acknowledged and is not stored"),
            "seed {seed}: caught as {caught}"
        );
    }
}
