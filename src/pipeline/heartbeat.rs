//! Lag heartbeats: a row per pipeline in `ottr_sys.heartbeat` on the source, stamped with the
//! source database's clock (microseconds) at every interval. The row travels through the
//! binlog like any change; when the batch holding it has been applied, lag is the target
//! database's clock minus the stamp. So lag is right on an idle source, and it includes every
//! stage: binlog, Select, batching, Load.
//!
//! The writer never stops the pipeline: without write access to `ottr_sys` on the source, or
//! on a read-only source (a replica, where a write would be an errant transaction), it logs
//! once (`heartbeat_failed`), tries again with backoff, and lag falls back to event
//! timestamps. It must never write anything but its own row.

use super::connect;
use super::select::Change;
use super::stats::Recorder;
use crate::config::DataSource;
use crate::error::chain;
use crate::meta::{self, EventLevel, MetaDb};
use crate::model::{EventKind, PipelineId, PipelineKey, Value};
use crate::sys::heartbeat::{BEAT, CREATE_SCHEMA, CREATE_TABLE, INSERT_ROW, SCHEMA, TABLE};
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::{info, warn};

const READ_ONLY: &str = "SELECT @@read_only";

/// Who writes heartbeats, for the event log.
#[derive(Debug, Clone)]
pub struct HeartbeatWriter {
    pub meta: MetaDb,
    pub node: String,
    pub pipeline: PipelineId,
    pub source: DataSource,
    /// The pipeline's key, as in `ottr_sys.applied` on the target.
    pub key: PipelineKey,
    pub every: Duration,
    /// Set while heartbeats cannot be written: lag then comes from event timestamps, and the
    /// last heartbeat reading must not grow as if the pipeline were stuck.
    pub failing: Arc<AtomicBool>,
    pub stats: Arc<Recorder>,
}

/// Why no heartbeat is written.
enum Skipped {
    /// The source is read-only (a replica): a write there would be an errant transaction.
    ReadOnly,
    Failed(String),
}

impl HeartbeatWriter {
    /// Writes a heartbeat every interval until the task is aborted; after a failure it waits
    /// longer each time (up to a minute) before trying again.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run().await })
    }

    async fn run(self) {
        let mut conn = None;
        let mut failures: u32 = 0;
        loop {
            let wait = if failures == 0 {
                self.every
            } else {
                (self.every * 2u32.saturating_pow(failures.min(10))).min(Duration::from_secs(60))
            };
            tokio::time::sleep(wait).await;
            match self.beat(&mut conn).await {
                Ok(()) => {
                    if failures > 0 {
                        failures = 0;
                        self.failing.store(false, Ordering::Relaxed);
                        info!(pipeline = %self.pipeline, "heartbeats written again");
                        self.log(
                            EventLevel::Info,
                            EventKind::HeartbeatRestored,
                            "heartbeats are written again: lag is measured from them",
                        )
                        .await;
                    }
                }
                Err(skipped) => {
                    conn = None;
                    failures += 1;
                    if failures == 1 {
                        self.failing.store(true, Ordering::Relaxed);
                        self.stats.heartbeats_stopped();
                        let why = match skipped {
                            Skipped::ReadOnly => "the source is read-only (a replica?)".to_owned(),
                            Skipped::Failed(problem) => problem,
                        };
                        warn!(pipeline = %self.pipeline, why = %why, "cannot write a heartbeat");
                        let text = format!(
                            "no heartbeats into ottr_sys.heartbeat on data source '{}': {why}; lag falls back to event timestamps (grant CREATE, INSERT, UPDATE ON ottr_sys.* to the source user, or set_pipeline_option(..., 'heartbeat_ms', '0'))",
                            self.source.name
                        );
                        self.log(EventLevel::Warn, EventKind::HeartbeatFailed, &text)
                            .await;
                    }
                }
            }
        }
    }

    async fn beat(&self, conn: &mut Option<mysql_async::Conn>) -> Result<(), Skipped> {
        let failed = |error: mysql_async::Error| Skipped::Failed(error.to_string());
        if conn.is_none() {
            let mut opened = connect(&self.source)
                .await
                .map_err(|error| Skipped::Failed(chain(&error)))?;
            let read_only: Option<i64> = opened.query_first(READ_ONLY).await.map_err(failed)?;
            if read_only.unwrap_or(0) != 0 {
                let _ = opened.disconnect().await;
                return Err(Skipped::ReadOnly);
            }
            for statement in [CREATE_SCHEMA, CREATE_TABLE] {
                opened.query_drop(statement).await.map_err(failed)?;
            }
            opened
                .exec_drop(INSERT_ROW, (&self.key,))
                .await
                .map_err(failed)?;
            *conn = Some(opened);
        }
        let open = conn.as_mut().expect("opened above");
        let write = open.exec_drop(BEAT, (&self.key,));
        match tokio::time::timeout(Duration::from_secs(10), write).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(Skipped::Failed("the write took over 10 s".to_owned())),
        }
    }

    async fn log(&self, level: EventLevel, kind: EventKind, message: &str) {
        let (node, pipeline) = (Some(self.node.as_str()), Some(self.pipeline));
        meta::log_event_or_warn(&self.meta, level, node, pipeline, kind, message).await;
    }
}

