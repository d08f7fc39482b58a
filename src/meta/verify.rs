//! Verification jobs in the metadata: the tables a pipeline's node is to verify, where each
//! stands (`v_verify`, and the resume point after a crash), the differing keys it found
//! (`verify_diff`), the repairs asked of them, and the jobs a `verify_schedule` starts.

use super::leases::truncate;
use super::{MetaDb, timed};
use crate::error::{Error, Result};
use crate::model::PipelineId;
use mysql_async::prelude::Queryable;

const LIST_WORK: &str = "SELECT t.job_id, t.source_schema, t.source_table \
     FROM verify_table t JOIN verify_job j ON j.id = t.job_id \
     WHERE j.pipeline_id = ? AND j.requested = 'run' AND t.state IN ('queued', 'verifying') \
     ORDER BY t.job_id, t.source_schema, t.source_table";
const REQUESTED: &str = "SELECT requested, repair FROM verify_job WHERE id = ?";
const START_TABLE: &str = "UPDATE verify_table SET state = 'verifying', target_name = ?, \
     started_at = COALESCE(started_at, NOW(6)), rows_estimated = COALESCE(?, rows_estimated), \
     last_error = NULL WHERE job_id = ? AND source_schema = ? AND source_table = ? \
     AND state IN ('queued', 'verifying')";
const RESUME: &str = "SELECT key_columns, last_key, chunks_done, rows_compared, rows_differing FROM verify_table \
     WHERE job_id = ? AND source_schema = ? AND source_table = ?";
/// Counts of differences are the diff rows' own.
const PROGRESS: &str = "UPDATE verify_table t SET t.key_columns = ?, t.last_key = ?, \
     t.chunks_done = ?, t.chunks_total = ?, t.rows_compared = ?, t.rows_per_s = ?, \
     t.state = IF(?, 'done', t.state), t.finished_at = IF(?, NOW(6), t.finished_at), \
     t.rows_differing = (SELECT COUNT(*) FROM verify_diff d WHERE d.job_id = t.job_id \
       AND d.source_schema = t.source_schema AND d.source_table = t.source_table AND d.kind <> 'unverified'), \
     t.rows_unverified = (SELECT COUNT(*) FROM verify_diff d WHERE d.job_id = t.job_id \
       AND d.source_schema = t.source_schema AND d.source_table = t.source_table AND d.kind = 'unverified') \
     WHERE t.job_id = ? AND t.source_schema = ? AND t.source_table = ? AND t.state IN ('queued', 'verifying')";
const FAIL: &str = "UPDATE verify_table SET state = 'failed', last_error = ?, finished_at = NOW(6) \
     WHERE job_id = ? AND source_schema = ? AND source_table = ? AND state IN ('queued', 'verifying')";
/// A key found again replaces what was found before, its repair state too (pending when the
/// job repairs as it goes).
const RECORD_DIFF: &str = "INSERT INTO verify_diff \
     (job_id, source_schema, source_table, row_key, key_json, key_hash, kind, columns, repair) \
     VALUES (?, ?, ?, ?, ?, UNHEX(SHA2(?, 256)), ?, ?, IF(? AND ? <> 'unverified', 'pending', NULL)) \
     ON DUPLICATE KEY UPDATE kind = VALUES(kind), columns = VALUES(columns), \
     detected_at = NOW(6), repair = VALUES(repair), repaired_at = NULL";
const PENDING_REPAIRS: &str = "SELECT d.id, d.job_id, d.source_schema, d.source_table, d.key_json \
     FROM verify_diff d JOIN verify_job j ON j.id = d.job_id \
     WHERE j.pipeline_id = ? AND d.repair = 'pending' ORDER BY d.job_id, d.source_schema, d.source_table, d.id LIMIT ?";
/// A re-check that could not tell (unverified) keeps the kind found before.
const REPAIRED: &str = "UPDATE verify_diff SET repair = ?, kind = IF(? IN ('unverified', ''), kind, ?), \
     columns = IF(? IS NULL, columns, ?), repaired_at = NOW(6) WHERE id = ? AND repair = 'pending'";
const REFRESH_COUNTS: &str = "UPDATE verify_table t SET \
     t.rows_differing = (SELECT COUNT(*) FROM verify_diff d WHERE d.job_id = t.job_id \
       AND d.source_schema = t.source_schema AND d.source_table = t.source_table AND d.kind <> 'unverified') \
     WHERE t.job_id = ? AND t.source_schema = ? AND t.source_table = ?";
const LAST_SCHEDULED: &str = "SELECT CAST(UNIX_TIMESTAMP(MAX(created_at)) AS SIGNED) FROM verify_job \
     WHERE pipeline_id = ? AND origin = 'schedule'";
