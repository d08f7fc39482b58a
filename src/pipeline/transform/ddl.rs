//! Which DDL statements reach the target, and as what: decided from the statement's tokens
//! as its source server read them (see [`super::text`]).
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
use sqlparser::ast::{ObjectName, ObjectNamePart, Statement as Ast};
use sqlparser::tokenizer::{Span, Token};
use std::ops::{ControlFlow, Range};
use std::sync::Arc;

/// A table a statement names, and the bytes of its name in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    id: TableId,
    range: Range<usize>,
    qualified: bool,
}

/// The table DDL a statement is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// CREATE / ALTER / TRUNCATE TABLE, CREATE / DROP INDEX: its table; for ALTER TABLE, the
    /// name it renames the table to and the tables it exchanges partitions with.
    One {
        table: Named,
        renamed_to: Option<Named>,
        exchanged: Vec<Named>,
    },
    Drop {
        tables: Vec<Named>,
        if_exists: bool,
    },
    Rename {
        pairs: Vec<(Named, Named)>,
        if_exists: bool,
    },
}

impl Shape {
    fn names(&self) -> Vec<&Named> {
        match self {
            Shape::One {
                table,
                renamed_to,
                exchanged,
            } => std::iter::once(table)
                .chain(renamed_to)
                .chain(exchanged)
                .collect(),
            Shape::Drop { tables, .. } => tables.iter().collect(),
            Shape::Rename { pairs, .. } => pairs.iter().flat_map(|(a, b)| [a, b]).collect(),
        }
    }
}

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

/// Whether the statement names a table without its schema after REFERENCES or LIKE (a
/// foreign key's parent, a CREATE TABLE … LIKE), which its default database then resolves.
fn references_unqualified(tokens: &[Lexeme]) -> bool {
    tokens.iter().enumerate().any(|(index, lexeme)| {
        matches!(lexeme.keyword().as_deref(), Some("REFERENCES" | "LIKE"))
            && tokens
                .get(index + 1)
                .is_some_and(|next| next.name().is_some())
            && tokens.get(index + 2).map(|next| &next.token) != Some(&Token::Period)
    })
}

