//! A statement replayed from the binlog (DDL), as the source wrote it: its raw bytes and the
//! session state it was written in, taken from its QUERY event's status variables.
//!
//! Invariants: the bytes are never decoded lossily for anything but messages; the session
//! state is complete or the statement is refused (see `select::query`); sql_mode keeps the
//! source flavour's bits and is translated for the target by name, refusing what the target
//! cannot reproduce.

use std::fmt;
use std::sync::Arc;

/// The server kinds ottr reads from and writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DataSourceKind {
    MySql,
    MariaDb,
}

impl fmt::Display for DataSourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataSourceKind::MySql => "mysql",
            DataSourceKind::MariaDb => "mariadb",
        })
    }
}

/// A session's `sql_mode`, as the bits its server logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SqlMode {
    pub bits: u64,
    /// The source's flavour: bits from 32 up mean different modes on MariaDB and MySQL.
    pub flavor: DataSourceKind,
}

/// sql_mode names by bit, bits 0 to 31, as both servers number them (MySQL 8 removed some).
const COMMON_MODES: [&str; 32] = [
    "REAL_AS_FLOAT",
    "PIPES_AS_CONCAT",
    "ANSI_QUOTES",
    "IGNORE_SPACE",
    "IGNORE_BAD_TABLE_OPTIONS",
    "ONLY_FULL_GROUP_BY",
    "NO_UNSIGNED_SUBTRACTION",
    "NO_DIR_IN_CREATE",
    "POSTGRESQL",
    "ORACLE",
    "MSSQL",
    "DB2",
    "MAXDB",
    "NO_KEY_OPTIONS",
    "NO_TABLE_OPTIONS",
    "NO_FIELD_OPTIONS",
    "MYSQL323",
    "MYSQL40",
    "ANSI",
    "NO_AUTO_VALUE_ON_ZERO",
    "NO_BACKSLASH_ESCAPES",
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE",
    "ALLOW_INVALID_DATES",
    "ERROR_FOR_DIVISION_BY_ZERO",
    "TRADITIONAL",
    "NO_AUTO_CREATE_USER",
    "HIGH_NOT_PRECEDENCE",
    "NO_ENGINE_SUBSTITUTION",
    "PAD_CHAR_TO_FULL_LENGTH",
];
/// MariaDB's modes from bit 32 up.
const MARIADB_HIGH_MODES: [&str; 3] = [
    "EMPTY_STRING_IS_NULL",
    "SIMULTANEOUS_ASSIGNMENT",
    "TIME_ROUND_FRACTIONAL",
];
/// MySQL 8's mode at bit 32.
const TIME_TRUNCATE_FRACTIONAL: &str = "TIME_TRUNCATE_FRACTIONAL";
/// Modes MySQL 8 removed that change nothing a DDL creates (output options, user creation):
/// left out for a MySQL target, as a MySQL replica clears them.
const MYSQL_REMOVED: [&str; 7] = [
    "IGNORE_BAD_TABLE_OPTIONS",
    "NO_KEY_OPTIONS",
    "NO_TABLE_OPTIONS",
    "NO_FIELD_OPTIONS",
    "MYSQL323",
    "MYSQL40",
    "NO_AUTO_CREATE_USER",
];
/// MariaDB's compatibility modes, which change how a DDL reads or what it creates (ORACLE's
/// parser, MAXDB's TIMESTAMP as DATETIME): MySQL 8 has none of them.
const MYSQL_LACKS: [&str; 7] = [
    "EMPTY_STRING_IS_NULL",
    "SIMULTANEOUS_ASSIGNMENT",
    "POSTGRESQL",
    "ORACLE",
    "MSSQL",
    "DB2",
    "MAXDB",
];

const ANSI_QUOTES_BIT: u64 = 1 << 2;
const NO_BACKSLASH_ESCAPES_BIT: u64 = 1 << 20;

impl SqlMode {
    /// ANSI_QUOTES: `"` quotes names.
    pub fn ansi_quotes(&self) -> bool {
        self.bits & ANSI_QUOTES_BIT != 0
    }

