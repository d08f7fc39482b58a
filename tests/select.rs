//! The binlog reader on a real MariaDB: every column type decoded exactly as SELECT returns
//! it, resuming across FLUSH BINARY LOGS and from a GTID, and `ottr binlog`.

mod common;

use common::{MariaDb, ServerKind, shared};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value as SqlValue};
use ottr::config::DataSource;
use ottr::model::{BinlogFilePos, GtidState, RowChange, Value};
use ottr::pipeline::select::{BinlogReader, ReaderOptions, SourceEvent};
use std::time::Duration;

fn source() -> &'static MariaDb {
    shared(ServerKind::Source)
}

fn data_source() -> DataSource {
    source().data_source()
}

fn options(server_id: u32) -> ReaderOptions {
    ReaderOptions {
        server_id,
        heartbeat: Duration::from_millis(500),
        stop_at_end: true,
    }
}

async fn master_position(conn: &mut Conn) -> BinlogFilePos {
    common::binlog_end(conn).await
}

/// Reads from `from` to the current end; returns the row changes of `schema` in order.
async fn changes_of(schema: &str, from: &BinlogFilePos, server_id: u32) -> Vec<RowChange> {
    let mut reader = BinlogReader::open(&data_source(), &options(server_id), Some(from), None)
        .await
        .unwrap();
    let mut changes = Vec::new();
    while let Some(read) = reader.next().await.unwrap() {
        if let SourceEvent::Rows(rows) = read.event {
            changes.extend(
                rows.into_iter()
                    .filter(|change| change.table.id.schema == schema),
            );
        }
    }
    reader.close().await;
    changes
}

const MATRIX: &str = "CREATE TABLE matrix (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  de DECIMAL(65,30), de2 DECIMAL(10,2), f FLOAT, d DOUBLE,
  c CHAR(10), vc VARCHAR(300), t TEXT, vl VARCHAR(50) CHARACTER SET latin1,
  vg VARCHAR(50) CHARACTER SET gbk, v3 VARCHAR(50) CHARACTER SET utf8mb3,
  bn BINARY(4), vb VARBINARY(10), bl BLOB,
  dt DATE, tm TIME(6), tm0 TIME, dt6 DATETIME(6), dt0 DATETIME, dt3 DATETIME(3),
  ts6 TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL, y YEAR,
  e ENUM('small','medium','large'), st SET('a','b','c','d'),
  b1 BIT(1), b64 BIT(64), j JSON, g GEOMETRY, after_g VARCHAR(20) CHARACTER SET latin1
) DEFAULT CHARSET=utf8mb4";

const ROWS: &[&str] = &[
    "INSERT INTO matrix VALUES (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
      -9223372036854775808, 18446744073709551615,
      -99999999999999999999999999999999999.999999999999999999999999999999, -12.50, -3.40282e38, -1.7976931348623157e308,
      'abc', '😀 emoji and 中文', REPEAT('long text ', 50), 'café', '中文', 'utf8mb3 ü',
      x'00010203', x'ff00', x'deadbeef00',
      '1000-01-01', '-838:59:59.000000', '-838:59:59', '1000-01-01 00:00:00.000000', '9999-12-31 23:59:59', '2026-11-22 01:02:03.456',
      '1970-01-01 00:00:01.000000', '2038-01-19 03:14:07', 1901,
      'small', '', b'0', b'0', '{\"a\": {\"b\": [1, 2.5, \"x\", null, true]}}', ST_GeomFromText('POINT(1 2)'), 'naïve')",
    "INSERT INTO matrix VALUES (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0,
      9223372036854775807, 0,
      99999999999999999999999999999999999.999999999999999999999999999999, 0.01, 1.17549e-38, 2.2250738585072014e-308,
      '', '', '', '', '', '',
      x'', x'', x'',
      '9999-12-31', '838:59:59.999999', '00:00:00', '9999-12-31 23:59:59.999999', '2026-11-22 01:02:03', '2026-11-22 01:02:03.000',
      '2038-01-19 03:14:07.999999', '2026-11-22 01:02:03', 2155,
      'large', 'a,b,c,d', b'1', b'1111111111111111111111111111111111111111111111111111111111111111', '[]',
      ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))'), '')",
    "INSERT INTO matrix (id) VALUES (3)",
    "INSERT INTO matrix (id, dt, dt0, dt6, y, tm, e) VALUES (4, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', 0, '00:00:00.5', 'medium')",
];

