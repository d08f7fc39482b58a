//! The text of a statement replayed from the binlog: decoded exactly from the character set
//! the source session wrote it in, split into tokens the way the source server read it, and
//! encoded back.
//!
//! Invariants:
//! - decoding is exact or refused: bytes that do not decode, or whose decoding does not
//!   encode back to the same bytes, are an error naming the character set; a multi-byte
//!   character set whose second bytes can be `\` or a backtick (GBK, SJIS, Big5, …) is never
//!   read byte by byte;
//! - tokens follow the session's `sql_mode`: `"…"` is a name under ANSI_QUOTES and a string
//!   otherwise, and `\` escapes inside strings unless NO_BACKSLASH_ESCAPES;
//! - executable comments (`/*!…*/`, MariaDB's `/*M!…*/`) are first settled as the source read
//!   them, by its flavour and version ([`settle_comments`]): replaced by the text they hold when
//!   the source ran it, or by a space when it did not; a comment whose version cannot be read
//!   as the source did is refused. The settled text is what a target runs, so that a server of
//!   another flavour or version cannot read the comments otherwise;
//! - what the server and sqlparser could read apart is refused: a character sqlparser does
//!   not know (control characters, which a server may take for spaces), `--` followed by a
//!   character other than ASCII, an unquoted non-ASCII name in a single-byte character set;
//! - every token carries the byte range of its text, so that a rewrite replaces exactly
//!   those bytes and nothing else.

use crate::model::DataSourceKind;
use sqlparser::ast::Statement as Ast;
use sqlparser::dialect::{Dialect, MySqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer, Whitespace};
use std::ops::Range;

/// How the source session read quotes and backslashes (from its `sql_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoting {
    /// ANSI_QUOTES: `"` quotes a name, not a string.
    pub ansi_quotes: bool,
    /// Not NO_BACKSLASH_ESCAPES: `\` escapes the next character inside strings.
    pub backslash_escapes: bool,
}

/// MySQL's dialect with the session's quoting: everything else is MySQL's, and the parser
/// takes it for MySQL (its `dialect()` is MySQL's).
#[derive(Debug)]
struct SessionDialect {
    mysql: MySqlDialect,
    quoting: Quoting,
}

impl Dialect for SessionDialect {
    fn dialect(&self) -> std::any::TypeId {
        self.mysql.dialect()
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.mysql.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.mysql.is_identifier_part(ch)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || (self.quoting.ansi_quotes && ch == '"')
    }
    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.mysql.identifier_quote_style(identifier)
    }
    fn supports_string_literal_backslash_escape(&self) -> bool {
        self.quoting.backslash_escapes
    }
    fn supports_string_literal_concatenation(&self) -> bool {
        self.mysql.supports_string_literal_concatenation()
    }
    fn ignores_wildcard_escapes(&self) -> bool {
        self.mysql.ignores_wildcard_escapes()
    }
    fn supports_numeric_prefix(&self) -> bool {
        self.mysql.supports_numeric_prefix()
    }
    fn supports_bitwise_shift_operators(&self) -> bool {
        self.mysql.supports_bitwise_shift_operators()
    }
    /// Off: executable comments are expanded here, with exact byte ranges.
    fn supports_multiline_comment_hints(&self) -> bool {
        false
    }
    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &sqlparser::ast::Expr,
        precedence: u8,
    ) -> Option<Result<sqlparser::ast::Expr, ParserError>> {
        self.mysql.parse_infix(parser, expr, precedence)
    }
    fn parse_statement(&self, parser: &mut Parser) -> Option<Result<Ast, ParserError>> {
        self.mysql.parse_statement(parser)
    }
    fn require_interval_qualifier(&self) -> bool {
        self.mysql.require_interval_qualifier()
    }
    fn supports_limit_comma(&self) -> bool {
        self.mysql.supports_limit_comma()
    }
    fn supports_create_table_select(&self) -> bool {
        self.mysql.supports_create_table_select()
    }
    fn supports_insert_set(&self) -> bool {
        self.mysql.supports_insert_set()
    }
    fn supports_user_host_grantee(&self) -> bool {
        self.mysql.supports_user_host_grantee()
    }
    fn is_table_factor_alias(&self, explicit: bool, kw: &Keyword, parser: &mut Parser) -> bool {
        self.mysql.is_table_factor_alias(explicit, kw, parser)
    }
    fn supports_table_hints(&self) -> bool {
        self.mysql.supports_table_hints()
    }
    fn requires_single_line_comment_whitespace(&self) -> bool {
        self.mysql.requires_single_line_comment_whitespace()
    }
    fn supports_match_against(&self) -> bool {
        self.mysql.supports_match_against()
    }
    fn supports_select_modifiers(&self) -> bool {
        self.mysql.supports_select_modifiers()
    }
    fn supports_set_names(&self) -> bool {
        self.mysql.supports_set_names()
    }
    fn supports_comma_separated_set_assignments(&self) -> bool {
        self.mysql.supports_comma_separated_set_assignments()
    }
    fn supports_update_order_by(&self) -> bool {
        self.mysql.supports_update_order_by()
    }
    fn supports_data_type_signed_suffix(&self) -> bool {
        self.mysql.supports_data_type_signed_suffix()
    }
    fn supports_cross_join_constraint(&self) -> bool {
        self.mysql.supports_cross_join_constraint()
    }
    fn supports_double_ampersand_operator(&self) -> bool {
        self.mysql.supports_double_ampersand_operator()
    }
    fn supports_binary_kw_as_cast(&self) -> bool {
        self.mysql.supports_binary_kw_as_cast()
    }
    fn supports_comment_optimizer_hint(&self) -> bool {
        self.mysql.supports_comment_optimizer_hint()
    }
    fn supports_constraint_keyword_without_name(&self) -> bool {
        self.mysql.supports_constraint_keyword_without_name()
    }
    fn supports_key_column_option(&self) -> bool {
        self.mysql.supports_key_column_option()
    }
    fn supports_group_by_with_modifier(&self) -> bool {
        self.mysql.supports_group_by_with_modifier()
    }
    fn supports_left_associative_joins_without_parens(&self) -> bool {
        self.mysql.supports_left_associative_joins_without_parens()
    }
}

