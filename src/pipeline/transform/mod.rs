//! Transform: turns the changes Select hands on into changes for the target: target schema,
//! table and column names, only the columns that travel, and DDL kept, split, rewritten,
//! dropped or refused (see [`ddl`]). Pure: no IO.

pub mod bind;
mod ddl;

pub use ddl::{TargetDdl, plan as plan_ddl};

use crate::config::TablePair;
use crate::model::{ChangeAt, ChangeKind, RowChange, Statement, TableId, TableMeta, Value};
use crate::pipeline::extract::{kept_columns, pair_for};
use crate::pipeline::select::Change;
use std::collections::HashMap;
use std::sync::Arc;

/// A target table as the load side writes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetTable {
    pub schema: String,
    pub table: String,
    /// Target column names, in the order of the row values.
    pub columns: Vec<String>,
    /// Indexes into `columns` of the primary key; empty when the table has none.
    pub key: Vec<usize>,
    /// Two-way channels: changes are checked against the target row and conflicts resolved
    /// by this rule. None: the target follows the source blindly (one-way).
    pub conflict: Option<crate::config::ConflictRule>,
    /// Two-way channels: where the rows come from, so that a conflict is resolved with the
    /// source row's current version.
    pub source: Option<SourceNames>,
}

/// The source table of a target table and the source column of each target column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceNames {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
}

/// A changed row for the target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TargetRow {
    pub table: Arc<TargetTable>,
    pub kind: ChangeKind,
    pub before: Option<Vec<TargetValue>>,
    pub after: Option<Vec<TargetValue>>,
    pub at: ChangeAt,
}

/// A value as the load side binds it.
pub type TargetValue = bind::Bound;

/// One change for the target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TargetChange {
    Row(TargetRow),
    /// A DDL statement, and where the source statement is.
    Ddl {
        ddl: TargetDdl,
        at: ChangeAt,
    },
}

/// A DDL statement that `skip_ddl_errors` let pass without applying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDdl {
    pub at: ChangeAt,
    /// The statement, shortened, for the event log.
    pub statement: String,
    pub reason: String,
}

/// Maps changes to the target, caching each table's mapping.
#[derive(Debug, Default)]
pub struct Transformer {
    pairs: Vec<TablePair>,
    ddl_sync: bool,
    /// A statement that must be refused is passed over (and recorded) instead.
    skip_ddl_errors: bool,
    /// Statements passed over under `skip_ddl_errors` since the last
    /// [`Transformer::take_skipped`].
    skipped: Vec<SkippedDdl>,
    /// Per source table: the metadata the mapping was built from, and the mapping.
    tables: HashMap<TableId, (Arc<TableMeta>, Option<Arc<Mapping>>)>,
}

/// How one source table maps to its target.
#[derive(Debug)]
struct Mapping {
    target: Arc<TargetTable>,
    /// Source column index of each target column.
    sources: Vec<usize>,
}

impl Transformer {
    pub fn new(pairs: Vec<TablePair>, ddl_sync: bool, skip_ddl_errors: bool) -> Self {
        Transformer {
            pairs,
            ddl_sync,
            skip_ddl_errors,
            skipped: Vec::new(),
            tables: HashMap::new(),
        }
    }

    /// The statements passed over under `skip_ddl_errors` since the last call.
    pub fn take_skipped(&mut self) -> Vec<SkippedDdl> {
        std::mem::take(&mut self.skipped)
    }

    /// Extract: keeps the row changes a table pair selects, in order, and every statement
    /// (transform decides which statements apply). An error names the table at fault.
    pub fn extract(&mut self, changes: Vec<Change>) -> Result<Vec<Change>, String> {
        let mut kept = Vec::with_capacity(changes.len());
        for change in changes {
            let keep = match &change {
                Change::Row(row, _) => self.mapping(row)?.is_some(),
                Change::Ddl { .. } => true,
            };
            if keep {
                kept.push(change);
            }
        }
        Ok(kept)
    }

