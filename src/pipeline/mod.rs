//! Running one claimed pipeline, under the supervision of its node.
//!
//! A node spawns a [`PipelineTask`] for each pipeline it holds a lease on, and stops it with a
//! [`StopReason`]. The task records its run (start and end, on the metadata database's clock),
//! reports its observed state (every write fenced by the lease's token), and acts on the class
//! of each error: transient errors are retried with backoff, fatal ones are reported as
//! `error` and re-checked after `retry_max_ms`, so a fixed source recovers by itself.
//!
//! The node hands each task a lease deadline; the task stops by itself when it passes, so it
//! never outlives its lease even when the node loop is slow.
//!
//! Running a pipeline: prechecks of the source, a check that the target is reachable,
//! resolving and saving the start position, then streaming: Select → Extract → Transform →
//! Load, with the metadata position written after each batch is applied on the target.
//!
//! Where each part lives:
//! - this file: the task's supervision (spawn, stop, the lease deadline, error classes,
//!   backoff, the observed state);
//! - `start.rs`: prechecks and the start position; `stream.rs`: the batch loop and what an
//!   applied batch leaves to record; `lag.rs`: lag after each batch; `fencing.rs`: raising
//!   the lease's token when a data server holds one it has not passed;
//! - the stages: [`select`] (the only code on the source), [`extract`], [`transform`] (pure),
//!   [`load`] (the only code on the target); [`heartbeat`] and [`stats`] beside them.
//!
//! Select and Load meet only through [`select::Batch`] (its serialisable part,
//! [`select::BatchData`]) and the position it ends at, so that they can run in two processes.

mod connect;
pub mod copy;
pub mod extract;
mod fencing;
pub mod heartbeat;
mod lag;
pub mod load;
pub mod select;
mod start;
pub mod stats;
mod stream;
pub mod transform;
pub mod verify;

pub use connect::connect;

use crate::config::{ConfigError, PipelineConfig, Settings};
use crate::error::{Error, ErrorClass, Result, chain};
use crate::meta::{self, EventLevel, MetaDb};
use crate::model::{
    EventKind, FencingToken, InstallationId, PipelineId, PipelineKey, PipelineState,
};
use futures_util::FutureExt;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a node stops a pipeline task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The operator stopped the channel.
    ChannelStopped,
    /// The pipeline's configuration changed; it restarts at once with the new one.
    ConfigChanged,
    /// The node is shutting down and hands the pipeline over.
    NodeShutdown,
    /// The lease was lost (taken over, reset, or not renewed in time).
    LeaseLost,
    /// The pipeline was deleted, or this node may no longer run it.
    Removed,
    /// The operator drained the node (`drain_node`).
    Drained,
    /// ZooKeeper can no longer confirm the lease (unreachable, or the session ended).
    Unconfirmed,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::ChannelStopped => "stopped by the operator",
            StopReason::ConfigChanged => "configuration changed",
            StopReason::NodeShutdown => "node shutting down",
            StopReason::LeaseLost => "lease lost",
            StopReason::Removed => "removed from this node",
            StopReason::Drained => "node drained",
            StopReason::Unconfirmed => {
                "zookeeper can no longer confirm the lease (unreachable, or the session ended)"
            }
        })
    }
}

/// What a pipeline task runs with.
#[derive(Debug, Clone)]
pub struct PipelineTask {
    pub meta: MetaDb,
    /// The node's name, recorded with each run.
    pub node: String,
    /// The node process's random instance number: with the name, who holds a token on data
    /// servers.
    pub instance: u64,
    pub pipeline: PipelineId,
    /// The fencing token of the lease this task runs under.
    pub token: FencingToken,
    /// The validated configuration, or why it is invalid.
    pub config: Result<PipelineConfig, ConfigError>,
    pub settings: Settings,
    /// How soon another node may take this pipeline over when this node stops answering:
    /// the lease, or with ZooKeeper the session timeout when that is shorter.
    pub takeover: Duration,
    /// The metadata schema's installation id, which keys the pipeline's rows on targets.
    pub installation: InstallationId,
}

/// A running pipeline task, owned by the node.
#[derive(Debug)]
pub struct PipelineHandle {
    /// Tells the task to stop, and why.
    stop: oneshot::Sender<StopReason>,
    task: JoinHandle<()>,
}

impl PipelineHandle {
    /// Stops the task and waits until it has recorded its end.
    pub async fn stop(self, reason: StopReason) {
        let _ = self.stop.send(reason);
        let _ = self.task.await;
    }

