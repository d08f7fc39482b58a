//! Applying a batch's rows: split into `load_parallelism` partitions by table and key, each
//! merged per key and written in its own target transaction that also moves the partition's
//! row of `ottr_sys.applied` (fenced by the lease's token); tables without a key, or linked
//! by foreign or unique keys, in the serial partition in binlog order. A deadlock re-runs a
//! partition alone; a duplicate key across partitions re-runs what is left serially.

use super::conflict::CheckedOutcome;
use super::merge::{self, KeyOp, merge, partition_of};
use super::statements::{
    OnDuplicate, Packer, TEXT_STATEMENT_BYTES, delete_keys, delete_row, delete_texts, insert,
    literal_tuple, update_key, update_row, upsert,
};
use super::tables::table_key;
use super::{LOCK_WAIT_TIMEOUT, Loader, SkippedRow};
use crate::error::{Error, Result};
use crate::model::{ChangeAt, ChangeKind, Position};
use crate::pipeline::transform::bind::Bound;
use crate::pipeline::transform::{TargetRow, TargetTable};
use crate::sys::applied::*;
use futures_util::future::join_all;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Transaction, TxOpts};
use std::time::Duration;
use tracing::warn;

/// Times a deadlocked partition runs again, alone, before the batch fails.
pub(super) const DEADLOCK_RETRIES: u32 = 5;

/// Server errors that reject one row for what it holds (its key, its values, the rows it
/// references): the only ones `skip_load_errors` passes over. Any other error (a lock wait, a
/// deadlock, a read-only or unreachable server, a missing table, column or privilege) is the
/// target's, not the row's, and skipping it would lose rows the target could take later.
pub(super) const ROW_ERRORS: [u16; 22] = [
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

pub(super) const DEADLOCK: u16 = 1213;

/// A row for messages: its key (or its first columns when it has none) and where it is in
/// the source binlog.
pub(super) fn describe(row: &TargetRow) -> String {
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
pub(super) fn changes_key(row: &TargetRow) -> bool {
    !row.table.key.is_empty()
        && row.kind == ChangeKind::Update
        && matches!((&row.before, &row.after), (Some(before), Some(after))
            if merge::key_of(&row.table, before) != merge::key_of(&row.table, after))
}

/// What went wrong in a partition, to decide about a serial re-run.
pub(super) enum PartitionError {
    DuplicateKey(Error),
    /// A deadlock or lock wait timeout: the transaction was rolled back and may run again.
    Deadlock(Error),
    Other(Error),
}

impl Loader {
    /// The partitions whose applied position is before `end` (positions only move forward).
    pub(super) fn behind(&self, end: &Position) -> Vec<usize> {
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
    pub(super) fn partition(&self, row: &TargetRow) -> usize {
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

    pub(super) fn is_applied(&self, partition: usize, at: &ChangeAt) -> bool {
        self.applied[partition]
            .as_ref()
            .is_some_and(|applied| at.is_before(applied))
    }

    pub(super) async fn apply_rows(&mut self, rows: Vec<TargetRow>, end: &Position) -> Result<()> {
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
    pub(super) async fn rerun_alone(
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
    pub(super) async fn apply_partition(
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
    pub(super) async fn serial_transaction<'c>(
        &self,
        conn: &'c mut Conn,
    ) -> Result<Transaction<'c>> {
        let mut transaction = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(self.fail("start a transaction"))?;
        self.mark(&mut transaction, self.options.parallelism)
            .await?;
        Ok(transaction)
    }

    pub(super) async fn mark(
        &self,
        transaction: &mut Transaction<'_>,
        partition: usize,
    ) -> Result<()> {
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
    pub(super) async fn after_checked(&self, checked: CheckedOutcome) -> Result<()> {
        if !checked.conflicts.is_empty() {
            self.conflicts
                .lock()
                .expect("not poisoned")
                .extend(checked.conflicts);
        }
        self.suspect(checked.suspects);
        Ok(())
    }

    /// Rows of several partitions in binlog order, in one transaction.
    pub(super) async fn apply_serially(
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
    pub(super) async fn write_merged(
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
            self.write_upserts(transaction, table, images, OnDuplicate::Replace)
                .await?;
        }
        Ok(())
    }

    /// Upserts whole rows of `table` (looked up, see `table_info`) in multi-row statements
    /// with their values written as literals, each run as soon as it is full (only one is
    /// held); a row longer than half a text statement is bound to a prepared one instead.
    pub(super) async fn write_upserts(
        &self,
        transaction: &mut Transaction<'_>,
        table: &TargetTable,
        images: &[&[Bound]],
        on: OnDuplicate,
    ) -> Result<()> {
        let columns = self
            .tables
            .get(&table_key(table))
            .map(|info| info.columns.clone())
            .expect("looked up");
        let mut packer = Packer::upserts(table, &columns, on);
        for image in images {
            let tuple = literal_tuple(columns.iter().map(|index| &image[*index]));
            if tuple.len() > TEXT_STATEMENT_BYTES / 2 {
                let (sql, params) = upsert(table, &columns, std::slice::from_ref(image), on);
                self.run(transaction, table, &sql, params).await?;
            } else if let Some(sql) = packer.push(&tuple) {
                self.run_text(transaction, table, sql).await?;
            }
        }
        if let Some(sql) = packer.finish() {
            self.run_text(transaction, table, sql).await?;
        }
        Ok(())
    }

    /// Row by row in binlog order: keyed tables by key, others by matching whole rows.
    pub(super) async fn write_in_order<'r>(
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
    pub(super) async fn write_row(
        &self,
        transaction: &mut Transaction<'_>,
        row: &TargetRow,
    ) -> Result<()> {
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
                    let (sql, params) = upsert(
                        table,
                        &columns,
                        std::slice::from_ref(after),
                        OnDuplicate::Replace,
                    );
                    self.run(transaction, table, &sql, params).await?;
                }
            } else {
                for op in merge::key_ops(row) {
                    let (sql, params) = match op {
                        KeyOp::Delete(key) => delete_keys(table, &[key]),
                        KeyOp::Upsert(image) => {
                            upsert(table, &columns, &[image], OnDuplicate::Replace)
                        }
                    };
                    self.run(transaction, table, &sql, params).await?;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn run(
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
    pub(super) async fn run_text(
        &self,
        transaction: &mut Transaction<'_>,
        table: &TargetTable,
        sql: String,
    ) -> Result<()> {
        let result = transaction.query_drop(sql).await;
        result.map_err(|error| self.applying(table, error))
    }

    pub(super) fn applying(&self, table: &TargetTable, error: mysql_async::Error) -> Error {
        Error::database(
            format!(
                "pipeline {}: applying to {}.{} failed",
                self.options.pipeline, table.schema, table.table
            ),
            error,
        )
    }

    /// Moves the applied rows of `partitions` to `end`, guarded by the fencing token.
    pub(super) async fn move_applied(
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
