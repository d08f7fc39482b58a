//! Load: applies transformed changes to the target, exactly once.
//!
//! Rows are applied in `load_parallelism` partitions keyed by a hash of table and primary key
//! (the same key always goes to the same partition, so per-row order holds), each in its own
//! target transaction, merged per key, deletes before upserts. Tables without a primary key
//! go to one more, serial partition, applied row by row in binlog order. A duplicate-key
//! error in parallel (a unique-key swap across partitions) re-runs what is left serially in
//! binlog order. DDL is a barrier, recorded in `ottr_sys.ddl` as applying before and applied
//! after, and on a replay of one left applying, "already done" errors count as success.
//!
//! Exactly once: every target transaction also moves its partition's row in
//! `ottr_sys.applied` to the position it applied up to, guarded by the lease's fencing token
//! (`WHERE fencing_token <= ?`); if that matches no row, the transaction rolls back and the
//! pipeline stops: its lease was lost. A replay skips each change its partition's row says
//! is applied.
//!
//! Files: `claim.rs` takes the partitions' rows under the lease's token and reads where each
//! stands; `tables.rs` what is known of a target table (information_schema); `partitions.rs`
//! the partitioned and serial apply; `merge.rs` and `statements.rs` the merged writes and
//! their SQL; `ddl.rs` the DDL barrier; `copy.rs` a chunk of the online copy; two-way: `conflict.rs` (checked writes and their
//! decisions) and `repair.rs` (making conflicts' keys equal on both sides). Every statement
//! on `ottr_sys` is in [`crate::sys`].

mod claim;
mod conflict;
mod copy;
mod ddl;
mod merge;
mod partitions;
mod repair;
mod statements;
mod tables;

pub use crate::model::{ConflictRecord, SkippedRow};
pub use copy::{ChunkApplied, TargetChunk};
pub use merge::{KeyOp, Merged, merge, partition_of};
pub use repair::RepairProgress;

use crate::config::DataSource;
use crate::error::{Error, Result};
use crate::model::{ChangeAt, FencingToken, PipelineId, PipelineKey, Position};
use crate::pipeline::transform::{SkippedDdl, TargetChange};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, PoolConstraints, PoolOpts, TxOpts};
use partitions::changes_key;
use std::collections::HashMap;
use std::time::Duration;
use tables::{TableInfo, TableKey};

/// Load sessions: UTC, zero values kept as they are, strict, utf8mb4, short DDL lock waits.
/// One statement, since mysql_async runs setup commands in no fixed order.
const SESSION: &str = "SET NAMES utf8mb4, SESSION time_zone = '+00:00', \
     sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', lock_wait_timeout = 30";
/// Load transactions take no gap locks, so partitions writing neighbouring keys of a
/// secondary index do not deadlock each other (REPEATABLE READ's next-key locks do).
const READ_COMMITTED: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";
/// Whether the target logs statements: READ COMMITTED is then refused by InnoDB.
const STATEMENT_BINLOG: &str = "SELECT @@log_bin = 1 AND @@binlog_format = 'STATEMENT'";
const LOCK_WAIT_TIMEOUT: u16 = 1205;
/// Prepared statements kept per target connection (the row-by-row paths use a few shapes per
/// table; the server allows `max_prepared_stmt_count`, 16,382 by default, in all).
const STATEMENT_CACHE: usize = 64;
/// The target database's clock, microseconds since the epoch (lag is measured with it).
const CLOCK_US: &str = "SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS UNSIGNED)";

/// How a pipeline loads.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub pipeline: PipelineId,
    /// The pipeline's key in `ottr_sys`: `installation id/pipeline id`, unique across
    /// installations writing to the same target.
    pub pipeline_key: PipelineKey,
    pub pipeline_name: String,
    pub token: FencingToken,
    /// The node process running the pipeline (`name#instance`), recorded with the token.
    pub holder: String,
    /// Parallel partitions; one more, serial, partition takes tables without a key.
    pub parallelism: usize,
    /// Apply each batch in binlog order in one transaction.
    pub transactional: bool,
    pub skip_ddl_errors: bool,
    /// Rows the target rejects are left out and handed back by [`Loader::take_skipped`].
    pub skip_load_errors: bool,
    /// How soon another node may take the pipeline over when this one stops answering (the
    /// lease, or a shorter ZooKeeper session): see [`idle_limit`].
    pub takeover: Duration,
    /// Two-way channels: the pipeline's source, read for a row's current version when a
    /// change conflicts.
    pub source: Option<DataSource>,
    /// Two-way channels: whether this pipeline writes into the primary, and so decides
    /// conflicts and repairs their keys.
    pub arbiter: bool,
    /// Two-way channels: the `ottr_sys` key of the channel's other pipeline.
    pub reverse_key: Option<PipelineKey>,
}

