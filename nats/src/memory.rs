//! The in-process bus for embedded mode and simulations: the same contract as JetStream
//! (ordered stream, dedup by message id, durable at-least-once consumers), kept in memory.
//!
//! Nothing here survives a restart. That is by design: the event store is the source of
//! truth, and on start the relay heals the empty stream from it, exactly as it heals a
//! JetStream stream that lost messages.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;

use crate::bus::{Acker, Deliveries, InProcessAck, Tail, WorkQueue, WorkSource};
use crate::subjects::matches;
use crate::{BusError, CloudEvent, Delivery, EventBus, PublishOutcome, StreamState, Subjects};

/// In-process event bus. Cheap to clone; clones share the stream.
#[derive(Clone)]
pub struct MemoryBus {
    subjects: Subjects,
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    last_sequence: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    messages: BTreeMap<u64, Stored>,
    last_sequence: u64,
    seen_ids: HashMap<String, u64>,
    durables: HashMap<String, Durable>,
}

struct Stored {
    subject: String,
    event: CloudEvent,
}

struct Durable {
    filter: String,
    /// Every sequence up to here is acked.
    ack_floor: u64,
    /// Acked sequences above the floor.
    acked: BTreeSet<u64>,
    /// Negatively acknowledged messages, delivered again from the given time.
    redeliver: BTreeMap<u64, std::time::Instant>,
}

impl Durable {
    fn ack(&mut self, sequence: u64) {
        if sequence > self.ack_floor {
            self.acked.insert(sequence);
        }
        while self.acked.remove(&(self.ack_floor + 1)) {
            self.ack_floor += 1;
        }
    }
}

/// Acks one delivered message of one durable.
pub struct AckHandle {
    shared: Arc<Shared>,
    durable: String,
    sequence: u64,
}

impl InProcessAck for AckHandle {
    fn ack(self: Box<Self>) {
        let mut state = self.shared.lock();
        if let Some(durable) = state.durables.get_mut(&self.durable) {
            durable.ack(self.sequence);
            durable.redeliver.remove(&self.sequence);
        }
    }

    /// Delivers the message again after `delay` (to this durable's consumer).
    fn nak(self: Box<Self>, delay: std::time::Duration) {
        {
            let mut state = self.shared.lock();
            if let Some(durable) = state.durables.get_mut(&self.durable) {
                durable
                    .redeliver
                    .insert(self.sequence, std::time::Instant::now() + delay);
            }
        }
        // Wake the consumer so that it schedules the redelivery.
        self.shared.last_sequence.send_modify(|_| {});
    }
}

/// The in-process work queue: a durable consumer polled one message at a time.
struct MemoryWork(Deliveries, std::time::Duration);

#[async_trait]
impl WorkSource for MemoryWork {
    fn ack_wait(&self) -> std::time::Duration {
        self.1
    }

    async fn next(&mut self) -> Result<Delivery, BusError> {
        match self.0.next().await {
            Some(delivery) => delivery,
            None => Err(BusError::Unavailable("the in-process bus is closed".into())),
        }
    }
}

