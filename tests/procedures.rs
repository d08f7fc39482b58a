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

/// Grafana's MySQL macros and this dashboard's variables, expanded as Grafana would for the
/// last day and the pipeline `orders`.
fn expand_grafana(sql: &str) -> String {
    let macro_call =
        regex::Regex::new(r"\$__(timeFilter|timeGroup)\(([^,()]+)(?:,\s*'(\d+)([smh])')?\)")
            .unwrap();
    let expanded = macro_call.replace_all(sql, |captures: &regex::Captures| {
        let column = captures[2].trim();
        match &captures[1] {
            "timeFilter" => format!(
                "{column} BETWEEN FROM_UNIXTIME(UNIX_TIMESTAMP() - 86400) AND FROM_UNIXTIME(UNIX_TIMESTAMP() + 3600)"
            ),
            _ => {
                let amount: u64 = captures[3].parse().unwrap();
                let seconds = amount * match &captures[4] {
                    "s" => 1,
                    "m" => 60,
                    _ => 3600,
                };
                format!("UNIX_TIMESTAMP({column}) DIV {seconds} * {seconds}")
            }
        }
    });
    expanded
        .replace("$channel", "'orders'")
        .replace("$pipeline", "'orders'")
}

#[tokio::test]
async fn every_dashboard_query_runs_on_the_metadata_schema_and_returns_rows() {
    let mut conn = configured("ottr_p_dashboards").await;
    // What nodes and the monitor would have written: statistics, lag, a node, an alert.
    conn.query_drop(
        "INSERT INTO node (name, host, pid, version, instance) VALUES ('n1', 'h', 1, '0.1.0', 1);
         INSERT INTO event_log (node, pipeline_id, level, kind, message)
           SELECT 'n1', id, 'info', 'lease_acquired', 'lease acquired with token 1' FROM pipeline;
         INSERT INTO pipeline_lag (pipeline_id, lag_ms, method, source_time, applied_at, heartbeat_ms)
           SELECT id, 120, 'heartbeat', NOW(6), NOW(6), 1000 FROM pipeline;
         INSERT INTO stat_pipeline (pipeline_id, bucket_start, bucket_s, inserts, updates, deletes, ddls,
             insert_bytes, batches, select_us, extract_us, transform_us, load_us, lag_samples, lag_sum_ms, lag_max_ms)
           SELECT id, NOW() - INTERVAL 30 SECOND, 10, 5, 3, 1, 1, 900, 2, 100, 20, 30, 800, 10, 1500, 300 FROM pipeline;
         INSERT INTO stat_lag (pipeline_id, bucket_start, le_ms, samples)
           SELECT id, NOW() - INTERVAL 30 SECOND, 100, 6 FROM pipeline UNION ALL
           SELECT id, NOW() - INTERVAL 30 SECOND, 300, 4 FROM pipeline;
         INSERT INTO stat_table (pipeline_id, bucket_start, schema_name, table_name, inserts, updates, deletes, bytes)
           SELECT id, NOW() - INTERVAL 30 SECOND, 'shop', 'order_1', 5, 3, 1, 900 FROM pipeline;
         CALL add_alarm_rule('lag', 'lag', 'orders', '60', '0 * * * * *', 'ops@example.com', 600, NULL);
         INSERT INTO alert (rule_id, scope, open_scope, first_measured, measured)
           SELECT id, 'orders', 'orders', 'lag 75.0 s', 'lag 80.0 s' FROM alarm_rule;
         INSERT INTO copy_job (pipeline_id, source_schema, table_pattern, expanded) SELECT id, 'shop', 'order_1', 1 FROM pipeline;
         INSERT INTO copy_table (job_id, source_schema, source_table, state, rows_copied, rows_estimated, rows_per_s)
           SELECT id, 'shop', 'order_1', 'copying', 500, 1000, 250 FROM copy_job;
         INSERT INTO verify_job (pipeline_id) SELECT id FROM pipeline;
         INSERT INTO verify_table (job_id, source_schema, source_table, state, rows_compared, rows_differing, rows_estimated)
           SELECT id, 'shop', 'order_1', 'verifying', 500, 1, 1000 FROM verify_job;",
    )
    .await
    .unwrap();
    let mut queries = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        let variable_queries = variables
            .iter()
            .filter(|variable| variable["type"] == "query")
            .map(|variable| {
                (
                    "variable",
                    variable["name"].clone(),
                    variable["query"].as_str().unwrap(),
                )
            });
        let panel_queries = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|panel| {
                panel["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |target| {
                        (
                            "panel",
                            panel["title"].clone(),
                            target["rawSql"].as_str().unwrap(),
                        )
                    })
            });
        for (what, name, raw) in variable_queries.chain(panel_queries) {
            let sql = expand_grafana(raw);
            assert!(
                !sql.contains('$'),
                "{} {what} {name}: a macro or variable is left: {sql}",
                path.display()
            );
            let result: Result<Vec<mysql_async::Row>, _> = conn.query(&sql).await;
            match result {
                Ok(rows) => assert!(
                    !rows.is_empty(),
                    "{} {what} {name} returned no rows: {sql}",
                    path.display()
                ),
                Err(error) => panic!("{} {what} {name}: {sql}: {error}", path.display()),
            }
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries} queries");
    // The percentiles come from the summed histogram: 6 samples <= 100 ms, 4 more <= 300 ms.
    let (p50, p99): (u64, u64) = conn
        .query_first("SELECT p50_1m_ms, p99_1m_ms FROM v_lag WHERE pipeline = 'orders'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p50, p99), (100, 300));
}

