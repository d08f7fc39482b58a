//! `ottr migrate`: creates the metadata schema, applies the refinery migrations in
//! `migrations/`, then drops every view and procedure in the schema and re-creates them from
//! `sql/procedures/`, so that a removed or renamed procedure does not linger.
//!
//! Migrations are forward-only; a schema migrated by a newer ottr is refused before anything
//! is touched.

use super::{MetaDb, parse_url, timed};
use crate::error::{Error, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use tracing::info;

mod embedded {
    refinery::embed_migrations!("migrations");
}

include!(concat!(env!("OUT_DIR"), "/procedures.rs"));

/// refinery's history table, one row per applied migration.
const HISTORY_TABLE: &str = "schema_history";
const HISTORY_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'schema_history'";
const SELECT_VERSION: &str = "SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) FROM schema_history";
const LIST_ROUTINES: &str = "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES \
     WHERE ROUTINE_SCHEMA = DATABASE()";
const TABLE_COLUMNS: &str = "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
const LIST_VIEWS: &str =
    "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()";

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// The schema version before the run (0: empty).
    pub from: i64,
    /// The schema version after the run.
    pub to: i64,
    /// How many views and procedures were (re-)created.
    pub objects: usize,
}

/// The newest schema version this binary knows.
pub fn known_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|migration| i64::from(migration.version()))
        .max()
        .unwrap_or(0)
}

/// Migrates the schema named in `url` up to `target` (None: the newest), creating the schema
/// if it is missing. Views and procedures are installed only at the newest version.
pub async fn migrate(url: &str, target: Option<i64>) -> Result<MigrateReport> {
    migrate_as(url, None, target).await
}

/// Like [`migrate`], with the password given apart from the URL.
pub async fn migrate_as(
    url: &str,
    password: Option<&str>,
    target: Option<i64>,
) -> Result<MigrateReport> {
    if url.contains(',') {
        return Err(Error::Precheck(
            "ottr migrate takes one metadata URL: the primary's (its replicas get the schema by replication)".into(),
        ));
    }
    create_schema(url, password).await?;
    let meta = MetaDb::open_as(url, password)?;
    let known = known_version();
    let from = schema_version(&meta).await?;
    if from > known {
        return Err(Error::SchemaTooNew { found: from, known });
    }
    let mut runner = embedded::migrations::runner();
    if let Some(target) = target {
        let version = i32::try_from(target)
            .map_err(|_| Error::Precheck(format!("target version {target} is out of range")))?;
        runner = runner.set_target(refinery::Target::Version(version));
    }
    runner.set_migration_table_name(HISTORY_TABLE);
    let mut pool = timed("cannot connect to the metadata database", meta.pool()).await?;
    runner.run_async(&mut pool).await.map_err(|error| {
        Error::Precheck(format!(
            "migration of {} failed: {error}",
            meta.display_url()
        ))
    })?;
    let to = schema_version(&meta).await?;
    let objects = if to == known {
        let mut conn = meta.conn().await?;
        let objects = install_procedures(&mut conn, &meta.secret_schema()).await?;
        install_audit_triggers(&mut conn, meta.schema(), &meta.secret_schema()).await?;
        objects
    } else {
        0
    };
    info!(
        schema = meta.schema(),
        from, to, objects, "metadata schema migrated"
    );
    meta.close().await;
    Ok(MigrateReport { from, to, objects })
}

/// The schema's version: the newest applied migration, 0 when none is.
pub async fn schema_version(meta: &MetaDb) -> Result<i64> {
    let mut conn = meta.conn().await?;
    let context = "cannot read the metadata schema version";
    timed(context, async {
        let exists: Option<i64> = conn
            .query_first(HISTORY_EXISTS)
            .await
            .map_err(|error| Error::database(context, error))?;
        if exists.unwrap_or(0) == 0 {
            return Ok(0);
        }
        let version: Option<i64> = conn
            .query_first(SELECT_VERSION)
            .await
            .map_err(|error| Error::database(context, error))?;
        Ok(version.unwrap_or(0))
    })
    .await
}