fn shape_of(lexed: &Lexed, default_schema: &str) -> Option<Shape> {
    shape(&lexed.tokens, default_schema).ok().flatten()
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

/// Reads which table DDL `tokens` are: None when they are not table DDL, or are DDL on a
/// temporary table (never applied); an error when they start as table DDL whose tables cannot
/// be read, or a DROP, RENAME or TRUNCATE has more after its names than the grammar allows.
fn shape(tokens: &[Lexeme], default_schema: &str) -> Result<Option<Shape>, String> {
    // MariaDB: SET STATEMENT var = value [, …] FOR statement
    if tokens.first().and_then(Lexeme::keyword).as_deref() == Some("SET") {
        if tokens.get(1).and_then(Lexeme::keyword).as_deref() != Some("STATEMENT") {
            return Ok(None);
        }
        let mut depth = 0usize;
        for (index, lexeme) in tokens.iter().enumerate() {
            match &lexeme.token {
                Token::LParen => depth += 1,
                Token::RParen => depth = depth.saturating_sub(1),
                _ if depth == 0 && lexeme.keyword().as_deref() == Some("FOR") => {
                    return shape(&tokens[index + 1..], default_schema);
                }
                _ => {}
            }
        }
        return Err("SET STATEMENT without FOR".into());
    }
    let word = |index: usize| {
        tokens
            .get(index)
            .and_then(Lexeme::keyword)
            .unwrap_or_default()
    };
    let mut index = 1;
    while matches!(
        word(index).as_str(),
        "OR" | "REPLACE" | "ONLINE" | "OFFLINE" | "IGNORE" | "UNIQUE" | "FULLTEXT" | "SPATIAL"
    ) {
        index += 1;
    }
    // A temporary table lives in its session: never applied (on a pooled load connection it
    // would hide the real table from the batches that run there next).
    if word(index) == "TEMPORARY" && matches!(word(index + 1).as_str(), "TABLE" | "TABLES") {
        return Ok(None);
    }
    let name_at = |index: usize| -> Result<(Named, usize), String> {
        qualified(tokens, index, default_schema).ok_or_else(|| {
            let near = tokens
                .get(index)
                .map_or("the end".to_owned(), |lexeme| format!("`{}`", lexeme.token));
            format!("a table name was expected at {near}")
        })
    };
    let skip_if_exists = |mut index: usize| -> (usize, bool) {
        let mut if_exists = false;
        while matches!(word(index).as_str(), "IF" | "NOT" | "EXISTS") {
            if_exists = true;
            index += 1;
        }
        (index, if_exists)
    };
    // MariaDB's lock wait options after a name: WAIT n, NOWAIT
    let skip_wait = |index: usize| -> usize {
        match word(index).as_str() {
            "NOWAIT" => index + 1,
            "WAIT"
                if matches!(
                    tokens.get(index + 1).map(|l| &l.token),
                    Some(Token::Number(..))
                ) =>
            {
                index + 2
            }
            _ => index,
        }
    };
    // Nothing but these may follow the names of a DROP, RENAME or TRUNCATE.
    let ends_at = |index: usize, allowed: &[&str]| -> Result<(), String> {
        let mut index = skip_wait(index);
        while allowed.contains(&word(index).as_str()) {
            index += 1;
        }
        match tokens.get(index) {
            None => Ok(()),
            Some(Lexeme {
                token: Token::SemiColon,
                ..
            }) if index + 1 == tokens.len() => Ok(()),
            Some(lexeme) => Err(format!(
                "it goes on after its table names (`{}`), which ottr cannot read",
                lexeme.token
            )),
        }
    };
    let first = word(0);
    let verb = word(index);
    let shape = match (first.as_str(), verb.as_str()) {
        ("DROP", "TABLE" | "TABLES") => {
            let (mut index, if_exists) = skip_if_exists(index + 1);
            let mut tables = Vec::new();
            loop {
                let (named, next) = name_at(index)?;
                tables.push(named);
                if tokens.get(next).map(|lexeme| &lexeme.token) == Some(&Token::Comma) {
                    index = next + 1;
                    continue;
                }
                ends_at(next, &["RESTRICT", "CASCADE"])?;
                break;
            }
            Shape::Drop { tables, if_exists }
        }
        ("CREATE" | "ALTER", "TABLE") => {
            let (index, _) = skip_if_exists(index + 1);
            let (table, next) = name_at(index)?;
            let (renamed_to, exchanged) = if first == "ALTER" {
                altered_names(tokens, skip_wait(next), default_schema)?
            } else {
                (None, Vec::new())
            };
            Shape::One {
                table,
                renamed_to,
                exchanged,
            }
        }
        ("TRUNCATE", _) => {
            let index = if verb == "TABLE" { index + 1 } else { index };
            let (table, next) = name_at(index)?;
            ends_at(next, &[])?;
            Shape::One {
                table,
                renamed_to: None,
                exchanged: Vec::new(),
            }
        }
        ("RENAME", "TABLE" | "TABLES") => {
            let (mut index, if_exists) = skip_if_exists(index + 1);
            let mut pairs = Vec::new();
            loop {
                let (from, next) = name_at(index)?;
                let next = skip_wait(next);
                if word(next) != "TO" {
                    return Err("RENAME TABLE without TO".into());
                }
                let (to, next) = name_at(next + 1)?;
                pairs.push((from, to));
                if tokens.get(next).map(|lexeme| &lexeme.token) == Some(&Token::Comma) {
                    index = next + 1;
                    continue;
                }
                ends_at(next, &[])?;
                break;
            }
            Shape::Rename { pairs, if_exists }
        }
        ("CREATE" | "DROP", "INDEX") => {
            let on = (index..tokens.len())
                .find(|at| word(*at) == "ON")
                .ok_or("an INDEX statement without ON")?;
            Shape::One {
                table: name_at(on + 1)?.0,
                renamed_to: None,
                exchanged: Vec::new(),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(shape))
}

/// The names an ALTER TABLE's clauses (from `index`) give besides its table: the one it is
/// renamed to (`RENAME [TO | AS] name`, not RENAME COLUMN/INDEX/KEY), and those it moves rows
/// to or from (`EXCHANGE PARTITION p WITH TABLE name`, MariaDB's `CONVERT PARTITION p TO TABLE
/// name` and `CONVERT TABLE name TO PARTITION p`), wherever they stand.
fn altered_names(
    tokens: &[Lexeme],
    index: usize,
    default_schema: &str,
) -> Result<(Option<Named>, Vec<Named>), String> {
    let word = |index: usize| {
        tokens
            .get(index)
            .and_then(Lexeme::keyword)
            .unwrap_or_default()
    };
    let mut renamed_to = None;
    let mut exchanged = Vec::new();
    let mut depth = 0usize;
    let mut at = index;
    let table_after = |at: usize, what: &str| -> Result<Named, String> {
        qualified(tokens, at, default_schema)
            .map(|(named, _)| named)
            .ok_or_else(|| format!("{what} names no table"))
    };
    while at < tokens.len() {
        match &tokens[at].token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > 0 {
            at += 1;
            continue;
        }
        // clauses begin at the top level, after the table name (and its lock wait) or a comma
        let clause_start = at == index || tokens[at - 1].token == Token::Comma;
        if clause_start
            && word(at) == "RENAME"
            && !matches!(
                word(at + 1).as_str(),
                "COLUMN" | "INDEX" | "KEY" | "CONSTRAINT"
            )
        {
            let name = if matches!(word(at + 1).as_str(), "TO" | "AS") {
                at + 2
            } else {
                at + 1
            };
            renamed_to = Some(table_after(name, "ALTER TABLE … RENAME")?);
        }
        if word(at) == "EXCHANGE" && word(at + 1) == "PARTITION" {
            let with = (at..tokens.len())
                .find(|index| word(*index) == "WITH" && word(index + 1) == "TABLE")
                .ok_or("EXCHANGE PARTITION without WITH TABLE")?;
            exchanged.push(table_after(with + 2, "EXCHANGE PARTITION")?);
        }
        if word(at) == "CONVERT" && word(at + 1) == "PARTITION" {
            let to = (at..tokens.len())
                .find(|index| word(*index) == "TO" && word(index + 1) == "TABLE")
                .ok_or("CONVERT PARTITION without TO TABLE")?;
            exchanged.push(table_after(to + 2, "CONVERT PARTITION")?);
        }
        if word(at) == "CONVERT" && word(at + 1) == "TABLE" {
            exchanged.push(table_after(at + 2, "CONVERT TABLE")?);
        }
        at += 1;
    }
    Ok((renamed_to, exchanged))
}

/// A possibly schema-qualified name at `index`, and the index after it.
fn qualified(tokens: &[Lexeme], index: usize, default_schema: &str) -> Option<(Named, usize)> {
    let first = tokens.get(index)?;
    let first_name = first.name()?;
    if tokens.get(index + 1).map(|lexeme| &lexeme.token) == Some(&Token::Period) {
        let second = tokens.get(index + 2)?;
        Some((
            Named {
                id: TableId {
                    schema: first_name.to_owned(),
                    table: second.name()?.to_owned(),
                },
                range: first.range.start..second.range.end,
                qualified: true,
            },
            index + 3,
        ))
    } else {
        Some((
            Named {
                id: TableId {
                    schema: default_schema.to_owned(),
                    table: first_name.to_owned(),
                },
                range: first.range.clone(),
                qualified: false,
            },
            index + 1,
        ))
    }
}

#[cfg(test)]
mod tests;
