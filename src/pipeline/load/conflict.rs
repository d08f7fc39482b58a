//! Two-way channels: each change is applied only where the target row is the version the
//! change expects (its before-image), one change at a time in binlog order (see [`KeyStep`]
//! for why they are never merged); anything else is a conflict.
//!
//! One side decides every conflict: the primary. The pipeline *into* the primary arbitrates
//! by the table's [`ConflictRule`], records the conflict, and keeps the key as a suspect that
//! `repair` makes equal on both sides. The pipeline *out of*
//! the primary only skips a change that meets a different row: the other side's conflicting
//! change is on its way to the primary, where it will be decided. Deciding on both sides,
//! each with its own view of a moving row, cannot converge under races.
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

use super::Loader;
use super::merge::{KeyStep, key_steps};
use super::repair::Suspect;
use super::statements::{
    check_text, colliding_keys, colliding_text, delete_colliding_text, delete_text, image_text,
    insert_text, literal_tuple, update_text,
};
use super::tables::{TableInfo, table_key};
use crate::config::{ConflictPolicy, ConflictRule};
use crate::error::{Error, Result};
use crate::model::{ConflictKind, ConflictRecord};
use crate::pipeline::transform::bind::{Bound, from_param};
use crate::pipeline::transform::{TargetRow, TargetTable};
use mysql_async::Transaction;
use mysql_async::prelude::Queryable;
use std::sync::Arc;

/// ER_DUP_ENTRY.
const DUPLICATE_KEY: u16 = 1062;

/// What the checked writes of one target transaction leave to do once it commits.
#[derive(Debug, Default)]
pub struct CheckedOutcome {
    pub conflicts: Vec<ConflictRecord>,
    /// Keys whose two sides may differ after a conflict.
    pub suspects: Vec<Suspect>,
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
        kind: ConflictKind,
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
        self.keep_suspects(transaction, &outcome.suspects).await
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
            (None, _) => ConflictKind::Insert,
            (_, None) => ConflictKind::Delete,
            _ => ConflictKind::Update,
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
        tracing::debug!(pipeline = %self.options.pipeline, key = %literal_tuple(change.key.iter()), kind = kind.as_str(), apply, why = %decision.why, source = ?source_row, target = ?target_row, "conflict");
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
            ConflictKind::UniqueKey,
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
