//! Statistics of one pipeline, counted on the data path and written by a task of their own.
//!
//! The data path only adds to a [`Recorder`] (a short lock, no IO); a writer task takes what
//! was counted every second and appends it to the metadata schema in time buckets
//! (`stat_pipeline`, `stat_lag`, `stat_table`, keyed by pipeline and bucket: no row is shared
//! with another pipeline), and writes the latest lag reading to `pipeline_lag`. Writes add to
//! what a bucket holds, so a bucket written twice (by this node, or by the next holder of the
//! lease) sums up. If the metadata database is away, counts are kept and written later.
//!
//! Lag is kept as a fixed histogram per bucket ([`crate::model::LAG_BOUNDS_MS`]), so that percentiles over
//! any window are computed in SQL from summed bucket counts, never as a percentile of
//! percentiles.

use crate::error::chain;
use crate::meta::{self, MetaDb};
use crate::model::{
    ChangeKind, KindCounts, LagMethod, LagReading, PipelineBucket, PipelineId, StageTimes,
    StatsDelta, TableId, lag_bucket,
};
use crate::pipeline::select::Change;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::warn;

/// One batch as the statistics see it.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Per source table: what the table pairs selected.
    pub tables: BTreeMap<TableId, KindCounts>,
    /// DDL statements handed to transform, and their bytes.
    pub ddls: u64,
    pub ddl_bytes: u64,
    pub stages: StageTimes,
}

impl BatchStats {
    /// Counts the changes the table pairs selected: rows per table and kind, and statements.
    pub fn count(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Row(row, _) => self.add_row(&row.table.id, row.kind, row.size()),
                Change::Ddl { statement, .. } => {
                    self.ddls += 1;
                    self.ddl_bytes += statement.text.len() as u64;
                }
            }
        }
    }

    /// Whether any row change was counted.
    pub fn has_rows(&self) -> bool {
        !self.tables.is_empty()
    }

    /// Counts one selected row change of `table`.
    pub fn add_row(&mut self, table: &TableId, kind: ChangeKind, bytes: usize) {
        if let Some(counts) = self.tables.get_mut(table) {
            counts.add_row(kind, bytes as u64);
        } else {
            let mut counts = KindCounts::default();
            counts.add_row(kind, bytes as u64);
            self.tables.insert(table.clone(), counts);
        }
    }
}

/// Where a pipeline's statistics are counted until the writer takes them.
#[derive(Debug)]
pub struct Recorder {
    /// Bucket length in seconds (the `stat_bucket_s` setting).
    bucket_s: i64,
    delta: Mutex<StatsDelta>,
}

impl Recorder {
    pub fn new(bucket: Duration) -> Self {
        Recorder {
            bucket_s: bucket.as_secs().max(1) as i64,
            delta: Mutex::new(StatsDelta::default()),
        }
    }

    fn bucket_now(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        now - now.rem_euclid(self.bucket_s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatsDelta> {
        self.delta
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts an applied batch.
    pub fn record_batch(&self, batch: BatchStats) {
        let bucket = self.bucket_now();
        let mut delta = self.lock();
        let mut totals = KindCounts {
            ddls: batch.ddls,
            ddl_bytes: batch.ddl_bytes,
            ..KindCounts::default()
        };
        for (table, counts) in batch.tables {
            totals.add(&counts);
            delta
                .tables
                .entry((bucket, table))
                .or_default()
                .add(&counts);
        }
        let entry = delta.pipeline.entry(bucket).or_default();
        entry.add(&PipelineBucket {
            counts: totals,
            batches: 1,
            stages: batch.stages,
            ..PipelineBucket::default()
        });
    }

    /// Counts a lag measurement and keeps it as the latest.
    pub fn record_lag(&self, reading: LagReading) {
        let bucket = self.bucket_now();
        let mut delta = self.lock();
        let entry = delta.pipeline.entry(bucket).or_default();
        entry.lag_samples += 1;
        entry.lag_sum_ms += reading.lag_ms;
        entry.lag_max_ms = entry.lag_max_ms.max(reading.lag_ms);
        entry.lag_histogram[lag_bucket(reading.lag_ms)] += 1;
        if reading.method == LagMethod::Heartbeat {
            delta.heartbeats_stopped = false;
        }
        delta.lag = Some(reading);
    }

    /// Heartbeats can no longer be written: the saved lag reading is marked as not growing
    /// (until a new reading replaces it).
    pub fn heartbeats_stopped(&self) {
        self.lock().heartbeats_stopped = true;
    }

    /// Everything counted since the last call.
    pub fn take(&self) -> StatsDelta {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back what could not be written.
    pub fn put_back(&self, older: StatsDelta) {
        self.lock().merge_older(older);
    }

    /// Writes what was counted; on failure keeps it for the next call.
    pub async fn flush(&self, meta: &MetaDb, pipeline: PipelineId) -> bool {
        let delta = self.take();
        if delta.is_empty() {
            return true;
        }
        match meta::write_stats(meta, pipeline, self.bucket_s, &delta).await {
            Ok(()) => true,
            Err(error) => {
                warn!(pipeline = %pipeline, error = %chain(&error), "cannot write statistics");
                self.put_back(delta);
                false
            }
        }
    }
}

/// Writes a pipeline's statistics every second; when `stop` is cancelled, writes what is
/// left once more and ends (a write is never cut in the middle by a stop).
pub fn spawn_writer(
    meta: MetaDb,
    pipeline: PipelineId,
    recorder: Arc<Recorder>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            recorder.flush(&meta, pipeline).await;
        }
        recorder.flush(&meta, pipeline).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_a_failed_write_is_put_back() {
        let recorder = Recorder::new(Duration::from_secs(10));
        let table = TableId {
            schema: "shop".into(),
            table: "orders".into(),
        };
        let mut batch = BatchStats::default();
        batch.add_row(&table, ChangeKind::Insert, 100);
        batch.add_row(&table, ChangeKind::Insert, 50);
        batch.add_row(&table, ChangeKind::Delete, 10);
        batch.stages.load = Duration::from_millis(3);
        recorder.record_batch(batch);
        recorder.record_lag(LagReading {
            lag_ms: 120,
            method: LagMethod::Heartbeat,
            source_us: 1,
            applied_us: 2,
            heartbeat_ms: 1000,
            taken: std::time::Instant::now(),
        });
        let taken = recorder.take();
        assert!(recorder.take().is_empty());
        let (_, bucket) = taken.pipeline.iter().next().unwrap();
        assert_eq!((bucket.counts.inserts, bucket.counts.deletes), (2, 1));
        assert_eq!(bucket.counts.bytes(), 160);
        assert_eq!(bucket.batches, 1);
        assert_eq!(bucket.lag_histogram[lag_bucket(120)], 1);
        recorder.put_back(taken.clone());
        recorder.put_back(taken);
        let again = recorder.take();
        let (_, bucket) = again.pipeline.iter().next().unwrap();
        assert_eq!(bucket.counts.inserts, 4);
        assert_eq!(bucket.lag_samples, 2);
        assert_eq!(bucket.stages.load, Duration::from_millis(6));
        assert_eq!(again.tables.values().next().unwrap().rows(), 6);
    }
}