    /// Whether the task ended by itself (it lost its lease while writing).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Returns when the lease's local deadline has passed without being moved on, or when the
/// node dropped the deadline.
pub(crate) async fn lapse(mut deadline: watch::Receiver<Instant>) {
    loop {
        let until = *deadline.borrow_and_update();
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {
                if *deadline.borrow() <= Instant::now() {
                    return;
                }
            }
            changed = deadline.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

impl PipelineTask {
    /// Starts the task; it stops by itself when `deadline` passes without being renewed.
    pub fn spawn(self, deadline: watch::Receiver<Instant>) -> PipelineHandle {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(self.run(stopped, deadline));
        PipelineHandle { stop, task }
    }

    async fn run(self, stopped: oneshot::Receiver<StopReason>, deadline: watch::Receiver<Instant>) {
        let run = match meta::start_run(&self.meta, self.pipeline, &self.node, self.token).await {
            Ok(run) => Some(run),
            Err(error) => {
                warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot record the run");
                None
            }
        };
        info!(pipeline = %self.pipeline, token = %self.token, "pipeline started");
        let stats = Arc::new(stats::Recorder::new(self.settings.stat_bucket));
        let stop_stats = CancellationToken::new();
        let mut writer = AbortOnDrop(stats::spawn_writer(
            self.meta.clone(),
            self.pipeline,
            stats.clone(),
            stop_stats.clone(),
        ));
        // A stop lets the batch being applied finish (briefly), so that a stopped pipeline
        // leaves every partition of the target at one position.
        let stopping = CancellationToken::new();
        let work = self.work(&stopping, &stats);
        tokio::pin!(work);
        let reason = tokio::select! {
            biased;
            reason = stopped => {
                stopping.cancel();
                tokio::select! {
                    _ = &mut work => {}
                    () = lapse(deadline.clone()) => {}
                    () = tokio::time::sleep(self.settings.lease / 4) => {}
                }
                reason.unwrap_or(StopReason::NodeShutdown)
            }
            () = lapse(deadline.clone()) => {
                warn!(pipeline = %self.pipeline, "lease deadline passed without renewal: stopping");
                StopReason::LeaseLost
            }
            error = &mut work => {
                warn!(pipeline = %self.pipeline, error = %chain(&error), "pipeline task ended");
                StopReason::LeaseLost
            }
        };
        stop_stats.cancel();
        // The last counts are written, within a bound: a metadata server that is away must
        // not hold up the stop.
        let _ = tokio::time::timeout(self.settings.lease / 4, &mut writer.0).await;
        if reason != StopReason::LeaseLost {
            let state_reason = reason.to_string();
            let _ = meta::write_state(
                &self.meta,
                self.pipeline,
                self.token,
                PipelineState::Stopped,
                Some(&state_reason),
            )
            .await;
        }
        if let Some(run) = run
            && let Err(error) = meta::stop_run(&self.meta, run, &reason.to_string()).await
        {
            warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot record the end of the run");
        }
        info!(pipeline = %self.pipeline, reason = %reason, "pipeline stopped");
    }

    /// Works until the lease is lost (the only way it returns), reporting state as it goes.
    async fn work(&self, stopping: &CancellationToken, stats: &Arc<stats::Recorder>) -> Error {
        let config = match &self.config {
            Ok(config) => config,
            Err(invalid) => {
                let reason = invalid.to_string();
                let mut backoff = self.settings.retry_min;
                loop {
                    match meta::write_state(
                        &self.meta,
                        self.pipeline,
                        self.token,
                        PipelineState::Error,
                        Some(&reason),
                    )
                    .await
                    {
                        Ok(()) => break,
                        Err(error @ Error::Fenced { .. }) => return error,
                        Err(error) => {
                            warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot record the pipeline state");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(self.settings.retry_max);
                        }
                    }
                }
                self.log(EventLevel::Error, EventKind::InvalidConfig, &reason)
                    .await;
                return std::future::pending().await;
            }
        };
        if let Err(error) = self.report(PipelineState::Starting, None).await {
            return error;
        }
        let mut backoff = self.settings.retry_min;
        loop {
            // A panic in an attempt is this pipeline's error, backed off like any other; the
            // node keeps the lease and the monitor sees `error`.
            let attempt = async {
                match self.check_and_resolve(config).await {
                    Ok(start) => {
                        let Err(error) = self
                            .stream(config, start, &mut backoff, stopping, stats)
                            .await;
                        error
                    }
                    Err(error) => error,
                }
            };
            let outcome = std::panic::AssertUnwindSafe(attempt)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Error::Panicked(
                        format!("pipeline {}", self.pipeline),
                        crate::error::panic_message(&*panic),
                    )
                });
            let wait = match outcome {
                // Asked to stop between batches: not a failure to report.
                error @ (Error::Fenced { .. } | Error::Stopped) => return error,
                Error::TokenBehind { server, newest, .. } => {
                    return self.raise_token(&server, newest).await;
                }
                error => {
                    let text = chain(&error);
                    let (state, wait) = match error.class() {
                        ErrorClass::Transient => (PipelineState::Retrying, backoff),
                        ErrorClass::Fatal => (PipelineState::Error, self.settings.retry_max),
                    };
                    let reason = format!("{text} (checking again in {})", seconds(wait));
                    if let Err(error) = self.report(state, Some(&reason)).await {
                        return error;
                    }
                    self.log(EventLevel::Error, EventKind::PipelineError, &text)
                        .await;
                    backoff = (backoff * 2).min(self.settings.retry_max);
                    wait
                }
            };
            tokio::select! {
                () = stopping.cancelled() => return Error::Stopped,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The pipeline's key in `ottr_sys` on data servers: `installation id/pipeline id`.
    fn pipeline_key(&self) -> PipelineKey {
        PipelineKey::new(&self.installation, self.pipeline)
    }

    async fn report(&self, state: PipelineState, reason: Option<&str>) -> Result<()> {
        match meta::write_state(&self.meta, self.pipeline, self.token, state, reason).await {
            Err(error @ Error::Fenced { .. }) => Err(error),
            Err(error) => {
                // The metadata database is unreachable: keep working, the node decides
                // whether the lease still holds.
                warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot record the pipeline state");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    async fn log(&self, level: EventLevel, kind: EventKind, message: &str) {
        let (node, pipeline) = (Some(self.node.as_str()), Some(self.pipeline));
        meta::log_event_or_warn(&self.meta, level, node, pipeline, kind, message).await;
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}
