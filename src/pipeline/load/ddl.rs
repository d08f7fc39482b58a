//! DDL on the target: a barrier between rows, recorded in `ottr_sys.ddl` as applying before
//! and applied after, and run exactly as the source ran it.
//!
//! Invariants:
//! - the statement runs under the source session's state (sql_mode translated for the
//!   target's flavour, character sets and collations, time zone, foreign_key_checks,
//!   unique_checks, explicit_defaults_for_timestamp), in its default database;
//! - its bytes reach the server only as a hexadecimal literal and run through PREPARE, which
//!   takes exactly one statement: nothing in them can end the statement early or add another,
//!   and no client library reads or rewrites them;
//! - the connection that ran it is closed afterwards, so no other work inherits its session;
//! - on a replay of a statement left applying, "already done" errors count as success.

use super::{Loader, position_at};
use crate::error::{Error, Result};
use crate::model::{ChangeAt, DataSourceKind};
use crate::pipeline::transform::{SkippedDdl, TargetDdl};
use crate::sql::{hex_literal, quote};
use crate::sys::ddl::{DDL_APPLIED, DDL_APPLYING, DDL_FAILED, DDL_STATE};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

/// MySQL errors that mean a replayed DDL was already done.
const ALREADY_DONE: [u16; 10] = [
    1050, // table exists
    1051, // unknown table
    1054, // unknown column (a DROP COLUMN done)
    1060, // duplicate column
    1061, // duplicate key name
    1068, // multiple primary keys
    1091, // cannot drop: does not exist
    1146, // table does not exist
    1517, // duplicate partition name
    1826, // duplicate foreign key constraint name
];
/// The server knows no such database.
const UNKNOWN_DATABASE: u16 = 1049;
const EXPLICIT_DEFAULTS: &str = "SELECT @@session.explicit_defaults_for_timestamp";
/// The statement's bytes, held as a binary string, then prepared: one statement only.
const HOLD: &str = "SET @ottr_ddl = ";
const PREPARE: &str = "PREPARE ottr_ddl FROM @ottr_ddl";
const EXECUTE: &str = "EXECUTE ottr_ddl";

/// The `SET SESSION` assignments (name, value) that give a target session the state `ddl` was
/// written in; fails naming what the target cannot reproduce.
fn session_assignments(
    ddl: &TargetDdl,
    target: DataSourceKind,
    explicit_defaults_now: Option<bool>,
) -> std::result::Result<Vec<(&'static str, Value)>, String> {
    let session = &ddl.statement.session;
    let modes = session.sql_mode.names_for(target)?;
    let mut assignments = vec![
        ("sql_mode", Value::from(modes.join(","))),
        (
            "character_set_client",
            Value::from(session.client_charset.as_str()),
        ),
        (
            "collation_connection",
            Value::from(session.connection_collation.as_str()),
        ),
        (
            "collation_server",
            Value::from(session.server_collation.as_str()),
        ),
        (
            "foreign_key_checks",
            Value::from(session.foreign_key_checks),
        ),
        ("unique_checks", Value::from(session.unique_checks)),
    ];
    if let Some(collation) = &session.database_collation {
        assignments.push(("collation_database", Value::from(collation.as_str())));
    }
    if let Some(zone) = &session.time_zone {
        assignments.push(("time_zone", Value::from(zone.as_str())));
    }
    if !session.character_set_collations.is_empty() {
        if target != DataSourceKind::MariaDb {
            return Err(
                "it was written under MariaDB's character_set_collations, which a MySQL target does not have"
                    .into(),
            );
        }
        assignments.push((
            "character_set_collations",
            Value::from(session.character_set_collations.join(",")),
        ));
    }
    if session.if_exists {
        if target != DataSourceKind::MariaDb {
            return Err(
                "it was written under MariaDB's sql_if_exists, which a MySQL target does not have"
                    .into(),
            );
        }
        assignments.push(("sql_if_exists", Value::from(true)));
    }
    if let Some(collation) = &session.default_collation_for_utf8mb4 {
        if target != DataSourceKind::MySql {
            return Err(format!(
                "it was written with MySQL's default_collation_for_utf8mb4 = {collation}, which a MariaDB target does not have"
            ));
        }
        assignments.push((
            "default_collation_for_utf8mb4",
            Value::from(collation.as_str()),
        ));
    }
    // Set only when it differs: on MySQL setting it needs a privilege.
    if let Some(explicit) = session.explicit_defaults_for_timestamp
        && explicit_defaults_now != Some(explicit)
    {
        assignments.push(("explicit_defaults_for_timestamp", Value::from(explicit)));
    }
    Ok(assignments)
}

