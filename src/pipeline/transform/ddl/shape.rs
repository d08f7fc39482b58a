//! The shape of a table DDL statement as its tokens say: which statement it is and which
//! tables it names (with the bytes of each name), read from the tokens the source server
//! read, never from a guess at the text.

use crate::model::TableId;
use crate::sql::lex::{Lexed, Lexeme};
use sqlparser::tokenizer::Token;
use std::ops::Range;

/// A table a statement names, and the bytes of its name in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Named {
    pub(super) id: TableId,
    pub(super) range: Range<usize>,
    pub(super) qualified: bool,
}

/// The table DDL a statement is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Shape {
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
    pub(super) fn names(&self) -> Vec<&Named> {
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

/// Whether the statement names a table without its schema after REFERENCES or LIKE (a
/// foreign key's parent, a CREATE TABLE … LIKE), which its default database then resolves.
pub(super) fn references_unqualified(tokens: &[Lexeme]) -> bool {
    tokens.iter().enumerate().any(|(index, lexeme)| {
        matches!(lexeme.keyword().as_deref(), Some("REFERENCES" | "LIKE"))
            && tokens
                .get(index + 1)
                .is_some_and(|next| next.name().is_some())
            && tokens.get(index + 2).map(|next| &next.token) != Some(&Token::Period)
    })
}

pub(super) fn shape_of(lexed: &Lexed, default_schema: &str) -> Option<Shape> {
    shape(&lexed.tokens, default_schema).ok().flatten()
}

/// Reads which table DDL `tokens` are: None when they are not table DDL, or are DDL on a
/// temporary table (never applied); an error when they start as table DDL whose tables cannot
/// be read, or a DROP, RENAME or TRUNCATE has more after its names than the grammar allows.
pub(super) fn shape(tokens: &[Lexeme], default_schema: &str) -> Result<Option<Shape>, String> {
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
pub(super) fn altered_names(
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
pub(super) fn qualified(
    tokens: &[Lexeme],
    index: usize,
    default_schema: &str,
) -> Option<(Named, usize)> {
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
