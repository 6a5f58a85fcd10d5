//! The run feed: every run event republished on a plain NATS subject that names the run's
//! owner, `<prefix>.runs.<owner>.<run_id>.<EventType>`, so that a service can follow all
//! of one user's runs (`<prefix>.runs.alice.>`) or every run's end
//! (`<prefix>.runs.*.*.RunSucceeded`). The stream's own subjects carry no owner.
//!
//! Fed by one durable consumer shared by the replicas (each event is republished by one of
//! them, after it is in the stream; at least once on redelivery, like any NATS fan-out).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aurora_domain::run::{Run, RunEvent};
use aurora_nats::{CloudEvent, Subjects};
use aurora_projections::consumer::ReadModel;
use aurora_projections::{RunCommands, StoreError};
use cqrs_es::Aggregate;

/// Durable consumer name.
pub const DURABLE: &str = "run-feed";

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

    /// The filter of the events it follows.
    pub fn filter(&self) -> String {
        self.subjects.aggregate_events(Run::TYPE)
    }

    async fn owner(&self, event: &CloudEvent) -> Result<String, StoreError> {
        if let Ok(RunEvent::RunRequested { owner, .. }) =
            serde_json::from_value::<RunEvent>(event.data.clone())
        {
            return Ok(owner);
        }
        let cached = self
            .owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&event.aggregateid)
            .cloned();
        if let Some(owner) = cached {
            return Ok(owner);
        }
        let run =
            self.runs.load(&event.aggregateid).await.map_err(|e| {
                StoreError::Corrupt(format!("loading run {}: {e}", event.aggregateid))
            })?;
        Ok(run.owner().unwrap_or("unknown").to_string())
    }
}

#[async_trait]
impl ReadModel for RunFeed {
    fn name(&self) -> &'static str {
        DURABLE
    }

    async fn apply(&self, events: &[CloudEvent]) -> Result<(), StoreError> {
        for event in events.iter().filter(|e| e.aggregatetype == Run::TYPE) {
            let owner = self.owner(event).await?;
            {
                let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
                if owners.len() >= OWNERS_CACHED {
                    owners.clear();
                }
                if event.eventname == "RunSucceeded"
                    || event.eventname == "RunFailed"
                    || event.eventname == "RunCancelled"
                {
                    owners.remove(&event.aggregateid);
                } else {
                    owners.insert(event.aggregateid.clone(), owner.clone());
                }
            }
            let subject = self
                .subjects
                .run_feed(&owner, &event.aggregateid, &event.eventname);
            let payload = serde_json::to_vec(event).expect("events serialize");
            let headers = aurora_nats::jetstream::event_headers(event);
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
