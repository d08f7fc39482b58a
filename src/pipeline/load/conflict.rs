//! Two-way channels: each change is applied only where the target row is the version the
//! change expects (its before-image), one change at a time in binlog order (see [`KeyStep`]
//! for why they are never merged); anything else is a conflict.
//!
//! One side decides every conflict: the primary. The pipeline *into* the primary arbitrates
//! by the table's [`ConflictRule`], records the conflict, and keeps the key as a *suspect*
//! until both sides are seen to hold the same row ([`Loader::repair`]). The pipeline *out of*
//! the primary only skips a change that meets a different row: the other side's conflicting
//! change is on its way to the primary, where it will be decided. Deciding on both sides,
//! each with its own view of a moving row, cannot converge under races.
//!
//! A suspect is repaired so that a write onto the other side never undoes a change there
//! that the primary has not seen yet, and is let go only when both sides hold the same row
//! with nothing in flight between them:
//!
//! 1. its row on the source is read, then the source's binlog end;
//! 2. once this pipeline has applied the source's binlog up to that end, the primary's row is
//!    read: where it differs, the source's row is replaced by it, only if the source still
//!    holds the row read (marked as this pipeline's write, so that it never comes back), and
//!    the key starts again at 1. Where it is equal, the primary's binlog end is read;
//! 3. once the pipeline out of the primary has applied up to that end (a change the primary
//!    made earlier can still reach the source and change it), both rows are read again:
//!    still equal, the key is repaired; else it starts again at 1.
//!
//! A source change made meanwhile meets the primary's row when it arrives there: applied, or a
//! conflict decided again.
//!
//! - `primary_wins`: the primary's version stays.
//! - `newer_wins`: the greater value of the rule's column wins (a tie goes to the primary);
//!   a delete wins against a concurrent update (a deleted row keeps no version to compare).
//!
//! A change whose last version is already on the target was applied before: no conflict. A
//! collision on a unique key other than the primary is a conflict of the same kind: the
//! winner's row stays, the rows it collides with go.
//!
//! The checks compare on the server (`<=>` with the very literals a write would carry), so a
//! value matches exactly when writing it would store what is there.

use super::bind::{Bound, from_param};
use super::merge::{KeyStep, key_steps};
use super::statements::{
    check_text, colliding_keys, colliding_text, delete_colliding_text, delete_text, image_text,
    insert_text, literal_tuple, row_by_key, update_text,
};
use super::{Loader, MARK, TableInfo, table_key};
use crate::config::{ConflictPolicy, ConflictRule};
use crate::error::{Error, Result};
use crate::model::BinlogFilePos;
use crate::pipeline::select::resolve_end;
use crate::pipeline::transform::{SourceNames, TargetRow, TargetTable};
use mysql_async::prelude::Queryable;
use mysql_async::{Transaction, TxOpts};
use std::sync::Arc;

const KEEP_SUSPECT: &str = "INSERT IGNORE INTO ottr_sys.repair (pipeline_key, suspect_hash, suspect) \
     VALUES (?, SHA2(?, 256), ?)";
const READ_SUSPECTS: &str = "SELECT suspect FROM ottr_sys.repair WHERE pipeline_key = ?";
const FORGET_SUSPECT: &str =
    "DELETE FROM ottr_sys.repair WHERE pipeline_key = ? AND suspect_hash = SHA2(?, 256)";
/// ER_DUP_ENTRY.
const DUPLICATE_KEY: u16 = 1062;
/// Attempts at writing the winners of conflicts back onto the source (deadlocks).
const WRITE_BACK_TRIES: u32 = 5;

/// One conflict, as `conflict_log` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    /// `schema.table` on the target.
    pub table: String,
    pub key: String,
    /// insert, update, delete or unique_key.
    pub kind: &'static str,
    /// The version the source sent (None: it deleted the row).
    pub source_row: Option<String>,
    /// The version found on the target (None: no row).
    pub target_row: Option<String>,
    /// Whether the source's version was applied (else the target's was kept).
    pub source_applied: bool,
    /// The rule that decided, and why.
    pub policy: String,
}

/// What the checked writes of one target transaction leave to do once it commits.
#[derive(Debug, Default)]
pub struct CheckedOutcome {
    pub conflicts: Vec<ConflictRecord>,
    /// Keys whose two sides may differ after a conflict.
    pub suspects: Vec<Suspect>,
}

