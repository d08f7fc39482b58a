//! Select under load and faults, each test on a MariaDB of its own: a 200,000-row transaction
//! through a bounded byte budget and a resume from its middle, a source killed mid-stream,
//! compressed events, a purged position, and sources that fail their prechecks.

mod common;

use common::{MariaDb, ServerKind, select_options};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use ottr::config::DataSourceKind;
use ottr::model::{BinlogFilePos, Position, Value};
use ottr::pipeline::select::{
    BinlogReader, ByteBudget, Change, ReaderOptions, Selector, first_failure, run_prechecks,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

async fn position(conn: &mut Conn) -> Position {
    Position {
        file: Some(common::binlog_end(conn).await),
        gtid: None,
        trx_rows_done: 0,
    }
}

/// The `id` column (first) of every row change of `table` in the batch.
fn ids(changes: &[Change], table: &str) -> Vec<i64> {
    changes
        .iter()
        .filter_map(|change| match change {
            Change::Row(row, _) if row.table.id.table == table => {
                row.after.as_ref().or(row.before.as_ref())
            }
            _ => None,
        })
        .map(|values| match values[0] {
            Value::Int(id) => id,
            ref other => panic!("unexpected id {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_huge_transaction_streams_through_the_budget_and_resumes_from_its_middle() {
    let server = MariaDb::start(ServerKind::Source);
    let mut conn = server.conn().await;
    conn.query_drop(
        "CREATE DATABASE big; CREATE TABLE big.t (id BIGINT PRIMARY KEY, pad VARCHAR(100))",
    )
    .await
    .unwrap();
    let start = position(&mut conn).await;
    conn.query_drop(
        "USE big; INSERT INTO big.t SELECT seq, REPEAT('x', 60) FROM seq_1_to_200000;
         INSERT INTO big.t VALUES (200001, 'after');",
    )
    .await
    .unwrap();

    let batch_bytes = 256 * 1024;
    let budget = Arc::new(ByteBudget::default());
    let mut selector = Selector::new(
        server.data_source(),
        select_options(4_000_001, true, 5000, batch_bytes),
        start.clone(),
        budget.clone(),
    );
    let mut seen = Vec::new();
    let mut resume_at = None;
    let mut batches = 0;
    while let Some(batch) = selector.next_batch().await.unwrap() {
        batches += 1;
        assert!(
            budget.buffered() <= batch_bytes,
            "{} bytes buffered",
            budget.buffered()
        );
        seen.extend(ids(&batch.changes, "t"));
        if batches == 7 {
            // Kill the reader in the middle of the transaction: resume where this batch ends.
            assert!(batch.end.trx_rows_done > 0, "{}", batch.end);
            resume_at = Some(batch.end.clone());
            break;
        }
    }
    drop(selector);
    assert_eq!(
        budget.buffered(),
        0,
        "every dropped batch gives its bytes back"
    );
    let resume_at = resume_at.expect("more than 7 batches");
    let mut selector = Selector::new(
        server.data_source(),
        select_options(4_000_002, true, 5000, batch_bytes),
        resume_at,
        budget.clone(),
    );
    while let Some(batch) = selector.next_batch().await.unwrap() {
        assert!(budget.buffered() <= batch_bytes);
        seen.extend(ids(&batch.changes, "t"));
        batches += 1;
    }
    assert!(
        budget.peak() <= batch_bytes,
        "peak {} over {batch_bytes}",
        budget.peak()
    );
    assert_eq!(seen.len(), 200_001, "every row exactly once");
    assert_eq!(seen, (1..=200_001).collect::<Vec<i64>>());
    eprintln!(
        "200,000-row transaction: {batches} batches, peak {} bytes buffered (budget {batch_bytes})",
        budget.peak()
    );
}

#[tokio::test]
async fn a_source_killed_mid_stream_is_followed_after_its_restart() {
    let server = MariaDb::start(ServerKind::Source);
    let mut conn = server.conn().await;
    conn.query_drop("CREATE DATABASE crash; CREATE TABLE crash.t (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    let start = position(&mut conn).await;
    for id in 1..=300 {
        conn.exec_drop("INSERT INTO crash.t VALUES (?)", (id,))
            .await
            .unwrap();
    }
    let budget = Arc::new(ByteBudget::default());
    let mut selector = Selector::new(
        server.data_source(),
        select_options(4_000_003, false, 50, 1 << 20),
        start,
        budget,
    );
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    let record = |seen: &mut BTreeMap<i64, usize>, changes: &[Change]| {
        for id in ids(changes, "t") {
            *seen.entry(id).or_default() += 1;
        }
    };
    let first = selector.next_batch().await.unwrap().unwrap();
    record(&mut seen, &first.changes);
    drop(conn);
    server.kill9();
    server.restart();
    let mut conn = server.conn().await;
    for id in 301..=400 {
        conn.exec_drop("INSERT INTO crash.t VALUES (?)", (id,))
            .await
            .unwrap();
    }
    let expected: Vec<i64> = conn
        .query("SELECT id FROM crash.t ORDER BY id")
        .await
        .unwrap();
    while seen.len() < expected.len() {
        let batch = tokio::time::timeout(Duration::from_secs(30), selector.next_batch())
            .await
            .expect("the stream resumes after the restart")
            .unwrap()
            .unwrap();
        record(&mut seen, &batch.changes);
    }
    assert!(selector.reconnects() >= 1);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        expected,
        "nothing lost"
    );
    assert!(
        seen.values().all(|count| *count == 1),
        "nothing doubled: {:?}",
        seen.iter().filter(|(_, c)| **c > 1).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn compressed_events_are_fatal_and_named_with_their_position() {
    let server = MariaDb::start_with(
        ServerKind::Source,
        &["--log-bin-compress=ON", "--log-bin-compress-min-len=10"],
    );
    let mut conn = server.conn().await;
    conn.query_drop("CREATE DATABASE z; CREATE TABLE z.t (id INT PRIMARY KEY, note VARCHAR(200))")
        .await
        .unwrap();
    let start = position(&mut conn).await;
    conn.query_drop("INSERT INTO z.t VALUES (1, REPEAT('compress me ', 10))")
        .await
        .unwrap();
    let options = ReaderOptions {
        server_id: 4_000_004,
        heartbeat: Duration::from_secs(1),
        stop_at_end: true,
    };
    let mut reader = BinlogReader::open(&server.data_source(), &options, start.file.as_ref(), None)
        .await
        .unwrap();
    let error = loop {
        match reader.next().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the compressed events were skipped"),
            Err(error) => break error.to_string(),
        }
    };
    assert!(error.contains("COMPRESSED"), "{error}");
    assert!(
        error.contains(&format!("at {}:", start.file.as_ref().unwrap().file)),
        "{error}"
    );
    assert!(error.contains("log_bin_compress=OFF"), "{error}");
    let checks = run_prechecks(&mut conn, DataSourceKind::MariaDb)
        .await
        .unwrap();
    assert!(
        first_failure(&checks)
            .unwrap()
            .to_string()
            .contains("log_bin_compress")
    );
}

#[tokio::test]
async fn a_purged_position_is_refused_with_the_oldest_one_and_the_ways_out() {
    let server = MariaDb::start(ServerKind::Source);
    let mut conn = server.conn().await;
    conn.query_drop("CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY); FLUSH BINARY LOGS; FLUSH BINARY LOGS;")
        .await
        .unwrap();
    // The server keeps a binlog until its binlog checkpoint has passed it, which may take a
    // moment after FLUSH: purge until the first file is gone.
    eventually!(Duration::from_secs(20), "mysql-bin.000001 to be purged", {
        conn.query_drop("PURGE BINARY LOGS TO 'mysql-bin.000003'")
            .await
            .unwrap();
        let logs: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
        let first: Option<String> = logs.first().and_then(|row| row.get(0));
        (first.as_deref() == Some("mysql-bin.000003")).then_some(())
    });
    let purged = BinlogFilePos {
        file: "mysql-bin.000001".into(),
        offset: 4,
    };
    let options = ReaderOptions {
        server_id: 4_000_005,
        heartbeat: Duration::from_secs(1),
        stop_at_end: true,
    };
    let error = BinlogReader::open(&server.data_source(), &options, Some(&purged), None)
        .await
        .err()
        .expect("a purged position is refused")
        .to_string();
    assert_eq!(
        error,
        "position mysql-bin.000001:4 is no longer on data source 'sh' (purged); the oldest available is mysql-bin.000003:4: \
         CALL reset_position to it (changes in between are lost) or re-snapshot the target"
    );
}

#[tokio::test]
async fn sources_that_cannot_be_read_row_by_row_fail_their_prechecks() {
    for (args, expected) in [
        (
            &["--binlog-format=STATEMENT"][..],
            "precheck binlog_format: binlog_format is STATEMENT; fix: SET GLOBAL binlog_format = 'ROW'",
        ),
        (
            &["--binlog-row-metadata=MINIMAL"][..],
            "precheck binlog_row_metadata: binlog_row_metadata is MINIMAL; fix:",
        ),
    ] {
        let server = MariaDb::start_with(ServerKind::Source, args);
        let mut conn = server.conn().await;
        let checks = run_prechecks(&mut conn, DataSourceKind::MariaDb)
            .await
            .unwrap();
        let failure = first_failure(&checks)
            .expect("a failed precheck")
            .to_string();
        assert!(failure.starts_with(expected), "{failure}");
    }
}

#[tokio::test]
async fn a_server_id_used_by_another_replica_is_reported() {
    let server = MariaDb::start(ServerKind::Source);
    let mut conn = server.conn().await;
    let start = position(&mut conn).await;
    let options = ReaderOptions {
        server_id: 4_000_077,
        heartbeat: Duration::from_millis(300),
        stop_at_end: false,
    };
    let mut first = BinlogReader::open(&server.data_source(), &options, start.file.as_ref(), None)
        .await
        .unwrap();
    // Read up to the current end: the server sends a heartbeat once it has nothing more.
    while let Ok(Ok(Some(read))) = tokio::time::timeout(Duration::from_secs(2), first.next()).await
    {
        if read.event == ottr::pipeline::select::SourceEvent::Heartbeat {
            break;
        }
    }
    let mut second = BinlogReader::open(&server.data_source(), &options, start.file.as_ref(), None)
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(500), second.next()).await;
    conn.query_drop("CREATE DATABASE wake_up").await.unwrap();
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(5), first.next()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => panic!("the stream ended without an error"),
            Ok(Err(error)) => break error,
            Err(_) => panic!("the first reader was never told"),
        }
    };
    let text = ottr::error::chain(&error);
    assert!(
        text.contains("server id 4000077") && text.contains("another replica"),
        "{text}"
    );
    // Transient: a restarted reader sees it too until the source drops its dead connection.
    assert_eq!(error.class(), ottr::ErrorClass::Transient);
}

#[tokio::test]
async fn a_silent_source_is_noticed_by_its_missing_heartbeats() {
    let server = MariaDb::start(ServerKind::Source);
    let mut conn = server.conn().await;
    conn.query_drop("CREATE DATABASE frozen; CREATE TABLE frozen.t (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    let start = position(&mut conn).await;
    conn.query_drop("INSERT INTO frozen.t VALUES (1)")
        .await
        .unwrap();
    let budget = Arc::new(ByteBudget::default());
    let mut selector = Selector::new(
        server.data_source(),
        select_options(4_000_006, false, 1, 1 << 20),
        start,
        budget,
    );
    let mut seen = ids(&selector.next_batch().await.unwrap().unwrap().changes, "t");
    // Freeze the server: the connection stays open, but no heartbeat comes.
    let pid = server.pid().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    let waiting = tokio::spawn(async move {
        let batch = selector.next_batch().await;
        (selector, batch)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    conn.query_drop("INSERT INTO frozen.t VALUES (2)")
        .await
        .unwrap();
    let (mut selector, batch) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap();
    seen.extend(ids(&batch.unwrap().unwrap().changes, "t"));
    while seen.len() < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(30), selector.next_batch())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.extend(ids(&batch.changes, "t"));
    }
    assert_eq!(seen, vec![1, 2]);
    assert!(selector.reconnects() >= 1, "the silent stream was reopened");
}

/// mysql_common's TIME(1)/TIME(2) arithmetic overflows on a negative value with a fraction
/// (a panic with overflow checks on): Select reads those four bytes itself.
#[tokio::test]
async fn a_negative_short_time_with_a_fraction_decodes_exactly() {
    use ottr::pipeline::select::{ByteBudget, Selector};
    let server = MariaDb::start(ServerKind::Source);
    let mut conn = server.conn().await;
    conn.query_drop(
        "DROP DATABASE IF EXISTS ottr_s_time2; CREATE DATABASE ottr_s_time2; CREATE TABLE ottr_s_time2.t (id INT PRIMARY KEY, t TIME(2), u TIME(1))",
    )
    .await
    .unwrap();
    let from = common::binlog_end(&mut conn).await;
    conn.query_drop("INSERT INTO ottr_s_time2.t VALUES (1, '-00:00:01.50', '-838:59:58.9'), (2, '-12:34:56.07', '00:00:00.1')")
        .await
        .unwrap();
    let options = select_options(4_000_022, true, 1000, 1 << 20);
    let start = ottr::model::Position {
        file: Some(from),
        gtid: None,
        trx_rows_done: 0,
    };
    let mut selector = Selector::new(
        server.data_source(),
        options,
        start,
        std::sync::Arc::new(ByteBudget::default()),
    );
    let mut decoded = Vec::new();
    while let Some(batch) = selector.next_batch().await.unwrap() {
        for change in batch.changes {
            if let ottr::pipeline::select::Change::Row(row, _) = change {
                let after = row.after.unwrap();
                decoded.push(format!("{} {}", after[1], after[2]));
            }
        }
    }
    let selected: Vec<(String, String)> = conn
        .query("SELECT CAST(t AS CHAR), CAST(u AS CHAR) FROM ottr_s_time2.t ORDER BY id")
        .await
        .unwrap();
    let selected: Vec<String> = selected
        .into_iter()
        .map(|(t, u)| format!("{t} {u}"))
        .collect();
    assert_eq!(decoded, selected);
}
