//! The run feed: every run event republished on a plain NATS subject that names the run's
//! owner, `<prefix>.runs.<owner>.<run_id>.<EventType>`, so that a service can follow all
//! of one user's runs (`<prefix>.runs.alice.>`) or every run's end
//! (`<prefix>.runs.*.*.RunSucceeded`). The stream's own subjects carry no owner.
//!
//! A projection without a table, fed with the shared ones (each event is republished by one
//! replica, after it is in the stream; at least once on redelivery, like any NATS fan-out).

use std::collections::HashMap;
use std::sync::Mutex;

use std::sync::Arc;

use async_trait::async_trait;
use aurora_domain::run::{Run, RunEvent};
use aurora_nats::Subjects;
use aurora_projections::read::{Envelope, Interest, Projection};
use aurora_projections::{RunCommands, StoreError};
use cqrs_es::Aggregate;

/// The projection's name.
pub const NAME: &str = "run-feed";

/// Owners remembered, at most (the store answers for the rest).
const OWNERS_CACHED: usize = 100_000;

/// Republishes run events with their owner in the subject.
pub struct RunFeed {
    client: async_nats::Client,
    subjects: Subjects,
    runs: RunCommands,
    owners: Mutex<HashMap<String, String>>,
}

impl RunFeed {
    /// A feed publishing on `client`.
    pub fn new(client: async_nats::Client, subjects: Subjects, runs: RunCommands) -> Self {
        Self {
            client,
            subjects,
            runs,
            owners: Mutex::new(HashMap::new()),
        }
    }

    async fn owner(&self, envelope: &Envelope) -> Result<String, StoreError> {
        if let Ok(RunEvent::RunRequested { owner, .. }) = envelope.run_event() {
            return Ok(owner.clone());
        }
        let id = &envelope.event.aggregate_id;
        let cached = self
            .owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        if let Some(owner) = cached {
            return Ok(owner);
        }
        let run = self
            .runs
            .load(id)
            .await
            .map_err(|e| StoreError::Corrupt(format!("loading run {id}: {e}")))?;
        Ok(run.owner().unwrap_or("unknown").to_string())
    }
}

#[async_trait]
impl Projection for RunFeed {
    fn name(&self) -> &'static str {
        NAME
    }

    fn interest(&self) -> Interest {
        Interest::aggregate(Run::TYPE)
    }

    /// Nothing to catch up: it republishes what it is handed, and is waited for (never
    /// skipped) while it is down.
    fn resumes_from_store(&self) -> bool {
        false
    }

    async fn catch_up(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn apply(&self, batch: &[Arc<Envelope>]) -> Result<(), StoreError> {
        for envelope in batch {
            let owner = self.owner(envelope).await?;
            let event = envelope.event.to_cloud_event().for_subscribers();
            {
                let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
                if owners.len() >= OWNERS_CACHED {
                    owners.clear();
                }
                if matches!(
                    event.eventname.as_str(),
                    "RunSucceeded" | "RunFailed" | "RunCancelled"
                ) {
                    owners.remove(&event.aggregateid);
                } else {
                    owners.insert(event.aggregateid.clone(), owner.clone());
                }
            }
            let subject = self
                .subjects
                .run_feed(&owner, &event.aggregateid, &event.eventname);
            let payload = serde_json::to_vec(&event).expect("events serialize");
            let headers = aurora_nats::jetstream::event_headers(&event);
            self.client
                .publish_with_headers(subject, headers, payload.into())
                .await
                .map_err(|e| StoreError::Downstream(format!("publishing to the run feed: {e}")))?;
        }
        self.client
            .flush()
            .await
            .map_err(|e| StoreError::Downstream(format!("flushing the run feed: {e}")))
    }
}
