//! Security end to end on real servers (issue #9): TLS to data sources with a test CA (every
//! mode, a wrong CA, a certificate for another name, a client certificate), secrets that a
//! node resolves only within its own allow-list and that a monitoring user cannot read, the
//! metadata password kept out of the process list, and the audit trail of configuration
//! changes.

mod common;

use common::tls::TestCa;
use common::{
    Installation, MariaDb, NodeProcess, ServerKind, conn_to, fresh_meta, shared, temp_dir,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use ottr::config::{ClientCertificate, DataSource, Tls, TlsMode};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

fn source() -> &'static MariaDb {
    shared(ServerKind::Source)
}

fn meta_server() -> &'static MariaDb {
    shared(ServerKind::Plain)
}

/// A test CA, and a MariaDB target that serves TLS with its certificate for `localhost`.
struct TlsTarget {
    server: MariaDb,
    ca: TestCa,
    /// The secrets directory of this test process's nodes (holds the client key).
    secrets: PathBuf,
    client: common::tls::Issued,
}

fn tls_target() -> &'static TlsTarget {
    static TARGET: OnceLock<TlsTarget> = OnceLock::new();
    TARGET.get_or_init(|| {
        let dir = temp_dir("tls");
        let ca = TestCa::new(&dir.join("ca"), "ca");
        let server_cert = ca.issue("server", &["localhost"], false);
        let secrets = dir.join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        let client = ca.issue("client", &["ottr-node"], true);
        std::fs::copy(&client.key, secrets.join("client.key")).unwrap();
        let server = MariaDb::start_with(
            ServerKind::Target,
            &[
                &format!("--ssl-ca={}", ca.cert.display()),
                &format!("--ssl-cert={}", server_cert.cert.display()),
                &format!("--ssl-key={}", server_cert.key.display()),
            ],
        );
        TlsTarget {
            server,
            ca,
            secrets,
            client,
        }
    })
}

/// This test process resolves file references inside the TLS target's secrets directory.
fn install_policy() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        ottr::config::install_policy(Some(&tls_target().secrets), None).unwrap();
    });
}

fn data_source(host: &str, port: u16, user: &str, tls: Tls) -> DataSource {
    DataSource {
        id: ottr::model::DataSourceId(7),
        name: "secure".into(),
        kind: ottr::config::DataSourceKind::MariaDb,
        host: host.into(),
        port,
        user: user.into(),
        password: ottr::config::Secret::None,
        tls,
    }
}

fn tls(mode: TlsMode, ca: Option<&PathBuf>) -> Tls {
    Tls {
        mode,
        ca_file: ca.cloned(),
        client: None,
    }
}

/// Connects; returns the TLS version of the connection, or the error as text.
async fn try_connect(source: &DataSource) -> Result<Option<String>, (String, ottr::ErrorClass)> {
    match ottr::pipeline::connect(source).await {
        Ok(mut conn) => {
            let tls = ottr::tls::encryption(&mut conn).await.unwrap();
            let _ = conn.disconnect().await;
            Ok(tls.map(|(version, _)| version))
        }
        Err(error) => Err((ottr::error::chain(&error), error.class())),
    }
}

