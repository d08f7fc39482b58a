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
//! resolving and saving the start position, then streaming: Select → Transform → Load, with
//! the metadata position written after each batch is applied on the target.

mod connect;
pub mod extract;
pub mod heartbeat;
pub mod load;
pub mod select;
pub mod stats;
pub mod transform;

pub use connect::connect;

use crate::config::{ConfigError, PipelineConfig, Settings};
use crate::error::{Error, ErrorClass, Result, chain};
use crate::meta::{self, EventLevel, MetaDb};
use crate::model::{EventKind, FencingToken, PipelineId, PipelineState, Position, StartPoint};
use futures_util::FutureExt;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A batch is handed on when the source has sent nothing for this long (between
/// transactions), without waiting for `batch_timeout_ms`.
const CUT_WHEN_IDLE: Duration = Duration::from_millis(5);
/// Leases within which a second fencing-token raise stops the pipeline (see
/// `PipelineTask::raise_token`).
const RAISE_WINDOW_LEASES: u32 = 10;

/// Where streaming starts, as the prechecks resolved it.
#[derive(Debug)]
struct Start {
    position: Position,
    /// A warning to show with the running state (position near the oldest binlog kept).
    warning: Option<String>,
}

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
    pub installation: String,
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
                        self.stream(config, start, &mut backoff, stopping, stats)
                            .await
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
                error @ Error::Fenced { .. } => return error,
                Error::TokenBehind { server, newest, .. } => {
                    return self.raise_token(&server, newest).await;
                }
                error => {
                    let text = chain(&error);
                    let (state, wait) = match error.class() {
                        ErrorClass::Transient => (PipelineState::Retrying, backoff),
                        ErrorClass::Table | ErrorClass::Fatal => {
                            (PipelineState::Error, self.settings.retry_max)
                        }
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
                () = stopping.cancelled() => return Error::Transform("stopped".into()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Prechecks the source, checks the target, and saves the start position if none is
    /// saved. Returns the summary shown as the reason of a running pipeline.
    async fn check_and_resolve(&self, config: &PipelineConfig) -> Result<Start> {
        let mut source = connect(&config.source).await?;
        let checks = select::run_prechecks(&mut source, config.source.kind).await?;
        if let Some(failure) = select::first_failure(&checks) {
            return Err(failure);
        }
        let mut target = connect(&config.target).await?;
        for (role, server, conn) in [
            ("source", &config.source, &mut source),
            ("target", &config.target, &mut target),
        ] {
            self.record_encryption(role, server, conn).await;
        }
        if !config.echo_pipelines.is_empty() {
            let marks = select::check_marks_logged(&mut source, config.source.kind).await?;
            if let Some(failure) = select::first_failure(std::slice::from_ref(&marks)) {
                return Err(failure);
            }
        }
        let two_way = config
            .table_pairs
            .iter()
            .any(|pair| pair.conflict.is_some());
        if two_way
            && let select::Outcome::Warning(text) =
                select::check_auto_increment(&mut source, &mut target)
                    .await?
                    .outcome
        {
            self.log(EventLevel::Warn, EventKind::AutoIncrementCollision, &text)
                .await;
        }
        let _ = target.disconnect().await;
        let position = match meta::read_position(&self.meta, self.pipeline).await? {
            Some(position) => position,
            None => {
                let resolved = match &config.start {
                    StartPoint::End => select::resolve_end(&mut source, config.source.kind).await?,
                    StartPoint::File(file) => Position {
                        file: Some(file.clone()),
                        gtid: None,
                        trx_rows_done: 0,
                    },
                    StartPoint::Gtid(gtid) => Position {
                        file: None,
                        gtid: Some(gtid.clone()),
                        trx_rows_done: 0,
                    },
                    StartPoint::Timestamp(time) => {
                        select::resolve_timestamp(&config.source, config.server_id, *time).await?
                    }
                };
                // Forget what the target recorded as applied before the new position is saved:
                // a rewind must not be skipped by the target's rows of a later position.
                let mut loader =
                    load::Loader::open(&config.target, self.load_options(config)).await?;
                loader.forget_applied().await?;
                loader.close().await;
                meta::write_position(&self.meta, self.pipeline, self.token, &resolved).await?;
                self.log(
                    EventLevel::Info,
                    EventKind::PositionResolved,
                    &format!("start position {resolved} (from {})", config.start),
                )
                .await;
                resolved
            }
        };
        let warning = match &position.file {
            Some(file) => select::check_not_purged(&mut source, file, &config.source.name).await?,
            None => None,
        };
        let _ = source.disconnect().await;
        Ok(Start { position, warning })
    }

    /// Streams from `start` until something fails: Select → Transform → Load, joined by a
    /// bounded channel, the metadata position written after each batch is applied.
    async fn stream(
        &self,
        config: &PipelineConfig,
        start: Start,
        backoff: &mut Duration,
        stopping: &CancellationToken,
        stats: &Arc<stats::Recorder>,
    ) -> Error {
        match self
            .try_stream(config, start, backoff, stopping, stats)
            .await
        {
            Ok(never) => match never {},
            Err(error) => error,
        }
    }

    async fn try_stream(
        &self,
        config: &PipelineConfig,
        start: Start,
        backoff: &mut Duration,
        stopping: &CancellationToken,
        stats: &Arc<stats::Recorder>,
    ) -> Result<std::convert::Infallible> {
        let options = &config.options;
        let mut loader = load::Loader::open(&config.target, self.load_options(config)).await?;
        let select_options = select::SelectOptions {
            reader: select::ReaderOptions {
                server_id: config.server_id,
                heartbeat: Duration::from_secs(1),
                stop_at_end: false,
            },
            batch_rows: options.batch_rows as usize,
            batch_bytes: options.batch_bytes as usize,
            batch_timeout: options.batch_timeout,
            retry_min: self.settings.retry_min,
            retry_max: self.settings.retry_max,
            split_transactions: !options.transactional,
            cut_when_idle: Some(CUT_WHEN_IDLE),
            // and, two-way, this pipeline's own writes into its source (a conflict's winner,
            // see `load::conflict`)
            echo_keys: config
                .echo_pipelines
                .iter()
                .chain(
                    config
                        .table_pairs
                        .iter()
                        .any(|pair| pair.conflict.is_some())
                        .then_some(&self.pipeline),
                )
                .map(|pipeline| format!("{}/{}", self.installation, pipeline))
                .collect(),
        };
        let budget = Arc::new(select::ByteBudget::default());
        let mut selector = select::Selector::new(
            config.source.clone(),
            select_options,
            start.position.clone(),
            budget,
        );
        // Select runs ahead by one batch at most: memory stays bounded by batch_bytes.
        let (sender, mut batches) = mpsc::channel::<Result<select::Batch>>(1);
        let reader = tokio::spawn(async move {
            loop {
                let next = selector.next_batch().await.transpose();
                crate::failpoint::panic_if_set("select_batch");
                let Some(next) = next else { break };
                let failed = next.is_err();
                if sender.send(next).await.is_err() || failed {
                    break;
                }
            }
        });
        let mut reader = AbortOnDrop(reader);
        let pipeline_key = self.pipeline_key();
        let beats_failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _stop_heartbeats = options.heartbeat.map(|every| {
            AbortOnDrop(
                heartbeat::HeartbeatWriter {
                    meta: self.meta.clone(),
                    node: self.node.clone(),
                    pipeline: self.pipeline,
                    source: config.source.clone(),
                    key: pipeline_key.clone(),
                    every,
                    failing: beats_failing.clone(),
                    stats: stats.clone(),
                }
                .spawn(),
            )
        });
        let mut lag = LagMeter {
            heartbeat: options.heartbeat,
            failing: beats_failing,
            last_beat: Instant::now(),
        };
        let mut transformer = transform::Transformer::new(
            config.table_pairs.clone(),
            options.ddl_sync,
            options.skip_ddl_errors,
        );
        // The position column of v_pipeline_status says how far it has applied.
        let running = match &start.warning {
            Some(warning) => format!("{warning}; applying changes"),
            None => "applying changes".to_owned(),
        };
        self.report(PipelineState::Running, Some(&running)).await?;
        loop {
            // Stop between batches, never inside one.
            let batch = tokio::select! {
                biased;
                () = stopping.cancelled() => return Err(Error::Transform("stopped".into())),
                batch = batches.recv() => match batch {
                    Some(batch) => batch,
                    None => break,
                },
            };
            let mut batch = batch?;
            crate::failpoint::panic_if_set("load_batch");
            let mut counted = stats::BatchStats::default();
            counted.stages.select = batch.select_time;
            let started = Instant::now();
            let changes = batch.take_changes();
            let beats = heartbeat::beats(&changes, &pipeline_key);
            let changes = transformer.extract(changes).map_err(Error::Transform)?;
            counted.count(&changes);
            let has_rows = counted.has_rows();
            counted.stages.extract = started.elapsed();
            let started = Instant::now();
            let changes = transformer.transform(changes).map_err(Error::Transform)?;
            counted.stages.transform = started.elapsed();
            let started = Instant::now();
            loader.apply(changes, &batch.end).await?;
            // Two-way: conflicts' keys are made equal on both sides once this pipeline has
            // applied past them (the heartbeat brings a batch at least every heartbeat_ms).
            if loader.repairs_pending() > 0 {
                match self.repair(&mut loader, config, &batch.end).await {
                    Ok(given_up) => {
                        for text in given_up {
                            warn!(pipeline = %self.pipeline, "{text}");
                            self.log(EventLevel::Warn, EventKind::ConflictUnrepaired, &text)
                                .await;
                        }
                    }
                    Err(error @ Error::Fenced { .. }) => return Err(error),
                    Err(error) => {
                        warn!(pipeline = %self.pipeline, pending = loader.repairs_pending(), error = %chain(&error), "cannot repair conflicts yet");
                    }
                }
            }
            let conflicts = loader.take_conflicts();
            if !conflicts.is_empty() {
                // Recorded after the target commit, like skipped rows.
                if let Err(error) =
                    meta::record_conflicts(&self.meta, self.pipeline, &conflicts).await
                {
                    warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot record conflicts");
                }
            }
            for note in std::mem::take(&mut batch.notes) {
                self.log(EventLevel::Warn, EventKind::RollbackRowsKept, &note)
                    .await;
            }
            for skipped in transformer
                .take_skipped()
                .into_iter()
                .chain(loader.take_skipped_ddl())
            {
                let text = format!(
                    "DDL `{}` at {} was not applied (skip_ddl_errors): {}",
                    skipped.statement, skipped.at.transaction, skipped.reason
                );
                warn!(pipeline = %self.pipeline, "{text}");
                self.log(EventLevel::Warn, EventKind::DdlSkipped, &text)
                    .await;
            }
            let skipped = loader.take_skipped();
            if !skipped.is_empty() {
                // Recorded after the target commit: a crash in between loses the record, not rows.
                warn!(pipeline = %self.pipeline, rows = skipped.len(), "rows rejected by the target were skipped (skip_load_errors)");
                if let Err(error) =
                    meta::record_skipped(&self.meta, &self.node, self.pipeline, &skipped).await
                {
                    warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot record skipped rows");
                }
            }
            match meta::write_position(&self.meta, self.pipeline, self.token, &batch.end).await {
                Ok(()) => {}
                Err(error @ Error::Fenced { .. }) => return Err(error),
                // The metadata database is away: keep applying; the lease deadline decides.
                Err(error) => {
                    warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot save the position")
                }
            }
            *backoff = self.settings.retry_min;
            let event_time =
                (has_rows && batch.last_event_time > 0).then_some(batch.last_event_time);
            lag.measure(&loader, stats, beats, event_time).await;
            counted.stages.load = started.elapsed();
            stats.record_batch(counted);
        }
        // The reader ended without a word: it panicked, or it was stopped.
        match (&mut reader.0).await {
            Err(join) if join.is_panic() => Err(Error::Panicked(
                format!("the binlog reader of pipeline {}", self.pipeline),
                crate::error::panic_message(&*join.into_panic()),
            )),
            _ => Err(Error::Binlog("the binlog reader stopped".into())),
        }
    }

    /// Records (for `v_data_source`) how the connection in `role` to `server` is
    /// encrypted; a failure only logs, and a plain connection is a warning.
    async fn record_encryption(
        &self,
        role: &str,
        server: &crate::config::DataSource,
        conn: &mut mysql_async::Conn,
    ) {
        let tls = match crate::tls::encryption(conn).await {
            Ok(tls) => tls,
            Err(error) => {
                warn!(pipeline = %self.pipeline, error = %error, "cannot read the connection's encryption");
                return;
            }
        };
        if tls.is_none() {
            warn!(pipeline = %self.pipeline, data_source = %server.name, tls_mode = %server.tls.mode, "the connection to the {role} is not encrypted");
        }
        let recorded = meta::record_connection(
            &self.meta,
            self.pipeline,
            role,
            server.id,
            &self.node,
            self.token,
            tls,
        )
        .await;
        if let Err(error) = recorded {
            warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot record the connection's encryption");
        }
    }

    fn load_options(&self, config: &PipelineConfig) -> load::LoadOptions {
        let options = &config.options;
        load::LoadOptions {
            pipeline: self.pipeline,
            pipeline_key: self.pipeline_key(),
            pipeline_name: config.name.clone(),
            token: self.token,
            holder: format!("{}#{}", self.node, self.instance),
            parallelism: usize::from(options.load_parallelism),
            transactional: options.transactional,
            skip_ddl_errors: options.skip_ddl_errors,
            skip_load_errors: options.skip_load_errors,
            takeover: self.takeover,
            source: config
                .table_pairs
                .iter()
                .any(|pair| pair.conflict.is_some())
                .then(|| config.source.clone()),
            reverse_key: config
                .reverse_pipeline
                .map(|pipeline| format!("{}/{}", self.installation, pipeline)),
            arbiter: config.table_pairs.iter().any(|pair| {
                pair.conflict
                    .as_ref()
                    .is_some_and(|rule| !rule.source_is_primary)
            }),
        }
    }

    /// The pipeline's key in `ottr_sys` on data servers: `installation id/pipeline id`.
    fn pipeline_key(&self) -> String {
        format!("{}/{}", self.installation, self.pipeline)
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

    /// Two-way: a round of making conflicts' keys equal on both sides (see `load::repair`),
    /// with how far this pipeline and the channel's other one have applied. Returns what
    /// it gave up on.
    async fn repair(
        &self,
        loader: &mut load::Loader,
        config: &PipelineConfig,
        applied: &Position,
    ) -> Result<Vec<String>> {
        let mut progress = load::RepairProgress {
            applied: applied.file.clone(),
            reverse_applied: None,
        };
        // The metadata is asked only when a key waits for the other pipeline.
        if loader.repairs_settling()
            && let Some(reverse) = config.reverse_pipeline
        {
            progress.reverse_applied = meta::read_position(&self.meta, reverse)
                .await?
                .and_then(|position| position.file);
        }
        loader.repair(&progress).await
    }

    /// A data server holds a token for this pipeline the lease has not passed: raises the
    /// lease's token to it and hands the lease back (only while the lease is still this
    /// task's), so that the next claim takes a token no holder has used. Ends the task.
    ///
    /// A second raise within [`RAISE_WINDOW_LEASES`] leases means two lease authorities (two
    /// metadata databases with the same installation id, or a split brain), which would
    /// raise past each other in turn: the pipeline then stays in `error`, holding its lease,
    /// until the channel is stopped.
    async fn raise_token(&self, server: &str, newest: FencingToken) -> Error {
        let fenced = Error::Fenced {
            pipeline: self.pipeline,
            token: self.token,
        };
        let window = self.settings.lease * RAISE_WINDOW_LEASES;
        match meta::recent_events(
            &self.meta,
            self.pipeline,
            EventKind::FencingTokenRaised,
            window,
        )
        .await
        {
            Ok(0) => {}
            Ok(_) => {
                let reason = format!(
                    "data source '{server}' holds fencing token {newest}, not older than this \
                     lease's {}, again within {}: is another metadata database handing out \
                     leases for this pipeline (a copy with the same installation id, or a split \
                     brain)? Stop the other one, then stop and start the channel",
                    self.token,
                    seconds(window)
                );
                if let Err(error) = self.report(PipelineState::Error, Some(&reason)).await {
                    return error;
                }
                self.log(EventLevel::Error, EventKind::PipelineError, &reason)
                    .await;
                return std::future::pending().await;
            }
            Err(error) => {
                warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot read the event log");
                return fenced;
            }
        }
        match meta::raise_lease_token(&self.meta, self.pipeline, &self.node, self.token, newest)
            .await
        {
            Ok(true) => {
                let text = format!(
                    "data source '{server}' holds fencing token {newest}, not older than this \
                     lease's {}: the metadata handed the token out before (a failover to a \
                     replica that missed lease rows?); the lease's token is raised to {newest} \
                     and the lease handed back, so the next claim takes a new one",
                    self.token
                );
                warn!(pipeline = %self.pipeline, "{text}");
                self.log(EventLevel::Warn, EventKind::FencingTokenRaised, &text)
                    .await;
            }
            Ok(false) => {}
            Err(error) => {
                warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot raise the lease's fencing token");
            }
        }
        fenced
    }

    async fn log(&self, level: EventLevel, kind: EventKind, message: &str) {
        let (node, pipeline) = (Some(self.node.as_str()), Some(self.pipeline));
        meta::log_event_or_warn(&self.meta, level, node, pipeline, kind, message).await;
    }
}

/// Measures lag after each applied batch: from the heartbeats it held, or from the
/// timestamp of its last event when heartbeats are off or not being written.
struct LagMeter {
    heartbeat: Option<Duration>,
    /// Set by the heartbeat writer while it cannot write.
    failing: Arc<std::sync::atomic::AtomicBool>,
    /// When a heartbeat last arrived (or streaming started).
    last_beat: Instant,
}

impl LagMeter {
    fn heartbeats_missing(&self) -> bool {
        match self.heartbeat {
            None => true,
            Some(every) => {
                self.failing.load(std::sync::atomic::Ordering::Relaxed)
                    || self.last_beat.elapsed() > every * 3 + Duration::from_secs(5)
            }
        }
    }

    /// Records the lag of an applied batch; a failed clock read is logged, never an error
    /// of the pipeline.
    async fn measure(
        &mut self,
        loader: &load::Loader,
        stats: &stats::Recorder,
        beats: Vec<u64>,
        event_time: Option<u32>,
    ) {
        // Without heartbeats every batch with rows is a sample (one round trip to the target):
        // the last one must be the newest, or an idle pipeline would keep an old, high reading.
        let from_events = event_time.filter(|_| beats.is_empty() && self.heartbeats_missing());
        if beats.is_empty() && from_events.is_none() {
            return;
        }
        let applied = match loader.clock_us().await {
            Ok(now) => now,
            Err(error) => {
                warn!(error = %chain(&error), "cannot read the target's clock for lag");
                return;
            }
        };
        let taken = std::time::Instant::now();
        if !beats.is_empty() {
            self.last_beat = Instant::now();
            // A heartbeat written before the writer started failing must not make the reading
            // grow again once it is applied.
            let failing = self.failing.load(std::sync::atomic::Ordering::Relaxed);
            let heartbeat_ms = match self.heartbeat {
                Some(every) if !failing => every.as_millis() as u64,
                _ => 0,
            };
            // Every heartbeat is a sample: one that waited in the batch for the next was late
            // by that wait.
            for beat in beats {
                stats.record_lag(crate::model::LagReading {
                    lag_ms: applied.saturating_sub(beat) / 1000,
                    method: crate::model::LagMethod::Heartbeat,
                    source_us: beat,
                    applied_us: applied,
                    heartbeat_ms,
                    taken,
                });
            }
        } else if let Some(seconds) = from_events {
            let source_us = u64::from(seconds) * 1_000_000;
            stats.record_lag(crate::model::LagReading {
                lag_ms: applied.saturating_sub(source_us) / 1000,
                method: crate::model::LagMethod::EventTime,
                source_us,
                applied_us: applied,
                heartbeat_ms: 0,
                taken,
            });
        }
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}
