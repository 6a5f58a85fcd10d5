//! The shards' supervisor: a failed shard is started again in its place, within a budget
//! per shard; past it the shard rests for [`REST`] and its keys go unlimited meanwhile.

use std::sync::{Arc, RwLock};
use tokio::time::Instant;

use aurora_domain::limits::Policies;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::check::{ShardLabels, REST, SHARD_RESTARTS};
use super::shard::{Shard, ShardMsg};
use crate::supervision::{EngineMetrics, Restarts, Verdict as Restart};

/// The supervisor's messages.
pub enum SupervisorMsg {
    /// Shard `index` has rested: a fresh budget, and start it.
    Revive(usize),
}

pub(super) struct Supervisor {
    pub(super) policies: Arc<Policies>,
    /// The shards, by index; the handle reads them to route a key.
    pub(super) shards: Arc<RwLock<Vec<ActorRef<ShardMsg>>>>,
    pub(super) epoch: Instant,
    pub(super) held: Family<ShardLabels, Gauge>,
    pub(super) supervision: EngineMetrics,
    pub(super) cap: usize,
}

impl Supervisor {
    /// Starts shard `index` in its place (its keys find it from the next check on).
    async fn replace(&self, me: &ActorRef<SupervisorMsg>, index: usize) {
        match self.spawn_shard(me, index).await {
            Ok(shard) => {
                self.shards.write().unwrap_or_else(|e| e.into_inner())[index] = shard;
            }
            // Its keys go unlimited (checks find no shard) rather than the supervisor,
            // and every shard with it, going down; tried again after a rest.
            Err(error) => {
                tracing::error!(shard = index, %error, "could not restart a rate-limit shard");
                me.send_after(REST, move || SupervisorMsg::Revive(index));
            }
        }
    }

    async fn spawn_shard(
        &self,
        me: &ActorRef<SupervisorMsg>,
        index: usize,
    ) -> Result<ActorRef<ShardMsg>, ActorProcessingErr> {
        let shard = Shard {
            policies: self.policies.clone(),
            epoch: self.epoch,
            held: self
                .held
                .get_or_create(&ShardLabels {
                    shard: index as u32,
                })
                .clone(),
            cap: self.cap,
        };
        let (shard, _) = Actor::spawn_linked(None, shard, (), me.get_cell()).await?;
        Ok(shard)
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    /// Each shard's restarts.
    type State = Vec<Restarts>;
    type Arguments = usize;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        count: usize,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut shards = Vec::with_capacity(count);
        for index in 0..count {
            shards.push(self.spawn_shard(&me, index).await?);
        }
        *self.shards.write().unwrap_or_else(|e| e.into_inner()) = shards;
        Ok((0..count)
            .map(|_| Restarts::new("rate_limit_shard", SHARD_RESTARTS))
            .collect())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        message: Self::Msg,
        restarts: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisorMsg::Revive(index) = message;
        restarts[index].reset();
        self.replace(&me, index).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        restarts: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, error) = match &event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                reason.clone().unwrap_or_else(|| "stopped".to_string()),
            ),
            _ => return Ok(()),
        };
        let index = {
            let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
            shards.iter().position(|s| s.get_id() == cell.get_id())
        };
        let Some(index) = index else {
            return Ok(());
        };
        let verdict = {
            let _shard = tracing::warn_span!("rate_limit_shard", shard = index).entered();
            restarts[index].failed(&self.supervision, &error)
        };
        match verdict {
            Restart::Restart => self.replace(&me, index).await,
            Restart::GiveUp(_) => {
                me.send_after(REST, move || SupervisorMsg::Revive(index));
            }
        }
        Ok(())
    }
}
