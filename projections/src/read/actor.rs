//! The actor that feeds one projection.
//!
//! On start (and on every restart) it catches its projection up from the store; a
//! projection in memory first opens a tail of its own on the bus, so that an event
//! committed while it loads is in one or the other. Then it applies what it is handed:
//! parts of the shared durable consumer's batches, queued in its **lane** (each answered
//! once applied; the feed acks a batch after every projection answered), or what its own
//! tail delivers. The parts waiting in its lane when it gets to them are applied together,
//! in one transaction: a projection that falls behind takes bigger batches, at the same
//! fixed cost each, and catches up instead of queueing. A panic, a failed apply, an apply
//! past [`APPLY_TIMEOUT`], or a tail that breaks ends the actor (and drops its lane: what
//! waited there is given back to the bus); its supervisor starts it again, from its
//! checkpoint.

use std::sync::Arc;
use std::time::Duration;

use aurora_nats::EventBus;
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use super::envelope::{Batch, Envelope};
use super::projection::{Projection, Scope};

/// Deliveries of a tail applied together, at most.
const TAIL_CHUNK: usize = 256;

/// How often a projection tidies itself.
pub const TIDY_EVERY: Duration = Duration::from_secs(600);

/// How long one apply may take before the actor fails and starts again from its
/// checkpoint, so that a hung apply does not hold every later batch behind it. Within the
/// consumer's ack wait (30 s) for the apply itself; a part queued behind another apply may
/// wait longer (the feed bounds the events in flight, not their age), and is then
/// redelivered to another replica as well: applying is idempotent, so that costs work
/// (and a run-feed message published twice), never a wrong view.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(25);

/// Events of queued parts applied together: parts are taken while fewer than this many
/// are (so at most about twice this: one transaction well within [`APPLY_TIMEOUT`]); the
/// parts left wait for the next `Drain`, which each part queued comes with.
const MERGED: usize = 1000;

/// A projection's part of one batch of the shared feed, and where to say whether it was
/// applied (dropped unanswered if the actor ends first: the feed gives the batch back).
pub struct Part {
    /// The events this projection follows, in delivery order.
    pub batch: Batch,
    /// Answered once the part is applied (or failed).
    pub applied: oneshot::Sender<Result<(), String>>,
}

/// Where the feed queues a projection actor's parts; the actor owns the other end.
pub type Lane = mpsc::UnboundedSender<Part>;

/// What a projection actor is asked to do.
pub enum ProjectionMsg {
    /// Parts are waiting in the lane: apply them, together (sent once per part queued, so
    /// a part is never left waiting without one).
    Drain,
    /// Apply a batch from the actor's own tail.
    Delivered(Batch),
    /// The tail broke: end, to be started again (tail again, load again).
    TailBroken(String),
    /// Forget what no longer matters.
    Tidy,
}

