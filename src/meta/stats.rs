//! Statistics rows: appended per pipeline and time bucket (adding to what a bucket holds),
//! the latest lag reading per pipeline, and pruning after the retention period.

use super::{MetaDb, timed};
use crate::error::{Error, Result};
use crate::model::PipelineId;
use crate::model::{LAG_BOUNDS_MS, StatsDelta};
use mysql_async::TxOpts;
use mysql_async::prelude::Queryable;

const ADD_PIPELINE_BUCKET: &str = "INSERT INTO stat_pipeline (pipeline_id, bucket_start, bucket_s, \
     inserts, updates, deletes, ddls, insert_bytes, update_bytes, delete_bytes, ddl_bytes, batches, \
     select_us, extract_us, transform_us, load_us, lag_samples, lag_sum_ms, lag_max_ms) \
     VALUES (?, FROM_UNIXTIME(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE inserts = inserts + VALUES(inserts), updates = updates + VALUES(updates), \
     deletes = deletes + VALUES(deletes), ddls = ddls + VALUES(ddls), \
     insert_bytes = insert_bytes + VALUES(insert_bytes), update_bytes = update_bytes + VALUES(update_bytes), \
     delete_bytes = delete_bytes + VALUES(delete_bytes), ddl_bytes = ddl_bytes + VALUES(ddl_bytes), \
     batches = batches + VALUES(batches), select_us = select_us + VALUES(select_us), \
     extract_us = extract_us + VALUES(extract_us), transform_us = transform_us + VALUES(transform_us), \
     load_us = load_us + VALUES(load_us), lag_samples = lag_samples + VALUES(lag_samples), \
     lag_sum_ms = lag_sum_ms + VALUES(lag_sum_ms), lag_max_ms = GREATEST(lag_max_ms, VALUES(lag_max_ms))";
const ADD_LAG_SAMPLES: &str = "INSERT INTO stat_lag (pipeline_id, bucket_start, le_ms, samples) \
     VALUES (?, FROM_UNIXTIME(?), ?, ?) ON DUPLICATE KEY UPDATE samples = samples + VALUES(samples)";
const ADD_TABLE_BUCKET: &str = "INSERT INTO stat_table (pipeline_id, bucket_start, schema_name, \
     table_name, inserts, updates, deletes, ddls, bytes) VALUES (?, FROM_UNIXTIME(?), ?, ?, ?, ?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE inserts = inserts + VALUES(inserts), updates = updates + VALUES(updates), \
     deletes = deletes + VALUES(deletes), ddls = ddls + VALUES(ddls), bytes = bytes + VALUES(bytes)";
const WRITE_LAG: &str = "INSERT INTO pipeline_lag (pipeline_id, lag_ms, method, source_time, applied_at, \
     heartbeat_ms, measured_at) VALUES (?, ?, ?, \
     FROM_UNIXTIME(? DIV 1000000) + INTERVAL (? MOD 1000000) MICROSECOND, \
     FROM_UNIXTIME(? DIV 1000000) + INTERVAL (? MOD 1000000) MICROSECOND, ?, \
     NOW(6) - INTERVAL ? MICROSECOND) \
     ON DUPLICATE KEY UPDATE lag_ms = VALUES(lag_ms), method = VALUES(method), \
     source_time = VALUES(source_time), applied_at = VALUES(applied_at), \
     heartbeat_ms = VALUES(heartbeat_ms), measured_at = VALUES(measured_at)";
/// Heartbeats stopped being written: the last reading stops growing in the views.
/// (`measured_at` kept: the column would take NOW(6) on update.)
const FREEZE_LAG: &str =
    "UPDATE pipeline_lag SET heartbeat_ms = 0, measured_at = measured_at WHERE pipeline_id = ?";
/// Tables pruned by bucket age, a bounded number of rows per statement.
const PRUNE: [&str; 3] = [
    "DELETE FROM stat_pipeline WHERE bucket_start < NOW() - INTERVAL ? DAY LIMIT 10000",
    "DELETE FROM stat_lag WHERE bucket_start < NOW() - INTERVAL ? DAY LIMIT 10000",
    "DELETE FROM stat_table WHERE bucket_start < NOW() - INTERVAL ? DAY LIMIT 10000",
];

