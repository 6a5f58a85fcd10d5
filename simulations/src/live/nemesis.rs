//! The nemesis: on a schedule drawn from the seed, one fault at a time against the replicas,
//! NATS and Postgres, each healed before the next.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::cluster::{Cluster, Server};
use super::proxy::Mode;
use crate::rng::Rng;

/// A fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` a replica, start it again after the pause.
    KillReplica(usize, Duration),
    /// `SIGSTOP` a replica for longer than the run ack wait, then `SIGCONT`.
    FreezeReplica(usize, Duration),
    /// `kill -9` nats-server, start it again after the pause.
    RestartNats(Duration),
    /// Delete the event stream (the relay heals it from Postgres).
    DeleteStream,
    /// `pg_terminate_backend` every connection of Aurora's.
    TerminatePostgresConnections,
    /// Restart the Postgres server (the command in `--postgres-restart`).
    RestartPostgres,
    /// Traffic to a server delayed (both ways) for a while.
    Delay(Server, Duration, Duration),
    /// Traffic to a server held (nothing passes, nothing closes) for a while.
    Partition(Server, Duration),
    /// Connections to a server cut, and new ones refused, for a while.
    Cut(Server, Duration),
}

impl Fault {
    /// Its kind, for the report.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::KillReplica(..) => "kill -9 replica",
            Fault::FreezeReplica(..) => "SIGSTOP replica",
            Fault::RestartNats(_) => "kill -9 nats-server",
            Fault::DeleteStream => "delete event stream",
            Fault::TerminatePostgresConnections => "pg_terminate_backend",
            Fault::RestartPostgres => "restart postgres",
            Fault::Delay(Server::Postgres, ..) => "delay postgres",
            Fault::Delay(Server::Nats, ..) => "delay nats",
            Fault::Partition(Server::Postgres, _) => "partition postgres",
            Fault::Partition(Server::Nats, _) => "partition nats",
            Fault::Cut(Server::Postgres, _) => "cut postgres",
            Fault::Cut(Server::Nats, _) => "cut nats",
        }
    }

    /// Draws one.
    pub fn draw(
        rng: &mut Rng,
        replicas: usize,
        ack_wait: Duration,
        postgres_restart: bool,
    ) -> Fault {
        let ms =
            |rng: &mut Rng, low: u64, high: u64| Duration::from_millis(low + rng.below(high - low));
        let server = |rng: &mut Rng| {
            if rng.chance(50) {
                Server::Postgres
            } else {
                Server::Nats
            }
        };
        let replica = rng.below(replicas as u64) as usize;
        let kinds = if postgres_restart { 10 } else { 9 };
        match rng.below(kinds) {
            0 | 1 => Fault::KillReplica(replica, ms(rng, 200, 3000)),
            2 => Fault::FreezeReplica(replica, ack_wait + ms(rng, 1000, 4000)),
            3 => Fault::RestartNats(ms(rng, 200, 2000)),
            4 => Fault::DeleteStream,
            5 => Fault::TerminatePostgresConnections,
            6 => Fault::Delay(server(rng), ms(rng, 20, 400), ms(rng, 1000, 5000)),
            7 => Fault::Partition(server(rng), ms(rng, 500, 5000)),
            8 => Fault::Cut(server(rng), ms(rng, 200, 3000)),
            _ => Fault::RestartPostgres,
        }
    }
}

/// What the nemesis did.
#[derive(Debug, Default)]
pub struct Record {
    /// Each fault and when it began (after the start).
    pub schedule: Vec<(Duration, Fault)>,
    /// Faults by kind.
    pub counts: BTreeMap<&'static str, u64>,
    /// Faults that could not be injected or healed, with why.
    pub failures: Vec<String>,
}

/// Injects faults from `seed` until `stop`.
pub async fn run(
    seed: u64,
    cluster: &mut Cluster,
    postgres_restart: Option<&str>,
    only: &[String],
    stop: CancellationToken,
) -> Record {
    let mut rng = Rng::new(seed ^ 0x006e_656d_6573_6973);
    let mut record = Record::default();
    let started = Instant::now();
    loop {
        let quiet = Duration::from_millis(1000 + rng.below(3000));
        tokio::select! {
            () = stop.cancelled() => return record,
            () = tokio::time::sleep(quiet) => {}
        }
        let fault = loop {
            let fault = Fault::draw(
                &mut rng,
                cluster.replicas.len(),
                cluster.ack_wait,
                postgres_restart.is_some(),
            );
            if only.is_empty() || only.iter().any(|kind| fault.kind().contains(kind.as_str())) {
                break fault;
            }
        };
        tracing::info!(?fault, "nemesis");
        record.schedule.push((started.elapsed(), fault.clone()));
        *record.counts.entry(fault.kind()).or_default() += 1;
        if let Err(error) = inject(cluster, &fault, postgres_restart).await {
            record.failures.push(format!("{fault:?}: {error:#}"));
        }
    }
}

/// Injects `fault` and heals it.
async fn inject(
    cluster: &mut Cluster,
    fault: &Fault,
    postgres_restart: Option<&str>,
) -> anyhow::Result<()> {
    match fault {
        Fault::KillReplica(i, pause) => {
            cluster.replicas[*i].kill();
            tokio::time::sleep(*pause).await;
            cluster.replicas[*i].start().await?;
        }
        Fault::FreezeReplica(i, pause) => {
            cluster.replicas[*i].freeze();
            tokio::time::sleep(*pause).await;
            cluster.replicas[*i].thaw();
        }
        Fault::RestartNats(pause) => {
            cluster.nats.kill();
            tokio::time::sleep(*pause).await;
            cluster.nats.restart().await?;
        }
        Fault::DeleteStream => cluster.delete_stream().await?,
        Fault::TerminatePostgresConnections => cluster.terminate_postgres_connections().await?,
        Fault::RestartPostgres => {
            if let Some(command) = postgres_restart {
                let status = tokio::process::Command::new("sh")
                    .args(["-c", command])
                    .status()
                    .await?;
                anyhow::ensure!(status.success(), "{command}: {status}");
            }
        }
        Fault::Delay(server, by, lasting) => {
            cluster.proxy(*server).set(Mode::Delay(*by));
            tokio::time::sleep(*lasting).await;
            cluster.proxy(*server).set(Mode::Pass);
        }
        Fault::Partition(server, lasting) => {
            cluster.proxy(*server).set(Mode::Partition);
            tokio::time::sleep(*lasting).await;
            cluster.proxy(*server).set(Mode::Pass);
        }
        Fault::Cut(server, lasting) => {
            cluster.proxy(*server).set(Mode::Cut);
            tokio::time::sleep(*lasting).await;
            cluster.proxy(*server).set(Mode::Pass);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_schedule_and_every_kind_comes_up() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| Fault::draw(&mut rng, 3, Duration::from_secs(3), true))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let kinds: std::collections::BTreeSet<_> = draw(7).iter().map(Fault::kind).collect();
        assert_eq!(kinds.len(), 12, "{kinds:?}");
        for fault in draw(7) {
            if let Fault::FreezeReplica(_, pause) = fault {
                assert!(pause > Duration::from_secs(3), "frozen past the ack wait");
            }
        }
    }
}