    /// Not NO_BACKSLASH_ESCAPES: `\` escapes inside strings.
    pub fn backslash_escapes(&self) -> bool {
        self.bits & NO_BACKSLASH_ESCAPES_BIT == 0
    }

    /// The source's mode names; fails on a bit its flavour does not define.
    pub fn names(&self) -> Result<Vec<&'static str>, String> {
        let mut names = Vec::new();
        for bit in 0..64 {
            if self.bits & (1u64 << bit) == 0 {
                continue;
            }
            let name = match (self.flavor, bit) {
                (_, 0..=31) => COMMON_MODES[bit],
                (DataSourceKind::MariaDb, 32..=34) => MARIADB_HIGH_MODES[bit - 32],
                (DataSourceKind::MySql, 32) => TIME_TRUNCATE_FRACTIONAL,
                _ => {
                    return Err(format!(
                        "its sql_mode has bit {bit}, which {} does not define",
                        self.flavor
                    ));
                }
            };
            names.push(name);
        }
        Ok(names)
    }

    /// The names that give a `target` server session the same mode: MySQL's removed modes
    /// are left out for a MySQL target (as a MySQL replica does), and fractional-second
    /// rounding is carried over (MariaDB truncates unless TIME_ROUND_FRACTIONAL, MySQL rounds
    /// unless TIME_TRUNCATE_FRACTIONAL). A mode the target lacks and that changes what a
    /// statement means is refused by name.
    pub fn names_for(&self, target: DataSourceKind) -> Result<Vec<&'static str>, String> {
        let names = self.names()?;
        if target == self.flavor {
            return Ok(names);
        }
        let mut out = Vec::with_capacity(names.len() + 1);
        match target {
            DataSourceKind::MySql => {
                for name in &names {
                    match *name {
                        name if MYSQL_LACKS.contains(&name) => {
                            return Err(format!(
                                "its sql_mode has {name}, which a MySQL target does not have"
                            ));
                        }
                        "TIME_ROUND_FRACTIONAL" => {}
                        name if MYSQL_REMOVED.contains(&name) => {}
                        name => out.push(name),
                    }
                }
                if !names.contains(&"TIME_ROUND_FRACTIONAL") {
                    out.push(TIME_TRUNCATE_FRACTIONAL);
                }
            }
            DataSourceKind::MariaDb => {
                out.extend(
                    names
                        .iter()
                        .filter(|name| **name != TIME_TRUNCATE_FRACTIONAL),
                );
                if !names.contains(&TIME_TRUNCATE_FRACTIONAL) {
                    out.push("TIME_ROUND_FRACTIONAL");
                }
            }
        }
        Ok(out)
    }
}

/// The session state a statement was written in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// Why the state could not be read whole (an unknown status variable or collation); the
    /// other fields are then defaults, and the statement is refused if it must be replayed.
    pub problem: Option<String>,
    /// The source server's version, `major * 10000 + minor * 100 + patch` (which executable
    /// comments it ran).
    pub source_version: u32,
    pub sql_mode: SqlMode,
    /// `character_set_client`: the character set of the statement's bytes.
    pub client_charset: String,
    /// `collation_connection` and `collation_server`, by name.
    pub connection_collation: String,
    pub server_collation: String,
    /// `collation_database`, when the session's differed from its default database's.
    pub database_collation: Option<String>,
    /// MariaDB's `character_set_collations` (`charset=collation`), when the statement used
    /// it: which collation a character set without one means.
    pub character_set_collations: Vec<String>,
    /// `time_zone`, when the statement used it.
    pub time_zone: Option<String>,
    /// `foreign_key_checks` (a CREATE TABLE may reference a table created later).
    pub foreign_key_checks: bool,
    /// `unique_checks`.
    pub unique_checks: bool,
    /// `explicit_defaults_for_timestamp`, when the event says (MariaDB's flags, MySQL's
    /// own status variable on CREATE and ALTER).
    pub explicit_defaults_for_timestamp: Option<bool>,
    /// MariaDB's `sql_if_exists`: DDL behaves as if it said IF EXISTS.
    pub if_exists: bool,
    /// MySQL's `default_collation_for_utf8mb4`, when it is not MySQL 8's own default.
    pub default_collation_for_utf8mb4: Option<String>,
    /// MariaDB: the statement is part of a two-phase ALTER (binlog_alter_two_phase).
    pub two_phase_alter: bool,
}

