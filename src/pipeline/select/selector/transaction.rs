//! Inside a source transaction: statements logged between BEGIN and COMMIT (savepoints,
//! rollbacks to them, DDL of CREATE … SELECT), and rollbacks, which drop the rows built since
//! but keep those of tables whose engine is not transactional (the source kept them too).

use super::Selector;
use crate::error::{Error, Result};
use crate::model::{BinlogFilePos, ChangeAt, Statement, TableId};
use crate::pipeline::select::batch::{Batch, Change};
use crate::sql::classify::{InnerStatement, classify_inner};
use tracing::warn;

impl Selector {
    /// Handles a statement inside a BEGIN … COMMIT transaction.
    pub(super) fn inner_statement(
        &mut self,
        statement: Statement,
        start: &BinlogFilePos,
        time: u32,
    ) -> Result<Option<Batch>> {
        let building = self.building.len();
        let transaction = self.transaction.as_mut().expect("inside a transaction");
        let sql = statement.shown(200);
        match classify_inner(&statement.text) {
            InnerStatement::Savepoint(name) => {
                transaction
                    .savepoints
                    .retain(|(existing, _)| *existing != name);
                transaction.savepoints.push((name, Some(building)));
                Ok(None)
            }
            InnerStatement::RollbackTo(name) => {
                let Some(at) = transaction
                    .savepoints
                    .iter()
                    .position(|(existing, _)| *existing == name)
                else {
                    return Err(Error::Binlog(format!(
                        "`{sql}` at {} names no savepoint of its transaction",
                        start
                    )));
                };
                let index = transaction.savepoints[at].1;
                transaction.savepoints.truncate(at + 1);
                // Logged only when non-transactional rows were changed since the savepoint
                // (their engines were looked up before, see `handle`).
                self.roll_back_keeping_non_transactional(index, start, &sql)?;
                Ok(None)
            }
            InnerStatement::Nothing => Ok(None),
            InnerStatement::Ddl => {
                let at = ChangeAt {
                    transaction: transaction.start.clone(),
                    index: transaction.rows_seen,
                };
                Ok(self.add(Change::Ddl { statement, at }, time))
            }
            InnerStatement::Unknown => Err(Error::Binlog(format!(
                "statement `{}` at {} inside a transaction cannot be applied row by row: \
                 a session on the source writes with binlog_format=STATEMENT or MIXED; make it ROW",
                sql.chars().take(80).collect::<String>(),
                start
            ))),
        }
    }

    /// For a `ROLLBACK TO` a savepoint of the open transaction: the tables of the rows it
    /// rolls back whose engines are not known yet (None when there are none).
    pub(super) fn engines_to_know(&self, statement: &Statement) -> Option<Vec<TableId>> {
        let InnerStatement::RollbackTo(name) = classify_inner(&statement.text) else {
            return None;
        };
        let transaction = self.transaction.as_ref()?;
        let (_, index) = transaction
            .savepoints
            .iter()
            .find(|(existing, _)| *existing == name)?;
        let unknown: Vec<TableId> = self
            .rolled_back_tables((*index)?)
            .into_iter()
            .filter(|table| !self.transactional.contains_key(table))
            .collect();
        (!unknown.is_empty()).then_some(unknown)
    }

    /// The tables of the rows built from `first` on.
    pub(super) fn rolled_back_tables(&self, first: usize) -> Vec<TableId> {
        let mut tables: Vec<TableId> = self.building[first.min(self.building.len())..]
            .iter()
            .filter_map(|change| match change {
                Change::Row(row, _) => Some(row.table.id.clone()),
                Change::Ddl { .. } => None,
            })
            .collect();
        tables.sort();
        tables.dedup();
        tables
    }

    /// A ROLLBACK of `transaction`: its rows of non-transactional tables stay (the source
    /// kept them), the others are dropped; a note says what was kept.
    pub(super) fn roll_back_keeping_non_transactional(
        &mut self,
        first: Option<usize>,
        at: &BinlogFilePos,
        what: &str,
    ) -> Result<()> {
        let Some(first) = first else {
            return self.roll_back_to(None, at, what);
        };
        let first = first.min(self.building.len());
        let kept_tables: Vec<TableId> = self
            .rolled_back_tables(first)
            .into_iter()
            .filter(|table| self.transactional.get(table) == Some(&false))
            .collect();
        if kept_tables.is_empty() {
            return self.roll_back_to(Some(first), at, what);
        }
        let rolled_back: Vec<Change> = self.building.drain(first..).collect();
        let mut kept = 0;
        for change in rolled_back {
            match &change {
                Change::Row(row, _) if kept_tables.contains(&row.table.id) => {
                    kept += 1;
                    self.building.push(change);
                }
                _ => {
                    let size = change.size();
                    self.building_bytes -= size;
                    self.budget.release(size);
                }
            }
        }
        let names: Vec<String> = kept_tables.iter().map(ToString::to_string).collect();
        let note = format!(
            "`{what}` at {at}: {kept} rows of non-transactional tables ({}) persisted on the source and are applied; the other rows it rolled back are dropped",
            names.join(", ")
        );
        warn!(source = %self.source.name, "{note}");
        self.notes.push(note);
        if self.building.is_empty() {
            self.building_since = None;
        }
        Ok(())
    }

    /// Drops the changes built from `index` on (a rollback). Fails if some of them were
    /// already handed on (`index` is None), since they can no longer be taken back here.
    pub(super) fn roll_back_to(
        &mut self,
        index: Option<usize>,
        at: &BinlogFilePos,
        what: &str,
    ) -> Result<()> {
        let Some(index) = index else {
            return Err(Error::Binlog(format!(
                "`{what}` at {at} rolls back changes of a transaction split across batches, some already \
                 handed on: raise the pipeline's batch_rows/batch_bytes above the transaction's size and \
                 re-snapshot the tables it touched"
            )));
        };
        let dropped: usize = self
            .building
            .drain(index.min(self.building.len())..)
            .map(|change| change.size())
            .sum();
        self.building_bytes -= dropped;
        self.budget.release(dropped);
        if self.building.is_empty() {
            self.building_since = None;
        }
        Ok(())
    }

    /// A new transaction starts while one is still open: the open one was cut short (a
    /// binlog truncated by a crash), so its changes never committed and are dropped.
    pub(super) fn abandon_open_transaction(&mut self, at: &BinlogFilePos) -> Result<()> {
        match self.transaction.take() {
            Some(open) if !open.standalone || open.rows_seen > 0 => {
                warn!(source = %self.source.name, at = %at, started = %open.start, "a transaction without its commit: dropping it");
                self.roll_back_to(open.first_index, at, "a transaction without its commit")
            }
            _ => Ok(()),
        }
    }
}
