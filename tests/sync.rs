//! One-way sync end to end on three real MariaDB servers (source, target, metadata) with an
//! `ottr node`: every change of the paired tables reaches the target, compared row by row.

mod common;

use common::{Installation, MariaDb, NodeProcess, SHORT, ServerKind, conn_to, shared, temp_dir};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::time::Duration;

fn source() -> &'static MariaDb {
    shared(ServerKind::Source)
}

fn target() -> &'static MariaDb {
    shared(ServerKind::Target)
}

fn meta() -> &'static MariaDb {
    shared(ServerKind::Plain)
}

/// A metadata schema with short timings, data sources sh → us, and a channel `name` over
/// `schema` (exact) with the given extra SQL, started.
async fn channel(
    schema: &str,
    pairs: &[(&str, &str, Option<&str>, Option<&str>)],
    extra: &str,
) -> Installation {
    let mut sync = Installation::new(meta(), &format!("ottr_y_{schema}"), SHORT).await;
    sync.data_source("sh", source(), "root").await;
    sync.data_source("us", target(), "root").await;
    sync.start_one_way(schema, ("sh", "us"), pairs, 100, extra)
        .await;
    sync
}

/// What the sync tests wait for.
trait SyncTest {
    async fn running(&mut self);
}

impl SyncTest for Installation {
    /// The channel's one pipeline runs and applies changes.
    async fn running(&mut self) {
        self.wait_running(None, Duration::from_secs(30)).await;
    }
}

use common::table_rows as rows;

/// Waits until `target_table` on the target equals `source_table` on the source, row by row.
async fn converged(source_table: &str, target_table: &str) {
    converged_or(source_table, target_table, None).await
}

async fn converged_or(source_table: &str, target_table: &str, status: Option<&mut Conn>) {
    converged_within(source_table, target_table, status, Duration::from_secs(30)).await
}

async fn converged_within(
    source_table: &str,
    target_table: &str,
    status: Option<&mut Conn>,
    limit: Duration,
) {
    let mut last: (common::Rows, common::Rows);
    eventually!(
        limit,
        format!("{target_table} to converge to {source_table}"),
        {
            last = (
                rows(source(), source_table).await,
                rows(target(), target_table).await,
            );
            (last.0 == last.1).then_some(())
        },
        else {
            let reason: Option<(String, Option<String>)> = match status {
                Some(conn) => conn
                    .query_first("SELECT observed, reason FROM v_pipeline_status")
                    .await
                    .unwrap(),
                None => None,
            };
            format!("source {:?}\ntarget {:?}\npipeline {reason:?}", last.0, last.1)
        }
    );
}

async fn both(sql: &str) {
    for server in [source(), target()] {
        server.run(sql).await;
    }
}

#[tokio::test]
async fn inserts_updates_deletes_and_key_changes_reach_the_target() {
    both(
        "DROP DATABASE IF EXISTS y_basic; CREATE DATABASE y_basic;
         CREATE TABLE y_basic.orders (id INT PRIMARY KEY, customer VARCHAR(20), amount DECIMAL(10,2), at DATETIME(6));
         CREATE TABLE y_basic.lines (order_id INT, line INT, sku VARCHAR(10), PRIMARY KEY (order_id, line));",
    )
    .await;
    let mut sync = channel(
        "y_basic",
        &[
            ("y_basic", "orders", None, None),
            ("y_basic", "lines", None, None),
        ],
        "",
    )
    .await;
    let _node = sync.node("n1");
    sync.running().await;
    let mut conn = source().conn().await;
    conn.query_drop(
        "INSERT INTO y_basic.orders VALUES (1, 'ada', 12.50, '2026-11-22 01:02:03.456789'), (2, 'bob', 7, NULL), (3, 'cy', 1, NULL);
         BEGIN; INSERT INTO y_basic.lines VALUES (1, 1, 'a'), (1, 2, 'b'); UPDATE y_basic.orders SET amount = amount + 1 WHERE id = 1; COMMIT;
         UPDATE y_basic.orders SET customer = 'robert' WHERE id = 2;
         DELETE FROM y_basic.orders WHERE id = 3;
         UPDATE y_basic.orders SET id = 10 WHERE id = 1; UPDATE y_basic.orders SET id = 11 WHERE id = 10;
         INSERT INTO y_basic.orders VALUES (3, 'cy again', 2, NULL);
         UPDATE y_basic.lines SET line = line + 10;",
    )
    .await
    .unwrap();
    converged("y_basic.orders", "y_basic.orders").await;
    converged("y_basic.lines", "y_basic.lines").await;
}

#[tokio::test]
async fn regex_pairs_rename_and_columns_are_included_excluded_and_renamed() {
    both("DROP DATABASE IF EXISTS y_map; CREATE DATABASE y_map; DROP DATABASE IF EXISTS y_map_copy; CREATE DATABASE y_map_copy;").await;
    source()
        .conn()
        .await
        .query_drop(
            "CREATE TABLE y_map.order_1 (id INT PRIMARY KEY, v INT); CREATE TABLE y_map.order_2 (id INT PRIMARY KEY, v INT);
             CREATE TABLE y_map.people (id INT PRIMARY KEY, name VARCHAR(20), secret VARCHAR(20), note VARCHAR(20));
             CREATE TABLE y_map.ignored (id INT PRIMARY KEY);",
        )
        .await
        .unwrap();
    target()
        .conn()
        .await
        .query_drop(
            "CREATE TABLE y_map_copy.order_1 (id INT PRIMARY KEY, v INT); CREATE TABLE y_map_copy.order_2 (id INT PRIMARY KEY, v INT);
             CREATE TABLE y_map_copy.persons (id INT PRIMARY KEY, full_name VARCHAR(20), note VARCHAR(20));",
        )
        .await
        .unwrap();
    let mut sync = channel(
        "y_map",
        &[
            ("y_map", "order_[0-9]+", Some("y_map_copy"), None),
            ("y_map", "people", Some("y_map_copy"), Some("persons")),
        ],
        "CALL add_column_pair('y_map', 'y_map', 'people', 'include', 'id', NULL);
         CALL add_column_pair('y_map', 'y_map', 'people', 'include', 'name', 'full_name');
         CALL add_column_pair('y_map', 'y_map', 'people', 'include', 'note', NULL);",
    )
    .await;
    let _node = sync.node("n1");
    sync.running().await;
    source()
        .conn()
        .await
        .query_drop(
            "INSERT INTO y_map.order_1 VALUES (1, 10); INSERT INTO y_map.order_2 VALUES (1, 20), (2, 21);
             INSERT INTO y_map.people VALUES (1, 'ada', 'hunter2', 'n1'), (2, 'bob', 'pw', NULL);
             UPDATE y_map.people SET secret = 'changed', name = 'ada l.' WHERE id = 1;
             INSERT INTO y_map.ignored VALUES (1);",
        )
        .await
        .unwrap();
    converged("y_map.order_1", "y_map_copy.order_1").await;
    converged("y_map.order_2", "y_map_copy.order_2").await;
    // DDL on a renamed table is rewritten to its target.
    source()
        .conn()
        .await
        .query_drop(
            "ALTER TABLE y_map.order_1 ADD COLUMN extra INT NOT NULL DEFAULT 7;
             INSERT INTO y_map.order_1 VALUES (5, 50, 8);
             CREATE TABLE y_map.order_3 (id INT PRIMARY KEY); INSERT INTO y_map.order_3 VALUES (1);",
        )
        .await
        .unwrap();
    converged_or("y_map.order_1", "y_map_copy.order_1", Some(&mut sync.meta)).await;
    converged("y_map.order_3", "y_map_copy.order_3").await;
    let mut conn = target().conn().await;
    let people: Vec<(i32, String, Option<String>)> = {
        let conn = &mut conn;
        eventually!(Duration::from_secs(20), "the people to arrive", {
            let rows: Vec<(i32, String, Option<String>)> = conn
                .query("SELECT id, full_name, note FROM y_map_copy.persons ORDER BY id")
                .await
                .unwrap();
            (rows.len() == 2 && rows[0].1 == "ada l.").then_some(rows)
        })
    };
    assert_eq!(
        people,
        vec![
            (1, "ada l.".into(), Some("n1".into())),
            (2, "bob".into(), None)
        ]
    );
}

