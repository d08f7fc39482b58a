//! The online copy end to end on real MariaDB servers (source, target, metadata) with
//! `ottr node`: `copy_tables` brings live tables into the target while the source takes
//! writes and the pipeline streams; the target ends identical (row by row and CHECKSUM
//! TABLE), through a kill -9 of the node, over stale target rows; bad requests are refused
//! by name.

mod common;

use common::{Installation, MariaDb, SHORT, ServerKind, shared};
use mysql_async::prelude::Queryable;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn source() -> &'static MariaDb {
    shared(ServerKind::Source)
}

fn target() -> &'static MariaDb {
    shared(ServerKind::Target)
}

fn meta() -> &'static MariaDb {
    shared(ServerKind::Plain)
}

/// A started one-way channel `name` over the schema of the same name, with the given pairs
/// (source table, target table) and extra SQL run before the start.
async fn channel(name: &str, pairs: &[(&str, Option<&str>)], extra: &str) -> Installation {
    let mut copy = Installation::new(meta(), &format!("ottr_c_{name}"), SHORT).await;
    copy.data_source("src", source(), "root").await;
    copy.data_source("dst", target(), "root").await;
    let pairs: Vec<(&str, &str, Option<&str>, Option<&str>)> = pairs
        .iter()
        .map(|(table, target_table)| (name, *table, None, *target_table))
        .collect();
    copy.start_one_way(name, ("src", "dst"), &pairs, 50, extra)
        .await;
    copy
}

/// Rows of `table` on `server`, in key order.
async fn rows(server: &MariaDb, table: &str) -> common::Rows {
    common::table_rows(server, table).await
}

async fn checksum(server: &MariaDb, table: &str) -> Option<u64> {
    let row: Option<(String, Option<u64>)> = server
        .conn()
        .await
        .query_first(format!("CHECKSUM TABLE {table}"))
        .await
        .unwrap();
    row.and_then(|(_, sum)| sum)
}

/// Waits until the copy job's tables are all `done` (fails at once on `failed`).
async fn copied(copy: &mut Installation, job: u64, limit: Duration) {
    let mut last: Vec<(String, String, u64, Option<String>)>;
    eventually!(
        limit,
        format!("copy job {job} to be done"),
        {
            last = copy
                .meta
                .exec(
                    "SELECT table_name, state, rows_copied, last_error FROM v_copy WHERE job = ?",
                    (job,),
                )
                .await
                .unwrap();
            if let Some(failed) = last.iter().find(|(_, state, _, _)| state == "failed") {
                panic!("copy failed: {failed:?}");
            }
            (!last.is_empty() && last.iter().all(|(_, state, _, _)| state == "done")).then_some(())
        },
        else format!("v_copy: {last:?}")
    );
}

/// Waits until `source_table` and `target_table` hold the same rows and checksums.
async fn identical(source_table: &str, target_table: &str) {
    let mut last: (common::Rows, common::Rows);
    eventually!(
        Duration::from_secs(30),
        format!("{target_table} to equal {source_table}"),
        {
            last = (rows(source(), source_table).await, rows(target(), target_table).await);
            (last.0 == last.1).then_some(())
        },
        else format!(
            "source {} rows, target {} rows; first differences: {:?}",
            last.0.len(),
            last.1.len(),
            last.0.iter().zip(last.1.iter()).filter(|(a, b)| a != b).take(3).collect::<Vec<_>>()
        )
    );
    assert_eq!(
        checksum(source(), source_table).await,
        checksum(target(), target_table).await,
        "CHECKSUM TABLE of {source_table} and {target_table}"
    );
}

async fn copy_tables(
    copy: &mut Installation,
    pipeline: &str,
    schema: &str,
    table: &str,
    condition: Option<&str>,
) -> u64 {
    copy.meta
        .exec_first(
            "CALL copy_tables(?, ?, ?, ?)",
            (pipeline, schema, table, condition),
        )
        .await
        .unwrap()
        .expect("copy_tables returns the job id")
}