/// Fails unless the schema is at exactly the version this binary knows.
pub async fn check_schema(meta: &MetaDb) -> Result<()> {
    let found = schema_version(meta).await?;
    let known = known_version();
    match found.cmp(&known) {
        std::cmp::Ordering::Greater => Err(Error::SchemaTooNew { found, known }),
        std::cmp::Ordering::Less => Err(Error::SchemaTooOld { found, known }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Creates the schema named in the URL, connecting without a default database.
async fn create_schema(url: &str, password: Option<&str>) -> Result<()> {
    let (opts, tls) = parse_url(url)?;
    let schema = opts.db_name().unwrap_or_default().to_owned();
    if schema.chars().count() > 57 {
        return Err(Error::Precheck(format!(
            "the metadata schema name {schema} is longer than 57 characters: its secrets schema ({schema}_secret) would pass MySQL's 64"
        )));
    }
    if schema.is_empty() || schema.contains('`') {
        return Err(Error::Precheck(format!(
            "the metadata URL {} must name a schema (without backticks), e.g. …/ottr",
            super::redact_url(url)
        )));
    }
    let context = format!(
        "cannot create schema {schema} on {}",
        super::redact_url(url)
    );
    let mut options = OptsBuilder::from_opts(opts).db_name(None::<String>);
    if let Some(password) = password {
        options = options.pass(Some(password));
    }
    let mut conn = crate::tls::connect(options, &tls, crate::tls::KeyFrom::CommandLine)
        .await
        .map_err(|error| match error {
            crate::tls::TlsConnectError::Settings(problem) => {
                Error::Precheck(format!("{context}: {problem}"))
            }
            crate::tls::TlsConnectError::Driver(error) => Error::database(context.clone(), error),
        })?;
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        crate::sql::quote(&schema)
    ))
    .await
    .map_err(|error| Error::database(context, error))?;
    let _ = conn.disconnect().await;
    Ok(())
}

/// Drops every view and routine of the schema, then creates those of sql/procedures, where
/// `ottr_secret.` names the secrets schema (`secret`, quoted). Returns how many were created.
async fn install_procedures(conn: &mut Conn, secret: &str) -> Result<usize> {
    let secret = format!("{}.", crate::sql::quote(secret));
    let context = "cannot re-create the views and procedures";
    let fail = |error| Error::database(context, error);
    let routines: Vec<(String, String)> = conn.query(LIST_ROUTINES).await.map_err(fail)?;
    let views: Vec<String> = conn.query(LIST_VIEWS).await.map_err(fail)?;
    for statement in drop_statements(&routines, &views)? {
        conn.query_drop(statement).await.map_err(fail)?;
    }
    // Views may read other views: create what can be created until nothing is left, so that
    // file order does not matter; a round that creates nothing reports its first error.
    let mut pending: Vec<(&str, &str)> = PROCEDURE_FILES.to_vec();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut first_error = None;
        for (name, sql) in &pending {
            check_declares(name, sql)?;
            if let Err(error) = conn.query_drop(sql.replace("ottr_secret.", &secret)).await {
                first_error.get_or_insert((name.to_string(), error));
                failed.push((*name, *sql));
            }
        }
        if failed.len() == pending.len() {
            let (name, error) = first_error.expect("a failed round has an error");
            return Err(Error::database(
                format!("cannot create {name} from sql/procedures/{name}.sql"),
                error,
            ));
        }
        pending = failed;
    }
    Ok(PROCEDURE_FILES.len())
}

/// Re-creates the audit triggers (see `audit`) on every configuration table of `schema` and
/// of the secrets schema `secret`, from the columns the tables have now.
async fn install_audit_triggers(conn: &mut Conn, schema: &str, secret: &str) -> Result<()> {
    let context = "cannot re-create the audit triggers (the migrating user needs TRIGGER, and \
                   with binary logging on, SUPER or log_bin_trust_function_creators)";
    let fail = |error| Error::database(context, error);
    for audited in super::audit::AUDITED {
        let table_schema = match audited.schema {
            super::audit::Schema::Meta => schema,
            super::audit::Schema::Secret => secret,
        };
        for name in audited.trigger_names() {
            conn.query_drop(format!(
                "DROP TRIGGER IF EXISTS {}.{}",
                crate::sql::quote(table_schema),
                crate::sql::quote(&name)
            ))
            .await
            .map_err(fail)?;
        }
        let columns: Vec<String> = conn
            .exec(TABLE_COLUMNS, (table_schema, audited.table))
            .await
            .map_err(fail)?;
        for trigger in audited.triggers(&columns, schema, secret) {
            conn.query_drop(trigger).await.map_err(fail)?;
        }
    }
    for (name, create) in super::audit::append_only_triggers(schema) {
        conn.query_drop(format!(
            "DROP TRIGGER IF EXISTS {}.{}",
            crate::sql::quote(schema),
            crate::sql::quote(&name)
        ))
        .await
        .map_err(fail)?;
        conn.query_drop(create).await.map_err(fail)?;
    }
    Ok(())
}

