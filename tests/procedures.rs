//! Every procedure of the SQL control plane on a real MariaDB: the happy path, and each bad
//! input with the message an operator sees.

mod common;

use common::{ServerKind, conn_to, fresh_meta, shared};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// A migrated schema with data sources sh and us, channel orders (sh → us) and one table pair.
async fn configured(schema: &str) -> Conn {
    let server = shared(ServerKind::Plain);
    fresh_meta(server, schema).await;
    let mut conn = conn_to(server, schema).await;
    conn.query_drop(
        "CALL add_data_source('sh', 'mariadb', 'mysql://canal@10.0.0.1:3306', 'env:SH_PASSWORD');
         CALL add_data_source('us', 'mysql', 'mariadb://writer@db.us.example', 'Sup3r-Secret');
         CALL create_channel('orders', 'sh', 'us');
         CALL add_table_pair('orders', 'shop', 'order_.*', NULL, NULL);",
    )
    .await
    .unwrap();
    conn
}

/// Runs `sql` and returns the error message it SIGNALs; panics if it succeeds.
async fn error_of(conn: &mut Conn, sql: &str) -> String {
    match conn.query_drop(sql).await {
        Ok(()) => panic!("{sql} succeeded, but should have failed"),
        Err(mysql_async::Error::Server(error)) => {
            assert_eq!(error.state, "45000", "{sql}: {}", error.message);
            assert!(
                error.message.chars().count() <= 128,
                "{sql}: message over 128 characters"
            );
            error.message
        }
        Err(other) => panic!("{sql}: unexpected error {other}"),
    }
}

#[tokio::test]
async fn data_sources_are_parsed_and_their_passwords_masked() {
    let mut conn = configured("ottr_p_sources").await;
    let rows: Vec<(String, String, String, u32, String, Option<String>)> = conn
        .query("SELECT name, kind, host, port, user, password FROM v_data_source ORDER BY name")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "sh".into(),
                "mariadb".into(),
                "10.0.0.1".into(),
                3306,
                "canal".into(),
                Some("env:SH_PASSWORD".into())
            ),
            (
                "us".into(),
                "mysql".into(),
                "db.us.example".into(),
                3306,
                "writer".into(),
                Some("********".into())
            ),
        ]
    );
    let everything: Vec<mysql_async::Row> =
        conn.query("SELECT * FROM v_data_source").await.unwrap();
    assert!(
        !format!("{everything:?}").contains("Sup3r-Secret"),
        "a view leaks the password"
    );

    conn.query_drop(
        "CALL set_data_source('us', 'mysql://writer2@db2.us.example:3307', 'file:/etc/ottr/us.pw')",
    )
    .await
    .unwrap();
    let (host, port, user, password): (String, u32, String, String) = conn
        .query_first("SELECT host, port, user, password FROM v_data_source WHERE name = 'us'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (host.as_str(), port, user.as_str(), password.as_str()),
        ("db2.us.example", 3307, "writer2", "file:/etc/ottr/us.pw")
    );

    conn.query_drop("CALL add_data_source('spare', 'mariadb', 'mysql://u@h', NULL); CALL drop_data_source('spare')").await.unwrap();
    let count: u64 = conn
        .query_first("SELECT COUNT(*) FROM data_source")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn data_source_procedures_refuse_bad_input_by_name() {
    let mut conn = configured("ottr_p_source_errors").await;
    let cases = [
        (
            "CALL add_data_source('sh', 'mariadb', 'mysql://u@h', NULL)",
            "data source 'sh' already exists",
        ),
        (
            "CALL add_data_source('bad name', 'mariadb', 'mysql://u@h', NULL)",
            "invalid data source name 'bad name'",
        ),
        (
            "CALL add_data_source(NULL, 'mariadb', 'mysql://u@h', NULL)",
            "invalid data source name 'NULL'",
        ),
        (
            "CALL add_data_source('pg', 'postgres', 'mysql://u@h', NULL)",
            "unknown data source kind 'postgres': use mysql or mariadb",
        ),
        (
            "CALL add_data_source('x', 'mysql', 'mysql://u:hunter2@h', NULL)",
            "the data source URL holds a password",
        ),
        (
            "CALL add_data_source('x', 'mysql', 'mysql://u:hun/ter2@h', NULL)",
            "the data source URL holds a password",
        ),
        (
            "CALL add_data_source('x', 'mysql', 'mysql+tls://u:hunter2@h', NULL)",
            "the data source URL holds a password",
        ),
        (
            "CALL add_data_source('x', 'mysql', 'postgres://u@h', NULL)",
            "data source URL 'postgres://…@h' is not mysql://user@host[:port]",
        ),
        (
            "CALL add_data_source('x', 'mysql', 'mysql://h:3306', NULL)",
            "is not mysql://user@host[:port]",
        ),
        (
            "CALL add_data_source('x', 'mysql', 'mysql://u@h:99999', NULL)",
            "data source port 99999 is not between 1 and 65535",
        ),
        (
            "CALL add_data_source('x', 'mysql', 'mysql://u@h', 'env:1BAD')",
            "a password starting with env: must be env:NAME",
        ),
        (
            "CALL add_data_source('x', 'mysql', 'mysql://u@h', 'file:')",
            "password reference 'file:' names no file",
        ),
        (
            "CALL drop_data_source('nope')",
            "unknown data source 'nope'",
        ),
        (
            "CALL drop_data_source('sh')",
            "data source 'sh' is still used by channel 'orders'; drop the channel first",
        ),
        (
            "CALL set_data_source('nope', NULL, NULL)",
            "unknown data source 'nope'",
        ),
        (
            "CALL set_data_source('us', 'mysql://u:pw@h', NULL)",
            "the data source URL holds a password",
        ),
    ];
    for (sql, expected) in cases {
        let message = error_of(&mut conn, sql).await;
        assert!(
            message.contains(expected),
            "{sql}\n  got:      {message}\n  expected: {expected}"
        );
        assert!(
            !message.contains("hunter2") && !message.contains(":pw@"),
            "{sql} echoes a password: {message}"
        );
    }
}

