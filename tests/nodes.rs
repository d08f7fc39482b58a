//! `ottr node` processes against real servers: leases, fencing, failover, handover, config
//! changes, invalid rows, prechecks, and secrets kept out of logs and views.
//!
//! Three MariaDB servers, as in production: the source with a ROW binary log, the target,
//! and the metadata server (no binary log), which also serves as an invalid source.

mod common;

use common::zookeeper::ZooKeeperServer;
use common::{Installation, MariaDb, NodeProcess, ServerKind, conn_to, shared};
use mysql_async::prelude::Queryable;
use ottr::model::{BinlogFilePos, FencingToken, PipelineId, Position};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn source() -> &'static MariaDb {
    shared(ServerKind::Source)
}

fn plain() -> &'static MariaDb {
    shared(ServerKind::Plain)
}

fn target() -> &'static MariaDb {
    shared(ServerKind::Target)
}

/// A metadata schema (on the plain server) with the given timings and data sources `sh` (the
/// binlog source) and `us` (the target server).
async fn setup(schema: &str, lease_ms: u32, heartbeat_ms: u32, poll_ms: u32) -> Setup {
    setup_on(plain(), schema, lease_ms, heartbeat_ms, poll_ms).await
}

/// Like [`setup`], with the metadata schema on `server`.
async fn setup_on(
    server: &MariaDb,
    schema: &str,
    lease_ms: u32,
    heartbeat_ms: u32,
    poll_ms: u32,
) -> Setup {
    let timings = [
        ("lease_ms", lease_ms),
        ("heartbeat_ms", heartbeat_ms),
        ("poll_ms", poll_ms),
    ];
    let mut setup = Installation::new(server, schema, &timings).await;
    setup.data_source("sh", source(), "root").await;
    setup.data_source("us", target(), "root").await;
    Setup(setup)
}

/// The node tests' installation: channels from `sh` to `us`, and their state.
struct Setup(Installation);

installation_wrapper!(Setup);

impl Setup {
    /// A channel `name` from `source` to `us` over `shop.<name>`, each pipeline with a replica
    /// server id of its own.
    async fn channel(&mut self, name: &str, source: &str, start: bool) {
        self.channel_over(name, source, "shop", name, start).await
    }

    /// Like [`Setup::channel`], over `schema.table`.
    async fn channel_over(
        &mut self,
        name: &str,
        source: &str,
        schema: &str,
        table: &str,
        start: bool,
    ) {
        self.meta
            .exec_drop("CALL create_channel(?, ?, 'us')", (name, source))
            .await
            .unwrap();
        self.meta
            .exec_drop(
                "CALL add_table_pair(?, ?, ?, NULL, NULL)",
                (name, schema, table),
            )
            .await
            .unwrap();
        self.own_server_ids().await;
        if start {
            self.meta
                .exec_drop("CALL start_channel(?)", (name,))
                .await
                .unwrap();
        }
    }

    /// A node started with `--zk` (through `OTTR_ZK`).
    fn zk_node(&self, name: &str, zk: &ZooKeeperServer) -> NodeProcess {
        NodeProcess::spawn(&self.url, name, &self.dir, &[("OTTR_ZK", &zk.address())])
    }

    async fn start_channels(&mut self, names: &[String]) {
        for name in names {
            self.meta
                .exec_drop("CALL start_channel(?)", (name,))
                .await
                .unwrap();
        }
    }

    /// How many pipelines are observed running on `node`.
    async fn running_on(&mut self, node: &str) -> u64 {
        self.meta
            .exec_first(
                "SELECT COUNT(*) FROM v_pipeline_status WHERE observed = 'running' AND node = ?",
                (node,),
            )
            .await
            .unwrap()
            .unwrap()
    }

    /// `(observed, node, reason)` of a pipeline.
    async fn status(&mut self, pipeline: &str) -> (String, Option<String>, Option<String>) {
        self.meta
            .exec_first(
                "SELECT observed, node, reason FROM v_pipeline_status WHERE pipeline = ?",
                (pipeline,),
            )
            .await
            .unwrap()
            .unwrap()
    }

    /// pipeline → holding node, for every pipeline observed running.
    async fn running(&mut self) -> BTreeMap<String, String> {
        let rows: Vec<(String, String)> = self
            .meta
            .query("SELECT pipeline, node FROM v_pipeline_status WHERE observed = 'running' AND node IS NOT NULL")
            .await
            .unwrap();
        rows.into_iter().collect()
    }

    async fn now(&mut self) -> String {
        self.meta
            .query_first("SELECT CAST(NOW(6) AS CHAR)")
            .await
            .unwrap()
            .unwrap()
    }

    /// Waits until the number `sql` returns is `expected`.
    async fn wait_count(&mut self, sql: &str, expected: u64, limit: Duration) {
        let conn = &mut self.meta;
        eventually!(limit, &format!("`{sql}` to return {expected}"), {
            let count: Option<u64> = conn.query_first(sql).await.unwrap();
            (count == Some(expected)).then_some(())
        })
    }

    async fn wait_state(
        &mut self,
        pipeline: &str,
        state: &str,
        limit: Duration,
    ) -> (Option<String>, Option<String>) {
        let conn = &mut self.meta;
        eventually!(limit, &format!("{pipeline} to be {state}"), {
            let row: Option<(String, Option<String>, Option<String>)> = conn
                .exec_first(
                    "SELECT observed, node, reason FROM v_pipeline_status WHERE pipeline = ?",
                    (pipeline,),
                )
                .await
                .unwrap();
            row.filter(|(observed, node, _)| {
                // stopped for good: the node has also released the lease
                observed == state && (state != "stopped" || node.is_none())
            })
            .map(|(_, node, reason)| (node, reason))
        })
    }
}

