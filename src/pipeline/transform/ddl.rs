//! Which DDL statements reach the target, and as what: decided from the statement's tokens
//! as its source server read them (see [`crate::sql::lex`]).
//!
//! - Statements that are not table DDL (CREATE USER, GRANT, CREATE DATABASE, …) and DDL on
//!   temporary tables are never applied; neither is DDL that names no paired table.
//! - DDL on paired tables whose names the pairs keep runs on the target as the source's own
//!   bytes, under the source session's state (see `load::ddl`).
//! - A multi-table DROP TABLE or RENAME TABLE that also names tables outside every pair is
//!   split: only the paired tables' part is applied, written by ottr from quoted names.
//! - DDL on a table a pair renames is rewritten: the names are found in sqlparser's AST and
//!   only their bytes are replaced; every other byte stays the source's. A statement that
//!   cannot be parsed, or whose rewrite does not name the targets, is refused by name.
//! - A statement that would change a table outside every pair on the target (ALTER TABLE …
//!   EXCHANGE PARTITION … WITH TABLE) is refused by name.

use crate::config::TablePair;
use crate::model::{Statement, TableId, decode_charset, encode_charset};
use crate::pipeline::extract::pair_for;
use crate::sql::lex::{Lexed, Lexeme, Quoting, Reader, lex, settle_comments};
use crate::sql::quote;
use shape::{Named, Shape, references_unqualified, shape, shape_of};
use sqlparser::ast::{ObjectName, ObjectNamePart, Statement as Ast};
use sqlparser::tokenizer::{Span, Token};
use std::ops::{ControlFlow, Range};
use std::sync::Arc;

/// A DDL statement as it runs on the target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TargetDdl {
    /// The source's bytes, or ottr's rewrite of them, and the session state to run them in.
    pub statement: Statement,
    /// Whether a table name in it is unqualified, so that it needs its default database.
    pub needs_schema: bool,
    /// The source tables it names.
    pub tables: Vec<TableId>,
}

/// Whether a statement's first word (ASCII in every client character set) can start table
/// DDL; anything else is never applied, whatever its bytes.
fn may_be_table_ddl(text: &[u8]) -> bool {
    let start = text
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(text.len());
    let word: String = text[start..]
        .iter()
        .take_while(|byte| byte.is_ascii_alphabetic())
        .map(|byte| char::from(*byte).to_ascii_uppercase())
        .collect();
    matches!(
        word.as_str(),
        "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE" | "SET"
    )
}

