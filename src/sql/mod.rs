//! SQL text, both ways, in one place:
//! - building it out of names and bytes that came from a server or a configuration row:
//!   identifiers quoted by doubling their backticks, text as escaped string literals, bytes
//!   as hexadecimal literals; nothing here ever splices raw text into a statement;
//! - reading it: [`lex`] is ottr's one SQL tokenizer (sqlparser's, under the session's
//!   quoting), [`classify`] tells what a statement from the binlog is by its first words,
//!   and [`condition`] reads an operator's row condition as one expression.

pub mod classify;
pub mod condition;
pub mod lex;

/// `name` as a quoted identifier: backticks around it, every backtick in it doubled, so that
/// no name can end the quoting early.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `text` as a string literal for a session that reads backslash escapes (ottr's own
/// sessions do): quotes and backslashes doubled.
pub fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// `bytes` as a hexadecimal literal (`X'…'`, or `''` when empty): a binary string whatever
/// the session's character set, made only of hex digits.
pub fn hex_literal(bytes: &[u8]) -> String {
    use std::fmt::Write;
    if bytes.is_empty() {
        return "''".to_owned();
    }
    let mut text = String::with_capacity(bytes.len() * 2 + 3);
    text.push_str("X'");
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text.push('\'');
    text
}

/// The columns `columns` (quoted here) compared as one tuple with the values bound in order
/// `binds` (indexes into the tuple's values): `(a > ? OR (a = ? AND b > ?))` for `after`
/// (`>`), `(a < ? OR (a = ? AND b <= ?))` for through (`<=`). Written out because servers do
/// not all use an index for a row-value comparison.
pub fn key_compare(columns: &[String], after: bool) -> (String, Vec<usize>) {
    let (strict, last) = if after { (">", ">") } else { ("<", "<=") };
    let mut alternatives = Vec::with_capacity(columns.len());
    let mut binds = Vec::new();
    for (at, column) in columns.iter().enumerate() {
        let mut terms: Vec<String> = columns[..at]
            .iter()
            .map(|equal| format!("{} = ?", quote(equal)))
            .collect();
        binds.extend(0..at);
        let op = if at + 1 == columns.len() {
            last
        } else {
            strict
        };
        terms.push(format!("{} {op} ?", quote(column)));
        binds.push(at);
        alternatives.push(terms.join(" AND "));
    }
    let text = alternatives
        .iter()
        .map(|terms| format!("({terms})"))
        .collect::<Vec<_>>()
        .join(" OR ");
    (format!("({text})"), binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_compares_as_a_tuple_written_out() {
        let columns = ["a".to_owned(), "b`c".to_owned()];
        assert_eq!(
            key_compare(&columns, true),
            (
                "((`a` > ?) OR (`a` = ? AND `b``c` > ?))".to_owned(),
                vec![0, 0, 1]
            )
        );
        assert_eq!(
            key_compare(&columns[..1], false),
            ("((`a` <= ?))".to_owned(), vec![0])
        );
    }

    #[test]
    fn a_backtick_in_a_name_cannot_end_its_quoting() {
        assert_eq!(quote("plain"), "`plain`");
        assert_eq!(quote("a`b"), "`a``b`");
        assert_eq!(
            quote("x`; DROP DATABASE ottr; -- "),
            "`x``; DROP DATABASE ottr; -- `"
        );
        assert_eq!(quote("it's \\ \""), "`it's \\ \"`");
    }

    #[test]
    fn string_literals_double_their_quotes_and_backslashes() {
        assert_eq!(string_literal("tls_mode"), "'tls_mode'");
        assert_eq!(string_literal("a'b\\c"), "'a''b\\\\c'");
    }

    #[test]
    fn bytes_become_hex_digits_only() {
        assert_eq!(hex_literal(b""), "''");
        assert_eq!(hex_literal(b"a'\\`"), "X'61275c60'");
        assert_eq!(hex_literal(&[0x95, 0x5c]), "X'955c'");
    }
}
