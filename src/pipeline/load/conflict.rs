//! Two-way channels: each change is applied only where the target row is the version the
//! change expects (its before-image), one change at a time in binlog order (see [`KeyStep`]
//! for why they are never merged); anything else is a conflict.
//!
//! One side decides every conflict: the primary. The pipeline *into* the primary arbitrates
//! by the table's [`ConflictRule`], records the conflict, and when the primary's version
//! wins, writes that version back onto its own source (the other side) at once, after its
//! target transaction commits, marked as its own so that it never comes back. The pipeline
//! *out of* the primary only skips a change that meets a different row: the other side's
//! conflicting change is on its way to the primary, where it will be decided. Deciding on
//! both sides, each with its own view of a moving row, cannot converge under races.
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
use crate::pipeline::transform::{SourceNames, TargetRow, TargetTable};
use mysql_async::prelude::Queryable;
use mysql_async::{Transaction, TxOpts};
use std::sync::Arc;

/// ER_DUP_ENTRY.
const DUPLICATE_KEY: u16 = 1062;
/// Attempts at writing the winners of conflicts back onto the source (deadlocks).
const WRITE_BACK_TRIES: u32 = 5;
/// Rounds of writing back while the primary's rows keep changing.
const WRITE_BACK_ROUNDS: usize = 10;

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
    /// Keys whose target (primary) version won: written back onto the source.
    pub write_back: Vec<WriteBack>,
}

/// A key whose primary version won a conflict, to write back onto the source where the source
/// still holds the version that lost.
#[derive(Debug)]
pub struct WriteBack {
    pub table: Arc<TargetTable>,
    pub key: Vec<Bound>,
    /// The versions the source may hold that the decision replaced (None: no row): the
    /// source's own version, and the primary's version before the decision, which the
    /// pipeline out of the primary may have written there meanwhile. A source that moved on
    /// since is left alone: its next change goes to the primary and is decided there again.
    pub lost: Vec<Option<Vec<Bound>>>,
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
        let prior = self.row_in(transaction, table, &change.key).await?;
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
        outcome.write_back.push(WriteBack {
            table: checked.table.clone(),
            key: change.key.clone(),
            lost: vec![change.last.map(<[Bound]>::to_vec), prior],
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
        if !apply {
            // The source gets the primary's rows: none under this key, the colliding ones.
            outcome.write_back.push(WriteBack {
                table: checked.table.clone(),
                key: change.key.clone(),
                lost: vec![Some(last.to_vec())],
            });
            // The primary's colliding rows, which the source never got.
            for key in colliding_rows {
                outcome.write_back.push(WriteBack {
                    table: checked.table.clone(),
                    key,
                    lost: vec![None],
                });
            }
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

    /// After the target transaction committed: the primary's versions that won are written
    /// back onto the source (the other side) where it still holds the version that lost, in
    /// one transaction marked as this pipeline's, so that this pipeline drops it when it
    /// reads the source.
    ///
    /// The primary may change such a row while this runs, and the pipeline out of the primary
    /// may meanwhile have skipped that change (the source did not hold what it expected):
    /// so the primary's rows are read again after the write, and written back again, from
    /// the version just written, until they held still. A change the primary makes after
    /// that meets the written version on the source and applies.
    pub(super) async fn write_back(&self, keys: &[WriteBack]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let Some(pool) = &self.source else {
            return Err(Error::Transform(
                "a two-way pipeline without its source to write conflicts back to".into(),
            ));
        };
        let source_fail = |error| {
            Error::database(
                format!(
                    "pipeline {}: cannot write the winning version of a conflict back onto the source",
                    self.options.pipeline
                ),
                error,
            )
        };
        let mut lost: Vec<Vec<Option<Vec<Bound>>>> =
            keys.iter().map(|entry| entry.lost.clone()).collect();
        let mut current = self.primary_rows(keys).await?;
        for _ in 0..WRITE_BACK_ROUNDS {
            let mut attempt = 1;
            loop {
                match self.write_back_once(pool, keys, &lost, &current).await {
                    // Writers on the source may hold the same rows: the whole write-back again.
                    Err(error)
                        if crate::error::is_transient_server_error(&error)
                            && attempt < WRITE_BACK_TRIES =>
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                        attempt += 1;
                    }
                    result => {
                        result.map_err(source_fail)?;
                        break;
                    }
                }
            }
            let now = self.primary_rows(keys).await?;
            if now == current {
                return Ok(());
            }
            lost = current.into_iter().map(|version| vec![version]).collect();
            current = now;
        }
        Err(Error::Transform(format!(
            "pipeline {}: the primary's rows kept changing while their conflicts were written back",
            self.options.pipeline
        )))
    }

    /// The primary's (the target's) current version of each key.
    async fn primary_rows(&self, keys: &[WriteBack]) -> Result<Vec<Option<Vec<Bound>>>> {
        let mut conn = self.conn().await?;
        let mut rows = Vec::with_capacity(keys.len());
        for entry in keys {
            rows.push(self.row_in(&mut conn, &entry.table, &entry.key).await?);
        }
        Ok(rows)
    }

    /// The target's row of `key` as values, read on `conn` (a transaction sees its own writes).
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
        let params: Vec<mysql_async::Value> = key.iter().map(Bound::param).collect();
        let row: Option<mysql_async::Row> = conn
            .exec_first(row_by_key(table, &names), params)
            .await
            .map_err(self.fail("read a conflict's row"))?;
        Ok(row.map(|row| row.unwrap().into_iter().map(from_param).collect()))
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

    /// One attempt at [`Loader::write_back`]: where the source holds `lost`, it gets
    /// `current`, the target's version of each key (None: no row).
    async fn write_back_once(
        &self,
        pool: &mysql_async::Pool,
        keys: &[WriteBack],
        lost: &[Vec<Option<Vec<Bound>>>],
        current: &[Option<Vec<Bound>>],
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
        for ((entry, lost), current) in keys.iter().zip(lost).zip(current) {
            let Some(names) = &entry.table.source else {
                continue;
            };
            let source = source_side(&entry.table, names);
            let info = self.tables.get(&table_key(&entry.table));
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
            let (source, columns) = (&side.table, &side.columns);
            let key = &entry.key;
            let mut alternatives: Vec<Option<&[Bound]>> = Vec::new();
            for version in lost {
                let version = version.as_deref();
                if version != current.as_deref() && !alternatives.contains(&version) {
                    alternatives.push(version);
                }
            }
            for lost in alternatives {
                let written = match (lost, current) {
                    (None, None) => continue,
                    (Some(lost), None) => {
                        transaction
                            .query_drop(delete_text(source, columns, key, Some(lost)))
                            .await?;
                        transaction.affected_rows() > 0
                    }
                    (lost, Some(current)) => {
                        Self::write_back_row(&mut transaction, &side, key, lost, current).await?
                    }
                };
                if written {
                    break;
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
