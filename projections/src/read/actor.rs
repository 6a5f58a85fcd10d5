//! The actor that feeds one projection.
//!
//! On start (and on every restart) it catches its projection up from the store; a
//! projection in memory first opens a tail of its own on the bus, so that an event
//! committed while it loads is in one or the other. Then it applies what it is handed:
//! batches from the shared durable consumer (a call, answered once applied; the feed acks
//! after every projection answered), or what its own tail delivers. A panic, a failed
//! apply of its own tail, or a tail that breaks ends the actor; its supervisor starts it
//! again, from its checkpoint.

use std::sync::Arc;
use std::time::Duration;

use aurora_nats::EventBus;
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio_util::task::AbortOnDropHandle;

use super::envelope::{Batch, Envelope};
use super::projection::{Projection, Scope};
use super::supervisor::Statuses;

/// Deliveries of a tail applied together, at most.
const TAIL_CHUNK: usize = 256;

/// How often a projection tidies itself.
pub const TIDY_EVERY: Duration = Duration::from_secs(600);

/// What a projection actor is asked to do.
pub enum ProjectionMsg {
    /// Apply a batch from the shared consumer and answer once it is applied.
    Apply(Batch, RpcReplyPort<Result<(), String>>),
    /// Apply a batch from the actor's own tail.
    Delivered(Batch),
    /// The tail broke: end, to be started again (tail again, load again).
    TailBroken(String),
    /// Forget what no longer matters.
    Tidy,
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
    pub statuses: Arc<Statuses>,
}

/// A running projection actor's state.
pub struct ProjectionState {
    projection: Arc<dyn Projection>,
    statuses: Arc<Statuses>,
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
            ProjectionMsg::Apply(batch, reply) => {
                // A failed apply fails the actor (after answering): it starts again from
                // its checkpoint, and a projection that keeps failing is reported stuck
                // instead of holding every batch back.
                match state.projection.apply(&batch).await {
                    Ok(()) => {
                        state.statuses.applied(name, &batch);
                        let _ = reply.send(Ok(()));
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error.to_string()));
                        return Err(From::from(format!("{name}: applying a batch: {error}")));
                    }
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