/// What becomes of a source DDL statement on the target: None when it is not applied; an
/// error (naming the statement) when it must not be applied and must not be passed over.
pub fn plan(statement: &Statement, pairs: &[TablePair]) -> Result<Option<TargetDdl>, String> {
    if !may_be_table_ddl(&statement.text) {
        return Ok(None);
    }
    let shown = || statement.shown(200);
    let refuse = |problem: String| format!("DDL `{}` cannot be replayed: {problem}", shown());
    let session = &statement.session;
    let target = |id: &TableId| -> Option<TableId> {
        pair_for(pairs, id).map(|pair| TableId {
            schema: pair
                .target_schema
                .clone()
                .unwrap_or_else(|| id.schema.clone()),
            table: pair
                .target_table
                .clone()
                .unwrap_or_else(|| id.table.clone()),
        })
    };
    if let Some(problem) = &session.problem {
        // Its quoting is not known: refused if any reading of it touches a paired table.
        return match touches_paired(statement, &target) {
            false => Ok(None),
            true => Err(refuse(problem.clone())),
        };
    }
    let utf8 = matches!(
        session.client_charset.as_str(),
        "utf8mb4" | "utf8mb3" | "utf8"
    );
    let decoded = decode_charset(&statement.text, &session.client_charset).map_err(refuse)?;
    let quoting = Quoting {
        ansi_quotes: session.sql_mode.ansi_quotes(),
        backslash_escapes: session.sql_mode.backslash_escapes(),
    };
    let reader = Reader {
        flavor: session.sql_mode.flavor,
        version: session.source_version,
    };
    let settled = settle_comments(&decoded, quoting, reader).map_err(refuse)?;
    let lexed = lex(&settled, quoting, utf8).map_err(refuse)?;
    let Some(shape) = shape(&lexed.tokens, &statement.schema).map_err(refuse)? else {
        return Ok(None);
    };
    let tables: Vec<TableId> = shape.names().iter().map(|named| named.id.clone()).collect();
    if tables.iter().all(|table| target(table).is_none()) {
        return Ok(None);
    }
    if session.two_phase_alter {
        return Err(refuse(
            "it is part of a two-phase ALTER (binlog_alter_two_phase=ON on the source), which ottr cannot replay: set it OFF"
                .into(),
        ));
    }
    // The statement as the source read it: its executable comments settled, so that no
    // target of another flavour or version reads them otherwise.
    let settled_statement = match &settled {
        std::borrow::Cow::Borrowed(_) => statement.clone(),
        std::borrow::Cow::Owned(text) => Statement {
            text: encode_charset(text, &session.client_charset).map_err(refuse)?,
            ..statement.clone()
        },
    };
    let renamed = |named: &Named| target(&named.id).is_some_and(|to| to != named.id);
    let unqualified =
        shape.names().iter().any(|named| !named.qualified) || references_unqualified(&lexed.tokens);
    let as_is = || {
        Some(TargetDdl {
            statement: settled_statement.clone(),
            needs_schema: unqualified,
            tables: tables.clone(),
        })
    };
    match &shape {
        Shape::Drop {
            tables: dropped,
            if_exists,
        } => {
            let kept: Vec<TableId> = dropped
                .iter()
                .filter_map(|named| target(&named.id))
                .collect();
            if kept.len() == dropped.len() && !dropped.iter().any(renamed) {
                return Ok(as_is());
            }
            let names: Vec<String> = kept.iter().map(qualified_name).collect();
            let sql = format!(
                "DROP TABLE {}{}",
                if *if_exists { "IF EXISTS " } else { "" },
                names.join(", ")
            );
            Ok(Some(written_by_ottr(statement, sql, tables)))
        }
        Shape::Rename {
            pairs: renames,
            if_exists,
        } => {
            // An unpaired side keeps its name; in the paired side's schema when it shares it.
            let kept: Vec<(TableId, TableId)> = renames
                .iter()
                .filter(|(from, to)| target(&from.id).is_some() || target(&to.id).is_some())
                .map(|(from, to)| {
                    let beside = |other: &Named, this: &Named| match target(&other.id) {
                        Some(other_target) if other.id.schema == this.id.schema => TableId {
                            schema: other_target.schema,
                            table: this.id.table.clone(),
                        },
                        _ => this.id.clone(),
                    };
                    (
                        target(&from.id).unwrap_or_else(|| beside(to, from)),
                        target(&to.id).unwrap_or_else(|| beside(from, to)),
                    )
                })
                .collect();
            let unchanged =
                kept.iter()
                    .zip(renames.iter())
                    .all(|((from, to), (source_from, source_to))| {
                        *from == source_from.id && *to == source_to.id
                    });
            if kept.len() == renames.len() && unchanged {
                return Ok(as_is());
            }
            let parts: Vec<String> = kept
                .iter()
                .map(|(from, to)| format!("{} TO {}", qualified_name(from), qualified_name(to)))
                .collect();
            let sql = format!(
                "RENAME TABLE {}{}",
                if *if_exists { "IF EXISTS " } else { "" },
                parts.join(", ")
            );
            Ok(Some(written_by_ottr(statement, sql, tables)))
        }
        Shape::One {
            table,
            renamed_to,
            exchanged,
        } => {
            // Rows that move between tables without row events (EXCHANGE, CONVERT): every
            // table involved must be paired, or the target cannot follow.
            if !exchanged.is_empty() {
                let moved = std::iter::once(table).chain(exchanged);
                if let Some(outside) = moved.clone().find(|named| target(&named.id).is_none()) {
                    return Err(refuse(format!(
                        "it moves rows between tables, and table {} is selected by no table pair",
                        outside.id
                    )));
                }
            }
            if !shape.names().into_iter().any(renamed) {
                return Ok(as_is());
            }
            let _ = renamed_to;
            let rewritten = rewrite(&lexed, &statement.schema, &target).map_err(refuse)?;
            // Every paired table must now be named by its target.
            let check = lex(&rewritten, quoting, utf8)
                .ok()
                .and_then(|lexed| shape_of(&lexed, &statement.schema));
            let expected: Vec<TableId> = shape
                .names()
                .iter()
                .map(|named| target(&named.id).unwrap_or_else(|| named.id.clone()))
                .collect();
            let found: Option<Vec<TableId>> = check
                .as_ref()
                .map(|shape| shape.names().iter().map(|named| named.id.clone()).collect());
            if found.as_ref() != Some(&expected) {
                return Err(refuse(
                    "its rewrite for the renamed table pairs does not name the targets".into(),
                ));
            }
            let text = encode_charset(&rewritten, &session.client_charset).map_err(refuse)?;
            let needs_schema = check
                .expect("checked above")
                .names()
                .iter()
                .any(|named| !named.qualified)
                || references_unqualified(&lexed.tokens);
            Ok(Some(TargetDdl {
                statement: Statement {
                    text,
                    ..statement.clone()
                },
                needs_schema,
                tables,
            }))
        }
    }
}

