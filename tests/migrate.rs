//! `ottr migrate` on a real MariaDB: idempotent, upgrades an older schema, refuses a newer one.

mod common;

use common::{ServerKind, conn_to, shared};
use mysql_async::prelude::Queryable;
use std::process::Command;

fn server() -> &'static common::MariaDb {
    shared(ServerKind::Plain)
}

async fn drop_schema(schema: &str) {
    let mut conn = server().conn().await;
    conn.query_drop(format!(
        "DROP DATABASE IF EXISTS `{schema}_secret`; DROP DATABASE IF EXISTS `{schema}`"
    ))
    .await
    .unwrap();
}

/// Tables, columns, views and routines of a schema, to compare before and after.
async fn shape(schema: &str) -> Vec<String> {
    let mut conn = server().conn().await;
    let mut shape: Vec<String> = conn
        .exec(
            "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME, ' ', COLUMN_TYPE) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?",
            (schema,),
        )
        .await
        .unwrap();
    let routines: Vec<String> = conn
        .exec("SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?", (schema,))
        .await
        .unwrap();
    shape.extend(routines);
    shape.sort();
    shape
}

fn ottr(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ottr"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn migrate_creates_the_schema_and_a_second_run_changes_nothing() {
    drop_schema("ottr_m_twice").await;
    let url = server().url("ottr_m_twice");
    let (ok, stdout, stderr) = ottr(&["migrate", "--meta", &url]);
    assert!(ok, "{stderr}");
    let known = ottr::meta::known_version();
    assert!(
        stdout.contains(&format!("migrated from version 0 to {known}")),
        "{stdout}"
    );
    let before = shape("ottr_m_twice").await;
    assert!(
        before.iter().any(|line| line == "PROCEDURE create_channel"),
        "{before:?}"
    );
    let mut conn = conn_to(server(), "ottr_m_twice").await;
    conn.query_drop("CALL add_data_source('keep', 'mariadb', 'mysql://u@h:3306', NULL)")
        .await
        .unwrap();

    let (ok, stdout, stderr) = ottr(&["migrate", "--meta", &url]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("at version {known} (no migration needed)")),
        "{stdout}"
    );
    assert_eq!(shape("ottr_m_twice").await, before);
    let kept: Vec<String> = conn.query("SELECT name FROM data_source").await.unwrap();
    assert_eq!(
        kept,
        vec!["keep".to_owned()],
        "configuration survives a re-run"
    );
}

#[tokio::test]
async fn a_schema_one_migration_behind_is_upgraded() {
    drop_schema("ottr_m_behind").await;
    let url = server().url("ottr_m_behind");
    let known = ottr::meta::known_version();
    let report = ottr::meta::migrate(&url, Some(known - 1)).await.unwrap();
    assert_eq!((report.from, report.to), (0, known - 1));
    let meta = ottr::meta::MetaDb::open(&url).unwrap();
    let error = ottr::meta::check_schema(&meta).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the metadata schema is at version {}, this ottr needs {known}: run `ottr migrate`",
            known - 1
        )
    );

    let report = ottr::meta::migrate(&url, None).await.unwrap();
    assert_eq!((report.from, report.to), (known - 1, known));
    ottr::meta::check_schema(&meta).await.unwrap();
    drop_schema("ottr_m_fresh").await;
    ottr::meta::migrate(&server().url("ottr_m_fresh"), None)
        .await
        .unwrap();
    let upgraded: Vec<String> = shape("ottr_m_behind")
        .await
        .into_iter()
        .filter(|l| !l.starts_with("schema_history"))
        .collect();
    let fresh: Vec<String> = shape("ottr_m_fresh")
        .await
        .into_iter()
        .filter(|l| !l.starts_with("schema_history"))
        .collect();
    assert_eq!(upgraded, fresh, "an upgraded schema equals a fresh one");
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_by_migrate_and_node() {
    drop_schema("ottr_m_newer").await;
    let url = server().url("ottr_m_newer");
    ottr::meta::migrate(&url, None).await.unwrap();
    let mut conn = conn_to(server(), "ottr_m_newer").await;
    conn.query_drop(
        "INSERT INTO schema_history (version, name, applied_on, checksum) VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '0')",
    )
    .await
    .unwrap();
    let known = ottr::meta::known_version();
    let expected = format!(
        "the metadata schema is at version 99, newer than this ottr knows (up to {known}): upgrade ottr"
    );

    let (ok, _, stderr) = ottr(&["migrate", "--meta", &url]);
    assert!(!ok);
    assert!(stderr.contains(&expected), "{stderr}");
    let (ok, _, stderr) = ottr(&["node", "--meta", &url, "--name", "n1"]);
    assert!(!ok);
    assert!(stderr.contains(&expected), "{stderr}");
    let (ok, _, stderr) = ottr(&["status", "--meta", &url]);
    assert!(!ok);
    assert!(stderr.contains(&expected), "{stderr}");
}