/// Adds a pipeline's counts to their buckets and writes its latest lag, in one transaction.
pub async fn write_stats(
    meta: &MetaDb,
    pipeline: PipelineId,
    bucket_s: i64,
    delta: &StatsDelta,
) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = format!("cannot write the statistics of pipeline {pipeline}");
    let fail = |error| Error::database(context.clone(), error);
    timed(&context, async {
        let mut transaction = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(fail)?;
        for (bucket, counts) in &delta.pipeline {
            let c = &counts.counts;
            let micros = |duration: std::time::Duration| duration.as_micros() as u64;
            let params: Vec<mysql_async::Value> = vec![
                pipeline.0.into(),
                (*bucket).into(),
                bucket_s.into(),
                c.inserts.into(),
                c.updates.into(),
                c.deletes.into(),
                c.ddls.into(),
                c.insert_bytes.into(),
                c.update_bytes.into(),
                c.delete_bytes.into(),
                c.ddl_bytes.into(),
                counts.batches.into(),
                micros(counts.stages.select).into(),
                micros(counts.stages.extract).into(),
                micros(counts.stages.transform).into(),
                micros(counts.stages.load).into(),
                counts.lag_samples.into(),
                counts.lag_sum_ms.into(),
                counts.lag_max_ms.into(),
            ];
            transaction
                .exec_drop(ADD_PIPELINE_BUCKET, params)
                .await
                .map_err(fail)?;
            let samples: Vec<(u32, i64, u64, u64)> = counts
                .lag_histogram
                .iter()
                .zip(LAG_BOUNDS_MS)
                .filter(|(samples, _)| **samples > 0)
                .map(|(samples, bound)| (pipeline.0, *bucket, bound, *samples))
                .collect();
            if !samples.is_empty() {
                transaction
                    .exec_batch(ADD_LAG_SAMPLES, samples)
                    .await
                    .map_err(fail)?;
            }
        }
        let tables: Vec<mysql_async::Params> = delta
            .tables
            .iter()
            .map(|((bucket, table), c)| {
                (
                    pipeline.0,
                    *bucket,
                    table.schema.as_str(),
                    table.table.as_str(),
                    c.inserts,
                    c.updates,
                    c.deletes,
                    c.ddls,
                    c.bytes(),
                )
                    .into()
            })
            .collect();
        if !tables.is_empty() {
            transaction
                .exec_batch(ADD_TABLE_BUCKET, tables)
                .await
                .map_err(fail)?;
        }
        if let Some(lag) = &delta.lag {
            let params: Vec<mysql_async::Value> = vec![
                pipeline.0.into(),
                lag.lag_ms.into(),
                lag.method.as_str().into(),
                lag.source_us.into(),
                lag.source_us.into(),
                lag.applied_us.into(),
                lag.applied_us.into(),
                lag.heartbeat_ms.into(),
                (lag.taken.elapsed().as_micros() as u64).into(),
            ];
            transaction
                .exec_drop(WRITE_LAG, params)
                .await
                .map_err(fail)?;
        }
        if delta.heartbeats_stopped {
            transaction
                .exec_drop(FREEZE_LAG, (pipeline.0,))
                .await
                .map_err(fail)?;
        }
        transaction.commit().await.map_err(fail)
    })
    .await
}

/// Deletes statistics rows older than `days`, 10,000 rows per statement, for at most about a
/// minute per call (a node calls it every hour).
pub async fn prune_stats(meta: &MetaDb, days: u32) -> Result<()> {
    let started = std::time::Instant::now();
    let context = "cannot prune the statistics";
    for statement in PRUNE {
        loop {
            let mut conn = meta.conn().await?;
            let deleted = timed(context, async {
                conn.exec_drop(statement, (days,))
                    .await
                    .map_err(|error| Error::database(context, error))?;
                Ok(conn.affected_rows())
            })
            .await?;
            if deleted < 10_000 || started.elapsed() > std::time::Duration::from_secs(60) {
                break;
            }
        }
    }
    Ok(())
}
