//! Lag, measured after each applied batch: from the heartbeats it held, or from the
//! timestamp of its last event when heartbeats are off or not being written.

use super::{load, stats};
use crate::error::chain;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// Measures lag after each applied batch: from the heartbeats it held, or from the
/// timestamp of its last event when heartbeats are off or not being written.
pub(super) struct LagMeter {
    heartbeat: Option<Duration>,
    /// Set by the heartbeat writer while it cannot write.
    failing: Arc<std::sync::atomic::AtomicBool>,
    /// When a heartbeat last arrived (or streaming started).
    last_beat: Instant,
}

impl LagMeter {
    /// A meter for a pipeline writing heartbeats every `heartbeat` (None: off), `failing`
    /// while it cannot.
    pub(super) fn new(
        heartbeat: Option<Duration>,
        failing: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        LagMeter {
            heartbeat,
            failing,
            last_beat: Instant::now(),
        }
    }

    fn heartbeats_missing(&self) -> bool {
        match self.heartbeat {
            None => true,
            Some(every) => {
                self.failing.load(std::sync::atomic::Ordering::Relaxed)
                    || self.last_beat.elapsed() > every * 3 + Duration::from_secs(5)
            }
        }
    }

    /// Records the lag of an applied batch and returns the newest reading (ms), if it took
    /// one; a failed clock read is logged, never an error of the pipeline.
    pub(super) async fn measure(
        &mut self,
        loader: &load::Loader,
        stats: &stats::Recorder,
        beats: Vec<u64>,
        event_time: Option<u32>,
    ) -> Option<u64> {
        // Without heartbeats every batch with rows is a sample (one round trip to the target):
        // the last one must be the newest, or an idle pipeline would keep an old, high reading.
        let from_events = event_time.filter(|_| beats.is_empty() && self.heartbeats_missing());
        if beats.is_empty() && from_events.is_none() {
            return None;
        }
        let applied = match loader.clock_us().await {
            Ok(now) => now,
            Err(error) => {
                warn!(error = %chain(&error), "cannot read the target's clock for lag");
                return None;
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
            let newest = beats
                .last()
                .map(|beat| applied.saturating_sub(*beat) / 1000);
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
            newest
        } else if let Some(seconds) = from_events {
            let source_us = u64::from(seconds) * 1_000_000;
            let lag_ms = applied.saturating_sub(source_us) / 1000;
            stats.record_lag(crate::model::LagReading {
                lag_ms,
                method: crate::model::LagMethod::EventTime,
                source_us,
                applied_us: applied,
                heartbeat_ms: 0,
                taken,
            });
            Some(lag_ms)
        } else {
            None
        }
    }
}