async fn secrets_moved(conn: &mut mysql_async::Conn) {
    let stored: Vec<(u32, String)> = conn
            .query("SELECT data_source_id, password FROM ottr_m_secrets_secret.data_source_password ORDER BY 1")
            .await
            .unwrap();
    assert_eq!(
        stored,
        vec![(1, "Lit3ral-Pw".into()), (2, "env:OTTR_SECRET_US".into())]
    );
    let shown: Vec<(String, Option<String>, String)> = conn
        .query("SELECT name, password, tls_mode FROM v_data_source ORDER BY name")
        .await
        .unwrap();
    assert_eq!(
        shown,
        vec![
            ("none".into(), None, "preferred".into()),
            ("sh".into(), Some("********".into()), "preferred".into()),
            (
                "us".into(),
                Some("env:OTTR_SECRET_US".into()),
                "preferred".into()
            ),
        ]
    );
    let smtp: Option<String> = conn
        .query_first("SELECT password FROM v_smtp")
        .await
        .unwrap()
        .flatten();
    assert_eq!(smtp.as_deref(), Some("********"));
    let left: u64 = conn
        .query_first(
            "SELECT COUNT(*) FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
                 ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
                 WHERE c.TABLE_SCHEMA = 'ottr_m_secrets' AND c.COLUMN_NAME = 'password' \
                 AND t.TABLE_TYPE = 'BASE TABLE'",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left, 0, "no password column is left in the metadata schema");
}

/// Upgrading to V12 moves passwords into the secrets schema, where v_data_source and v_smtp
/// still show them masked; V12 can run again (as after a failure halfway) and changes nothing.
#[tokio::test]
async fn the_security_migration_moves_passwords_and_can_run_again() {
    drop_schema("ottr_m_secrets").await;
    let url = server().url("ottr_m_secrets");
    ottr::meta::migrate(&url, Some(11)).await.unwrap();
    let mut conn = conn_to(server(), "ottr_m_secrets").await;
    conn.query_drop(
        "INSERT INTO data_source (name, kind, host, port, user, password) VALUES \
           ('sh', 'mariadb', 'h1', 3306, 'u', 'Lit3ral-Pw'), ('us', 'mysql', 'h2', 3306, 'u', 'env:OTTR_SECRET_US'), \
           ('none', 'mysql', 'h3', 3306, 'u', NULL); \
         INSERT INTO smtp (id, host, port, security, user, password, from_address) \
           VALUES (1, 'mail', 465, 'tls', 'ottr', 'Sm7p-Pw', 'ottr@example.com')",
    )
    .await
    .unwrap();
    ottr::meta::migrate(&url, None).await.unwrap();
    secrets_moved(&mut conn).await;
    conn.query_drop(include_str!("../migrations/V12__security.sql"))
        .await
        .unwrap();
    secrets_moved(&mut conn).await;
}