/// Whether a decoded value equals what SELECT returned for the same cell.
fn same(decoded: &Value, selected: &SqlValue) -> bool {
    let text = |value: &SqlValue| match value {
        SqlValue::Bytes(bytes) => Some(bytes.clone()),
        _ => None,
    };
    match (decoded, selected) {
        (Value::Null, SqlValue::NULL) => true,
        (_, SqlValue::NULL) | (Value::Null, _) => false,
        (Value::Float(number), selected) => {
            let selected = String::from_utf8(text(selected).unwrap()).unwrap();
            *number == selected.parse::<f32>().unwrap()
        }
        (Value::Double(number), selected) => {
            let selected = String::from_utf8(text(selected).unwrap()).unwrap();
            *number == selected.parse::<f64>().unwrap()
        }
        (Value::Bit { bits, width }, selected) => {
            let bytes = usize::from(*width).div_ceil(8);
            bits.to_be_bytes()[8 - bytes..] == text(selected).unwrap()[..]
        }
        (Value::Bytes(bytes) | Value::Geometry(bytes), selected) => {
            *bytes == text(selected).unwrap()
        }
        (decoded, selected) => decoded.to_string().into_bytes() == text(selected).unwrap(),
    }
}

#[tokio::test]
async fn every_column_type_decodes_to_what_select_returns() {
    let mut conn = source().conn().await;
    conn.query_drop(
        "DROP DATABASE IF EXISTS ottr_s_matrix; CREATE DATABASE ottr_s_matrix; USE ottr_s_matrix",
    )
    .await
    .unwrap();
    conn.query_drop(MATRIX).await.unwrap();
    let from = master_position(&mut conn).await;
    for insert in ROWS {
        conn.query_drop(*insert).await.unwrap();
    }
    conn.query_drop("UPDATE matrix SET vc = 'updated', biu = biu - 1 WHERE id = 1; DELETE FROM matrix WHERE id = 2")
        .await
        .unwrap();

    let changes = changes_of("ottr_s_matrix", &from, 3_000_001).await;
    assert_eq!(changes.len(), ROWS.len() + 2, "{changes:#?}");
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    // Check each insert against the row as it was inserted, through a copy of the table
    // made by replaying the decoded after-images would be circular; instead, compare the
    // inserts with a second table loaded by the same statements.
    conn.query_drop("CREATE TABLE expected LIKE matrix")
        .await
        .unwrap();
    for insert in ROWS {
        conn.query_drop(insert.replacen("INSERT INTO matrix", "INSERT INTO expected", 1))
            .await
            .unwrap();
    }
    let expected: Vec<Row> = conn
        .query("SELECT * FROM expected ORDER BY id")
        .await
        .unwrap();
    let columns: Vec<String> = changes[0]
        .table
        .columns
        .iter()
        .map(|column| column.name.clone())
        .collect();
    assert_eq!(columns.len(), 40);
    assert_eq!(columns[0], "id");
    for (change, row) in changes.iter().zip(&expected) {
        let after = change.after.as_ref().unwrap();
        for (index, name) in columns.iter().enumerate() {
            let selected = row.as_ref(index).unwrap();
            assert!(
                same(&after[index], selected),
                "row {:?} column {name}: decoded {:?} ({}), SELECT gave {selected:?}",
                row.as_ref(0),
                after[index],
                after[index]
            );
        }
    }
    // The update carries both images; the delete the before-image.
    let update = &changes[ROWS.len()];
    assert_eq!(update.before.as_ref().unwrap()[10], Value::UInt(u64::MAX));
    assert_eq!(
        update.after.as_ref().unwrap()[10],
        Value::UInt(u64::MAX - 1)
    );
    let after_update: Row = conn
        .query_first("SELECT * FROM matrix WHERE id = 1")
        .await
        .unwrap()
        .unwrap();
    for (index, name) in columns.iter().enumerate() {
        assert!(
            same(
                &update.after.as_ref().unwrap()[index],
                after_update.as_ref(index).unwrap()
            ),
            "updated {name}"
        );
    }
    let delete = &changes[ROWS.len() + 1];
    assert!(delete.after.is_none());
    assert_eq!(delete.before.as_ref().unwrap()[0], Value::Int(2));
    assert_eq!(changes[0].table.primary_key, vec![0]);
}