#[tokio::test]
async fn three_nodes_never_run_a_pipeline_twice_and_fail_over() {
    let lease = Duration::from_millis(4000);
    let mut setup = setup("ottr_n_failover", 4000, 200, 200).await;
    let names: Vec<String> = (1..=5).map(|i| format!("p{i}")).collect();
    for name in &names {
        setup.channel(name, "sh", false).await;
    }
    let mut nodes: BTreeMap<String, NodeProcess> = ["n1", "n2", "n3"]
        .iter()
        .map(|name| (name.to_string(), setup.node(name)))
        .collect();
    setup
        .wait_count(
            "SELECT COUNT(*) FROM v_node_status WHERE alive",
            3,
            Duration::from_secs(20),
        )
        .await;
    setup.start_channels(&names).await;
    let mut placement = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while placement.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "pipelines not all running: {placement:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        placement = setup.running().await;
    }
    let mut per_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (pipeline, node) in &placement {
        per_node
            .entry(node.clone())
            .or_default()
            .push(pipeline.clone());
    }
    assert!(
        per_node.values().all(|held| held.len() <= 2),
        "each node holds at most ceil(5/3): {per_node:?}"
    );

    // kill -9 the busiest node: another node holds its pipelines within the lease time.
    let (victim, victim_pipelines) = per_node
        .iter()
        .max_by_key(|(_, held)| held.len())
        .map(|(n, h)| (n.clone(), h.clone()))
        .unwrap();
    let killed_at = setup.now().await;
    let started = Instant::now();
    nodes.get_mut(&victim).unwrap().kill9();
    loop {
        let running = setup.running().await;
        if victim_pipelines
            .iter()
            .all(|p| running.get(p).is_some_and(|node| *node != victim))
        {
            break;
        }
        assert!(
            started.elapsed() < lease + Duration::from_secs(3),
            "no takeover after {:?}: {running:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let takeover = started.elapsed();
    assert!(
        takeover >= lease / 2,
        "took over a live lease after only {takeover:?}"
    );

    // The dead holder's fencing token can no longer write a position; the new one can.
    let meta = ottr::meta::MetaDb::open(&setup.url).unwrap();
    let (pipeline_id, old_token): (u32, u64) = setup
        .meta
        .exec_first(
            "SELECT r.pipeline_id, r.token FROM pipeline_run r JOIN pipeline p ON p.id = r.pipeline_id WHERE r.node = ? AND p.name = ? ORDER BY r.id DESC LIMIT 1",
            (&victim, &victim_pipelines[0]),
        )
        .await
        .unwrap()
        .unwrap();
    let position = Position {
        file: Some(BinlogFilePos {
            file: "mysql-bin.000001".into(),
            offset: 4,
        }),
        gtid: None,
        trx_rows_done: 0,
    };
    let refused = ottr::meta::write_position(
        &meta,
        PipelineId(pipeline_id),
        FencingToken(old_token),
        &position,
    )
    .await;
    assert!(
        matches!(refused, Err(ottr::Error::Fenced { .. })),
        "{refused:?}"
    );
    let current: u64 = setup
        .meta
        .exec_first(
            "SELECT token FROM pipeline_lease WHERE pipeline_id = ?",
            (pipeline_id,),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(current > old_token);
    ottr::meta::write_position(
        &meta,
        PipelineId(pipeline_id),
        FencingToken(current),
        &position,
    )
    .await
    .unwrap();

    // SIGTERM hands over at once, long before the lease would expire.
    let placement = setup.running().await;
    let survivors: Vec<String> = nodes.keys().filter(|n| **n != victim).cloned().collect();
    let leaving = survivors
        .iter()
        .max_by_key(|n| placement.values().filter(|v| v == n).count())
        .unwrap()
        .clone();
    let staying = survivors.iter().find(|n| **n != leaving).unwrap().clone();
    let started = Instant::now();
    let status = nodes.get_mut(&leaving).unwrap().terminate();
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
    loop {
        let running = setup.running().await;
        if running.len() == 5 && running.values().all(|node| *node == staying) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no handover after {:?}: {running:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let handover = started.elapsed();
    assert!(
        handover < lease,
        "handover took {handover:?}, as long as a lease"
    );
    let alive: Vec<(String, bool)> = setup
        .meta
        .query("SELECT node, alive FROM v_node_status ORDER BY node")
        .await
        .unwrap();
    for (node, is_alive) in alive {
        assert_eq!(is_alive, node == staying, "{node} alive");
    }

    // No two runs of a pipeline ever overlapped (database clock throughout).
    let runs: Vec<(u32, String, String, Option<String>)> = setup
        .meta
        .query("SELECT pipeline_id, node, CAST(started_at AS CHAR), CAST(stopped_at AS CHAR) FROM pipeline_run ORDER BY pipeline_id, started_at")
        .await
        .unwrap();
    for pair in runs.windows(2) {
        let (first, second) = (&pair[0], &pair[1]);
        if first.0 != second.0 {
            continue;
        }
        let end = match &first.3 {
            Some(stopped) => stopped.clone(),
            None if first.1 == victim => killed_at.clone(),
            None => panic!("run {first:?} never stopped, yet {second:?} started"),
        };
        assert!(
            end <= second.2,
            "overlapping runs: {first:?} until {end} and {second:?}"
        );
    }
    assert!(runs.len() >= 5 + victim_pipelines.len());
    // Settled: each pipeline has exactly one open run, on the node that holds its lease.
    let open: Vec<(u32, String)> = setup
        .meta
        .exec(
            "SELECT r.pipeline_id, r.node FROM pipeline_run r JOIN pipeline_lease l ON l.pipeline_id = r.pipeline_id \
             WHERE r.stopped_at IS NULL AND r.node <> ? AND r.node = l.holder ORDER BY r.pipeline_id",
            (&victim,),
        )
        .await
        .unwrap();
    let pipelines: std::collections::BTreeSet<u32> = open.iter().map(|(id, _)| *id).collect();
    assert_eq!((open.len(), pipelines.len()), (5, 5), "{open:?}");
    assert!(open.iter().all(|(_, node)| *node == staying), "{open:?}");
    eprintln!("takeover after kill -9: {takeover:?}; handover after SIGTERM: {handover:?}");
}

#[tokio::test]
async fn a_config_change_is_acted_on_within_two_seconds() {
    let mut setup = setup("ottr_n_config", 3000, 200, 1000).await;
    setup.channel("orders", "sh", true).await;
    let _node = setup.node("n1");
    setup
        .wait_state("orders", "running", Duration::from_secs(20))
        .await;

    let before = setup.now().await;
    setup
        .meta
        .query_drop("CALL add_table_pair('orders', 'shop', 'customers', NULL, NULL)")
        .await
        .unwrap();
    let conn = &mut setup.meta;
    let delay: f64 = eventually!(
        Duration::from_secs(5),
        "a restart with the new table pair",
        {
            conn.exec_first::<Option<f64>, _, _>(
                "SELECT TIMESTAMPDIFF(MICROSECOND, ?, MIN(started_at)) / 1e6 FROM pipeline_run WHERE started_at > ?",
                (&before, &before),
            )
            .await
            .unwrap()
            .flatten()
        }
    );
    assert!(
        delay < 2.0,
        "the new table pair was acted on after {delay} s"
    );
    let events: u64 = setup
        .meta
        .query_first("SELECT COUNT(*) FROM event_log WHERE kind = 'config_changed'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events, 1);

    setup
        .wait_state("orders", "running", Duration::from_secs(10))
        .await;
    let before = setup.now().await;
    setup
        .meta
        .query_drop("CALL stop_channel('orders')")
        .await
        .unwrap();
    let conn = &mut setup.meta;
    let delay: f64 = eventually!(Duration::from_secs(5), "the run to stop", {
        conn.exec_first::<Option<f64>, _, _>(
                "SELECT TIMESTAMPDIFF(MICROSECOND, ?, MAX(stopped_at)) / 1e6 FROM pipeline_run WHERE stopped_at > ? AND stop_reason = 'stopped by the operator'",
                (&before, &before),
            )
            .await
            .unwrap()
            .flatten()
    });
    assert!(delay < 2.0, "the stop was acted on after {delay} s");
    // The run ends before the node releases the lease: wait for the release too.
    setup
        .wait_state("orders", "stopped", Duration::from_secs(5))
        .await;
    let (observed, node, reason) = setup.status("orders").await;
    assert_eq!(
        (observed.as_str(), node, reason.as_deref()),
        ("stopped", None, Some("stopped by the operator"))
    );
}

#[tokio::test]
async fn invalid_rows_are_that_pipelines_error_and_nothing_else() {
    let mut setup = setup("ottr_n_invalid", 3000, 200, 200).await;
    setup.channel("good", "sh", true).await;
    setup.channel("badregex", "sh", false).await;
    setup
        .meta
        .query_drop("UPDATE table_pair SET source_table = 'order_(' WHERE source_table = 'badregex'; CALL start_channel('badregex');")
        .await
        .unwrap();
    let bad_pair: u32 = setup
        .meta
        .query_first("SELECT id FROM table_pair WHERE source_table = 'order_('")
        .await
        .unwrap()
        .unwrap();
    setup
        .meta
        .query_drop(
            "SET foreign_key_checks = 0;
             INSERT INTO channel (name, desired) VALUES ('ghost', 'running');
             INSERT INTO pipeline (channel_id, name, source_id, target_id) SELECT id, 'ghost', 999, 2 FROM channel WHERE name = 'ghost';
             INSERT INTO table_pair (channel_id, source_schema, source_table) SELECT id, 'shop', 'ghost' FROM channel WHERE name = 'ghost';
             SET foreign_key_checks = 1;",
        )
        .await
        .unwrap();
    let ghost_id: u32 = setup
        .meta
        .query_first("SELECT id FROM pipeline WHERE name = 'ghost'")
        .await
        .unwrap()
        .unwrap();
    // A zero date MariaDB accepts in a DATETIME column is no start time at all.
    setup.channel("zerotime", "sh", true).await;
    setup
        .meta
        .query_drop("UPDATE pipeline SET start_kind = 'timestamp', start_time = '0000-00-00 00:00:00' WHERE name = 'zerotime'")
        .await
        .unwrap();
    let mut node = setup.node("n1");

    let (_, reason) = setup
        .wait_state("badregex", "error", Duration::from_secs(20))
        .await;
    let reason = reason.unwrap();
    assert!(
        reason.starts_with(&format!(
            "table pair {bad_pair}: source table regex 'order_(' does not compile"
        )),
        "{reason}"
    );
    let (_, reason) = setup
        .wait_state("ghost", "error", Duration::from_secs(20))
        .await;
    assert_eq!(
        reason.unwrap(),
        format!("pipeline 'ghost' (id {ghost_id}): source data source id 999 does not exist")
    );
    setup
        .wait_state("good", "running", Duration::from_secs(20))
        .await;
    let (_, reason) = setup
        .wait_state("zerotime", "error", Duration::from_secs(20))
        .await;
    assert!(
        reason
            .as_deref()
            .unwrap_or_default()
            .ends_with("start_time '0000-00-00 00:00:00.000000' is not a valid UTC time"),
        "{reason:?}"
    );

    // An incoherent setting is reported and ignored; the node keeps running.
    setup
        .meta
        .query_drop("UPDATE setting SET value = 1600 WHERE name = 'heartbeat_ms'")
        .await
        .unwrap();
    let conn = &mut setup.meta;
    let message: String = eventually!(Duration::from_secs(5), "the invalid setting event", {
        conn.query_first("SELECT message FROM event_log WHERE kind = 'invalid_setting'")
            .await
            .unwrap()
    });
    assert!(
        message.starts_with(
            "setting heartbeat_ms: 1600 ms must be at most half of lease_ms (3000 ms)"
        ),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        node.try_exit().is_none(),
        "the node died: {}",
        node.log_text()
    );
    let alive: bool = setup
        .meta
        .query_first("SELECT alive FROM v_node_status WHERE node = 'n1'")
        .await
        .unwrap()
        .unwrap();
    assert!(alive);
    assert_eq!(setup.status("good").await.0, "running");

    // Fixing the row is acted on without a restart of the node.
    setup
        .meta
        .query_drop(
            "UPDATE table_pair SET source_table = 'order_[0-9]+' WHERE source_table = 'order_('",
        )
        .await
        .unwrap();
    setup
        .wait_state("badregex", "running", Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn prechecks_resolve_positions_and_report_a_bad_source() {
    let mut setup = setup("ottr_n_prechecks", 3000, 200, 200).await;
    setup
        .meta
        .exec_drop(
            "CALL add_data_source('nolog', 'mariadb', ?, NULL)",
            (plain().source_url("root"),),
        )
        .await
        .unwrap();
    setup.channel("orders", "sh", true).await;
    setup.meta.query_drop("CALL create_channel('unlogged', 'nolog', 'us'); CALL add_table_pair('unlogged', 'shop', 'x', 'shop_copy', NULL); CALL start_channel('unlogged')").await.unwrap();
    let _node = setup.node("n1");

    let (_, reason) = setup
        .wait_state("unlogged", "error", Duration::from_secs(20))
        .await;
    let reason = reason.unwrap();
    assert!(
        reason.starts_with(
            "precheck log_bin: the binary log is off; fix: start the server with log_bin"
        ),
        "{reason}"
    );
    setup
        .wait_state("orders", "running", Duration::from_secs(20))
        .await;
    let mut source_conn = source().conn().await;
    let status: mysql_async::Row = source_conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .unwrap();
    let current_file: String = status.get("File").unwrap();
    let position: String = setup
        .meta
        .query_first("SELECT position FROM v_pipeline_status WHERE pipeline = 'orders'")
        .await
        .unwrap()
        .unwrap();
    assert!(
        position.starts_with(&format!("{current_file}:")),
        "{position} vs {current_file}"
    );

    // reset_position is followed at the next start.
    setup
        .meta
        .query_drop("CALL stop_channel('orders')")
        .await
        .unwrap();
    setup
        .wait_state("orders", "stopped", Duration::from_secs(10))
        .await;
    setup
        .meta
        .query_drop(
            "CALL reset_position('orders', 'mysql-bin.000001:4'); CALL start_channel('orders')",
        )
        .await
        .unwrap();
    let conn = &mut setup.meta;
    // It streams from there at once, so look at where it started, not where it is.
    eventually!(Duration::from_secs(10), "the reset position", {
        let started: Option<String> = conn
            .query_first("SELECT message FROM event_log WHERE kind = 'position_resolved' AND message LIKE 'start position mysql-bin.000001:4 %'")
            .await
            .unwrap();
        started
    });

    // 'now' is a time: the first transaction at or after it, here the current end.
    setup
        .meta
        .query_drop("CALL stop_channel('orders')")
        .await
        .unwrap();
    setup
        .wait_state("orders", "stopped", Duration::from_secs(10))
        .await;
    setup
        .meta
        .query_drop("CALL reset_position('orders', 'now'); CALL start_channel('orders')")
        .await
        .unwrap();
    let conn = &mut setup.meta;
    let resolved: String = eventually!(
        Duration::from_secs(10),
        "a position resolved from 'now'",
        {
            let position: Option<Option<String>> = conn
            .query_first("SELECT position FROM v_pipeline_status WHERE pipeline = 'orders' AND observed = 'running'")
            .await
            .unwrap();
            position.flatten()
        }
    );
    assert!(resolved.starts_with("mysql-bin."), "{resolved}");
    let kind: String = setup
        .meta
        .query_first("SELECT kind FROM event_log WHERE kind = 'position_resolved' AND message LIKE '%(from 20%' LIMIT 1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kind, "position_resolved");

    // `ottr check` prints each check and fails on a bad source.
    let check = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ottr"))
            .args(["check", "--meta", &setup.url, "--data-source", name])
            .output()
            .unwrap()
    };
    let good = check("sh");
    let text = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{text}");
    assert!(
        text.contains("✓ binlog_format: binlog_format = ROW"),
        "{text}"
    );
    assert!(text.contains("✓ privileges"), "{text}");
    let bad = check("nolog");
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success());
    assert!(
        text.contains("✗ log_bin: the binary log is off\n    fix: start the server with log_bin"),
        "{text}"
    );
    let unknown = check("nope");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown data source 'nope'"));
}

#[tokio::test]
async fn node_names_are_unique_among_live_nodes_and_a_restart_takes_back_its_leases() {
    let lease = Duration::from_millis(10000);
    let mut setup = setup("ottr_n_names", 10000, 200, 200).await;
    setup.channel("orders", "sh", true).await;
    let mut first = setup.node("n1");
    setup
        .wait_state("orders", "running", Duration::from_secs(20))
        .await;
    let token: u64 = setup
        .meta
        .query_first("SELECT token FROM pipeline_lease")
        .await
        .unwrap()
        .unwrap();

    let mut twin = setup.node("n1");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = twin.try_exit() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "a second live n1 was not refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    assert!(
        twin.log_text()
            .contains("a node named 'n1' is alive on host"),
        "{}",
        twin.log_text()
    );
    assert_eq!(
        setup.status("orders").await.0,
        "running",
        "the refused twin disturbed nothing"
    );

    first.kill9();
    let started = Instant::now();
    let _restarted = setup.node("n1");
    let conn = &mut setup.meta;
    eventually!(lease, "n1 to take back its lease", {
        let row: Option<(String, u64, Option<String>)> = conn
                .query_first("SELECT s.observed, l.token, s.reason FROM v_pipeline_status s JOIN pipeline_lease l WHERE s.node = 'n1'")
                .await
                .unwrap();
        row.filter(|(observed, new_token, _)| observed == "running" && *new_token > token)
    });
    assert!(
        started.elapsed() < lease,
        "took back its lease only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn passwords_never_appear_in_logs_views_or_errors() {
    let secret = "Pw-Do-Not-Leak-42";
    let wrong = "Wrong-Pw-Leak-43";
    let meta_secret = "Meta-Pw-Leak-44";
    let mut setup = setup("ottr_n_secrets", 3000, 200, 200).await;
    let mut source_conn = source().conn().await;
    source_conn
        .query_drop(format!(
            "CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY '{secret}';
             GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'reader'@'%';"
        ))
        .await
        .unwrap();
    let mut plain_conn = plain().conn().await;
    plain_conn
        .query_drop(format!(
            "CREATE USER IF NOT EXISTS 'metauser'@'%' IDENTIFIED BY '{meta_secret}';
             GRANT ALL ON `ottr_n_secrets`.* TO 'metauser'@'%';
             GRANT SELECT ON `ottr_n_secrets_secret`.* TO 'metauser'@'%';"
        ))
        .await
        .unwrap();
    setup
        .meta
        .exec_drop(
            "CALL add_data_source('reader', 'mariadb', ?, ?)",
            (source().source_url("reader"), secret),
        )
        .await
        .unwrap();
    setup
        .meta
        .exec_drop(
            "CALL add_data_source('wrongpw', 'mariadb', ?, ?)",
            (source().source_url("reader"), wrong),
        )
        .await
        .unwrap();
    setup.channel("readable", "reader", true).await;
    setup.channel("denied", "wrongpw", true).await;
    let meta_url = format!(
        "mysql://metauser:{meta_secret}@127.0.0.1:{}/ottr_n_secrets",
        plain().port
    );
    let node = NodeProcess::spawn(&meta_url, "n1", &setup.dir, &[]);

    setup
        .wait_state("readable", "running", Duration::from_secs(20))
        .await;
    let (_, reason) = setup
        .wait_state("denied", "error", Duration::from_secs(20))
        .await;
    assert!(
        reason
            .as_deref()
            .unwrap_or_default()
            .contains("Access denied for user 'reader'"),
        "{reason:?}"
    );

    let mut seen = node.log_text();
    for view in [
        "v_pipeline_status",
        "v_node_status",
        "v_data_source",
        "v_table_pair",
        "v_event_log",
    ] {
        let rows: Vec<mysql_async::Row> = setup
            .meta
            .query(format!("SELECT * FROM {view}"))
            .await
            .unwrap();
        seen.push_str(&format!("{rows:?}"));
    }
    let states: Vec<Option<String>> = setup
        .meta
        .query("SELECT reason FROM pipeline_state")
        .await
        .unwrap();
    seen.push_str(&format!("{states:?}"));
    assert!(
        seen.contains("mysql://metauser:***@127.0.0.1"),
        "the log names the metadata URL, redacted"
    );
    for password in [secret, wrong, meta_secret] {
        assert!(!seen.contains(password), "{password} leaked:\n{seen}");
    }
}

#[tokio::test]
async fn drain_node_hands_pipelines_and_the_monitor_over_until_undrained() {
    let mut setup = setup("ottr_n_drain", 3000, 200, 200).await;
    let names: Vec<String> = (1..=4).map(|i| format!("d{i}")).collect();
    for name in &names {
        setup.channel(name, "sh", false).await;
    }
    let mut n1 = setup.node("n1");
    let _n2 = setup.node("n2");
    setup
        .wait_count(
            "SELECT COUNT(*) FROM v_node_status WHERE state = 'working'",
            2,
            Duration::from_secs(20),
        )
        .await;
    setup.start_channels(&names).await;
    let conn = &mut setup.meta;
    eventually!(Duration::from_secs(30), "four pipelines on two nodes", {
        let spread: Vec<(String, u64)> = conn
            .query("SELECT node, COUNT(*) FROM v_pipeline_status WHERE observed = 'running' AND node IS NOT NULL GROUP BY node")
            .await
            .unwrap();
        (spread.len() == 2 && spread.iter().map(|(_, n)| n).sum::<u64>() == 4).then_some(())
    });

    // A name that never registered is refused, naming it.
    let refused = setup
        .meta
        .query_drop("CALL drain_node('nope')")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("no node named 'nope' has registered"),
        "{refused}"
    );

    // Drained: n1 stops its pipelines and releases them; n2 takes them from their positions.
    let started = Instant::now();
    setup
        .meta
        .query_drop("CALL drain_node('n1')")
        .await
        .unwrap();
    eventually!(Duration::from_secs(15), "every pipeline running on n2", {
        (setup.running_on("n2").await == 4).then_some(())
    });
    eprintln!("drained in {:?}", started.elapsed());
    let conn = &mut setup.meta;
    eventually!(
        Duration::from_secs(10),
        "n1 drained, n2 running the monitor",
        {
            let states: Vec<(String, String, bool)> = conn
                .query("SELECT node, state, monitor FROM v_node_status ORDER BY node")
                .await
                .unwrap();
            (states
                == [
                    ("n1".to_owned(), "drained".to_owned(), false),
                    ("n2".to_owned(), "working".to_owned(), true),
                ])
            .then_some(())
        }
    );
    let stops: Vec<String> = conn
        .query("SELECT DISTINCT stop_reason FROM pipeline_run WHERE node = 'n1' AND stopped_at IS NOT NULL")
        .await
        .unwrap();
    assert_eq!(stops, ["node drained"]);

    // The flag outlives a restart of the node.
    n1.terminate();
    let n1 = setup.node("n1");
    let conn = &mut setup.meta;
    eventually!(Duration::from_secs(15), "the restarted n1 to be drained", {
        let state: Option<String> = conn
            .query_first("SELECT state FROM v_node_status WHERE node = 'n1'")
            .await
            .unwrap();
        (state.as_deref() == Some("drained")).then_some(())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        setup.running_on("n2").await,
        4,
        "a drained node claims nothing"
    );

    // Undrained: it steals nothing from a healthy holder, but takes the next free pipeline.
    setup
        .meta
        .query_drop("CALL undrain_node('n1')")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        setup.running_on("n2").await,
        4,
        "n1 took a pipeline from a healthy holder"
    );
    setup
        .meta
        .query_drop("CALL stop_channel('d4')")
        .await
        .unwrap();
    setup
        .wait_state("d4", "stopped", Duration::from_secs(15))
        .await;
    setup
        .meta
        .query_drop("CALL start_channel('d4')")
        .await
        .unwrap();
    let (node, _) = setup
        .wait_state("d4", "running", Duration::from_secs(15))
        .await;
    assert_eq!(
        node.as_deref(),
        Some("n1"),
        "the free pipeline goes to the node with room"
    );
    // Draining the only node a pipeline may run on says so.
    setup
        .meta
        .query_drop("CALL allow_node('d4', 'n1')")
        .await
        .unwrap();
    let warnings: Vec<(String, String)> = setup.meta.query("CALL drain_node('n1')").await.unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, "d4");
    assert!(
        warnings[0].1.contains("no node but n1 may run it"),
        "{warnings:?}"
    );
    drop(n1);
}

/// A panic in a pipeline's code (injected through a debug build's failpoints, in the binlog
/// reader's task and in the pipeline's own) is that pipeline's `error`, with the panic's
/// message, backed off like any failure and raising a `pipeline_error` alert; the node keeps
/// the lease instead of taking the panic for a lost lease and claiming the pipeline again.
#[tokio::test]
async fn a_panic_in_a_pipeline_is_its_error_backed_off_and_alerted() {
    let mut s = setup("ottr_n_panic", 3000, 200, 200).await;
    create_id_n_tables("n_panic", &["t".to_owned()]).await;
    s.channel_over("panicky", "sh", "n_panic", "t", true).await;
    s.meta
        .query_drop(
            "CALL set_setting('retry_max_ms', 2000);
             CALL add_alarm_rule('broken', 'pipeline_error', NULL, '0', '* * * * * *', 'ops@example.com', 3600, NULL)",
        )
        .await
        .unwrap();
    for (failpoint, name) in [("select_batch", "n1"), ("load_batch", "n2")] {
        let node = NodeProcess::spawn(&s.url, name, &s.dir, &[("OTTR_FAILPOINTS", failpoint)]);
        source()
            .run("INSERT INTO n_panic.t VALUES (1, 1) ON DUPLICATE KEY UPDATE n = n + 1")
            .await;
        let conn = &mut s.meta;
        let (held_by, reason) = eventually!(
            Duration::from_secs(30),
            "the panic as the pipeline's error",
            {
                let row: Option<(String, Option<String>, Option<String>)> = conn
                .query_first("SELECT observed, node, reason FROM v_pipeline_status WHERE pipeline = 'panicky'")
                .await
                .unwrap();
                row.filter(|(observed, _, reason)| {
                    observed == "error"
                        && reason
                            .as_deref()
                            .unwrap_or_default()
                            .contains(&format!("failpoint {failpoint}"))
                })
                .map(|(_, node, reason)| (node, reason.unwrap_or_default()))
            }
        );
        assert!(reason.contains("panicked"), "{reason}");
        assert_eq!(held_by.as_deref(), Some(name));
        // Backed off and still held: the same lease, claimed once, for several retries.
        let claims = "SELECT COUNT(*) FROM event_log WHERE kind = 'lease_acquired'";
        let before: u64 = s.meta.query_first(claims).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after: u64 = s.meta.query_first(claims).await.unwrap().unwrap();
        assert_eq!(
            before, after,
            "the pipeline was claimed again after its panic"
        );
        let errors: u64 = s
            .meta
            .query_first(format!(
                "SELECT COUNT(*) FROM event_log WHERE kind = 'pipeline_error' AND message LIKE '%failpoint {failpoint}%'"
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(
            (2..=5).contains(&errors),
            "{errors} errors in 5 s with a 2 s backoff"
        );
        let conn = &mut s.meta;
        eventually!(Duration::from_secs(20), "an open pipeline_error alert", {
            let open: Option<u64> = conn
                .query_first("SELECT COUNT(*) FROM v_open_alerts WHERE rule = 'broken'")
                .await
                .unwrap();
            open.filter(|open| *open > 0)
        });
        drop(node);
    }
    // Without the failpoint it recovers by itself.
    let _node = s.node("n3");
    s.wait_state("panicky", "running", Duration::from_secs(30))
        .await;
    assert_eq!(
        wait_identical("n_panic.t", Duration::from_secs(30)).await,
        1
    );
}

/// `(id, n)` rows of `ha.{table}` on a server.
/// Creates `schema` afresh on the source and the target, with `tables` of columns id and n.
async fn create_id_n_tables(schema: &str, tables: &[String]) {
    let ddl: String = tables
        .iter()
        .map(|t| format!("CREATE TABLE {schema}.{t} (id INT PRIMARY KEY, n INT NOT NULL);"))
        .collect();
    for server in [source(), target()] {
        server
            .run(&format!(
                "DROP DATABASE IF EXISTS {schema}; CREATE DATABASE {schema}; {ddl}"
            ))
            .await;
    }
}

async fn id_n_rows(server: &MariaDb, table: &str) -> Vec<(i64, i64)> {
    server
        .conn()
        .await
        .query(format!("SELECT id, n FROM {table} ORDER BY id"))
        .await
        .unwrap()
}

/// Waits until `table` (`schema.table`, columns id and n) holds the same rows on the source
/// and the target; returns how many.
async fn wait_identical(table: &str, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let (on_source, on_target) = (
            id_n_rows(source(), table).await,
            id_n_rows(target(), table).await,
        );
        if on_source == on_target {
            return on_source.len();
        }
        assert!(
            Instant::now() < deadline,
            "{table} did not converge: source {} rows, target {} rows",
            on_source.len(),
            on_target.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn three_nodes_six_pipelines_under_writes_survive_kill_9_one_after_another() {
    let tables: Vec<String> = (1..=6).map(|i| format!("h{i}")).collect();
    create_id_n_tables("ha", &tables).await;
    let mut setup = setup("ottr_n_ha", 2000, 200, 200).await;
    for table in &tables {
        setup.channel_over(table, "sh", "ha", table, false).await;
    }
    let mut nodes: BTreeMap<String, NodeProcess> = ["n1", "n2", "n3"]
        .iter()
        .map(|name| (name.to_string(), setup.node(name)))
        .collect();
    setup.start_channels(&tables).await;
    setup
        .wait_count(
            "SELECT COUNT(*) FROM v_pipeline_status WHERE observed = 'running'",
            6,
            Duration::from_secs(30),
        )
        .await;

    let stop = tokio_util::sync::CancellationToken::new();
    let writer = common::spawn_writer(
        source(),
        Duration::from_millis(20),
        tables.iter().map(|table| format!("ha.{table}")).collect(),
        stop.clone(),
    );
    for victim in ["n1", "n2", "n3"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        nodes.get_mut(victim).unwrap().kill9();
        let started = Instant::now();
        let conn = &mut setup.meta;
        eventually!(
            Duration::from_secs(15),
            &format!("{victim}'s pipelines to move"),
            {
                let elsewhere: u64 = conn
                    .exec_first(
                        "SELECT COUNT(*) FROM v_pipeline_status WHERE observed = 'running' AND node <> ?",
                        (victim,),
                    )
                    .await
                    .unwrap()
                    .unwrap();
                (elsewhere == 6).then_some(())
            }
        );
        eprintln!(
            "{victim} killed: its pipelines moved in {:?}",
            started.elapsed()
        );
        nodes.insert(victim.to_owned(), setup.node(victim));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let rounds = writer.await.unwrap();
    for table in &tables {
        wait_identical(&format!("ha.{table}"), Duration::from_secs(60)).await;
    }
    eprintln!("{rounds} rounds of 12 row changes over 6 tables: identical after 3 kills");
}

/// The metadata database is a MariaDB primary with a replica; the node is given both. The
/// primary dies, the replica is promoted: the node follows it and sync continues.
#[tokio::test]
async fn nodes_follow_the_metadata_replica_promoted_after_the_primary_dies() {
    let primary = MariaDb::start_with(ServerKind::Source, &["--server-id=71"]);
    let replica = MariaDb::start_with(ServerKind::Plain, &["--server-id=72", "--read-only=ON"]);
    let mut on_replica = replica.conn().await;
    on_replica
        .query_drop(format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', \
             MASTER_PASSWORD = '', MASTER_USE_GTID = current_pos; START SLAVE",
            primary.port
        ))
        .await
        .unwrap();
    create_id_n_tables("mf", &["t".to_owned()]).await;
    let setup = setup_on(&primary, "ottr_mf", 3000, 300, 200).await;
    let Setup(Installation { meta, dir, url, .. }) = setup;
    let mut meta = meta;
    meta.query_drop(format!(
        "CALL create_channel('mf', 'sh', 'us'); CALL add_table_pair('mf', 'mf', 't', NULL, NULL);
         UPDATE pipeline SET server_id = {}; CALL start_channel('mf');",
        common::server_id_base("ottr_mf")
    ))
    .await
    .unwrap();
    let urls = format!("{},{}", url, replica.url("ottr_mf"));
    let node = NodeProcess::spawn(&urls, "n1", &dir, &[]);
    eventually!(Duration::from_secs(30), "the pipeline to apply changes", {
        let reason: Option<Option<String>> = meta
            .query_first("SELECT reason FROM v_pipeline_status WHERE observed = 'running'")
            .await
            .unwrap();
        reason
            .flatten()
            .filter(|reason| reason.contains("applying"))
    });
    drop(meta);

    let write = |from: i64, to: i64| async move {
        let mut conn = source().conn().await;
        for id in from..to {
            conn.query_drop(format!("INSERT INTO mf.t VALUES ({id}, {id})"))
                .await
                .unwrap();
        }
    };
    write(1, 201).await;
    assert_eq!(wait_identical("mf.t", Duration::from_secs(30)).await, 200);

    // The primary dies; the replica is promoted (as an operator or a failover tool would).
    primary.kill9();
    on_replica
        .query_drop("STOP SLAVE; SET GLOBAL read_only = OFF")
        .await
        .unwrap();
    write(201, 401).await;
    assert_eq!(wait_identical("mf.t", Duration::from_secs(60)).await, 400);
    // Past two leases: the node renews them on the promoted server and keeps syncing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    write(401, 501).await;
    assert_eq!(wait_identical("mf.t", Duration::from_secs(60)).await, 500);
    let mut meta = conn_to(&replica, "ottr_mf").await;
    let pipeline: Option<(String, Option<String>)> = meta
        .query_first("SELECT observed, node FROM v_pipeline_status")
        .await
        .unwrap();
    assert_eq!(
        pipeline,
        Some(("running".to_owned(), Some("n1".to_owned())))
    );
    let position_age_ms: Option<i64> = meta
        .query_first(
            "SELECT TIMESTAMPDIFF(MICROSECOND, updated_at, NOW(6)) DIV 1000 FROM pipeline_position",
        )
        .await
        .unwrap();
    assert!(
        position_age_ms.is_some_and(|age| age < 10_000),
        "the position is written on the promoted server: {position_age_ms:?} ms old"
    );
    let node_state: Option<String> = meta
        .query_first("SELECT state FROM v_node_status WHERE node = 'n1'")
        .await
        .unwrap();
    assert_eq!(node_state.as_deref(), Some("working"));
    let log = node.log_text();
    assert!(
        log.contains("following the writable server"),
        "the node's log: {log}"
    );
    // Two writable servers (an old primary back without read_only): no guess, an error.
    let split = ottr::meta::MetaDb::open(&format!("{0},{0}", replica.url("ottr_mf"))).unwrap();
    let refused = ottr::meta::read_settings(&split)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("several metadata servers are writable")
            && refused.contains("refusing to choose"),
        "{refused}"
    );
}

/// Peak resident memory of a process (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb / 1024)
}

/// A pipeline with a backlog of big rows (200 MB of 512 KB blobs) and one with a trickle of
/// small rows share a node: the small one's rows arrive while the big one is still catching
/// up, and the node's memory stays bounded by the big one's `batch_bytes` (8 MB here), far
/// below its backlog.
#[tokio::test]
async fn a_pipeline_with_a_huge_backlog_starves_neither_the_others_nor_memory() {
    for server in [source(), target()] {
        server
            .run(
                "DROP DATABASE IF EXISTS fair; CREATE DATABASE fair;
                 CREATE TABLE fair.big (id INT PRIMARY KEY, body LONGBLOB NOT NULL);
                 CREATE TABLE fair.small (id INT PRIMARY KEY, n INT NOT NULL);",
            )
            .await;
    }
    let mut setup = setup("ottr_n_fair", 3000, 200, 200).await;
    let channels = vec!["fair_big".to_owned(), "fair_small".to_owned()];
    for (channel, table) in channels.iter().zip(["big", "small"]) {
        setup
            .channel_over(channel, "sh", "fair", table, false)
            .await;
    }
    setup
        .meta
        .query_drop("CALL set_pipeline_option('fair_big', 'batch_bytes', '8388608'); CALL set_pipeline_option('fair_small', 'batch_timeout_ms', '50')")
        .await
        .unwrap();
    let node = setup.node("n1");
    setup.start_channels(&channels).await;
    setup
        .wait_count(
            "SELECT COUNT(*) FROM v_pipeline_status WHERE observed = 'running' AND reason LIKE '%applying%'",
            2,
            Duration::from_secs(30),
        )
        .await;
    let conn = &mut setup.meta;
    // The backlog: written while the big pipeline is stopped.
    conn.query_drop("CALL stop_channel('fair_big')")
        .await
        .unwrap();
    eventually!(Duration::from_secs(30), "the big pipeline to stop", {
        let stopped: u64 = conn
            .query_first("SELECT COUNT(*) FROM v_pipeline_status WHERE channel = 'fair_big' AND observed = 'stopped'")
            .await
            .unwrap()
            .unwrap();
        (stopped == 1).then_some(())
    });
    let rows = 400;
    let mut writer = source().conn().await;
    for id in 0..rows {
        writer
            .query_drop(format!(
                "INSERT INTO fair.big VALUES ({id}, REPEAT(CHAR(65 + {id} % 26), 524288))"
            ))
            .await
            .unwrap();
    }
    conn.query_drop("CALL start_channel('fair_big')")
        .await
        .unwrap();
    let big_on_target = || async {
        let count: u64 = target()
            .conn()
            .await
            .query_first("SELECT COUNT(*) FROM fair.big")
            .await
            .unwrap()
            .unwrap();
        count
    };
    // A trickle of small rows while the big pipeline works through its backlog.
    let started = Instant::now();
    let mut big_when_small_arrived = Vec::new();
    for id in 1..=5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer
            .query_drop(format!("INSERT INTO fair.small VALUES ({id}, {id})"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let arrived: u64 = target()
                .conn()
                .await
                .exec_first("SELECT COUNT(*) FROM fair.small WHERE id = ?", (id,))
                .await
                .unwrap()
                .unwrap();
            if arrived == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "small row {id} never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        big_when_small_arrived.push(big_on_target().await);
    }
    let small_done = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    while big_on_target().await < rows {
        assert!(Instant::now() < deadline, "the big backlog did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let checksum = |server: &'static MariaDb| async move {
        let sum: Option<String> = server
            .conn()
            .await
            .query_first("SELECT CONCAT(COUNT(*), '/', SUM(CRC32(body))) FROM fair.big")
            .await
            .unwrap();
        sum
    };
    assert_eq!(checksum(source()).await, checksum(target()).await);
    let peak = peak_rss_mb(node.pid());
    eprintln!(
        "small rows arrived within {small_done:?} while the big pipeline had applied {big_when_small_arrived:?} of {rows} rows; the whole backlog took {:?}; node peak RSS {peak} MB",
        started.elapsed()
    );
    assert!(
        big_when_small_arrived.iter().any(|applied| *applied < rows),
        "the small pipeline's rows only arrived after the big backlog: {big_when_small_arrived:?}"
    );
    assert!(
        peak < 160,
        "the node held {peak} MB at its peak for a 200 MB backlog in 8 MB batches"
    );
}

/// A metadata schema for nodes started with `--zk`: leases far longer than the ZooKeeper
/// session (so that whatever moves fast was moved by ZooKeeper), tables `zk_schema.t1…tN`
/// on both servers, one channel per table, and two nodes that see each other in ZooKeeper.
async fn zk_setup(
    schema: &str,
    zk: &ZooKeeperServer,
    tables: usize,
) -> (Setup, BTreeMap<String, NodeProcess>) {
    let table_names: Vec<String> = (1..=tables).map(|i| format!("t{i}")).collect();
    create_id_n_tables(schema, &table_names).await;
    let mut setup = setup(&format!("ottr_{schema}"), 30_000, 200, 200).await;
    setup
        .meta
        .query_drop("CALL set_setting('zk_session_ms', 2000)")
        .await
        .unwrap();
    let names: Vec<String> = (1..=tables).map(|i| format!("{schema}_{i}")).collect();
    for (name, table) in names.iter().zip(&table_names) {
        setup.channel_over(name, "sh", schema, table, false).await;
    }
    let nodes: BTreeMap<String, NodeProcess> = ["z1", "z2"]
        .iter()
        .map(|name| (name.to_string(), setup.zk_node(name, zk)))
        .collect();
    setup
        .wait_count(
            "SELECT COUNT(*) FROM v_node_status WHERE alive AND coordination = 'zookeeper'",
            2,
            Duration::from_secs(30),
        )
        .await;
    setup.start_channels(&names).await;
    setup
        .wait_count(
            "SELECT COUNT(*) FROM v_pipeline_status WHERE observed = 'running'",
            tables as u64,
            Duration::from_secs(30),
        )
        .await;
    (setup, nodes)
}

async fn insert_rows(table: &str, ids: std::ops::Range<i64>) {
    let mut conn = source().conn().await;
    for id in ids {
        conn.query_drop(format!("INSERT INTO {table} VALUES ({id}, {id})"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn with_zookeeper_a_killed_nodes_pipelines_move_within_the_session_timeout() {
    let zk = ZooKeeperServer::start();
    let (mut setup, mut nodes) = zk_setup("zk_move", &zk, 4).await;
    let conn = &mut setup.meta;
    eventually!(Duration::from_secs(20), "two pipelines on each node", {
        let per_node: Vec<u64> = conn
            .query("SELECT pipelines FROM v_node_status ORDER BY node")
            .await
            .unwrap();
        (per_node == [2, 2]).then_some(())
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let tables: Vec<String> = (1..=4).map(|i| format!("zk_move.t{i}")).collect();
    let writer = common::spawn_writer(
        source(),
        Duration::from_millis(20),
        tables.clone(),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tokens_before: Vec<u64> = setup
        .meta
        .query("SELECT token FROM pipeline_lease ORDER BY pipeline_id")
        .await
        .unwrap();

    nodes.get_mut("z1").unwrap().kill9();
    let killed = Instant::now();
    setup
        .wait_count(
            "SELECT COUNT(*) FROM v_pipeline_status WHERE observed = 'running' AND node = 'z2'",
            4,
            Duration::from_secs(20),
        )
        .await;
    let moved = killed.elapsed();
    eprintln!("z1 killed: its pipelines moved in {moved:?} (ZooKeeper session 2 s, lease 30 s)");
    assert!(
        moved < Duration::from_secs(8),
        "with a 2 s ZooKeeper session the pipelines must move long before the 30 s lease: {moved:?}"
    );
    // The new holder's tokens are newer than every token of the dead node (at least the lock's
    // czxid), so that the dead node's last transactions can never be confirmed again.
    let tokens_after: Vec<u64> = setup
        .meta
        .query("SELECT token FROM pipeline_lease ORDER BY pipeline_id")
        .await
        .unwrap();
    let moved_pipelines = tokens_before
        .iter()
        .zip(&tokens_after)
        .filter(|(before, after)| after > before)
        .count();
    assert_eq!(moved_pipelines, 2, "{tokens_before:?} → {tokens_after:?}");
    eprintln!("lease tokens before and after: {tokens_before:?} → {tokens_after:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let rounds = writer.await.unwrap();
    for table in &tables {
        let rows = wait_identical(table, Duration::from_secs(30)).await;
        assert_eq!(rows as i64, rounds);
    }
    // z1 comes back: it does not take anything back from the healthy z2.
    nodes.insert("z1".into(), setup.zk_node("z1", &zk));
    let conn = &mut setup.meta;
    eventually!(Duration::from_secs(20), "z1 back in ZooKeeper", {
        let back: Option<String> = conn
            .query_first("SELECT coordination FROM v_node_status WHERE node = 'z1' AND alive")
            .await
            .unwrap();
        back.filter(|coordination| coordination == "zookeeper")
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(setup.running_on("z2").await, 4, "nothing is stolen back");
}

#[tokio::test]
async fn with_zookeeper_down_nodes_hand_back_claim_nothing_and_say_so() {
    let zk = ZooKeeperServer::start();
    let (mut setup, _nodes) = zk_setup("zk_down", &zk, 2).await;
    insert_rows("zk_down.t1", 1..51).await;
    insert_rows("zk_down.t2", 1..51).await;
    wait_identical("zk_down.t1", Duration::from_secs(30)).await;

    zk.kill9();
    let killed = Instant::now();
    let conn = &mut setup.meta;
    let said: Vec<String> = eventually!(
        Duration::from_secs(20),
        "both nodes to hand their pipelines back and say why",
        {
            let rows: Vec<(String, u64)> = conn
                .query(
                    "SELECT coordination, pipelines FROM v_node_status WHERE alive ORDER BY node",
                )
                .await
                .unwrap();
            let handed_back = rows.len() == 2
                && rows.iter().all(|(coordination, pipelines)| {
                    *pipelines == 0
                        && coordination.starts_with("zookeeper unreachable since")
                        && coordination.ends_with("pipelines handed back, claiming none")
                });
            handed_back.then(|| rows.into_iter().map(|(text, _)| text).collect())
        }
    );
    eprintln!(
        "ZooKeeper killed: pipelines handed back in {:?}; v_node_status says {said:?}",
        killed.elapsed()
    );
    let observed: Vec<String> = setup
        .meta
        .query("SELECT observed FROM v_pipeline_status ORDER BY pipeline")
        .await
        .unwrap();
    assert_eq!(observed, ["stopped", "stopped"]);
    let handed_back: u64 = setup
        .meta
        .query_first(
            "SELECT COUNT(*) FROM event_log WHERE kind = 'lease_lost' \
             AND message LIKE '%zookeeper can no longer confirm the lease%'",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        handed_back, 2,
        "each pipeline's hand-back is in the event log"
    );
    // A node started meanwhile says it cannot reach ZooKeeper, and claims nothing either.
    let _late = setup.zk_node("z3", &zk);
    let conn = &mut setup.meta;
    let late: String = eventually!(Duration::from_secs(20), "z3 to say why it waits", {
        let row: Option<String> = conn
            .query_first("SELECT coordination FROM v_node_status WHERE node = 'z3'")
            .await
            .unwrap();
        row.filter(|text| text.starts_with("zookeeper unreachable since"))
    });
    assert!(late.contains("cannot connect"), "{late}");
    // While ZooKeeper is away nobody claims, although the leases are free.
    insert_rows("zk_down.t1", 51..101).await;
    source()
        .run("UPDATE zk_down.t1 SET n = n + 1; UPDATE zk_down.t2 SET n = n * 2")
        .await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(setup.running().await, BTreeMap::new());
    }
    assert_eq!(id_n_rows(target(), "zk_down.t1").await.len(), 50);

    zk.restart();
    let conn = &mut setup.meta;
    eventually!(Duration::from_secs(30), "both pipelines running again", {
        let running: u64 = conn
            .query_first("SELECT COUNT(*) FROM v_pipeline_status WHERE observed = 'running'")
            .await
            .unwrap()
            .unwrap();
        let coordinating: u64 = conn
            .query_first("SELECT COUNT(*) FROM v_node_status WHERE coordination = 'zookeeper'")
            .await
            .unwrap()
            .unwrap();
        (running == 2 && coordinating == 3).then_some(())
    });
    assert_eq!(
        wait_identical("zk_down.t1", Duration::from_secs(30)).await,
        100
    );
    assert_eq!(
        wait_identical("zk_down.t2", Duration::from_secs(30)).await,
        50
    );
    let kinds: Vec<String> = setup
        .meta
        .query("SELECT DISTINCT kind FROM event_log WHERE kind LIKE 'zookeeper%' ORDER BY kind")
        .await
        .unwrap();
    assert!(
        kinds.contains(&"zookeeper_unreachable".to_owned())
            && kinds.contains(&"zookeeper_reachable".to_owned()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn with_zookeeper_a_frozen_node_loses_its_pipeline_and_commits_nothing_when_woken() {
    let zk = ZooKeeperServer::start();
    let (mut setup, nodes) = zk_setup("zk_frozen", &zk, 2).await;
    let conn = &mut setup.meta;
    let frozen_pipeline: String = eventually!(Duration::from_secs(20), "one pipeline per node", {
        let per_node: Vec<u64> = conn
            .query("SELECT pipelines FROM v_node_status ORDER BY node")
            .await
            .unwrap();
        let on_z1: Option<String> = conn
            .query_first(
                "SELECT pipeline FROM v_pipeline_status WHERE node = 'z1' AND observed = 'running'",
            )
            .await
            .unwrap();
        on_z1.filter(|_| per_node == [1, 1])
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let tables = vec!["zk_frozen.t1".to_owned(), "zk_frozen.t2".to_owned()];
    let writer = common::spawn_writer(
        source(),
        Duration::from_millis(20),
        tables.clone(),
        stop.clone(),
    );
    // The frozen pipeline's fencing token on the target, read all along.
    let watcher = common::watch_tokens(target(), format!("{frozen_pipeline}%"), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes["z1"].signal("-STOP");
    let frozen = Instant::now();
    let conn = &mut setup.meta;
    eventually!(
        Duration::from_secs(20),
        "z2 to take the frozen node's pipeline",
        {
            let on_z2: u64 = conn
            .query_first(
                "SELECT COUNT(*) FROM v_pipeline_status WHERE observed = 'running' AND node = 'z2'",
            )
            .await
            .unwrap()
            .unwrap();
            (on_z2 == 2).then_some(())
        }
    );
    let moved = frozen.elapsed();
    assert!(
        moved < Duration::from_secs(8),
        "the session (2 s), not the lease (30 s), decides: {moved:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    nodes["z1"].signal("-CONT");
    let conn = &mut setup.meta;
    eventually!(
        Duration::from_secs(20),
        "the woken node to say its session ended",
        {
            let said: u64 = conn
            .query_first(
                "SELECT COUNT(*) FROM event_log WHERE node = 'z1' AND kind = 'zookeeper_session_ended'",
            )
            .await
            .unwrap()
            .unwrap();
            (said > 0).then_some(())
        }
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let rounds = writer.await.unwrap();
    let tokens = watcher.await.unwrap();
    for table in &tables {
        assert_eq!(
            wait_identical(table, Duration::from_secs(30)).await as i64,
            rounds
        );
    }
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]) && tokens.len() >= 2,
        "the fencing token on the target must only grow, through the takeover: {tokens:?}"
    );
    let log = nodes["z1"].log_text();
    assert!(log.contains("lease lost"), "the woken node's log: {log}");
    // Its ended session was rebuilt: it is back in ZooKeeper, and steals nothing back.
    setup
        .wait_count(
            "SELECT COUNT(*) FROM v_node_status WHERE node = 'z1' AND coordination = 'zookeeper'",
            1,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(setup.running_on("z1").await, 0);
    eprintln!("frozen z1's pipeline moved in {moved:?}; {rounds} rounds; target tokens {tokens:?}");
}

#[tokio::test]
async fn zookeeper_nodes_on_different_ensembles_are_reported() {
    let (one, other) = (ZooKeeperServer::start(), ZooKeeperServer::start());
    let mut setup = setup("ottr_zk_split", 3000, 200, 200).await;
    setup
        .meta
        .query_drop("CALL set_setting('zk_session_ms', 2000)")
        .await
        .unwrap();
    let _z1 = setup.zk_node("z1", &one);
    let _z2 = setup.zk_node("z2", &other);
    let conn = &mut setup.meta;
    let reported: Vec<(String, String)> =
        eventually!(Duration::from_secs(30), "each node to report the other", {
            let rows: Vec<(String, String)> = conn
                .query(
                    "SELECT node, message FROM event_log \
                     WHERE kind = 'zookeeper_ensemble_mismatch' ORDER BY node",
                )
                .await
                .unwrap();
            (rows.len() == 2).then_some(rows)
        });
    assert_eq!(reported[0].0, "z1");
    assert!(
        reported[0]
            .1
            .starts_with("node z2 heartbeats and says it coordinates through ZooKeeper")
            && reported[0].1.contains("must use the same ensemble"),
        "{reported:?}"
    );
    assert_eq!(reported[1].0, "z2");
    assert!(reported[1].1.starts_with("node z1 "), "{reported:?}");
}

/// With the installation's ZooKeeper identity (`--zk-auth-file`), the installation's nodes
/// are readable and writable by that identity only: a client without it, or with a wrong
/// password, can neither read the queues, queue for a pipeline nor delete a live node.
#[tokio::test]
async fn with_a_zookeeper_identity_only_the_installation_reads_or_writes_its_nodes() {
    use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};
    let zk = ZooKeeperServer::start();
    create_id_n_tables("zk_acl", &["t".to_owned()]).await;
    let mut setup = setup("ottr_zk_acl", 30_000, 200, 200).await;
    setup
        .meta
        .query_drop("CALL set_setting('zk_session_ms', 2000)")
        .await
        .unwrap();
    setup
        .channel_over("zk_acl", "sh", "zk_acl", "t", true)
        .await;
    let identity = setup.dir.join("zk.identity");
    std::fs::write(&identity, "ottr:Zk-Secret-1\n").unwrap();
    let _node = NodeProcess::spawn(
        &setup.url,
        "z1",
        &setup.dir,
        &[
            ("OTTR_ZK", &zk.address()),
            ("OTTR_ZK_AUTH_FILE", identity.to_str().unwrap()),
        ],
    );
    setup
        .wait_state("zk_acl", "running", Duration::from_secs(30))
        .await;
    let installation: String = setup
        .meta
        .query_first("SELECT id FROM installation")
        .await
        .unwrap()
        .unwrap();
    let root = format!("/ottr/{installation}");
    let pipeline: u32 = setup
        .meta
        .query_first("SELECT id FROM pipeline")
        .await
        .unwrap()
        .unwrap();
    let stranger = Client::connect(&zk.address()).await.unwrap();
    let guesser = Client::connector()
        .with_auth("digest", b"ottr:guess")
        .connect(&zk.address())
        .await
        .unwrap();
    for client in [&stranger, &guesser] {
        for path in [format!("{root}/pipelines"), format!("{root}/nodes")] {
            assert_eq!(
                client.list_children(&path).await.unwrap_err(),
                ZkError::NoAuth,
                "{path}"
            );
        }
        let lock = format!("{root}/pipelines/{pipeline}/lock-0-");
        let queued = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
        assert_eq!(
            client.create(&lock, b"x", &queued).await.unwrap_err(),
            ZkError::NoAuth
        );
        assert_eq!(
            client
                .delete(&format!("{root}/nodes/z1"), None)
                .await
                .unwrap_err(),
            ZkError::NoAuth
        );
    }
    let member = Client::connector()
        .with_auth("digest", b"ottr:Zk-Secret-1")
        .connect(&zk.address())
        .await
        .unwrap();
    let alive = member
        .list_children(&format!("{root}/nodes"))
        .await
        .unwrap();
    assert_eq!(alive, vec!["z1".to_owned()]);
    setup
        .wait_state("zk_acl", "running", Duration::from_secs(1))
        .await;
}
