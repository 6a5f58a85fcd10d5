//! Sabotage: the harness breaks the history itself, after the system settled and before
//! the checker looks, the way a real bug would — so that a run shows the checker catches
//! such a violation rather than passing vacuously (`chaos --sabotage … --expect-violations`).
//!
//! - **lose-acknowledged**: an acknowledged run's stored history is deleted, as by a store
//!   that acknowledged commits it then lost (what Jepsen found NATS doing without fsync);
//! - **duplicate-in-stream**: a stored event is published to the stream a second time under
//!   a new message id, as by a relay that forgot what it had published;
//! - **skew-view**: a run's row is deleted from the runs view, as by a projection that
//!   skipped an event.

use anyhow::Context;
use aurora_projections::{Cursor, Database};

use super::cluster::Cluster;
use super::workload::History;

/// One way of breaking the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sabotage {
    /// Delete an acknowledged run's history from the store.
    LoseAcknowledged,
    /// Publish a stored event to the stream twice.
    DuplicateInStream,
    /// Delete a run's row from the runs view.
    SkewView,
}

impl Sabotage {
    /// Words one of the checker's violations must contain if it caught this sabotage.
    pub fn caught_by(self) -> &'static str {
        match self {
            Sabotage::LoseAcknowledged => "requested None times in the store",
            Sabotage::DuplicateInStream => "twice in the stream",
            Sabotage::SkewView => "the live runs view differs from its rebuild",
        }
    }

    /// Breaks `cluster`'s history so (its replicas stopped, the system settled).
    pub async fn apply(self, cluster: &Cluster, history: &History) -> anyhow::Result<String> {
        let db = Database::postgres(&cluster.database_url, 1).await?;
        let Database::Postgres(pool) = &db else {
            unreachable!("the harness runs on Postgres")
        };
        let run = history
            .runs
            .first()
            .context("no run was acknowledged: nothing to sabotage")?;
        let done = match self {
            Sabotage::LoseAcknowledged => {
                sqlx::query(
                    "DELETE FROM events WHERE aggregate_type = 'run' AND aggregate_id = $1",
                )
                .bind(run)
                .execute(pool)
                .await?;
                format!("deleted the stored history of acknowledged run {run}")
            }
            Sabotage::DuplicateInStream => {
                let stored = db.read_after(Cursor::default(), 1).await?;
                let event = stored.first().context("nothing stored")?.to_cloud_event();
                let client = async_nats::connect(cluster.nats.url()).await?;
                let js = async_nats::jetstream::new(client);
                let subjects = aurora_nats::Subjects::new(cluster.prefix.clone());
                let subject =
                    subjects.event(&event.aggregatetype, &event.aggregateid, &event.eventname);
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("sabotage-{}", event.id).as_str());
                js.publish_with_headers(subject, headers, serde_json::to_vec(&event)?.into())
                    .await?
                    .await?;
                format!("published event {} to the stream again", event.id)
            }
            Sabotage::SkewView => {
                // Another run than the one lose-acknowledged takes, where there is one.
                let run = history.runs.last().unwrap_or(run);
                sqlx::query("DELETE FROM runs_view WHERE id = $1")
                    .bind(run)
                    .execute(pool)
                    .await?;
                format!("deleted run {run} from the runs view")
            }
        };
        db.close().await;
        Ok(done)
    }
}