impl Loader {
    /// A DDL statement as a barrier, recorded before and after.
    pub(super) async fn apply_ddl(&mut self, ddl: &TargetDdl, at: &ChangeAt) -> Result<()> {
        let options = self.options.clone();
        let key = (
            options.pipeline_key.clone(),
            at.transaction.file.clone(),
            at.transaction.offset,
        );
        let shown = ddl.statement.shown(200);
        let mut conn = self.conn().await?;
        let state: Option<String> = conn
            .exec_first(DDL_STATE, key.clone())
            .await
            .map_err(self.fail("read the DDL record"))?;
        if state.as_deref() == Some("applied") {
            self.tables.clear();
            return Ok(());
        }
        // Marked, and committed just before the DDL on this connection: the DDL is
        // recognised as this pipeline's in the target's binlog (see `select::echo`).
        let mut transaction = self.serial_transaction(&mut conn).await?;
        transaction
            .exec_drop(
                DDL_APPLYING,
                (&key.0, &key.1, key.2, ddl.statement.shown(usize::MAX)),
            )
            .await
            .map_err(self.fail("record the DDL"))?;
        let behind = self.behind(&position_at(at));
        self.move_applied(&mut transaction, &behind, &position_at(at))
            .await?;
        transaction.commit().await.map_err(self.fail("commit"))?;
        for partition in behind {
            self.applied[partition] = Some(position_at(at));
        }
        // Left applying by an earlier attempt that did not come back: it may be done.
        let replay = state.as_deref() == Some("applying");
        let outcome = self.run_ddl(&mut conn, ddl).await;
        // The connection carries the statement's session now: it serves nothing else.
        let _ = conn.disconnect().await;
        match outcome {
            Ok(()) => {}
            Err(Failure::Server(code, _)) if replay && ALREADY_DONE.contains(&code) => {}
            Err(failure) if options.skip_ddl_errors => {
                tracing::warn!(pipeline = %options.pipeline, error = %failure, statement = %shown, "DDL failed and is skipped (skip_ddl_errors)");
                self.skipped_ddl.push(SkippedDdl {
                    at: at.clone(),
                    statement: shown.clone(),
                    reason: failure.to_string(),
                });
            }
            Err(failure) => {
                // Refused by the server: not left at applying, so that a retry does not take
                // this failure for "already done". A lost connection leaves it applying: the
                // statement may have run, and its thread id must still mark it as this
                // pipeline's in the target's binlog (two-way).
                if !matches!(failure, Failure::Driver(_))
                    && let Ok(mut conn) = self.conn().await
                {
                    let _ = conn.exec_drop(DDL_FAILED, key.clone()).await;
                }
                // Two-way: the other side changed the same objects meanwhile.
                let two_way = if options.reverse_key.is_some() {
                    " (concurrent conflicting DDL: the target side of this two-way channel \
                     changed the same objects meanwhile; the pipeline stops here rather than \
                     loop. Make both schemas what they should be by hand, then let this \
                     statement pass with set_pipeline_option(pipeline, 'skip_ddl_errors', 'on') \
                     and 'off' once it has)"
                } else {
                    ""
                };
                let context = format!(
                    "pipeline {}: DDL `{shown}` failed on the target{two_way}",
                    options.pipeline
                );
                return Err(match failure {
                    Failure::Driver(error) | Failure::Server(_, error) => {
                        Error::database(context, error)
                    }
                    Failure::Session(problem) => Error::Transform(format!("{context}: {problem}")),
                });
            }
        }
        let mut conn = self.conn().await?;
        conn.exec_drop(DDL_APPLIED, key.clone())
            .await
            .map_err(self.fail("record the DDL as applied"))?;
        // Its tables may have changed: look their columns up again.
        self.tables.clear();
        Ok(())
    }

