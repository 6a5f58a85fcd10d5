//! The system under test: the replicas, the NATS server, the proxies in front of Postgres
//! and NATS, and the operations the nemesis and the checker perform on them.

use std::path::PathBuf;
use std::time::Duration;

use super::proxy::{self, Proxy};
use super::servers::{self, Nats, Replica};

/// A server behind a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Postgres.
    Postgres,
    /// NATS.
    Nats,
}

/// The system under test.
pub struct Cluster {
    /// The replicas.
    pub replicas: Vec<Replica>,
    /// The NATS server.
    pub nats: Nats,
    /// Proxy in front of Postgres.
    pub postgres_proxy: Proxy,
    /// Proxy in front of NATS.
    pub nats_proxy: Proxy,
    /// The database (direct, not through the proxy).
    pub database_url: String,
    /// The subject prefix.
    pub prefix: String,
    /// The shared artifacts directory.
    pub artifacts: PathBuf,
    /// Settings every replica has (for the CLI the checker runs).
    pub env: Vec<(String, String)>,
    /// The run ack wait the replicas use.
    pub ack_wait: Duration,
}

impl Cluster {
    /// The proxy in front of `server`.
    pub fn proxy(&self, server: Server) -> &Proxy {
        match server {
            Server::Postgres => &self.postgres_proxy,
            Server::Nats => &self.nats_proxy,
        }
    }

    /// Deletes the event stream (directly, not through the proxy).
    pub async fn delete_stream(&self) -> anyhow::Result<()> {
        let client = async_nats::connect(self.nats.url()).await?;
        let js = async_nats::jetstream::new(client);
        let name = aurora_nats::Subjects::new(self.prefix.clone()).stream();
        js.delete_stream(&name).await?;
        Ok(())
    }

    /// Terminates every connection to Aurora's database but this one.
    pub async fn terminate_postgres_connections(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.database_url).await?;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut conn)
        .await?;
        Ok(())
    }

    /// Every proxy passing, NATS and every replica running and thawed.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        self.postgres_proxy.set(proxy::Mode::Pass);
        self.nats_proxy.set(proxy::Mode::Pass);
        if servers::wait_for_port(self.nats.port, Duration::from_millis(500))
            .await
            .is_err()
        {
            self.nats.restart().await?;
        }
        for replica in &mut self.replicas {
            replica.thaw();
            replica.start().await?;
        }
        Ok(())
    }
}