#[tokio::test]
async fn channels_start_stop_and_drop() {
    let mut conn = configured("ottr_p_channels").await;
    let pipeline: (String, String, String, String) = conn
        .query_first("SELECT channel, pipeline, source, target FROM v_pipeline_status")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        pipeline,
        ("orders".into(), "orders".into(), "sh".into(), "us".into())
    );
    let lease_rows: u64 = conn
        .query_first("SELECT COUNT(*) FROM pipeline_lease")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease_rows, 1);

    conn.query_drop("CALL start_channel('orders')")
        .await
        .unwrap();
    let (desired, observed, reason): (String, String, String) = conn
        .query_first("SELECT desired, observed, reason FROM v_pipeline_status")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (desired.as_str(), observed.as_str()),
        ("running", "stopped")
    );
    assert_eq!(reason, "waiting for a node that may run it");
    assert_eq!(
        error_of(&mut conn, "CALL drop_channel('orders')").await,
        "channel 'orders' is running: CALL stop_channel first"
    );
    conn.query_drop("CALL stop_channel('orders'); CALL drop_channel('orders')")
        .await
        .unwrap();
    let left: u64 = conn
        .query_first("SELECT (SELECT COUNT(*) FROM channel) + (SELECT COUNT(*) FROM pipeline) + (SELECT COUNT(*) FROM table_pair) + (SELECT COUNT(*) FROM pipeline_lease)")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left, 0, "drop_channel removes pipelines, pairs and leases");

    // A channel within one server is allowed, as long as its pairs rename.
    conn.query_drop("CALL create_channel('copy', 'sh', 'sh'); CALL add_table_pair('copy', 'shop', 'orders', 'shop_archive', NULL)").await.unwrap();
}