/// How long the target keeps a load connection that sends nothing (`wait_timeout`, and
/// `net_read_timeout` / `net_write_timeout` for a statement stopped halfway): the takeover
/// time (the lease, or a shorter ZooKeeper session), at least 4 s. A node frozen inside a
/// target transaction (SIGSTOP, a stalled VM) then loses that transaction about when it
/// loses the pipeline, instead of holding its row locks against the node that took the
/// pipeline over until it wakes. Idle pooled connections are closed by
/// the pool first (after a quarter of it), so a healthy pipeline never meets a closed one.
pub fn idle_limit(takeover: Duration) -> Duration {
    Duration::from_secs(takeover.as_secs_f64().ceil().max(4.0) as u64)
}

/// The load side of one pipeline, on its target.
pub struct Loader {
    pool: Pool,
    options: LoadOptions,
    /// Per partition (the last is the serial one): the position applied up to.
    applied: Vec<Option<Position>>,
    /// Rows left out under `skip_load_errors` since the last [`Loader::take_skipped`].
    skipped: Vec<SkippedRow>,
    /// DDL statements left out under `skip_ddl_errors` since the last
    /// [`Loader::take_skipped_ddl`].
    skipped_ddl: Vec<SkippedDdl>,
    /// Per target table: what the load side needs to know of it on the target.
    tables: HashMap<TableKey, TableInfo>,
    /// Conflicts met by committed transactions since the last [`Loader::take_conflicts`].
    conflicts: std::sync::Mutex<Vec<ConflictRecord>>,
    /// Two-way channels: connections to the source, for conflicts.
    source: Option<Pool>,
    /// Two-way channels: keys whose sides may differ after a conflict, being repaired.
    repairs: std::sync::Mutex<Vec<repair::Repair>>,
    target_kind: crate::config::DataSourceKind,
}

/// The resume position just before the change at `at`.
pub fn position_at(at: &ChangeAt) -> Position {
    Position {
        file: Some(at.transaction.clone()),
        gtid: None,
        trx_rows_done: at.index,
    }
}

fn change_at(change: &TargetChange) -> &ChangeAt {
    match change {
        TargetChange::Row(row) => &row.at,
        TargetChange::Ddl { at, .. } => at,
    }
}

/// Whether `target` writes its binlog as statements (READ COMMITTED needs row images).
async fn logs_statements(target: &DataSource) -> Result<bool> {
    let mut conn = crate::pipeline::connect(target).await?;
    let statements: Option<bool> = conn.query_first(STATEMENT_BINLOG).await.map_err(|error| {
        let context = format!(
            "cannot read the binlog format of data source '{}'",
            target.name
        );
        Error::database(context, error)
    })?;
    let _ = conn.disconnect().await;
    Ok(statements.unwrap_or(false))
}