#[tokio::test]
async fn reading_resumes_across_flush_binary_logs_and_from_a_gtid() {
    let mut conn = source().conn().await;
    conn.query_drop("DROP DATABASE IF EXISTS ottr_s_resume; CREATE DATABASE ottr_s_resume; CREATE TABLE ottr_s_resume.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let from = master_position(&mut conn).await;
    conn.query_drop("INSERT INTO ottr_s_resume.t VALUES (1); FLUSH BINARY LOGS; INSERT INTO ottr_s_resume.t VALUES (2)")
        .await
        .unwrap();
    let gtid_after_first: String = {
        conn.query_drop("INSERT INTO ottr_s_resume.t VALUES (3)")
            .await
            .unwrap();
        conn.query_first("SELECT @@gtid_binlog_pos")
            .await
            .unwrap()
            .unwrap()
    };
    conn.query_drop("INSERT INTO ottr_s_resume.t VALUES (4)")
        .await
        .unwrap();

    let ids = |changes: Vec<RowChange>| -> Vec<Value> {
        changes
            .into_iter()
            .map(|change| change.after.unwrap()[0].clone())
            .collect()
    };
    assert_eq!(
        ids(changes_of("ottr_s_resume", &from, 3_000_002).await),
        vec![Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(4)]
    );

    // From a GTID: every transaction after it, whatever file it is in.
    let gtid: GtidState = gtid_after_first.parse().unwrap();
    let mut reader = BinlogReader::open(&data_source(), &options(3_000_003), None, Some(&gtid))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut files = Vec::new();
    while let Some(read) = reader.next().await.unwrap() {
        files.push(read.end.file.clone());
        if let SourceEvent::Rows(rows) = read.event {
            seen.extend(
                rows.into_iter()
                    .filter(|c| c.table.id.schema == "ottr_s_resume")
                    .map(|c| c.after.unwrap()[0].clone()),
            );
        }
    }
    assert_eq!(seen, vec![Value::Int(4)]);
    let logs: Vec<String> = conn
        .query("SHOW BINARY LOGS")
        .await
        .unwrap()
        .into_iter()
        .map(|mut row: Row| row.take::<String, _>(0).unwrap())
        .collect();
    assert!(
        files.iter().all(|file| logs.contains(file)),
        "{files:?} vs {logs:?}"
    );
}

#[tokio::test]
async fn ottr_binlog_prints_decoded_events_one_per_line() {
    let mut conn = source().conn().await;
    conn.query_drop(
        "DROP DATABASE IF EXISTS ottr_s_cli; CREATE DATABASE ottr_s_cli;
         CREATE TABLE ottr_s_cli.t (id BIGINT UNSIGNED PRIMARY KEY, amount DECIMAL(20,6), at DATETIME(6), note VARCHAR(20))",
    )
    .await
    .unwrap();
    let from = master_position(&mut conn).await;
    conn.query_drop(
        "INSERT INTO ottr_s_cli.t VALUES (18446744073709551615, -123456789.123456, '2026-11-22 01:02:03.456789', '中文');
         UPDATE ottr_s_cli.t SET note = 'it''s';",
    )
    .await
    .unwrap();
    let meta_url = common::fresh_meta(shared(ServerKind::Plain), "ottr_s_cli_meta").await;
    let mut meta = common::conn_to(shared(ServerKind::Plain), "ottr_s_cli_meta").await;
    meta.exec_drop(
        "CALL add_data_source('sh', 'mariadb', ?, NULL)",
        (source().source_url("root"),),
    )
    .await
    .unwrap();
    let binlog = |limit: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ottr"))
            .args([
                "binlog",
                "--meta",
                &meta_url,
                "--data-source",
                "sh",
                "--from",
                &from.to_string(),
                "--limit",
                limit,
            ])
            .output()
            .unwrap()
    };
    // Other tests write to the same source meanwhile: leave room for their events.
    let output = binlog("500");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("INSERT ottr_s_cli.t after (id=18446744073709551615, amount=-123456789.123456, at='2026-11-22 01:02:03.456789', note='中文')"),
        "{text}"
    );
    assert!(
        text.contains("UPDATE ottr_s_cli.t before (") && text.contains("note='it''s')"),
        "{text}"
    );
    let first = text.lines().next().unwrap();
    assert!(first.starts_with(&format!("{}:", from.file)), "{first}");
    let limited = binlog("3");
    assert_eq!(
        String::from_utf8_lossy(&limited.stdout).lines().count(),
        3,
        "--limit 3 prints 3 events"
    );
}

