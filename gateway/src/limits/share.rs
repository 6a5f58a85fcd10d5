//! Limits shared across replicas: each replica tells the others, over a plain NATS
//! subject, how many requests it admitted per bucket, every [`FLUSH_INTERVAL`]; the others
//! use their own buckets for them. A client spreading requests over replicas therefore
//! meets one limit, up to a tolerance: what the other replicas admit before their report
//! arrives — at most one flush interval of traffic, and at worst (a burst into full
//! buckets on every replica at once) `count × (replicas − 1)` extra requests.
//!
//! Reports older than [`STALE_AFTER`] are ignored (replicas' clocks must agree to within
//! that, as NTP keeps them). When NATS is unreachable the reports stop — what was admitted
//! meanwhile is not reported later — and each replica limits on its own (each
//! admits the full limit: "fail-open" across replicas, still limited per replica); a class
//! with `partition = "closed"` refuses instead (see [`super::policy`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aurora_domain::user::Tier;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use aurora_actors::limits::Buckets;
use aurora_domain::limits::Policies;

/// How often a replica reports what it admitted.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Reports older than this are ignored (queued through an outage, they are history).
pub const STALE_AFTER: Duration = Duration::from_secs(2);
/// Most items in one message (well under NATS's 1 MiB payload limit).
const ITEMS_PER_REPORT: usize = 1000;
/// Admissions waiting to be reported; beyond it they are dropped (not shared).
const QUEUE: usize = 100_000;

/// One report.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    replica: String,
    /// When it was sent, ms since the epoch.
    sent_ms: i64,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    class: String,
    key: String,
    tier: Option<Tier>,
    n: u32,
}

/// This replica's side of the sharing.
pub struct Sharing {
    admitted: mpsc::Sender<(usize, String, Option<Tier>)>,
    received: watch::Receiver<u64>,
    listening: Arc<AtomicBool>,
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
        let (admitted, rx) = mpsc::channel(QUEUE);
        let listening = Arc::new(AtomicBool::new(true));
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
            subscriber,
            replica,
            policies,
            buckets,
            count,
            listening.clone(),
            shutdown,
        ));
        Ok(Self {
            admitted,
            received,
            listening,
        })
    }

    /// Notes one request admitted here.
    pub fn admitted(&self, class: usize, key: &str, tier: Option<Tier>) {
        let _ = self.admitted.try_send((class, key.to_string(), tier));
    }

    /// Are the other replicas' reports still being received?
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
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
    mut admitted: mpsc::Receiver<(usize, String, Option<Tier>)>,
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
                // While NATS is away, what was admitted is not shared at all (the others
                // limit on their own meanwhile); a backlog sent later would charge old
                // requests as new.
                if client.connection_state() != async_nats::connection::State::Connected {
                    pending.clear();
                    continue;
                }
                let items: Vec<Item> = pending
                    .drain()
                    .map(|((class, key, tier), n)| Item {
                        class: policies.classes[class].name.clone(),
                        key,
                        tier,
                        n,
                    })
                    .collect();
                for chunk in items.chunks(ITEMS_PER_REPORT) {
                    let report = Report {
                        replica: replica.clone(),
                        sent_ms: chrono::Utc::now().timestamp_millis(),
                        items: chunk.to_vec(),
                    };
                    let payload = serde_json::to_vec(&report).expect("reports serialize");
                    if let Err(error) = client.publish(subject.clone(), payload.into()).await {
                        tracing::warn!(%error, "could not share rate-limit consumption");
                    }
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
    listening: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => {
                    // `partition = "closed"` classes refuse from now on.
                    tracing::error!("the rate-limit report subscription ended");
                    listening.store(false, Ordering::Relaxed);
                    return;
                }
            },
        };
        let Ok(report) = serde_json::from_slice::<Report>(&message.payload) else {
            tracing::warn!("undecodable rate-limit report");
            continue;
        };
        let age_ms = chrono::Utc::now().timestamp_millis() - report.sent_ms;
        if report.replica == replica || age_ms > STALE_AFTER.as_millis() as i64 {
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