#[tokio::test]
async fn channel_procedures_refuse_bad_input_by_name() {
    let mut conn = configured("ottr_p_channel_errors").await;
    conn.query_drop(
        "CALL create_channel('empty', 'sh', 'us'); CALL create_channel('same', 'sh', 'sh')",
    )
    .await
    .unwrap();
    let cases = [
        (
            "CALL create_channel('orders', 'sh', 'us')",
            "channel 'orders' already exists",
        ),
        (
            "CALL create_channel('new', 'nope', 'us')",
            "unknown source data source 'nope'",
        ),
        (
            "CALL create_channel('new', 'sh', 'nope')",
            "unknown target data source 'nope'",
        ),
        (
            "CALL create_channel('-bad', 'sh', 'us')",
            "invalid channel name '-bad'",
        ),
        ("CALL start_channel('nope')", "unknown channel 'nope'"),
        ("CALL stop_channel('nope')", "unknown channel 'nope'"),
        ("CALL drop_channel('nope')", "unknown channel 'nope'"),
        (
            "CALL start_channel('empty')",
            "channel 'empty' has no table pairs: CALL add_table_pair first",
        ),
        (
            "CALL add_table_pair('nope', 'shop', 't', NULL, NULL)",
            "unknown channel 'nope'",
        ),
        (
            "CALL add_table_pair('orders', 'shop', 'order_(', NULL, NULL)",
            "invalid table regex 'order_('",
        ),
        (
            "CALL add_table_pair('orders', 'sh[op', 't', NULL, NULL)",
            "invalid schema regex 'sh[op'",
        ),
        (
            "CALL add_table_pair('orders', '', 't', NULL, NULL)",
            "the source schema name is empty",
        ),
        (
            "CALL add_table_pair('orders', 'shop', 'order_.*', NULL, NULL)",
            "channel 'orders' already has a table pair for shop.order_.*",
        ),
        (
            "CALL add_table_pair('orders', 'ottr_sys', 't', NULL, NULL)",
            "schema ottr_sys is a system schema and is never synced",
        ),
        (
            "CALL add_table_pair('orders', 'shop', 't', 'a.*', NULL)",
            "target schema 'a.*' must be an exact name",
        ),
        (
            "CALL add_table_pair('same', 'shop', 't', NULL, NULL)",
            "source and target are the same server: shop.t would be copied onto itself",
        ),
        (
            "CALL remove_table_pair('orders', 'shop', 'nope')",
            "channel 'orders' has no table pair for shop.nope",
        ),
    ];
    for (sql, expected) in cases {
        let message = error_of(&mut conn, sql).await;
        assert!(
            message.contains(expected),
            "{sql}\n  got:      {message}\n  expected: {expected}"
        );
    }
    conn.query_drop("CALL remove_table_pair('orders', 'shop', 'order_.*')")
        .await
        .unwrap();
    let pairs: u64 = conn
        .query_first("SELECT COUNT(*) FROM table_pair")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pairs, 0);
}

#[tokio::test]
async fn column_pairs_include_rename_or_exclude() {
    let mut conn = configured("ottr_p_columns").await;
    conn.query_drop(
        "CALL add_column_pair('orders', 'shop', 'order_.*', 'include', 'id', NULL);
         CALL add_column_pair('orders', 'shop', 'order_.*', 'include', 'amount', 'total');",
    )
    .await
    .unwrap();
    let (mode, count): (String, u64) = conn
        .query_first("SELECT column_mode, column_pairs FROM v_table_pair")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((mode.as_str(), count), ("include", 2));
    let cases = [
        (
            "CALL add_column_pair('orders', 'shop', 'order_.*', 'exclude', 'secret', NULL)",
            "already has include columns: a pair is either include or exclude",
        ),
        (
            "CALL add_column_pair('orders', 'shop', 'order_.*', 'include', 'id', NULL)",
            "column id already has a column pair",
        ),
        (
            "CALL add_column_pair('orders', 'shop', 'order_.*', 'rename', 'x', NULL)",
            "unknown column pair mode 'rename': use include or exclude",
        ),
        (
            "CALL add_column_pair('orders', 'shop', 'nope', 'include', 'x', NULL)",
            "channel 'orders' has no table pair for shop.nope",
        ),
        (
            "CALL add_column_pair('orders', 'shop', 'order_.*', 'include', '', NULL)",
            "column name '' must have 1-64 characters",
        ),
        (
            "CALL remove_column_pair('orders', 'shop', 'order_.*', 'nope')",
            "column nope has no column pair",
        ),
    ];
    for (sql, expected) in cases {
        let message = error_of(&mut conn, sql).await;
        assert!(
            message.contains(expected),
            "{sql}\n  got:      {message}\n  expected: {expected}"
        );
    }
    conn.query_drop("CALL remove_column_pair('orders', 'shop', 'order_.*', 'id'); CALL remove_column_pair('orders', 'shop', 'order_.*', 'amount');").await.unwrap();
    conn.query_drop(
        "CALL add_column_pair('orders', 'shop', 'order_.*', 'exclude', 'secret', NULL)",
    )
    .await
    .unwrap();
    let message = error_of(
        &mut conn,
        "CALL add_column_pair('orders', 'shop', 'order_.*', 'exclude', 'x', 'y')",
    )
    .await;
    assert_eq!(message, "column x is excluded, so it cannot be renamed");
}

