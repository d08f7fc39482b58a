//! What the statistics count: rows and bytes per change kind, stage times, the lag
//! histogram's buckets, and the delta a pipeline has not written yet. The counting is
//! `crate::pipeline::stats`'s, the writing `crate::meta`'s.

use super::{ChangeKind, TableId};
use std::collections::BTreeMap;
use std::time::Duration;

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
    #[inline]
    pub(crate) fn add_row(&mut self, kind: ChangeKind, bytes: u64) {
        let (rows, total) = match kind {
            ChangeKind::Insert => (&mut self.inserts, &mut self.insert_bytes),
            ChangeKind::Update => (&mut self.updates, &mut self.update_bytes),
            ChangeKind::Delete => (&mut self.deletes, &mut self.delete_bytes),
        };
        *rows += 1;
        *total += bytes;
    }

    pub(crate) fn add(&mut self, other: &KindCounts) {
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
    pub(crate) fn add(&mut self, other: &PipelineBucket) {
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
    pub(crate) fn merge_older(&mut self, older: StatsDelta) {
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
}
