//! Verify and repair end to end on real MariaDB servers (source, target, metadata) with
//! `ottr node`: `verify()` finds exactly the rows changed, deleted and added by hand on the
//! target while the source takes writes, `repair_differences()` repairs them through the
//! stream and a second verification is clean; verifications under sustained writes find
//! nothing; a verification killed mid-way resumes at its last chunk; bad requests are
//! refused by name.

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

/// `rows` rows in `schema.t` (id, n, note, at) on both sides, equal, and a started one-way
/// channel `schema` over it, with the extra SQL run before the start.
async fn channel(schema: &str, rows: u64, extra: &str) -> Installation {
    for server in [source(), target()] {
        server
            .run(&format!(
                "DROP DATABASE IF EXISTS {schema}; CREATE DATABASE {schema};
                 CREATE TABLE {schema}.t (id BIGINT PRIMARY KEY, n INT NOT NULL, note VARCHAR(40),
                   at TIMESTAMP(3) NULL, data VARBINARY(16));
                 INSERT INTO {schema}.t SELECT seq, seq % 97, CONCAT('row ', seq),
                   '2026-01-01 00:00:00' + INTERVAL seq SECOND, UNHEX(HEX(seq))
                   FROM mysql.seq_1_to_{rows};"
            ))
            .await;
    }
    let mut install = Installation::new(meta(), &format!("ottr_{schema}"), SHORT).await;
    install.data_source("src", source(), "root").await;
    install.data_source("dst", target(), "root").await;
    install
        .start_one_way(
            schema,
            ("src", "dst"),
            &[(schema, "t", None, None)],
            50,
            extra,
        )
        .await;
    install
}

/// Writes updates, deletes, inserts and key changes to `table` until `stop`, on keys 1 to
/// `spread` (inserts and moved keys above 1,000,000). Returns the rounds written.
fn spawn_writer(
    server: &'static MariaDb,
    table: String,
    spread: i64,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut conn = server.conn().await;
        let mut round: i64 = 0;
        while !stop.is_cancelled() {
            round += 1;
            let spot = (round * 7919) % spread + 1;
            conn.query_drop(format!(
                "UPDATE {table} SET n = n + 1, note = CONCAT('u', {round}) WHERE id = {spot};
                 DELETE FROM {table} WHERE id = {};
                 INSERT INTO {table} (id, n, note) VALUES ({}, {round}, 'new') ON DUPLICATE KEY UPDATE n = n + 1;
                 UPDATE {table} SET id = {} WHERE id = {};",
                (spot * 13) % spread + 1,
                1_000_000 + round,
                2_000_000 + round,
                (spot * 31) % spread + 1,
            ))
            .await
            .unwrap();
            // steady, and within what two pipelines on a 2-core machine apply at once
            tokio::time::sleep(Duration::from_millis(8)).await;
        }
        round as u64
    })
}

async fn verify(install: &mut Installation, pipeline: &str, schema: Option<&str>) -> u64 {
    install
        .meta
        .exec_first("CALL verify(?, ?, NULL)", (pipeline, schema))
        .await
        .unwrap()
        .expect("verify returns the job id")
}

/// Waits until the job's tables are all `done` (fails at once on `failed`); returns
/// (rows compared, rows differing, rows unverified, chunks).
/// A `v_verify` row: table, state, rows compared, differing, unverified, chunks, last error.
type VerifyRow = (String, String, u64, u64, u64, u64, Option<String>);