/// A key whose two sides may differ after a conflict: the source gets the primary's row (see
/// [`Loader::repair`]). Kept in `ottr_sys.repair` on the target (JSON) from the transaction
/// that decided the conflict until it is repaired, so that a crash or restart loses none.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Suspect {
    pub table: Arc<TargetTable>,
    pub key: Vec<Bound>,
}

impl Suspect {
    fn is(&self, other: &Suspect) -> bool {
        table_key(&self.table) == table_key(&other.table) && self.key == other.key
    }
}

/// A suspect key being repaired.
#[derive(Debug)]
pub struct Repair {
    suspect: Suspect,
    step: RepairStep,
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

/// A repair's write onto the source: the repair's index, the source row read and the
/// primary's row (None: no row).
type SourceWrite = (usize, Option<Vec<Bound>>, Option<Vec<Bound>>);

/// How far the two pipelines of a two-way channel have applied, for [`Loader::repair`].
#[derive(Debug, Clone)]
pub struct RepairProgress {
    /// This pipeline, in the source's binlog.
    pub applied: Option<BinlogFilePos>,
    /// The pipeline out of the primary (this pipeline's target), in the primary's binlog.
    pub reverse_applied: Option<BinlogFilePos>,
}

/// How a conflict was decided.
struct Decision {
    apply: bool,
    why: String,
}

/// `rule`'s decision when the source's version meets a different target version;
/// `comparison` is how the source's version compares on the newer_wins column (1 newer).
fn decide(rule: &ConflictRule, comparison: i64) -> Decision {
    let primary = if rule.source_is_primary {
        "source is primary"
    } else {
        "target is primary"
    };
    match &rule.policy {
        ConflictPolicy::PrimaryWins => Decision {
            apply: rule.source_is_primary,
            why: format!("primary_wins ({primary})"),
        },
        ConflictPolicy::NewerWins { column } => match comparison {
            1 => Decision {
                apply: true,
                why: format!("newer_wins on {column} (source newer)"),
            },
            -1 => Decision {
                apply: false,
                why: format!("newer_wins on {column} (target newer)"),
            },
            _ => Decision {
                apply: rule.source_is_primary,
                why: format!("newer_wins on {column} (tie, {primary})"),
            },
        },
    }
}

/// A delete against an update: `primary_wins` as ever; under `newer_wins` the delete wins.
/// `source_deletes`: the source's change is the delete.
fn delete_against_update(rule: &ConflictRule, source_deletes: bool) -> Decision {
    match rule.policy {
        ConflictPolicy::PrimaryWins => decide(rule, 0),
        ConflictPolicy::NewerWins { .. } => Decision {
            apply: source_deletes,
            why: "newer_wins (a delete wins over a concurrent update)".into(),
        },
    }
}

/// Whether `error` is a duplicate-key error.
fn is_duplicate(error: &mysql_async::Error) -> bool {
    matches!(error, mysql_async::Error::Server(server) if server.code == DUPLICATE_KEY)
}

/// A table of a two-way channel, as the checks need it.
struct Checked<'a> {
    table: &'a Arc<TargetTable>,
    rule: &'a ConflictRule,
    info: &'a TableInfo,
}

impl Checked<'_> {
    fn columns(&self) -> &[usize] {
        self.info.columns.as_slice()
    }

    /// The conflict log row of a decision.
    fn record(
        &self,
        key: &[Bound],
        kind: &'static str,
        source_row: Option<String>,
        target_row: Option<String>,
        decision: Decision,
    ) -> ConflictRecord {
        ConflictRecord {
            table: format!("{}.{}", self.table.schema, self.table.table),
            key: literal_tuple(key.iter()),
            kind,
            source_row,
            target_row,
            source_applied: decision.apply,
            policy: decision.why,
        }
    }
}

/// The source table of a two-way table, as a write-back writes it.
struct SourceSide {
    table: TargetTable,
    /// The columns to write (the target's, without generated ones).
    columns: Vec<usize>,
    /// The unique keys besides the primary key.
    unique_keys: Arc<Vec<Vec<usize>>>,
}