/// A token and the bytes of the text it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Lexeme {
    pub token: Token,
    pub range: Range<usize>,
}

impl Lexeme {
    /// The upper-case keyword this token is, if it is an unquoted word.
    pub fn keyword(&self) -> Option<String> {
        keyword(&self.token)
    }

    /// The name this token is: a quoted name, or an unquoted word.
    pub fn name(&self) -> Option<&str> {
        name(&self.token)
    }
}

/// The upper-case keyword `token` is, if it is an unquoted word.
pub fn keyword(token: &Token) -> Option<String> {
    match token {
        Token::Word(word) if word.quote_style.is_none() => Some(word.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// The name `token` is: a quoted name, or an unquoted word.
pub fn name(token: &Token) -> Option<&str> {
    match token {
        Token::Word(word) => Some(&word.value),
        _ => None,
    }
}

/// How much of a statement [`leading`] reads: its first words are well within it, and a
/// statement of any size costs no more than this.
pub const LEADING_BYTES: usize = 4096;

/// The first `count` tokens of `text` that mean something (whitespace and comments left
/// out), read with MySQL's default quoting from its first [`LEADING_BYTES`] bytes (lossily
/// decoded: the words that matter are ASCII in every character set a client may use): as
/// many as there are before text no server would read, so that a statement is told by its
/// first words whatever follows them.
pub fn leading(text: &[u8], count: usize) -> Vec<Token> {
    let text = String::from_utf8_lossy(&text[..text.len().min(LEADING_BYTES)]);
    let dialect = SessionDialect {
        mysql: MySqlDialect {},
        quoting: Quoting {
            ansi_quotes: false,
            backslash_escapes: true,
        },
    };
    let mut tokens = Vec::new();
    // On an error, what was read before it is in `tokens`.
    let _ = Tokenizer::new(&dialect, &text).tokenize_with_location_into_buf(&mut tokens);
    tokens
        .into_iter()
        .map(|token| token.token)
        .filter(|token| !matches!(token, Token::Whitespace(_) | Token::EOF))
        .take(count)
        .collect()
}

/// A statement read as its server read it.
#[derive(Debug)]
pub struct Lexed {
    pub text: String,
    pub quoting: Quoting,
    /// Whether the text came from a UTF-8 character set.
    pub utf8: bool,
    /// Every token, whitespace and comments included, with the spans the parser takes.
    spanned: Vec<TokenWithSpan>,
    /// The tokens that mean something (no whitespace, no comments), with byte ranges.
    pub tokens: Vec<Lexeme>,
}

/// Every token of `text` under `quoting`, with its span; fails on text no server could read
/// (an unterminated string or name).
fn tokenize(text: &str, quoting: Quoting) -> Result<Vec<TokenWithSpan>, String> {
    let dialect = SessionDialect {
        mysql: MySqlDialect {},
        quoting,
    };
    Tokenizer::new(&dialect, text)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|error| format!("it cannot be read ({error})"))
}

/// Reads `text` (settled, see [`settle_comments`]) into tokens under `quoting`; fails on
/// text its server could not have read (an unterminated string or name), and on text that
/// the server and sqlparser could read apart. `utf8` says whether the text came from a UTF-8
/// character set (elsewhere, an unquoted non-ASCII name is refused).
pub fn lex(text: &str, quoting: Quoting, utf8: bool) -> Result<Lexed, String> {
    let spanned = tokenize(text, quoting)?;
    let lines = line_starts(text);
    let mut tokens = Vec::new();
    for token in &spanned {
        match &token.token {
            Token::EOF => continue,
            Token::Whitespace(Whitespace::SingleLineComment { comment, prefix })
                if prefix == "--" && comment.chars().next().is_some_and(|c| !c.is_ascii()) =>
            {
                return Err(
                    "it has `--` followed by a character other than ASCII, which servers and ottr may read apart"
                        .into(),
                );
            }
            Token::Whitespace(_) => continue,
            Token::Char(c) if !c.is_ascii_graphic() => {
                return Err(format!(
                    "it holds the character {c:?}, which servers and ottr may read apart"
                ));
            }
            Token::Word(word) if !utf8 && word.quote_style.is_none() && !word.value.is_ascii() => {
                return Err(format!(
                    "the unquoted name {} holds characters other than ASCII in a single-byte character set, which servers and ottr may read apart: quote it",
                    word.value
                ));
            }
            _ => {}
        }
        let range = byte_range(text, &lines, token.span)
            .ok_or_else(|| format!("the position of `{}` cannot be found", token.token))?;
        tokens.push(Lexeme {
            token: token.token.clone(),
            range,
        });
    }
    Ok(Lexed {
        text: text.to_owned(),
        quoting,
        utf8,
        spanned,
        tokens,
    })
}

/// Who read a statement's executable comments: the source's flavour and version
/// (`major * 10000 + minor * 100 + patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    pub flavor: DataSourceKind,
    pub version: u32,
}

/// `text` with each executable comment settled as the source read it: `/*!NNNNN …*/` (and on
/// MariaDB `/*M!NNNNNN …*/`) replaced by the text it holds when the source's version reaches
/// NNNNN (or it has none), by a space otherwise; on MySQL `/*M!…*/` is a plain comment. A
/// version of another length than the source's lexer takes, or a comment inside one, is
/// refused. Unchanged (borrowed) when there is none.
pub fn settle_comments<'t>(
    text: &'t str,
    quoting: Quoting,
    reader: Reader,
) -> Result<std::borrow::Cow<'t, str>, String> {
    if !text.contains("/*!") && !text.contains("/*M!") {
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    let spanned = tokenize(text, quoting)?;
    let lines = line_starts(text);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for token in &spanned {
        let Token::Whitespace(Whitespace::MultiLineComment(comment)) = &token.token else {
            continue;
        };
        let marker = if comment.starts_with('!') {
            1
        } else if comment.starts_with("M!") {
            2
        } else {
            continue;
        };
        let range = byte_range(text, &lines, token.span)
            .ok_or("the position of a comment cannot be found")?;
        let digits = comment[marker..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let held = &comment[marker + digits..];
        if held.contains("/*") {
            return Err("it has a comment inside an executable comment".into());
        }
        let lengths: &[usize] = match reader.flavor {
            DataSourceKind::MySql => &[0, 5],
            DataSourceKind::MariaDb => &[0, 5, 6],
        };
        let runs = if marker == 2 && reader.flavor == DataSourceKind::MySql {
            false
        } else if !lengths.contains(&digits) {
            return Err(format!(
                "its executable comment `/*{}` has a version of {digits} digits, which {} reads otherwise",
                &comment[..marker + digits],
                reader.flavor
            ));
        } else {
            digits == 0
                || comment[marker..marker + digits]
                    .parse::<u32>()
                    .is_ok_and(|version| version <= reader.version)
        };
        out.push_str(&text[at..range.start]);
        out.push(' ');
        if runs {
            out.push_str(held);
            out.push(' ');
        }
        at = range.end;
    }
    out.push_str(&text[at..]);
    Ok(std::borrow::Cow::Owned(out))
}

/// The byte offset where each line of `text` starts.
fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(at, _)| at + 1))
        .collect()
}