impl Session {
    /// A plain MariaDB 10.11 session with `sql_mode` bits and `charset`, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests(sql_mode: u64, charset: &str) -> Session {
        Session {
            problem: None,
            sql_mode: SqlMode {
                bits: sql_mode,
                flavor: DataSourceKind::MariaDb,
            },
            client_charset: charset.into(),
            connection_collation: "utf8mb4_general_ci".into(),
            server_collation: "utf8mb4_general_ci".into(),
            ..Session::unreadable(String::new(), DataSourceKind::MariaDb, 101119)
        }
    }

    /// The state of a statement whose status variables could not be read whole: `problem`
    /// says why; the statement's quoting is not known.
    pub fn unreadable(problem: String, flavor: DataSourceKind, source_version: u32) -> Self {
        Session {
            problem: Some(problem),
            source_version,
            sql_mode: SqlMode { bits: 0, flavor },
            client_charset: String::new(),
            connection_collation: String::new(),
            server_collation: String::new(),
            database_collation: None,
            character_set_collations: Vec::new(),
            time_zone: None,
            foreign_key_checks: true,
            unique_checks: true,
            explicit_defaults_for_timestamp: None,
            if_exists: false,
            default_collation_for_utf8mb4: None,
            two_phase_alter: false,
        }
    }
}

/// A statement as the source logged it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Statement {
    /// The session's default database (may be empty).
    pub schema: String,
    /// The statement's bytes exactly as logged, in `session.client_charset`.
    pub text: Vec<u8>,
    pub session: Arc<Session>,
}

impl Statement {
    /// The statement as text for messages: decoded exactly where possible, lossily otherwise,
    /// and cut after `limit` characters.
    pub fn shown(&self, limit: usize) -> String {
        let text = decode_charset(&self.text, &self.session.client_charset)
            .unwrap_or_else(|_| String::from_utf8_lossy(&self.text).into_owned());
        let mut shown: String = text.chars().take(limit).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        shown
    }
}

/// The encoding of a character set (by the name `information_schema.COLLATIONS` gives it)
/// whose bytes encoding_rs reads exactly; None for the ones it does not know.
fn encoding(charset: &str) -> Option<&'static encoding_rs::Encoding> {
    use encoding_rs::*;
    Some(match charset {
        "utf8mb4" | "utf8mb3" | "utf8" => UTF_8,
        "latin1" => WINDOWS_1252,
        "latin2" => ISO_8859_2,
        "latin5" => WINDOWS_1254,
        "latin7" => ISO_8859_13,
        "cp1250" => WINDOWS_1250,
        "cp1251" => WINDOWS_1251,
        "cp1256" => WINDOWS_1256,
        "cp1257" => WINDOWS_1257,
        "greek" => ISO_8859_7,
        "hebrew" => ISO_8859_8,
        "koi8r" => KOI8_R,
        "koi8u" => KOI8_U,
        "cp866" => IBM866,
        "macroman" => MACINTOSH,
        "gbk" => GBK,
        "gb18030" => GB18030,
        "big5" => BIG5,
        "sjis" | "cp932" => SHIFT_JIS,
        "euckr" => EUC_KR,
        "ujis" | "eucjpms" => EUC_JP,
        _ => return None,
    })
}