#[tokio::test]
async fn tls_modes_connect_as_their_names_say_and_refuse_by_name() {
    install_policy();
    let target = tls_target();
    let port = target.server.port;
    let ca = Some(&target.ca.cert);
    // verify_identity: the certificate chains to the CA and names localhost
    let version = try_connect(&data_source(
        "localhost",
        port,
        "root",
        tls(TlsMode::VerifyIdentity, ca),
    ))
    .await
    .unwrap();
    assert!(
        version.is_some_and(|version| version.starts_with("TLSv1")),
        "not encrypted"
    );
    // a certificate for another name (localhost, reached as 127.0.0.1) fails verify_identity
    // and passes verify_ca
    let (error, class) = try_connect(&data_source(
        "127.0.0.1",
        port,
        "root",
        tls(TlsMode::VerifyIdentity, ca),
    ))
    .await
    .unwrap_err();
    assert!(
        error.contains("data source 'secure'") && error.contains("not valid for name"),
        "{error}"
    );
    assert_eq!(class, ottr::ErrorClass::Fatal);
    assert!(
        try_connect(&data_source(
            "127.0.0.1",
            port,
            "root",
            tls(TlsMode::VerifyCa, ca)
        ))
        .await
        .unwrap()
        .is_some()
    );
    // a wrong CA, or the public roots, refuse the server's certificate, naming why
    let other = TestCa::new(&target.ca.dir.join("other"), "other");
    let (error, _) = try_connect(&data_source(
        "localhost",
        port,
        "root",
        tls(TlsMode::VerifyCa, Some(&other.cert)),
    ))
    .await
    .unwrap_err();
    assert!(
        error.contains("cannot connect to data source 'secure' (localhost:")
            && error.contains("TLS verify_ca")
            && error.contains("UnknownIssuer"),
        "{error}"
    );
    let (error, _) = try_connect(&data_source(
        "localhost",
        port,
        "root",
        tls(TlsMode::VerifyIdentity, None),
    ))
    .await
    .unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");
    // preferred and required encrypt, unverified; disabled does not
    for mode in [TlsMode::Preferred, TlsMode::Required] {
        let version = try_connect(&data_source("127.0.0.1", port, "root", tls(mode, None)))
            .await
            .unwrap();
        assert!(version.is_some(), "{mode}: not encrypted");
    }
    assert_eq!(
        try_connect(&data_source(
            "127.0.0.1",
            port,
            "root",
            tls(TlsMode::Disabled, None)
        ))
        .await
        .unwrap(),
        None
    );
    // a server without TLS: preferred falls back to plain, required refuses by name
    let plain = meta_server().port;
    assert_eq!(
        try_connect(&data_source(
            "127.0.0.1",
            plain,
            "root",
            tls(TlsMode::Preferred, None)
        ))
        .await
        .unwrap(),
        None
    );
    let (error, _) = try_connect(&data_source(
        "127.0.0.1",
        plain,
        "root",
        tls(TlsMode::Required, None),
    ))
    .await
    .unwrap_err();
    assert!(
        error.contains("the server offers no TLS, and the TLS mode is required"),
        "{error}"
    );
    // a client certificate for a user that requires one; its key from the secrets directory
    target
        .server
        .run("CREATE USER IF NOT EXISTS 'certified'@'%' REQUIRE X509; GRANT SELECT ON *.* TO 'certified'@'%'")
        .await;
    let mut with_client = tls(TlsMode::VerifyIdentity, ca);
    with_client.client = Some(ClientCertificate {
        cert_file: target.client.cert.clone(),
        key_file: PathBuf::from("client.key"),
    });
    assert!(
        try_connect(&data_source(
            "localhost",
            port,
            "certified",
            with_client.clone()
        ))
        .await
        .unwrap()
        .is_some()
    );
    let (error, _) = try_connect(&data_source(
        "localhost",
        port,
        "certified",
        tls(TlsMode::VerifyIdentity, ca),
    ))
    .await
    .unwrap_err();
    assert!(error.contains("Access denied"), "{error}");
    // a key outside the secrets directory is refused by name, never read
    with_client.client.as_mut().unwrap().key_file = target.client.key.clone();
    let (error, _) = try_connect(&data_source("localhost", port, "certified", with_client))
        .await
        .unwrap_err();
    assert!(
        error.contains("is not inside this node's --secrets-dir"),
        "{error}"
    );
}

/// A metadata schema with short timings and a channel from the shared source to the TLS
/// target over `schema.t`.
async fn tls_channel(schema: &str) -> (String, Conn) {
    let mut installation = Installation::new(
        meta_server(),
        schema,
        &[
            ("lease_ms", 3000),
            ("heartbeat_ms", 200),
            ("poll_ms", 200),
            ("retry_max_ms", 1000),
        ],
    )
    .await;
    installation.data_source("sh", source(), "root").await;
    let Installation {
        meta: mut conn,
        url,
        ..
    } = installation;
    conn.exec_drop(
        "CALL add_data_source('secure', 'mariadb', ?, NULL)",
        (format!(
            "mysql://root@localhost:{}",
            tls_target().server.port
        ),),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "CALL set_data_source_tls('secure', 'verify_identity', ?, NULL, NULL)",
        (tls_target().ca.cert.to_str().unwrap(),),
    )
    .await
    .unwrap();
    conn.exec_drop("CALL create_channel(?, 'sh', 'secure')", (schema,))
        .await
        .unwrap();
    conn.exec_drop(
        "CALL add_table_pair(?, ?, 't', NULL, NULL)",
        (schema, format!("d_{schema}")),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "UPDATE pipeline SET server_id = ?",
        (common::server_id_base(schema),),
    )
    .await
    .unwrap();
    conn.exec_drop("CALL start_channel(?)", (schema,))
        .await
        .unwrap();
    (url, conn)
}

