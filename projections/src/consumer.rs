//! Feeding a read model from a durable consumer: the loop every bus-fed view shares.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aurora_nats::{CloudEvent, EventBus};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// Deliveries applied together, at most.
const CHUNK: usize = 256;

/// A read model fed from the bus.
#[async_trait]
pub trait ReadModel: Send + Sync + 'static {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// Applies a chunk of delivered events. Must be idempotent: after a failure (or a
    /// crash) the same events are delivered again.
    async fn apply(&self, events: &[CloudEvent]) -> Result<(), StoreError>;
}

/// Applies the events matching `filter` from the durable consumer `durable` to `model`
/// until `shutdown`, in chunks, acking each chunk only after it was applied. When the
/// consumer fails it is re-created a second later; nothing was acked, so nothing is lost.
pub async fn follow(
    model: Arc<dyn ReadModel>,
    bus: Arc<dyn EventBus>,
    durable: &str,
    filter: &str,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        if let Err(error) = consume(&*model, &*bus, durable, filter, &shutdown).await {
            tracing::warn!(projection = model.name(), %error, "projection consumer failed");
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn consume(
    model: &dyn ReadModel,
    bus: &dyn EventBus,
    durable: &str,
    filter: &str,
    shutdown: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut chunks = bus.consume(durable, filter).await?.ready_chunks(CHUNK);
    loop {
        let chunk = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            chunk = chunks.next() => chunk,
        };
        let Some(chunk) = chunk else {
            return Ok(());
        };
        let mut deliveries = Vec::with_capacity(chunk.len());
        for delivery in chunk {
            match delivery {
                Ok(delivery) => deliveries.push(delivery),
                Err(error) => {
                    tracing::error!(projection = model.name(), %error, "skipping message")
                }
            }
        }
        let events: Vec<CloudEvent> = deliveries.iter().map(|d| d.event.clone()).collect();
        model.apply(&events).await?;
        futures::future::try_join_all(deliveries.into_iter().map(|d| d.ack())).await?;
    }
}
