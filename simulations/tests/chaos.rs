//! Seeded chaos against the relay, the runs view and the projections supervisor. Set `AURORA_SIM_SEED` to replay one
//! seed, `AURORA_SIM_SEEDS` to run more.

use aurora_simulations::relay_chaos::simulate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_consumer_chaos_loses_and_duplicates_nothing() {
    let seeds: Vec<u64> = match std::env::var("AURORA_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("AURORA_SIM_SEED is a number")],
        Err(_) => {
            let count = std::env::var("AURORA_SIM_SEEDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(24u64);
            (1..=count).collect()
        }
    };
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