#[tokio::test]
async fn a_timestamp_resolves_to_the_first_transaction_at_or_after_it() {
    let mut conn = source().conn().await;
    conn.query_drop(
        "DROP DATABASE IF EXISTS ottr_s_time; CREATE DATABASE ottr_s_time;
         CREATE TABLE ottr_s_time.t (id INT PRIMARY KEY);
         INSERT INTO ottr_s_time.t VALUES (1);",
    )
    .await
    .unwrap();
    // Event times have whole seconds: step past the current one before taking the time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let time: String = conn
        .query_first("SELECT CAST(UTC_TIMESTAMP(0) AS CHAR)")
        .await
        .unwrap()
        .unwrap();
    conn.query_drop("FLUSH BINARY LOGS; INSERT INTO ottr_s_time.t VALUES (2), (3);")
        .await
        .unwrap();
    let time = chrono::NaiveDateTime::parse_from_str(&time, "%Y-%m-%d %H:%M:%S").unwrap();
    let position = ottr::pipeline::select::resolve_timestamp(&data_source(), 3_000_010, time)
        .await
        .unwrap();
    let changes = changes_of("ottr_s_time", position.file.as_ref().unwrap(), 3_000_011).await;
    let ids: Vec<Value> = changes
        .into_iter()
        .map(|c| c.after.unwrap()[0].clone())
        .collect();
    assert_eq!(ids, vec![Value::Int(2), Value::Int(3)], "from {position}");

    let long_ago =
        chrono::NaiveDateTime::parse_from_str("2001-01-01 00:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
    let error = ottr::pipeline::select::resolve_timestamp(&data_source(), 3_000_012, long_ago)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no longer keeps binlogs from 2001-01-01 00:00:00 UTC"),
        "{error}"
    );
}

/// A selector on the shared source from `from`.
fn selector_from(
    from: BinlogFilePos,
    options: ottr::pipeline::select::SelectOptions,
) -> ottr::pipeline::select::Selector {
    let start = ottr::model::Position {
        file: Some(from),
        gtid: None,
        trx_rows_done: 0,
    };
    let budget = std::sync::Arc::new(ottr::pipeline::select::ByteBudget::default());
    ottr::pipeline::select::Selector::new(data_source(), options, start, budget)
}

