//! The event log: what nodes did and what went wrong, as rows an operator can SELECT.

use super::leases::truncate;
use super::{MetaDb, timed};
use crate::error::{Error, Result};
use crate::model::{EventKind, PipelineId};
use mysql_async::prelude::Queryable;

const INSERT_EVENT: &str =
    "INSERT INTO event_log (node, pipeline_id, level, kind, message) VALUES (?, ?, ?, ?, ?)";
const INSERT_SKIPPED: &str =
    "INSERT INTO skipped_row (pipeline_id, target_table, row_key, error) VALUES (?, ?, ?, ?)";
const INSERT_CONFLICT: &str = "INSERT INTO conflict_log \
     (pipeline_id, table_name, row_key, kind, source_row, target_row, decision, policy) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const RECENT_EVENTS: &str = "SELECT COUNT(*) FROM event_log \
     WHERE pipeline_id = ? AND kind = ? AND at > NOW(6) - INTERVAL ? MICROSECOND";
const PRUNE_EVENTS: &str =
    "DELETE FROM event_log WHERE at < NOW(6) - INTERVAL ? DAY ORDER BY id LIMIT 10000";
const PRUNE_CONFLICTS: &str =
    "DELETE FROM conflict_log WHERE detected_at < NOW(6) - INTERVAL ? DAY ORDER BY id LIMIT 10000";

/// How many events of `kind` a pipeline logged within the last `within` (metadata clock).
pub async fn recent_events(
    meta: &MetaDb,
    pipeline: PipelineId,
    kind: EventKind,
    within: std::time::Duration,
) -> Result<u64> {
    let mut conn = meta.conn().await?;
    let context = format!("cannot read the event log of pipeline {pipeline}");
    timed(&context, async {
        let count: Option<u64> = conn
            .exec_first(
                RECENT_EVENTS,
                (pipeline.0, kind.as_str(), within.as_micros() as u64),
            )
            .await
            .map_err(|error| Error::database(context.clone(), error))?;
        Ok(count.unwrap_or(0))
    })
    .await
}

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLevel {
    Info,
    Warn,
    Error,
}

impl EventLevel {
    fn as_str(self) -> &'static str {
        match self {
            EventLevel::Info => "info",
            EventLevel::Warn => "warn",
            EventLevel::Error => "error",
        }
    }
}

/// Appends one event like [`log_event`]; a failure is only logged (the event log is never a
/// reason to stop working).
pub async fn log_event_or_warn(
    meta: &MetaDb,
    level: EventLevel,
    node: Option<&str>,
    pipeline: Option<PipelineId>,
    kind: EventKind,
    message: &str,
) {
    if let Err(error) = log_event(meta, level, node, pipeline, kind, message).await {
        tracing::warn!(kind = kind.as_str(), error = %crate::error::chain(&error), "cannot append to the event log");
    }
}

/// Appends one event of `kind`.
pub async fn log_event(
    meta: &MetaDb,
    level: EventLevel,
    node: Option<&str>,
    pipeline: Option<PipelineId>,
    kind: EventKind,
    message: &str,
) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = "cannot append to the event log";
    timed(context, async {
        conn.exec_drop(
            INSERT_EVENT,
            (
                node,
                pipeline.map(|id| id.0),
                level.as_str(),
                kind.as_str(),
                truncate(message, 1024),
            ),
        )
        .await
        .map_err(|error| Error::database(context, error))
    })
    .await
}

/// Deletes up to 10,000 events and 10,000 conflicts older than `days`; returns how many went.
pub async fn prune_event_log(meta: &MetaDb, days: u32) -> Result<u64> {
    let mut conn = meta.conn().await?;
    let context = "cannot prune the event log";
    timed(context, async {
        let mut pruned = 0;
        for sql in [PRUNE_EVENTS, PRUNE_CONFLICTS] {
            conn.exec_drop(sql, (days,))
                .await
                .map_err(|error| Error::database(context, error))?;
            pruned += conn.affected_rows();
        }
        Ok(pruned)
    })
    .await
}

/// Records the conflicts a two-way pipeline met and resolved.
pub async fn record_conflicts(
    meta: &MetaDb,
    pipeline: PipelineId,
    conflicts: &[crate::model::ConflictRecord],
) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = "cannot record conflicts";
    timed(context, async {
        conn.exec_batch(
            INSERT_CONFLICT,
            conflicts.iter().map(|conflict| {
                (
                    pipeline.0,
                    truncate(&conflict.table, 130),
                    truncate(&conflict.key, 1024),
                    conflict.kind.as_str(),
                    conflict
                        .source_row
                        .as_deref()
                        .map(|row| truncate(row, 4000)),
                    conflict
                        .target_row
                        .as_deref()
                        .map(|row| truncate(row, 4000)),
                    if conflict.source_applied {
                        "source_applied"
                    } else {
                        "target_kept"
                    },
                    truncate(&conflict.policy, 100),
                )
            }),
        )
        .await
        .map_err(|error| Error::database(context, error))
    })
    .await
}

/// Records rows `skip_load_errors` left out: each in `skipped_row` and as a `row_skipped`
/// event, in one transaction.
pub async fn record_skipped(
    meta: &MetaDb,
    node: &str,
    pipeline: PipelineId,
    rows: &[crate::model::SkippedRow],
) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = "cannot record skipped rows";
    timed(context, async {
        let fail = |error| Error::database(context, error);
        let mut transaction = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(fail)?;
        transaction
            .exec_batch(
                INSERT_SKIPPED,
                rows.iter().map(|row| {
                    (
                        pipeline.0,
                        truncate(&row.table, 130),
                        truncate(&row.row, 1024),
                        truncate(&row.error, 1024),
                    )
                }),
            )
            .await
            .map_err(fail)?;
        transaction
            .exec_batch(
                INSERT_EVENT,
                rows.iter().map(|row| {
                    (
                        node,
                        pipeline.0,
                        EventLevel::Warn.as_str(),
                        EventKind::RowSkipped.as_str(),
                        truncate(
                            &format!(
                                "a row of {} ({}) was not applied (skip_load_errors): {}",
                                row.table, row.row, row.error
                            ),
                            1024,
                        ),
                    )
                }),
            )
            .await
            .map_err(fail)?;
        transaction.commit().await.map_err(fail)
    })
    .await
}