/// `bytes`, written in `charset`, as text; refused unless the decoding is exact (it encodes
/// back to the same bytes). Bytes all below 0x80 read as ASCII in any character set a client
/// may use (a multi-byte character always has a byte from 0x80 up). A multi-byte character
/// set whose second bytes can be `\` or a backtick (GBK, SJIS, Big5, …) is never read byte by
/// byte.
pub fn decode_charset(bytes: &[u8], charset: &str) -> Result<String, String> {
    if bytes.is_ascii() {
        return Ok(String::from_utf8(bytes.to_vec()).expect("ASCII is UTF-8"));
    }
    let Some(encoding) = encoding(charset) else {
        return Err(format!(
            "it is written in the character set {charset}, which ottr cannot read exactly"
        ));
    };
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    if had_errors || encode_charset(&text, charset).as_deref() != Ok(bytes) {
        return Err(format!(
            "its bytes are not valid in its character set {charset}"
        ));
    }
    if let Some(lengths) = mysql_characters(bytes, charset) {
        // The server's characters must be encoding_rs's, one for one: where they split the
        // bytes otherwise, a `\` or a backtick would end up in another character.
        let characters = lengths.map_err(|at| {
            format!("its byte {at} does not start a character of {charset} as MySQL reads it")
        })?;
        let mut at = 0;
        for length in characters {
            let (one, errors) = encoding.decode_without_bom_handling(&bytes[at..at + length]);
            if errors || one.chars().count() != 1 {
                return Err(format!(
                    "its bytes at {at} are one character of {charset} to MySQL but not to ottr"
                ));
            }
            at += length;
        }
    }
    Ok(text.into_owned())
}

/// Bytes from the first to the second, inclusive.
type ByteRange = (u8, u8);

/// The byte lengths of the characters of `bytes` as MySQL reads the multi-byte character
/// sets whose second bytes may be ASCII (`\`, a backtick): Err(offset) at a byte that starts
/// no character; None for other character sets.
fn mysql_characters(bytes: &[u8], charset: &str) -> Option<Result<Vec<usize>, usize>> {
    let within = |byte: u8, ranges: &[ByteRange]| {
        ranges
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&byte))
    };
    let sjis = matches!(charset, "sjis" | "cp932");
    let (lead, trail): (&[ByteRange], &[ByteRange]) = match charset {
        "big5" => (&[(0xa1, 0xf9)], &[(0x40, 0x7e), (0xa1, 0xfe)]),
        "sjis" | "cp932" => (&[(0x81, 0x9f), (0xe0, 0xfc)], &[(0x40, 0x7e), (0x80, 0xfc)]),
        "gbk" | "gb18030" => (&[(0x81, 0xfe)], &[(0x40, 0x7e), (0x80, 0xfe)]),
        _ => return None,
    };
    let mut lengths = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        let length = if byte < 0x80 || (sjis && (0xa1..=0xdf).contains(&byte)) {
            1
        } else if !within(byte, lead) {
            return Some(Err(at));
        } else if charset == "gb18030" && bytes.get(at + 1).is_some_and(u8::is_ascii_digit) {
            match bytes.get(at..at + 4) {
                Some([_, _, third, fourth])
                    if within(*third, &[(0x81, 0xfe)]) && fourth.is_ascii_digit() =>
                {
                    4
                }
                _ => return Some(Err(at)),
            }
        } else if bytes.get(at + 1).is_some_and(|next| within(*next, trail)) {
            2
        } else {
            return Some(Err(at));
        };
        lengths.push(length);
        at += length;
    }
    Some(Ok(lengths))
}