/// The row of `key` in the table `names` (the target table or its source), as values.
async fn read_row(
    conn: &mut impl Queryable,
    table: &TargetTable,
    names: &SourceNames,
    key: &[Bound],
) -> std::result::Result<Option<Vec<Bound>>, mysql_async::Error> {
    let params: Vec<mysql_async::Value> = key.iter().map(Bound::param).collect();
    let row: Option<mysql_async::Row> = conn.exec_first(row_by_key(table, names), params).await?;
    Ok(row.map(|row| row.unwrap().into_iter().map(from_param).collect()))
}

fn suspect_json(suspect: &Suspect) -> Result<String> {
    serde_json::to_string(suspect)
        .map_err(|error| Error::Transform(format!("cannot encode a conflict's key: {error}")))
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

impl Loader {
    /// Applies `rows` (tables of a two-way channel) change by change, checked against the
    /// target.
    pub(super) async fn write_checked(
        &self,
        transaction: &mut Transaction<'_>,
        rows: &[&TargetRow],
        outcome: &mut CheckedOutcome,
    ) -> Result<()> {
        for change in key_steps(rows) {
            let table = change.table;
            let Some(rule) = &table.conflict else {
                return Err(Error::Transform(format!(
                    "{}.{} has no conflict rule in a two-way batch",
                    table.schema, table.table
                )));
            };
            if table.key.is_empty() {
                return Err(Error::Transform(format!(
                    "{}.{} has no primary key: a two-way channel cannot tell its rows apart; add one",
                    table.schema, table.table
                )));
            }
            let info = self.tables.get(&table_key(table)).expect("looked up");
            let checked = Checked { table, rule, info };
            self.write_step(transaction, &checked, &change, outcome)
                .await?;
        }
        // Kept with the decisions: a crash after the commit repairs them after the restart.
        for suspect in &outcome.suspects {
            let json = suspect_json(suspect)?;
            transaction
                .exec_drop(KEEP_SUSPECT, (&self.options.pipeline_key, &json, &json))
                .await
                .map_err(self.fail("keep a conflict's key in ottr_sys.repair"))?;
        }
        Ok(())
    }

    /// Takes up the suspect keys kept on the target by an earlier run.
    pub(super) async fn load_suspects(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let kept: Vec<String> = conn
            .exec(READ_SUSPECTS, (&self.options.pipeline_key,))
            .await
            .map_err(self.fail("read ottr_sys.repair"))?;
        let mut suspects = Vec::with_capacity(kept.len());
        for json in kept {
            match serde_json::from_str::<Suspect>(&json) {
                Ok(suspect) => suspects.push(suspect),
                Err(error) => {
                    tracing::warn!(pipeline = %self.options.pipeline, %error, "an ottr_sys.repair row this ottr cannot read: dropped");
                    conn.exec_drop(FORGET_SUSPECT, (&self.options.pipeline_key, &json))
                        .await
                        .map_err(self.fail("drop an ottr_sys.repair row"))?;
                }
            }
        }
        if !suspects.is_empty() {
            tracing::info!(pipeline = %self.options.pipeline, keys = suspects.len(), "conflicts' keys left to repair by an earlier run taken up");
        }
        self.suspect(suspects);
        Ok(())
    }

    /// One step: the conditional write, and the check when it did not apply.
    async fn write_step(
        &self,
        transaction: &mut Transaction<'_>,
        checked: &Checked<'_>,
        change: &KeyStep<'_>,
        outcome: &mut CheckedOutcome,
    ) -> Result<()> {
        let (table, columns) = (checked.table.as_ref(), checked.columns());
        let sql = match (change.expected, change.last) {
            (None, None) => return Ok(()),
            (None, Some(last)) => insert_text(table, columns, last),
            (Some(expected), Some(last)) => {
                update_text(table, columns, &change.key, Some(expected), last)
            }
            (Some(expected), None) => delete_text(table, columns, &change.key, Some(expected)),
        };
        match transaction.query_drop(sql).await {
            Ok(()) if transaction.affected_rows() > 0 => Ok(()),
            Ok(()) => self.resolve(transaction, checked, change, outcome).await,
            Err(error) if is_duplicate(&error) => {
                self.resolve(transaction, checked, change, outcome).await
            }
            Err(error) => Err(self.applying(table, error)),
        }
    }

    /// The target row is not the version the change expects: applied already, a conflict to
    /// leave to the primary, or a conflict to decide here (the target is the primary).
    async fn resolve(
        &self,
        transaction: &mut Transaction<'_>,
        checked: &Checked<'_>,
        change: &KeyStep<'_>,
        outcome: &mut CheckedOutcome,
    ) -> Result<()> {
        let (table, columns) = (checked.table.as_ref(), checked.columns());
        let fail = |error| self.applying(table, error);
        let check = check_text(table, columns, &change.key, change.last, checked.info.newer);
        let found: Option<(i64, i64, Option<String>)> =
            transaction.query_first(check).await.map_err(fail)?;
        match (&found, change.last) {
            // Applied already, or deleted already.
            (Some((1, _, _)), Some(_)) | (None, None) => return Ok(()),
            // The other side's conflicting change is on its way to the primary.
            _ if checked.rule.source_is_primary => {
                tracing::debug!(pipeline = %self.options.pipeline, key = %literal_tuple(change.key.iter()), target = ?found, last = ?change.last.map(|l| image_text(table, columns, l)), "deferred to the primary");
                return Ok(());
            }
            _ => {}
        }
        let kind = match (change.expected, change.last) {
            (None, _) => "insert",
            (_, None) => "delete",
            _ => "update",
        };
        let source_row = change.last.map(|last| image_text(table, columns, last));
        let (decision, exists, target_row) = match (found, change.last) {
            // An insert that collided, though no row has its key: a unique key.
            (None, Some(last)) if change.expected.is_none() => {
                return self
                    .resolve_unique(transaction, checked, change, last, outcome)
                    .await;
            }
            (None, _) => (delete_against_update(checked.rule, false), false, None),
            (Some((_, _, row)), None) => (delete_against_update(checked.rule, true), true, row),
            (Some((_, comparison, row)), Some(_)) => (decide(checked.rule, comparison), true, row),
        };
        let apply = decision.apply;
        tracing::debug!(pipeline = %self.options.pipeline, key = %literal_tuple(change.key.iter()), kind, apply, why = %decision.why, source = ?source_row, target = ?target_row, "conflict");
        outcome
            .conflicts
            .push(checked.record(&change.key, kind, source_row, target_row, decision));
        // Whichever side won, the source ends with what the primary holds after this.
        outcome.suspects.push(Suspect {
            table: checked.table.clone(),
            key: change.key.clone(),
        });
        if !apply {
            return Ok(());
        }
        let Some(last) = change.last else {
            let sql = delete_text(table, columns, &change.key, None);
            return transaction.query_drop(sql).await.map_err(fail);
        };
        match self.force(transaction, checked, change, last, exists).await {
            Err(error) if is_duplicate(&error) => {
                self.resolve_unique(transaction, checked, change, last, outcome)
                    .await
            }
            result => result.map_err(fail),
        }
    }

    /// Writes `last` whatever the target holds under its key.
    async fn force(
        &self,
        transaction: &mut Transaction<'_>,
        checked: &Checked<'_>,
        change: &KeyStep<'_>,
        last: &[Bound],
        exists: bool,
    ) -> std::result::Result<(), mysql_async::Error> {
        let (table, columns) = (checked.table.as_ref(), checked.columns());
        let sql = if exists {
            update_text(table, columns, &change.key, None, last)
        } else {
            insert_text(table, columns, last)
        };
        transaction.query_drop(sql).await
    }

    /// `last` collides with other rows on a unique key that is not the primary key: the
    /// winner's row stays, the rows it collides with go.
    async fn resolve_unique(
        &self,
        transaction: &mut Transaction<'_>,
        checked: &Checked<'_>,
        change: &KeyStep<'_>,
        last: &[Bound],
        outcome: &mut CheckedOutcome,
    ) -> Result<()> {
        let (table, columns) = (checked.table.as_ref(), checked.columns());
        let fail = |error| self.applying(table, error);
        let mut colliding: Vec<(&Vec<usize>, i64, String)> = Vec::new();
        let mut colliding_rows: Vec<Vec<Bound>> = Vec::new();
        for unique in checked.info.unique_keys.iter() {
            let sql = colliding_text(
                table,
                columns,
                unique,
                &change.key,
                last,
                checked.info.newer,
            );
            let rows: Vec<(i64, Option<String>)> = transaction.query(sql).await.map_err(fail)?;
            colliding.extend(
                rows.into_iter()
                    .map(|(comparison, row)| (unique, comparison, row.unwrap_or_default())),
            );
            let keys: Vec<mysql_async::Row> = transaction
                .exec(colliding_keys(table, unique, &change.key, last), ())
                .await
                .map_err(fail)?;
            colliding_rows.extend(
                keys.into_iter()
                    .map(|row| row.unwrap().into_iter().map(from_param).collect()),
            );
        }
        if colliding.is_empty() {
            return Err(Error::Transform(format!(
                "{}.{}: writing key {} failed on a duplicate key, yet no row collides with it",
                table.schema,
                table.table,
                literal_tuple(change.key.iter())
            )));
        }
        let comparison = if colliding.iter().all(|(_, comparison, _)| *comparison > 0) {
            1
        } else if colliding.iter().any(|(_, comparison, _)| *comparison < 0) {
            -1
        } else {
            0
        };
        let decision = decide(checked.rule, comparison);
        let apply = decision.apply;
        let rows: Vec<&str> = colliding.iter().map(|(_, _, row)| row.as_str()).collect();
        outcome.conflicts.push(checked.record(
            &change.key,
            "unique_key",
            Some(image_text(table, columns, last)),
            Some(rows.join(" | ")),
            decision,
        ));
        // The source ends with the primary's rows: under this key, and the colliding ones.
        for key in std::iter::once(change.key.clone()).chain(colliding_rows) {
            outcome.suspects.push(Suspect {
                table: checked.table.clone(),
                key,
            });
        }
        if !apply {
            return Ok(());
        }
        for (unique, _, _) in &colliding {
            let sql = delete_colliding_text(table, unique, &change.key, last);
            transaction.query_drop(sql).await.map_err(fail)?;
        }
        let found: Option<(i64, i64, Option<String>)> = transaction
            .query_first(check_text(table, columns, &change.key, None, None))
            .await
            .map_err(fail)?;
        let exists = found.is_some();
        self.force(transaction, checked, change, last, exists)
            .await
            .map_err(fail)
    }

    /// Keeps `suspects` for [`Loader::repair`] (once each).
    pub(super) fn suspect(&self, suspects: Vec<Suspect>) {
        let mut repairs = self.repairs.lock().expect("not poisoned");
        for suspect in suspects {
            match repairs
                .iter_mut()
                .find(|repair| repair.suspect.is(&suspect))
            {
                // Seen again from the start: the row changed since.
                Some(repair) => repair.step = RepairStep::Unseen,
                None => repairs.push(Repair {
                    suspect,
                    step: RepairStep::Unseen,
                }),
            }
        }
    }

    /// The keys still being repaired.
    pub fn repairs_pending(&self) -> usize {
        self.repairs.lock().expect("not poisoned").len()
    }

    /// One step of repairing the suspect keys, after a batch (see the module's
    /// documentation). Keys stay kept when this fails.
    pub async fn repair(&self, progress: &RepairProgress) -> Result<()> {
        let Some(pool) = &self.source else {
            return Ok(());
        };
        let mut repairs = std::mem::take(&mut *self.repairs.lock().expect("not poisoned"));
        if repairs.is_empty() {
            return Ok(());
        }
        let result = self.repair_step(pool, progress, &mut repairs).await;
        let mut kept = self.repairs.lock().expect("not poisoned");
        let newer = std::mem::replace(&mut *kept, repairs);
        drop(kept);
        self.suspect(newer.into_iter().map(|repair| repair.suspect).collect());
        result
    }

    async fn repair_step(
        &self,
        pool: &mysql_async::Pool,
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
            let mut source = pool.get_conn().await.map_err(self.source_fail())?;
            for at in settling {
                let repair = &mut repairs[at];
                let RepairStep::Settling { row, .. } = &repair.step else {
                    unreachable!("filtered")
                };
                let primary = self
                    .row_in(&mut target, &repair.suspect.table, &repair.suspect.key)
                    .await?;
                let other = self.source_row(&mut source, &repair.suspect).await?;
                if primary == *row && other == *row {
                    repaired.push(at);
                } else {
                    repair.step = RepairStep::Unseen;
                }
            }
        }
        // 2: compare with the primary once this pipeline has applied past the source's read.
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
                let repair = &repairs[at];
                let RepairStep::Seen { row, .. } = &repair.step else {
                    unreachable!("filtered")
                };
                let primary = self
                    .row_in(&mut target, &repair.suspect.table, &repair.suspect.key)
                    .await?;
                if primary == *row {
                    equal.push(at);
                } else {
                    writes.push((at, row.clone(), primary));
                }
            }
            if !writes.is_empty() {
                self.write_source_rows(pool, repairs, &writes).await?;
                for (at, _, _) in &writes {
                    repairs[*at].step = RepairStep::Unseen;
                }
            }
            if !equal.is_empty() {
                // Read after the rows: every change that made them is before this end.
                let primary_end = self.binlog_end(&mut target, self.target_kind).await?;
                for at in equal {
                    let repair = &mut repairs[at];
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
            let mut target = self.conn().await?;
            for at in &repaired {
                let json = suspect_json(&repairs[*at].suspect)?;
                target
                    .exec_drop(FORGET_SUSPECT, (&self.options.pipeline_key, &json))
                    .await
                    .map_err(self.fail("forget a repaired key in ottr_sys.repair"))?;
            }
        }
        let mut at = 0;
        repairs.retain(|_| {
            at += 1;
            !repaired.contains(&(at - 1))
        });
        // 1: read the source.
        let unseen: Vec<usize> = (0..repairs.len())
            .filter(|at| matches!(repairs[*at].step, RepairStep::Unseen))
            .collect();
        if unseen.is_empty() {
            return Ok(());
        }
        let mut source = pool.get_conn().await.map_err(self.source_fail())?;
        let mut rows = Vec::with_capacity(unseen.len());
        for at in unseen {
            rows.push((
                at,
                self.source_row(&mut source, &repairs[at].suspect).await?,
            ));
        }
        let kind = self
            .options
            .source
            .as_ref()
            .map_or(self.target_kind, |source| source.kind);
        let source_end = self.binlog_end(&mut source, kind).await?;
        for (at, row) in rows {
            repairs[at].step = RepairStep::Seen {
                row,
                source_end: source_end.clone(),
            };
        }
        Ok(())
    }

    fn source_fail(&self) -> impl Fn(mysql_async::Error) -> Error {
        let context = format!(
            "pipeline {}: cannot read a conflict's row on the source",
            self.options.pipeline
        );
        move |error| Error::database(context.clone(), error)
    }

    /// The source's row of a suspect key.
    async fn source_row(
        &self,
        conn: &mut mysql_async::Conn,
        suspect: &Suspect,
    ) -> Result<Option<Vec<Bound>>> {
        let Some(names) = &suspect.table.source else {
            return Ok(None);
        };
        read_row(conn, &suspect.table, names, &suspect.key)
            .await
            .map_err(self.source_fail())
    }

    /// A server's binlog end, as a file and offset.
    async fn binlog_end(
        &self,
        conn: &mut mysql_async::Conn,
        kind: crate::config::DataSourceKind,
    ) -> Result<BinlogFilePos> {
        resolve_end(conn, kind).await?.file.ok_or_else(|| {
            Error::Transform(format!(
                "pipeline {}: a server of a two-way channel reports no binlog file",
                self.options.pipeline
            ))
        })
    }

    /// Writes the primary's rows over the source's where the source still holds the row
    /// read (`writes`: repair index, source row read, primary row; None: no row), in one
    /// transaction marked as this pipeline's; again if a deadlock or lock wait interrupts it.
    async fn write_source_rows(
        &self,
        pool: &mysql_async::Pool,
        repairs: &[Repair],
        writes: &[SourceWrite],
    ) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.write_source_rows_once(pool, repairs, writes).await {
                Err(error)
                    if crate::error::is_transient_server_error(&error)
                        && attempt < WRITE_BACK_TRIES =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                    attempt += 1;
                }
                result => {
                    return result.map_err(|error| {
                        Error::database(
                            format!(
                                "pipeline {}: cannot write the primary's row of a conflict onto the source",
                                self.options.pipeline
                            ),
                            error,
                        )
                    });
                }
            }
        }
    }

    /// The target's row of `key` as values, read on `conn`.
    async fn row_in(
        &self,
        conn: &mut impl Queryable,
        table: &TargetTable,
        key: &[Bound],
    ) -> Result<Option<Vec<Bound>>> {
        let names = SourceNames {
            schema: table.schema.clone(),
            table: table.table.clone(),
            columns: table.columns.clone(),
        };
        read_row(conn, table, &names, key)
            .await
            .map_err(self.fail("read a conflict's row"))
    }

    /// Writes `current` over the source's row of `key` if it holds `lost` (None: no row);
    /// whether it did.
    async fn write_back_row(
        transaction: &mut Transaction<'_>,
        side: &SourceSide,
        key: &[Bound],
        lost: Option<&[Bound]>,
        current: &[Bound],
    ) -> std::result::Result<bool, mysql_async::Error> {
        let (source, columns) = (&side.table, side.columns.as_slice());
        let write = match lost {
            Some(lost) => update_text(source, columns, key, Some(lost), current),
            None => insert_text(source, columns, current),
        };
        match transaction.query_drop(write.clone()).await {
            Ok(()) => Ok(transaction.affected_rows() > 0),
            Err(error) if is_duplicate(&error) => {
                // In the way on another unique key (the primary does not have those rows),
                // or inserted on the source meanwhile (moved on: left alone).
                for unique in side.unique_keys.iter() {
                    transaction
                        .query_drop(delete_colliding_text(source, unique, key, current))
                        .await?;
                }
                match transaction.query_drop(write).await {
                    Ok(()) => Ok(transaction.affected_rows() > 0),
                    Err(error) if is_duplicate(&error) => Ok(false),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn write_source_rows_once(
        &self,
        pool: &mysql_async::Pool,
        repairs: &[Repair],
        writes: &[SourceWrite],
    ) -> std::result::Result<(), mysql_async::Error> {
        let mut conn = pool.get_conn().await?;
        let mut transaction = conn.start_transaction(TxOpts::default()).await?;
        transaction
            .exec_drop(
                MARK,
                (
                    &self.options.pipeline_key,
                    super::WRITE_BACK_PARTITION,
                    self.options.token.0,
                ),
            )
            .await?;
        if transaction.affected_rows() == 0 {
            // Claimed by a newer holder (or gone): write nothing unmarked.
            return Ok(());
        }
        for (at, seen, primary) in writes {
            let suspect = &repairs[*at].suspect;
            let Some(names) = &suspect.table.source else {
                continue;
            };
            let source = source_side(&suspect.table, names);
            let info = self.tables.get(&table_key(&suspect.table));
            let side = SourceSide {
                // the columns the target writes: generated ones are never written
                columns: info.map_or_else(
                    || (0..source.columns.len()).collect(),
                    |info| info.columns.to_vec(),
                ),
                unique_keys: info
                    .map(|info| info.unique_keys.clone())
                    .unwrap_or_default(),
                table: source,
            };
            let key = &suspect.key;
            match (seen, primary) {
                (None, None) => {}
                (Some(seen), None) => {
                    let sql = delete_text(&side.table, &side.columns, key, Some(seen));
                    transaction.query_drop(sql).await?;
                }
                (seen, Some(primary)) => {
                    Self::write_back_row(&mut transaction, &side, key, seen.as_deref(), primary)
                        .await?;
                }
            }
        }
        transaction.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(policy: ConflictPolicy, source_is_primary: bool) -> ConflictRule {
        ConflictRule {
            policy,
            source_is_primary,
        }
    }

    #[test]
    fn the_arbiter_keeps_the_primary_unless_the_source_is_newer() {
        let newer = || ConflictPolicy::NewerWins {
            column: "updated_at".into(),
        };
        // Decisions are taken by the pipeline into the primary: its source is not the primary.
        assert!(!decide(&rule(ConflictPolicy::PrimaryWins, false), 1).apply);
        assert!(decide(&rule(newer(), false), 1).apply);
        assert!(!decide(&rule(newer(), false), -1).apply);
        let tie = decide(&rule(newer(), false), 0);
        assert!(!tie.apply && tie.why.contains("tie"), "{}", tie.why);
        assert!(delete_against_update(&rule(newer(), false), true).apply);
        assert!(!delete_against_update(&rule(newer(), false), false).apply);
        assert!(!delete_against_update(&rule(ConflictPolicy::PrimaryWins, false), true).apply);
    }
}