/// Where a projection actor reports each batch it applied (the supervisor's statuses:
/// the actor does not depend on its supervisor).
pub trait Applied: Send + Sync {
    /// Projection `name` applied `batch`.
    fn applied(&self, name: &'static str, batch: &[Arc<Envelope>]);
}

/// Feeds one [`Projection`].
pub struct ProjectionActor;

/// What a projection actor is started with.
pub struct ProjectionArgs {
    /// The projection.
    pub projection: Arc<dyn Projection>,
    /// The bus (for the tail of a projection in memory).
    pub bus: Arc<dyn EventBus>,
    /// Where it reports what it applied.
    pub statuses: Arc<dyn Applied>,
    /// Its end of the lane the feed queues parts in (shared projections).
    pub lane: Option<mpsc::UnboundedReceiver<Part>>,
}

/// A running projection actor's state.
pub struct ProjectionState {
    projection: Arc<dyn Projection>,
    statuses: Arc<dyn Applied>,
    lane: Option<mpsc::UnboundedReceiver<Part>>,
    /// The task forwarding its tail; ends with the actor, however it ends.
    _tail: Option<AbortOnDropHandle<()>>,
}

impl Actor for ProjectionActor {
    type Msg = ProjectionMsg;
    type State = ProjectionState;
    type Arguments = ProjectionArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: ProjectionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let ProjectionArgs {
            projection,
            bus,
            statuses,
            lane,
        } = args;
        // A projection in memory tails first, then loads: an event committed in between
        // is in one or the other (or both: applying is idempotent).
        let tail = match projection.scope() {
            Scope::Replica => {
                let filter = projection.interest().filter(bus.subjects());
                Some(bus.tail(&filter).await?)
            }
            Scope::Shared => None,
        };
        projection.catch_up().await?;
        let interest = projection.interest();
        let tail = tail.map(|tail| {
            let me = me.clone();
            AbortOnDropHandle::new(tokio::spawn(async move {
                let mut chunks = tail.ready_chunks(TAIL_CHUNK);
                let reason = loop {
                    let Some(chunk) = chunks.next().await else {
                        break "the tail ended".to_string();
                    };
                    let mut batch = Vec::with_capacity(chunk.len());
                    for event in chunk {
                        match event {
                            Ok(event) => {
                                // The subject filter may be wider than the interest (several
                                // event names of one aggregate).
                                let envelope = Envelope::delivered(event);
                                if interest.wants(&envelope.event) {
                                    batch.push(Arc::new(envelope));
                                }
                            }
                            Err(error) => {
                                let _ = me.cast(ProjectionMsg::Delivered(batch.into()));
                                let _ = me.cast(ProjectionMsg::TailBroken(error.to_string()));
                                return;
                            }
                        }
                    }
                    if me.cast(ProjectionMsg::Delivered(batch.into())).is_err() {
                        return;
                    }
                };
                let _ = me.cast(ProjectionMsg::TailBroken(reason));
            }))
        });
        me.send_interval(TIDY_EVERY, || ProjectionMsg::Tidy);
        tracing::info!(projection = projection.name(), "projection started");
        Ok(ProjectionState {
            projection,
            statuses,
            lane,
            _tail: tail,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let name = state.projection.name();
        match message {
            ProjectionMsg::Drain => {
                let Some(lane) = state.lane.as_mut() else {
                    return Ok(());
                };
                // About MERGED events: one transaction stays well within APPLY_TIMEOUT.
                let (mut parts, mut events) = (Vec::new(), 0);
                while events < MERGED {
                    let Ok(part) = lane.try_recv() else { break };
                    events += part.batch.len();
                    parts.push(part);
                }
                let batch: Batch = match parts.as_slice() {
                    [] => return Ok(()),
                    [one] => one.batch.clone(),
                    many => many.iter().flat_map(|p| p.batch.iter().cloned()).collect(),
                };
                // A failed apply fails the actor (after answering): it starts again from
                // its checkpoint, and a projection that keeps failing is reported stuck
                // instead of holding every batch back.
                let outcome =
                    match tokio::time::timeout(APPLY_TIMEOUT, state.projection.apply(&batch)).await
                    {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(error)) => Err(format!("applying a batch: {error}")),
                        Err(_) => Err(format!(
                            "applying a batch took over {} s",
                            APPLY_TIMEOUT.as_secs()
                        )),
                    };
                if outcome.is_ok() {
                    state.statuses.applied(name, &batch);
                }
                for part in parts {
                    let _ = part.applied.send(outcome.clone());
                }
                if let Err(error) = outcome {
                    return Err(From::from(format!("{name}: {error}")));
                }
            }
            ProjectionMsg::Delivered(batch) => {
                if !batch.is_empty() {
                    state.projection.apply(&batch).await?;
                    state.statuses.applied(name, &batch);
                }
            }
            ProjectionMsg::TailBroken(reason) => {
                return Err(From::from(format!("{name}: {reason}; loading again")));
            }
            ProjectionMsg::Tidy => state.projection.tidy(),
        }
        Ok(())
    }
}
