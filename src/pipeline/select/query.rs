//! The session state a QUERY event was written in, read from its status variables: the
//! sql_mode, the character set of the statement's bytes and the collations, the time zone,
//! and the flags that change what a DDL does (foreign_key_checks, unique_checks,
//! explicit_defaults_for_timestamp).
//!
//! The status block is a list of (code, value) whose lengths only the code tells. Every
//! read is bounded by the block; a truncated value, or a code ottr does not know (after which
//! nothing can be read), refuses the session, naming the code: a statement is replayed only
//! under the whole state it was written in. MariaDB's and MySQL's own codes are both known.

use crate::model::{DataSourceKind, Session, SqlMode};
use std::collections::HashMap;

/// A source's collations by id: the character set's name and the collation's name.
pub type CollationNames = HashMap<u16, (String, String)>;

/// What the binlog's format description says about how the source logs sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLogging {
    pub flavor: DataSourceKind,
    /// `major * 10000 + minor * 100 + patch`.
    pub version: u32,
    /// MariaDB logs explicit_defaults_for_timestamp in the flags from 10.5.17, 10.6.9,
    /// 10.7.5, 10.8.4, 10.9.2 and 10.10 on; before that the bit means nothing.
    pub explicit_defaults_in_flags: bool,
}

impl Default for SourceLogging {
    fn default() -> Self {
        SourceLogging::new(DataSourceKind::MySql, (8, 0, 0))
    }
}

impl SourceLogging {
    /// From the source's flavour and the server version its format description gives.
    pub fn new(flavor: DataSourceKind, (major, minor, patch): (u8, u8, u8)) -> Self {
        let explicit_defaults_in_flags = flavor == DataSourceKind::MariaDb
            && match (major, minor) {
                (0..=9, _) => false,
                (10, 0..=4) => false,
                (10, 5) => patch >= 17,
                (10, 6) => patch >= 9,
                (10, 7) => patch >= 5,
                (10, 8) => patch >= 4,
                (10, 9) => patch >= 2,
                _ => true,
            };
        SourceLogging {
            flavor,
            version: u32::from(major) * 10_000 + u32::from(minor) * 100 + u32::from(patch),
            explicit_defaults_in_flags,
        }
    }
}

// Q_FLAGS2 bits (the low 32 bits of the session's option bits)
const NO_FOREIGN_KEY_CHECKS: u32 = 1 << 26;
const RELAXED_UNIQUE_CHECKS: u32 = 1 << 27;
const EXPLICIT_DEF_TIMESTAMP: u32 = 1 << 24;
/// MariaDB's `sql_if_exists` (the same bit means nothing to MySQL, which never logs it).
const IF_EXISTS: u32 = 1 << 28;
/// MySQL 8's default utf8mb4 collation (utf8mb4_0900_ai_ci).
const MYSQL_UTF8MB4_DEFAULT: u16 = 255;
/// MariaDB's Q_GTID_FLAGS3: a sequence number follows for these flags (commit or rollback
/// of a two-phase ALTER).
const COMMIT_OR_ROLLBACK_ALTER: u8 = 0x04 | 0x08;
/// MariaDB's Q_GTID_FLAGS3: the first phase of a two-phase ALTER.
const START_ALTER: u8 = 0x02;
/// MySQL writes at most this many names in Q_UPDATED_DB_NAMES (more: the count says 254).
const MAX_UPDATED_DB_NAMES: u8 = 16;
/// MariaDB's character_set_collations holds at most this many pairs.
const MAX_CHARSET_COLLATIONS: u8 = 8;

/// Reads a status block, bounded by it.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, code: u8) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| format!("status variable {code} is cut short"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn byte(&mut self, code: u8) -> Result<u8, String> {
        Ok(self.take(1, code)?[0])
    }

    fn u16(&mut self, code: u8) -> Result<u16, String> {
        let bytes = self.take(2, code)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    /// A string preceded by its one-byte length.
    fn short_string(&mut self, code: u8) -> Result<&'a [u8], String> {
        let length = self.byte(code)?;
        self.take(usize::from(length), code)
    }
}

