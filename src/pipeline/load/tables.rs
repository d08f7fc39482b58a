//! What the load side needs to know of a target table, read once per table from
//! information_schema: its columns as the target has them, its unique keys, whether foreign
//! keys touch it, and (two-way) which column newer_wins compares.

use super::Loader;
use crate::error::{Error, Result};
use crate::pipeline::transform::TargetTable;
use mysql_async::prelude::Queryable;
use std::sync::Arc;

const FOREIGN_KEYS: &str = "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
     WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)";

const UNIQUE_KEYS: &str = "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY'";

const UNIQUE_KEY_COLUMNS: &str = "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY' \
     ORDER BY INDEX_NAME, SEQ_IN_INDEX";

const TARGET_COLUMNS: &str = "SELECT COLUMN_NAME, EXTRA, DATA_TYPE FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

/// The unique keys of `table` from `(index name, column name)` rows in key order, as indexes
/// into its columns; a key on a column that is not synced cannot be compared and is left out.
pub(super) fn unique_key_columns(
    table: &TargetTable,
    rows: &[(String, String)],
) -> Vec<Vec<usize>> {
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
pub(super) fn newer_column(
    table: &TargetTable,
    rule: &crate::config::ConflictRule,
) -> Result<Option<usize>> {
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

/// A target table with the columns a change carries: a source whose layout changed without
/// a synced DDL maps to another entry, so cached column indexes never go stale.
pub(super) type TableKey = (String, String, Vec<String>);

pub(super) fn table_key(table: &TargetTable) -> TableKey {
    (
        table.schema.clone(),
        table.table.clone(),
        table.columns.clone(),
    )
}

/// A target table as found on the target.
#[derive(Debug, Clone)]
pub(super) struct TableInfo {
    /// The indexes of its columns to write (present, not generated).
    pub(super) columns: Arc<Vec<usize>>,
    /// It has a foreign key or is referenced by one (cascades are not in the binlog), or it
    /// has a unique key besides the primary key (an upsert clashing on it would update
    /// another row): such tables are applied in one partition, in binlog order.
    pub(super) serial: bool,
    /// Two-way channels: the unique keys besides the primary key (indexes into the target
    /// table's columns; keys on columns that are not synced are left out).
    pub(super) unique_keys: Arc<Vec<Vec<usize>>>,
    /// Two-way channels under newer_wins: the index of the column compared.
    pub(super) newer: Option<usize>,
}

impl Loader {
    /// What to know of `table` on the target: its columns to write (fails naming a column the
    /// target lacks) and whether foreign keys link it.
    pub(super) async fn table_info(&mut self, table: &TargetTable) -> Result<TableInfo> {
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
}