#[tokio::test]
async fn alarm_rules_are_validated_with_clear_messages() {
    let mut conn = configured("ottr_p_alarms").await;
    let add = |kind: &str, pipeline: &str, threshold: &str, cron: &str, recipients: &str| {
        format!(
            "CALL add_alarm_rule('r1', '{kind}', {pipeline}, '{threshold}', '{cron}', '{recipients}', 600, NULL)"
        )
    };
    let cases = [
        (
            add("lagg", "NULL", "5", "* * * * * *", "ops@example.com"),
            "unknown alarm kind 'lagg'",
        ),
        (
            add("lag", "NULL", "5", "every minute", "ops@example.com"),
            "has 2 fields",
        ),
        (
            add("lag", "NULL", "5", "61 * * * * *", "ops@example.com"),
            "second field '61' is not valid",
        ),
        (
            add("lag", "NULL", "5", "0 0 * * * 0", "ops@example.com"),
            "day of week is 1-7, 1 = Sunday",
        ),
        (
            add("lag", "NULL", "5", "* * * * 8", "ops@example.com"),
            "day of week field '8'",
        ),
        (
            add("lag", "NULL", "5", "* * * * * *", ""),
            "needs recipients",
        ),
        (
            add("lag", "NULL", "5", "* * * * * *", "ops"),
            "invalid recipients 'ops'",
        ),
        (
            add("lag", "NULL", "soon", "* * * * * *", "ops@example.com"),
            "whole number as its threshold",
        ),
        (
            add("lag", "NULL", "0", "* * * * * *", "ops@example.com"),
            "threshold above 0",
        ),
        (
            add("error_text", "NULL", "(", "* * * * * *", "ops@example.com"),
            "invalid error_text pattern",
        ),
        (
            add("lag", "'nope'", "5", "* * * * * *", "ops@example.com"),
            "unknown pipeline or channel 'nope'",
        ),
        (
            add(
                "node_dead",
                "'orders'",
                "5",
                "* * * * * *",
                "ops@example.com",
            ),
            "give NULL as its pipeline",
        ),
    ];
    for (sql, expected) in cases {
        let message = error_of(&mut conn, &sql).await;
        assert!(message.contains(expected), "{sql}: {message}");
    }
    conn.query_drop(add(
        "lag",
        "'orders'",
        "30",
        "*/5 * * * *",
        "ops@example.com, dba@example.com",
    ))
    .await
    .unwrap();
    assert!(
        error_of(
            &mut conn,
            &add("lag", "NULL", "5", "* * * * * *", "ops@example.com")
        )
        .await
        .contains("already exists")
    );
    conn.query_drop(
        "CALL add_alarm_window('r1', 'mon, tue', '22:00', '06:00');
         CALL pause_alarm_rule('r1', 30);
         CALL set_smtp('smtp.example.com', 587, 'STARTTLS', 'ottr', 'env:SMTP_PASSWORD', 'ottr@example.com');
         CALL install_default_alarm_rules('ops@example.com');
         CALL install_default_alarm_rules('ops@example.com');",
    )
    .await
    .unwrap();
    let (scope, status, windows): (String, String, String) = conn
        .query_first("SELECT scope, status, windows_utc FROM v_alarm_rule WHERE name = 'r1'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (scope.as_str(), status.as_str(), windows.as_str()),
        ("orders", "paused", "mon,tue 22:00-06:00")
    );
    let defaults: u64 = conn
        .query_first("SELECT COUNT(*) FROM alarm_rule WHERE name LIKE 'default\\_%'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(defaults, 8);
    let security: String = conn
        .query_first("SELECT security FROM smtp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(security, "starttls");
    for (sql, expected) in [
        (
            "CALL add_alarm_window('r1', 'someday', '22:00', '06:00')",
            "invalid days 'someday'",
        ),
        (
            "CALL add_alarm_window('r1', 'all', '25:00', '06:00')",
            "invalid window start '25:00'",
        ),
        (
            "CALL add_alarm_window('r2', 'all', '01:00', '06:00')",
            "unknown alarm rule 'r2'",
        ),
        (
            "CALL set_smtp('smtp.example.com', 587, 'ssl', NULL, NULL, 'ottr@example.com')",
            "none, starttls or tls",
        ),
        (
            "CALL set_smtp('smtp.example.com', 0, 'tls', NULL, NULL, 'ottr@example.com')",
            "SMTP port",
        ),
        (
            "CALL set_smtp('smtp.example.com', 465, 'tls', NULL, NULL, 'ottr')",
            "invalid From address 'ottr'",
        ),
        ("CALL pause_alarm_rule('r1', 0)", "pause minutes"),
        (
            "CALL set_pipeline_option('orders', 'heartbeat_ms', '50')",
            "heartbeat_ms must be 0 (off)",
        ),
    ] {
        let message = error_of(&mut conn, sql).await;
        assert!(message.contains(expected), "{sql}: {message}");
    }
    conn.query_drop("CALL disable_alarm_rule('r1'); CALL enable_alarm_rule('r1'); CALL drop_alarm_rule('r1'); CALL restart_pipeline('orders'); CALL set_pipeline_option('orders', 'heartbeat_ms', '0')")
        .await
        .unwrap();
    let (restarts, heartbeat): (u64, u64) = conn
        .query_first("SELECT restart_seq, heartbeat_ms FROM pipeline")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((restarts, heartbeat), (1, 0));
}

/// The procedures' cron check and the nodes' cron parser agree on what is a valid expression.
#[tokio::test]
async fn sql_and_rust_agree_on_cron_expressions() {
    let mut conn = configured("ottr_p_cron").await;
    let expressions = [
        "* * * * * *",
        "0 * * * * *",
        "*/10 * * * * *",
        "0 30 9 * * Mon-Fri",
        "0 0 0 1 Jan *",
        "0 0 12 * * 1,7",
        "0 0 12 * * 1 2027",
        "5/15 * * * * *",
        "0 0 8-18/2 * * *",
        "* * * * *",
        "30 9 * * 1-5",
        "0 22 * * 0",
        "0 0 * * 7",
        "0 0 1 */3 *",
        "0 0 1 * 1",
        "0 0 * * 1/2",
        "every minute",
        "* * *",
        "60 * * * * *",
        "0 60 * * * *",
        "0 0 24 * * *",
        "0 0 0 32 * *",
        "0 0 0 * 13 *",
        "0 0 0 * * 0",
        "0 0 0 * * 8",
        "* * * * 8",
        "* 24 * * *",
        "0 0 0 * * * * *",
        "0 0 0 ? * *",
    ];
    for expression in expressions {
        let problem: Option<String> = conn
            .exec_first("SELECT cron_problem(?)", (expression,))
            .await
            .unwrap()
            .unwrap();
        let parsed = ottr::config::parse_cron(expression);
        assert_eq!(
            problem.is_none(),
            parsed.is_ok(),
            "'{expression}': SQL says {problem:?}, Rust says {:?}",
            parsed.err()
        );
    }
}
