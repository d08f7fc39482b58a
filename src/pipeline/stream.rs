//! The stream loop of a running pipeline: Select (a reader task, one batch ahead) →
//! Extract → Transform → Load, then what the batch leaves to record (conflicts, skipped
//! rows and DDL, rollback notes), the position, lag and statistics; two-way, a round of
//! conflict repair after each batch that leaves keys to repair.

use super::lag::LagMeter;
use super::start::Start;
use super::{AbortOnDrop, PipelineTask, copy, heartbeat, load, select, stats, transform, verify};
use crate::config::PipelineConfig;
use crate::error::{Error, Result, chain};
use crate::meta::{self, EventLevel};
use crate::model::{EventKind, PipelineKey, PipelineState, Position};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// A batch is handed on when the source has sent nothing for this long (between
/// transactions), without waiting for `batch_timeout_ms`.
pub(super) const CUT_WHEN_IDLE: Duration = Duration::from_millis(5);

impl PipelineTask {
    /// Streams from `start` until something fails: Select → Transform → Load, joined by a
    /// bounded channel, the metadata position written after each batch is applied. Never
    /// returns anything but an error.
    pub(super) async fn stream(
        &self,
        config: &PipelineConfig,
        start: Start,
        backoff: &mut Duration,
        stopping: &CancellationToken,
        stats: &Arc<stats::Recorder>,
    ) -> Result<std::convert::Infallible> {
        let options = &config.options;
        let mut loader = load::Loader::open(&config.target, self.load_options(config)).await?;
        let (reader, mut batches) = self.spawn_reader(config, &start);
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
        let mut lag = LagMeter::new(options.heartbeat, beats_failing);
        // The online copy: chunks read beside the stream, applied at their high watermarks.
        let marks = Arc::new(copy::Marks::default());
        let lag_ms = Arc::new(AtomicU64::new(0));
        let mut splicer = copy::Splicer::new(pipeline_key.to_string(), marks.clone());
        let _stop_copies = AbortOnDrop(
            copy::Copier::new(
                self.meta.clone(),
                self.node.clone(),
                pipeline_key.clone(),
                config.clone(),
                marks.clone(),
                lag_ms.clone(),
                self.settings.poll,
            )
            .start()
            .await,
        );
        // Verifications and repairs: windows between the same watermarks.
        let _stop_verifications = AbortOnDrop(
            verify::Verifier::new(
                self.meta.clone(),
                self.node.clone(),
                pipeline_key.clone(),
                config.clone(),
                marks,
                lag_ms.clone(),
                self.settings.poll,
            )
            .two_way(
                config
                    .reverse_pipeline
                    .map(|pipeline| PipelineKey::new(&self.installation, pipeline)),
            )
            .start(),
        );
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
                () = stopping.cancelled() => return Err(Error::Stopped),
                batch = batches.recv() => match batch {
                    Some(batch) => batch,
                    None => break,
                },
            };
            let mut batch = batch?;
            crate::failpoint::panic_if_set("load_batch");
            let mut counted = stats::BatchStats::default();
            counted.stages.select = batch.select_time;
            let changes = batch.take_changes();
            let beats = heartbeat::beats(&changes, pipeline_key.as_str());
            let mut pieces: VecDeque<copy::Piece> = splicer.split(changes).into();
            let mut load_time = Duration::ZERO;
            while let Some(piece) = pieces.pop_front() {
                let started = Instant::now();
                let changes = match piece {
                    copy::Piece::Changes(changes) => changes,
                    copy::Piece::Window {
                        window, changed, ..
                    } => {
                        // everything before the high watermark is committed on the target
                        verify::take_snapshot(*window, changed).await;
                        load_time += started.elapsed();
                        continue;
                    }
                    copy::Piece::Chunk { chunk, changed, .. } => {
                        // chunks with no change between their high watermarks land at once
                        let mut ready = vec![(chunk, changed)];
                        while matches!(pieces.front(), Some(copy::Piece::Changes(c)) if c.is_empty())
                            && matches!(pieces.get(1), Some(copy::Piece::Chunk { .. }))
                        {
                            pieces.pop_front();
                            if let Some(copy::Piece::Chunk { chunk, changed, .. }) =
                                pieces.pop_front()
                            {
                                ready.push((chunk, changed));
                            }
                        }
                        self.apply_chunks(&mut loader, config, ready).await?;
                        load_time += started.elapsed();
                        continue;
                    }
                };
                // changes before a chunk or window are applied up to its high watermark
                let end = match pieces.front().and_then(copy::Piece::high_watermark) {
                    Some(at) => load::position_at(at),
                    None => batch.end.clone(),
                };
                let changes = transformer.extract(changes).map_err(Error::Transform)?;
                counted.count(&changes);
                counted.stages.extract += started.elapsed();
                let started = Instant::now();
                let changes = transformer.transform(changes).map_err(Error::Transform)?;
                counted.stages.transform += started.elapsed();
                let started = Instant::now();
                loader.apply(changes, &end).await?;
                load_time += started.elapsed();
            }
            let has_rows = counted.has_rows();
            let started = Instant::now();
            self.after_apply(&mut loader, &mut transformer, config, &mut batch)
                .await?;
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
            if let Some(reading) = lag.measure(&loader, stats, beats, event_time).await {
                lag_ms.store(reading, Ordering::Relaxed);
            }
            counted.stages.load = load_time + started.elapsed();
            stats.record_batch(counted);
        }
        // The reader ended without a word: it panicked, or it was stopped.
        match (&mut reader.0).await {
            Err(join) if join.is_panic() => Err(Error::Panicked(
                format!("the binlog reader of pipeline {}", self.pipeline),
                crate::error::panic_message(&*join.into_panic()),
            )),
            _ => Err(Error::StreamLost("the binlog reader stopped".into())),
        }
    }

    /// Applies copy chunks at their high watermarks (everything before them is applied; no
    /// change between them), and tells each chunk's copy task how it went.
    async fn apply_chunks(
        &self,
        loader: &mut load::Loader,
        config: &PipelineConfig,
        ready: Vec<(
            Box<copy::ReadChunk>,
            std::collections::HashSet<copy::KeyText>,
        )>,
    ) -> Result<()> {
        let mut chunks = Vec::with_capacity(ready.len());
        let mut outcomes = Vec::with_capacity(ready.len());
        for (chunk, changed) in ready {
            let chunk = *chunk;
            let mapped = crate::pipeline::extract::pair_for(&config.table_pairs, &chunk.table.id)
                .ok_or_else(|| format!("{} is outside the table pairs", chunk.table.id))
                .and_then(|pair| transform::target_of(pair, &chunk.table));
            let (target, sources) = match mapped {
                Ok(mapped) => mapped,
                Err(problem) => {
                    let _ = chunk.outcome.send(copy::Outcome::Again(problem));
                    continue;
                }
            };
            // the values move when the target columns are the source's in order, some left out
            let in_order = sources.windows(2).all(|pair| pair[0] < pair[1]);
            let rows = chunk
                .rows
                .into_iter()
                .map(|row: Vec<_>| match in_order {
                    true if sources.len() == row.len() => row,
                    true => row
                        .into_iter()
                        .enumerate()
                        .filter(|(index, _)| sources.binary_search(index).is_ok())
                        .map(|(_, value)| value)
                        .collect(),
                    false => sources.iter().map(|index| row[*index].clone()).collect(),
                })
                .collect();
            chunks.push(load::TargetChunk {
                table: target,
                rows,
                after: chunk.after,
                through: chunk.through,
                keys: chunk.keys,
                delete_extras: chunk.delete_extras,
                skip: changed,
                progress: chunk.progress,
            });
            outcomes.push(chunk.outcome);
        }
        let mut failed = None;
        for (applied, outcome) in loader.apply_chunks(chunks).await.into_iter().zip(outcomes) {
            let _ = outcome.send(match applied {
                Ok(applied) => copy::Outcome::Applied {
                    written: applied.written,
                    left_to_stream: applied.left_to_stream,
                    deleted: applied.deleted,
                },
                // the target table does not fit the chunk: the copy fails, not the pipeline
                Err(Error::Precheck(problem)) => copy::Outcome::Failed(problem),
                Err(error) => {
                    failed.get_or_insert(error);
                    continue;
                }
            });
        }
        failed.map_or(Ok(()), Err)
    }

    /// How Select reads and cuts batches for this pipeline.
    fn select_options(&self, config: &PipelineConfig) -> select::SelectOptions {
        let options = &config.options;
        select::SelectOptions {
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
                .chain(config.two_way().then_some(&self.pipeline))
                .map(|pipeline| PipelineKey::new(&self.installation, *pipeline).to_string())
                .collect(),
        }
    }

    /// Starts Select in a task of its own, reading from `start`: it runs ahead by one batch
    /// at most, so memory stays bounded by batch_bytes.
    fn spawn_reader(
        &self,
        config: &PipelineConfig,
        start: &Start,
    ) -> (
        tokio::task::JoinHandle<()>,
        mpsc::Receiver<Result<select::Batch>>,
    ) {
        let budget = Arc::new(select::ByteBudget::default());
        let mut selector = select::Selector::new(
            config.source.clone(),
            self.select_options(config),
            start.position.clone(),
            budget,
        );
        // Select runs ahead by one batch at most: memory stays bounded by batch_bytes.
        let (sender, batches) = mpsc::channel::<Result<select::Batch>>(1);
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
        (reader, batches)
    }

    /// What an applied batch leaves to do before its position is saved: two-way, a round
    /// of conflict repair; then the records of conflicts, rollback notes, skipped DDL and
    /// skipped rows (after the target commit: a crash in between loses a record, not rows).
    async fn after_apply(
        &self,
        loader: &mut load::Loader,
        transformer: &mut transform::Transformer,
        config: &PipelineConfig,
        batch: &mut select::Batch,
    ) -> Result<()> {
        // Two-way: conflicts' keys are made equal on both sides once this pipeline has
        // applied past them (the heartbeat brings a batch at least every heartbeat_ms).
        if loader.repairs_pending() > 0 {
            match self.repair(loader, config, &batch.end).await {
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
            if let Err(error) = meta::record_conflicts(&self.meta, self.pipeline, &conflicts).await
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
        Ok(())
    }

    pub(super) fn load_options(&self, config: &PipelineConfig) -> load::LoadOptions {
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
            source: config.two_way().then(|| config.source.clone()),
            reverse_key: config
                .reverse_pipeline
                .map(|pipeline| PipelineKey::new(&self.installation, pipeline)),
            arbiter: config.table_pairs.iter().any(|pair| {
                pair.conflict
                    .as_ref()
                    .is_some_and(|rule| !rule.source_is_primary)
            }),
        }
    }

    /// Two-way: a round of making conflicts' keys equal on both sides (see `load::repair`),
    /// with how far this pipeline and the channel's other one have applied. Returns what
    /// it gave up on.
    pub(super) async fn repair(
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
}
