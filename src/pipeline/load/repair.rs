//! Two-way channels: making the keys of conflicts equal on both sides.
//!
//! The pipeline into the primary (the *arbiter*, see `conflict`) keeps every key it decided a
//! conflict on as a [`Suspect`], in `ottr_sys.repair` on the primary, in the transaction that
//! decided it (a crash or restart loses none), and repairs it so that a write onto the other
//! side never undoes a change there that the primary has not seen yet. A suspect is let go
//! only when both sides hold the same row with nothing in flight between them:
//!
//! 1. its row on the source (the other side) is read, then the source's binlog end;
//! 2. once this pipeline has applied the source's binlog up to that end, the primary's row is
//!    read: where it differs, the source's row is replaced by it, only if the source still
//!    holds the row read (compare and set, marked as this pipeline's write so that it never
//!    comes back), and the key starts again at 1. Where it is equal, the primary's binlog end
//!    is read;
//! 3. once the pipeline out of the primary has applied up to that end (a change the primary
//!    made earlier can still reach the source and change it), both rows are read again:
//!    still equal, the key is repaired; else it starts again at 1.
//!
//! A source change made meanwhile meets the primary's row when it arrives there: applied, or
//! a conflict decided again. A write onto the source never deletes another row in its way on
//! a unique key: that row's key becomes a suspect too, and the write waits for the next round.
//! When the primary changes, the new arbiter takes the old one's suspects over (they are
//! kept on its source) and repairs them from its side.
//!
//! A key that fails [`REPAIR_TRIES`] times in a row (errors, or writes that do not make the
//! rows equal) is given up, and the pipeline logs an event naming it.

use super::statements::{colliding_keys, delete_text, insert_text, row_by_key, update_text};
use super::tables::table_key;
use super::{LOCK_WAIT_TIMEOUT, Loader};
use crate::error::{Error, Result, is_transient_server_error};
use crate::model::{BinlogFilePos, PipelineKey};
use crate::pipeline::select::binlog_end;
use crate::pipeline::transform::bind::{Bound, from_param};
use crate::pipeline::transform::{SourceNames, TargetTable};
use crate::sys::applied::{MARK, WRITE_BACK_PARTITION};
use crate::sys::repair::{FORGET_SUSPECT, KEEP_SUSPECT, READ_SUSPECTS};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, Transaction, TxOpts};
pub use suspect::Suspect;
use suspect::encoding;

/// Failed rounds in a row (errors, or writes that did not make the rows equal) before a key
/// is given up.
pub const REPAIR_TRIES: u32 = 50;
/// ER_DUP_ENTRY.
const DUPLICATE_KEY: u16 = 1062;
/// ER_NO_SUCH_TABLE.
const NO_SUCH_TABLE: u16 = 1146;

/// A suspect key being repaired.
#[derive(Debug)]
pub struct Repair {
    suspect: Suspect,
    step: RepairStep,
    /// Failed rounds in a row.
    tries: u32,
    last_error: Option<String>,
}

impl Repair {
    fn new(suspect: Suspect) -> Repair {
        Repair {
            suspect,
            step: RepairStep::Unseen,
            tries: 0,
            last_error: None,
        }
    }

    /// A failed round: the key starts again.
    fn failed(&mut self, why: String) {
        self.tries += 1;
        self.last_error = Some(why);
        self.step = RepairStep::Unseen;
    }
}

/// Where a repair is (see the module's documentation).
#[derive(Debug)]
enum RepairStep {
    /// To read on the source.
    Unseen,
    /// The source's row (None: no row), read before the source's binlog end.
    Seen {
        row: Option<Vec<Bound>>,
        source_end: BinlogFilePos,
    },
    /// Both sides held `row`, read before the primary's binlog end.
    Settling {
        row: Option<Vec<Bound>>,
        primary_end: BinlogFilePos,
    },
}

/// How far the two pipelines of a two-way channel have applied, for [`Loader::repair`].
#[derive(Debug, Clone, Default)]
pub struct RepairProgress {
    /// This pipeline, in the source's binlog.
    pub applied: Option<BinlogFilePos>,
    /// The channel's other pipeline (out of the primary), in the primary's binlog.
    pub reverse_applied: Option<BinlogFilePos>,
}

