//! Two-way channels on real MariaDB servers: A and B both writable and both binlogged, a third
//! server C for cascades, a metadata server, and `ottr node` processes. Every test ends with a
//! row-by-row comparison of both sides.

mod common;

use common::{Installation, MariaDb, Rows, ServerKind, shared, table_rows};
use mysql_async::prelude::Queryable;
use std::sync::OnceLock;
use std::time::Duration;

fn a() -> &'static MariaDb {
    shared(ServerKind::Source)
}

fn b() -> &'static MariaDb {
    static B: OnceLock<MariaDb> = OnceLock::new();
    B.get_or_init(|| MariaDb::start(ServerKind::Source))
}

fn c() -> &'static MariaDb {
    shared(ServerKind::Target)
}

fn meta() -> &'static MariaDb {
    shared(ServerKind::Plain)
}

/// A two-way channel's installation.
struct Channel {
    installation: Installation,
    name: String,
}

installation_wrapper!(Channel.installation);

/// The pipelines of channel `name` between data sources a and b.
fn forward(name: &str) -> String {
    format!("{name}.a.to.b")
}

fn reverse(name: &str) -> String {
    format!("{name}.b.to.a")
}

/// Runs `sql` on A and on B.
async fn both(sql: &str) {
    for server in [a(), b()] {
        server.run(sql).await;
    }
}

/// A metadata schema with short timings, data sources a and b, and a two-way channel `name`
/// over every table of schema `name`, with `extra` SQL run before it starts.
async fn two_way(name: &str, extra: &str) -> Channel {
    let mut installation = Installation::new(
        meta(),
        &format!("ottr_w_{name}"),
        &[
            ("lease_ms", 3000),
            ("heartbeat_ms", 200),
            ("poll_ms", 200),
            ("retry_min_ms", 100),
            ("retry_max_ms", 1000),
        ],
    )
    .await;
    installation.data_source("a", a(), "root").await;
    installation.data_source("b", b(), "root").await;
    let conn = &mut installation.meta;
    conn.exec_drop("CALL create_two_way_channel(?, 'a', 'b')", (name,))
        .await
        .unwrap();
    conn.exec_drop("CALL add_table_pair(?, ?, '.*', NULL, NULL)", (name, name))
        .await
        .unwrap();
    for pipeline in [forward(name), reverse(name)] {
        conn.exec_drop(
            "CALL set_pipeline_option(?, 'batch_timeout_ms', '100')",
            (&pipeline,),
        )
        .await
        .unwrap();
    }
    // The tests share A and B: each pipeline reads with a replica server id of its own.
    installation.own_server_ids().await;
    if !extra.is_empty() {
        installation.meta.query_drop(extra).await.unwrap();
    }
    installation
        .meta
        .exec_drop("CALL start_channel(?)", (name,))
        .await
        .unwrap();
    Channel {
        installation,
        name: name.to_owned(),
    }
}

impl Channel {
    /// Waits until every pipeline of the metadata schema applies.
    async fn running(&mut self) {
        let conn = &mut self.installation.meta;
        eventually!(
            Duration::from_secs(40),
            "every pipeline to run (see v_pipeline_status)",
            {
                let rows: Vec<(String, String, Option<String>)> = conn
                    .query("SELECT pipeline, observed, reason FROM v_pipeline_status")
                    .await
                    .unwrap();
                if let Some((pipeline, _, reason)) =
                    rows.iter().find(|(_, observed, _)| observed == "error")
                {
                    panic!("pipeline {pipeline} failed: {reason:?}");
                }
                rows.iter()
                    .all(|(_, observed, reason)| {
                        observed == "running"
                            && reason.as_deref().unwrap_or_default().contains("applying")
                    })
                    .then_some(())
            }
        );
    }

    async fn stopped(&mut self) {
        self.installation
            .meta
            .exec_drop("CALL stop_channel(?)", (&self.name,))
            .await
            .unwrap();
        let conn = &mut self.installation.meta;
        eventually!(Duration::from_secs(30), "the channel to stop", {
            let moving: Option<u64> = conn
                .query_first("SELECT COUNT(*) FROM v_pipeline_status WHERE observed <> 'stopped'")
                .await
                .unwrap();
            (moving == Some(0)).then_some(())
        });
    }