async fn pipeline_state(conn: &mut Conn) -> Option<(String, Option<String>)> {
    conn.query_first("SELECT observed, reason FROM v_pipeline_status")
        .await
        .unwrap()
}

/// Waits until the pipeline applies changes (its start position is saved).
async fn wait_running(conn: &mut Conn) {
    eventually!(Duration::from_secs(30), "the pipeline to run", {
        pipeline_state(conn).await.filter(|(observed, reason)| {
            observed == "running" && reason.as_deref() == Some("applying changes")
        })
    });
}

#[tokio::test]
async fn a_pipeline_to_a_tls_target_shows_its_encryption_and_a_wrong_ca_stops_it_by_name() {
    let target = tls_target();
    for server in [source(), &target.server] {
        server
            .run("DROP DATABASE IF EXISTS d_tls_e2e; CREATE DATABASE d_tls_e2e; CREATE TABLE d_tls_e2e.t (id INT PRIMARY KEY, v INT)")
            .await;
    }
    let (url, mut conn) = tls_channel("tls_e2e").await;
    let dir = temp_dir("tls_e2e");
    let _node = NodeProcess::spawn(
        &url,
        "n1",
        &dir,
        &[("OTTR_SECRETS_DIR", target.secrets.to_str().unwrap())],
    );
    wait_running(&mut conn).await;
    source().run("INSERT INTO d_tls_e2e.t VALUES (1, 1)").await;
    let mut on_target = target.server.conn().await;
    eventually!(Duration::from_secs(30), "the row on the TLS target", {
        let v: Option<i32> = on_target
            .query_first("SELECT v FROM d_tls_e2e.t WHERE id = 1")
            .await
            .unwrap();
        v
    });
    let row: (String, u64, u64, String) = conn
        .query_first(
            "SELECT tls_mode, connections, encrypted_connections, live_connections \
             FROM v_data_source WHERE name = 'secure'",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.0.as_str(), row.1, row.2),
        ("verify_identity", 1, 1),
        "{row:?}"
    );
    assert!(row.3.contains("tls_e2e target on n1: TLSv1"), "{}", row.3);
    // The source serves no TLS: preferred fell back to plain, and the view says so.
    let source_row: (String, u64, String) = conn
        .query_first("SELECT tls_mode, encrypted_connections, live_connections FROM v_data_source WHERE name = 'sh'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(source_row.0, "preferred");
    assert_eq!(source_row.1, 0);
    assert!(source_row.2.contains("not encrypted"), "{}", source_row.2);
    // A CA that did not sign the target's certificate: the pipeline stops in error, naming
    // the data source and the reason.
    let other = TestCa::new(&dir.join("wrong"), "wrong");
    conn.exec_drop(
        "CALL set_data_source_tls('secure', 'verify_ca', ?, NULL, NULL)",
        (other.cert.to_str().unwrap(),),
    )
    .await
    .unwrap();
    let reason = eventually!(Duration::from_secs(30), "the certificate refused", {
        pipeline_state(&mut conn)
            .await
            .filter(|(observed, reason)| {
                observed == "error"
                    && reason
                        .as_deref()
                        .is_some_and(|r| r.contains("UnknownIssuer"))
            })
            .and_then(|(_, reason)| reason)
    });
    assert!(reason.contains("data source 'secure'"), "{reason}");
}