/// How a compare-and-set write onto the source went.
enum Written {
    /// Written, or the source no longer held the row read.
    Done,
    /// Rows of other keys are in the way on a unique key: they become suspects.
    InTheWay(Vec<Vec<Bound>>),
    /// Waited too long for a lock: again next round.
    Busy,
}

/// The row of `key` in the table `names` (the target table or its source), as values.
pub(super) async fn read_row(
    conn: &mut impl Queryable,
    table: &TargetTable,
    names: &SourceNames,
    key: &[Bound],
) -> std::result::Result<Option<Vec<Bound>>, mysql_async::Error> {
    let params: Vec<mysql_async::Value> = key.iter().map(Bound::param).collect();
    let row: Option<mysql_async::Row> = conn.exec_first(row_by_key(table, names), params).await?;
    Ok(row.map(|row| row.unwrap().into_iter().map(from_param).collect()))
}

/// The target table's own names, to read its rows.
pub(super) fn own_names(table: &TargetTable) -> SourceNames {
    SourceNames {
        schema: table.schema.clone(),
        table: table.table.clone(),
        columns: table.columns.clone(),
    }
}

/// The source table of `table` described as a table to write to.
fn source_side(table: &TargetTable, source: &SourceNames) -> TargetTable {
    TargetTable {
        schema: source.schema.clone(),
        table: source.table.clone(),
        columns: source.columns.clone(),
        key: table.key.clone(),
        conflict: None,
        source: None,
    }
}

/// Whether `error` concerns one key (its table, its values) rather than the connection or
/// the whole transaction: the key fails, the others go on.
fn concerns_the_key(error: &Error) -> bool {
    matches!(
        error,
        Error::Database {
            source: mysql_async::Error::Server(_),
            ..
        }
    ) && !matches!(error, Error::Database { source, .. } if is_transient_server_error(source))
}

impl Loader {
    /// Keeps `suspects` in `ottr_sys.repair`, in the transaction that decided them.
    pub(super) async fn keep_suspects(
        &self,
        transaction: &mut Transaction<'_>,
        suspects: &[Suspect],
    ) -> Result<()> {
        for suspect in suspects {
            let json = serde_json::to_string(suspect).map_err(encoding)?;
            transaction
                .exec_drop(
                    KEEP_SUSPECT,
                    (&self.options.pipeline_key, suspect.identity()?, &json),
                )
                .await
                .map_err(self.fail("keep a conflict's key in ottr_sys.repair"))?;
        }
        Ok(())
    }

    /// Takes up the suspects an earlier run left in `ottr_sys.repair`, and those the
    /// channel's other pipeline left on this pipeline's source when it decided conflicts
    /// (before the primary changed): they move here, seen from this side. A pipeline that
    /// does not decide conflicts leaves its own for the other to take.
    pub(super) async fn load_suspects(&self) -> Result<()> {
        if !self.options.arbiter {
            return Ok(());
        }
        let mut suspects = Vec::new();
        let mut conn = self.conn().await?;
        let kept: Vec<String> = conn
            .exec(READ_SUSPECTS, (&self.options.pipeline_key,))
            .await
            .map_err(self.fail("read ottr_sys.repair"))?;
        let mut own = 0;
        for json in kept {
            match serde_json::from_str::<Suspect>(&json) {
                Ok(suspect) => {
                    own += 1;
                    suspects.push(suspect);
                }
                Err(error) => {
                    tracing::warn!(pipeline = %self.options.pipeline, %error, row = %json,
                        "an ottr_sys.repair row this ottr cannot read: left alone");
                }
            }
        }
        if own > 0 {
            tracing::info!(pipeline = %self.options.pipeline, keys = own,
                "conflicts' keys left to repair by an earlier run taken up");
        }
        if let (Some(pool), Some(reverse_key)) = (&self.source, &self.options.reverse_key) {
            let adopted = self.adopt_suspects(pool, reverse_key).await?;
            if !adopted.is_empty() {
                tracing::info!(pipeline = %self.options.pipeline, keys = adopted.len(),
                    "conflicts' keys left to repair by the other direction (the primary changed) taken over");
            }
            suspects.extend(adopted);
        }
        self.suspect(suspects);
        Ok(())
    }