/// A scheduled verification starts only when the last one is over.
const SCHEDULE_JOB: &str = "INSERT INTO verify_job (pipeline_id, origin, repair, created_by) \
     SELECT p.id, 'schedule', p.verify_repair, 'verify_schedule' FROM pipeline p WHERE p.id = ? \
     AND NOT EXISTS (SELECT 1 FROM verify_job j JOIN verify_table t ON t.job_id = j.id \
       WHERE j.pipeline_id = p.id AND j.origin = 'schedule' AND j.requested = 'run' \
       AND t.state IN ('queued', 'verifying'))";
const SCHEDULE_TABLES: &str = "INSERT INTO verify_table (job_id, source_schema, source_table, rows_estimated) \
     SELECT ?, source_schema, source_table, rows_estimated FROM source_table WHERE pipeline_id = ?";

/// A table of a verification job, as the node is to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifyWork {
    pub job: u64,
    pub schema: String,
    pub table: String,
}

/// Where a table's verification stood when it was last recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    pub key_columns: Option<String>,
    pub last_key: Option<String>,
    pub chunks: u64,
    pub compared: u64,
    /// Keys found differing so far.
    pub differing: u64,
}

/// How far a table's verification has come.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyCounts {
    pub key_columns: String,
    pub last_key: Option<String>,
    pub chunks: u64,
    pub chunks_total: Option<u64>,
    pub compared: u64,
    pub rate: Option<f64>,
}

/// A differing key, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The key's values as text.
    pub row_key: String,
    /// The key's values as the node reads them back (JSON).
    pub key_json: String,
    /// `missing_on_target`, `extra_on_target`, `different` or `unverified`.
    pub kind: &'static str,
    /// The differing columns (`different`).
    pub columns: Option<String>,
}

/// A differing key to repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRepair {
    pub id: u64,
    pub work: VerifyWork,
    pub key_json: String,
}

fn fail(context: &'static str) -> impl Fn(mysql_async::Error) -> Error {
    move |error| Error::database(context, error)
}

/// The tables a pipeline's node is to verify now (queued or verifying, their job running).
pub async fn verify_work(meta: &MetaDb, pipeline: PipelineId) -> Result<Vec<VerifyWork>> {
    let context = "cannot read the verification jobs";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let rows: Vec<(u64, String, String)> = conn
            .exec(LIST_WORK, (pipeline.0,))
            .await
            .map_err(fail(context))?;
        Ok(rows
            .into_iter()
            .map(|(job, schema, table)| VerifyWork { job, schema, table })
            .collect())
    })
    .await
}

/// Whether `job` is still to run (not cancelled nor deleted), and whether its differences are
/// repaired as they are found.
pub async fn verify_requested(meta: &MetaDb, job: u64) -> Result<(bool, bool)> {
    let context = "cannot read a verification job";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let row: Option<(String, bool)> = conn
            .exec_first(REQUESTED, (job,))
            .await
            .map_err(fail(context))?;
        Ok(match row {
            Some((requested, repair)) => (requested == "run", repair),
            None => (false, false),
        })
    })
    .await
}

/// The table's verification has started (again): its target name and the source's estimate;
/// returns where it stood.
pub async fn verify_started(
    meta: &MetaDb,
    work: &VerifyWork,
    target: &str,
    estimate: Option<u64>,
) -> Result<Resume> {
    let context = "cannot record a verification's start";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let at = (work.job, &work.schema, &work.table);
        conn.exec_drop(START_TABLE, (target, estimate, at.0, at.1, at.2))
            .await
            .map_err(fail(context))?;
        type Row = (Option<String>, Option<String>, u64, u64, u64);
        let row: Option<Row> = conn.exec_first(RESUME, at).await.map_err(fail(context))?;
        Ok(row.map_or_else(
            Resume::default,
            |(key_columns, last_key, chunks, compared, differing)| Resume {
                key_columns,
                last_key,
                chunks,
                compared,
                differing,
            },
        ))
    })
    .await
}