/// The session state of a QUERY event's status block `status`.
pub fn read_session(
    status: &[u8],
    logging: SourceLogging,
    collations: &CollationNames,
) -> Result<Session, String> {
    let mut reader = Reader {
        bytes: status,
        at: 0,
    };
    let mut flags2 = None;
    let mut sql_mode = None;
    let mut charsets = None;
    let mut database_collation = None;
    let mut time_zone = None;
    let mut explicit_defaults = None;
    let mut charset_collations = Vec::new();
    let mut utf8mb4_default = None;
    let mut two_phase_alter = false;
    while reader.at < status.len() {
        let code = reader.byte(0)?;
        match code {
            // Q_FLAGS2_CODE
            0 => {
                let bytes = reader.take(4, code)?;
                flags2 = Some(u32::from_le_bytes(bytes.try_into().expect("4 bytes")));
            }
            // Q_SQL_MODE_CODE
            1 => {
                let bytes = reader.take(8, code)?;
                sql_mode = Some(u64::from_le_bytes(bytes.try_into().expect("8 bytes")));
            }
            // Q_CATALOG_CODE (MySQL 5.0.0-5.0.3): length, name, NUL
            2 => {
                reader.short_string(code)?;
                reader.take(1, code)?;
            }
            // Q_AUTO_INCREMENT: increment and offset
            3 => {
                reader.take(4, code)?;
            }
            // Q_CHARSET_CODE: character_set_client, collation_connection, collation_server
            4 => {
                charsets = Some((reader.u16(code)?, reader.u16(code)?, reader.u16(code)?));
            }
            // Q_TIME_ZONE_CODE
            5 => {
                let name = reader.short_string(code)?;
                time_zone = Some(
                    std::str::from_utf8(name)
                        .map_err(|_| "its time zone name is not UTF-8".to_owned())?
                        .to_owned(),
                );
            }
            // Q_CATALOG_NZ_CODE
            6 => {
                reader.short_string(code)?;
            }
            // Q_LC_TIME_NAMES_CODE
            7 => {
                reader.take(2, code)?;
            }
            // Q_CHARSET_DATABASE_CODE
            8 => {
                database_collation = Some(reader.u16(code)?).filter(|id| *id != 0);
            }
            // Q_TABLE_MAP_FOR_UPDATE_CODE
            9 => {
                reader.take(8, code)?;
            }
            // Q_MASTER_DATA_WRITTEN_CODE
            10 => {
                reader.take(4, code)?;
            }
            // Q_INVOKER: user, host
            11 => {
                reader.short_string(code)?;
                reader.short_string(code)?;
            }
            // MySQL: Q_UPDATED_DB_NAMES, a count then NUL-terminated names
            12 => {
                let count = reader.byte(code)?;
                if count == 0 {
                    return Err("status variable 12 lists no database".into());
                }
                if count <= MAX_UPDATED_DB_NAMES {
                    for _ in 0..count {
                        let rest = &status[reader.at..];
                        let length = rest
                            .iter()
                            .position(|byte| *byte == 0)
                            .ok_or_else(|| format!("status variable {code} is cut short"))?;
                        reader.take(length + 1, code)?;
                    }
                }
            }
            // MySQL: Q_MICROSECONDS
            13 => {
                reader.take(3, code)?;
            }
            // MySQL: Q_EXPLICIT_DEFAULTS_FOR_TIMESTAMP
            16 => {
                explicit_defaults = Some(reader.byte(code)? != 0);
            }
            // MySQL: Q_DDL_LOGGED_WITH_XID
            17 => {
                reader.take(8, code)?;
            }
            // MySQL: Q_DEFAULT_COLLATION_FOR_UTF8MB4
            18 => {
                utf8mb4_default = Some(reader.u16(code)?);
            }
            // MySQL: Q_SQL_REQUIRE_PRIMARY_KEY, Q_DEFAULT_TABLE_ENCRYPTION
            19 | 20 => {
                reader.take(1, code)?;
            }
            // MariaDB: Q_HRNOW
            128 => {
                reader.take(3, code)?;
            }
            // MariaDB: Q_XID
            129 => {
                reader.take(8, code)?;
            }
            // MariaDB: Q_GTID_FLAGS3, and a sequence number for some flags
            130 => {
                let flags = reader.byte(code)?;
                two_phase_alter = flags & (START_ALTER | COMMIT_OR_ROLLBACK_ALTER) != 0;
                if flags & COMMIT_OR_ROLLBACK_ALTER != 0 {
                    reader.take(8, code)?;
                }
            }
            // MariaDB: Q_CHARACTER_SET_COLLATIONS, pairs of (character set id, collation id)
            131 => {
                let count = reader.byte(code)?;
                if count > MAX_CHARSET_COLLATIONS {
                    return Err(format!(
                        "status variable 131 lists {count} collations, more than {MAX_CHARSET_COLLATIONS}"
                    ));
                }
                for _ in 0..count {
                    charset_collations.push((reader.u16(code)?, reader.u16(code)?));
                }
            }
            // MariaDB: Q_DUMMY, padding up to the end
            255 => break,
            other => {
                return Err(format!(
                    "its status variable {other} is unknown to ottr, so the session it was written in cannot be read whole"
                ));
            }
        }
    }
    let sql_mode = sql_mode.ok_or("it has no sql_mode")?;
    let (client, connection, server) = charsets.ok_or("it has no character set")?;
    let collation = |id: u16| {
        collations
            .get(&id)
            .ok_or_else(|| format!("its collation id {id} is unknown to its source"))
    };
    let flags2 = flags2.unwrap_or(0);
    if logging.explicit_defaults_in_flags {
        explicit_defaults = Some(flags2 & EXPLICIT_DEF_TIMESTAMP != 0);
    }
    let character_set_collations = charset_collations
        .iter()
        .map(|(charset, id)| Ok(format!("{}={}", collation(*charset)?.0, collation(*id)?.1)))
        .collect::<Result<Vec<String>, String>>()?;
    Ok(Session {
        problem: None,
        source_version: logging.version,
        if_exists: logging.flavor == DataSourceKind::MariaDb && flags2 & IF_EXISTS != 0,
        default_collation_for_utf8mb4: utf8mb4_default
            .filter(|id| *id != MYSQL_UTF8MB4_DEFAULT)
            .map(|id| collation(id).map(|names| names.1.clone()))
            .transpose()?,
        two_phase_alter,
        sql_mode: SqlMode {
            bits: sql_mode,
            flavor: logging.flavor,
        },
        client_charset: collation(client)?.0.clone(),
        connection_collation: collation(connection)?.1.clone(),
        server_collation: collation(server)?.1.clone(),
        database_collation: database_collation
            .map(|id| collation(id).map(|names| names.1.clone()))
            .transpose()?,
        character_set_collations,
        time_zone,
        foreign_key_checks: flags2 & NO_FOREIGN_KEY_CHECKS == 0,
        unique_checks: flags2 & RELAXED_UNIQUE_CHECKS == 0,
        explicit_defaults_for_timestamp: explicit_defaults,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn collations() -> CollationNames {
        [
            (8, ("latin1", "latin1_swedish_ci")),
            (28, ("gbk", "gbk_chinese_ci")),
            (33, ("utf8mb3", "utf8mb3_general_ci")),
            (45, ("utf8mb4", "utf8mb4_general_ci")),
            (46, ("utf8mb4", "utf8mb4_bin")),
        ]
        .into_iter()
        .map(|(id, (charset, collation))| (id, (charset.to_owned(), collation.to_owned())))
        .collect()
    }

    /// The status block MariaDB 10.11 writes for a DDL: flags2, sql_mode, catalog, charset,
    /// and optionally a time zone and a database collation.
    pub(crate) fn mariadb_status(flags2: u32, sql_mode: u64, charset: [u16; 3]) -> Vec<u8> {
        let mut status = vec![0];
        status.extend_from_slice(&flags2.to_le_bytes());
        status.push(1);
        status.extend_from_slice(&sql_mode.to_le_bytes());
        status.extend_from_slice(&[6, 3, b's', b't', b'd']);
        status.push(4);
        for id in charset {
            status.extend_from_slice(&id.to_le_bytes());
        }
        status
    }

    const MARIADB_10_11: SourceLogging = SourceLogging {
        flavor: DataSourceKind::MariaDb,
        version: 101119,
        explicit_defaults_in_flags: true,
    };

    #[test]
    fn a_mariadb_status_block_gives_the_whole_session() {
        let mut status = mariadb_status(
            NO_FOREIGN_KEY_CHECKS | EXPLICIT_DEF_TIMESTAMP,
            1 << 20,
            [28, 28, 45],
        );
        status.push(5);
        status.push(6);
        status.extend_from_slice(b"+02:00");
        status.extend_from_slice(&[8, 8, 0]);
        status.extend_from_slice(&[128, 1, 2, 3]);
        status.extend_from_slice(&[130, 0x04, 1, 2, 3, 4, 5, 6, 7, 8]);
        let session = read_session(&status, MARIADB_10_11, &collations()).unwrap();
        assert!(!session.sql_mode.backslash_escapes());
        assert_eq!(session.client_charset, "gbk");
        assert_eq!(session.connection_collation, "gbk_chinese_ci");
        assert_eq!(session.server_collation, "utf8mb4_general_ci");
        assert_eq!(
            session.database_collation.as_deref(),
            Some("latin1_swedish_ci")
        );
        assert_eq!(session.time_zone.as_deref(), Some("+02:00"));
        assert!(!session.foreign_key_checks);
        assert!(session.unique_checks);
        assert_eq!(session.explicit_defaults_for_timestamp, Some(true));
        let older = SourceLogging::new(DataSourceKind::MariaDb, (10, 6, 8));
        let session = read_session(&status, older, &collations()).unwrap();
        assert_eq!(session.explicit_defaults_for_timestamp, None);
    }

    #[test]
    fn mysql_codes_and_mariadb_collation_maps_are_read() {
        let mut status = mariadb_status(0, 0, [45, 46, 45]);
        // MySQL: updated db names (two), microseconds, explicit defaults, xid, utf8mb4
        // default collation, sql_require_primary_key
        status.extend_from_slice(&[12, 2, b'a', 0, b'b', b'c', 0]);
        status.extend_from_slice(&[13, 1, 2, 3, 16, 1]);
        status.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0, 0, 18, 255, 0, 19, 1]);
        let mysql = SourceLogging::new(DataSourceKind::MySql, (8, 0, 36));
        let session = read_session(&status, mysql, &collations()).unwrap();
        assert_eq!(session.explicit_defaults_for_timestamp, Some(true));
        let mut status = mariadb_status(0, 0, [45, 46, 45]);
        status.extend_from_slice(&[131, 1, 45, 0, 46, 0]);
        let session = read_session(&status, MARIADB_10_11, &collations()).unwrap();
        assert_eq!(
            session.character_set_collations,
            vec!["utf8mb4=utf8mb4_bin"]
        );
    }

    #[test]
    fn a_block_that_cannot_be_read_whole_is_refused_by_code() {
        let whole = mariadb_status(0, 0, [45, 45, 45]);
        for cut in 1..whole.len() {
            if let Ok(session) = read_session(&whole[..cut], MARIADB_10_11, &collations()) {
                panic!("a block cut at {cut} gave {session:?}");
            }
        }
        let mut unknown = whole.clone();
        unknown.extend_from_slice(&[77, 1, 2]);
        let error = read_session(&unknown, MARIADB_10_11, &collations()).unwrap_err();
        assert!(error.contains("status variable 77"), "{error}");
        let mut bad_collation = mariadb_status(0, 0, [45, 999, 45]);
        bad_collation.push(255);
        let error = read_session(&bad_collation, MARIADB_10_11, &collations()).unwrap_err();
        assert!(error.contains("999"), "{error}");
        let mut too_many = whole;
        too_many.extend_from_slice(&[131, 9]);
        assert!(read_session(&too_many, MARIADB_10_11, &collations()).is_err());
    }
}
