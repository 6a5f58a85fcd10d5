//! The feed of the shared projections: one durable consumer per replica (all replicas
//! share it), each message decoded once and handed to every projection that follows it.
//!
//! A batch of deliveries becomes one [`Batch`] of envelopes. Each running shared projection
//! gets the part it follows (the same `Arc`s) queued in its lane, and the feed goes on to
//! the next batch without waiting: the batches are pipelined, every projection applies at
//! its own pace (what queued up while it applied, together), and a slow one does not delay
//! the others. The feed's acker answers the batches in order: when every projection has
//! applied its part a batch is acked, else it is given back and redelivered (those that
//! applied it skip it: applying is idempotent). At most [`IN_FLIGHT`] events wait for
//! their acks, so a failed apply gives back that much at most, and a message waits in a
//! lane behind a few applies (under load, milliseconds; see `APPLY_TIMEOUT` for the
//! worst case). At shutdown the acker
//! answers what was applied before the actors stop. A projection that is
//! starting or restarting is waited for: the batch is given back. A stuck one is passed
//! over — the others go on. That loses
//! nothing for a projection with a checkpoint: its checkpoint only ever moves past events it
//! applied (a batch that does not continue it is read from the store instead), so its next
//! start, or whichever replica applies the next batch, catches up what it missed. A
//! projection that cannot catch up (the run feed) loses what goes by while it is stuck, and
//! the log says so.

use std::sync::Arc;
use std::time::Duration;

use aurora_nats::bus::Deliveries;
use aurora_nats::{Ack, EventBus};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use super::actor::{Part, ProjectionMsg};
use super::envelope::{Batch, Envelope};
use super::projection::Interest;
use super::status::{Statuses, Target};

/// How soon a consumer that failed or ended is opened again.
const RECONSUME_AFTER: Duration = Duration::from_secs(1);

/// The durable consumer every replica's feed shares.
pub const SHARED_DURABLE: &str = "projections";

/// Deliveries applied together, at most: a feed behind takes its backlog in big batches
/// (one transaction and a few statements each, whatever their size).
const CHUNK: usize = 1000;

/// Events handed to the projections and not yet acked, at most: a few batches of
/// [`CHUNK`].
const IN_FLIGHT: usize = 4 * CHUNK;

/// How soon a batch given back is delivered again.
const REDELIVER_AFTER: Duration = Duration::from_millis(250);

/// Starts the feed over `first` (the consumer opened before the projections started; the
/// feed opens it again if it is `None` or ends) and its acker; both end when dropped.
pub(super) fn start(
    bus: Arc<dyn EventBus>,
    statuses: Arc<Statuses>,
    first: Option<Deliveries>,
) -> (AbortOnDropHandle<()>, AbortOnDropHandle<()>) {
    let (handed, answers) = mpsc::unbounded_channel();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let acker = AbortOnDropHandle::new(tokio::spawn(acker(answers, in_flight.clone())));
    let feed = AbortOnDropHandle::new(tokio::spawn(feed(bus, statuses, first, handed, in_flight)));
    (feed, acker)
}

/// The shared projections' feed: one durable consumer, each message decoded once. `first`
/// is the consumer opened before the projections started (see `ProjectionsSupervisor`).
/// Each batch takes one of `in_flight`'s permits per event until the acker has answered it.
async fn feed(
    bus: Arc<dyn EventBus>,
    statuses: Arc<Statuses>,
    mut first: Option<Deliveries>,
    handed: mpsc::UnboundedSender<Handed>,
    in_flight: Arc<tokio::sync::Semaphore>,
) {
    let filter = bus.subjects().all_events();
    // Until the durable exists, it is created from "now" on: what came before is in the
    // store, which every projection catches up from when it starts (a new durable over a
    // long stream would replay its history through projections that act on it).
    let mut created = first.is_some();
    loop {
        let deliveries = match first.take() {
            Some(deliveries) => deliveries,
            None => {
                let consumer = if created {
                    bus.consume(SHARED_DURABLE, &filter).await
                } else {
                    bus.consume_new(SHARED_DURABLE, &filter).await
                };
                match consumer {
                    Ok(deliveries) => {
                        created = true;
                        deliveries
                    }
                    Err(error) => {
                        tracing::warn!(%error, "projections consumer failed; again in a second");
                        tokio::time::sleep(RECONSUME_AFTER).await;
                        continue;
                    }
                }
            }
        };
        let mut chunks = deliveries.ready_chunks(CHUNK);
        while let Some(chunk) = chunks.next().await {
            let mut acks: Vec<Ack> = Vec::with_capacity(chunk.len());
            let mut envelopes = Vec::with_capacity(chunk.len());
            for delivery in chunk {
                match delivery {
                    Ok(delivery) => {
                        let (event, ack) = delivery.split();
                        envelopes.push(Arc::new(Envelope::delivered(event)));
                        acks.push(ack);
                    }
                    Err(error @ aurora_nats::BusError::Decode { .. }) => {
                        tracing::error!(%error, "projections: skipping message")
                    }
                    // The deliveries end after it; the consumer is opened again below.
                    Err(error) => tracing::warn!(%error, "projections consumer failed"),
                }
            }
            // At most CHUNK (≤ IN_FLIGHT) permits: always grantable once others return.
            let Ok(permits) = in_flight.acquire_many(acks.len() as u32).await else {
                return;
            };
            permits.forget(); // given back by the acker
            let batch: Batch = envelopes.into();
            let answers = dispatch(&statuses, &batch);
            if handed.send((acks, answers)).is_err() {
                tracing::error!("projections: the acker has ended; the feed stops");
                return;
            }
        }
        tracing::warn!("projections consumer ended; consuming again");
        tokio::time::sleep(RECONSUME_AFTER).await;
    }
}