    /// Moves the other direction's suspects from the source's `ottr_sys.repair` into the
    /// target's, inverted: kept here first, then forgotten there (a crash in between leaves
    /// them in both places, and a key repaired twice is harmless).
    async fn adopt_suspects(&self, pool: &Pool, reverse_key: &PipelineKey) -> Result<Vec<Suspect>> {
        let fail = self.source_fail("take over the other direction's conflicts");
        let mut source = self.source_conn(pool).await?;
        let rows: Vec<String> = match source.exec(READ_SUSPECTS, (reverse_key,)).await {
            Ok(rows) => rows,
            // no ottr_sys.repair there yet
            Err(mysql_async::Error::Server(error)) if error.code == NO_SUCH_TABLE => Vec::new(),
            Err(error) => return Err(fail(error)),
        };
        let adopted: Vec<(String, Suspect)> = rows
            .into_iter()
            .filter_map(|json| {
                let theirs = serde_json::from_str::<Suspect>(&json).ok()?;
                Some((theirs.identity().ok()?, theirs.inverted()?))
            })
            .collect();
        if adopted.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut transaction = self.serial_transaction(&mut conn).await?;
        let ours: Vec<Suspect> = adopted.iter().map(|(_, ours)| ours.clone()).collect();
        self.keep_suspects(&mut transaction, &ours).await?;
        transaction.commit().await.map_err(self.fail("commit"))?;
        let mut transaction = self.source_transaction(&mut source, &fail).await?;
        for (identity, _) in &adopted {
            transaction
                .exec_drop(FORGET_SUSPECT, (reverse_key, identity))
                .await
                .map_err(&fail)?;
        }
        transaction.commit().await.map_err(&fail)?;
        Ok(ours)
    }

    /// Repairs `suspects` (once each); a key already kept starts again at step 1.
    pub(super) fn suspect(&self, suspects: Vec<Suspect>) {
        let mut repairs = self.repairs.lock().expect("not poisoned");
        for suspect in suspects {
            match repairs
                .iter_mut()
                .find(|repair| repair.suspect.is(&suspect))
            {
                Some(repair) => {
                    repair.step = RepairStep::Unseen;
                    repair.tries = 0;
                }
                None => repairs.push(Repair::new(suspect)),
            }
        }
    }

    /// The keys being repaired.
    pub fn repairs_pending(&self) -> usize {
        self.repairs.lock().expect("not poisoned").len()
    }