/// Writes inserts, updates, deletes and key changes to `table` (id, n, note) until `stop`,
/// in rows above `low`, spread over the whole key range.
fn spawn_churn(table: String, rows: i64, stop: CancellationToken) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut conn = source().conn().await;
        let mut round: i64 = 0;
        while !stop.is_cancelled() {
            round += 1;
            let spot = (round * 7919) % rows + 1;
            conn.query_drop(format!(
                "UPDATE {table} SET n = n + 1, note = CONCAT('u', {round}) WHERE id = {spot};
                 DELETE FROM {table} WHERE id = {};
                 INSERT INTO {table} (id, n, note) VALUES ({}, {round}, 'new') ON DUPLICATE KEY UPDATE n = n + 1;
                 UPDATE {table} SET id = {} WHERE id = {};",
                (spot * 13) % rows + 1,
                rows + round,
                rows * 10 + round,
                (spot * 31) % rows + 1,
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        round as u64
    })
}

#[tokio::test]
async fn a_live_table_is_copied_identical_while_the_source_takes_writes() {
    let rows_at_start = 20_000;
    for server in [source(), target()] {
        server
            .run("DROP DATABASE IF EXISTS c_live; CREATE DATABASE c_live;")
            .await;
    }
    source()
        .run(&format!(
            "CREATE TABLE c_live.orders (id BIGINT UNSIGNED PRIMARY KEY, n INT NOT NULL, note VARCHAR(40), at DATETIME(6) DEFAULT '2026-01-01 00:00:00');
             INSERT INTO c_live.orders (id, n, note) SELECT seq, seq % 97, CONCAT('row ', seq) FROM mysql.seq_1_to_{rows_at_start};
             CREATE TABLE c_live.people (id INT PRIMARY KEY, name VARCHAR(20), secret VARCHAR(20), KEY by_secret (secret));
             INSERT INTO c_live.people SELECT seq, CONCAT('p', seq), 'hunter2' FROM mysql.seq_1_to_500;"
        ))
        .await;
    // A stale target: rows that differ, rows the source lacks inside the key range and past
    // its end; people is missing and gets created (renamed, without its secret).
    target()
        .run(
            "CREATE TABLE c_live.orders (id BIGINT UNSIGNED PRIMARY KEY, n INT NOT NULL, note VARCHAR(40), at DATETIME(6) DEFAULT '2026-01-01 00:00:00');
             INSERT INTO c_live.orders (id, n, note) VALUES (5, -1, 'stale'), (777, -1, 'stale');
             INSERT INTO c_live.orders (id, n, note) SELECT seq * 1000000, 0, 'extra' FROM mysql.seq_1_to_3;",
        )
        .await;
    source()
        .run("DELETE FROM c_live.orders WHERE id = 777")
        .await;
    let mut copy = channel(
        "c_live",
        &[("orders", None), ("people", Some("persons"))],
        "CALL add_column_pair('c_live', 'c_live', 'people', 'exclude', 'secret', NULL);
         CALL set_pipeline_option('c_live', 'copy_chunk_ms', '20');",
    )
    .await;
    let _node = copy.node("n1");
    copy.wait_running(None, Duration::from_secs(30)).await;
    let stop = CancellationToken::new();
    let churn = spawn_churn("c_live.orders".into(), rows_at_start, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = copy_tables(&mut copy, "c_live", "c_live", "orders", None).await;
    let queued: Vec<(String, String)> = copy
        .meta
        .exec("SELECT table_name, state FROM v_copy WHERE job = ?", (job,))
        .await
        .unwrap();
    assert_eq!(queued, [("orders".to_owned(), "queued".to_owned())]);
    let people = copy_tables(&mut copy, "c_live", "c_live", "peo.le", None).await;
    copied(&mut copy, job, Duration::from_secs(120)).await;
    copied(&mut copy, people, Duration::from_secs(60)).await;
    stop.cancel();
    let rounds = churn.await.unwrap();
    assert!(
        rounds > 20,
        "the source took writes during the copy ({rounds} rounds)"
    );
    identical("c_live.orders", "c_live.orders").await;
    let persons: Vec<(i64, String)> = target()
        .conn()
        .await
        .query("SELECT id, name FROM c_live.persons ORDER BY id")
        .await
        .unwrap();
    assert_eq!(persons.len(), 500);
    assert_eq!(persons[41], (42, "p42".to_owned()));
    let secret_columns: u64 = target()
        .conn()
        .await
        .query_first("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'c_live' AND TABLE_NAME = 'persons' AND COLUMN_NAME = 'secret'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        secret_columns, 0,
        "the excluded column is left out of the created table"
    );
    let (chunks, estimated): (u64, Option<u64>) = copy
        .meta
        .exec_first(
            "SELECT chunks_done, rows_estimated FROM v_copy WHERE job = ?",
            (job,),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(chunks > 2, "the copy went in chunks ({chunks})");
    assert!(estimated.is_some());
    // streaming goes on after the copy
    source()
        .run("UPDATE c_live.orders SET note = 'after' WHERE id = 2")
        .await;
    identical("c_live.orders", "c_live.orders").await;
}

#[tokio::test]
async fn a_copy_killed_mid_way_resumes_at_its_last_chunk_and_copies_nothing_twice() {
    let count = 30_000u64;
    for server in [source(), target()] {
        server
            .run("DROP DATABASE IF EXISTS c_kill; CREATE DATABASE c_kill;")
            .await;
    }
    source()
        .run(&format!(
            "CREATE TABLE c_kill.t (a INT NOT NULL, b VARCHAR(10) NOT NULL, n INT, PRIMARY KEY (a, b));
             INSERT INTO c_kill.t SELECT seq DIV 3, CONCAT('k', seq % 3), seq FROM mysql.seq_1_to_{count};"
        ))
        .await;
    let mut copy = channel(
        "c_kill",
        &[("t", None)],
        "CALL set_pipeline_option('c_kill', 'copy_chunk_ms', '10');",
    )
    .await;
    let mut node = copy.node("n1");
    copy.wait_running(None, Duration::from_secs(30)).await;
    let job = copy_tables(&mut copy, "c_kill", "c_kill", "t", None).await;
    eventually!(Duration::from_secs(60), "a few chunks copied", {
        let chunks: Option<u64> = copy
            .meta
            .exec_first(
                "SELECT chunks_done FROM v_copy WHERE job = ? AND state = 'copying'",
                (job,),
            )
            .await
            .unwrap();
        chunks.filter(|chunks| *chunks >= 3)
    });
    node.kill9();
    // `ottr status` shows the copy under way, with its progress
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ottr"))
        .args(["status", "--meta", &copy.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("Copies")
            && text.contains("c_kill.t")
            && text.contains("copying")
            && text.contains("%"),
        "{text}"
    );
    let _second = copy.node("n2");
    copied(&mut copy, job, Duration::from_secs(120)).await;
    identical("c_kill.t", "c_kill.t").await;
    let (rows_copied, on_target): (u64, u64) = copy
        .meta
        .exec_first("SELECT rows_copied, 0 FROM v_copy WHERE job = ?", (job,))
        .await
        .unwrap()
        .unwrap();
    let _ = on_target;
    assert_eq!(
        rows_copied, count,
        "every row read once: resumed after the last committed chunk"
    );
    let started: u64 = copy
        .meta
        .query_first("SELECT COUNT(*) FROM event_log WHERE kind = 'copy_started' AND message LIKE '%resumed after%'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started, 1, "the second node resumed the copy");
}

#[tokio::test]
async fn bad_copy_requests_are_refused_by_name_and_failures_show_in_v_copy() {
    for server in [source(), target()] {
        server
            .run("DROP DATABASE IF EXISTS c_bad; CREATE DATABASE c_bad;")
            .await;
    }
    source()
        .run(
            "CREATE TABLE c_bad.keyless (a INT, b INT); INSERT INTO c_bad.keyless VALUES (1, 2);
             CREATE TABLE c_bad.shaped (id INT PRIMARY KEY, v INT); INSERT INTO c_bad.shaped VALUES (1, 1);
             CREATE TABLE c_bad.outside (id INT PRIMARY KEY);
             CREATE TABLE c_bad.part (id INT PRIMARY KEY, v INT); INSERT INTO c_bad.part SELECT seq, seq FROM mysql.seq_1_to_100;",
        )
        .await;
    target()
        .run("CREATE TABLE c_bad.shaped (id INT PRIMARY KEY, other INT);")
        .await;
    let mut copy = channel(
        "c_bad",
        &[
            ("keyless", None),
            ("shaped", None),
            ("part", None),
            ("missing", None),
        ],
        "",
    )
    .await;
    let _node = copy.node("n1");
    copy.wait_running(None, Duration::from_secs(30)).await;
    let refused = |sql: &'static str| {
        let meta = meta();
        async move {
            let mut conn = common::conn_to(meta, "ottr_c_c_bad").await;
            conn.query_drop(sql).await.unwrap_err().to_string()
        }
    };
    let outside = refused("CALL copy_tables('c_bad', 'c_bad', 'outside', NULL)").await;
    assert!(
        outside.contains("'c_bad.outside' is outside the table pairs"),
        "{outside}"
    );
    let unknown = refused("CALL copy_tables('nope', 'c_bad', 'part', NULL)").await;
    assert!(
        unknown.contains("unknown pipeline or channel 'nope'"),
        "{unknown}"
    );
    let syntax =
        refused("CALL copy_tables('c_bad', 'c_bad', 'part', 'id > 1; DROP TABLE x')").await;
    assert!(
        syntax.contains("WHERE condition does not parse"),
        "{syntax}"
    );
    let no_match = refused("CALL copy_tables('c_bad', 'c_bad', 'zz.*', NULL)").await;
    assert!(
        no_match.contains("no source table of 'c_bad' matches 'zz.*'"),
        "{no_match}"
    );
    // A condition copies only its rows (and deletes no target row outside it).
    let part = copy_tables(
        &mut copy,
        "c_bad",
        "c_bad",
        "part",
        Some("id <= 10 OR v = 50"),
    )
    .await;
    copied(&mut copy, part, Duration::from_secs(60)).await;
    let on_target: Vec<i64> = target()
        .conn()
        .await
        .query("SELECT id FROM c_bad.part ORDER BY id")
        .await
        .unwrap();
    assert_eq!(on_target, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 50]);
    // What only the node can tell fails the table in v_copy, by name.
    for (table, expected) in [
        ("keyless", "c_bad.keyless has no primary key"),
        ("shaped", "target table c_bad.shaped has no column v"),
        ("missing", "no table c_bad.missing on data source 'src'"),
    ] {
        let job = copy_tables(&mut copy, "c_bad", "c_bad", table, None).await;
        let mut last: Option<(String, Option<String>)>;
        let error: String = eventually!(
            Duration::from_secs(30),
            format!("the copy of {table} to fail"),
            {
                last = copy
                    .meta
                    .exec_first("SELECT state, last_error FROM v_copy WHERE job = ?", (job,))
                    .await
                    .unwrap();
                match &last {
                    Some((state, Some(error))) if state == "failed" => Some(error.clone()),
                    _ => None,
                }
            },
            else format!("{last:?}")
        );
        assert!(error.contains(expected), "{table}: {error}");
    }
    copy.meta
        .query_drop("CALL stop_channel('c_bad')")
        .await
        .unwrap();
    let stopped = refused("CALL copy_tables('c_bad', 'c_bad', 'part', NULL)").await;
    assert!(stopped.contains("channel 'c_bad' is stopped"), "{stopped}");
}

#[tokio::test]
async fn initial_copy_seeds_a_new_channel_then_it_streams() {
    for server in [source(), target()] {
        server
            .run("DROP DATABASE IF EXISTS c_init; CREATE DATABASE c_init;")
            .await;
    }
    source()
        .run(
            "CREATE TABLE c_init.a (id INT PRIMARY KEY, v TEXT); INSERT INTO c_init.a SELECT seq, REPEAT('x', seq % 50) FROM mysql.seq_1_to_3000;
             CREATE TABLE c_init.b (id INT PRIMARY KEY, d DATE, e ENUM('x','y'), j JSON); INSERT INTO c_init.b SELECT seq, '2026-12-03' - INTERVAL seq DAY, IF(seq % 2, 'x', 'y'), JSON_OBJECT('k', seq) FROM mysql.seq_1_to_700;",
        )
        .await;
    let mut copy = channel(
        "c_init",
        &[("a", None), ("b", None)],
        "CALL set_pipeline_option('c_init', 'initial_copy', 'on');",
    )
    .await;
    let _node = copy.node("n1");
    copy.wait_running(None, Duration::from_secs(30)).await;
    let job: u64 = eventually!(Duration::from_secs(30), "the initial copy job", {
        copy.meta
            .query_first("SELECT job FROM v_copy WHERE origin = 'initial_copy' GROUP BY job HAVING COUNT(*) = 2")
            .await
            .unwrap()
    });
    copied(&mut copy, job, Duration::from_secs(60)).await;
    source()
        .run("UPDATE c_init.b SET e = 'y' WHERE id = 1; DELETE FROM c_init.a WHERE id = 3;")
        .await;
    identical("c_init.a", "c_init.a").await;
    identical("c_init.b", "c_init.b").await;
}

#[tokio::test]
async fn names_with_a_backtick_a_quote_and_a_backslash_are_copied_as_they_are() {
    for server in [source(), target()] {
        server
            .run("DROP DATABASE IF EXISTS c_odd; CREATE DATABASE c_odd;")
            .await;
    }
    // table we`ird'name, key columns `k\ey` and id, a column va`l'ue
    source()
        .run(
            r"CREATE TABLE c_odd.`we``ird'name` (`k\ey` VARCHAR(10) NOT NULL, id INT NOT NULL, `va``l'ue` VARCHAR(20), PRIMARY KEY (`k\ey`, id));
              INSERT INTO c_odd.`we``ird'name` SELECT IF(seq % 2, 'a\\b', 'c''d'), seq, CONCAT('v`', seq, '\'') FROM mysql.seq_1_to_3000;",
        )
        .await;
    let mut copy = channel(
        "c_odd",
        &[("we`ird'name", None)],
        "CALL set_pipeline_option('c_odd', 'copy_chunk_ms', '10');",
    )
    .await;
    let _node = copy.node("n1");
    copy.wait_running(None, Duration::from_secs(30)).await;
    let job = copy_tables(
        &mut copy,
        "c_odd",
        "c_odd",
        "we`ird'name",
        Some(r"`k\ey` <> 'zz' AND `va``l'ue` LIKE 'v`%'"),
    )
    .await;
    copied(&mut copy, job, Duration::from_secs(60)).await;
    identical("c_odd.`we``ird'name`", "c_odd.`we``ird'name`").await;
    // verified and repaired under the same names
    target()
        .run(r"UPDATE c_odd.`we``ird'name` SET `va``l'ue` = 'x' WHERE id = 1")
        .await;
    let job: u64 = copy
        .meta
        .exec_first("CALL verify('c_odd', 'c_odd', ?)", ("we`ird'name",))
        .await
        .unwrap()
        .unwrap();
    let mut found: Vec<(String, String, Option<String>)>;
    eventually!(
        Duration::from_secs(60),
        "the verification to find the changed row",
        {
            let done: Option<String> = copy
                .meta
                .exec_first("SELECT state FROM v_verify WHERE job = ?", (job,))
                .await
                .unwrap();
            assert_ne!(done.as_deref(), Some("failed"));
            found = copy
                .meta
                .exec(
                    "SELECT row_key, kind, columns FROM v_verify_diff WHERE job = ?",
                    (job,),
                )
                .await
                .unwrap();
            (done.as_deref() == Some("done")).then_some(())
        },
        else format!("{found:?}")
    );
    assert_eq!(
        found,
        [(
            r"a\b, 1".to_owned(),
            "different".to_owned(),
            Some("va`l'ue".to_owned())
        )]
    );
    let _: Option<u64> = copy
        .meta
        .exec_first("CALL repair_differences(?)", (job,))
        .await
        .unwrap();
    identical("c_odd.`we``ird'name`", "c_odd.`we``ird'name`").await;
}

#[tokio::test]
async fn a_paused_copy_waits_and_resumes_and_a_cancelled_one_stops() {
    for server in [source(), target()] {
        server
            .run("DROP DATABASE IF EXISTS c_ctl; CREATE DATABASE c_ctl;")
            .await;
    }
    source()
        .run(
            "CREATE TABLE c_ctl.p (id INT PRIMARY KEY, v INT); INSERT INTO c_ctl.p SELECT seq, seq FROM mysql.seq_1_to_30000;
             CREATE TABLE c_ctl.c (id INT PRIMARY KEY, v INT); INSERT INTO c_ctl.c SELECT seq, seq FROM mysql.seq_1_to_30000;",
        )
        .await;
    let mut copy = channel(
        "c_ctl",
        &[("p", None), ("c", None)],
        "CALL set_pipeline_option('c_ctl', 'copy_chunk_ms', '10');",
    )
    .await;
    let _node = copy.node("n1");
    copy.wait_running(None, Duration::from_secs(30)).await;
    let chunks = |job: u64| {
        let meta = meta();
        async move {
            let mut conn = common::conn_to(meta, "ottr_c_c_ctl").await;
            let row: Option<(String, u64)> = conn
                .exec_first(
                    "SELECT state, chunks_done FROM v_copy WHERE job = ?",
                    (job,),
                )
                .await
                .unwrap();
            row.unwrap()
        }
    };
    for (table, cancel) in [("p", false), ("c", true)] {
        let job = copy_tables(&mut copy, "c_ctl", "c_ctl", table, None).await;
        eventually!(Duration::from_secs(30), format!("{table}: two chunks"), {
            let (state, done) = chunks(job).await;
            (state == "copying" && done >= 2).then_some(())
        });
        let ask = if cancel {
            "CALL cancel_copy(?)"
        } else {
            "CALL pause_copy(?)"
        };
        copy.meta.exec_drop(ask, (job,)).await.unwrap();
        // the chunk under way finishes; then nothing moves
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (state, held) = chunks(job).await;
        assert_eq!(state, if cancel { "cancelled" } else { "paused" });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            chunks(job).await,
            (state.clone(), held),
            "{table} stands still"
        );
        if cancel {
            let refused = copy
                .meta
                .exec_drop("CALL resume_copy(?)", (job,))
                .await
                .unwrap_err()
                .to_string();
            assert!(refused.contains("was cancelled"), "{refused}");
            let on_target = rows(target(), "c_ctl.c").await.len();
            assert!(
                on_target < 30_000,
                "a cancelled copy stops ({on_target} rows)"
            );
        } else {
            copy.meta
                .exec_drop("CALL resume_copy(?)", (job,))
                .await
                .unwrap();
            copied(&mut copy, job, Duration::from_secs(60)).await;
            identical("c_ctl.p", "c_ctl.p").await;
        }
    }
}