/// Applies decoded changes of one table to a map id → row, as a target would.
fn replay(
    changes: &[ottr::pipeline::select::Change],
    table: &str,
) -> std::collections::BTreeMap<i64, Vec<Value>> {
    let mut rows = std::collections::BTreeMap::new();
    for change in changes {
        let ottr::pipeline::select::Change::Row(row, _) = change else {
            continue;
        };
        if row.table.id.table != table {
            continue;
        }
        let key = |values: &Vec<Value>| match values[0] {
            Value::Int(id) => id,
            ref other => panic!("id {other:?}"),
        };
        if let Some(before) = &row.before {
            rows.remove(&key(before));
        }
        if let Some(after) = &row.after {
            rows.insert(key(after), after.clone());
        }
    }
    rows
}

#[tokio::test]
async fn transactions_are_handed_on_as_the_server_logged_them() {
    let mut conn = source().conn().await;
    conn.query_drop("SET GLOBAL max_allowed_packet = 67108864")
        .await
        .unwrap();
    let mut conn = source().conn().await;
    conn.query_drop(
        "DROP DATABASE IF EXISTS ottr_s_trx; CREATE DATABASE ottr_s_trx; USE ottr_s_trx;
         CREATE TABLE inno (id INT PRIMARY KEY, note VARCHAR(20));
         CREATE TABLE isam (id INT PRIMARY KEY, note VARCHAR(20)) ENGINE=MyISAM;
         CREATE TABLE big (id INT PRIMARY KEY, body LONGBLOB);",
    )
    .await
    .unwrap();
    let from = master_position(&mut conn).await;
    conn.query_drop(
        "BEGIN; INSERT INTO inno VALUES (1, 'kept'); SAVEPOINT s1; INSERT INTO inno VALUES (2, 'rolled back');
         ROLLBACK TO SAVEPOINT s1; INSERT INTO inno VALUES (3, 'kept'); COMMIT;
         XA START 'x1'; INSERT INTO inno VALUES (4, 'xa'); UPDATE inno SET note = 'xa too' WHERE id = 1; XA END 'x1';
         XA PREPARE 'x1'; XA COMMIT 'x1';
         BEGIN; INSERT INTO isam VALUES (1, 'myisam'); INSERT INTO inno VALUES (5, 'mixed'); ROLLBACK;
         INSERT INTO isam VALUES (2, 'autocommit');
         BEGIN; INSERT INTO isam VALUES (10, 'before savepoint'); SAVEPOINT s2; INSERT INTO inno VALUES (10, 'undone');
         INSERT INTO isam VALUES (11, 'after savepoint'); ROLLBACK TO SAVEPOINT s2; INSERT INTO inno VALUES (11, 'kept'); COMMIT;
         CREATE TABLE ctas SELECT id, note FROM inno;
         INSERT INTO big VALUES (1, REPEAT('z', 20 * 1024 * 1024));",
    )
    .await
    .unwrap();
    let options = common::select_options(3_000_020, true, 1000, 64 << 20);
    let mut selector = selector_from(from, options);
    let mut changes = Vec::new();
    while let Some(batch) = selector.next_batch().await.unwrap() {
        changes.extend(batch.changes);
    }
    let ddl_at = changes.iter().position(|change| matches!(change, ottr::pipeline::select::Change::Ddl { statement, .. } if statement.text.starts_with(b"CREATE TABLE `ctas`")));
    let first_ctas_row = changes.iter().position(|change| matches!(change, ottr::pipeline::select::Change::Row(row, _) if row.table.id.table == "ctas"));
    assert!(
        ddl_at.is_some() && ddl_at < first_ctas_row,
        "CREATE … SELECT: the DDL comes before its rows: {ddl_at:?} {first_ctas_row:?} {:?}",
        changes
            .iter()
            .filter_map(|c| match c {
                ottr::pipeline::select::Change::Ddl { statement, .. } => Some(statement.shown(200)),
                _ => None,
            })
            .collect::<Vec<_>>()
    );
    for table in ["inno", "isam", "big", "ctas"] {
        let selected: Vec<Row> = conn
            .query(format!("SELECT * FROM ottr_s_trx.{table} ORDER BY id"))
            .await
            .unwrap();
        let replayed = replay(&changes, table);
        assert_eq!(replayed.len(), selected.len(), "{table}: {replayed:?}");
        for (row, (id, values)) in selected.iter().zip(&replayed) {
            assert_eq!(row.get::<i64, _>(0), Some(*id), "{table}");
            for (index, value) in values.iter().enumerate() {
                assert!(
                    same(value, row.as_ref(index).unwrap()),
                    "{table} row {id} column {index}"
                );
            }
        }
    }
    let big = replay(&changes, "big");
    let Value::Bytes(body) = &big[&1][1] else {
        panic!("a LONGBLOB is bytes")
    };
    assert_eq!(
        body.len(),
        20 * 1024 * 1024,
        "an event over 16 MiB is read whole"
    );
}

