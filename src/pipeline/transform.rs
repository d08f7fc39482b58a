//! Transform: turns the changes Select hands on into changes for the target: target schema,
//! table and column names, only the columns that travel, and DDL kept, dropped or refused.
//! Pure: no IO.
//!
//! DDL: a statement's tables are found from its text (ALTER / CREATE / DROP / RENAME /
//! TRUNCATE TABLE, CREATE / DROP INDEX … ON), qualified with the event's default schema.
//! Statements that are not table DDL (CREATE USER, GRANT, FLUSH, …) are never applied; DDL on
//! tables outside every pair is dropped; DDL on paired tables passes through unchanged when
//! no pair renames them, and is rewritten with sqlparser when one does (a statement that cannot
//! be parsed or safely rewritten then stops the pipeline with the statement in the reason).

use super::extract::{kept_columns, pair_for};
use super::select::Change;
use crate::config::TablePair;
use crate::model::{ChangeAt, ChangeKind, RowChange, TableId, TableMeta, Value};
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
pub type TargetValue = super::load::Bound;

/// One change for the target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TargetChange {
    Row(TargetRow),
    /// A DDL statement to run with `schema` as the default database.
    Ddl {
        schema: String,
        sql: String,
        at: ChangeAt,
    },
}

/// Maps changes to the target, caching each table's mapping.
#[derive(Debug, Default)]
pub struct Transformer {
    pairs: Vec<TablePair>,
    ddl_sync: bool,
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
    pub fn new(pairs: Vec<TablePair>, ddl_sync: bool) -> Self {
        Transformer {
            pairs,
            ddl_sync,
            tables: HashMap::new(),
        }
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
                Change::Ddl { schema, sql, at } => {
                    if let Some(ddl) = self.ddl(schema, sql, at)? {
                        out.push(ddl);
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
                Some(Arc::new(Mapping {
                    target: Arc::new(TargetTable {
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
                    }),
                    sources: kept.iter().map(|(index, _)| *index).collect(),
                }))
            }
        };
        self.tables.insert(meta.id.clone(), (meta, mapping.clone()));
        Ok(mapping)
    }

    fn ddl(
        &mut self,
        schema: String,
        sql: String,
        at: ChangeAt,
    ) -> Result<Option<TargetChange>, String> {
        if !self.ddl_sync {
            return Ok(None);
        }
        let Some(tables) = ddl_tables(&sql, &schema) else {
            return Ok(None);
        };
        let paired: Vec<(&TableId, &TablePair)> = tables
            .iter()
            .filter_map(|table| pair_for(&self.pairs, table).map(|pair| (table, pair)))
            .collect();
        if paired.is_empty() {
            return Ok(None);
        }
        let renames = paired.iter().any(|(table, pair)| {
            pair.target_schema
                .as_ref()
                .is_some_and(|target| *target != table.schema)
                || pair
                    .target_table
                    .as_ref()
                    .is_some_and(|target| *target != table.table)
        });
        let (schema, sql) = if renames {
            // Fully qualified target names: the statement no longer needs a default schema.
            (String::new(), rewrite_ddl(&sql, &schema, &self.pairs)?)
        } else {
            (schema, sql)
        };
        // The table layout may change: build mappings again from the next TABLE_MAP.
        for table in &tables {
            self.tables.remove(table);
        }
        Ok(Some(TargetChange::Ddl { schema, sql, at }))
    }
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
                        super::load::bind(value).map_err(|problem| {
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

/// Rewrites the table names of a DDL statement to their targets (sqlparser, MySQL dialect).
/// Fails with the statement when it cannot be parsed, or when a renamed table would be left
/// under its source name.
pub fn rewrite_ddl(sql: &str, default_schema: &str, pairs: &[TablePair]) -> Result<String, String> {
    use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, visit_relations_mut};
    use std::ops::ControlFlow;
    let shown = || sql.chars().take(200).collect::<String>();
    let mut statements =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, sql).map_err(
            |error| {
                format!(
                    "DDL on a renamed table cannot be parsed to rewrite it ({error}): `{}`",
                    shown()
                )
            },
        )?;
    let mut expected = Vec::new();
    let mut map = |name: &mut ObjectName| {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|part| match part {
                ObjectNamePart::Identifier(ident) => Some(ident.value.clone()),
                ObjectNamePart::Function(_) => None,
            })
            .collect();
        let source = match parts.as_slice() {
            [table] => TableId {
                schema: default_schema.to_owned(),
                table: table.clone(),
            },
            [schema, table] => TableId {
                schema: schema.clone(),
                table: table.clone(),
            },
            _ => return,
        };
        if let Some(pair) = pair_for(pairs, &source) {
            let target = TableId {
                schema: pair
                    .target_schema
                    .clone()
                    .unwrap_or_else(|| source.schema.clone()),
                table: pair
                    .target_table
                    .clone()
                    .unwrap_or_else(|| source.table.clone()),
            };
            *name = ObjectName::from(vec![
                Ident::with_quote('`', &target.schema),
                Ident::with_quote('`', &target.table),
            ]);
            expected.push(target);
        }
    };
    for statement in &mut statements {
        // RENAME TABLE's names are not relations to the visitor: map them here.
        if let sqlparser::ast::Statement::RenameTable(renames) = statement {
            for rename in renames {
                map(&mut rename.old_name);
                map(&mut rename.new_name);
            }
        }
    }
    let _ = visit_relations_mut(&mut statements, |name| {
        map(name);
        ControlFlow::<()>::Continue(())
    });
    let rewritten = statements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";\n");
    // Every paired table the statement names must now appear under its target name.
    let found = ddl_tables(&rewritten, "").unwrap_or_default();
    let originals = ddl_tables(sql, default_schema).unwrap_or_default();
    let paired = originals
        .iter()
        .filter(|table| pair_for(pairs, table).is_some())
        .count();
    if expected.len() < paired || expected.iter().any(|target| !found.contains(target)) {
        return Err(format!(
            "DDL on a renamed table cannot be rewritten safely: `{}`",
            shown()
        ));
    }
    Ok(rewritten)
}