    /// The target changes of a batch; an error names the table or statement at fault.
    pub fn transform(&mut self, changes: Vec<Change>) -> Result<Vec<TargetChange>, String> {
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            match change {
                Change::Row(row, at) => {
                    if let Some(mapping) = self.mapping(&row)? {
                        out.push(TargetChange::Row(map_row(&mapping, row, at)?));
                    }
                }
                Change::Ddl { statement, at } => {
                    if let Some(ddl) = self.ddl(&statement, &at)? {
                        out.push(TargetChange::Ddl { ddl, at });
                    }
                }
            }
        }
        Ok(out)
    }

    fn mapping(&mut self, row: &RowChange) -> Result<Option<Arc<Mapping>>, String> {
        if let Some((meta, mapping)) = self.tables.get(&row.table.id)
            && (Arc::ptr_eq(meta, &row.table) || **meta == *row.table)
        {
            return Ok(mapping.clone());
        }
        let meta = row.table.clone();
        let mapping = match pair_for(&self.pairs, &meta.id) {
            None => None,
            Some(pair) => {
                let (target, sources) = target_of(pair, &meta)?;
                Some(Arc::new(Mapping { target, sources }))
            }
        };
        self.tables.insert(meta.id.clone(), (meta, mapping.clone()));
        Ok(mapping)
    }

    fn ddl(&mut self, statement: &Statement, at: &ChangeAt) -> Result<Option<TargetDdl>, String> {
        if !self.ddl_sync {
            return Ok(None);
        }
        match plan_ddl(statement, &self.pairs) {
            Ok(Some(ddl)) => {
                // The table layout may change: build mappings again from the next TABLE_MAP.
                for table in &ddl.tables {
                    self.tables.remove(table);
                }
                Ok(Some(ddl))
            }
            Ok(None) => Ok(None),
            Err(reason) if self.skip_ddl_errors => {
                self.skipped.push(SkippedDdl {
                    at: at.clone(),
                    statement: statement.shown(200),
                    reason,
                });
                Ok(None)
            }
            Err(reason) => Err(format!(
                "{reason} (at {}; to pass it over, set_pipeline_option(pipeline, 'skip_ddl_errors', 'on') for a moment)",
                at.transaction
            )),
        }
    }
}

/// The target table a pair makes of the source table `meta`, and the source column index of
/// each target column; an error names the table and the column at fault.
pub fn target_of(
    pair: &TablePair,
    meta: &TableMeta,
) -> Result<(Arc<TargetTable>, Vec<usize>), String> {
    let names: Vec<String> = meta
        .columns
        .iter()
        .map(|column| column.name.clone())
        .collect();
    let kept = kept_columns(pair, &names, &meta.primary_key)
        .map_err(|problem| format!("{}: {problem}", meta.id))?;
    let key = meta
        .primary_key
        .iter()
        .map(|source| {
            kept.iter()
                .position(|(index, _)| index == source)
                .expect("key columns are kept")
        })
        .collect();
    let target = TargetTable {
        schema: pair
            .target_schema
            .clone()
            .unwrap_or_else(|| meta.id.schema.clone()),
        table: pair
            .target_table
            .clone()
            .unwrap_or_else(|| meta.id.table.clone()),
        columns: kept.iter().map(|(_, name)| name.clone()).collect(),
        key,
        conflict: pair.conflict.clone(),
        source: pair.conflict.as_ref().map(|_| SourceNames {
            schema: meta.id.schema.clone(),
            table: meta.id.table.clone(),
            columns: kept
                .iter()
                .map(|(index, _)| meta.columns[*index].name.clone())
                .collect(),
        }),
    };
    Ok((
        Arc::new(target),
        kept.iter().map(|(index, _)| *index).collect(),
    ))
}

fn map_row(mapping: &Mapping, row: RowChange, at: ChangeAt) -> Result<TargetRow, String> {
    let image = |values: Option<Vec<Value>>| -> Result<Option<Vec<TargetValue>>, String> {
        values
            .map(|values| {
                mapping
                    .sources
                    .iter()
                    .map(|index| {
                        let value = values.get(*index).ok_or_else(|| {
                            format!("{}: a row image is missing column {index}", row.table.id)
                        })?;
                        bind::bind(value).map_err(|problem| {
                            format!(
                                "{}.{}: {problem}",
                                row.table.id,
                                row.table
                                    .columns
                                    .get(*index)
                                    .map_or("?", |c| c.name.as_str())
                            )
                        })
                    })
                    .collect()
            })
            .transpose()
    };
    Ok(TargetRow {
        table: mapping.target.clone(),
        kind: row.kind,
        before: image(row.before.clone())?,
        after: image(row.after.clone())?,
        at,
    })
}