#[tokio::test]
async fn secrets_resolve_only_within_the_nodes_allow_list_and_monitoring_cannot_read_them() {
    let target = tls_target();
    let schema = "sec_allow";
    for server in [source(), &target.server] {
        server
            .run(&format!("DROP DATABASE IF EXISTS d_{schema}; CREATE DATABASE d_{schema}; CREATE TABLE d_{schema}.t (id INT PRIMARY KEY, v INT)"))
            .await;
    }
    target
        .server
        .run(
            "CREATE USER IF NOT EXISTS 'writer'@'%' IDENTIFIED BY 'Wr1ter-pw'; \
             GRANT ALL ON *.* TO 'writer'@'%'",
        )
        .await;
    std::fs::write(target.secrets.join("writer.pw"), "Wr1ter-pw\n").unwrap();
    let (_, mut conn) = tls_channel(schema).await;
    conn.exec_drop(
        "CALL set_data_source('secure', ?, 'env:OTTR_META')",
        (format!("mysql://writer@localhost:{}", target.server.port),),
    )
    .await
    .unwrap();
    // The node logs in to the metadata database with a password given in a file, never on
    // its command line.
    meta_server()
        .run(&format!(
            "CREATE USER IF NOT EXISTS 'ottr_node'@'%' IDENTIFIED BY 'Meta-Pw-77'; \
             GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON `{schema}`.* TO 'ottr_node'@'%'; \
             GRANT SELECT ON `{schema}_secret`.* TO 'ottr_node'@'%'"
        ))
        .await;
    let dir = temp_dir(schema);
    let password_file = dir.join("meta.pw");
    std::fs::write(&password_file, "Meta-Pw-77\n").unwrap();
    let url = format!(
        "mysql://ottr_node@127.0.0.1:{}/{schema}",
        meta_server().port
    );
    let node = NodeProcess::spawn(
        &url,
        "n1",
        &dir,
        &[
            ("OTTR_SECRETS_DIR", target.secrets.to_str().unwrap()),
            ("OTTR_META_PASSWORD_FILE", password_file.to_str().unwrap()),
        ],
    );
    // env:OTTR_META is not a secret this node hands out
    let reason = eventually!(Duration::from_secs(30), "env:OTTR_META refused", {
        pipeline_state(&mut conn)
            .await
            .and_then(|(_, reason)| reason)
            .filter(|reason| reason.contains("env:OTTR_META is refused"))
    });
    assert!(reason.contains("data source 'secure'"), "{reason}");
    // nor a file outside its secrets directory
    conn.query_drop("CALL set_data_source('secure', NULL, 'file:/etc/hostname')")
        .await
        .unwrap();
    eventually!(
        Duration::from_secs(30),
        "a file outside the directory refused",
        {
            pipeline_state(&mut conn)
                .await
                .and_then(|(_, reason)| reason)
                .filter(|reason| reason.contains("file:/etc/hostname is refused"))
        }
    );
    // a file inside it is the password
    conn.query_drop("CALL set_data_source('secure', NULL, 'file:writer.pw')")
        .await
        .unwrap();
    wait_running(&mut conn).await;
    source()
        .run(&format!("INSERT INTO d_{schema}.t VALUES (1, 1)"))
        .await;
    let mut on_target = target.server.conn().await;
    eventually!(Duration::from_secs(30), "the row written as writer", {
        let v: Option<i32> = on_target
            .query_first(format!("SELECT v FROM d_{schema}.t WHERE id = 1"))
            .await
            .unwrap();
        v
    });
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", node.pid())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("Meta-Pw-77"),
        "the metadata password shows in the process list"
    );
    assert!(
        !node.log_text().contains("Wr1ter-pw"),
        "a password in the node's log"
    );

    // A monitoring user with SELECT on the metadata schema reads the views, never a password.
    conn.query_drop("CALL set_data_source('sh', NULL, 'Sup3r-Secret'); CALL set_smtp('smtp.example.com', 465, 'tls', 'ottr', 'Sm7p-Secret', 'ottr@example.com')")
        .await
        .unwrap();
    meta_server()
        .run(&format!(
            "CREATE USER IF NOT EXISTS 'grafana'@'%' IDENTIFIED BY 'g'; \
             GRANT SELECT ON `{schema}`.* TO 'grafana'@'%'"
        ))
        .await;
    let mut monitor = Conn::new(
        Opts::from_url(&format!(
            "mysql://grafana:g@127.0.0.1:{}/{schema}?prefer_socket=false",
            meta_server().port
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let visible: Vec<mysql_async::Row> = monitor
        .query("SELECT * FROM v_data_source UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, password, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM v_smtp")
        .await
        .unwrap();
    let shown = format!("{visible:?}");
    assert!(
        !shown.contains("Sup3r-Secret") && !shown.contains("Sm7p-Secret"),
        "{shown}"
    );
    assert!(shown.contains("********"), "{shown}");
    for table in ["data_source_password", "smtp_password"] {
        let denied = monitor
            .query_drop(format!("SELECT * FROM `{schema}_secret`.{table}"))
            .await
            .unwrap_err();
        assert!(
            matches!(&denied, mysql_async::Error::Server(error) if error.code == 1142),
            "{denied}"
        );
    }
    let columns: Vec<String> = monitor
        .query(format!(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{schema}' AND COLUMN_NAME LIKE '%password%'"
        ))
        .await
        .unwrap();
    assert!(
        columns.iter().all(|column| column == "password"),
        "{columns:?}"
    );
}

/// login, table, action, changed columns, old values, new values
type AuditRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[tokio::test]
async fn every_configuration_change_is_audited_with_the_login_and_masked_passwords() {
    let schema = "sec_audit";
    fresh_meta(meta_server(), schema).await;
    meta_server()
        .run(&format!(
            "CREATE USER IF NOT EXISTS 'operator'@'%' IDENTIFIED BY 'o'; \
             GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON `{schema}`.* TO 'operator'@'%'"
        ))
        .await;
    let mut operator = Conn::new(
        Opts::from_url(&format!(
            "mysql://operator:o@127.0.0.1:{}/{schema}?prefer_socket=false",
            meta_server().port
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    operator
        .query_drop(
            "CALL add_data_source('sh', 'mariadb', 'mysql://canal@10.0.0.1:3306', 'Sup3r-Secret'); \
             CALL set_data_source_tls('sh', 'required', NULL, NULL, NULL); \
             UPDATE data_source SET port = 3307 WHERE name = 'sh'; \
             CALL set_data_source('sh', NULL, 'env:OTTR_SECRET_SH'); \
             CALL set_setting('poll_ms', 500); \
             DELETE FROM data_source WHERE name = 'sh'",
        )
        .await
        .unwrap();
    let mut admin = conn_to(meta_server(), schema).await;
    let rows: Vec<AuditRow> = admin
        .query(
            "SELECT login, table_name, action, changed, old_values, new_values \
             FROM v_config_audit ORDER BY id",
        )
        .await
        .unwrap();
    let all = format!("{rows:?}");
    assert!(
        !all.contains("Sup3r-Secret"),
        "a password in the audit trail: {all}"
    );
    assert!(
        rows.iter().all(|row| row.0.starts_with("operator@")),
        "every change is the operator's: {all}"
    );
    let summary: Vec<(String, String, Option<String>)> = rows
        .iter()
        .map(|row| (row.1.clone(), row.2.clone(), row.3.clone()))
        .collect();
    let expected = [
        ("data_source", "insert", None),
        ("data_source_password", "insert", None),
        ("data_source", "update", Some("tls_mode")),
        ("data_source", "update", Some("port")),
        ("data_source_password", "update", Some("password")),
        ("setting", "update", Some("value")),
        // the password row goes with it by a foreign key cascade, which fires no trigger
        ("data_source", "delete", None),
    ]
    .map(|(table, action, changed)| {
        (
            table.to_owned(),
            action.to_owned(),
            changed.map(str::to_owned),
        )
    });
    assert_eq!(summary, expected, "{all}");
    let masked = &rows[1].5;
    assert!(
        masked.as_deref().unwrap().contains("********"),
        "{masked:?}"
    );
    let reference = &rows[4].5;
    assert!(
        reference.as_deref().unwrap().contains("env:OTTR_SECRET_SH"),
        "a reference is no secret: {reference:?}"
    );
    let port = &rows[3];
    assert!(
        port.4.as_deref().unwrap().contains("3306") && port.5.as_deref().unwrap().contains("3307"),
        "{port:?}"
    );
    // The operator sets passwords through the procedures, but cannot read them, nor change
    // or erase the trail.
    let denied = operator
        .query_drop(format!(
            "SELECT * FROM `{schema}_secret`.data_source_password"
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&denied, mysql_async::Error::Server(error) if error.code == 1142),
        "{denied}"
    );
    for tampering in [
        "DELETE FROM config_audit",
        "UPDATE config_audit SET login = 'someone@else'",
    ] {
        let error = operator
            .query_drop(tampering)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("append-only"), "{tampering}: {error}");
    }
}