impl Shared {
    // The lock is never held across an await: every critical section is a few map operations.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MemoryBus {
    /// [`EventBus::consume`]; a durable created here starts after the last message if
    /// `from_now`.
    fn consume_from(
        &self,
        durable: &str,
        filter: &str,
        from_now: bool,
    ) -> Result<Deliveries, BusError> {
        let start = {
            let mut state = self.shared.lock();
            let last = state.last_sequence;
            let entry = state
                .durables
                .entry(durable.to_string())
                .or_insert_with(|| Durable {
                    filter: filter.to_string(),
                    ack_floor: if from_now { last } else { 0 },
                    acked: BTreeSet::new(),
                    redeliver: BTreeMap::new(),
                });
            entry.filter = filter.to_string();
            entry.ack_floor
        };
        let bus = self.clone();
        let durable = durable.to_string();
        let changes = self.shared.last_sequence.subscribe();
        let deliveries = futures::stream::unfold(
            (bus, durable, start, changes),
            |(bus, durable, mut after, mut changes)| async move {
                loop {
                    // Mark the current value seen before looking, so a publish that lands
                    // between the look and the wait still wakes us.
                    changes.borrow_and_update();
                    let (again, next_redelivery) = bus.redelivery(&durable);
                    if let Some((sequence, event)) = again {
                        crate::bus::count_redelivery(&durable);
                        let delivery = bus.delivery(&durable, sequence, event);
                        return Some((Ok(delivery), (bus, durable, after, changes)));
                    }
                    if let Some((sequence, event)) = bus.next_delivery(&durable, after) {
                        after = sequence;
                        let delivery = bus.delivery(&durable, sequence, event);
                        return Some((Ok(delivery), (bus, durable, after, changes)));
                    }
                    let wake = async {
                        match next_redelivery {
                            Some(at) => tokio::time::sleep_until(at.into()).await,
                            None => futures::future::pending().await,
                        }
                    };
                    tokio::select! {
                        changed = changes.changed() => if changed.is_err() {
                            return None;
                        },
                        () = wake => {}
                    }
                }
            },
        );
        Ok(deliveries.boxed())
    }