/// The byte offset of a location (line and column count from 1; columns count characters).
fn byte_at(text: &str, lines: &[usize], location: Location) -> Option<usize> {
    let line = usize::try_from(location.line).ok()?.checked_sub(1)?;
    let column = usize::try_from(location.column).ok()?.checked_sub(1)?;
    let start = *lines.get(line)?;
    let rest = &text[start..];
    if column == 0 {
        return Some(start);
    }
    match rest.char_indices().nth(column) {
        Some((offset, _)) => Some(start + offset),
        None if rest.chars().count() == column => Some(text.len()),
        None => None,
    }
}

fn byte_range(text: &str, lines: &[usize], span: Span) -> Option<Range<usize>> {
    let start = byte_at(text, lines, span.start)?;
    let end = byte_at(text, lines, span.end)?;
    (start <= end).then_some(start..end)
}

impl Lexed {
    /// The one statement of this text, parsed (sqlparser's MySQL grammar under the session's
    /// quoting); fails when it cannot be parsed or holds more than one statement.
    pub fn parse(&self) -> Result<Ast, String> {
        let dialect = SessionDialect {
            mysql: MySqlDialect {},
            quoting: self.quoting,
        };
        let mut statements = Parser::new(&dialect)
            .with_tokens_with_locations(self.spanned.clone())
            .parse_statements()
            .map_err(|error| format!("it cannot be parsed ({error})"))?;
        match statements.len() {
            1 => Ok(statements.remove(0)),
            count => Err(format!("it holds {count} statements, not one")),
        }
    }