#[tokio::test]
async fn an_xa_rollback_after_its_prepare_was_handed_on_stops_the_stream_loudly() {
    let mut conn = source().conn().await;
    conn.query_drop(
        "DROP DATABASE IF EXISTS ottr_s_xa; CREATE DATABASE ottr_s_xa; CREATE TABLE ottr_s_xa.t (id INT PRIMARY KEY)",
    )
    .await
    .unwrap();
    let from = master_position(&mut conn).await;
    conn.query_drop(
        "XA START 'gone'; INSERT INTO ottr_s_xa.t VALUES (1); XA END 'gone'; XA PREPARE 'gone'; XA ROLLBACK 'gone';",
    )
    .await
    .unwrap();
    let options = common::select_options(3_000_021, true, 1000, 1 << 20);
    let mut selector = selector_from(from, options);
    let error = loop {
        match selector.next_batch().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the XA ROLLBACK went unnoticed"),
            Err(error) => break error.to_string(),
        }
    };
    assert!(
        error.contains("rolls back an XA transaction whose changes were handed on"),
        "{error}"
    );
}

/// With `cut_when_idle`, a batch is handed on as soon as the source goes quiet between
/// transactions, long before `batch_timeout`; without it, only when the timeout passes.
#[tokio::test]
async fn a_quiet_source_hands_its_batch_on_without_waiting_for_the_timeout() {
    // A source of its own: other tests' writes would keep the shared one from being quiet.
    let quiet = MariaDb::start(ServerKind::Source);
    let mut conn = quiet.conn().await;
    conn.query_drop(
        "DROP DATABASE IF EXISTS ottr_s_idle; CREATE DATABASE ottr_s_idle;
         CREATE TABLE ottr_s_idle.t (id INT PRIMARY KEY)",
    )
    .await
    .unwrap();
    let from = master_position(&mut conn).await;
    conn.query_drop(
        "INSERT INTO ottr_s_idle.t VALUES (1), (2); INSERT INTO ottr_s_idle.t VALUES (3)",
    )
    .await
    .unwrap();
    for (server_id, idle, expect_fast) in [
        (3_000_030, Some(Duration::from_millis(5)), true),
        (3_000_031, None, false),
    ] {
        let mut options = common::select_options(server_id, false, 1000, 1 << 20);
        options.batch_timeout = Duration::from_secs(3);
        options.cut_when_idle = idle;
        let position = ottr::model::Position {
            file: Some(from.clone()),
            gtid: None,
            trx_rows_done: 0,
        };
        let mut selector = ottr::pipeline::select::Selector::new(
            quiet.data_source(),
            options,
            position,
            std::sync::Arc::new(ottr::pipeline::select::ByteBudget::default()),
        );
        let started = std::time::Instant::now();
        let mut rows = 0;
        while rows < 3 {
            let batch = selector.next_batch().await.unwrap().unwrap();
            rows += batch
                .changes
                .iter()
                .filter(|change| matches!(change, ottr::pipeline::select::Change::Row(row, _) if row.table.id.schema == "ottr_s_idle"))
                .count();
        }
        let took = started.elapsed();
        if expect_fast {
            assert!(took < Duration::from_secs(2), "cut when idle took {took:?}");
        } else {
            assert!(
                took >= Duration::from_secs(3),
                "cut by time took only {took:?}"
            );
        }
    }
}