    /// An empty bus publishing under `subjects`.
    pub fn new(subjects: Subjects) -> Self {
        Self {
            subjects,
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                last_sequence: watch::channel(0).0,
            }),
        }
    }

    /// Removes every message, as `nats stream purge` would (message ids stay remembered).
    pub fn purge(&self) {
        self.shared.lock().messages.clear();
    }

    /// Removes one message by stream sequence, as a lost write would.
    pub fn delete(&self, sequence: u64) -> bool {
        self.shared.lock().messages.remove(&sequence).is_some()
    }

    /// Every stored message in stream order, for inspection.
    pub fn events(&self) -> Vec<CloudEvent> {
        let state = self.shared.lock();
        state.messages.values().map(|m| m.event.clone()).collect()
    }

    /// Subscribes to every message published from now on (a plain, non-durable subscriber).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.shared.last_sequence.subscribe()
    }

    fn next_matching(&self, filter: &str, after: u64) -> Option<(u64, CloudEvent)> {
        let state = self.shared.lock();
        state
            .messages
            .range(after + 1..)
            .find(|(_, message)| matches(filter, &message.subject))
            .map(|(sequence, message)| (*sequence, message.event.clone()))
    }

    /// A negatively acknowledged message whose time has come, or when the next one will.
    fn redelivery(&self, durable: &str) -> (Option<(u64, CloudEvent)>, Option<std::time::Instant>) {
        let mut state = self.shared.lock();
        let now = std::time::Instant::now();
        let State {
            messages, durables, ..
        } = &mut *state;
        let Some(durable) = durables.get_mut(durable) else {
            return (None, None);
        };
        let ready = durable
            .redeliver
            .iter()
            .find(|(_, at)| **at <= now)
            .map(|(sequence, _)| *sequence);
        if let Some(sequence) = ready {
            durable.redeliver.remove(&sequence);
            let acked = sequence <= durable.ack_floor || durable.acked.contains(&sequence);
            if let (false, Some(message)) = (acked, messages.get(&sequence)) {
                return (Some((sequence, message.event.clone())), None);
            }
        }
        (None, durable.redeliver.values().min().copied())
    }

    /// Message `sequence` (`event`) handed to `durable`.
    fn delivery(&self, durable: &str, sequence: u64, event: CloudEvent) -> Delivery {
        Delivery {
            event,
            stream_sequence: sequence,
            acker: Acker::InProcess(Box::new(AckHandle {
                shared: self.shared.clone(),
                durable: durable.to_string(),
                sequence,
            })),
        }
    }

    fn next_delivery(&self, durable: &str, after: u64) -> Option<(u64, CloudEvent)> {
        let state = self.shared.lock();
        let durable_state = state.durables.get(durable)?;
        state
            .messages
            .range(after + 1..)
            .find(|(sequence, message)| {
                matches(&durable_state.filter, &message.subject)
                    && !durable_state.acked.contains(sequence)
            })
            .map(|(sequence, message)| (*sequence, message.event.clone()))
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    async fn publish_batch(
        &self,
        events: &[(String, CloudEvent)],
    ) -> Result<Vec<PublishOutcome>, BusError> {
        let mut outcomes = Vec::with_capacity(events.len());
        let last = {
            let mut state = self.shared.lock();
            for (msg_id, event) in events {
                if let Some(&sequence) = state.seen_ids.get(msg_id) {
                    outcomes.push(PublishOutcome {
                        stream_sequence: sequence,
                        duplicate: true,
                    });
                    continue;
                }
                state.last_sequence += 1;
                let sequence = state.last_sequence;
                state.seen_ids.insert(msg_id.clone(), sequence);
                let subject =
                    self.subjects
                        .event(&event.aggregatetype, &event.aggregateid, &event.eventname);
                state.messages.insert(
                    sequence,
                    Stored {
                        subject,
                        event: event.clone(),
                    },
                );
                outcomes.push(PublishOutcome {
                    stream_sequence: sequence,
                    duplicate: false,
                });
            }
            state.last_sequence
        };
        self.shared.last_sequence.send_replace(last);
        Ok(outcomes)
    }

    async fn state(&self) -> Result<StreamState, BusError> {
        let state = self.shared.lock();
        Ok(StreamState {
            messages: state.messages.len() as u64,
            last_sequence: state.last_sequence,
        })
    }

    async fn last_event(&self) -> Result<Option<CloudEvent>, BusError> {
        let state = self.shared.lock();
        Ok(state.messages.values().next_back().map(|m| m.event.clone()))
    }

    async fn positions(&self) -> Result<HashSet<i64>, BusError> {
        let state = self.shared.lock();
        Ok(state.messages.values().map(|m| m.event.position).collect())
    }

    async fn consume(&self, durable: &str, filter: &str) -> Result<Deliveries, BusError> {
        self.consume_from(durable, filter, false)
    }

    async fn consume_new(&self, durable: &str, filter: &str) -> Result<Deliveries, BusError> {
        self.consume_from(durable, filter, true)
    }

    async fn work(
        &self,
        durable: &str,
        filter: &str,
        ack_wait: std::time::Duration,
    ) -> Result<WorkQueue, BusError> {
        // One process: the durable's lazy stream already hands out one message per poll.
        Ok(Box::new(MemoryWork(
            self.consume(durable, filter).await?,
            ack_wait,
        )))
    }

    async fn tail(&self, filter: &str) -> Result<Tail, BusError> {
        let start = self.shared.lock().last_sequence;
        let changes = self.shared.last_sequence.subscribe();
        let events = futures::stream::unfold(
            (self.clone(), filter.to_string(), start, changes),
            |(bus, filter, mut after, mut changes)| async move {
                loop {
                    changes.borrow_and_update();
                    if let Some((sequence, event)) = bus.next_matching(&filter, after) {
                        after = sequence;
                        return Some((Ok(event), (bus, filter, after, changes)));
                    }
                    if changes.changed().await.is_err() {
                        return None;
                    }
                }
            },
        );
        Ok(events.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: i64) -> CloudEvent {
        CloudEvent {
            specversion: "1.0".into(),
            id: CloudEvent::event_id("run", "r1", position),
            source: "/aurora/run".into(),
            event_type: "aurora.run.RunRequested.v1".into(),
            subject: "run/r1".into(),
            time: chrono::Utc::now(),
            datacontenttype: "application/json".into(),
            data: serde_json::json!({}),
            aggregatetype: "run".into(),
            aggregateid: "r1".into(),
            sequence: position,
            position,
            xid: 0,
            eventname: "RunRequested".into(),
            eventversion: "1".into(),
            principal: "anonymous".into(),
            tokenid: None,
            requestid: "req".into(),
            clientip: None,
            traceparent: None,
            principalrole: None,
        }
    }

    #[tokio::test]
    async fn a_message_id_seen_before_is_a_duplicate() {
        let bus = MemoryBus::new(Subjects::default());
        let e = event(1);
        let first = bus
            .publish_batch(&[(e.id.clone(), e.clone())])
            .await
            .unwrap();
        let again = bus.publish_batch(&[(e.id.clone(), e)]).await.unwrap();
        assert!(!first[0].duplicate);
        assert!(again[0].duplicate);
        assert_eq!(bus.state().await.unwrap().messages, 1);
    }

    #[tokio::test]
    async fn unacked_messages_are_redelivered_to_the_next_consumer_of_the_durable() {
        let bus = MemoryBus::new(Subjects::default());
        let batch: Vec<_> = (1..=3).map(|p| (event(p).id.clone(), event(p))).collect();
        bus.publish_batch(&batch).await.unwrap();

        let mut first = bus.consume("d", "aurora.events.>").await.unwrap();
        let one = first.next().await.unwrap().unwrap();
        assert_eq!(one.event.position, 1);
        one.ack().await.unwrap();
        let two = first.next().await.unwrap().unwrap();
        assert_eq!(two.event.position, 2);
        drop(two); // never acked
        drop(first);

        let mut second = bus.consume("d", "aurora.events.>").await.unwrap();
        let again = second.next().await.unwrap().unwrap();
        assert_eq!(again.event.position, 2, "the unacked message comes back");
    }

    #[tokio::test]
    async fn a_work_item_given_back_is_handed_out_again_after_its_delay_and_others_go_first() {
        let bus = MemoryBus::new(Subjects::default());
        let batch: Vec<_> = (1..=2).map(|p| (event(p).id.clone(), event(p))).collect();
        bus.publish_batch(&batch).await.unwrap();
        let mut work = bus
            .work("w", "aurora.events.>", std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let one = work.next().await.unwrap();
        assert_eq!(one.event.position, 1);
        let began = std::time::Instant::now();
        one.nak(std::time::Duration::from_millis(200))
            .await
            .unwrap();
        let two = work.next().await.unwrap();
        assert_eq!(two.event.position, 2, "the next item is not held up");
        two.ack().await.unwrap();
        let again = work.next().await.unwrap();
        assert_eq!(again.event.position, 1, "the given-back item comes again");
        assert!(began.elapsed() >= std::time::Duration::from_millis(200));
        again.ack().await.unwrap();
    }

    #[tokio::test]
    async fn a_tail_sees_only_matching_messages_published_after_it_began() {
        let bus = MemoryBus::new(Subjects::default());
        let old = event(1);
        bus.publish_batch(&[(old.id.clone(), old)]).await.unwrap();
        let mut tail = bus.tail("aurora.events.run.*.RunRequested").await.unwrap();
        let mut other = event(2);
        other.eventname = "RunCancelled".into();
        let new = event(3);
        bus.publish_batch(&[(other.id.clone(), other), (new.id.clone(), new)])
            .await
            .unwrap();
        let got = tail.next().await.unwrap().unwrap();
        assert_eq!(got.position, 3, "not the old one, not the other event type");
    }

    #[tokio::test]
    async fn a_consumer_waits_for_messages_published_later() {
        let bus = MemoryBus::new(Subjects::default());
        let mut deliveries = bus.consume("d", "aurora.events.run.>").await.unwrap();
        let publisher = bus.clone();
        tokio::spawn(async move {
            let e = event(7);
            publisher.publish_batch(&[(e.id.clone(), e)]).await.unwrap();
        });
        let got = deliveries.next().await.unwrap().unwrap();
        assert_eq!(got.event.position, 7);
    }
}
