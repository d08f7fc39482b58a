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

mod conflict;
mod ddl;
mod merge;
mod repair;
mod statements;

pub use crate::model::{ConflictRecord, SkippedRow};
pub use crate::pipeline::transform::bind::{Bound, bind, from_param};
use conflict::CheckedOutcome;
pub use merge::{KeyOp, Merged, merge, partition_of};
pub use repair::RepairProgress;

use crate::config::DataSource;
use crate::error::{Error, Result};
use crate::model::ChangeKind;
use crate::model::{BinlogFilePos, ChangeAt, FencingToken, GtidState, PipelineId, Position};
use crate::pipeline::transform::{SkippedDdl, TargetChange, TargetRow, TargetTable};
use crate::sys::{self, applied::*};
use futures_util::future::join_all;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, PoolConstraints, PoolOpts, Transaction, TxOpts};
use statements::{
    TEXT_STATEMENT_BYTES, delete_keys, delete_row, delete_texts, insert, literal_tuple, update_key,
    update_row, upsert, upsert_texts,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

const FOREIGN_KEYS: &str = "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
     WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)";
const UNIQUE_KEYS: &str = "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY'";
const UNIQUE_KEY_COLUMNS: &str = "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY' \
     ORDER BY INDEX_NAME, SEQ_IN_INDEX";
const TARGET_COLUMNS: &str = "SELECT COLUMN_NAME, EXTRA, DATA_TYPE FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
/// Load sessions: UTC, zero values kept as they are, strict, utf8mb4, short DDL lock waits.
/// One statement, since mysql_async runs setup commands in no fixed order.
const SESSION: &str = "SET NAMES utf8mb4, SESSION time_zone = '+00:00', \
     sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', lock_wait_timeout = 30";
/// Load transactions take no gap locks, so partitions writing neighbouring keys of a
/// secondary index do not deadlock each other (REPEATABLE READ's next-key locks do).
const READ_COMMITTED: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";
/// Whether the target logs statements: READ COMMITTED is then refused by InnoDB.
const STATEMENT_BINLOG: &str = "SELECT @@log_bin = 1 AND @@binlog_format = 'STATEMENT'";
/// Times a deadlocked partition runs again, alone, before the batch fails.
const DEADLOCK_RETRIES: u32 = 5;
/// Server errors that reject one row for what it holds (its key, its values, the rows it
/// references): the only ones `skip_load_errors` passes over. Any other error (a lock wait, a
/// deadlock, a read-only or unreachable server, a missing table, column or privilege) is the
/// target's, not the row's, and skipping it would lose rows the target could take later.
const ROW_ERRORS: [u16; 22] = [
    1048, // column cannot be null
    1022, 1062, 1169, // duplicate entry / unique constraint
    1216, 1217, 1451, 1452, // foreign key
    1264, 1690, // out of range
    1265, 1292, 1366, 1367, // a value the column cannot hold
    1364, // no default for a column
    1406, // data too long
    1300, // invalid character string
    3140, // invalid JSON text
    1586, 1859, // duplicate entry (named key, unknown index)
    3819, // MySQL: check constraint
    4025, // MariaDB: check constraint
];

/// Whether the server error `code` rejects a row for what it holds (see [`ROW_ERRORS`]).
fn is_row_error(code: u16) -> bool {
    ROW_ERRORS.contains(&code)
}
const LOCK_WAIT_TIMEOUT: u16 = 1205;
const DEADLOCK: u16 = 1213;
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
    pub pipeline_key: String,
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
    pub reverse_key: Option<String>,
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

/// The unique keys of `table` from `(index name, column name)` rows in key order, as indexes
/// into its columns; a key on a column that is not synced cannot be compared and is left out.
fn unique_key_columns(table: &TargetTable, rows: &[(String, String)]) -> Vec<Vec<usize>> {
    let mut keys: Vec<(String, Option<Vec<usize>>)> = Vec::new();
    for (index, column) in rows {
        if keys.last().is_none_or(|(name, _)| name != index) {
            keys.push((index.clone(), Some(Vec::new())));
        }
        let (_, columns) = keys.last_mut().expect("pushed");
        let position = table
            .columns
            .iter()
            .position(|name| name.eq_ignore_ascii_case(column));
        match (columns.as_mut(), position) {
            (Some(columns), Some(position)) => columns.push(position),
            _ => *columns = None,
        }
    }
    keys.into_iter()
        .filter_map(|(_, columns)| columns)
        .collect()
}

