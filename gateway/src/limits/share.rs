//! Limits shared across replicas: each replica tells the others, over a plain NATS
//! subject, how many requests it admitted per bucket, every [`FLUSH_INTERVAL`]; the others
//! use their own buckets for them. A client spreading requests over replicas therefore
//! meets one limit, up to a tolerance: what the other replicas admit before their report
//! arrives — at most one flush interval of traffic, and at worst (a burst into full
//! buckets on every replica at once) `count × (replicas − 1)` extra requests.
//!
//! When NATS is unreachable the reports stop and each replica limits on its own (each
//! admits the full limit: "fail-open" across replicas, still limited per replica); a class
//! with `partition = "closed"` refuses instead (see [`super::policy`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aurora_domain::user::Tier;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::buckets::Buckets;
use super::policy::Policies;

/// How often a replica reports what it admitted.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// One report.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    replica: String,
    items: Vec<Item>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    class: String,
    key: String,
    tier: Option<Tier>,
    n: u32,
}

/// This replica's side of the sharing.
pub struct Sharing {
    admitted: mpsc::UnboundedSender<(usize, String, Option<Tier>)>,
    received: watch::Receiver<u64>,
}

impl Sharing {
    /// Starts reporting to and applying reports from the other replicas on `subject`.
    pub async fn start(
        client: async_nats::Client,
        subject: String,
        policies: Arc<Policies>,
        buckets: Buckets,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let replica = uuid::Uuid::new_v4().to_string();
        let (admitted, rx) = mpsc::unbounded_channel();
        let (count, received) = watch::channel(0_u64);
        let subscriber = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to {subject}: {e}"))?;
        tokio::spawn(report(
            client,
            subject,
            replica.clone(),
            policies.clone(),
            rx,
            shutdown.clone(),
        ));
        tokio::spawn(apply(
            subscriber, replica, policies, buckets, count, shutdown,
        ));
        Ok(Self { admitted, received })
    }

    /// Notes one request admitted here.
    pub fn admitted(&self, class: usize, key: &str, tier: Option<Tier>) {
        let _ = self.admitted.send((class, key.to_string(), tier));
    }

    /// Requests reported by other replicas and applied here so far; changes with each
    /// report (tests wait on it).
    pub fn received(&self) -> watch::Receiver<u64> {
        self.received.clone()
    }
}

async fn report(
    client: async_nats::Client,
    subject: String,
    replica: String,
    policies: Arc<Policies>,
    mut admitted: mpsc::UnboundedReceiver<(usize, String, Option<Tier>)>,
    shutdown: CancellationToken,
) {
    let mut pending: HashMap<(usize, String, Option<Tier>), u32> = HashMap::new();
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            next = admitted.recv() => match next {
                Some(item) => *pending.entry(item).or_default() += 1,
                None => return,
            },
            _ = flush.tick() => {
                if pending.is_empty() {
                    continue;
                }
                let items = pending
                    .drain()
                    .map(|((class, key, tier), n)| Item {
                        class: policies.classes[class].name.clone(),
                        key,
                        tier,
                        n,
                    })
                    .collect();
                let report = Report { replica: replica.clone(), items };
                let payload = serde_json::to_vec(&report).expect("reports serialize");
                // Lost while NATS is down: the others limit on their own meanwhile.
                if let Err(error) = client.publish(subject.clone(), payload.into()).await {
                    tracing::warn!(%error, "could not share rate-limit consumption");
                }
            }
        }
    }
}

async fn apply(
    mut subscriber: async_nats::Subscriber,
    replica: String,
    policies: Arc<Policies>,
    buckets: Buckets,
    count: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let Ok(report) = serde_json::from_slice::<Report>(&message.payload) else {
            tracing::warn!("undecodable rate-limit report");
            continue;
        };
        if report.replica == replica {
            continue;
        }
        let mut applied = 0;
        for item in report.items {
            // A class this replica does not have (policies differ mid-rollout): ignored.
            let Some(class) = policies.classes.iter().position(|c| c.name == item.class) else {
                continue;
            };
            buckets.consume(class, &item.key, item.tier, item.n);
            applied += u64::from(item.n);
        }
        count.send_modify(|n| *n += applied);
    }
}
