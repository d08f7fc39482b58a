//! Online copy jobs in the metadata: the tables a pipeline's node is to copy, their state and
//! progress as `v_copy` shows them, and the paired source tables a running pipeline sees
//! (`source_table`, what a `copy_tables` regex is matched against). The truth of how far a
//! table's copy went is on the target (`ottr_sys.copy_progress`); these rows follow it.

use super::leases::truncate;
use super::{MetaDb, timed};
use crate::error::{Error, Result};
use crate::model::PipelineId;
use mysql_async::prelude::Queryable;

const LIST_WORK: &str = "SELECT t.job_id, t.source_schema, t.source_table, j.where_clause \
     FROM copy_table t JOIN copy_job j ON j.id = t.job_id \
     WHERE j.pipeline_id = ? AND j.requested = 'run' AND j.expanded = 1 \
     AND t.state IN ('queued', 'copying') ORDER BY t.job_id, t.source_schema, t.source_table";
const UNEXPANDED: &str = "SELECT id, source_schema, table_pattern FROM copy_job \
     WHERE pipeline_id = ? AND expanded = 0 AND requested <> 'cancel' ORDER BY id";
const ADD_TABLE: &str = "INSERT IGNORE INTO copy_table (job_id, source_schema, source_table, rows_estimated) \
     VALUES (?, ?, ?, ?)";
const MARK_EXPANDED: &str = "UPDATE copy_job SET expanded = 1 WHERE id = ?";
const REQUESTED: &str = "SELECT requested FROM copy_job WHERE id = ?";
const START_TABLE: &str = "UPDATE copy_table SET state = 'copying', target_name = ?, \
     started_at = COALESCE(started_at, NOW(6)), rows_estimated = COALESCE(?, rows_estimated), \
     last_error = NULL WHERE job_id = ? AND source_schema = ? AND source_table = ? \
     AND state IN ('queued', 'copying')";
const PROGRESS: &str = "UPDATE copy_table SET rows_copied = ?, chunks_done = ?, rows_per_s = ? \
     WHERE job_id = ? AND source_schema = ? AND source_table = ?";
const FINISH: &str = "UPDATE copy_table SET state = 'done', rows_copied = ?, chunks_done = ?, \
     rows_per_s = ?, finished_at = NOW(6) WHERE job_id = ? AND source_schema = ? AND source_table = ? \
     AND state IN ('queued', 'copying')";
const FAIL: &str = "UPDATE copy_table SET state = 'failed', last_error = ?, finished_at = NOW(6) \
     WHERE job_id = ? AND source_schema = ? AND source_table = ? AND state IN ('queued', 'copying')";
const INITIAL_COPY: &str = "INSERT INTO copy_job (pipeline_id, origin, created_by) \
     SELECT ?, 'initial_copy', 'initial_copy' FROM DUAL \
     WHERE NOT EXISTS (SELECT 1 FROM copy_job WHERE pipeline_id = ? AND origin = 'initial_copy')";
const FORGET_SOURCE_TABLES: &str = "DELETE FROM source_table WHERE pipeline_id = ?";
const ADD_SOURCE_TABLE: &str = "INSERT INTO source_table (pipeline_id, source_schema, source_table, rows_estimated) \
     VALUES (?, ?, ?, ?)";

/// A table of a copy job, as the node is to copy it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CopyWork {
    pub job: u64,
    pub schema: String,
    pub table: String,
    /// The operator's row condition, as stored (the node parses it before use).
    pub condition: Option<String>,
}

/// A copy job whose tables the node lists: `None` patterns mean every paired table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnexpandedJob {
    pub job: u64,
    pub schema: Option<String>,
    pub pattern: Option<String>,
}

/// What the operator asked of a copy job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Run,
    Pause,
    Cancel,
}

fn fail(context: &'static str) -> impl Fn(mysql_async::Error) -> Error {
    move |error| Error::database(context, error)
}

/// The tables a pipeline's node is to copy now (queued or copying, their job asked to run).
pub async fn copy_work(meta: &MetaDb, pipeline: PipelineId) -> Result<Vec<CopyWork>> {
    let context = "cannot read the copy jobs";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let rows: Vec<(u64, String, String, Option<String>)> = conn
            .exec(LIST_WORK, (pipeline.0,))
            .await
            .map_err(fail(context))?;
        Ok(rows
            .into_iter()
            .map(|(job, schema, table, condition)| CopyWork {
                job,
                schema,
                table,
                condition,
            })
            .collect())
    })
    .await
}

