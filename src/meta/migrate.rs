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
    if url.contains(',') {
        return Err(Error::Precheck(
            "ottr migrate takes one metadata URL: the primary's (its replicas get the schema by replication)".into(),
        ));
    }
    create_schema(url).await?;
    let meta = MetaDb::open(url)?;
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
    let mut pool = meta.pool();
    runner.run_async(&mut pool).await.map_err(|error| {
        Error::Precheck(format!(
            "migration of {} failed: {error}",
            meta.display_url()
        ))
    })?;
    let to = schema_version(&meta).await?;
    let objects = if to == known {
        install_procedures(&mut meta.conn().await?).await?
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
async fn create_schema(url: &str) -> Result<()> {
    let opts = parse_url(url)?;
    let schema = opts.db_name().unwrap_or_default().to_owned();
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
    let mut conn = Conn::new(OptsBuilder::from_opts(opts).db_name(None::<String>))
        .await
        .map_err(|error| Error::database(context.clone(), error))?;
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        crate::sql::quote(&schema)
    ))
    .await
    .map_err(|error| Error::database(context, error))?;
    let _ = conn.disconnect().await;
    Ok(())
}

/// Drops every view and routine of the schema, then creates those of sql/procedures.
/// Returns how many were created.
async fn install_procedures(conn: &mut Conn) -> Result<usize> {
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
            if let Err(error) = conn.query_drop(*sql).await {
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
