//! What a statement from the binlog is to Select, told by its first words as
//! [`super::lex`] reads them (comments and whitespace skipped, names unquoted).

use super::lex::{keyword, leading, name};
use sqlparser::tokenizer::Token;

/// What a QUERY event's statement is to Select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `BEGIN`, `XA START`.
    Begin,
    /// `COMMIT`, `XA COMMIT`, `XA PREPARE` (which ends what the server logged).
    Commit,
    Rollback,
    XaRollback,
    /// MariaDB's replacement for an event an older replica could not read.
    Dummy,
    /// Anything else: DDL, SAVEPOINT, ROLLBACK TO, XA END, …
    Statement,
}

/// The first `count` keywords of `text` (None for a token that is not an unquoted word).
fn keywords(text: &[u8], count: usize) -> Vec<Option<String>> {
    leading(text, count).iter().map(keyword).collect()
}

/// Classifies a QUERY event's statement (bytes in the session's character set: the words
/// that matter are ASCII in every character set a client may use).
pub fn classify_query(sql: &[u8]) -> QueryKind {
    // What servers log around every transaction of a ROW-format binlog, told without
    // tokenizing (this runs once per source transaction).
    match sql {
        b"BEGIN" => return QueryKind::Begin,
        b"COMMIT" => return QueryKind::Commit,
        _ => {}
    }
    if sql.starts_with(b"# Dummy event") {
        return QueryKind::Dummy;
    }
    let words = keywords(sql, 2);
    let word = |index: usize| words.get(index).cloned().flatten();
    match (word(0).as_deref(), word(1).as_deref()) {
        (Some("BEGIN"), _) | (Some("XA"), Some("START" | "BEGIN")) => QueryKind::Begin,
        (Some("COMMIT"), _) | (Some("XA"), Some("COMMIT" | "PREPARE")) => QueryKind::Commit,
        (Some("XA"), Some("ROLLBACK")) => QueryKind::XaRollback,
        (Some("ROLLBACK"), second) if second != Some("TO") && !rolls_back_to(sql) => {
            QueryKind::Rollback
        }
        _ => QueryKind::Statement,
    }
}

/// `ROLLBACK [WORK] TO …`.
fn rolls_back_to(text: &[u8]) -> bool {
    let words = keywords(text, 3);
    matches!(
        words.as_slice(),
        [Some(first), Some(second), Some(third)]
            if first == "ROLLBACK" && second == "WORK" && third == "TO"
    )
}

/// What a statement inside a transaction means to Select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InnerStatement {
    Savepoint(String),
    RollbackTo(String),
    /// RELEASE SAVEPOINT, XA END: nothing to hand on.
    Nothing,
    /// Table DDL logged inside a transaction (CREATE TABLE … SELECT): handed on in order.
    Ddl,
    /// Anything else: statement-based DML, which cannot be applied row by row.
    Unknown,
}

/// The name a savepoint token holds: a word, or a `"…"` string, which is how a session with
/// ANSI_QUOTES logs names (elsewhere `"…"` cannot name a savepoint, so reading it as a name
/// is never wrong).
fn savepoint_name(token: &Token) -> Option<&str> {
    match token {
        Token::DoubleQuotedString(text) => Some(text),
        other => name(other),
    }
}