/// Records a chunk's differences (`repair`: queued for repair at once) and the table's
/// progress after it; `done` after its last chunk.
pub async fn verify_progress(
    meta: &MetaDb,
    work: &VerifyWork,
    diffs: &[Diff],
    repair: bool,
    counts: &VerifyCounts,
    done: bool,
) -> Result<()> {
    let context = "cannot record a verification's progress";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let mut transaction = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(fail(context))?;
        if !diffs.is_empty() {
            transaction
                .exec_batch(
                    RECORD_DIFF,
                    diffs.iter().map(|diff| {
                        (
                            work.job,
                            &work.schema,
                            &work.table,
                            truncate(&diff.row_key, 4000),
                            &diff.key_json,
                            &diff.key_json,
                            diff.kind,
                            &diff.columns,
                            repair,
                            diff.kind,
                        )
                    }),
                )
                .await
                .map_err(fail(context))?;
        }
        let params: Vec<mysql_async::Value> = vec![
            counts.key_columns.clone().into(),
            counts.last_key.clone().into(),
            counts.chunks.into(),
            counts.chunks_total.into(),
            counts.compared.into(),
            counts.rate.into(),
            done.into(),
            done.into(),
            work.job.into(),
            work.schema.clone().into(),
            work.table.clone().into(),
        ];
        transaction
            .exec_drop(PROGRESS, params)
            .await
            .map_err(fail(context))?;
        transaction.commit().await.map_err(fail(context))
    })
    .await
}

/// A table's verification failed: `error` says why.
pub async fn verify_failed(meta: &MetaDb, work: &VerifyWork, error: &str) -> Result<()> {
    let context = "cannot record a failed verification";
    let mut conn = meta.conn().await?;
    timed(context, async {
        conn.exec_drop(
            FAIL,
            (truncate(error, 4000), work.job, &work.schema, &work.table),
        )
        .await
        .map_err(fail(context))
    })
    .await
}

/// Up to `limit` differing keys of the pipeline's jobs waiting for a repair.
pub async fn pending_repairs(
    meta: &MetaDb,
    pipeline: PipelineId,
    limit: usize,
) -> Result<Vec<PendingRepair>> {
    let context = "cannot read the repairs asked";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let rows: Vec<(u64, u64, String, String, String)> = conn
            .exec(PENDING_REPAIRS, (pipeline.0, limit as u64))
            .await
            .map_err(fail(context))?;
        Ok(rows
            .into_iter()
            .map(|(id, job, schema, table, key_json)| PendingRepair {
                id,
                work: VerifyWork { job, schema, table },
                key_json,
            })
            .collect())
    })
    .await
}

/// How a repaired key compared afterwards: `None` equal (repaired), else the difference
/// still found (its kind and columns).
pub async fn repair_checked(
    meta: &MetaDb,
    repaired: &[(PendingRepair, Option<Diff>)],
) -> Result<()> {
    let context = "cannot record a repair";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let mut transaction = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(fail(context))?;
        transaction
            .exec_batch(
                REPAIRED,
                repaired.iter().map(|(pending, still)| {
                    let state = if still.is_some() {
                        "still_different"
                    } else {
                        "repaired"
                    };
                    let kind = still.as_ref().map_or("", |diff| diff.kind);
                    let columns = still.as_ref().and_then(|diff| diff.columns.clone());
                    (state, kind, kind, columns.clone(), columns, pending.id)
                }),
            )
            .await
            .map_err(fail(context))?;
        let mut tables: Vec<&VerifyWork> = repaired.iter().map(|(p, _)| &p.work).collect();
        tables.dedup();
        transaction
            .exec_batch(
                REFRESH_COUNTS,
                tables
                    .iter()
                    .map(|work| (work.job, &work.schema, &work.table)),
            )
            .await
            .map_err(fail(context))?;
        transaction.commit().await.map_err(fail(context))
    })
    .await
}

/// When the pipeline's last scheduled verification was created (Unix seconds).
pub async fn last_scheduled(meta: &MetaDb, pipeline: PipelineId) -> Result<Option<i64>> {
    let context = "cannot read the scheduled verifications";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let at: Option<Option<i64>> = conn
            .exec_first(LAST_SCHEDULED, (pipeline.0,))
            .await
            .map_err(fail(context))?;
        Ok(at.flatten())
    })
    .await
}

/// Starts a scheduled verification of every paired source table the pipeline last listed,
/// unless the last scheduled one is still running (None).
pub async fn schedule_verification(meta: &MetaDb, pipeline: PipelineId) -> Result<Option<u64>> {
    let context = "cannot start a scheduled verification";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let mut transaction = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(fail(context))?;
        transaction
            .exec_drop(SCHEDULE_JOB, (pipeline.0,))
            .await
            .map_err(fail(context))?;
        if transaction.affected_rows() == 0 {
            transaction.commit().await.map_err(fail(context))?;
            return Ok(None);
        }
        let job = transaction
            .last_insert_id()
            .ok_or_else(|| Error::Precheck("a scheduled verification got no id".into()))?;
        transaction
            .exec_drop(SCHEDULE_TABLES, (job, pipeline.0))
            .await
            .map_err(fail(context))?;
        transaction.commit().await.map_err(fail(context))?;
        Ok(Some(job))
    })
    .await
}
