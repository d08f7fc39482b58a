//! `ottr_sys.heartbeat` on the source: one row per pipeline, stamped with the source's clock
//! (microseconds); the row travels through the binlog, and lag is measured when it is applied.

pub use super::{CREATE_SCHEMA, SCHEMA};

/// The schema and table of heartbeat rows.
pub const TABLE: &str = "heartbeat";

pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS ottr_sys.heartbeat (
    pipeline_key VARCHAR(100) NOT NULL COMMENT 'installation id / pipeline id',
    beat_us BIGINT UNSIGNED NOT NULL COMMENT 'this database''s clock, microseconds since the epoch',
    beat_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline_key)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
pub const INSERT_ROW: &str =
    "INSERT IGNORE INTO ottr_sys.heartbeat (pipeline_key, beat_us) VALUES (?, 0)";
pub const BEAT: &str = "UPDATE ottr_sys.heartbeat \
     SET beat_us = CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS UNSIGNED), beat_at = NOW(6) WHERE pipeline_key = ?";
