//! The transcode pool: a supervisor holding a fixed number of transcode workers (default:
//! one per core), each running one ffmpeg at a time. Jobs beyond the workers wait in the
//! pool's queue, in order.
//!
//! A worker that dies mid-job (a panic) takes its ffmpeg with it (killed on drop) and drops
//! the job's reply, which the run actor sees as a failed attempt to retry; the pool starts
//! a new worker in its place. Restarts beyond the pool's budget escalate: the pool stops,
//! and its supervisor (the engine's root) logs and counts it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::faults::{trip, Fault};
use crate::supervision::{EngineMetrics, Restarts, Verdict};
use crate::tools::{Progress, ToolError, Tools, TranscodeJob};

/// One transcode to run.
pub struct TranscodeRequest {
    /// What to transcode.
    pub job: TranscodeJob,
    /// Cancelled: ffmpeg is killed.
    pub cancel: CancellationToken,
    /// Longest it may take.
    pub timeout: Duration,
    /// Progress reports go here.
    pub progress: mpsc::UnboundedSender<Progress>,
    /// The outcome (the output's picture size, if ffmpeg said) goes here. Dropped
    /// unanswered if the worker dies.
    pub reply: oneshot::Sender<Result<Option<(u32, u32)>, ToolError>>,
}

/// Messages of the pool.
pub enum PoolMsg {
    /// Run a transcode when a worker is free.
    Submit(Box<TranscodeRequest>),
    /// Worker `index` finished its job.
    Idle(usize),
}

/// Messages of a worker.
pub enum WorkerMsg {
    /// Run this transcode.
    Run(Box<TranscodeRequest>),
}

/// Settings of the pool.
#[derive(Clone)]
pub struct PoolConfig {
    /// Number of workers.
    pub workers: usize,
    /// Restarts of workers allowed per window before the pool gives up.
    pub budget: (usize, Duration),
    /// The binaries.
    pub tools: Tools,
    /// Metrics.
    pub metrics: EngineMetrics,
}

/// The pool actor.
pub struct TranscodePool;

/// The pool's state.
pub struct PoolState {
    config: PoolConfig,
    workers: Vec<ActorRef<WorkerMsg>>,
    idle: VecDeque<usize>,
    queue: VecDeque<Box<TranscodeRequest>>,
    restarts: Restarts,
}

async fn spawn_worker(
    pool: &ActorRef<PoolMsg>,
    index: usize,
    config: &PoolConfig,
) -> Result<ActorRef<WorkerMsg>, ActorProcessingErr> {
    let worker = TranscodeWorker {
        index,
        pool: pool.clone(),
        tools: config.tools.clone(),
        metrics: config.metrics.clone(),
    };
    let (worker, _) = Actor::spawn_linked(None, worker, (), pool.get_cell()).await?;
    Ok(worker)
}

impl PoolState {
    fn dispatch(&mut self) {
        while let (Some(_), Some(_)) = (self.idle.front(), self.queue.front()) {
            let index = self.idle.pop_front().expect("checked");
            let request = self.queue.pop_front().expect("checked");
            if request.cancel.is_cancelled() {
                let _ = request.reply.send(Err(ToolError::Cancelled));
                self.idle.push_front(index);
                continue;
            }
            if let Err(error) = self.workers[index].cast(WorkerMsg::Run(request)) {
                tracing::warn!(worker = index, %error, "worker gone; job dropped for retry");
            }
        }
    }
}

impl Actor for TranscodePool {
    type Msg = PoolMsg;
    type State = PoolState;
    type Arguments = PoolConfig;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        config: PoolConfig,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut workers = Vec::with_capacity(config.workers);
        for index in 0..config.workers {
            workers.push(spawn_worker(&me, index, &config).await?);
        }
        Ok(PoolState {
            idle: (0..config.workers).collect(),
            workers,
            queue: VecDeque::new(),
            restarts: Restarts::new("transcode_worker", config.budget),
            config,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PoolMsg::Submit(request) => state.queue.push_back(request),
            PoolMsg::Idle(index) => state.idle.push_back(index),
        }
        state.dispatch();
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Only failures are restarted: a child that stopped was stopped on purpose
        // (shutdown).
        let SupervisionEvent::ActorFailed(cell, error) = &event else {
            return Ok(());
        };
        let Some(index) = state
            .workers
            .iter()
            .position(|w| w.get_id() == cell.get_id())
        else {
            return Ok(());
        };
        let verdict = {
            let _worker = tracing::warn_span!("transcode_worker", worker = index).entered();
            state.restarts.failed(&state.config.metrics, error)
        };
        if let Verdict::GiveUp(reason) = verdict {
            return Err(From::from(reason));
        }
        state.workers[index] = spawn_worker(&me, index, &state.config).await?;
        state.idle.retain(|i| *i != index);
        state.idle.push_back(index);
        state.dispatch();
        Ok(())
    }
}

/// One ffmpeg at a time.
struct TranscodeWorker {
    index: usize,
    pool: ActorRef<PoolMsg>,
    tools: Tools,
    metrics: EngineMetrics,
}

impl Actor for TranscodeWorker {
    type Msg = WorkerMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        message: Self::Msg,
        _: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let WorkerMsg::Run(request) = message;
        let TranscodeRequest {
            job,
            cancel,
            timeout,
            progress,
            reply,
        } = *request;
        let started = Instant::now();
        let active = ActiveGuard::new(self.metrics.clone());
        let last_fps = Arc::new(std::sync::Mutex::new(0.0f32));
        let fps = last_fps.clone();
        let result = self
            .tools
            .transcode(&job, &cancel, timeout, move |report| {
                trip(Fault::TranscodeWorkerMidway);
                *fps.lock().unwrap_or_else(|e| e.into_inner()) = report.fps;
                let _ = progress.send(report);
            })
            .await;
        drop(active);
        if result.is_ok() {
            self.metrics
                .transcode_seconds
                .observe(started.elapsed().as_secs_f64());
            let fps = *last_fps.lock().unwrap_or_else(|e| e.into_inner());
            if fps > 0.0 {
                self.metrics.transcode_fps.observe(f64::from(fps));
            }
        }
        let _ = reply.send(result);
        let _ = self.pool.cast(PoolMsg::Idle(self.index));
        Ok(())
    }
}

/// Counts a transcode as active while it lives (also through a panic).
struct ActiveGuard(EngineMetrics);

impl ActiveGuard {
    fn new(metrics: EngineMetrics) -> Self {
        metrics.transcodes_active.inc();
        Self(metrics)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.transcodes_active.dec();
    }
}
