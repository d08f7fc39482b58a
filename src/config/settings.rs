//! Node-wide settings, from the `setting` table's rows.
//!
//! The database bounds each value with a CHECK; this also checks how values relate (a
//! heartbeat must fit twice into a lease). A row that is missing takes its documented default,
//! the value the first migration inserts.

use super::{ConfigError, RowRef};
use std::time::Duration;

/// Timing settings every node follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// A lease lasts this long without renewal; a dead node's pipelines move after it.
    pub lease: Duration,
    /// How often a node heartbeats and renews its leases.
    pub heartbeat: Duration,
    /// How often a node reads the configuration.
    pub poll: Duration,
    /// The first wait before a failed pipeline is retried.
    pub retry_min: Duration,
    /// The longest wait between retries.
    pub retry_max: Duration,
    /// How many days of event_log are kept.
    pub event_log_days: u32,
    /// Statistics are appended in buckets of this length.
    pub stat_bucket: Duration,
    /// How many days of statistics are kept.
    pub stat_retention_days: u32,
    /// How often the monitor looks for due rules and mail to send.
    pub monitor_tick: Duration,
    /// The `zk_session_ms` row; see [`Settings::zk_session_timeout`].
    pub zk_session: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lease: Duration::from_millis(10_000),
            heartbeat: Duration::from_millis(1_000),
            poll: Duration::from_millis(1_000),
            retry_min: Duration::from_millis(1_000),
            retry_max: Duration::from_millis(60_000),
            event_log_days: 30,
            stat_bucket: Duration::from_secs(10),
            stat_retention_days: 14,
            monitor_tick: Duration::from_millis(1_000),
            zk_session: Duration::from_millis(6_000),
        }
    }
}

impl Settings {
    /// The ZooKeeper session timeout a node started with `--zk` asks for: `zk_session_ms`,
    /// but at least three heartbeats, because a node checks ZooKeeper at every heartbeat and
    /// must see a lost connection well before its session can end.
    pub fn zk_session_timeout(&self) -> Duration {
        self.zk_session.max(self.heartbeat * 3)
    }

    /// Builds settings from `(name, value)` rows. Unknown names are ignored (a newer ottr may
    /// have added them); values are checked against each other.
    pub fn from_rows(rows: &[(String, i64)]) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        for (name, value) in rows {
            let invalid =
                |problem: String| ConfigError::new(RowRef::Setting { name: name.clone() }, problem);
            let days = || {
                u32::try_from(*value)
                    .ok()
                    .filter(|days| *days > 0)
                    .ok_or_else(|| invalid(format!("{value} is not a positive number of days")))
            };
            let millis = || {
                u64::try_from(*value)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| invalid(format!("{value} is not a positive number of ms")))
            };
            match name.as_str() {
                "lease_ms" => settings.lease = millis()?,
                "heartbeat_ms" => settings.heartbeat = millis()?,
                "poll_ms" => settings.poll = millis()?,
                "retry_min_ms" => settings.retry_min = millis()?,
                "retry_max_ms" => settings.retry_max = millis()?,
                "event_log_days" => settings.event_log_days = days()?,
                "stat_retention_days" => settings.stat_retention_days = days()?,
                "stat_bucket_s" => {
                    settings.stat_bucket = u64::try_from(*value)
                        .ok()
                        .filter(|seconds| (1..=3600).contains(seconds))
                        .map(Duration::from_secs)
                        .ok_or_else(|| invalid(format!("{value} is not from 1 to 3600 s")))?
                }
                "monitor_tick_ms" => settings.monitor_tick = millis()?,
                "zk_session_ms" => settings.zk_session = millis()?,
                _ => {}
            }
        }
        if settings.heartbeat * 2 > settings.lease {
            return Err(ConfigError::new(
                RowRef::Setting {
                    name: "heartbeat_ms".into(),
                },
                format!(
                    "{} ms must be at most half of lease_ms ({} ms), or leases lapse between renewals",
                    settings.heartbeat.as_millis(),
                    settings.lease.as_millis()
                ),
            ));
        }
        if settings.retry_min > settings.retry_max {
            return Err(ConfigError::new(
                RowRef::Setting {
                    name: "retry_min_ms".into(),
                },
                format!(
                    "{} ms is more than retry_max_ms ({} ms)",
                    settings.retry_min.as_millis(),
                    settings.retry_max.as_millis()
                ),
            ));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn missing_rows_take_the_documented_defaults() {
        assert_eq!(Settings::from_rows(&[]).unwrap(), Settings::default());
        let short =
            Settings::from_rows(&rows(&[("lease_ms", 2000), ("heartbeat_ms", 200)])).unwrap();
        assert_eq!(short.lease, Duration::from_secs(2));
        assert_eq!(short.heartbeat, Duration::from_millis(200));
    }

    #[test]
    fn a_heartbeat_longer_than_half_a_lease_is_refused_by_name() {
        let error =
            Settings::from_rows(&rows(&[("lease_ms", 2000), ("heartbeat_ms", 1500)])).unwrap_err();
        assert_eq!(
            error.row,
            RowRef::Setting {
                name: "heartbeat_ms".into()
            }
        );
        assert!(error.to_string().contains("lease_ms"), "{error}");
    }

    #[test]
    fn a_zookeeper_session_is_at_least_three_heartbeats() {
        let slow = Settings::from_rows(&rows(&[("zk_session_ms", 2000), ("heartbeat_ms", 1000)]));
        assert_eq!(slow.unwrap().zk_session_timeout(), Duration::from_secs(3));
        let short = Settings::from_rows(&rows(&[("zk_session_ms", 1000), ("heartbeat_ms", 200)]));
        assert_eq!(short.unwrap().zk_session_timeout(), Duration::from_secs(1));
    }

    #[test]
    fn negative_values_are_refused() {
        let error = Settings::from_rows(&rows(&[("poll_ms", -5)])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "setting poll_ms: -5 is not a positive number of ms"
        );
    }
}