/// The index of the column a newer_wins rule compares, or an error naming it.
fn newer_column(table: &TargetTable, rule: &crate::config::ConflictRule) -> Result<Option<usize>> {
    match &rule.policy {
        crate::config::ConflictPolicy::PrimaryWins => Ok(None),
        crate::config::ConflictPolicy::NewerWins { column } => table
            .columns
            .iter()
            .position(|name| name.eq_ignore_ascii_case(column))
            .map(Some)
            .ok_or_else(|| {
                Error::Precheck(format!(
                    "conflict policy newer_wins compares column {column}, which {}.{} does not sync",
                    table.schema, table.table
                ))
            }),
    }
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

/// Whether two applied positions are the same point of the binlog (GTID states may be known
/// for one and not the other).
fn same_point(a: &Option<Position>, b: &Option<Position>) -> bool {
    let point =
        |position: &Option<Position>| position.as_ref().map(|p| (p.file.clone(), p.trx_rows_done));
    point(a) == point(b)
}

/// The resume position just before the change at `at`.
fn position_at(at: &ChangeAt) -> Position {
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

/// A row for messages: its key (or its first columns when it has none) and where it is in
/// the source binlog.
fn describe(row: &TargetRow) -> String {
    let image = row.after.as_ref().or(row.before.as_ref());
    let shown: Vec<String> = match image {
        Some(image) if !row.table.key.is_empty() => row
            .table
            .key
            .iter()
            .map(|index| format!("{}={:?}", row.table.columns[*index], image[*index]))
            .collect(),
        Some(image) => row
            .table
            .columns
            .iter()
            .zip(image)
            .take(3)
            .map(|(name, value)| format!("{name}={value:?}"))
            .collect(),
        None => Vec::new(),
    };
    format!(
        "{} at {}#{}",
        shown.join(", "),
        row.at.transaction,
        row.at.index
    )
}

/// Whether an update moves a row to another key.
fn changes_key(row: &TargetRow) -> bool {
    !row.table.key.is_empty()
        && row.kind == ChangeKind::Update
        && matches!((&row.before, &row.after), (Some(before), Some(after))
            if merge::key_of(&row.table, before) != merge::key_of(&row.table, after))
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

/// A target table with the columns a change carries: a source whose layout changed without
/// a synced DDL maps to another entry, so cached column indexes never go stale.
type TableKey = (String, String, Vec<String>);

fn table_key(table: &TargetTable) -> TableKey {
    (
        table.schema.clone(),
        table.table.clone(),
        table.columns.clone(),
    )
}

/// A target table as found on the target.
#[derive(Debug, Clone)]
struct TableInfo {
    /// The indexes of its columns to write (present, not generated).
    columns: Arc<Vec<usize>>,
    /// It has a foreign key or is referenced by one (cascades are not in the binlog), or it
    /// has a unique key besides the primary key (an upsert clashing on it would update
    /// another row): such tables are applied in one partition, in binlog order.
    serial: bool,
    /// Two-way channels: the unique keys besides the primary key (indexes into the target
    /// table's columns; keys on columns that are not synced are left out).
    unique_keys: Arc<Vec<Vec<usize>>>,
    /// Two-way channels under newer_wins: the index of the column compared.
    newer: Option<usize>,
}

/// What went wrong in a partition, to decide about a serial re-run.
enum PartitionError {
    DuplicateKey(Error),
    /// A deadlock or lock wait timeout: the transaction was rolled back and may run again.
    Deadlock(Error),
    Other(Error),
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

    async fn prepare(&mut self, target: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        sys::ensure(&mut conn, target).await?;
        let options = &self.options;
        for partition in 0..=options.parallelism {
            conn.exec_drop(
                ADD_PARTITION,
                (
                    &options.pipeline_key,
                    partition as u32,
                    &options.pipeline_name,
                ),
            )
            .await
            .map_err(self.fail("register the partitions"))?;
        }
        let token = options.token.0;
        conn.exec_drop(
            CLAIM_PARTITIONS,
            (
                token,
                &options.holder,
                &options.pipeline_key,
                token,
                token,
                &options.holder,
            ),
        )
        .await
        .map_err(self.fail("claim the partitions"))?;
        let claimed = conn.affected_rows();
        let rows: Option<u64> = conn
            .exec_first(COUNT_PARTITIONS, (&options.pipeline_key,))
            .await
            .map_err(self.fail("count the partitions"))?;
        if claimed < rows.unwrap_or(0) {
            return Err(self.refused_claim(target).await);
        }
        let applied: Vec<AppliedColumns> = conn
            .exec(READ_APPLIED, (&options.pipeline_key,))
            .await
            .map_err(self.fail("read the applied positions"))?;
        let layout = format!(
            "{}{}",
            options.parallelism,
            if options.transactional {
                " transactional"
            } else {
                ""
            }
        );
        let position_of = |file: Option<String>,
                           offset: Option<u64>,
                           gtid: Option<String>,
                           trx_rows_done: u64| {
            file.zip(offset).map(|(file, offset)| Position {
                file: Some(BinlogFilePos { file, offset }),
                gtid: gtid.and_then(|text| text.parse::<GtidState>().ok()),
                trx_rows_done,
            })
        };
        let earlier: Vec<(String, Option<Position>)> = applied
            .iter()
            .filter(|row| !row.5.is_empty())
            .map(|row| {
                (
                    row.5.clone(),
                    position_of(row.1.clone(), row.2, row.3.clone(), row.4),
                )
            })
            .collect();
        if earlier.iter().any(|(used, _)| *used != layout) {
            // Rows were routed with another layout: safe to change only where every partition
            // agrees on what is applied (as after every whole batch).
            let first = earlier
                .first()
                .map(|(_, position)| position.clone())
                .unwrap_or_default();
            if earlier
                .iter()
                .any(|(_, position)| !same_point(position, &first))
            {
                let used = &earlier
                    .iter()
                    .find(|(used, _)| *used != layout)
                    .expect("found above")
                    .0;
                return Err(Error::Transform(format!(
                    "the load layout changed from '{used}' to '{layout}' (load_parallelism, transactional) while a batch \
                     was half applied on the target: set it back until the pipeline has caught up"
                )));
            }
            let file = first.as_ref().and_then(|position| position.file.clone());
            conn.exec_drop(
                SET_LAYOUT,
                (
                    &layout,
                    file.as_ref().map(|file| file.file.clone()),
                    file.as_ref().map(|file| file.offset),
                    first
                        .as_ref()
                        .and_then(|position| position.gtid.as_ref().map(ToString::to_string)),
                    first.as_ref().map_or(0, |position| position.trx_rows_done),
                    &options.pipeline_key,
                    token,
                ),
            )
            .await
            .map_err(self.fail("record the load layout"))?;
            self.applied
                .iter_mut()
                .for_each(|slot| *slot = first.clone());
            return Ok(());
        }
        let unmarked = applied.iter().any(|row| row.5.is_empty());
        for (partition, file, offset, gtid, trx_rows_done, _) in applied {
            if let Some(slot) = self.applied.get_mut(partition as usize) {
                *slot = position_of(file, offset, gtid, trx_rows_done);
            }
        }
        if unmarked {
            conn.exec_drop(MARK_LAYOUT, (&layout, &options.pipeline_key))
                .await
                .map_err(self.fail("record the load layout"))?;
        }
        Ok(())
    }

    /// Two-way: the row of `ottr_sys.applied` on the source that marks what this pipeline
    /// writes there (see `repair`).
    async fn prepare_source(&self, source: &str) -> Result<()> {
        let pool = self.source.as_ref().expect("a two-way loader");
        let fail = |error| {
            Error::database(
                format!("cannot prepare ottr_sys on data source '{source}' for conflicts"),
                error,
            )
        };
        let mut conn = pool.get_conn().await.map_err(fail)?;
        sys::ensure(&mut conn, source).await?;
        let options = &self.options;
        conn.exec_drop(
            ADD_PARTITION,
            (
                &options.pipeline_key,
                WRITE_BACK_PARTITION,
                &options.pipeline_name,
            ),
        )
        .await
        .map_err(fail)?;
        // Held under this token: a node that lost the pipeline writes nothing back.
        let token = options.token.0;
        conn.exec_drop(
            CLAIM_WRITE_BACK,
            (
                token,
                &options.holder,
                &options.pipeline_key,
                WRITE_BACK_PARTITION,
                token,
                token,
                &options.holder,
            ),
        )
        .await
        .map_err(fail)?;
        if conn.affected_rows() == 0 {
            return Err(self.refused_claim(source).await);
        }
        Ok(())
    }

    /// Why a claim of the pipeline's `ottr_sys.applied` rows on `server` under the lease's
    /// token took fewer rows than there are: another holder's token is there. If the newest
    /// token the target (and, two-way, the source) holds is not older than the lease's, the
    /// metadata may have handed a token out twice (it failed over to a replica that missed
    /// lease rows): [`Error::TokenBehind`] with that token lets the pipeline raise the lease
    /// past it, once for both servers. Otherwise (or when it cannot be read), [`Error::Fenced`].
    async fn refused_claim(&self, server: &str) -> Error {
        let options = &self.options;
        let fenced = Error::Fenced {
            pipeline: options.pipeline,
            token: options.token,
        };
        let newest_on = |pool: &Pool| {
            let pool = pool.clone();
            async move {
                let mut conn = pool.get_conn().await?;
                conn.exec_first::<Option<u64>, _, _>(NEWEST_TOKEN, (&options.pipeline_key,))
                    .await
                    .map(|token| token.flatten().unwrap_or(0))
            }
        };
        let Ok(mut newest) = newest_on(&self.pool).await else {
            return fenced;
        };
        // The source's, if it can be read (it may have no ottr_sys yet).
        if let Some(source) = &self.source
            && let Ok(token) = newest_on(source).await
        {
            newest = newest.max(token);
        }
        if newest < options.token.0 {
            return fenced;
        }
        Error::TokenBehind {
            pipeline: options.pipeline,
            token: options.token,
            server: server.to_owned(),
            newest: FencingToken(newest),
        }
    }

    /// Forgets what the target says is applied: the pipeline starts over from a new position.
    pub async fn forget_applied(&mut self) -> Result<()> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            FORGET_APPLIED,
            (&self.options.pipeline_key, self.options.token.0),
        )
        .await
        .map_err(self.fail("reset the applied positions"))?;
        conn.exec_drop(FORGET_DDL, (&self.options.pipeline_key,))
            .await
            .map_err(self.fail("reset the DDL records"))?;
        self.applied.iter_mut().for_each(|slot| *slot = None);
        Ok(())
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

    /// The partitions whose applied position is before `end` (positions only move forward).
    fn behind(&self, end: &Position) -> Vec<usize> {
        (0..self.applied.len())
            .filter(|partition| match &self.applied[*partition] {
                None => true,
                Some(applied) => {
                    (&applied.file, applied.trx_rows_done) < (&end.file, end.trx_rows_done)
                }
            })
            .collect()
    }

    /// The partition of a row: by key hash, or the serial one for tables without a key.
    fn partition(&self, row: &TargetRow) -> usize {
        let linked = self
            .tables
            .get(&table_key(&row.table))
            .is_some_and(|info| info.serial);
        if row.table.key.is_empty() || self.options.transactional || linked {
            self.options.parallelism
        } else {
            partition_of(row, self.options.parallelism)
        }
    }

    fn is_applied(&self, partition: usize, at: &ChangeAt) -> bool {
        self.applied[partition]
            .as_ref()
            .is_some_and(|applied| at.is_before(applied))
    }

    async fn apply_rows(&mut self, rows: Vec<TargetRow>, end: &Position) -> Result<()> {
        // What every partition has applied needs no look-up on the target at all (its table
        // may be gone by now, after a DDL that was applied too).
        let rows: Vec<TargetRow> = rows
            .into_iter()
            .filter(|row| {
                (0..self.applied.len()).any(|partition| !self.is_applied(partition, &row.at))
            })
            .collect();
        for row in &rows {
            self.table_info(&row.table).await?;
        }
        let mut partitions: Vec<Vec<TargetRow>> = vec![Vec::new(); self.options.parallelism + 1];
        for row in rows {
            let partition = self.partition(&row);
            if !self.is_applied(partition, &row.at) {
                partitions[partition].push(row);
            }
        }
        let work: Vec<(usize, Vec<TargetRow>)> = partitions
            .into_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .collect();
        if work.is_empty() {
            return Ok(());
        }
        let results = join_all(
            work.iter()
                .map(|(partition, rows)| self.apply_partition(*partition, rows, end)),
        )
        .await;
        let mut duplicate = false;
        let mut first_error = None;
        let mut deadlocked = Vec::new();
        for ((partition, rows), result) in work.iter().zip(results) {
            match result {
                Ok(()) => self.applied[*partition] = Some(end.clone()),
                Err(PartitionError::Deadlock(_)) => deadlocked.push((*partition, rows)),
                Err(PartitionError::DuplicateKey(error)) => {
                    duplicate = true;
                    first_error.get_or_insert(error);
                }
                Err(PartitionError::Other(error)) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        // A deadlocked partition was rolled back whole: it runs again alone, so that it
        // meets no other partition of its own (a foreign writer may still hold locks).
        for (partition, rows) in deadlocked {
            if first_error.is_some() {
                break;
            }
            match self.rerun_alone(partition, rows, end).await {
                Ok(()) => self.applied[partition] = Some(end.clone()),
                Err(PartitionError::DuplicateKey(error)) => {
                    duplicate = true;
                    first_error = Some(error);
                }
                Err(PartitionError::Deadlock(error) | PartitionError::Other(error)) => {
                    first_error = Some(error);
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(_) if duplicate => {
                // A unique-key swap across partitions, or a row the target rejects: apply what is
                // left in binlog order, row by row, so that an error names its row.
                let mut left: Vec<(usize, TargetRow)> = work
                    .into_iter()
                    .flat_map(|(partition, rows)| rows.into_iter().map(move |row| (partition, row)))
                    .filter(|(partition, row)| !self.is_applied(*partition, &row.at))
                    .collect();
                left.sort_by(|(_, a), (_, b)| {
                    (&a.at.transaction, a.at.index).cmp(&(&b.at.transaction, b.at.index))
                });
                self.apply_serially(left, end).await
            }
            Some(error) => Err(error),
        }
    }

    /// Runs a deadlocked partition again, up to [`DEADLOCK_RETRIES`] times, backing off.
    async fn rerun_alone(
        &self,
        partition: usize,
        rows: &[TargetRow],
        end: &Position,
    ) -> Result<(), PartitionError> {
        let mut attempt = 1;
        loop {
            match self.apply_partition(partition, rows, end).await {
                Err(PartitionError::Deadlock(error)) if attempt < DEADLOCK_RETRIES => {
                    warn!(pipeline = %self.options.pipeline, partition, attempt, error = %error, "deadlock on the target: running the partition again");
                    tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// One partition's rows in one target transaction, with its applied row moved to `end`.
    async fn apply_partition(
        &self,
        partition: usize,
        rows: &[TargetRow],
        end: &Position,
    ) -> Result<(), PartitionError> {
        let classify = |error: Error| match &error {
            // Any row the server rejects (a duplicate key above all) is retried in binlog order.
            Error::Database {
                source: mysql_async::Error::Server(server),
                ..
            } if matches!(server.code, LOCK_WAIT_TIMEOUT | DEADLOCK) => {
                PartitionError::Deadlock(error)
            }
            Error::Database {
                source: mysql_async::Error::Server(_),
                ..
            } => PartitionError::DuplicateKey(error),
            _ => PartitionError::Other(error),
        };
        let mut conn = self.conn().await.map_err(classify)?;
        let mut transaction = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(self.fail("start a transaction"))
            .map_err(classify)?;
        let serial = partition == self.options.parallelism || rows.iter().any(changes_key);
        let mut checked = CheckedOutcome::default();
        let mut result = self.mark(&mut transaction, partition).await;
        if result.is_ok() {
            result = if rows.iter().any(|row| row.table.conflict.is_some()) {
                let rows: Vec<&TargetRow> = rows.iter().collect();
                self.write_checked(&mut transaction, &rows, &mut checked)
                    .await
            } else if serial {
                self.write_in_order(&mut transaction, rows.iter()).await
            } else {
                self.write_merged(&mut transaction, rows).await
            };
        }
        if result.is_ok() {
            result = self.move_applied(&mut transaction, &[partition], end).await;
        }
        if let Err(error) = result {
            // Rolled back now, not when the pool recycles the connection: a re-run must not
            // wait on this attempt's locks.
            let _ = transaction.rollback().await;
            return Err(classify(error));
        }
        transaction
            .commit()
            .await
            .map_err(self.fail("commit"))
            .map_err(classify)?;
        self.after_checked(checked)
            .await
            .map_err(PartitionError::Other)
    }

    /// Marks a transaction as this pipeline's (its first statement), under the fencing token.
    /// A target transaction marked as the serial partition's: for the pipeline's own records
    /// (DDL announcements, conflicts' keys), fenced like every other.
    async fn serial_transaction<'c>(&self, conn: &'c mut Conn) -> Result<Transaction<'c>> {
        let mut transaction = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(self.fail("start a transaction"))?;
        self.mark(&mut transaction, self.options.parallelism)
            .await?;
        Ok(transaction)
    }

    async fn mark(&self, transaction: &mut Transaction<'_>, partition: usize) -> Result<()> {
        let options = &self.options;
        transaction
            .exec_drop(
                MARK,
                (&options.pipeline_key, partition as u32, options.token.0),
            )
            .await
            .map_err(self.fail("mark the transaction"))?;
        if transaction.affected_rows() == 0 {
            return Err(Error::Fenced {
                pipeline: options.pipeline,
                token: options.token,
            });
        }
        Ok(())
    }

    /// After a committed transaction with checked writes: its conflicts are kept for the
    /// conflict log, and their keys kept for repair (see [`Loader::repair`]).
    async fn after_checked(&self, checked: CheckedOutcome) -> Result<()> {
        if !checked.conflicts.is_empty() {
            self.conflicts
                .lock()
                .expect("not poisoned")
                .extend(checked.conflicts);
        }
        self.suspect(checked.suspects);
        Ok(())
    }

    /// The conflicts met by committed transactions since the last call.
    pub fn take_conflicts(&self) -> Vec<ConflictRecord> {
        std::mem::take(&mut *self.conflicts.lock().expect("not poisoned"))
    }

    /// Rows of several partitions in binlog order, in one transaction.
    async fn apply_serially(
        &mut self,
        rows: Vec<(usize, TargetRow)>,
        end: &Position,
    ) -> Result<()> {
        let mut partitions: Vec<usize> = rows.iter().map(|(partition, _)| *partition).collect();
        partitions.sort();
        partitions.dedup();
        let mut conn = self.conn().await?;
        let mut transaction = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(self.fail("start a transaction"))?;
        self.mark(&mut transaction, partitions[0]).await?;
        let mut checked = CheckedOutcome::default();
        if rows.iter().any(|(_, row)| row.table.conflict.is_some()) {
            let rows: Vec<&TargetRow> = rows.iter().map(|(_, row)| row).collect();
            self.write_checked(&mut transaction, &rows, &mut checked)
                .await?;
        } else if self.options.skip_load_errors {
            for (_, row) in &rows {
                transaction
                    .query_drop("SAVEPOINT ottr_row")
                    .await
                    .map_err(self.fail("set a savepoint"))?;
                match self.write_row(&mut transaction, row).await {
                    Ok(()) => {}
                    Err(Error::Database {
                        source: mysql_async::Error::Server(server),
                        ..
                    }) if is_row_error(server.code) => {
                        transaction
                            .query_drop("ROLLBACK TO SAVEPOINT ottr_row")
                            .await
                            .map_err(self.fail("roll back to the savepoint"))?;
                        self.skipped.push(SkippedRow {
                            table: format!("{}.{}", row.table.schema, row.table.table),
                            row: describe(row),
                            error: format!("ERROR {}: {}", server.code, server.message),
                        });
                    }
                    Err(error) => return Err(error),
                }
            }
        } else {
            self.write_in_order(&mut transaction, rows.iter().map(|(_, row)| row))
                .await?;
        }
        self.move_applied(&mut transaction, &partitions, end)
            .await?;
        transaction.commit().await.map_err(self.fail("commit"))?;
        for partition in partitions {
            self.applied[partition] = Some(end.clone());
        }
        self.after_checked(checked).await?;
        Ok(())
    }

    /// Merged per key: deletes, then upserts, in multi-row statements with their values
    /// written as literals (a prepared statement would cost the target more per row: it
    /// writes the values into the statement's text again for its logs). A row longer than
    /// half a text statement is bound to a prepared one instead. After the merge every key
    /// occurs once, so the order of the upserts does not matter.
    async fn write_merged(
        &self,
        transaction: &mut Transaction<'_>,
        rows: &[TargetRow],
    ) -> Result<()> {
        let merged = merge(&rows.iter().collect::<Vec<_>>());
        for (table, keys) in &merged.deletes {
            let tuples: Vec<String> = keys.iter().map(|key| literal_tuple(key.iter())).collect();
            for sql in delete_texts(table, &tuples) {
                self.run_text(transaction, table, sql).await?;
            }
        }
        for (table, images) in &merged.upserts {
            let columns = self
                .tables
                .get(&table_key(table))
                .map(|info| info.columns.clone())
                .expect("looked up");
            let mut tuples = Vec::with_capacity(images.len());
            for image in images {
                let tuple = literal_tuple(columns.iter().map(|index| &image[*index]));
                if tuple.len() > TEXT_STATEMENT_BYTES / 2 {
                    let (sql, params) = upsert(table, &columns, std::slice::from_ref(image));
                    self.run(transaction, table, &sql, params).await?;
                } else {
                    tuples.push(tuple);
                }
            }
            for sql in upsert_texts(table, &columns, &tuples) {
                self.run_text(transaction, table, sql).await?;
            }
        }
        Ok(())
    }

    /// Row by row in binlog order: keyed tables by key, others by matching whole rows.
    async fn write_in_order<'r>(
        &self,
        transaction: &mut Transaction<'_>,
        rows: impl Iterator<Item = &'r TargetRow>,
    ) -> Result<()> {
        for row in rows {
            self.write_row(transaction, row)
                .await
                .map_err(|error| match error {
                    Error::Database { context, source } => Error::Database {
                        context: format!("{context} (row {})", describe(row)),
                        source,
                    },
                    other => other,
                })?;
        }
        Ok(())
    }

    /// One row, by key (or by whole row for a table without a key).
    async fn write_row(&self, transaction: &mut Transaction<'_>, row: &TargetRow) -> Result<()> {
        {
            let table = &row.table;
            let columns = self
                .tables
                .get(&table_key(table))
                .map(|info| info.columns.clone())
                .expect("looked up");
            if table.key.is_empty() {
                let (statement, must_match) = match (row.kind, &row.before, &row.after) {
                    (ChangeKind::Insert, _, Some(after)) => (insert(table, &columns, after), false),
                    (ChangeKind::Update, Some(before), Some(after)) => {
                        (update_row(table, &columns, before, after), true)
                    }
                    (ChangeKind::Delete, Some(before), _) => {
                        (delete_row(table, &columns, before), true)
                    }
                    _ => return Ok(()),
                };
                let (sql, params): (String, Vec<mysql_async::Value>) = statement;
                self.run(transaction, table, &sql, params).await?;
                if must_match && transaction.affected_rows() == 0 {
                    return Err(Error::Transform(format!(
                        "a row of {}.{} (a table without a primary key) that the source changed is not on the target",
                        table.schema, table.table
                    )));
                }
            } else if changes_key(row) {
                let (Some(before), Some(after)) = (&row.before, &row.after) else {
                    return Ok(());
                };
                let old_key = merge::key_of(table, before);
                let (sql, params) = update_key(table, &columns, &old_key, after);
                self.run(transaction, table, &sql, params).await?;
                if transaction.affected_rows() == 0 {
                    let (sql, params) = upsert(table, &columns, std::slice::from_ref(after));
                    self.run(transaction, table, &sql, params).await?;
                }
            } else {
                for op in merge::key_ops(row) {
                    let (sql, params) = match op {
                        KeyOp::Delete(key) => delete_keys(table, &[key]),
                        KeyOp::Upsert(image) => upsert(table, &columns, &[image]),
                    };
                    self.run(transaction, table, &sql, params).await?;
                }
            }
        }
        Ok(())
    }

    async fn run(
        &self,
        transaction: &mut Transaction<'_>,
        table: &TargetTable,
        sql: &str,
        params: Vec<mysql_async::Value>,
    ) -> Result<()> {
        let result = transaction.exec_drop(sql, params).await;
        result.map_err(|error| self.applying(table, error))
    }

    /// Runs a statement with its values written in it.
    async fn run_text(
        &self,
        transaction: &mut Transaction<'_>,
        table: &TargetTable,
        sql: String,
    ) -> Result<()> {
        let result = transaction.query_drop(sql).await;
        result.map_err(|error| self.applying(table, error))
    }

    fn applying(&self, table: &TargetTable, error: mysql_async::Error) -> Error {
        Error::database(
            format!(
                "pipeline {}: applying to {}.{} failed",
                self.options.pipeline, table.schema, table.table
            ),
            error,
        )
    }

    /// Moves the applied rows of `partitions` to `end`, guarded by the fencing token.
    async fn move_applied(
        &self,
        transaction: &mut Transaction<'_>,
        partitions: &[usize],
        end: &Position,
    ) -> Result<()> {
        let options = &self.options;
        for partition in partitions {
            let file = end.file.as_ref();
            transaction
                .exec_drop(
                    MOVE_APPLIED,
                    (
                        file.map(|file| file.file.clone()),
                        file.map(|file| file.offset),
                        end.gtid.as_ref().map(ToString::to_string),
                        end.trx_rows_done,
                        options.token.0,
                        &options.pipeline_key,
                        *partition as u32,
                        options.token.0,
                    ),
                )
                .await
                .map_err(self.fail("record the applied position"))?;
            if transaction.affected_rows() == 0 {
                return Err(Error::Fenced {
                    pipeline: options.pipeline,
                    token: options.token,
                });
            }
        }
        Ok(())
    }

    /// What to know of `table` on the target: its columns to write (fails naming a column the
    /// target lacks) and whether foreign keys link it.
    async fn table_info(&mut self, table: &TargetTable) -> Result<TableInfo> {
        let key = table_key(table);
        if let Some(info) = self.tables.get(&key) {
            return Ok(info.clone());
        }
        let mut conn = self.conn().await?;
        let rows: Vec<(String, String, String)> = conn
            .exec(TARGET_COLUMNS, (&table.schema, &table.table))
            .await
            .map_err(self.fail("read the target table's columns"))?;
        if rows.is_empty() {
            return Err(Error::Precheck(format!(
                "target table {}.{} does not exist",
                table.schema, table.table
            )));
        }
        let mut columns = Vec::new();
        for (index, name) in table.columns.iter().enumerate() {
            match rows
                .iter()
                .find(|(column, _, _)| column.eq_ignore_ascii_case(name))
            {
                // Two-way checks compare a row with the literals a write carries; MySQL
                // compares a JSON column with a string literal as JSON against a JSON string,
                // never equal: every change would be taken for a conflict (and lost to the
                // primary). MariaDB's JSON is text, compared as written.
                Some((_, _, data_type))
                    if table.conflict.is_some()
                        && self.target_kind == crate::config::DataSourceKind::MySql
                        && data_type.eq_ignore_ascii_case("json") =>
                {
                    return Err(Error::Precheck(format!(
                        "table {}.{} of a two-way channel has the MySQL JSON column {name}, which ottr cannot yet compare for conflicts: leave the column out of the pair (a column pair) or sync the table one way",
                        table.schema, table.table
                    )));
                }
                // VIRTUAL/STORED/PERSISTENT GENERATED; not MySQL's DEFAULT_GENERATED
                Some((_, extra, _))
                    if ["VIRTUAL", "STORED", "PERSISTENT"]
                        .iter()
                        .any(|kind| extra.to_ascii_uppercase().contains(kind)) => {}
                Some(_) => columns.push(index),
                None => {
                    return Err(Error::Precheck(format!(
                        "target table {}.{} has no column {name}",
                        table.schema, table.table
                    )));
                }
            }
        }
        let links: Option<u64> = conn
            .exec_first(
                FOREIGN_KEYS,
                (&table.schema, &table.table, &table.schema, &table.table),
            )
            .await
            .map_err(self.fail("read the target table's foreign keys"))?;
        let unique: Option<u64> = conn
            .exec_first(UNIQUE_KEYS, (&table.schema, &table.table))
            .await
            .map_err(self.fail("read the target table's unique keys"))?;
        let (unique_keys, newer) = match &table.conflict {
            None => (Vec::new(), None),
            Some(rule) => {
                let rows: Vec<(String, String)> = conn
                    .exec(UNIQUE_KEY_COLUMNS, (&table.schema, &table.table))
                    .await
                    .map_err(self.fail("read the target table's unique keys"))?;
                (unique_key_columns(table, &rows), newer_column(table, rule)?)
            }
        };
        let info = TableInfo {
            columns: Arc::new(columns),
            serial: links.unwrap_or(0) > 0 || unique.unwrap_or(0) > 0,
            unique_keys: Arc::new(unique_keys),
            newer,
        };
        self.tables.insert(key, info.clone());
        Ok(info)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_about_a_rows_contents_may_be_skipped() {
        // a duplicate key, a value too long, a foreign key, a check constraint
        for code in [1062, 1406, 1452, 4025, 3819] {
            assert!(is_row_error(code), "{code}");
        }
        // a lock wait, a deadlock, a read-only server, a missing table or column, privileges,
        // a lost connection
        for code in [1205, 1213, 1290, 1146, 1054, 1142, 2013] {
            assert!(!is_row_error(code), "{code}");
        }
    }
}