/// The tables a table DDL statement touches, qualified with `default_schema`; None when the
/// statement is not table DDL (and so must never be applied).
pub fn ddl_tables(sql: &str, default_schema: &str) -> Option<Vec<TableId>> {
    let tokens = tokens(sql);
    let upper: Vec<String> = tokens
        .iter()
        .map(|token| token.to_ascii_uppercase())
        .collect();
    let word = |index: usize| upper.get(index).map(String::as_str).unwrap_or("");
    let mut names = Vec::new();
    let mut index = 1;
    // A temporary table lives in its session: never applied (on a pooled load connection it
    // would hide the real table from the batches that run there next).
    if upper.iter().take(4).any(|word| word == "TEMPORARY") {
        return None;
    }
    // skip OR REPLACE, ONLINE/IGNORE, DEFINER-free table verbs
    while matches!(
        word(index),
        "OR" | "REPLACE" | "ONLINE" | "OFFLINE" | "IGNORE" | "UNIQUE" | "FULLTEXT" | "SPATIAL"
    ) {
        index += 1;
    }
    match (word(0), word(index)) {
        ("CREATE" | "ALTER" | "DROP", "TABLE") | ("TRUNCATE", "TABLE") => {
            index += 1;
            while matches!(word(index), "IF" | "NOT" | "EXISTS") {
                index += 1;
            }
            loop {
                let (name, next) = qualified(&tokens, index, default_schema)?;
                names.push(name);
                if word(0) == "DROP" && tokens.get(next).map(String::as_str) == Some(",") {
                    index = next + 1;
                    continue;
                }
                break;
            }
        }
        ("TRUNCATE", _) => names.push(qualified(&tokens, index, default_schema)?.0),
        ("RENAME", "TABLE") => {
            index += 1;
            loop {
                let (from, next) = qualified(&tokens, index, default_schema)?;
                if upper.get(next).map(String::as_str) != Some("TO") {
                    return None;
                }
                let (to, next) = qualified(&tokens, next + 1, default_schema)?;
                names.push(from);
                names.push(to);
                if tokens.get(next).map(String::as_str) == Some(",") {
                    index = next + 1;
                    continue;
                }
                break;
            }
        }
        ("CREATE" | "DROP", "INDEX") => {
            let on = upper.iter().position(|token| token == "ON")?;
            names.push(qualified(&tokens, on + 1, default_schema)?.0);
        }
        _ => return None,
    }
    Some(names)
}

/// A possibly schema-qualified, possibly backquoted name at `index`; and the index after it.
fn qualified(tokens: &[String], index: usize, default_schema: &str) -> Option<(TableId, usize)> {
    let first = unquote(tokens.get(index)?)?;
    if tokens.get(index + 1).map(String::as_str) == Some(".") {
        let second = unquote(tokens.get(index + 2)?)?;
        Some((
            TableId {
                schema: first,
                table: second,
            },
            index + 3,
        ))
    } else {
        Some((
            TableId {
                schema: default_schema.to_owned(),
                table: first,
            },
            index + 1,
        ))
    }
}

fn unquote(token: &str) -> Option<String> {
    if let Some(inner) = token.strip_prefix('`') {
        return Some(inner.strip_suffix('`')?.replace("``", "`"));
    }
    token
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        .then(|| token.to_owned())
}