    /// Whether a key waits for the pipeline out of the primary (step 3).
    pub fn repairs_settling(&self) -> bool {
        self.repairs
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|repair| matches!(repair.step, RepairStep::Settling { .. }))
    }

    /// One round of repairs, after a batch (see the module's documentation). Returns what it
    /// gave up on, for the event log. Keys stay kept when it fails.
    pub async fn repair(&mut self, progress: &RepairProgress) -> Result<Vec<String>> {
        let Some(pool) = self.source.clone() else {
            return Ok(Vec::new());
        };
        let mut repairs = std::mem::take(&mut *self.repairs.lock().expect("not poisoned"));
        if repairs.is_empty() {
            return Ok(Vec::new());
        }
        // What a write needs to know of the table (generated columns, unique keys).
        for repair in &mut repairs {
            if let Err(error) = self.table_info(&repair.suspect.table).await {
                repair.failed(crate::error::chain(&error));
            }
        }
        let result = self.repair_round(&pool, progress, &mut repairs).await;
        let mut given_up = Vec::new();
        repairs.retain(|repair| {
            let keep = repair.tries < REPAIR_TRIES;
            if !keep {
                given_up.push((repair.suspect.clone(), repair.last_error.clone()));
            }
            keep
        });
        let mut messages = Vec::new();
        if !given_up.is_empty() {
            for (suspect, why) in &given_up {
                messages.push(format!(
                    "{}: the two sides may still differ; repair given up after {REPAIR_TRIES} rounds in a row ({}); the key is repaired again at its next conflict",
                    suspect.describe(),
                    why.as_deref().unwrap_or("no reason recorded")
                ));
            }
            let suspects: Vec<&Suspect> = given_up.iter().map(|(suspect, _)| suspect).collect();
            self.forget(&suspects).await?;
        }
        let newer = std::mem::replace(&mut *self.repairs.lock().expect("not poisoned"), repairs);
        self.suspect(newer.into_iter().map(|repair| repair.suspect).collect());
        result.map(|()| messages)
    }

    async fn repair_round(
        &self,
        pool: &Pool,
        progress: &RepairProgress,
        repairs: &mut Vec<Repair>,
    ) -> Result<()> {
        let passed = |end: &BinlogFilePos, applied: &Option<BinlogFilePos>| {
            applied.as_ref().is_some_and(|applied| end <= applied)
        };
        // 3: settled on both sides?
        let settling: Vec<usize> = (0..repairs.len())
            .filter(|at| match &repairs[*at].step {
                RepairStep::Settling { primary_end, .. } => {
                    passed(primary_end, &progress.reverse_applied)
                }
                _ => false,
            })
            .collect();
        let mut repaired = Vec::new();
        if !settling.is_empty() {
            let mut target = self.conn().await?;
            let mut source = self.source_conn(pool).await?;
            for at in settling {
                let repair = &mut repairs[at];
                let rows = async {
                    let primary = self.primary_row(&mut target, &repair.suspect).await?;
                    let other = self.source_row(&mut source, &repair.suspect).await?;
                    Ok::<_, Error>((primary, other))
                }
                .await;
                let RepairStep::Settling { row, .. } = &repair.step else {
                    unreachable!("filtered")
                };
                match rows {
                    Ok((primary, other)) if primary == *row && other == *row => repaired.push(at),
                    Ok(_) => repair.step = RepairStep::Unseen,
                    Err(error) if concerns_the_key(&error) => {
                        repair.failed(crate::error::chain(&error))
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        // 2: compared with the primary once this pipeline has applied past the source's read.
        let seen: Vec<usize> = (0..repairs.len())
            .filter(|at| match &repairs[*at].step {
                RepairStep::Seen { source_end, .. } => passed(source_end, &progress.applied),
                _ => false,
            })
            .collect();
        if !seen.is_empty() {
            let mut target = self.conn().await?;
            let mut writes = Vec::new();
            let mut equal = Vec::new();
            for at in seen {
                let repair = &mut repairs[at];
                match self.primary_row(&mut target, &repair.suspect).await {
                    Ok(primary) => {
                        let RepairStep::Seen { row, .. } = &repair.step else {
                            unreachable!("filtered")
                        };
                        if primary == *row {
                            equal.push(at);
                        } else {
                            writes.push((at, primary));
                        }
                    }
                    Err(error) if concerns_the_key(&error) => {
                        repair.failed(crate::error::chain(&error))
                    }
                    Err(error) => return Err(error),
                }
            }
            if !writes.is_empty() {
                let in_the_way = self.write_source_rows(pool, repairs, &writes).await?;
                let more: Vec<Suspect> = in_the_way
                    .into_iter()
                    .map(|(at, key)| Suspect {
                        table: repairs[at].suspect.table.clone(),
                        key,
                    })
                    .collect();
                for suspect in more {
                    if !repairs.iter().any(|repair| repair.suspect.is(&suspect)) {
                        repairs.push(Repair::new(suspect));
                    }
                }
            }
            if !equal.is_empty() {
                // Read after the rows: every change that made them is before this end.
                let primary_end = binlog_end(&mut target, self.target_kind).await?;
                for at in equal {
                    let repair = &mut repairs[at];
                    repair.tries = 0;
                    let RepairStep::Seen { row, .. } = &mut repair.step else {
                        unreachable!("filtered")
                    };
                    repair.step = RepairStep::Settling {
                        row: row.take(),
                        primary_end: primary_end.clone(),
                    };
                }
            }
        }
        if !repaired.is_empty() {
            let done: Vec<&Suspect> = repaired.iter().map(|at| &repairs[*at].suspect).collect();
            self.forget(&done).await?;
            let mut at = 0;
            repairs.retain(|_| {
                at += 1;
                !repaired.contains(&(at - 1))
            });
        }
        // 1: read on the source.
        let unseen: Vec<usize> = (0..repairs.len())
            .filter(|at| matches!(repairs[*at].step, RepairStep::Unseen))
            .collect();
        if unseen.is_empty() {
            return Ok(());
        }
        let mut source = self.source_conn(pool).await?;
        let mut rows = Vec::with_capacity(unseen.len());
        for at in unseen {
            match self.source_row(&mut source, &repairs[at].suspect).await {
                Ok(row) => rows.push((at, row)),
                Err(error) if concerns_the_key(&error) => {
                    repairs[at].failed(crate::error::chain(&error))
                }
                Err(error) => return Err(error),
            }
        }
        let kind = self
            .options
            .source
            .as_ref()
            .map_or(self.target_kind, |source| source.kind);
        let source_end = binlog_end(&mut source, kind).await?;
        for (at, row) in rows {
            repairs[at].step = RepairStep::Seen {
                row,
                source_end: source_end.clone(),
            };
        }
        Ok(())
    }

    fn source_fail(&self, what: &str) -> impl Fn(mysql_async::Error) -> Error {
        let context = format!(
            "pipeline {}: cannot {what} on the source",
            self.options.pipeline
        );
        move |error| Error::database(context.clone(), error)
    }

    /// A transaction on the source marked as this pipeline's (its own way back drops it), under
    /// the fencing token: Err([`Error::Fenced`]) when a newer holder has the pipeline.
    async fn source_transaction<'c>(
        &self,
        conn: &'c mut Conn,
        fail: &impl Fn(mysql_async::Error) -> Error,
    ) -> Result<Transaction<'c>> {
        let mut transaction = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(fail)?;
        transaction
            .exec_drop(
                MARK,
                (
                    &self.options.pipeline_key,
                    WRITE_BACK_PARTITION,
                    self.options.token.0,
                ),
            )
            .await
            .map_err(fail)?;
        if transaction.affected_rows() == 0 {
            return Err(Error::Fenced {
                pipeline: self.options.pipeline,
                token: self.options.token,
            });
        }
        Ok(transaction)
    }

    async fn source_conn(&self, pool: &Pool) -> Result<Conn> {
        pool.get_conn().await.map_err(self.source_fail("connect"))
    }

    /// The primary's (the target's) row of a suspect key.
    async fn primary_row(&self, conn: &mut Conn, suspect: &Suspect) -> Result<Option<Vec<Bound>>> {
        read_row(
            conn,
            &suspect.table,
            &own_names(&suspect.table),
            &suspect.key,
        )
        .await
        .map_err(self.fail(&format!("read the row of {}", suspect.describe())))
    }

    /// The source's row of a suspect key.
    async fn source_row(&self, conn: &mut Conn, suspect: &Suspect) -> Result<Option<Vec<Bound>>> {
        let Some(names) = &suspect.table.source else {
            return Ok(None);
        };
        read_row(conn, &suspect.table, names, &suspect.key)
            .await
            .map_err(self.source_fail(&format!("read the row of {}", suspect.describe())))
    }

    /// Forgets repaired (or given up) keys in `ottr_sys.repair`, in a transaction marked as
    /// this pipeline's: a node that lost the pipeline forgets nothing.
    async fn forget(&self, suspects: &[&Suspect]) -> Result<()> {
        let mut conn = self.conn().await?;
        let mut transaction = self.serial_transaction(&mut conn).await?;
        for suspect in suspects {
            transaction
                .exec_drop(
                    FORGET_SUSPECT,
                    (&self.options.pipeline_key, suspect.identity()?),
                )
                .await
                .map_err(self.fail("forget a repaired key in ottr_sys.repair"))?;
        }
        transaction.commit().await.map_err(self.fail("commit"))
    }

    /// Writes the primary's row over the source's where the source still holds the row read
    /// (`writes`: the repair's index and the primary's row; None: no row), in one transaction
    /// marked as this pipeline's, each key behind a savepoint. Every written key starts again
    /// at step 1. Returns the keys of rows found in the way on a unique key.
    async fn write_source_rows(
        &self,
        pool: &Pool,
        repairs: &mut [Repair],
        writes: &[(usize, Option<Vec<Bound>>)],
    ) -> Result<Vec<(usize, Vec<Bound>)>> {
        let fail = self.source_fail("write the primary's row of a conflict");
        let mut conn = self.source_conn(pool).await?;
        let mut transaction = self.source_transaction(&mut conn, &fail).await?;
        let mut in_the_way = Vec::new();
        let mut outcomes = Vec::with_capacity(writes.len());
        for (at, primary) in writes {
            let repair = &repairs[*at];
            let RepairStep::Seen { row, .. } = &repair.step else {
                unreachable!("a write follows step 1")
            };
            transaction
                .query_drop("SAVEPOINT ottr_repair")
                .await
                .map_err(&fail)?;
            let outcome = self
                .write_source_row(
                    &mut transaction,
                    &repair.suspect,
                    row.as_deref(),
                    primary.as_deref(),
                )
                .await;
            if !matches!(outcome, Ok(Written::Done)) {
                transaction
                    .query_drop("ROLLBACK TO SAVEPOINT ottr_repair")
                    .await
                    .map_err(&fail)?;
            }
            match outcome {
                Ok(Written::InTheWay(keys)) => {
                    in_the_way.extend(keys.into_iter().map(|key| (*at, key)))
                }
                Err(error)
                    if !is_transient_server_error(&error)
                        && matches!(error, mysql_async::Error::Server(_)) =>
                {
                    outcomes.push((*at, Some(format!("{}: {error}", repair.suspect.describe()))));
                    continue;
                }
                Err(error) => return Err(fail(error)),
                Ok(Written::Done | Written::Busy) => {}
            }
            outcomes.push((*at, None));
        }
        transaction.commit().await.map_err(&fail)?;
        for (at, error) in outcomes {
            // Written or not, the rows are read again; a key whose writes never make the rows
            // equal is given up in the end.
            match error {
                Some(error) => repairs[at].failed(error),
                None => repairs[at].failed("the rows differed after a write".into()),
            }
        }
        Ok(in_the_way)
    }

    /// One key's compare-and-set: the primary's row where the source holds `seen`.
    async fn write_source_row(
        &self,
        transaction: &mut Transaction<'_>,
        suspect: &Suspect,
        seen: Option<&[Bound]>,
        primary: Option<&[Bound]>,
    ) -> std::result::Result<Written, mysql_async::Error> {
        let Some(names) = &suspect.table.source else {
            return Ok(Written::Done);
        };
        let source = source_side(&suspect.table, names);
        let info = self.tables.get(&table_key(&suspect.table));
        // the columns the target writes: generated ones are never written
        let columns: Vec<usize> = info.map_or_else(
            || (0..source.columns.len()).collect(),
            |info| info.columns.to_vec(),
        );
        let key = &suspect.key;
        let write = match (seen, primary) {
            (None, None) => return Ok(Written::Done),
            (Some(seen), None) => delete_text(&source, &columns, key, Some(seen)),
            (Some(seen), Some(primary)) => update_text(&source, &columns, key, Some(seen), primary),
            (None, Some(primary)) => insert_text(&source, &columns, primary),
        };
        match transaction.query_drop(write).await {
            Ok(()) => Ok(Written::Done),
            Err(mysql_async::Error::Server(error)) if error.code == LOCK_WAIT_TIMEOUT => {
                Ok(Written::Busy)
            }
            Err(mysql_async::Error::Server(error)) if error.code == DUPLICATE_KEY => {
                let (Some(primary), Some(info)) = (primary, info) else {
                    // inserted on the source meanwhile: read again
                    return Ok(Written::Done);
                };
                let mut keys = Vec::new();
                for unique in info.unique_keys.iter() {
                    let rows: Vec<mysql_async::Row> = transaction
                        .exec(colliding_keys(&source, unique, key, primary), ())
                        .await?;
                    keys.extend(
                        rows.into_iter()
                            .map(|row| row.unwrap().into_iter().map(from_param).collect()),
                    );
                }
                Ok(Written::InTheWay(keys))
            }
            Err(error) => Err(error),
        }
    }
}

mod suspect;

#[cfg(test)]
mod tests;