impl Loader {
    /// Connects to the target, creates `ottr_sys` if needed, and takes the pipeline's applied
    /// rows under this fencing token (Err(Fenced) if a newer token holds them).
    pub async fn open(target: &DataSource, options: LoadOptions) -> Result<Self> {
        let constraints = PoolConstraints::new(0, options.parallelism + 2).expect("0 <= n");
        let idle = idle_limit(options.takeover);
        // idle between statements, or stopped halfway through sending or reading one
        let wait_timeout = format!(
            "SET SESSION wait_timeout = {0}, net_read_timeout = {0}, net_write_timeout = {0}",
            idle.as_secs()
        );
        let mut setup = vec![SESSION.to_owned(), wait_timeout];
        if !logs_statements(target).await? {
            setup.push(READ_COMMITTED.to_owned());
        }
        let opts = crate::pipeline::connect::options(target)
            .await?
            .client_found_rows(true)
            // `setup`, not `init`: should a pooled connection be reset, only setup commands run
            // again; without them TIMESTAMPs would shift.
            .setup(setup)
            // the row-by-row statements of the serial paths
            .stmt_cache_size(STATEMENT_CACHE)
            // A connection keeps its session when it comes back to the pool: a reset would
            // drop its prepared statements, and each batch would prepare them again.
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    .with_reset_connection(false)
                    .with_inactive_connection_ttl(idle / 4)
                    .with_ttl_check_interval(Duration::from_secs(1)),
            );
        let pool = Pool::new(opts);
        let source = match &options.source {
            None => None,
            Some(source) => Some(Pool::new(
                crate::pipeline::connect::options(source)
                    .await?
                    // a claim under the same token again counts as held
                    .client_found_rows(true)
                    // a repair's write waits little for a lock: it is tried again next batch
                    .setup(vec![SESSION, "SET SESSION innodb_lock_wait_timeout = 1"])
                    .stmt_cache_size(STATEMENT_CACHE)
                    .pool_opts(
                        PoolOpts::default()
                            .with_constraints(constraints)
                            .with_reset_connection(false),
                    ),
            )),
        };
        let mut loader = Loader {
            source,
            pool,
            applied: vec![None; options.parallelism + 1],
            options,
            tables: HashMap::new(),
            skipped: Vec::new(),
            skipped_ddl: Vec::new(),
            conflicts: std::sync::Mutex::new(Vec::new()),
            repairs: std::sync::Mutex::new(Vec::new()),
            target_kind: target.kind,
        };
        loader.prepare(&target.name).await?;
        if let Some(source) = &loader.options.source {
            loader.prepare_source(&source.name).await?;
            loader.load_suspects().await?;
        }
        Ok(loader)
    }

    fn fail(&self, what: &str) -> impl Fn(mysql_async::Error) -> Error {
        let context = format!(
            "pipeline {}: cannot {what} on the target",
            self.options.pipeline
        );
        move |error| Error::database(context.clone(), error)
    }

    async fn conn(&self) -> Result<Conn> {
        self.pool.get_conn().await.map_err(self.fail("connect"))
    }

    /// The target database's clock, microseconds since the epoch.
    pub async fn clock_us(&self) -> Result<u64> {
        let mut conn = self.conn().await?;
        let now: Option<u64> = conn
            .query_first(CLOCK_US)
            .await
            .map_err(self.fail("read the clock"))?;
        Ok(now.unwrap_or(0))
    }

    /// Applies `changes`, a batch whose resume position is `end`. DDL and updates that change
    /// a key are barriers: what comes before them is applied first, then they alone, so that
    /// partitions never reorder a key chain (1→2 here, 2→3 in another partition).
    pub async fn apply(&mut self, changes: Vec<TargetChange>, end: &Position) -> Result<()> {
        let mut segment = Vec::new();
        let mut changes = changes.into_iter().peekable();
        while let Some(change) = changes.next() {
            match change {
                TargetChange::Row(row) if changes_key(&row) && !self.options.transactional => {
                    self.apply_rows(std::mem::take(&mut segment), &position_at(&row.at))
                        .await?;
                    let after = changes
                        .peek()
                        .map_or_else(|| end.clone(), |next| position_at(change_at(next)));
                    self.apply_rows(vec![row], &after).await?;
                }
                TargetChange::Row(row) => segment.push(row),
                TargetChange::Ddl { ddl, at } => {
                    self.apply_rows(std::mem::take(&mut segment), &position_at(&at))
                        .await?;
                    self.apply_ddl(&ddl, &at).await?;
                }
            }
        }
        self.apply_rows(segment, end).await?;
        self.align(end).await
    }

    /// Moves the partitions that had nothing to apply to `end` too, so that after every whole
    /// batch all partitions agree (and the load layout may change).
    async fn align(&mut self, end: &Position) -> Result<()> {
        let behind = self.behind(end);
        if behind.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut transaction = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(self.fail("start a transaction"))?;
        self.move_applied(&mut transaction, &behind, end).await?;
        transaction.commit().await.map_err(self.fail("commit"))?;
        for partition in behind {
            self.applied[partition] = Some(end.clone());
        }
        Ok(())
    }

    /// The conflicts met by committed transactions since the last call.
    pub fn take_conflicts(&self) -> Vec<ConflictRecord> {
        std::mem::take(&mut *self.conflicts.lock().expect("not poisoned"))
    }

    /// The rows left out under `skip_load_errors` since the last call.
    pub fn take_skipped(&mut self) -> Vec<SkippedRow> {
        std::mem::take(&mut self.skipped)
    }

    /// Closes the target connections.
    pub async fn close(self) {
        if let Some(source) = self.source {
            let _ = source.disconnect().await;
        }
        let _ = self.pool.disconnect().await;
    }
}