    async fn start(&mut self) {
        self.installation
            .meta
            .exec_drop("CALL start_channel(?)", (&self.name,))
            .await
            .unwrap();
        self.running().await;
    }

    /// Every pipeline's state, for messages.
    async fn status(&mut self) -> Vec<(String, String, Option<String>)> {
        self.installation
            .meta
            .query("SELECT pipeline, observed, reason FROM v_pipeline_status")
            .await
            .unwrap()
    }

    /// Row changes each pipeline applied (its statistics): `(inserts, updates, deletes)`.
    async fn applied(&mut self, pipeline: &str) -> (u64, u64, u64) {
        let row: Option<(Option<u64>, Option<u64>, Option<u64>)> = self
            .meta
            .exec_first(
                "SELECT CAST(SUM(s.inserts) AS UNSIGNED), CAST(SUM(s.updates) AS UNSIGNED), \
                 CAST(SUM(s.deletes) AS UNSIGNED) \
                 FROM stat_pipeline s JOIN pipeline p ON p.id = s.pipeline_id WHERE p.name = ?",
                (pipeline,),
            )
            .await
            .unwrap();
        let (inserts, updates, deletes) = row.unwrap_or_default();
        (
            inserts.unwrap_or(0),
            updates.unwrap_or(0),
            deletes.unwrap_or(0),
        )
    }

    /// `(kind, decision)` of every logged conflict, in order.
    async fn conflicts(&mut self) -> Vec<(String, String)> {
        self.installation
            .meta
            .query("SELECT kind, decision FROM v_conflicts ORDER BY id")
            .await
            .unwrap()
    }

    /// Waits until `table` is identical on A and B.
    async fn identical(&mut self, table: &str, limit: Duration) {
        let mut last: (Rows, Rows);
        eventually!(
            limit,
            format!("{table} to be identical on A and B"),
            {
                last = (table_rows(a(), table).await, table_rows(b(), table).await);
                (last.0 == last.1).then_some(())
            },
            else {
                let status = self.status().await;
                format!("A {:?}\nB {:?}\npipelines {status:?}", last.0, last.1)
            }
        );
    }
}

/// Writes on A only, on B only, and on both to disjoint keys arrive on the other side once:
/// each pipeline's statistics count exactly the changes made on its own source (an echo
/// would add the other side's changes to them, and a loop would never stop adding).
#[tokio::test]
async fn writes_on_either_side_arrive_once_and_never_come_back() {
    both(
        "DROP DATABASE IF EXISTS w_basic; CREATE DATABASE w_basic;
         CREATE TABLE w_basic.t (id INT PRIMARY KEY, v VARCHAR(20), n INT NOT NULL);",
    )
    .await;
    let mut channel = two_way("w_basic", "").await;
    let _node = channel.node("n1");
    channel.running().await;
    let mut on_a = a().conn().await;
    let mut on_b = b().conn().await;
    for id in 1..=100 {
        on_a.query_drop(format!("INSERT INTO w_basic.t VALUES ({id}, 'a', 0)"))
            .await
            .unwrap();
    }
    for id in 1001..=1060 {
        on_b.query_drop(format!("INSERT INTO w_basic.t VALUES ({id}, 'b', 0)"))
            .await
            .unwrap();
    }
    on_a.query_drop("UPDATE w_basic.t SET n = n + 1 WHERE id BETWEEN 1 AND 30")
        .await
        .unwrap();
    on_b.query_drop("UPDATE w_basic.t SET n = n + 1 WHERE id BETWEEN 1001 AND 1020")
        .await
        .unwrap();
    on_a.query_drop("DELETE FROM w_basic.t WHERE id BETWEEN 91 AND 100")
        .await
        .unwrap();
    on_b.query_drop("DELETE FROM w_basic.t WHERE id BETWEEN 1051 AND 1060")
        .await
        .unwrap();
    channel
        .identical("w_basic.t", Duration::from_secs(30))
        .await;
    // Then B changes rows that came from A: they go back to A once, as B's own changes.
    on_b.query_drop("UPDATE w_basic.t SET v = 'b-edit' WHERE id BETWEEN 1 AND 10")
        .await
        .unwrap();
    channel
        .identical("w_basic.t", Duration::from_secs(30))
        .await;
    let rows = table_rows(a(), "w_basic.t").await;
    assert_eq!(rows.len(), 90 + 50);
    let (forward, reverse) = (forward("w_basic"), reverse("w_basic"));
    let conn = &mut channel;
    eventually!(
        Duration::from_secs(20),
        "each pipeline's statistics to count the changes of its own source",
        {
            let counts = (conn.applied(&forward).await, conn.applied(&reverse).await);
            (counts == ((100, 30, 10), (60, 30, 10))).then_some(())
        }
    );
    // Nothing more arrives later: no echo was queued anywhere.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(channel.applied(&forward).await, (100, 30, 10));
    assert_eq!(channel.applied(&reverse).await, (60, 30, 10));
    assert_eq!(channel.conflicts().await, Vec::new());
}