#[tokio::test]
async fn the_type_matrix_round_trips_into_the_target() {
    let schema = "CREATE TABLE y_types.matrix (
      id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, mi MEDIUMINT, biu BIGINT UNSIGNED, de DECIMAL(65,30), f FLOAT, d DOUBLE,
      vc VARCHAR(100), vl VARCHAR(50) CHARACTER SET latin1, vg VARCHAR(50) CHARACTER SET gbk, bn BINARY(4), bl BLOB,
      dt DATE, tm TIME(6), dt6 DATETIME(6), ts6 TIMESTAMP(6) NULL, y YEAR, e ENUM('small','large'), st SET('a','b','c'),
      b64 BIT(64), j JSON, g GEOMETRY) DEFAULT CHARSET=utf8mb4;
      CREATE TABLE y_types.float_key (f FLOAT PRIMARY KEY, v INT);
      CREATE TABLE y_types.decimal_key (d DECIMAL(40,20) PRIMARY KEY, v INT)";
    both(&format!(
        "DROP DATABASE IF EXISTS y_types; CREATE DATABASE y_types; {schema}"
    ))
    .await;
    // The target runs in another time zone: TIMESTAMP must still arrive as the same instant.
    let mut sync = channel("y_types", &[("y_types", ".*", None, None)], "").await;
    let _node = sync.node("n1");
    sync.running().await;
    source()
        .conn()
        .await
        .query_drop(
            "INSERT INTO y_types.matrix VALUES (1, -128, 255, -8388608, 18446744073709551615,
               -99999999999999999999999999999999999.999999999999999999999999999999, -3.40282e38, 1.7976931348623157e308,
               '😀 中文', 'café', '中文', x'0001', x'deadbeef00', '0000-00-00', '-838:59:59.000000', '2026-11-22 01:02:03.456789',
               '2038-01-19 03:14:07.999999', 0, 'large', 'a,c', b'1010101010', '{\"a\": [1, 2.5, null]}', ST_GeomFromText('POINT(1 2)'));
             INSERT INTO y_types.matrix (id) VALUES (2);
             UPDATE y_types.matrix SET vc = 'updated' WHERE id = 2;
             INSERT INTO y_types.matrix (id, vc, vl, bl, f, d) VALUES (3,
               CONCAT('it''s \\\\ \"q\" ', CHAR(0), CHAR(26), CHAR(10), CHAR(13), '\\''), 'x\\y''',
               CONCAT('a\\\\b', CHAR(0)), 0.1, 1e-300);
             INSERT INTO y_types.float_key VALUES (0.1, 1), (-3.3, 2), (1e-30, 3), (7, 4);
             INSERT INTO y_types.decimal_key VALUES (0.1, 1), (12345678901234567890.12345678901234567890, 2),
               (12345678901234567890.12345678901234567891, 3), (-0.00000000000000000001, 4);",
        )
        .await
        .unwrap();
    converged("y_types.matrix", "y_types.matrix").await;
    converged("y_types.float_key", "y_types.float_key").await;
    converged("y_types.decimal_key", "y_types.decimal_key").await;
    // Keys of FLOAT and DECIMAL rows already on the target are matched exactly by deletes and
    // upserts (a FLOAT compared with the literal 0.1 would never match).
    source()
        .conn()
        .await
        .query_drop(
            "DELETE FROM y_types.float_key WHERE v IN (1, 3);
             UPDATE y_types.float_key SET v = 20 WHERE v = 2;
             DELETE FROM y_types.decimal_key WHERE v IN (2, 4);
             UPDATE y_types.decimal_key SET v = 30 WHERE v = 3;",
        )
        .await
        .unwrap();
    converged("y_types.float_key", "y_types.float_key").await;
    converged("y_types.decimal_key", "y_types.decimal_key").await;
}

#[tokio::test]
async fn a_table_without_a_key_keeps_its_duplicate_rows() {
    both("DROP DATABASE IF EXISTS y_nokey; CREATE DATABASE y_nokey; CREATE TABLE y_nokey.log (msg VARCHAR(20), n INT);").await;
    let mut sync = channel("y_nokey", &[("y_nokey", "log", None, None)], "").await;
    let _node = sync.node("n1");
    sync.running().await;
    source()
        .conn()
        .await
        .query_drop(
            "INSERT INTO y_nokey.log VALUES ('same', 1), ('same', 1), ('same', 1), ('other', 2);
             DELETE FROM y_nokey.log WHERE msg = 'same' LIMIT 1;
             UPDATE y_nokey.log SET n = 5 WHERE msg = 'other';",
        )
        .await
        .unwrap();
    converged_or("y_nokey.log", "y_nokey.log", Some(&mut sync.meta)).await;
}

#[tokio::test]
async fn ddl_on_paired_tables_is_applied_while_rows_flow() {
    both("DROP DATABASE IF EXISTS y_ddl; CREATE DATABASE y_ddl; CREATE TABLE y_ddl.t (id INT PRIMARY KEY, a INT);").await;
    let mut sync = channel("y_ddl", &[("y_ddl", ".*", None, None)], "").await;
    let _node = sync.node("n1");
    sync.running().await;
    source()
        .conn()
        .await
        .query_drop(
            "INSERT INTO y_ddl.t VALUES (1, 1);
             ALTER TABLE y_ddl.t ADD COLUMN b VARCHAR(10) DEFAULT 'x';
             INSERT INTO y_ddl.t VALUES (2, 2, 'two');
             ALTER TABLE y_ddl.t DROP COLUMN a;
             UPDATE y_ddl.t SET b = 'one' WHERE id = 1;
             CREATE TABLE y_ddl.created (id INT PRIMARY KEY, v INT);
             INSERT INTO y_ddl.created VALUES (1, 1);
             RENAME TABLE y_ddl.created TO y_ddl.renamed;
             INSERT INTO y_ddl.renamed VALUES (2, 2);
             CREATE TABLE y_ddl.dropped (id INT PRIMARY KEY); INSERT INTO y_ddl.dropped VALUES (1);
             DROP TABLE y_ddl.dropped;
             CREATE USER IF NOT EXISTS 'never_copied'@'%';",
        )
        .await
        .unwrap();
    converged("y_ddl.t", "y_ddl.t").await;
    converged("y_ddl.renamed", "y_ddl.renamed").await;
    let mut target_conn = target().conn().await;
    let conn = &mut target_conn;
    eventually!(Duration::from_secs(20), "the dropped table to be gone", {
        let tables: Vec<String> = conn
            .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'y_ddl' ORDER BY 1")
            .await
            .unwrap();
        (tables == ["renamed", "t"]).then_some(())
    });
    let users: Vec<String> = target()
        .conn()
        .await
        .query("SELECT user FROM mysql.user WHERE user = 'never_copied'")
        .await
        .unwrap();
    assert!(users.is_empty(), "CREATE USER is never applied");
}

#[tokio::test]
async fn kill_9_during_a_workload_loses_nothing_and_doubles_nothing() {
    both(
        "DROP DATABASE IF EXISTS y_crash; CREATE DATABASE y_crash;
         CREATE TABLE y_crash.accounts (id INT PRIMARY KEY, balance BIGINT, note VARCHAR(30));
         CREATE TABLE y_crash.moves (id INT PRIMARY KEY, account INT, amount INT);
         CREATE TABLE y_crash.journal (msg VARCHAR(20), n INT);",
    )
    .await;
    let mut sync = channel(
        "y_crash",
        &[("y_crash", ".*", None, None)],
        "CALL set_pipeline_option('y_crash', 'batch_rows', '300')",
    )
    .await;
    sync.meta
        .query_drop("CALL set_setting('lease_ms', 2000); CALL set_setting('heartbeat_ms', 100); CALL set_setting('poll_ms', 100);")
        .await
        .unwrap();
    let mut node = sync.node("n1");
    sync.running().await;

    // The workload: multi-table transactions, inserts deleted soon after, key changes,
    // duplicate rows in a table without a key, and a DDL halfway.
    let workload = tokio::spawn(async move {
        let mut conn = source().conn().await;
        let mut rows = 0u64;
        // OTTR_CRASH_ROUNDS=22300 gives the 200,000-row workload (9 changes a round).
        let rounds: i64 = std::env::var("OTTR_CRASH_ROUNDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1500);
        for round in 0..rounds {
            let base = round * 10;
            conn.query_drop(format!(
                "BEGIN;
                 INSERT INTO y_crash.accounts (id, balance, note) VALUES ({a}, {round}, 'new'), ({b}, 0, 'gone soon');
                 INSERT INTO y_crash.moves VALUES ({a}, {a}, {round}), ({b}, {a}, -1);
                 UPDATE y_crash.accounts SET balance = balance + 1 WHERE id = {a};
                 INSERT INTO y_crash.journal VALUES ('dup', {m}), ('dup', {m});
                 COMMIT;
                 DELETE FROM y_crash.accounts WHERE id = {b};
                 UPDATE y_crash.moves SET id = {c} WHERE id = {b};",
                a = base + 1,
                b = base + 2,
                c = base + 3,
                m = round % 7
            ))
            .await
            .unwrap();
            rows += 9;
            if round == rounds / 2 {
                conn.query_drop(
                    "ALTER TABLE y_crash.accounts ADD COLUMN flag TINYINT NOT NULL DEFAULT 0",
                )
                .await
                .unwrap();
            }
            if round % 3 == 0 {
                conn.query_drop(format!(
                    "DELETE FROM y_crash.journal WHERE n = {} LIMIT 1",
                    round % 7
                ))
                .await
                .unwrap();
            }
        }
        rows
    });
    let mut kills = 0;
    while !workload.is_finished() || kills < 5 {
        tokio::time::sleep(Duration::from_millis(700 + 300 * (kills % 3))).await;
        node.kill9();
        kills += 1;
        node = sync.node("n1");
    }
    let rows = workload.await.unwrap();
    let started = std::time::Instant::now();
    for table in ["y_crash.accounts", "y_crash.moves", "y_crash.journal"] {
        converged_within(table, table, Some(&mut sync.meta), Duration::from_secs(600)).await;
    }
    eprintln!("caught up {:?} after the workload ended", started.elapsed());
    eprintln!("{rows} row changes, {kills} kill -9 of the node: source and target identical");
}

#[tokio::test]
async fn a_target_that_goes_away_is_caught_up_with_when_it_returns() {
    // A target of its own: this test stops it.
    let own_target = MariaDb::start(ServerKind::Target);
    both("DROP DATABASE IF EXISTS y_gone; CREATE DATABASE y_gone; CREATE TABLE y_gone.t (id INT PRIMARY KEY, v INT);").await;
    own_target
        .conn()
        .await
        .query_drop("CREATE DATABASE y_gone; CREATE TABLE y_gone.t (id INT PRIMARY KEY, v INT);")
        .await
        .unwrap();
    let mut sync = channel("y_gone", &[("y_gone", "t", None, None)], "").await;
    sync.meta
        .exec_drop(
            "CALL set_data_source('us', ?, NULL)",
            (own_target.source_url("root"),),
        )
        .await
        .unwrap();
    sync.meta
        .query_drop("CALL set_setting('retry_max_ms', 2000)")
        .await
        .unwrap();
    let _node = sync.node("n1");
    sync.running().await;
    let mut conn = source().conn().await;
    conn.query_drop("INSERT INTO y_gone.t VALUES (1, 1), (2, 2)")
        .await
        .unwrap();
    own_target.kill9();
    conn.query_drop("INSERT INTO y_gone.t VALUES (3, 3); UPDATE y_gone.t SET v = 10 WHERE id = 1; DELETE FROM y_gone.t WHERE id = 2;")
        .await
        .unwrap();
    let meta = &mut sync.meta;
    let reason: String = eventually!(Duration::from_secs(20), "the pipeline to retry", {
        let row: Option<(String, Option<String>)> = meta
            .query_first("SELECT observed, reason FROM v_pipeline_status")
            .await
            .unwrap();
        row.filter(|(observed, _)| observed == "retrying")
            .and_then(|(_, reason)| reason)
    });
    assert!(
        reason.contains("cannot connect") || reason.contains("target"),
        "{reason}"
    );
    own_target.restart();
    let expected = rows(source(), "y_gone.t").await;
    let mut last = Vec::new();
    for _ in 0..300 {
        last = rows(&own_target, "y_gone.t").await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the target did not catch up: {last:?} vs {expected:?}");
}

#[tokio::test]
async fn the_node_recovers_by_itself_when_the_metadata_server_restarts() {
    let own_meta = MariaDb::start(ServerKind::Plain);
    both("DROP DATABASE IF EXISTS y_meta; CREATE DATABASE y_meta; CREATE TABLE y_meta.t (id INT PRIMARY KEY, v INT);").await;
    let mut installation = Installation::new(
        &own_meta,
        "ottr",
        &[
            ("lease_ms", 3000),
            ("heartbeat_ms", 200),
            ("poll_ms", 200),
            ("retry_max_ms", 2000),
        ],
    )
    .await;
    installation.data_source("sh", source(), "root").await;
    installation.data_source("us", target(), "root").await;
    let Installation {
        meta: mut conn,
        url,
        ..
    } = installation;
    conn.query_drop("CALL create_channel('y_meta', 'sh', 'us'); CALL add_table_pair('y_meta', 'y_meta', 't', NULL, NULL);").await.unwrap();
    conn.exec_drop(
        "CALL set_pipeline_option('y_meta', 'server_id', ?)",
        (common::server_id_base("y_meta").to_string(),),
    )
    .await
    .unwrap();
    conn.query_drop("CALL set_pipeline_option('y_meta', 'batch_timeout_ms', '100'); CALL start_channel('y_meta');").await.unwrap();
    drop(conn);
    let mut node = NodeProcess::spawn(&url, "n1", &temp_dir("y_meta"), &[]);
    {
        let mut conn = conn_to(&own_meta, "ottr").await;
        let conn = &mut conn;
        eventually!(Duration::from_secs(30), "the pipeline to run", {
            let row: Option<String> = conn
                .query_first("SELECT observed FROM v_pipeline_status")
                .await
                .unwrap();
            row.filter(|observed| observed == "running")
        });
    }
    let mut source_conn = source().conn().await;
    source_conn
        .query_drop("INSERT INTO y_meta.t VALUES (1, 1)")
        .await
        .unwrap();
    converged("y_meta.t", "y_meta.t").await;

    own_meta.kill9();
    source_conn
        .query_drop("INSERT INTO y_meta.t VALUES (2, 2); UPDATE y_meta.t SET v = 5 WHERE id = 1;")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    own_meta.restart();
    source_conn
        .query_drop("INSERT INTO y_meta.t VALUES (3, 3); DELETE FROM y_meta.t WHERE id = 2;")
        .await
        .unwrap();
    converged("y_meta.t", "y_meta.t").await;
    assert!(
        node.try_exit().is_none(),
        "the node kept running: {}",
        node.log_text()
    );
    let mut conn = conn_to(&own_meta, "ottr").await;
    let observed: String = {
        let conn = &mut conn;
        eventually!(
            Duration::from_secs(20),
            "the pipeline to report running again",
            {
                let row: Option<String> = conn
                    .query_first("SELECT observed FROM v_pipeline_status")
                    .await
                    .unwrap();
                row.filter(|observed| observed == "running")
            }
        )
    };
    assert_eq!(observed, "running");
}

#[tokio::test]
async fn in_transactional_mode_a_reader_never_sees_half_a_source_transaction() {
    both(
        "DROP DATABASE IF EXISTS y_atomic; CREATE DATABASE y_atomic;
         CREATE TABLE y_atomic.a (id INT PRIMARY KEY); CREATE TABLE y_atomic.b (id INT PRIMARY KEY);",
    )
    .await;
    let mut sync = channel(
        "y_atomic",
        &[("y_atomic", ".*", None, None)],
        "CALL set_pipeline_option('y_atomic', 'transactional', 'on'); CALL set_pipeline_option('y_atomic', 'batch_rows', '100');",
    )
    .await;
    let _node = sync.node("n1");
    sync.running().await;
    let watcher = tokio::spawn(async {
        let mut conn = target().conn().await;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let count: u64 = conn
                .query_first(
                    "SELECT (SELECT COUNT(*) FROM y_atomic.a) + (SELECT COUNT(*) FROM y_atomic.b)",
                )
                .await
                .unwrap()
                .unwrap();
            seen.insert(count);
            if count == 3000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    });
    let mut conn = source().conn().await;
    for round in 0..3 {
        // 1,000 rows in two tables: bigger than a batch, still applied whole.
        conn.query_drop(format!(
            "USE y_atomic; BEGIN;
             INSERT INTO a SELECT seq + {round} * 1000 FROM seq_1_to_500;
             INSERT INTO b SELECT seq + {round} * 1000 FROM seq_1_to_500;
             COMMIT;"
        ))
        .await
        .unwrap();
    }
    converged("y_atomic.a", "y_atomic.a").await;
    converged("y_atomic.b", "y_atomic.b").await;
    let seen = watcher.await.unwrap();
    assert!(
        seen.iter().all(|count| count % 1000 == 0),
        "a reader saw part of a transaction: {seen:?}"
    );
}

#[tokio::test]
async fn target_side_details_hold_on_update_timestamps_foreign_keys_and_unique_swaps() {
    both(
        "DROP DATABASE IF EXISTS y_detail; CREATE DATABASE y_detail;
         CREATE TABLE y_detail.stamped (id INT PRIMARY KEY, v INT,
           changed TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6));
         CREATE TABLE y_detail.parent (id INT PRIMARY KEY);
         CREATE TABLE y_detail.child (id INT PRIMARY KEY, parent INT,
           FOREIGN KEY (parent) REFERENCES y_detail.parent (id) ON DELETE CASCADE);
         CREATE TABLE y_detail.uniq (id INT PRIMARY KEY, code VARCHAR(5) NOT NULL, UNIQUE KEY (code));
         CREATE TABLE y_detail.emails (id INT PRIMARY KEY, email VARCHAR(20) NOT NULL, UNIQUE KEY (email));
         CREATE TABLE y_detail.owner (id INT PRIMARY KEY);
         CREATE TABLE y_detail.owned (id INT PRIMARY KEY, owner INT,
           FOREIGN KEY (owner) REFERENCES y_detail.owner (id) ON UPDATE CASCADE ON DELETE RESTRICT);",
    )
    .await;
    let mut sync = channel("y_detail", &[("y_detail", ".*", None, None)], "").await;
    let _node = sync.node("n1");
    sync.running().await;
    let mut conn = source().conn().await;
    conn.query_drop(
        "USE y_detail; INSERT INTO y_detail.stamped (id, v, changed) VALUES (1, 1, '2001-02-03 04:05:06.070809');
         INSERT INTO y_detail.parent SELECT seq FROM seq_1_to_50;
         INSERT INTO y_detail.child SELECT seq, seq FROM seq_1_to_50;
         INSERT INTO y_detail.uniq VALUES (1, 'a'), (2, 'b');
         INSERT INTO y_detail.emails VALUES (1, 'x');
         INSERT INTO y_detail.owner VALUES (100); INSERT INTO y_detail.owned VALUES (1, 100);",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.query_drop(
        "UPDATE y_detail.stamped SET v = 2, changed = '2001-02-03 04:05:06.070809' WHERE id = 1;
         DELETE FROM y_detail.parent WHERE id <= 25;
         BEGIN; UPDATE y_detail.uniq SET code = 'tmp' WHERE id = 1; UPDATE y_detail.uniq SET code = 'a' WHERE id = 2;
         UPDATE y_detail.uniq SET code = 'b' WHERE id = 1; COMMIT;
         BEGIN; UPDATE y_detail.emails SET email = 'y' WHERE id = 1; INSERT INTO y_detail.emails VALUES (2, 'x'); COMMIT;
         UPDATE y_detail.owner SET id = 101 WHERE id = 100;",
    )
    .await
    .unwrap();
    for table in [
        "y_detail.stamped",
        "y_detail.parent",
        "y_detail.child",
        "y_detail.uniq",
    ] {
        converged_or(table, table, Some(&mut sync.meta)).await;
    }
}

#[tokio::test]
async fn timestamps_arrive_as_the_same_instant_on_a_target_in_another_time_zone() {
    let own_target = MariaDb::start_with(ServerKind::Target, &["--default-time-zone=+05:00"]);
    both("DROP DATABASE IF EXISTS y_zone; CREATE DATABASE y_zone; CREATE TABLE y_zone.t (id INT PRIMARY KEY, at TIMESTAMP(6) NULL);").await;
    own_target
        .conn()
        .await
        .query_drop("CREATE DATABASE y_zone; CREATE TABLE y_zone.t (id INT PRIMARY KEY, at TIMESTAMP(6) NULL);")
        .await
        .unwrap();
    let mut sync = channel("y_zone", &[("y_zone", "t", None, None)], "").await;
    sync.meta
        .exec_drop(
            "CALL set_data_source('us', ?, NULL)",
            (own_target.source_url("root"),),
        )
        .await
        .unwrap();
    let _node = sync.node("n1");
    sync.running().await;
    source().run("SET time_zone = '+00:00'; INSERT INTO y_zone.t VALUES (1, '2026-11-22 01:02:03.456789'), (2, NULL);").await;
    let mut target_conn = own_target.conn().await;
    let at: String = {
        let conn = &mut target_conn;
        eventually!(Duration::from_secs(20), "the row on the target", {
            let at: Option<Option<String>> = conn
                .query_first("SELECT CAST(CONVERT_TZ(at, @@session.time_zone, '+00:00') AS CHAR) FROM y_zone.t WHERE id = 1")
                .await
                .unwrap();
            at.flatten()
        })
    };
    assert_eq!(at, "2026-11-22 01:02:03.456789");
    // Later batches reuse pooled connections: their session settings must hold as well.
    for id in 10..20 {
        source().run(&format!("SET time_zone = '+00:00'; INSERT INTO y_zone.t VALUES ({id}, '2030-01-02 03:04:05.000006')")).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let conn = &mut target_conn;
    let later: Vec<String> = eventually!(Duration::from_secs(20), "the later rows", {
        let rows: Vec<String> = conn
            .query("SELECT CAST(CONVERT_TZ(at, @@session.time_zone, '+00:00') AS CHAR) FROM y_zone.t WHERE id >= 10")
            .await
            .unwrap();
        (rows.len() == 10).then_some(rows)
    });
    assert!(
        later.iter().all(|at| at == "2030-01-02 03:04:05.000006"),
        "{later:?}"
    );
}

#[tokio::test]
async fn the_load_layout_may_change_between_runs() {
    both("DROP DATABASE IF EXISTS y_layout; CREATE DATABASE y_layout; CREATE TABLE y_layout.t (id INT PRIMARY KEY, v INT);").await;
    let mut sync = channel("y_layout", &[("y_layout", "t", None, None)], "").await;
    let mut node = sync.node("n1");
    sync.running().await;
    let mut conn = source().conn().await;
    conn.query_drop("USE y_layout; INSERT INTO t SELECT seq, seq FROM seq_1_to_200;")
        .await
        .unwrap();
    converged("y_layout.t", "y_layout.t").await;
    sync.meta
        .query_drop("CALL stop_channel('y_layout'); CALL set_pipeline_option('y_layout', 'load_parallelism', '3'); CALL start_channel('y_layout');")
        .await
        .unwrap();
    conn.query_drop("USE y_layout; UPDATE t SET v = v + 1; DELETE FROM t WHERE id > 150; INSERT INTO t VALUES (500, 5);")
        .await
        .unwrap();
    converged_or("y_layout.t", "y_layout.t", Some(&mut sync.meta)).await;
    assert!(node.try_exit().is_none());
}

#[tokio::test]
async fn a_row_the_target_rejects_stops_the_pipeline_naming_table_and_key() {
    source().run("DROP DATABASE IF EXISTS y_reject; CREATE DATABASE y_reject; CREATE TABLE y_reject.t (id INT PRIMARY KEY, v VARCHAR(50));").await;
    target().run("DROP DATABASE IF EXISTS y_reject; CREATE DATABASE y_reject; CREATE TABLE y_reject.t (id INT PRIMARY KEY, v VARCHAR(3));").await;
    let mut sync = channel("y_reject", &[("y_reject", "t", None, None)], "").await;
    let _node = sync.node("n1");
    sync.running().await;
    source()
        .run("INSERT INTO y_reject.t VALUES (1, 'ok'), (2, 'far too long for the target')")
        .await;
    let conn = &mut sync.meta;
    let reason: String = eventually!(
        Duration::from_secs(20),
        "the pipeline to stop with the row",
        {
            let row: Option<(String, Option<String>)> = conn
                .query_first("SELECT observed, reason FROM v_pipeline_status")
                .await
                .unwrap();
            row.filter(|(observed, _)| observed == "error")
                .and_then(|(_, reason)| reason)
        }
    );
    assert!(
        reason.contains("y_reject.t")
            && reason.contains("id=Int(2)")
            && reason.contains("Data too long"),
        "{reason}"
    );
    let on_target: Vec<i32> = target()
        .conn()
        .await
        .query("SELECT id FROM y_reject.t")
        .await
        .unwrap();
    assert!(!on_target.contains(&2), "nothing was skipped silently");
}

#[tokio::test]
async fn skip_load_errors_records_the_rejected_rows_and_goes_on() {
    source().run("DROP DATABASE IF EXISTS y_skip; CREATE DATABASE y_skip; CREATE TABLE y_skip.t (id INT PRIMARY KEY, v VARCHAR(50));").await;
    target().run("DROP DATABASE IF EXISTS y_skip; CREATE DATABASE y_skip; CREATE TABLE y_skip.t (id INT PRIMARY KEY, v VARCHAR(3));").await;
    let mut sync = channel(
        "y_skip",
        &[("y_skip", "t", None, None)],
        "CALL set_pipeline_option('y_skip', 'skip_load_errors', 'on')",
    )
    .await;
    let _node = sync.node("n1");
    sync.running().await;
    source()
        .conn()
        .await
        .query_drop(
            "INSERT INTO y_skip.t VALUES (1, 'ok'), (2, 'far too long for the target'), (3, 'yes')",
        )
        .await
        .unwrap();
    let conn = &mut sync.meta;
    let skipped: (String, String, String) =
        eventually!(Duration::from_secs(20), "the skipped row", {
            conn.query_first("SELECT target_table, row_key, error FROM skipped_row")
                .await
                .unwrap()
        });
    assert_eq!(skipped.0, "y_skip.t");
    assert!(
        skipped.1.starts_with("id=Int(2)") && skipped.2.contains("Data too long"),
        "{skipped:?}"
    );
    let event: String = sync
        .meta
        .query_first("SELECT message FROM v_event_log WHERE kind = 'row_skipped'")
        .await
        .unwrap()
        .expect("an event for the skipped row");
    assert!(
        event.contains("y_skip.t") && event.contains("id=Int(2)") && event.contains("1406"),
        "{event}"
    );
    let on_target: Vec<i32> = target()
        .conn()
        .await
        .query("SELECT id FROM y_skip.t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(on_target, vec![1, 3]);
    let observed: String = sync
        .meta
        .query_first("SELECT observed FROM v_pipeline_status")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(observed, "running");
}

#[tokio::test]
async fn a_ddl_that_fails_on_the_target_is_not_taken_for_done_when_retried() {
    source().run("DROP DATABASE IF EXISTS y_ddlfail; CREATE DATABASE y_ddlfail; CREATE TABLE y_ddlfail.t (id INT PRIMARY KEY);").await;
    // The target lacks the table: the ALTER fails there with 1146, a code a replay would accept.
    target()
        .run("DROP DATABASE IF EXISTS y_ddlfail; CREATE DATABASE y_ddlfail;")
        .await;
    let mut sync = channel(
        "y_ddlfail",
        &[("y_ddlfail", "t", None, None)],
        "CALL set_setting('retry_max_ms', 1000)",
    )
    .await;
    let _node = sync.node("n1");
    sync.running().await;
    source()
        .run("ALTER TABLE y_ddlfail.t ADD COLUMN c INT")
        .await;
    let conn = &mut sync.meta;
    eventually!(Duration::from_secs(20), "the DDL error", {
        let row: Option<(String, Option<String>)> = conn
            .query_first("SELECT observed, reason FROM v_pipeline_status")
            .await
            .unwrap();
        row.filter(|(observed, reason)| {
            observed == "error" && reason.as_deref().unwrap_or_default().contains("DDL")
        })
    });
    // Retried after retry_max_ms: an error again, not "already done". (Each retry shows as
    // running for a moment before the DDL fails again, so the state is awaited, not sampled.)
    tokio::time::sleep(Duration::from_secs(3)).await;
    let conn = &mut sync.meta;
    eventually!(Duration::from_secs(20), "the retried DDL to fail again", {
        let row: Option<(String, u64)> = conn
            .query_first("SELECT (SELECT observed FROM v_pipeline_status), (SELECT COUNT(*) FROM event_log WHERE kind = 'pipeline_error')")
            .await
            .unwrap();
        row.filter(|(observed, runs)| observed == "error" && *runs >= 2)
    });
    let state: String = target()
        .conn()
        .await
        .query_first(
            "SELECT state FROM ottr_sys.ddl WHERE statement LIKE 'ALTER TABLE y_ddlfail.t%'",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state, "failed");
    // Let it pass: it is recorded as skipped, and the pipeline goes on.
    sync.meta
        .query_drop("CALL set_pipeline_option('y_ddlfail', 'skip_ddl_errors', 'on')")
        .await
        .unwrap();
    let conn = &mut sync.meta;
    let text: String = eventually!(Duration::from_secs(20), "the skipped DDL's event", {
        let text: Option<String> = conn
            .query_first("SELECT message FROM v_event_log WHERE kind = 'ddl_skipped'")
            .await
            .unwrap();
        text
    });
    assert!(
        text.contains("ALTER TABLE y_ddlfail.t ADD COLUMN c INT") && text.contains("1146"),
        "{text}"
    );
    sync.running().await;
}

/// Column names, defaults and comments of `schema.table` on `server`, as information_schema
/// gives them.
async fn columns(
    server: &MariaDb,
    schema: &str,
    table: &str,
) -> Vec<(String, Option<String>, String)> {
    server
        .conn()
        .await
        .exec(
            "SELECT COLUMN_NAME, COLUMN_DEFAULT, COLUMN_COMMENT FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .unwrap()
}

async fn databases_like(server: &MariaDb, pattern: &str) -> Vec<String> {
    server
        .conn()
        .await
        .exec(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
            (pattern,),
        )
        .await
        .unwrap()
}

/// A DDL runs on the target as the source read it: under the source session's sql_mode and
/// character set, from its bytes, one statement only. The probes of issue #9 (a comment that
/// ends early under NO_BACKSLASH_ESCAPES, or in GBK behind a character whose second byte is
/// a backslash) add a column on the source and must do exactly that on the target, never
/// create a database; a renamed pair keeps backslashes and backticks in names and literals;
/// a DROP of a paired and an unpaired table drops only the paired one on the target; a
/// double-quoted name under ANSI_QUOTES is a table name.
#[tokio::test]
async fn ddl_is_replayed_as_the_source_read_it_and_never_runs_smuggled_sql() {
    both(
        "DROP DATABASE IF EXISTS y_smug; CREATE DATABASE y_smug CHARACTER SET utf8mb4;
         DROP DATABASE IF EXISTS y_smug_copy; CREATE DATABASE y_smug_copy CHARACTER SET utf8mb4;
         DROP DATABASE IF EXISTS y_pwned; DROP DATABASE IF EXISTS y_pwned_gbk;
         CREATE TABLE y_smug.t (id INT PRIMARY KEY, v INT);
         CREATE TABLE y_smug.paired (id INT PRIMARY KEY);
         CREATE TABLE y_smug.unpaired (id INT PRIMARY KEY);
         INSERT INTO y_smug.unpaired VALUES (1);",
    )
    .await;
    source()
        .run("CREATE TABLE y_smug.people (id INT PRIMARY KEY, name VARCHAR(20));")
        .await;
    target()
        .run("CREATE TABLE y_smug_copy.persons (id INT PRIMARY KEY, name VARCHAR(20));")
        .await;
    let mut sync = channel(
        "y_smug",
        &[
            ("y_smug", "t", None, None),
            ("y_smug", "paired", None, None),
            ("y_smug", "people", Some("y_smug_copy"), Some("persons")),
        ],
        "",
    )
    .await;
    let _node = sync.node("n1");
    sync.running().await;
    let mut conn = source().conn().await;
    conn.query_drop(
        "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES';
         ALTER TABLE y_smug.t COMMENT 'a\\', ADD COLUMN c INT COMMENT '; CREATE DATABASE y_pwned; -- ';
         SET SESSION sql_mode = DEFAULT",
    )
    .await
    .unwrap();
    // GBK: 0x95 0x5c is one character; read byte by byte, its 0x5c would escape the quote.
    conn.query_drop("SET NAMES gbk").await.unwrap();
    conn.query_drop(
        &b"ALTER TABLE y_smug.t COMMENT '\x95\x5c', ADD COLUMN d INT COMMENT '; CREATE DATABASE y_pwned_gbk; -- '"[..],
    )
    .await
    .unwrap();
    conn.query_drop("SET NAMES utf8mb4").await.unwrap();
    // A renamed pair: backslashes and backticks in the new column's name, default and comment.
    conn.query_drop(
        "ALTER TABLE y_smug.people ADD COLUMN `we``ird\\\\` VARCHAR(20) DEFAULT 'a\\\\b''c' COMMENT '`x`'",
    )
    .await
    .unwrap();
    conn.query_drop(
        "SET SESSION sql_mode = 'ANSI_QUOTES';
         ALTER TABLE \"y_smug\".\"t\" ADD COLUMN e VARCHAR(5) DEFAULT 'q';
         SET SESSION sql_mode = DEFAULT;
         DROP TABLE y_smug.paired, y_smug.unpaired;
         INSERT INTO y_smug.t (id, v, c, d, e) VALUES (1, 1, 2, 3, 'x');
         INSERT INTO y_smug.people (id, name) VALUES (1, 'ada');",
    )
    .await
    .unwrap();
    converged_or("y_smug.t", "y_smug.t", Some(&mut sync.meta)).await;
    converged_or("y_smug.people", "y_smug_copy.persons", Some(&mut sync.meta)).await;
    assert_eq!(
        columns(target(), "y_smug", "t").await,
        columns(source(), "y_smug", "t").await
    );
    assert_eq!(
        columns(target(), "y_smug_copy", "persons").await,
        columns(source(), "y_smug", "people").await
    );
    let comment = |server: &'static MariaDb| async move {
        let comment: Option<String> = server
            .conn()
            .await
            .query_first("SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'y_smug' AND TABLE_NAME = 't'")
            .await
            .unwrap();
        comment
    };
    assert_eq!(comment(target()).await, comment(source()).await);
    assert!(
        databases_like(target(), "y_pwned%").await.is_empty(),
        "a smuggled statement ran on the target"
    );
    let tables: Vec<String> = target()
        .conn()
        .await
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'y_smug' ORDER BY 1")
        .await
        .unwrap();
    assert_eq!(
        tables,
        ["t", "unpaired"],
        "only the paired table is dropped on the target"
    );
}

/// Partitions write neighbouring entries of a secondary index: under REPEATABLE READ their
/// gap locks deadlocked, and each deadlock restarted the pipeline. Load sessions now run
/// READ COMMITTED, and a partition that still deadlocks runs again alone.
#[tokio::test]
async fn parallel_partitions_on_a_secondary_index_apply_without_a_single_restart() {
    both(
        "DROP DATABASE IF EXISTS y_index; CREATE DATABASE y_index;
         CREATE TABLE y_index.t (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(40) NOT NULL, KEY ix_k (k));
         INSERT INTO y_index.t SELECT seq, seq % 500, CONCAT('row ', seq) FROM y_index.seq_1_to_20000;",
    )
    .await;
    let mut conn = source().conn().await;
    let start = common::binlog_end(&mut conn).await;
    // 120 transactions of 500 changes, seeded, each changing one row, as the benchmark's
    // workload does: half updates of the indexed column of existing rows, a quarter deletes
    // of existing rows, a quarter inserts after the last key; every batch then holds keys of
    // every partition next to each other in both indexes.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut ids: Vec<u64> = (1..=20_000).collect();
    let mut next_id = 20_001;
    for _ in 0..120 {
        let mut sql = String::from("BEGIN;");
        for _ in 0..500 {
            let roll = next(4);
            let at = next(ids.len() as u64) as usize;
            let k = next(500);
            match roll {
                0 | 1 => sql.push_str(&format!(
                    "UPDATE y_index.t SET k = k + 1, c = 'moved {k}' WHERE id = {};",
                    ids[at]
                )),
                2 => sql.push_str(&format!(
                    "DELETE FROM y_index.t WHERE id = {};",
                    ids.swap_remove(at)
                )),
                _ => {
                    sql.push_str(&format!(
                        "INSERT INTO y_index.t VALUES ({next_id}, {k}, 'new');"
                    ));
                    ids.push(next_id);
                    next_id += 1;
                }
            }
        }
        sql.push_str("COMMIT;");
        conn.query_drop(sql).await.unwrap();
    }
    let mut sync = channel(
        "y_index",
        &[("y_index", "t", None, None)],
        &format!(
            "CALL reset_position('y_index', '{}:{}')",
            start.file, start.offset
        ),
    )
    .await;
    let _node = sync.node("n1");
    sync.running().await;
    converged_within(
        "y_index.t",
        "y_index.t",
        Some(&mut sync.meta),
        Duration::from_secs(120),
    )
    .await;
    let errors: Vec<String> = sync
        .meta
        .query("SELECT message FROM event_log WHERE level = 'error'")
        .await
        .unwrap();
    assert!(
        errors.is_empty(),
        "the pipeline restarted {} times: {errors:?}",
        errors.len()
    );
}

/// A frozen node (SIGSTOP, not dead) loses its pipeline when its lease runs out; woken
/// (SIGCONT), it commits nothing more: the fencing token on the target never goes backwards,
/// the node says it lost the lease, and source and target end identical.
#[tokio::test]
async fn a_frozen_node_woken_after_losing_its_lease_commits_nothing() {
    both(
        "DROP DATABASE IF EXISTS y_frozen; CREATE DATABASE y_frozen;
         CREATE TABLE y_frozen.t (id INT PRIMARY KEY, n INT NOT NULL);",
    )
    .await;
    let mut sync = channel("y_frozen", &[("y_frozen", "t", None, None)], "").await;
    sync.meta
        .query_drop("CALL set_setting('lease_ms', 2000); CALL set_setting('heartbeat_ms', 200); CALL set_setting('poll_ms', 200); \
                     CALL set_setting('retry_min_ms', 100); CALL set_setting('retry_max_ms', 1000);")
        .await
        .unwrap();
    let frozen = sync.node("n1");
    sync.running().await;
    let _other = NodeProcess::spawn(&sync.url, "n2", &sync.dir, &[]);

    // Writes flow all along; a watcher reads the tokens on the target all along.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = common::spawn_writer(
        source(),
        Duration::from_millis(5),
        vec!["y_frozen.t".to_owned()],
        stop.clone(),
    );
    let watcher = common::watch_tokens(target(), "y_frozen%".into(), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    frozen.signal("-STOP");
    let conn = &mut sync.meta;
    eventually!(Duration::from_secs(30), "n2 to take the pipeline over", {
        let node: Option<Option<String>> = conn
            .query_first("SELECT node FROM v_pipeline_status WHERE observed = 'running'")
            .await
            .unwrap();
        (node.flatten().as_deref() == Some("n2")).then_some(())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    frozen.signal("-CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let written = writer.await.unwrap();
    let tokens = watcher.await.unwrap();
    converged_within(
        "y_frozen.t",
        "y_frozen.t",
        Some(&mut sync.meta),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "the fencing token on the target went backwards: {tokens:?}"
    );
    assert!(
        tokens.len() >= 2,
        "no takeover seen on the target: {tokens:?}"
    );
    let lost: u64 = sync
        .meta
        .query_first("SELECT COUNT(*) FROM event_log WHERE node = 'n1' AND kind = 'lease_lost'")
        .await
        .unwrap()
        .unwrap();
    assert!(
        lost >= 1,
        "the woken node did not record that it lost its lease"
    );
    let log = frozen.log_text();
    assert!(log.contains("lease lost"), "the woken node's log: {log}");
    eprintln!("{written} rows written; target tokens over time: {tokens:?}");
}

/// A metadata server that lost lease rows (as after a failover to a replica that missed the
/// last claims) hands out a token the target has already seen: the new holder does not use
/// it, raises the lease past the target's token, and runs under a token nobody held.
#[tokio::test]
async fn a_token_the_target_has_seen_is_never_handed_out_again() {
    both(
        "DROP DATABASE IF EXISTS y_token; CREATE DATABASE y_token;
         CREATE TABLE y_token.t (id INT PRIMARY KEY, n INT NOT NULL);",
    )
    .await;
    let mut sync = channel("y_token", &[("y_token", "t", None, None)], "").await;
    let mut node = sync.node("n1");
    sync.running().await;
    source()
        .run("INSERT INTO y_token.t VALUES (1, 1), (2, 2)")
        .await;
    converged("y_token.t", "y_token.t").await;
    let target_token = || async {
        let token: Option<u64> = target()
            .conn()
            .await
            .query_first("SELECT MAX(fencing_token) FROM ottr_sys.applied WHERE pipeline_name LIKE 'y_token%'")
            .await
            .unwrap()
            .flatten();
        token.expect("the pipeline's rows on the target")
    };
    let seen = target_token().await;
    node.kill9();
    // The metadata forgets the last claim: the next one hands out `seen` again.
    sync.meta
        .exec_drop(
            "UPDATE pipeline_lease SET token = ? - 1, holder = NULL, expires_at = NOW(6)",
            (seen,),
        )
        .await
        .unwrap();
    node = sync.node("n1");
    source().run("INSERT INTO y_token.t VALUES (3, 3)").await;
    converged_or("y_token.t", "y_token.t", Some(&mut sync.meta)).await;
    let now = target_token().await;
    assert!(
        now > seen,
        "the target's token went from {seen} to {now}: a token was used twice"
    );
    let lease: u64 = sync
        .meta
        .query_first("SELECT token FROM pipeline_lease")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease, now, "the lease's token and the target's");
    let raised: Vec<String> = sync
        .meta
        .query("SELECT message FROM event_log WHERE kind = 'fencing_token_raised'")
        .await
        .unwrap();
    assert_eq!(raised.len(), 1, "events: {raised:?}");
    assert!(
        raised[0].contains(&format!(
            "holds fencing token {seen}, not older than this lease's {seen}"
        )),
        "{}",
        raised[0]
    );

    // The same again soon after: two lease authorities would raise past each other in turn,
    // so the pipeline stops in error, saying why, instead.
    node.kill9();
    sync.meta
        .exec_drop(
            "UPDATE pipeline_lease SET token = ? - 1, holder = NULL, expires_at = NOW(6)",
            (now,),
        )
        .await
        .unwrap();
    let _again = sync.node("n1");
    let conn = &mut sync.meta;
    let reason = eventually!(Duration::from_secs(30), "the pipeline to stop in error", {
        let row: Option<(String, Option<String>)> = conn
            .query_first("SELECT observed, reason FROM v_pipeline_status")
            .await
            .unwrap();
        row.filter(|(observed, _)| observed == "error")
            .and_then(|(_, reason)| reason)
    });
    assert!(reason.contains("another metadata database"), "{reason}");
    assert_eq!(
        target_token().await,
        now,
        "nothing was applied under a reused token"
    );
}

/// A slow, lossy network between the node and the target (a proxy in the harness adds latency,
/// cuts every connection, stalls): nothing is lost or doubled — a table without a key would
/// show a doubled row — and the pipeline recovers by itself.
#[tokio::test]
async fn a_slow_lossy_stalling_network_to_the_target_loses_and_doubles_nothing() {
    both(
        "DROP DATABASE IF EXISTS y_net; CREATE DATABASE y_net;
         CREATE TABLE y_net.t (id INT PRIMARY KEY, n INT NOT NULL);
         CREATE TABLE y_net.log (msg VARCHAR(20), n INT);",
    )
    .await;
    let proxy = common::proxy::FaultyProxy::start(target().port);
    proxy.set_latency(Duration::from_millis(5));
    let mut sync = channel(
        "y_net",
        &[("y_net", ".*", None, None)],
        &format!(
            "UPDATE data_source SET port = {} WHERE name = 'us'; \
             CALL set_setting('retry_min_ms', 100); CALL set_setting('retry_max_ms', 1000);",
            proxy.port
        ),
    )
    .await;
    let _node = sync.node("n1");
    sync.running().await;
    let writer = tokio::spawn(async move {
        let mut conn = source().conn().await;
        for round in 1..=600 {
            conn.query_drop(format!(
                "BEGIN; INSERT INTO y_net.t VALUES ({round}, 0); INSERT INTO y_net.log VALUES ('r', {round});
                 UPDATE y_net.t SET n = n + 1 WHERE id = {}; COMMIT;",
                (round + 1) / 2
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let mut faults = Vec::new();
    for step in 0..6 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        match step % 3 {
            0 => {
                proxy.cut();
                faults.push("cut");
            }
            1 => {
                proxy.set_latency(Duration::from_millis(50));
                faults.push("latency 50 ms");
            }
            _ => {
                proxy.stall(true);
                tokio::time::sleep(Duration::from_secs(2)).await;
                proxy.stall(false);
                proxy.set_latency(Duration::from_millis(5));
                faults.push("stall 2 s");
            }
        }
    }
    writer.await.unwrap();
    for table in ["y_net.t", "y_net.log"] {
        converged_within(table, table, Some(&mut sync.meta), Duration::from_secs(90)).await;
    }
    let log_rows: u64 = target()
        .conn()
        .await
        .query_first("SELECT COUNT(*) FROM y_net.log")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log_rows, 600, "every row exactly once");
    let state: (String, Option<String>) = sync
        .meta
        .query_first("SELECT observed, reason FROM v_pipeline_status")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.0, "running", "recovered by itself: {state:?}");
    let retries: u64 = sync
        .meta
        .query_first("SELECT COUNT(*) FROM event_log WHERE kind = 'pipeline_error'")
        .await
        .unwrap()
        .unwrap();
    assert!(retries >= 1, "the cuts never reached the pipeline");
    eprintln!("faults: {faults:?}; the pipeline failed and recovered {retries} times");
}