/// What became of one batch: each projection's answer, or `None` if it was given back at
/// once (a projection it must wait for is starting).
type Answers = Option<Vec<oneshot::Receiver<Result<(), String>>>>;

/// A batch's acks, and the answers they wait for.
type Handed = (Vec<Ack>, Answers);

/// Acks each batch once every projection applied its part, else gives it back; in the
/// order the batches were handed out. Gives the batch's permits back to `in_flight`.
async fn acker(
    mut handed: mpsc::UnboundedReceiver<Handed>,
    in_flight: Arc<tokio::sync::Semaphore>,
) {
    while let Some((acks, answers)) = handed.recv().await {
        let applied = match answers {
            Some(answers) => futures::future::join_all(answers)
                .await
                .into_iter()
                .all(|answer| matches!(answer, Ok(Ok(())))),
            None => false,
        };
        let events = acks.len();
        if applied {
            let acked = futures::future::join_all(acks.into_iter().map(Ack::ack)).await;
            if let Some(Err(error)) = acked.into_iter().find(Result::is_err) {
                // Redelivered after the ack wait; applying it again changes nothing.
                tracing::warn!(%error, "projections: acking failed");
            }
        } else {
            futures::future::join_all(acks.into_iter().map(|a| a.nak(REDELIVER_AFTER))).await;
        }
        in_flight.add_permits(events);
    }
}

/// Queues each shared projection's part of `batch` in its lane, without waiting; where
/// their answers will come.
fn dispatch(statuses: &Statuses, batch: &Batch) -> Answers {
    let (mut queued, mut passed_over) = (Vec::new(), Vec::new());
    for (interest, target) in statuses.targets() {
        let part: Batch = if interest == Interest::ALL {
            batch.clone()
        } else {
            batch
                .iter()
                .filter(|e| interest.wants(&e.event))
                .cloned()
                .collect()
        };
        if part.is_empty() {
            continue;
        }
        match target {
            Target::Hold => return None,
            Target::PassOver(projection) => passed_over.push((projection, part.len())),
            Target::Queue(actor, lane) => queued.push((part, actor, lane)),
        }
    }
    for (projection, events) in passed_over {
        if !projection.resumes_from_store() {
            tracing::error!(
                projection = projection.name(),
                events,
                "stuck: passed over; these events will not reach it"
            );
        }
    }
    let answers = queued
        .into_iter()
        .map(|(part, actor, lane)| {
            let (applied, answer) = oneshot::channel();
            // Either fails only if the actor has ended: its answer is then dropped, and the
            // batch given back.
            if lane
                .send(Part {
                    batch: part,
                    applied,
                })
                .is_ok()
            {
                let _ = actor.cast(ProjectionMsg::Drain);
            }
            answer
        })
        .collect();
    Some(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::supervisor::tests::event;
    use aurora_nats::memory::MemoryBus;
    use aurora_nats::Subjects;

    #[tokio::test]
    async fn the_acker_answers_what_was_handed_before_the_feed_ended() {
        let bus = MemoryBus::new(Subjects::new("acker"));
        let filter = bus.subjects().all_events();
        bus.publish_batch(&[event(1), event(2)]).await.unwrap();
        let mut deliveries = bus.consume("d", &filter).await.unwrap();
        let mut acks = Vec::new();
        for _ in 0..2 {
            acks.push(deliveries.next().await.unwrap().unwrap().split().1);
        }
        drop(deliveries);
        let (handed, queue) = mpsc::unbounded_channel();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(0));
        let (applied, answer) = oneshot::channel();
        handed.send((acks, Some(vec![answer]))).unwrap();
        // The feed ends (shutdown) while the batch is still being applied…
        drop(handed);
        let acker = tokio::spawn(acker(queue, in_flight.clone()));
        // …and the projection answers after.
        applied.send(Ok(())).unwrap();
        acker.await.unwrap();
        assert_eq!(
            in_flight.available_permits(),
            2,
            "its events' permits given back"
        );
        // Acked: the durable's next delivery is the next event, not those two again.
        bus.publish_batch(&[event(3)]).await.unwrap();
        let mut deliveries = bus.consume("d", &filter).await.unwrap();
        let next = deliveries.next().await.unwrap().unwrap();
        assert_eq!(next.stream_sequence, 3);
    }
}