    /// Runs `ddl` on `conn` under its session, in its default database.
    async fn run_ddl(&self, conn: &mut Conn, ddl: &TargetDdl) -> std::result::Result<(), Failure> {
        let schema = &ddl.statement.schema;
        if !schema.is_empty() {
            match conn.query_drop(format!("USE {}", quote(schema))).await {
                Ok(()) => {}
                // every name is qualified: the source's default database is not needed
                Err(mysql_async::Error::Server(server))
                    if server.code == UNKNOWN_DATABASE && !ddl.needs_schema => {}
                Err(error) => return Err(Failure::from(error)),
            }
        }
        let explicit_now: Option<bool> = match ddl.statement.session.explicit_defaults_for_timestamp
        {
            Some(_) => conn.query_first(EXPLICIT_DEFAULTS).await?,
            None => None,
        };
        let assignments =
            session_assignments(ddl, self.target_kind, explicit_now).map_err(Failure::Session)?;
        let names: Vec<String> = assignments
            .iter()
            .map(|(name, _)| format!("{name} = ?"))
            .collect();
        let values: Vec<Value> = assignments.into_iter().map(|(_, value)| value).collect();
        conn.exec_drop(format!("SET SESSION {}", names.join(", ")), values)
            .await
            .map_err(|error| match Failure::from(error) {
                Failure::Server(code, error) => Failure::Session(format!(
                    "the target refuses the session the statement was written in (ERROR {code}: {})",
                    match &error {
                        mysql_async::Error::Server(server) => server.message.clone(),
                        other => other.to_string(),
                    }
                )),
                other => other,
            })?;
        conn.query_drop(format!("{HOLD}{}", hex_literal(&ddl.statement.text)))
            .await?;
        conn.query_drop(PREPARE).await?;
        conn.query_drop(EXECUTE).await?;
        Ok(())
    }

    /// The DDL statements left out under `skip_ddl_errors` since the last call.
    pub fn take_skipped_ddl(&mut self) -> Vec<SkippedDdl> {
        std::mem::take(&mut self.skipped_ddl)
    }
}

/// Why a DDL did not run.
#[derive(Debug)]
enum Failure {
    /// The server refused it (its error code).
    Server(u16, mysql_async::Error),
    Driver(mysql_async::Error),
    /// The target cannot take the session it was written in.
    Session(String),
}

impl From<mysql_async::Error> for Failure {
    fn from(error: mysql_async::Error) -> Self {
        match &error {
            mysql_async::Error::Server(server) => Failure::Server(server.code, error),
            _ => Failure::Driver(error),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Server(_, error) | Failure::Driver(error) => error.fmt(f),
            Failure::Session(problem) => f.write_str(problem),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Session, Statement};
    use std::sync::Arc;

    fn ddl(session: Session) -> TargetDdl {
        TargetDdl {
            statement: Statement {
                schema: "d".into(),
                text: b"ALTER TABLE t ADD c INT".to_vec(),
                session: Arc::new(session),
            },
            needs_schema: true,
            tables: Vec::new(),
        }
    }

    fn session() -> Session {
        Session {
            connection_collation: "gbk_chinese_ci".into(),
            time_zone: Some("+02:00".into()),
            foreign_key_checks: false,
            explicit_defaults_for_timestamp: Some(true),
            ..Session::for_tests(1 << 20, "gbk")
        }
    }

    #[test]
    fn the_session_is_set_as_the_source_had_it() {
        let names = |assignments: Vec<(&'static str, Value)>| {
            assignments
                .into_iter()
                .map(|(name, value)| format!("{name}={}", value.as_sql(false)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(
                session_assignments(&ddl(session()), DataSourceKind::MariaDb, Some(false)).unwrap()
            ),
            vec![
                "sql_mode='NO_BACKSLASH_ESCAPES'",
                "character_set_client='gbk'",
                "collation_connection='gbk_chinese_ci'",
                "collation_server='utf8mb4_general_ci'",
                "foreign_key_checks=0",
                "unique_checks=1",
                "time_zone='+02:00'",
                "explicit_defaults_for_timestamp=1",
            ]
        );
        // unchanged: not set (on MySQL that needs a privilege)
        let same =
            session_assignments(&ddl(session()), DataSourceKind::MariaDb, Some(true)).unwrap();
        assert!(
            !same
                .iter()
                .any(|(name, _)| *name == "explicit_defaults_for_timestamp")
        );
        let mut collations = session();
        collations.character_set_collations = vec!["utf8mb4=utf8mb4_bin".into()];
        assert!(
            session_assignments(&ddl(collations), DataSourceKind::MySql, None)
                .unwrap_err()
                .contains("character_set_collations")
        );
    }
}