#[tokio::test]
async fn pipeline_options_and_allowed_nodes() {
    let mut conn = configured("ottr_p_options").await;
    conn.query_drop(
        "CALL set_pipeline_option('orders', 'batch_rows', '2000');
         CALL set_pipeline_option('orders', 'load_parallelism', '4');
         CALL set_pipeline_option('orders', 'ddl_sync', 'off');
         CALL set_pipeline_option('orders', 'transactional', 'on');
         CALL set_pipeline_option('orders', 'server_id', '4242');
         CALL allow_node('orders', 'node-sh-1');",
    )
    .await
    .unwrap();
    let row: (u32, u32, bool, bool, u32) = conn
        .query_first(
            "SELECT batch_rows, load_parallelism, ddl_sync, transactional, server_id FROM pipeline",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row, (2000, 4, false, true, 4242));
    let nodes: Vec<String> = conn.query("SELECT node FROM pipeline_node").await.unwrap();
    assert_eq!(nodes, vec!["node-sh-1".to_owned()]);
    let cases = [
        (
            "CALL set_pipeline_option('nope', 'batch_rows', '1')",
            "unknown pipeline or channel 'nope'",
        ),
        (
            "CALL set_pipeline_option('orders', 'batch_rows', '0')",
            "batch_rows must be a number from 1 to 1000000, not '0'",
        ),
        (
            "CALL set_pipeline_option('orders', 'batch_rows', 'lots')",
            "batch_rows must be a number from 1 to 1000000, not 'lots'",
        ),
        (
            "CALL set_pipeline_option('orders', 'batch_bytes', '10')",
            "batch_bytes must be a number from 1024",
        ),
        (
            "CALL set_pipeline_option('orders', 'load_parallelism', '1000')",
            "load_parallelism must be a number from 1 to 256",
        ),
        (
            "CALL set_pipeline_option('orders', 'ddl_sync', 'maybe')",
            "ddl_sync must be on or off, not 'maybe'",
        ),
        (
            "CALL set_pipeline_option('orders', 'colour', 'blue')",
            "unknown pipeline option 'colour'",
        ),
        (
            "CALL allow_node('orders', 'bad node')",
            "invalid node name 'bad node'",
        ),
        (
            "CALL disallow_node('orders', 'node-us-1')",
            "node 'node-us-1' was not allowed for 'orders'",
        ),
    ];
    for (sql, expected) in cases {
        let message = error_of(&mut conn, sql).await;
        assert!(
            message.contains(expected),
            "{sql}\n  got:      {message}\n  expected: {expected}"
        );
    }
    conn.query_drop("CALL disallow_node('orders', 'node-sh-1')")
        .await
        .unwrap();
}