/// Whether a statement whose session could not be read names a paired table under any
/// quoting its session could have had (its bytes read as UTF-8 where they are not).
fn touches_paired(statement: &Statement, target: &dyn Fn(&TableId) -> Option<TableId>) -> bool {
    let text = String::from_utf8_lossy(&statement.text);
    [(false, true), (true, true), (false, false), (true, false)]
        .into_iter()
        .any(|(ansi_quotes, backslash_escapes)| {
            let quoting = Quoting {
                ansi_quotes,
                backslash_escapes,
            };
            let names = |text: &str| -> Option<Vec<TableId>> {
                let lexed = lex(text, quoting, true).ok()?;
                let shape = shape(&lexed.tokens, &statement.schema).ok()??;
                Some(shape.names().iter().map(|named| named.id.clone()).collect())
            };
            let mut readings = vec![names(&text)];
            for flavor in [
                crate::model::DataSourceKind::MySql,
                crate::model::DataSourceKind::MariaDb,
            ] {
                let reader = Reader {
                    flavor,
                    version: u32::MAX,
                };
                if let Ok(settled) = settle_comments(&text, quoting, reader) {
                    readings.push(names(&settled));
                }
            }
            readings.into_iter().any(|reading| match reading {
                // what cannot be read at all may be anything
                None => true,
                Some(tables) => tables.iter().any(|table| target(table).is_some()),
            })
        })
}

fn qualified_name(id: &TableId) -> String {
    format!("{}.{}", quote(&id.schema), quote(&id.table))
}

/// A statement ottr wrote from quoted names (UTF-8, no literals), run in the source
/// statement's session otherwise.
fn written_by_ottr(statement: &Statement, sql: String, tables: Vec<TableId>) -> TargetDdl {
    let mut session = (*statement.session).clone();
    session.client_charset = "utf8mb4".into();
    TargetDdl {
        statement: Statement {
            schema: statement.schema.clone(),
            text: sql.into_bytes(),
            session: Arc::new(session),
        },
        needs_schema: false,
        tables,
    }
}

/// `lexed` with every table name that `target` maps elsewhere replaced by the target's
/// quoted, qualified name; only those bytes change. The names are the relations of
/// sqlparser's AST (and RENAME TABLE's names).
fn rewrite(
    lexed: &Lexed,
    default_schema: &str,
    target: &dyn Fn(&TableId) -> Option<TableId>,
) -> Result<String, String> {
    let ast = lexed.parse()?;
    let mut names: Vec<ObjectName> = Vec::new();
    if let Ast::RenameTable(renames) = &ast {
        for rename in renames {
            names.push(rename.old_name.clone());
            names.push(rename.new_name.clone());
        }
    }
    let _ = sqlparser::ast::visit_relations(&ast, |name| {
        names.push(name.clone());
        ControlFlow::<()>::Continue(())
    });
    let mut replacements: Vec<(Range<usize>, String)> = Vec::new();
    for name in names {
        let idents: Vec<&sqlparser::ast::Ident> = name
            .0
            .iter()
            .filter_map(|part| match part {
                ObjectNamePart::Identifier(ident) => Some(ident),
                ObjectNamePart::Function(_) => None,
            })
            .collect();
        let source = match idents.as_slice() {
            [table] => TableId {
                schema: default_schema.to_owned(),
                table: table.value.clone(),
            },
            [schema, table] => TableId {
                schema: schema.value.clone(),
                table: table.value.clone(),
            },
            _ => continue,
        };
        let Some(to) = target(&source).filter(|to| *to != source) else {
            continue;
        };
        let span = Span::new(
            idents.first().expect("one or two").span.start,
            idents.last().expect("one or two").span.end,
        );
        let range = lexed
            .range_of(span)
            .ok_or_else(|| format!("the position of table {source} cannot be found"))?;
        // The bytes found must read as this very name, or the positions are wrong.
        let found = lex(&lexed.text[range.clone()], lexed.quoting, lexed.utf8)?;
        let parts: Vec<&str> = found
            .tokens
            .iter()
            .filter(|lexeme| lexeme.token != Token::Period)
            .filter_map(Lexeme::name)
            .collect();
        let expected: Vec<&str> = idents.iter().map(|ident| ident.value.as_str()).collect();
        if parts != expected || found.tokens.len() != expected.len() * 2 - 1 {
            return Err(format!(
                "the name of table {source} cannot be found exactly"
            ));
        }
        if !replacements.iter().any(|(existing, _)| *existing == range) {
            replacements.push((range, qualified_name(&to)));
        }
    }
    replacements.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(lexed.text.len() + 64);
    let mut at = 0;
    for (range, name) in replacements {
        if range.start < at {
            return Err("two table names overlap".into());
        }
        out.push_str(&lexed.text[at..range.start]);
        out.push_str(&name);
        at = range.end;
    }
    out.push_str(&lexed.text[at..]);
    Ok(out)
}

mod shape;

#[cfg(test)]
mod tests;