/// `text` written in `charset`; refused when a character has no encoding there.
pub fn encode_charset(text: &str, charset: &str) -> Result<Vec<u8>, String> {
    if text.is_ascii() {
        return Ok(text.as_bytes().to_vec());
    }
    let encoding = encoding(charset)
        .ok_or_else(|| format!("ottr cannot write the character set {charset} exactly"))?;
    let (bytes, used, unmappable) = encoding.encode(text);
    if unmappable || used != encoding {
        return Err(format!(
            "`{}` cannot be written in the character set {charset}",
            text.chars().take(60).collect::<String>()
        ));
    }
    Ok(bytes.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(bits: u64, flavor: DataSourceKind) -> SqlMode {
        SqlMode { bits, flavor }
    }

    #[test]
    fn sql_mode_bits_are_named_per_flavour() {
        // MariaDB's default: STRICT_TRANS_TABLES, ERROR_FOR_DIVISION_BY_ZERO,
        // NO_AUTO_CREATE_USER, NO_ENGINE_SUBSTITUTION
        let maria = mode(
            (1 << 21) | (1 << 26) | (1 << 28) | (1 << 30),
            DataSourceKind::MariaDb,
        );
        assert_eq!(
            maria.names().unwrap(),
            vec![
                "STRICT_TRANS_TABLES",
                "ERROR_FOR_DIVISION_BY_ZERO",
                "NO_AUTO_CREATE_USER",
                "NO_ENGINE_SUBSTITUTION"
            ]
        );
        assert_eq!(
            maria.names_for(DataSourceKind::MySql).unwrap(),
            vec![
                "STRICT_TRANS_TABLES",
                "ERROR_FOR_DIVISION_BY_ZERO",
                "NO_ENGINE_SUBSTITUTION",
                "TIME_TRUNCATE_FRACTIONAL"
            ]
        );
        let empty_is_null = mode(1 << 32, DataSourceKind::MariaDb);
        assert_eq!(empty_is_null.names().unwrap(), vec!["EMPTY_STRING_IS_NULL"]);
        assert!(
            empty_is_null
                .names_for(DataSourceKind::MySql)
                .unwrap_err()
                .contains("EMPTY_STRING_IS_NULL")
        );
        let mysql = mode((1 << 32) | (1 << 20), DataSourceKind::MySql);
        assert_eq!(
            mysql.names().unwrap(),
            vec!["NO_BACKSLASH_ESCAPES", "TIME_TRUNCATE_FRACTIONAL"]
        );
        assert_eq!(
            mysql.names_for(DataSourceKind::MariaDb).unwrap(),
            vec!["NO_BACKSLASH_ESCAPES"]
        );
        assert_eq!(
            mode(0, DataSourceKind::MySql)
                .names_for(DataSourceKind::MariaDb)
                .unwrap(),
            vec!["TIME_ROUND_FRACTIONAL"]
        );
        assert!(
            mode(1 << 33, DataSourceKind::MySql)
                .names()
                .unwrap_err()
                .contains("bit 33")
        );
        assert!(!mysql.backslash_escapes());
        assert!(mode(4, DataSourceKind::MariaDb).ansi_quotes());
    }

    #[test]
    fn text_that_cannot_be_read_exactly_is_refused_by_charset() {
        assert!(
            decode_charset(b"caf\xe9", "utf8mb4")
                .unwrap_err()
                .contains("utf8mb4")
        );
        assert!(
            decode_charset(b"caf\xe9", "tis620")
                .unwrap_err()
                .contains("tis620")
        );
        assert_eq!(decode_charset(b"plain", "tis620").unwrap(), "plain");
        assert_eq!(decode_charset(b"caf\xe9", "latin1").unwrap(), "caf\u{e9}");
        assert!(
            encode_charset("\u{4e2d}", "latin1")
                .unwrap_err()
                .contains("latin1")
        );
        // Big5 as MySQL reads it has no lead byte 0xFA: its 0x5C is a backslash there
        assert!(decode_charset(b"\xfa\x5c", "big5").is_err());
        assert_eq!(
            decode_charset(b"\xa4\x5c", "big5").unwrap().chars().count(),
            1
        );
        assert!(decode_charset(b"\x81\x30\x81\x30", "gbk").is_err());
        // GBK: one character whose second byte is a backslash
        let text = decode_charset(b"\x95\x5c", "gbk").unwrap();
        assert_eq!(text.chars().count(), 1);
        assert_eq!(encode_charset(&text, "gbk").unwrap(), b"\x95\x5c");
    }

    #[test]
    fn a_statement_is_shown_decoded_and_cut() {
        let statement = Statement {
            schema: "d".into(),
            text: b"ALTER TABLE t COMMENT '\x95\x5c'".to_vec(),
            session: Arc::new(Session {
                connection_collation: "gbk_chinese_ci".into(),
                ..Session::for_tests(0, "gbk")
            }),
        };
        assert!(!statement.shown(100).contains('\u{fffd}'));
        assert_eq!(statement.shown(5), "ALTER…");
    }
}