/// The same row changed on both sides while the channel was stopped: an update against an
/// update, a delete against an update in both orders, the same new key on both sides, and a
/// collision on a unique key that is not the primary key. Each is a logged conflict, the
/// primary's version wins on both sides, and the channel keeps running.
#[tokio::test]
async fn conflicts_converge_to_the_primary_and_are_logged() {
    both(
        "DROP DATABASE IF EXISTS w_conflict; CREATE DATABASE w_conflict;
         CREATE TABLE w_conflict.t (id INT PRIMARY KEY, email VARCHAR(40) NOT NULL, v INT NOT NULL,
           UNIQUE KEY uk_email (email));",
    )
    .await;
    let mut channel = two_way(
        "w_conflict",
        "CALL add_alarm_rule('w_conflicts', 'conflicts', NULL, '0', '* * * * * *', 'ops@example.com', 0, NULL)",
    )
    .await;
    let _node = channel.node("n1");
    channel.running().await;
    a().run("INSERT INTO w_conflict.t VALUES (1, 'one', 0), (2, 'two', 0), (3, 'three', 0)")
        .await;
    channel
        .identical("w_conflict.t", Duration::from_secs(30))
        .await;
    channel.stopped().await;
    a().run(
        "UPDATE w_conflict.t SET v = 10 WHERE id = 1; DELETE FROM w_conflict.t WHERE id = 2;
         UPDATE w_conflict.t SET v = 31 WHERE id = 3;
         INSERT INTO w_conflict.t VALUES (100, 'shared', 1), (300, 'a-300', 1);",
    )
    .await;
    b().run(
        "DELETE FROM w_conflict.t WHERE id = 1; UPDATE w_conflict.t SET v = 20 WHERE id = 2;
         UPDATE w_conflict.t SET v = 32 WHERE id = 3;
         INSERT INTO w_conflict.t VALUES (200, 'shared', 2), (300, 'b-300', 2);",
    )
    .await;
    channel.start().await;
    channel
        .identical("w_conflict.t", Duration::from_secs(30))
        .await;
    assert_eq!(
        table_rows(a(), "w_conflict.t").await,
        table_rows_literal(&[
            (1, "one", 10),
            (3, "three", 31),
            (100, "shared", 1),
            (300, "a-300", 1)
        ]),
        "A is the primary: its versions win"
    );
    // The primary decides every conflict, and records it after the batch commits there.
    let conn = &mut channel;
    let conflicts = eventually!(Duration::from_secs(10), "five conflicts in the log", {
        let conflicts = conn.conflicts().await;
        (conflicts.len() >= 5).then_some(conflicts)
    });
    let kinds: Vec<&str> = conflicts.iter().map(|(kind, _)| kind.as_str()).collect();
    for kind in ["update", "delete", "insert", "unique_key"] {
        assert!(
            kinds.contains(&kind),
            "no {kind} conflict logged: {conflicts:?}"
        );
    }
    // A is the primary: only the pipeline into B ever applies its source's version.
    let decisions: Vec<(String, String)> = channel
        .installation
        .meta
        .query("SELECT pipeline, decision FROM v_conflicts")
        .await
        .unwrap();
    for (pipeline, decision) in &decisions {
        assert_eq!(
            pipeline == &forward("w_conflict"),
            decision == "source_applied",
            "{decisions:?}"
        );
    }
    // The monitor raises a conflicts alert (more than 0 conflicts in the last minute).
    let conn = &mut channel.meta;
    let alert: (String, String) = eventually!(Duration::from_secs(20), "a conflicts alert", {
        conn.query_first::<(String, String), _>(
            "SELECT scope, measured FROM v_open_alerts WHERE kind = 'conflicts'",
        )
        .await
        .unwrap()
    });
    assert!(
        alert.1.contains("conflicts in the last minute"),
        "{alert:?}"
    );
    // The other way round once B is the primary.
    channel
        .installation
        .meta
        .query_drop("CALL set_conflict_policy('w_conflict', 'primary_wins', 'b')")
        .await
        .unwrap();
    channel.stopped().await;
    a().run("UPDATE w_conflict.t SET v = 41 WHERE id = 3").await;
    b().run("UPDATE w_conflict.t SET v = 42 WHERE id = 3").await;
    channel.start().await;
    channel
        .identical("w_conflict.t", Duration::from_secs(30))
        .await;
    let v: Option<i64> = a()
        .conn()
        .await
        .query_first("SELECT v FROM w_conflict.t WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(v, Some(42), "B is the primary now");
    let states = channel.status().await;
    assert!(
        states.iter().all(|(_, observed, _)| observed == "running"),
        "{states:?}"
    );
}

/// `(id, text, number)` rows as [`table_rows`] shows them.
fn table_rows_literal(rows: &[(i64, &str, i64)]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|(id, text, number)| {
            vec![
                Some(format!("'{id}'")),
                Some(format!("'{text}'")),
                Some(format!("'{number}'")),
            ]
        })
        .collect()
}

