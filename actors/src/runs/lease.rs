//! A run's lease on its work-queue message.

use std::sync::{Arc, Weak};
use std::time::Duration;

use aurora_nats::Delivery;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// A run's claim on its work-queue message: kept alive by a task of its own (not through
/// an actor's mailbox, which a slow command could hold up) while the run executes, acked
/// when it has ended, given back when this replica cannot or may not go on with it. Shared
/// by the restarts of one run's actor.
pub struct Lease {
    delivery: Mutex<Option<Delivery>>,
    keeper: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Lease {
    /// A lease on `delivery`, renewed every `period` (a third of the ack wait).
    pub fn new(delivery: Delivery, period: Duration) -> Arc<Self> {
        let lease = Arc::new(Self {
            delivery: Mutex::new(Some(delivery)),
            keeper: std::sync::Mutex::new(None),
        });
        let weak: Weak<Lease> = Arc::downgrade(&lease);
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(lease) = weak.upgrade() else { return };
                let held = lease.delivery.lock().await;
                let Some(delivery) = held.as_ref() else {
                    return;
                };
                match tokio::time::timeout(period, delivery.in_progress_confirmed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "could not extend a run's lease"),
                    Err(_) => tracing::warn!("extending a run's lease timed out"),
                }
            }
        });
        *lease.keeper.lock().unwrap_or_else(|e| e.into_inner()) = Some(keeper);
        lease
    }

    fn stop_keeping(&self) {
        if let Some(keeper) = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take() {
            keeper.abort();
        }
    }

    /// Replaces the delivery (the same message, delivered again).
    pub async fn renew(&self, delivery: Delivery) {
        *self.delivery.lock().await = Some(delivery);
    }

    /// The run has ended: the message is done.
    pub async fn release(&self) {
        self.stop_keeping();
        if let Some(delivery) = self.delivery.lock().await.take() {
            if let Err(error) = delivery.ack().await {
                tracing::warn!(%error, "could not ack a finished run");
            }
        }
    }

    /// This replica will not go on with the run: deliver it again after `delay`.
    pub async fn give_back(&self, delay: Duration) {
        self.stop_keeping();
        if let Some(delivery) = self.delivery.lock().await.take() {
            if let Err(error) = delivery.nak(delay).await {
                tracing::warn!(%error, "could not give a run back");
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop_keeping();
    }
}