    /// The bytes of `span` (a parsed name's) in this text.
    pub fn range_of(&self, span: Span) -> Option<Range<usize>> {
        byte_range(&self.text, &line_starts(&self.text), span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MYSQL: Quoting = Quoting {
        ansi_quotes: false,
        backslash_escapes: true,
    };
    const NO_BACKSLASH: Quoting = Quoting {
        ansi_quotes: false,
        backslash_escapes: false,
    };
    const ANSI: Quoting = Quoting {
        ansi_quotes: true,
        backslash_escapes: true,
    };

    fn shown(lexed: &Lexed) -> Vec<String> {
        lexed
            .tokens
            .iter()
            .map(|lexeme| lexed.text[lexeme.range.clone()].to_owned())
            .collect()
    }

    #[test]
    fn a_backslash_ends_a_string_only_without_backslash_escapes() {
        let probe = "ALTER TABLE d.t COMMENT 'a\\', ADD COLUMN c INT COMMENT '; CREATE DATABASE pwned; -- '";
        let strict = lex(probe, NO_BACKSLASH, true).unwrap();
        assert_eq!(
            shown(&strict),
            vec![
                "ALTER",
                "TABLE",
                "d",
                ".",
                "t",
                "COMMENT",
                "'a\\'",
                ",",
                "ADD",
                "COLUMN",
                "c",
                "INT",
                "COMMENT",
                "'; CREATE DATABASE pwned; -- '"
            ]
        );
        // read with backslash escapes, the same bytes are another statement
        let escaped = lex(probe, MYSQL, true).unwrap();
        assert!(shown(&escaped).contains(&"CREATE".to_owned()));
    }

    #[test]
    fn double_quotes_name_under_ansi_quotes() {
        let lexed = lex("ALTER TABLE \"a\"\"b\" ADD c INT", ANSI, true).unwrap();
        assert_eq!(lexed.tokens[2].name(), Some("a\"b"));
        assert_eq!(shown(&lexed)[2], "\"a\"\"b\"");
        let lexed = lex("ALTER TABLE t COMMENT \"x\"", MYSQL, true).unwrap();
        assert!(matches!(
            lexed.tokens[4].token,
            Token::DoubleQuotedString(_)
        ));
    }

    #[test]
    fn executable_comments_are_settled_as_the_source_read_them() {
        let maria = Reader {
            flavor: DataSourceKind::MariaDb,
            version: 101119,
        };
        let mysql = Reader {
            flavor: DataSourceKind::MySql,
            version: 80036,
        };
        let text = "DROP TABLE a /*!50100 , b */ /*M!100500 , `c` */ /*!110400 , d */ /* , e */";
        assert_eq!(
            settle_comments(text, MYSQL, maria).unwrap(),
            "DROP TABLE a   , b     , `c`     /* , e */"
        );
        // MySQL reads /*M! as a comment
        let text = "DROP TABLE a /*!50100 , b */ /*M!100500 , `c` */ /* , e */";
        assert_eq!(
            settle_comments(text, MYSQL, mysql).unwrap(),
            "DROP TABLE a   , b     /* , e */"
        );
        // a version of a length the source's lexer does not take is refused
        for odd in ["DROP TABLE a /*!1p*/", "RENAME TABLE u /*!500 TO p */"] {
            assert!(
                settle_comments(odd, MYSQL, maria)
                    .unwrap_err()
                    .contains("digits"),
                "{odd}"
            );
        }
        assert!(settle_comments("DROP TABLE a /*!100500 , b */", MYSQL, mysql).is_err());
        // a comment inside a string is no comment
        let quoted = "ALTER TABLE t COMMENT '/*!50100 x */'";
        assert_eq!(settle_comments(quoted, MYSQL, maria).unwrap(), quoted);
    }

    #[test]
    fn what_servers_and_sqlparser_may_read_apart_is_refused() {
        assert!(lex("DROP TABLE u --\x01\n, p", MYSQL, true).is_err());
        assert!(lex("DROP TABLE u --\u{3000}\n, p", MYSQL, true).is_err());
        assert!(lex("ALTER TABLE\u{1}t ADD c INT", MYSQL, true).is_err());
        assert!(
            lex("ALTER TABLE caf\u{e9} ADD c INT", MYSQL, false)
                .unwrap_err()
                .contains("quote it")
        );
        assert!(lex("ALTER TABLE `caf\u{e9}` ADD c INT", MYSQL, false).is_ok());
        assert!(lex("ALTER TABLE caf\u{e9} ADD c INT", MYSQL, true).is_ok());
    }

    #[test]
    fn ranges_are_bytes_of_multibyte_text_over_lines() {
        let text = "ALTER TABLE `中文`\n  ADD `列` INT COMMENT '注释'";
        let lexed = lex(text, MYSQL, true).unwrap();
        assert_eq!(
            shown(&lexed),
            vec![
                "ALTER", "TABLE", "`中文`", "ADD", "`列`", "INT", "COMMENT", "'注释'"
            ]
        );
    }

    #[test]
    fn gbk_with_a_backslash_second_byte_is_read_whole() {
        // 0x95 0x5c is one GBK character whose second byte is `\`
        let bytes = b"ALTER TABLE t COMMENT '\x95\x5c', ADD c INT COMMENT '; DROP DATABASE x; -- '";
        let text = crate::model::decode_charset(bytes, "gbk").unwrap();
        let lexed = lex(&text, MYSQL, true).unwrap();
        assert_eq!(lexed.tokens.len(), 11, "{:?}", shown(&lexed));
        assert!(!shown(&lexed).contains(&"DROP".to_owned()));
        assert!(lex("ALTER TABLE t COMMENT 'open", MYSQL, true).is_err());
    }

    #[test]
    fn one_statement_parses_and_two_are_refused() {
        let lexed = lex("ALTER TABLE t ADD COLUMN c INT", MYSQL, true).unwrap();
        assert!(lexed.parse().is_ok());
        let two = lex("ALTER TABLE t ADD COLUMN c INT; DROP TABLE u", MYSQL, true).unwrap();
        assert!(two.parse().unwrap_err().contains("2 statements"));
    }
}