#[tokio::test]
async fn reset_position_accepts_every_form_and_names_a_bad_one() {
    let mut conn = configured("ottr_p_positions").await;
    let forms = [
        (
            "mysql-bin.000003:1234",
            "file",
            "mysql-bin.000003",
            "1234",
            "",
        ),
        ("0-1-42,1-2-7", "gtid", "", "", "0-1-42,1-2-7"),
        (
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-42",
            "gtid",
            "",
            "",
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-42",
        ),
        (
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:23",
            "gtid",
            "",
            "",
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:23",
        ),
        ("2026-11-22 08:00:00.5", "timestamp", "", "", ""),
        ("end", "end", "", "", ""),
    ];
    for (position, kind, file, offset, gtid) in forms {
        conn.exec_drop("CALL reset_position('orders', ?)", (position,))
            .await
            .unwrap();
        let row: (String, String, String, String) = conn
            .query_first("SELECT start_kind, COALESCE(start_file, ''), COALESCE(start_offset, ''), COALESCE(start_gtid, '') FROM pipeline")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row,
            (kind.into(), file.into(), offset.into(), gtid.into()),
            "{position}"
        );
    }
    let start_time: String = {
        conn.query_drop("CALL reset_position('orders', '2026-11-22T08:00:00')")
            .await
            .unwrap();
        conn.query_first("SELECT CAST(start_time AS CHAR) FROM pipeline")
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(start_time, "2026-11-22 08:00:00.000000");
    let before: String = conn
        .query_first("SELECT CAST(UTC_TIMESTAMP(6) AS CHAR)")
        .await
        .unwrap()
        .unwrap();
    conn.query_drop("CALL reset_position('orders', 'now')")
        .await
        .unwrap();
    let (kind, after_before): (String, bool) = conn
        .exec_first(
            "SELECT start_kind, start_time >= ? FROM pipeline",
            (before,),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((kind.as_str(), after_before), ("timestamp", true));

    // While a node still holds the lease (stopping), a reset is refused.
    conn.query_drop(
        "UPDATE pipeline_lease SET holder = 'n1', token = 7, expires_at = NOW(6) + INTERVAL 1 HOUR;
         INSERT INTO pipeline_position (pipeline_id, binlog_file, binlog_offset, token) SELECT id, 'mysql-bin.000009', 4, 7 FROM pipeline;",
    )
    .await
    .unwrap();
    assert_eq!(
        error_of(&mut conn, "CALL reset_position('orders', 'end')").await,
        "pipeline 'orders' is still stopping on its node: try again in a moment"
    );
    // Resetting forgets the saved position and fences the last holder's token.
    conn.query_drop("UPDATE pipeline_lease SET expires_at = NOW(6) - INTERVAL 1 SECOND")
        .await
        .unwrap();
    conn.query_drop("CALL reset_position('orders', 'mysql-bin.000001:4')")
        .await
        .unwrap();
    let (positions, holder, token): (u64, Option<String>, u64) = conn
        .query_first(
            "SELECT (SELECT COUNT(*) FROM pipeline_position), holder, token FROM pipeline_lease",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((positions, holder, token), (0, None, 8));

    let cases = [
        (
            "CALL reset_position('orders', 'yesterday')",
            "position 'yesterday' is not FILE:POS, a GTID, a UTC timestamp, now or end",
        ),
        (
            "CALL reset_position('orders', 'mysql-bin.000001:2')",
            "a binlog offset starts at 4",
        ),
        (
            "CALL reset_position('orders', '2026-13-45 00:00:00')",
            "is not FILE:POS",
        ),
        (
            "CALL reset_position('orders', NULL)",
            "position '' is not FILE:POS",
        ),
        (
            "CALL reset_position('nope', 'end')",
            "unknown pipeline or channel 'nope'",
        ),
    ];
    for (sql, expected) in cases {
        let message = error_of(&mut conn, sql).await;
        assert!(
            message.contains(expected),
            "{sql}\n  got:      {message}\n  expected: {expected}"
        );
    }
    conn.query_drop("CALL start_channel('orders')")
        .await
        .unwrap();
    let message = error_of(&mut conn, "CALL reset_position('orders', 'end')").await;
    assert_eq!(
        message,
        "pipeline 'orders' is running: CALL stop_channel first"
    );
}

#[tokio::test]
async fn settings_are_bounded_rows() {
    let mut conn = configured("ottr_p_settings").await;
    conn.query_drop("CALL set_setting('lease_ms', 5000)")
        .await
        .unwrap();
    let value: i64 = conn
        .query_first("SELECT value FROM setting WHERE name = 'lease_ms'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value, 5000);
    assert_eq!(
        error_of(&mut conn, "CALL set_setting('lease_ms', 10)").await,
        "setting lease_ms must be between 500 and 600000, not 10"
    );
    assert!(
        error_of(&mut conn, "CALL set_setting('colour', 1)")
            .await
            .contains("unknown setting 'colour'")
    );
    // A plain UPDATE is bounded too, by the table's CHECK constraint.
    let error = conn
        .query_drop("UPDATE setting SET value = -1 WHERE name = 'poll_ms'")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ck_setting_range"), "{error}");
}

#[tokio::test]
async fn every_dashboard_query_runs_on_the_metadata_schema() {
    let mut conn = configured("ottr_p_dashboards").await;
    let mut queries = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let sql = target["rawSql"]
                    .as_str()
                    .unwrap()
                    .replace("$__timeFilter(at)", "at > NOW() - INTERVAL 1 DAY");
                let result: Result<Vec<mysql_async::Row>, _> = conn.query(&sql).await;
                assert!(
                    result.is_ok(),
                    "{} panel {}: {sql}: {:?}",
                    path.display(),
                    panel["title"],
                    result.err()
                );
                queries += 1;
            }
        }
    }
    assert!(queries >= 7);
}