/// Splits SQL into words, backquoted names, and punctuation; comments are skipped.
fn tokens(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c.is_whitespace() {
            index += 1;
        } else if c == '/' && chars.get(index + 1) == Some(&'*') {
            index += 2;
            while index + 1 < chars.len() && !(chars[index] == '*' && chars[index + 1] == '/') {
                index += 1;
            }
            index += 2;
        } else if (c == '-' && chars.get(index + 1) == Some(&'-')) || c == '#' {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if c == '`' {
            let start = index;
            index += 1;
            while index < chars.len() {
                if chars[index] == '`' {
                    if chars.get(index + 1) == Some(&'`') {
                        index += 2;
                        continue;
                    }
                    break;
                }
                index += 1;
            }
            index += 1;
            tokens.push(chars[start..index.min(chars.len())].iter().collect());
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = index;
            while index < chars.len()
                && (chars[index].is_alphanumeric() || chars[index] == '_' || chars[index] == '$')
            {
                index += 1;
            }
            tokens.push(chars[start..index].iter().collect());
        } else {
            tokens.push(c.to_string());
            index += 1;
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(schema: &str, table: &str) -> TableId {
        TableId {
            schema: schema.into(),
            table: table.into(),
        }
    }

    #[test]
    fn ddl_tables_are_found_without_a_parser() {
        assert_eq!(
            ddl_tables("ALTER TABLE t ADD c INT", "shop"),
            Some(vec![id("shop", "t")])
        );
        assert_eq!(
            ddl_tables("alter online table `crm`.`a``b` add x int", "shop"),
            Some(vec![id("crm", "a`b")])
        );
        assert_eq!(
            ddl_tables(
                "DROP TABLE IF EXISTS `shop`.`a`, b /* generated by server */",
                "x"
            ),
            Some(vec![id("shop", "a"), id("x", "b")])
        );
        assert_eq!(
            ddl_tables(
                "CREATE TABLE IF NOT EXISTS t (id INT) PARTITION BY HASH(id)",
                "s"
            ),
            Some(vec![id("s", "t")])
        );
        assert_eq!(
            ddl_tables("RENAME TABLE a TO b, s2.c TO s2.d", "s"),
            Some(vec![
                id("s", "a"),
                id("s", "b"),
                id("s2", "c"),
                id("s2", "d")
            ])
        );
        assert_eq!(ddl_tables("TRUNCATE t", "s"), Some(vec![id("s", "t")]));
        assert_eq!(ddl_tables("CREATE TEMPORARY TABLE t (a INT)", "s"), None);
        assert_eq!(ddl_tables("DROP TEMPORARY TABLE IF EXISTS t", "s"), None);
        assert_eq!(
            ddl_tables("create or replace temporary table t (a int)", "s"),
            None
        );
        assert_eq!(
            ddl_tables("CREATE UNIQUE INDEX i ON s2.t (a)", "s"),
            Some(vec![id("s2", "t")])
        );
        assert_eq!(
            ddl_tables("DROP INDEX i ON t", "s"),
            Some(vec![id("s", "t")])
        );
    }

    fn renaming_pair(
        schema: &str,
        table: &str,
        target_schema: Option<&str>,
        target_table: Option<&str>,
    ) -> TablePair {
        TablePair {
            id: crate::model::TablePairId(1),
            schema: crate::config::NamePattern::parse(schema).unwrap(),
            table: crate::config::NamePattern::parse(table).unwrap(),
            target_schema: target_schema.map(str::to_owned),
            target_table: target_table.map(str::to_owned),
            columns: crate::config::ColumnSelection::All,
            conflict: None,
        }
    }

    #[test]
    fn ddl_on_renamed_tables_is_rewritten_to_the_targets() {
        let pairs = vec![
            renaming_pair("shop", "people", Some("copy"), Some("persons")),
            renaming_pair("shop", "order_.*", Some("copy"), None),
        ];
        assert_eq!(
            rewrite_ddl("ALTER TABLE people ADD COLUMN age INT", "shop", &pairs).unwrap(),
            "ALTER TABLE `copy`.`persons` ADD COLUMN age INT"
        );
        assert_eq!(
            rewrite_ddl(
                "CREATE TABLE shop.order_9 (id INT PRIMARY KEY)",
                "x",
                &pairs
            )
            .unwrap(),
            "CREATE TABLE `copy`.`order_9` (id INT PRIMARY KEY)"
        );
        assert_eq!(
            rewrite_ddl("RENAME TABLE order_1 TO order_2", "shop", &pairs).unwrap(),
            "RENAME TABLE `copy`.`order_1` TO `copy`.`order_2`"
        );
        assert!(
            rewrite_ddl("ALTER TABLE people ENGINE=InnoDB", "shop", &pairs)
                .unwrap_err()
                .contains("cannot be parsed")
        );
    }

    #[test]
    fn statements_that_are_not_table_ddl_are_never_applied() {
        for sql in [
            "CREATE USER 'u'@'%' IDENTIFIED BY 'x'",
            "GRANT ALL ON *.* TO u",
            "SET PASSWORD FOR u = PASSWORD('x')",
            "FLUSH PRIVILEGES",
            "OPTIMIZE TABLE t",
            "ANALYZE TABLE t",
            "CREATE DATABASE shop",
        ] {
            assert_eq!(ddl_tables(sql, "s"), None, "{sql}");
        }
    }
}