async fn verified(install: &mut Installation, job: u64, limit: Duration) -> (u64, u64, u64, u64) {
    let mut last: Vec<VerifyRow>;
    eventually!(
        limit,
        format!("verification {job} to be done"),
        {
            last = install
                .meta
                .exec(
                    "SELECT table_name, state, rows_compared, rows_differing, rows_unverified, chunks_done, last_error FROM v_verify WHERE job = ?",
                    (job,),
                )
                .await
                .unwrap();
            if let Some(failed) = last.iter().find(|row| row.1 == "failed") {
                panic!("verification failed: {failed:?}");
            }
            (!last.is_empty() && last.iter().all(|row| row.1 == "done")).then_some(())
        },
        else {
            let status: Vec<(String, Option<i64>, Option<String>)> = install
                .meta
                .query("SELECT observed, lag_ms, reason FROM v_pipeline_status")
                .await
                .unwrap();
            format!("v_verify: {last:?}\npipelines: {status:?}")
        }
    );
    last.iter().fold((0, 0, 0, 0), |sum, row| {
        (sum.0 + row.2, sum.1 + row.3, sum.2 + row.4, sum.3 + row.5)
    })
}

/// The differences of a job: (row_key, kind, columns), sorted.
async fn differences(
    install: &mut Installation,
    job: u64,
) -> Vec<(String, String, Option<String>)> {
    install
        .meta
        .exec(
            "SELECT row_key, kind, columns FROM v_verify_diff WHERE job = ? ORDER BY row_key",
            (job,),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn hand_made_differences_are_found_exactly_and_repaired_while_the_source_takes_writes() {
    let rows = 100_000;
    let mut install = channel(
        "v_hand",
        rows,
        "CALL set_pipeline_option('v_hand', 'copy_chunk_ms', '100');",
    )
    .await;
    let _node = install.node("n1");
    install.wait_running(None, Duration::from_secs(30)).await;
    let stop = CancellationToken::new();
    let writer = spawn_writer(source(), "v_hand.t".into(), 40_000, stop.clone());
    // by hand on the target, on keys the writer leaves alone
    target()
        .run(
            "UPDATE v_hand.t SET n = -1, note = 'by hand' WHERE id = 60001;
             DELETE FROM v_hand.t WHERE id = 70001;
             INSERT INTO v_hand.t (id, n, note) VALUES (90000000, 1, 'extra');
             UPDATE v_hand.t SET data = 0x00 WHERE id = 85001;
             UPDATE v_hand.t SET at = at + INTERVAL 1 SECOND WHERE id = 99999;",
        )
        .await;
    let job = verify(&mut install, "v_hand", None).await;
    let queued: Vec<(String, String)> = install
        .meta
        .exec(
            "SELECT table_name, state FROM v_verify WHERE job = ?",
            (job,),
        )
        .await
        .unwrap();
    assert_eq!(queued, [("t".to_owned(), "queued".to_owned())]);
    let (compared, differing, _, chunks) =
        verified(&mut install, job, Duration::from_secs(180)).await;
    let expected = vec![
        (
            "60001".to_owned(),
            "different".to_owned(),
            Some("n, note".to_owned()),
        ),
        ("70001".to_owned(), "missing_on_target".to_owned(), None),
        (
            "85001".to_owned(),
            "different".to_owned(),
            Some("data".to_owned()),
        ),
        ("90000000".to_owned(), "extra_on_target".to_owned(), None),
        (
            "99999".to_owned(),
            "different".to_owned(),
            Some("at".to_owned()),
        ),
    ];
    let found: Vec<_> = differences(&mut install, job)
        .await
        .into_iter()
        .filter(|(_, kind, _)| kind != "unverified")
        .collect();
    assert_eq!(found, expected, "exactly the keys changed by hand");
    assert_eq!(differing, 5);
    assert!(compared >= rows - 40_000, "{compared} rows compared");
    assert!(chunks > 3, "the verification went in chunks ({chunks})");
    // repaired through the stream, while the writer goes on
    let queued: u64 = install
        .meta
        .exec_first("CALL repair_differences(?)", (job,))
        .await
        .unwrap()
        .unwrap();
    assert!(queued >= 5, "{queued} keys queued");
    let mut last: Vec<(String, Option<String>)>;
    eventually!(
        Duration::from_secs(60),
        "the differences to be repaired",
        {
            last = install
                .meta
                .exec(
                    "SELECT row_key, repair FROM v_verify_diff WHERE job = ? AND kind <> 'unverified'",
                    (job,),
                )
                .await
                .unwrap();
            last.iter()
                .all(|(_, repair)| repair.as_deref() == Some("repaired"))
                .then_some(())
        },
        else format!("{last:?}")
    );
    let row: Option<(i64, String)> = target()
        .conn()
        .await
        .query_first("SELECT n, note FROM v_hand.t WHERE id = 60001")
        .await
        .unwrap();
    assert_eq!(row, Some((60001 % 97, "row 60001".to_owned())));
    let extra: Option<i64> = target()
        .conn()
        .await
        .query_first("SELECT id FROM v_hand.t WHERE id = 90000000")
        .await
        .unwrap();
    assert_eq!(extra, None, "the extra target row is deleted");
    let again = verify(&mut install, "v_hand", Some("v_hand")).await;
    let (_, differing, _, _) = verified(&mut install, again, Duration::from_secs(180)).await;
    assert_eq!(differing, 0, "{:?}", differences(&mut install, again).await);
    stop.cancel();
    assert!(
        writer.await.unwrap() > 50,
        "the source took writes meanwhile"
    );
    // `ottr status` shows the last verification
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ottr"))
        .args(["status", "--meta", &install.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("Verifications") && text.contains(&format!("{again}")),
        "{text}"
    );
}

#[tokio::test]
async fn verifications_under_sustained_writes_find_no_difference() {
    let mut install = channel(
        "v_busy",
        60_000,
        "CALL set_pipeline_option('v_busy', 'copy_chunk_ms', '100');",
    )
    .await;
    let _node = install.node("n1");
    install.wait_running(None, Duration::from_secs(30)).await;
    let stop = CancellationToken::new();
    // the writer spreads over every key the verification reads
    let writer = spawn_writer(source(), "v_busy.t".into(), 60_000, stop.clone());
    let started = std::time::Instant::now();
    let mut unverified = 0;
    for _ in 0..3 {
        let job = verify(&mut install, "v_busy", None).await;
        let (compared, differing, skipped, _) =
            verified(&mut install, job, Duration::from_secs(120)).await;
        assert_eq!(
            differing,
            0,
            "no false difference: {:?}",
            differences(&mut install, job).await
        );
        assert!(compared > 50_000, "{compared} rows compared");
        unverified += skipped;
    }
    // sustained writes through all three
    while started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    let rounds = writer.await.unwrap();
    assert!(
        rounds > 500,
        "the source took writes throughout ({rounds} rounds)"
    );
    eprintln!("{rounds} write rounds; {unverified} keys unverified over three verifications");
}

#[tokio::test]
async fn a_verification_killed_mid_way_resumes_at_its_last_chunk() {
    let rows = 60_000;
    let mut install = channel(
        "v_kill",
        rows,
        "CALL set_pipeline_option('v_kill', 'copy_chunk_ms', '10');",
    )
    .await;
    let mut node = install.node("n1");
    install.wait_running(None, Duration::from_secs(30)).await;
    target()
        .run("UPDATE v_kill.t SET note = 'late' WHERE id = 59999")
        .await;
    let job = verify(&mut install, "v_kill", Some("v_kill")).await;
    eventually!(Duration::from_secs(60), "a few chunks compared", {
        let chunks: Option<u64> = install
            .meta
            .exec_first(
                "SELECT chunks_done FROM v_verify WHERE job = ? AND state = 'verifying'",
                (job,),
            )
            .await
            .unwrap();
        chunks.filter(|chunks| *chunks >= 3)
    });
    node.kill9();
    let _second = install.node("n2");
    let (compared, differing, _, _) = verified(&mut install, job, Duration::from_secs(120)).await;
    assert_eq!(compared, rows, "every row compared once");
    assert_eq!(differing, 1);
    assert_eq!(
        differences(&mut install, job).await,
        [(
            "59999".to_owned(),
            "different".to_owned(),
            Some("note".to_owned())
        )]
    );
    // the verify_mismatch alarm mails it
    let sink = common::SmtpSink::start();
    install
        .meta
        .exec_drop(
            "CALL set_smtp('127.0.0.1', ?, 'none', NULL, NULL, 'ottr@example.com')",
            (sink.port,),
        )
        .await
        .unwrap();
    install
        .meta
        .query_drop("CALL add_alarm_rule('mismatch', 'verify_mismatch', 'v_kill', NULL, '* * * * * *', 'ops@example.com', 600, NULL)")
        .await
        .unwrap();
    let mail = eventually!(Duration::from_secs(60), "a verify_mismatch mail", {
        sink.with_subject("verify_mismatch").pop()
    });
    assert!(
        mail.text.contains("59999") && mail.text.contains("v_verify_diff"),
        "{}",
        mail.text
    );
    let resumed: u64 = install
        .meta
        .query_first("SELECT COUNT(*) FROM event_log WHERE kind = 'verify_started' AND message LIKE '%resumed after%'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed, 1, "the second node resumed the verification");
}

#[tokio::test]
async fn bad_verification_requests_are_refused_by_name() {
    let mut install = channel("v_bad", 10, "").await;
    let _node = install.node("n1");
    install.wait_running(None, Duration::from_secs(30)).await;
    let refused = |sql: &'static str| {
        let meta = meta();
        async move {
            let mut conn = common::conn_to(meta, "ottr_v_bad").await;
            conn.query_drop(sql).await.unwrap_err().to_string()
        }
    };
    let error = refused("CALL verify('nope', NULL, NULL)").await;
    assert!(
        error.contains("unknown pipeline or channel 'nope'"),
        "{error}"
    );
    let error = refused("CALL verify('v_bad', 'v_bad', 'missing')").await;
    assert!(error.contains("matches 'v_bad.missing'"), "{error}");
    let error = refused("CALL verify('v_bad', NULL, 't')").await;
    assert!(error.contains("a table needs its schema"), "{error}");
    let error = refused("CALL repair_differences(424242)").await;
    assert!(error.contains("unknown verification job 424242"), "{error}");
    let error = refused("CALL set_pipeline_option('v_bad', 'verify_schedule', 'soon')").await;
    assert!(error.contains("verify_schedule"), "{error}");
    // a schedule starts verifications by itself, and verify_repair repairs what they find
    target()
        .run("UPDATE v_bad.t SET note = 'drifted' WHERE id = 7")
        .await;
    install
        .meta
        .query_drop(
            "CALL set_pipeline_option('v_bad', 'verify_repair', 'on');
             CALL set_pipeline_option('v_bad', 'verify_schedule', '*/2 * * * * *');",
        )
        .await
        .unwrap();
    let job = eventually!(Duration::from_secs(60), "a scheduled verification", {
        let done: Option<u64> = install
            .meta
            .query_first("SELECT job FROM v_verify WHERE origin = 'schedule' AND state = 'done' ORDER BY job LIMIT 1")
            .await
            .unwrap();
        done
    });
    let mut last: Vec<(String, String, Option<String>, Option<String>)>;
    eventually!(
        Duration::from_secs(60),
        "the drifted row repaired by verify_repair",
        {
            last = install
                .meta
                .exec(
                    "SELECT row_key, kind, columns, repair FROM v_verify_diff WHERE job = ?",
                    (job,),
                )
                .await
                .unwrap();
            (last
                == [(
                    "7".to_owned(),
                    "different".to_owned(),
                    Some("note".to_owned()),
                    Some("repaired".to_owned()),
                )])
                .then_some(())
        },
        else format!("{last:?}")
    );
    let note: Option<String> = target()
        .conn()
        .await
        .query_first("SELECT note FROM v_bad.t WHERE id = 7")
        .await
        .unwrap();
    assert_eq!(note.as_deref(), Some("row 7"));
    install
        .meta
        .query_drop("CALL stop_channel('v_bad')")
        .await
        .unwrap();
    let error = refused("CALL verify('v_bad', NULL, NULL)").await;
    assert!(error.contains("channel 'v_bad' is stopped"), "{error}");
}