/// The heartbeat stamps of pipeline `key` among `changes`, in binlog order (source clock,
/// microseconds since the epoch). Each is a lag sample: a batch that held two heartbeats kept
/// the first one waiting, and that wait is lag too.
pub fn beats(changes: &[Change], key: &str) -> Vec<u64> {
    let mut stamps = Vec::new();
    for change in changes {
        let Change::Row(row, _) = change else {
            continue;
        };
        if row.table.id.schema != SCHEMA || row.table.id.table != TABLE {
            continue;
        }
        let column = |name: &str| row.table.columns.iter().position(|c| c.name == name);
        let (Some(key_at), Some(beat_at), Some(after)) = (
            column("pipeline_key"),
            column("beat_us"),
            row.after.as_ref(),
        ) else {
            continue;
        };
        let is_ours =
            matches!(after.get(key_at), Some(Value::Text { bytes, .. }) if bytes == key.as_bytes());
        let stamp = match after.get(beat_at) {
            Some(Value::UInt(stamp)) => *stamp,
            Some(Value::Int(stamp)) => u64::try_from(*stamp).unwrap_or(0),
            _ => 0,
        };
        if is_ours && stamp > 0 {
            stamps.push(stamp);
        }
    }
    stamps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChangeAt, ChangeKind, ColumnMeta, RowChange, TableId, TableMeta};
    use std::sync::Arc;

    fn beat(key: &str, stamp: u64) -> Change {
        let column = |name: &str, type_name: &str| ColumnMeta {
            name: name.into(),
            type_name: type_name.into(),
            unsigned: true,
        };
        let table = Arc::new(TableMeta {
            id: TableId {
                schema: SCHEMA.into(),
                table: TABLE.into(),
            },
            columns: vec![
                column("pipeline_key", "VARCHAR"),
                column("beat_us", "LONGLONG"),
                column("beat_at", "TIMESTAMP2"),
            ],
            primary_key: vec![0],
        });
        let after = vec![
            Value::Text {
                bytes: key.as_bytes().to_vec(),
                charset: crate::model::Charset::Utf8mb4,
            },
            Value::UInt(stamp),
            Value::Null,
        ];
        Change::Row(
            RowChange {
                table,
                kind: ChangeKind::Update,
                before: None,
                after: Some(after),
            },
            ChangeAt {
                transaction: crate::model::BinlogFilePos {
                    file: "mysql-bin.000001".into(),
                    offset: 4,
                },
                index: 0,
            },
        )
    }

    #[test]
    fn only_this_pipelines_beats_count() {
        let changes = vec![
            beat("i/1", 100),
            beat("i/2", 900),
            beat("i/1", 300),
            beat("i/1", 200),
        ];
        assert_eq!(beats(&changes, "i/1"), [100, 300, 200]);
        assert!(beats(&changes, "i/3").is_empty());
        assert!(beats(&[beat("i/1", 0)], "i/1").is_empty());
    }
}
