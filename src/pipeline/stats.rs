//! Statistics of one pipeline, counted on the data path and written by a task of their own.
//!
//! The data path only adds to a [`Recorder`] (a short lock, no IO); a writer task takes what
//! was counted every second and appends it to the metadata schema in time buckets
//! (`stat_pipeline`, `stat_lag`, `stat_table`, keyed by pipeline and bucket: no row is shared
//! with another pipeline), and writes the latest lag reading to `pipeline_lag`. Writes add to
//! what a bucket holds, so a bucket written twice (by this node, or by the next holder of the
//! lease) sums up. If the metadata database is away, counts are kept and written later.
//!
//! Lag is kept as a fixed histogram per bucket ([`LAG_BOUNDS_MS`]), so that percentiles over
//! any window are computed in SQL from summed bucket counts, never as a percentile of
//! percentiles.

use crate::error::chain;
use crate::meta::{self, MetaDb};
use crate::model::{ChangeKind, PipelineId, TableId};
use crate::pipeline::select::Change;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::warn;

/// Upper bounds (ms, inclusive) of the lag histogram's buckets. The last one also holds every
/// sample above it.
pub const LAG_BOUNDS_MS: [u64; 34] = [
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1_000, 1_500, 2_000, 3_000,
    5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 120_000, 300_000, 600_000,
    1_800_000, 3_600_000, 21_600_000, 86_400_000,
];

/// The histogram bucket of a lag sample.
pub fn lag_bucket(lag_ms: u64) -> usize {
    LAG_BOUNDS_MS
        .iter()
        .position(|bound| lag_ms <= *bound)
        .unwrap_or(LAG_BOUNDS_MS.len() - 1)
}

/// Rows and bytes per change kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub ddls: u64,
    pub insert_bytes: u64,
    pub update_bytes: u64,
    pub delete_bytes: u64,
    pub ddl_bytes: u64,
}

impl KindCounts {
    fn add_row(&mut self, kind: ChangeKind, bytes: u64) {
        let (rows, total) = match kind {
            ChangeKind::Insert => (&mut self.inserts, &mut self.insert_bytes),
            ChangeKind::Update => (&mut self.updates, &mut self.update_bytes),
            ChangeKind::Delete => (&mut self.deletes, &mut self.delete_bytes),
        };
        *rows += 1;
        *total += bytes;
    }

    fn add(&mut self, other: &KindCounts) {
        self.inserts += other.inserts;
        self.updates += other.updates;
        self.deletes += other.deletes;
        self.ddls += other.ddls;
        self.insert_bytes += other.insert_bytes;
        self.update_bytes += other.update_bytes;
        self.delete_bytes += other.delete_bytes;
        self.ddl_bytes += other.ddl_bytes;
    }

    /// Rows of every kind.
    pub fn rows(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }

    /// Bytes of every kind.
    pub fn bytes(&self) -> u64 {
        self.insert_bytes + self.update_bytes + self.delete_bytes + self.ddl_bytes
    }
}

/// Time spent per stage on a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    pub select: Duration,
    pub extract: Duration,
    pub transform: Duration,
    pub load: Duration,
}

/// What one pipeline did in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineBucket {
    pub counts: KindCounts,
    pub batches: u64,
    pub stages: StageTimes,
    pub lag_samples: u64,
    pub lag_sum_ms: u64,
    pub lag_max_ms: u64,
    /// Samples per [`LAG_BOUNDS_MS`] bucket.
    pub lag_histogram: [u64; LAG_BOUNDS_MS.len()],
}

impl Default for PipelineBucket {
    fn default() -> Self {
        PipelineBucket {
            counts: KindCounts::default(),
            batches: 0,
            stages: StageTimes::default(),
            lag_samples: 0,
            lag_sum_ms: 0,
            lag_max_ms: 0,
            lag_histogram: [0; LAG_BOUNDS_MS.len()],
        }
    }
}

impl PipelineBucket {
    fn add(&mut self, other: &PipelineBucket) {
        self.counts.add(&other.counts);
        self.batches += other.batches;
        self.stages.select += other.stages.select;
        self.stages.extract += other.stages.extract;
        self.stages.transform += other.stages.transform;
        self.stages.load += other.stages.load;
        self.lag_samples += other.lag_samples;
        self.lag_sum_ms += other.lag_sum_ms;
        self.lag_max_ms = self.lag_max_ms.max(other.lag_max_ms);
        for (mine, theirs) in self.lag_histogram.iter_mut().zip(other.lag_histogram) {
            *mine += theirs;
        }
    }
}

/// How lag was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagMethod {
    /// From a heartbeat row written into the source (microseconds, source clock).
    Heartbeat,
    /// From the timestamp of the last event of a batch (whole seconds, source clock).
    EventTime,
}

impl LagMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LagMethod::Heartbeat => "heartbeat",
            LagMethod::EventTime => "event_time",
        }
    }
}

/// The latest lag measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagReading {
    pub lag_ms: u64,
    pub method: LagMethod,
    /// Source clock, microseconds since the epoch.
    pub source_us: u64,
    /// Target clock, microseconds since the epoch.
    pub applied_us: u64,
    /// The heartbeat interval in force (0 when off).
    pub heartbeat_ms: u64,
    /// When it was measured (written later: `measured_at` is set back by the difference).
    pub taken: std::time::Instant,
}

/// Counts not written yet, by bucket start (seconds since the epoch, UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsDelta {
    pub pipeline: BTreeMap<i64, PipelineBucket>,
    pub tables: BTreeMap<(i64, TableId), KindCounts>,
    pub lag: Option<LagReading>,
    /// Heartbeats stopped being written: the last heartbeat reading must stop growing.
    pub heartbeats_stopped: bool,
}

impl StatsDelta {
    pub fn is_empty(&self) -> bool {
        self.pipeline.is_empty()
            && self.tables.is_empty()
            && self.lag.is_none()
            && !self.heartbeats_stopped
    }

    /// Adds `older` back under what was counted since (a write that failed).
    fn merge_older(&mut self, older: StatsDelta) {
        for (bucket, counts) in older.pipeline {
            self.pipeline.entry(bucket).or_default().add(&counts);
        }
        for (key, counts) in older.tables {
            self.tables.entry(key).or_default().add(&counts);
        }
        if self.lag.is_none() {
            self.lag = older.lag;
            self.heartbeats_stopped |= older.heartbeats_stopped;
        }
    }
}

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
    fn lag_samples_fall_in_the_first_bucket_whose_bound_holds_them() {
        assert_eq!(LAG_BOUNDS_MS[lag_bucket(0)], 1);
        assert_eq!(LAG_BOUNDS_MS[lag_bucket(1)], 1);
        assert_eq!(LAG_BOUNDS_MS[lag_bucket(2)], 2);
        assert_eq!(LAG_BOUNDS_MS[lag_bucket(101)], 150);
        assert_eq!(LAG_BOUNDS_MS[lag_bucket(1_000)], 1_000);
        assert_eq!(lag_bucket(u64::MAX), LAG_BOUNDS_MS.len() - 1);
        assert!(LAG_BOUNDS_MS.windows(2).all(|pair| pair[0] < pair[1]));
    }

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