/// Several writers on each side hammer the same few keys with updates, deletes and
/// re-inserts (3,600 changes a policy), and the node is killed (-9) and restarted halfway:
/// under each policy both sides end identical, the channel never stalls, and the conflicts
/// are in the log. Keys of conflicts decided before the kill are repaired after the restart
/// (`ottr_sys.repair` keeps them).
#[tokio::test]
async fn concurrent_writes_to_the_same_keys_converge_under_each_policy() {
    for (name, policy) in [
        ("w_race_primary", None),
        (
            "w_race_newer",
            Some("CALL set_conflict_policy('w_race_newer', 'newer_wins', 'at')"),
        ),
    ] {
        both(&format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name};
             CREATE TABLE {name}.t (id INT PRIMARY KEY, v INT NOT NULL, side CHAR(1) NOT NULL,
               at TIMESTAMP(6) NOT NULL);"
        ))
        .await;
        let mut channel = two_way(name, policy.unwrap_or_default()).await;
        let mut node = channel.node("n1");
        channel.running().await;
        let mut writers = Vec::new();
        for (side, server) in [("a", a()), ("b", b())] {
            for thread in 0..3u64 {
                let name = name.to_owned();
                writers.push(tokio::spawn(async move {
                    let mut conn = server.conn().await;
                    let mut seed = thread * 7919 + u64::from(side.as_bytes()[0]) * 104_729 + 1;
                    for step in 0..600u64 {
                        seed = seed
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        let id = (seed >> 33) % 20;
                        let sql = match (seed >> 20) % 4 {
                            0 => format!("DELETE FROM {name}.t WHERE id = {id}"),
                            1 => format!(
                                "INSERT INTO {name}.t VALUES ({id}, {step}, '{side}', NOW(6)) \
                                 ON DUPLICATE KEY UPDATE v = {step}, side = '{side}', \
                                 at = GREATEST(NOW(6), at + INTERVAL 1 MICROSECOND)"
                            ),
                            // The version column grows with every write of a row, even when
                            // a statement waited for a lock past a newer write.
                            _ => format!(
                                "UPDATE {name}.t SET v = v + 1, side = '{side}', \
                                 at = GREATEST(NOW(6), at + INTERVAL 1 MICROSECOND) WHERE id = {id}"
                            ),
                        };
                        match conn.query_drop(sql).await {
                            // the writers of one side deadlock each other now and then
                            Err(mysql_async::Error::Server(error))
                                if matches!(error.code, 1205 | 1213) => {}
                            result => result.unwrap(),
                        }
                        // Spread over a few seconds, so that conflicts are decided and
                        // repaired while both sides still write.
                        if step % 4 == 0 {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        node.kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _node = channel.node("n1");
        for writer in writers {
            writer.await.unwrap();
        }
        channel
            .identical(&format!("{name}.t"), Duration::from_secs(60))
            .await;
        // Recorded in the metadata after each batch commits on the target.
        let conn = &mut channel;
        let conflicts = eventually!(Duration::from_secs(10), "conflicts in the log", {
            let conflicts = conn.conflicts().await;
            (!conflicts.is_empty()).then_some(conflicts)
        });
        let states = channel.status().await;
        assert!(
            states.iter().all(|(_, observed, _)| observed == "running"),
            "{name}: {states:?}"
        );
        eprintln!("{name}: {} conflicts", conflicts.len());
    }
}

/// Both sides add the same column with different types while the channel is stopped: each
/// side's DDL fails on the other, and both pipelines stop in `error` naming the statement and
/// saying what happened, instead of looping; no row or DDL goes round.
#[tokio::test]
async fn concurrent_conflicting_ddl_stops_the_channel_with_its_reason() {
    both(
        "DROP DATABASE IF EXISTS w_clash; CREATE DATABASE w_clash;
         CREATE TABLE w_clash.t (id INT PRIMARY KEY, v INT NOT NULL);",
    )
    .await;
    let mut channel = two_way("w_clash", "").await;
    let _node = channel.node("n1");
    channel.running().await;
    channel.stopped().await;
    a().run("ALTER TABLE w_clash.t ADD COLUMN note INT NULL")
        .await;
    b().run("ALTER TABLE w_clash.t ADD COLUMN note VARCHAR(5) NULL")
        .await;
    channel
        .installation
        .meta
        .exec_drop("CALL start_channel(?)", (&channel.name,))
        .await
        .unwrap();
    let conn = &mut channel.meta;
    let reasons = eventually!(
        Duration::from_secs(30),
        "both pipelines to stop in error",
        {
            let rows: Vec<(String, String, Option<String>)> = conn
                .query("SELECT pipeline, observed, reason FROM v_pipeline_status ORDER BY pipeline")
                .await
                .unwrap();
            rows.iter()
                .all(|(_, observed, _)| observed == "error")
                .then(|| {
                    rows.into_iter()
                        .map(|(_, _, reason)| reason.unwrap_or_default())
                        .collect::<Vec<_>>()
                })
        }
    );
    for reason in &reasons {
        assert!(
            reason.contains("ADD COLUMN note")
                && reason.contains("concurrent conflicting DDL")
                && reason.contains("Duplicate column"),
            "{reason}"
        );
    }
    // Nothing went round: each side's column is its own.
    for (server, column_type) in [(a(), "int(11)"), (b(), "varchar(5)")] {
        let found: Option<String> = server
            .conn()
            .await
            .query_first("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'w_clash' AND COLUMN_NAME = 'note'")
            .await
            .unwrap();
        assert_eq!(found.as_deref(), Some(column_type));
    }
}

/// A DDL made on A while rows change on both sides is applied once on B and never comes
/// back: A's DDL record table holds nothing from the reverse pipeline.
#[tokio::test]
async fn ddl_on_one_side_is_applied_once_on_the_other_and_not_echoed() {
    both(
        "DROP DATABASE IF EXISTS w_ddl; CREATE DATABASE w_ddl;
         CREATE TABLE w_ddl.t (id INT PRIMARY KEY, v INT NOT NULL);",
    )
    .await;
    let mut channel = two_way("w_ddl", "").await;
    let _node = channel.node("n1");
    channel.running().await;
    let writers: Vec<_> = [(a(), 0), (b(), 100_000)]
        .into_iter()
        .map(|(server, base)| {
            tokio::spawn(async move {
                let mut conn = server.conn().await;
                for id in 1..=200 {
                    conn.query_drop(format!(
                        "INSERT INTO w_ddl.t (id, v) VALUES ({}, {id})",
                        base + id
                    ))
                    .await
                    .unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    a().run("ALTER TABLE w_ddl.t ADD COLUMN note VARCHAR(10) NULL")
        .await;
    for writer in writers {
        writer.await.unwrap();
    }
    a().run("UPDATE w_ddl.t SET note = 'a' WHERE id <= 10")
        .await;
    b().run("UPDATE w_ddl.t SET note = 'b' WHERE id > 100000 AND id <= 100010")
        .await;
    channel.identical("w_ddl.t", Duration::from_secs(30)).await;
    let columns = |server: &'static MariaDb| async move {
        let names: Vec<String> = server
            .conn()
            .await
            .query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'w_ddl' ORDER BY ORDINAL_POSITION")
            .await
            .unwrap();
        names
    };
    assert_eq!(columns(a()).await, vec!["id", "v", "note"]);
    assert_eq!(columns(b()).await, columns(a()).await);
    let ddl_records = |server: &'static MariaDb| async move {
        let count: Option<u64> = server
            .conn()
            .await
            .query_first("SELECT COUNT(*) FROM ottr_sys.ddl WHERE statement LIKE '%w_ddl%'")
            .await
            .unwrap();
        count.unwrap_or(0)
    };
    assert_eq!(ddl_records(b()).await, 1, "B applied the ALTER once");
    assert_eq!(ddl_records(a()).await, 0, "the ALTER came back to A");
}

/// A ↔ B plus B → C: a change made on A reaches C once (through B) and never returns to A;
/// a ring A → B → C → A is refused when it is configured.
#[tokio::test]
async fn a_chain_beyond_a_two_way_channel_gets_each_change_once() {
    let create = "DROP DATABASE IF EXISTS w_chain; CREATE DATABASE w_chain;
         CREATE TABLE w_chain.t (id INT PRIMARY KEY, v VARCHAR(20), n INT NOT NULL);";
    both(create).await;
    c().run(create).await;
    let mut channel = two_way("w_chain", "").await;
    let conn = &mut channel.meta;
    conn.exec_drop(
        "CALL add_data_source('c', 'mariadb', ?, NULL)",
        (c().source_url("root"),),
    )
    .await
    .unwrap();
    conn.query_drop(
        "CALL create_channel('w_chain_c', 'b', 'c'); \
         CALL add_table_pair('w_chain_c', 'w_chain', '.*', NULL, NULL); \
         CALL set_pipeline_option('w_chain_c', 'batch_timeout_ms', '100');",
    )
    .await
    .unwrap();
    // Its own replica server id, like the channel's (same base, next pipeline id).
    conn.exec_drop(
        "UPDATE pipeline SET server_id = ? + id",
        (common::server_id_base("ottr_w_w_chain"),),
    )
    .await
    .unwrap();
    conn.query_drop("CALL start_channel('w_chain_c')")
        .await
        .unwrap();
    let ring = conn
        .query_drop("CALL create_channel('w_chain_ring', 'c', 'a')")
        .await
        .unwrap_err()
        .to_string();
    assert!(ring.contains("ring"), "{ring}");
    let _node = channel.node("n1");
    channel.running().await;
    let mut on_a = a().conn().await;
    for id in 1..=100 {
        on_a.query_drop(format!("INSERT INTO w_chain.t VALUES ({id}, 'a', 0)"))
            .await
            .unwrap();
    }
    on_a.query_drop("UPDATE w_chain.t SET n = 1 WHERE id <= 20")
        .await
        .unwrap();
    let mut on_b = b().conn().await;
    for id in 1001..=1050 {
        on_b.query_drop(format!("INSERT INTO w_chain.t VALUES ({id}, 'b', 0)"))
            .await
            .unwrap();
    }
    channel
        .identical("w_chain.t", Duration::from_secs(30))
        .await;
    let conn = &mut channel;
    eventually!(Duration::from_secs(30), "C to hold what A and B hold", {
        (table_rows(c(), "w_chain.t").await == table_rows(a(), "w_chain.t").await).then_some(())
    });
    eventually!(
        Duration::from_secs(20),
        "B → C to count each change once",
        {
            let counts = conn.applied("w_chain_c").await;
            (counts == (150, 20, 0)).then_some(())
        }
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(channel.applied("w_chain_c").await, (150, 20, 0));
    assert_eq!(channel.applied(&reverse("w_chain")).await, (50, 0, 0));
}

/// kill -9 of the node during two-way traffic, then a restart: both sides converge, and no
/// change came back to where it was made (each side updates its own rows over and over: a
/// stale version coming back would meet a newer one and be logged as a conflict).
#[tokio::test]
async fn a_node_killed_during_two_way_traffic_resumes_without_echo() {
    both(
        "DROP DATABASE IF EXISTS w_kill; CREATE DATABASE w_kill;
         CREATE TABLE w_kill.t (id INT PRIMARY KEY, n INT NOT NULL, side CHAR(1) NOT NULL);",
    )
    .await;
    let mut channel = two_way("w_kill", "").await;
    let mut node = channel.node("n1");
    channel.running().await;
    let writers: Vec<_> = [(a(), "a", 0), (b(), "b", 1000)]
        .into_iter()
        .map(|(server, side, base)| {
            tokio::spawn(async move {
                let mut conn = server.conn().await;
                for round in 0..600 {
                    let id = base + round % 50;
                    conn.query_drop(format!(
                        "INSERT INTO w_kill.t VALUES ({id}, 0, '{side}') ON DUPLICATE KEY UPDATE n = n + 1"
                    ))
                    .await
                    .unwrap();
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    node.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _restarted = channel.node("n1");
    for writer in writers {
        writer.await.unwrap();
    }
    channel.identical("w_kill.t", Duration::from_secs(60)).await;
    assert_eq!(table_rows(a(), "w_kill.t").await.len(), 100);
    let conflicts: Vec<String> = channel
        .installation
        .meta
        .query(
            "SELECT CONCAT_WS(' | ', pipeline, row_key, kind, source_row, target_row, policy) \
             FROM v_conflicts",
        )
        .await
        .unwrap();
    assert_eq!(conflicts, Vec::<String>::new());
}

/// A copy between the two sides of a two-way channel: into the primary, the primary's rows
/// stay (primary_wins) and none of its rows is deleted; into the other side, the primary's
/// versions win; the copied rows are not sent back.
#[tokio::test]
async fn a_copy_into_the_primary_keeps_its_rows_and_the_sides_end_identical() {
    both(
        "DROP DATABASE IF EXISTS w_copy; CREATE DATABASE w_copy;
         CREATE TABLE w_copy.t (id INT PRIMARY KEY, v VARCHAR(20));",
    )
    .await;
    // before the channel starts (it streams from the end): rows the other side lacks
    a().run("INSERT INTO w_copy.t VALUES (1, 'a-primary'), (2, 'a-only')")
        .await;
    b().run(
        "INSERT INTO w_copy.t VALUES (1, 'b-secondary'), (3, 'b-only');
         INSERT INTO w_copy.t SELECT seq, CONCAT('b', seq) FROM mysql.seq_10_to_2000;",
    )
    .await;
    let mut channel = two_way("w_copy", "").await;
    let _node = channel.node("n1");
    channel.running().await;
    let (forward, reverse) = (forward("w_copy"), reverse("w_copy"));
    for (pipeline, expected_rows) in [(&reverse, 1994), (&forward, 1994)] {
        let job: u64 = channel
            .meta
            .exec_first("CALL copy_tables(?, 'w_copy', 't', NULL)", (pipeline,))
            .await
            .unwrap()
            .unwrap();
        let conn = &mut channel.meta;
        eventually!(
            Duration::from_secs(60),
            format!("copy job {job} along {pipeline}"),
            {
                let state: Option<(String, Option<String>)> = conn
                    .exec_first("SELECT state, last_error FROM v_copy WHERE job = ?", (job,))
                    .await
                    .unwrap();
                match state {
                    Some((state, error)) if state == "failed" => panic!("copy failed: {error:?}"),
                    Some((state, _)) if state == "done" => Some(()),
                    _ => None,
                }
            }
        );
        let on_a = table_rows(a(), "w_copy.t").await;
        assert_eq!(on_a.len(), expected_rows, "{pipeline}");
    }
    channel.identical("w_copy.t", Duration::from_secs(30)).await;
    let first: Vec<(i64, String)> = a()
        .conn()
        .await
        .query("SELECT id, v FROM w_copy.t WHERE id <= 3 ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        first,
        [
            (1, "a-primary".to_owned()),
            (2, "a-only".to_owned()),
            (3, "b-only".to_owned())
        ]
    );
}

/// Writes updates, inserts and deletes to `table` on `server` until `stop`, on keys
/// `from..from + spread` (inserts from `from + 1,000,000`). Returns the rounds written.
fn spawn_side_writer(
    server: &'static MariaDb,
    table: &'static str,
    from: i64,
    spread: i64,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut conn = server.conn().await;
        let mut round: i64 = 0;
        while !stop.is_cancelled() {
            round += 1;
            let spot = from + (round * 7919) % spread;
            conn.query_drop(format!(
                "UPDATE {table} SET n = n + 1, note = CONCAT('u', {round}) WHERE id = {spot};
                 INSERT INTO {table} (id, n, note) VALUES ({}, {round}, 'new');
                 DELETE FROM {table} WHERE id = {};",
                from + 1_000_000 + round,
                from + (spot * 13) % spread,
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        round as u64
    })
}

/// Both sides verified against each other while both take writes: only the differences
/// made behind the channel's back (not logged) are reported, none of the changes in flight
/// either way; then repaired.
#[tokio::test]
async fn verification_under_writes_on_both_sides_finds_only_the_real_differences() {
    both(
        "DROP DATABASE IF EXISTS w_verify; CREATE DATABASE w_verify;
         CREATE TABLE w_verify.t (id BIGINT PRIMARY KEY, n INT NOT NULL, note VARCHAR(40));
         INSERT INTO w_verify.t SELECT seq, seq % 97, CONCAT('row ', seq) FROM mysql.seq_1_to_30000;",
    )
    .await;
    let mut channel = two_way(
        "w_verify",
        "CALL set_pipeline_option('w_verify', 'copy_chunk_ms', '20');",
    )
    .await;
    let _node = channel.node("n1");
    channel.running().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let on_a = spawn_side_writer(a(), "w_verify.t", 1, 10_000, stop.clone());
    let on_b = spawn_side_writer(b(), "w_verify.t", 10_001, 10_000, stop.clone());
    // behind the channel's back: not logged, so never synced
    b().run("SET sql_log_bin = 0; UPDATE w_verify.t SET note = 'hidden' WHERE id = 25001; SET sql_log_bin = 1;")
        .await;
    a().run("SET sql_log_bin = 0; DELETE FROM w_verify.t WHERE id = 26001; SET sql_log_bin = 1;")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job: u64 = channel
        .meta
        .exec_first("CALL verify('w_verify', NULL, NULL)", ())
        .await
        .unwrap()
        .unwrap();
    let conn = &mut channel.installation.meta;
    let mut last: Vec<(String, String, u64)>;
    eventually!(
        Duration::from_secs(180),
        format!("verification {job} to be done"),
        {
            last = conn
                .exec("SELECT state, COALESCE(last_error, ''), rows_compared FROM v_verify WHERE job = ?", (job,))
                .await
                .unwrap();
            if let Some(failed) = last.iter().find(|row| row.0 == "failed") {
                panic!("verification failed: {failed:?}");
            }
            (!last.is_empty() && last.iter().all(|row| row.0 == "done")).then_some(())
        },
        else format!("{last:?}")
    );
    let found: Vec<(String, String, Option<String>)> = conn
        .exec(
            "SELECT row_key, kind, columns FROM v_verify_diff WHERE job = ? AND kind <> 'unverified' ORDER BY row_key",
            (job,),
        )
        .await
        .unwrap();
    assert_eq!(
        found,
        [
            (
                "25001".to_owned(),
                "different".to_owned(),
                Some("note".to_owned())
            ),
            ("26001".to_owned(), "extra_on_target".to_owned(), None),
        ],
        "only the differences made behind the channel's back"
    );
    stop.cancel();
    let (rounds_a, rounds_b) = (on_a.await.unwrap(), on_b.await.unwrap());
    assert!(
        rounds_a > 50 && rounds_b > 50,
        "both sides took writes ({rounds_a}, {rounds_b})"
    );
    let _: Option<u64> = conn
        .exec_first("CALL repair_differences(?)", (job,))
        .await
        .unwrap();
    channel
        .identical("w_verify.t", Duration::from_secs(60))
        .await;
}