/// The statements that drop the schema's routines (`(name, ROUTINE_TYPE)`) and views. Names
/// come from the server and are quoted by doubling (a planted name cannot run SQL as the
/// migrating administrator); a routine type other than PROCEDURE or FUNCTION is refused.
fn drop_statements(routines: &[(String, String)], views: &[String]) -> Result<Vec<String>> {
    let mut statements = Vec::with_capacity(routines.len() + views.len());
    for (name, kind) in routines {
        let kind = match kind.as_str() {
            "PROCEDURE" => "PROCEDURE",
            "FUNCTION" => "FUNCTION",
            other => {
                return Err(Error::Precheck(format!(
                    "routine {} has the unknown type {:?}: drop it by hand",
                    crate::sql::quote(name),
                    other
                )));
            }
        };
        statements.push(format!("DROP {kind} IF EXISTS {}", crate::sql::quote(name)));
    }
    for name in views {
        statements.push(format!("DROP VIEW IF EXISTS {}", crate::sql::quote(name)));
    }
    Ok(statements)
}

/// Each file must create the object it is named after, so that files and objects match.
fn check_declares(name: &str, sql: &str) -> Result<()> {
    let declared = [
        format!("CREATE VIEW {name} "),
        format!("CREATE VIEW {name}\n"),
        format!("CREATE PROCEDURE {name}("),
        format!("CREATE FUNCTION {name}("),
    ];
    if declared.iter().any(|prefix| sql.contains(prefix.as_str())) {
        Ok(())
    } else {
        Err(Error::Precheck(format!(
            "sql/procedures/{name}.sql does not create a view, procedure or function named {name}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_procedure_file_creates_the_object_it_is_named_after() {
        assert!(!PROCEDURE_FILES.is_empty());
        for (name, sql) in PROCEDURE_FILES {
            check_declares(name, sql).unwrap();
            assert!(
                !sql.contains("DELIMITER"),
                "{name}: files are sent whole, without DELIMITER"
            );
            assert!(
                !sql.contains("CREATE OR REPLACE"),
                "{name}: MySQL 8 has no CREATE OR REPLACE PROCEDURE"
            );
        }
    }

    #[test]
    fn planted_names_are_quoted_when_dropped() {
        let routines = vec![
            (
                "p`; DROP DATABASE ottr; -- ".to_owned(),
                "PROCEDURE".to_owned(),
            ),
            ("f".to_owned(), "FUNCTION".to_owned()),
        ];
        let views = vec!["v` , mysql.user; -- ".to_owned()];
        assert_eq!(
            drop_statements(&routines, &views).unwrap(),
            vec![
                "DROP PROCEDURE IF EXISTS `p``; DROP DATABASE ottr; -- `",
                "DROP FUNCTION IF EXISTS `f`",
                "DROP VIEW IF EXISTS `v`` , mysql.user; -- `",
            ]
        );
        let odd = vec![("x".to_owned(), "PROCEDURE; DROP TABLE t".to_owned())];
        let error = drop_statements(&odd, &[]).unwrap_err().to_string();
        assert!(error.contains("unknown type"), "{error}");
    }

    #[test]
    fn the_embedded_migrations_are_numbered_from_one_without_gaps() {
        let mut versions: Vec<i64> = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|migration| i64::from(migration.version()))
            .collect();
        versions.sort();
        assert_eq!(versions, (1..=known_version()).collect::<Vec<_>>());
    }
}
