//! The target table of a copy, made from the source's `SHOW CREATE TABLE`: the same column
//! definitions, keys and table options, under the pair's target name, with the columns the
//! pair leaves out dropped (and every key or check that names them), renamed columns renamed,
//! foreign keys left out (the tables they reference may not be copied). Only names are
//! replaced, found by ottr's tokenizer; the text must be one statement.

use crate::pipeline::transform::TargetTable;
use crate::sql::lex::{Lexeme, Quoting, lex};
use crate::sql::quote;
use sqlparser::tokenizer::Token;
use std::collections::HashMap;

/// How `SHOW CREATE TABLE` writes: backticks, backslash escapes (ottr's sessions).
const SHOWN: Quoting = Quoting {
    ansi_quotes: false,
    backslash_escapes: true,
};

/// `CREATE TABLE IF NOT EXISTS` for `target` from the source's `shown` statement; `sources`
/// is the source column index of each target column, `source_columns` the source's names.
pub fn target_create(
    shown: &str,
    target: &TargetTable,
    source_columns: &[String],
    sources: &[usize],
) -> Result<String, String> {
    let lexed = lex(shown, SHOWN, true)?;
    let tokens = &lexed.tokens;
    if tokens.iter().any(|lexeme| lexeme.token == Token::SemiColon) {
        return Err("SHOW CREATE TABLE gave more than one statement".into());
    }
    let keywords: Vec<Option<String>> = tokens.iter().take(2).map(Lexeme::keyword).collect();
    let open = tokens
        .iter()
        .position(|lexeme| lexeme.token == Token::LParen);
    let (Some(open), [Some(create), Some(table)]) = (open, keywords.as_slice()) else {
        return Err("SHOW CREATE TABLE gave no column list".into());
    };
    if create != "CREATE" || table != "TABLE" {
        return Err("SHOW CREATE TABLE gave something other than CREATE TABLE".into());
    }
    // source name → target name, for the columns that travel; the rest are dropped
    let renamed: HashMap<&str, &str> = sources
        .iter()
        .zip(&target.columns)
        .map(|(source, target)| (source_columns[*source].as_str(), target.as_str()))
        .collect();
    let dropped: Vec<&str> = source_columns
        .iter()
        .map(String::as_str)
        .filter(|name| !renamed.contains_key(name))
        .collect();
    let mut items: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut start = open + 1;
    let mut close = None;
    for (at, lexeme) in tokens.iter().enumerate().skip(open) {
        match lexeme.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    items.extend(item(shown, &tokens[start..at], &renamed, &dropped));
                    close = Some(at);
                    break;
                }
            }
            Token::Comma if depth == 1 => {
                items.extend(item(shown, &tokens[start..at], &renamed, &dropped));
                start = at + 1;
            }
            _ => {}
        }
    }
    let close = close.ok_or("SHOW CREATE TABLE gave an unclosed column list")?;
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (\n  {}\n){}",
        quote(&target.schema),
        quote(&target.table),
        items.join(",\n  "),
        &shown[tokens[close].range.end..]
    ))
}

/// One column or key definition with its column names replaced; None when it is dropped.
fn item(
    shown: &str,
    tokens: &[Lexeme],
    renamed: &HashMap<&str, &str>,
    dropped: &[&str],
) -> Option<String> {
    let first = tokens.first()?;
    let quoted = |lexeme: &Lexeme| match &lexeme.token {
        Token::Word(word) if word.quote_style.is_some() => Some(word.value.clone()),
        _ => None,
    };
    if tokens
        .iter()
        .any(|lexeme| lexeme.keyword().as_deref() == Some("FOREIGN"))
    {
        return None;
    }
    if tokens
        .iter()
        .filter_map(quoted)
        .any(|name| dropped.contains(&name.as_str()))
    {
        return None;
    }
    let mut text = String::new();
    let mut at = first.range.start;
    for lexeme in tokens {
        if let Some(name) = quoted(lexeme)
            && let Some(target) = renamed.get(name.as_str())
        {
            text.push_str(&shown[at..lexeme.range.start]);
            text.push_str(&quote(target));
            at = lexeme.range.end;
        }
    }
    text.push_str(&shown[at..tokens.last()?.range.end]);
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWN_TABLE: &str = "CREATE TABLE `orders` (\n  `id` bigint(20) NOT NULL,\n  `secret` varchar(10) DEFAULT 'a,b)',\n  `note` text DEFAULT NULL,\n  `customer` int(11) NOT NULL,\n  PRIMARY KEY (`id`),\n  KEY `by_secret` (`secret`,`note`),\n  KEY `note` (`note`(10)),\n  CONSTRAINT `fk` FOREIGN KEY (`customer`) REFERENCES `customers` (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

    fn target(columns: &[&str]) -> TargetTable {
        TargetTable {
            schema: "copy`db".into(),
            table: "orders_copy".into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            key: vec![0],
            conflict: None,
            source: None,
        }
    }

    #[test]
    fn renamed_and_left_out_columns_and_foreign_keys_are_handled_by_name() {
        let source: Vec<String> = ["id", "secret", "note", "customer"]
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let made = target_create(
            SHOWN_TABLE,
            &target(&["id", "remark", "customer"]),
            &source,
            &[0, 2, 3],
        )
        .unwrap();
        assert_eq!(
            made,
            "CREATE TABLE IF NOT EXISTS `copy``db`.`orders_copy` (\n  `id` bigint(20) NOT NULL,\n  `remark` text DEFAULT NULL,\n  `customer` int(11) NOT NULL,\n  PRIMARY KEY (`id`),\n  KEY `remark` (`remark`(10))\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
        assert!(
            target_create(
                "CREATE TABLE `t` (`a` int); DROP TABLE x",
                &target(&["a"]),
                &["a".into()],
                &[0]
            )
            .is_err()
        );
        assert!(
            target_create(
                "CREATE VIEW `t` AS SELECT (1)",
                &target(&["a"]),
                &["a".into()],
                &[0]
            )
            .is_err()
        );
    }
}