/// The pipeline's copy jobs whose tables are still to be listed.
pub async fn unexpanded_jobs(meta: &MetaDb, pipeline: PipelineId) -> Result<Vec<UnexpandedJob>> {
    let context = "cannot read the copy jobs";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let rows: Vec<(u64, Option<String>, Option<String>)> = conn
            .exec(UNEXPANDED, (pipeline.0,))
            .await
            .map_err(fail(context))?;
        Ok(rows
            .into_iter()
            .map(|(job, schema, pattern)| UnexpandedJob {
                job,
                schema,
                pattern,
            })
            .collect())
    })
    .await
}

/// Adds the tables a job's pattern matches (`schema, table, rows estimated`), and marks
/// the job listed.
pub async fn expand_job(
    meta: &MetaDb,
    job: u64,
    tables: &[(String, String, Option<u64>)],
) -> Result<()> {
    let context = "cannot list the tables of a copy job";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let mut transaction = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(fail(context))?;
        transaction
            .exec_batch(
                ADD_TABLE,
                tables
                    .iter()
                    .map(|(schema, table, rows)| (job, schema, table, *rows)),
            )
            .await
            .map_err(fail(context))?;
        transaction
            .exec_drop(MARK_EXPANDED, (job,))
            .await
            .map_err(fail(context))?;
        transaction.commit().await.map_err(fail(context))
    })
    .await
}

/// What the operator asks of `job` now (a job deleted meanwhile counts as cancelled).
pub async fn copy_requested(meta: &MetaDb, job: u64) -> Result<Requested> {
    let context = "cannot read a copy job";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let requested: Option<String> = conn
            .exec_first(REQUESTED, (job,))
            .await
            .map_err(fail(context))?;
        Ok(match requested.as_deref() {
            Some("run") => Requested::Run,
            Some("pause") => Requested::Pause,
            _ => Requested::Cancel,
        })
    })
    .await
}

/// How far a table's copy has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CopyCounts {
    pub rows: u64,
    pub chunks: u64,
    /// Rows per second over the last minute.
    pub rate: Option<f64>,
}

/// The table's copy has started (again): its target name and the source's row estimate.
pub async fn copy_started(
    meta: &MetaDb,
    work: &CopyWork,
    target: &str,
    estimate: Option<u64>,
) -> Result<()> {
    let context = "cannot record a copy's start";
    let mut conn = meta.conn().await?;
    timed(context, async {
        conn.exec_drop(
            START_TABLE,
            (target, estimate, work.job, &work.schema, &work.table),
        )
        .await
        .map_err(fail(context))
    })
    .await
}

/// Records a table's progress; `done` when its last chunk was committed.
pub async fn copy_progress(
    meta: &MetaDb,
    work: &CopyWork,
    counts: CopyCounts,
    done: bool,
) -> Result<()> {
    let context = "cannot record a copy's progress";
    let mut conn = meta.conn().await?;
    let sql = if done { FINISH } else { PROGRESS };
    timed(context, async {
        conn.exec_drop(
            sql,
            (
                counts.rows,
                counts.chunks,
                counts.rate,
                work.job,
                &work.schema,
                &work.table,
            ),
        )
        .await
        .map_err(fail(context))
    })
    .await
}

/// A table's copy failed: `error` says why (and what to do).
pub async fn copy_failed(meta: &MetaDb, work: &CopyWork, error: &str) -> Result<()> {
    let context = "cannot record a failed copy";
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

/// Queues the copy of every paired table, unless the pipeline already had its initial copy.
pub async fn queue_initial_copy(meta: &MetaDb, pipeline: PipelineId) -> Result<()> {
    let context = "cannot queue the initial copy";
    let mut conn = meta.conn().await?;
    timed(context, async {
        conn.exec_drop(INITIAL_COPY, (pipeline.0, pipeline.0))
            .await
            .map_err(fail(context))
    })
    .await
}

/// Replaces the list of paired source tables the pipeline sees (`schema, table, rows`).
pub async fn record_source_tables(
    meta: &MetaDb,
    pipeline: PipelineId,
    tables: &[(String, String, Option<u64>)],
) -> Result<()> {
    let context = "cannot record the source tables";
    let mut conn = meta.conn().await?;
    timed(context, async {
        let mut transaction = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(fail(context))?;
        transaction
            .exec_drop(FORGET_SOURCE_TABLES, (pipeline.0,))
            .await
            .map_err(fail(context))?;
        transaction
            .exec_batch(
                ADD_SOURCE_TABLE,
                tables
                    .iter()
                    .map(|(schema, table, rows)| (pipeline.0, schema, table, *rows)),
            )
            .await
            .map_err(fail(context))?;
        transaction.commit().await.map_err(fail(context))
    })
    .await
}