/// Classifies a statement logged inside a BEGIN … COMMIT transaction (bytes in the
/// session's character set).
pub fn classify_inner(sql: &[u8]) -> InnerStatement {
    let tokens = leading(sql, 5);
    let words: Vec<Option<String>> = tokens.iter().map(keyword).collect();
    let word = |index: usize| words.get(index).cloned().flatten();
    let name_at = |index: usize| {
        tokens
            .get(index)
            .and_then(savepoint_name)
            .unwrap_or_default()
            .to_owned()
    };
    match (word(0).as_deref(), word(1).as_deref()) {
        (Some("SAVEPOINT"), _) => InnerStatement::Savepoint(name_at(1)),
        (Some("ROLLBACK"), Some("TO" | "WORK")) => {
            // ROLLBACK [WORK] TO [SAVEPOINT] name
            let mut at = if word(1).as_deref() == Some("WORK") {
                2
            } else {
                1
            };
            if word(at).as_deref() != Some("TO") {
                return InnerStatement::Unknown;
            }
            at += 1;
            if word(at).as_deref() == Some("SAVEPOINT") && tokens.len() > at + 1 {
                at += 1;
            }
            InnerStatement::RollbackTo(name_at(at))
        }
        (Some("RELEASE"), _) | (Some("XA"), Some("END")) => InnerStatement::Nothing,
        (Some("CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE"), _) => InnerStatement::Ddl,
        _ => InnerStatement::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_boundaries_are_told_by_their_first_words() {
        for (sql, kind) in [
            ("BEGIN", QueryKind::Begin),
            ("  begin work", QueryKind::Begin),
            ("/* app */ BEGIN", QueryKind::Begin),
            ("XA START X'01',X'',1", QueryKind::Begin),
            ("COMMIT", QueryKind::Commit),
            ("XA PREPARE X'01'", QueryKind::Commit),
            ("XA COMMIT X'01'", QueryKind::Commit),
            ("XA ROLLBACK X'01'", QueryKind::XaRollback),
            ("ROLLBACK", QueryKind::Rollback),
            ("ROLLBACK TO s1", QueryKind::Statement),
            ("ROLLBACK WORK TO SAVEPOINT s1", QueryKind::Statement),
            ("BEGINNING", QueryKind::Statement),
            ("CREATE TABLE t (id INT)", QueryKind::Statement),
            ("# Dummy event replacing event type 160", QueryKind::Dummy),
            ("", QueryKind::Statement),
        ] {
            assert_eq!(classify_query(sql.as_bytes()), kind, "{sql}");
        }
    }

    #[test]
    fn statements_inside_a_transaction_name_their_savepoints_unquoted() {
        for (sql, kind) in [
            (
                "SAVEPOINT `my point`",
                InnerStatement::Savepoint("my point".into()),
            ),
            ("SAVEPOINT s1", InnerStatement::Savepoint("s1".into())),
            // as a session with ANSI_QUOTES logs them
            ("SAVEPOINT \"a\"", InnerStatement::Savepoint("a".into())),
            ("ROLLBACK TO \"a\"", InnerStatement::RollbackTo("a".into())),
            ("ROLLBACK TO s1", InnerStatement::RollbackTo("s1".into())),
            (
                "ROLLBACK TO SAVEPOINT `s``1`",
                InnerStatement::RollbackTo("s`1".into()),
            ),
            (
                "ROLLBACK WORK TO SAVEPOINT s1",
                InnerStatement::RollbackTo("s1".into()),
            ),
            ("RELEASE SAVEPOINT s1", InnerStatement::Nothing),
            ("XA END X'01'", InnerStatement::Nothing),
            (
                "CREATE TABLE t2 SELECT * FROM t1 WHERE note = 'it''s",
                InnerStatement::Ddl,
            ),
            ("INSERT INTO t VALUES (1)", InnerStatement::Unknown),
        ] {
            assert_eq!(classify_inner(sql.as_bytes()), kind, "{sql}");
        }
    }

    #[test]
    fn a_statement_of_any_size_is_told_from_its_first_bytes_only() {
        let mut huge = b"INSERT INTO t VALUES ('".to_vec();
        huge.resize(64 << 20, b'x');
        let ((inner, query), largest) = crate::test_alloc::largest_allocation(|| {
            (classify_inner(&huge), classify_query(&huge))
        });
        assert_eq!(inner, InnerStatement::Unknown);
        assert_eq!(query, QueryKind::Statement);
        assert!(largest < 1 << 20, "{largest} bytes allocated at once");
    }
}
