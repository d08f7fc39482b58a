//! Observability on real servers: heartbeat lag, statistics, alarm rules checked by the
//! monitor of a real `ottr node`, alerts raised and resolved, and mail received by a real SMTP
//! server (aiosmtpd).

mod common;

use common::{Installation, MariaDb, ServerKind, SmtpSink, shared};
use mysql_async::prelude::Queryable;
use std::sync::OnceLock;
use std::time::Duration;

fn source() -> &'static MariaDb {
    shared(ServerKind::Source)
}

fn meta() -> &'static MariaDb {
    shared(ServerKind::Plain)
}

fn smtp() -> &'static SmtpSink {
    static SINK: OnceLock<SmtpSink> = OnceLock::new();
    SINK.get_or_init(SmtpSink::start)
}

/// A metadata schema with short timings and SMTP set to the sink.
async fn setup(name: &str) -> Setup {
    let mut setup = Installation::new(
        meta(),
        &format!("ottr_m_{name}"),
        &[
            ("lease_ms", 3000),
            ("heartbeat_ms", 200),
            ("poll_ms", 200),
            ("retry_min_ms", 200),
            ("retry_max_ms", 1000),
            ("monitor_tick_ms", 200),
        ],
    )
    .await;
    setup
        .meta
        .exec_drop(
            "CALL set_smtp('127.0.0.1', ?, 'none', NULL, NULL, 'ottr@example.com')",
            (smtp().port,),
        )
        .await
        .unwrap();
    Setup(setup)
}

/// The monitor tests' installation: channels from the shared source to a target.
struct Setup(Installation);

installation_wrapper!(Setup);

impl Setup {
    /// A channel `name` from the shared source to `target` over `schema.t`, created on both
    /// sides, and started.
    async fn channel(&mut self, name: &str, target: &MariaDb, schema: &str, create_target: bool) {
        self.channel_as(name, target, schema, create_target, "root", "")
            .await
    }

    /// Like [`Setup::channel`], reading the source as `user`, with `extra` SQL run before the
    /// channel starts.
    async fn channel_as(
        &mut self,
        name: &str,
        target: &MariaDb,
        schema: &str,
        create_target: bool,
        user: &str,
        extra: &str,
    ) {
        let table = format!("CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v VARCHAR(20))");
        let mut src = source().conn().await;
        src.query_drop(format!(
            "DROP DATABASE IF EXISTS `{schema}`; CREATE DATABASE `{schema}`"
        ))
        .await
        .unwrap();
        src.query_drop(&table).await.unwrap();
        let mut tgt = target.conn().await;
        tgt.query_drop(format!(
            "DROP DATABASE IF EXISTS `{schema}`; CREATE DATABASE `{schema}`"
        ))
        .await
        .unwrap();
        if create_target {
            tgt.query_drop(&table).await.unwrap();
        }
        let conn = &mut self.meta;
        conn.exec_drop(
            "CALL add_data_source('sh', 'mariadb', ?, NULL)",
            (source().source_url(user),),
        )
        .await
        .unwrap();
        conn.exec_drop(
            "CALL add_data_source('us', 'mariadb', ?, NULL)",
            (target.source_url("root"),),
        )
        .await
        .unwrap();
        conn.exec_drop("CALL create_channel(?, 'sh', 'us')", (name,))
            .await
            .unwrap();
        conn.exec_drop("CALL add_table_pair(?, ?, 't', NULL, NULL)", (name, schema))
            .await
            .unwrap();
        conn.exec_drop(
            "CALL set_pipeline_option(?, 'batch_timeout_ms', '50')",
            (name,),
        )
        .await
        .unwrap();
        let server_id = 7_000_000
            + name
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                % 1_000_000;
        conn.exec_drop(
            "CALL set_pipeline_option(?, 'server_id', ?)",
            (name, server_id.to_string()),
        )
        .await
        .unwrap();
        if !extra.is_empty() {
            conn.query_drop(extra).await.unwrap();
        }
        conn.exec_drop("CALL start_channel(?)", (name,))
            .await
            .unwrap();
    }

    async fn observed(&mut self) -> (String, Option<String>, Option<i64>) {
        self.meta
            .query_first("SELECT observed, reason, lag_ms FROM v_pipeline_status")
            .await
            .unwrap()
            .unwrap()
    }

    async fn open_alerts(&mut self, rule: &str) -> Vec<(String, String)> {
        self.meta
            .exec(
                "SELECT scope, measured FROM v_alert WHERE rule = ? AND state = 'open'",
                (rule,),
            )
            .await
            .unwrap()
    }

    async fn alert_states(&mut self, rule: &str) -> Vec<String> {
        self.meta
            .exec(
                "SELECT state FROM v_alert WHERE rule = ? ORDER BY id",
                (rule,),
            )
            .await
            .unwrap()
    }

    /// A node row whose heartbeat is an hour old: a dead node, for node_dead rules.
    async fn dead_node(&mut self, name: &str) {
        self.meta
            .exec_drop(
                "INSERT INTO node (name, host, pid, version, instance, last_heartbeat) \
                 VALUES (?, 'gone', 1, '0', 1, NOW(6) - INTERVAL 1 HOUR)",
                (name,),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn idle_lag_is_small_and_a_dead_target_raises_then_resolves_a_lag_alert_by_mail() {
    let target = MariaDb::start(ServerKind::Target);
    let mut s = setup("lag").await;
    s.channel("orders_sh_us", &target, "mon_lag", true).await;
    s.meta
        .query_drop(
            "CALL add_alarm_rule('lag3', 'lag', 'orders_sh_us', '3', '* * * * * *', 'ops@example.com, dba@example.com', 3600, NULL)",
        )
        .await
        .unwrap();
    let _node = s.node("n1");
    eventually!(Duration::from_secs(30), "a heartbeat lag measurement", {
        let (observed, _, lag) = s.observed().await;
        (observed == "running" && lag.is_some()).then_some(())
    });
    // An idle source: heartbeats keep the lag true and small.
    let mut worst = 0;
    for _ in 0..20 {
        let (_, _, lag) = s.observed().await;
        worst = worst.max(lag.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(worst < 2000, "idle lag reached {worst} ms");
    let method: String = s
        .meta
        .query_first("SELECT method FROM pipeline_lag")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(method, "heartbeat");
    // Rows flow and are counted per kind and per table.
    let mut src = source().conn().await;
    src.query_drop("INSERT INTO mon_lag.t VALUES (1, 'a'), (2, 'b'); UPDATE mon_lag.t SET v = 'c' WHERE id = 1; DELETE FROM mon_lag.t WHERE id = 2")
        .await
        .unwrap();
    eventually!(Duration::from_secs(20), "statistics of the rows", {
        let counts: Option<(u64, u64, u64)> = s
            .meta
            .query_first("SELECT COALESCE(SUM(inserts), 0), COALESCE(SUM(updates), 0), COALESCE(SUM(deletes), 0) \
                          FROM stat_table WHERE schema_name = 'mon_lag' AND table_name = 't'")
            .await
            .unwrap();
        counts.filter(|counts| *counts == (2, 1, 1))
    });
    let (p50, samples): (Option<u64>, u64) = s
        .meta
        .query_first("SELECT p50_1m_ms, samples_15m FROM v_lag")
        .await
        .unwrap()
        .unwrap();
    assert!(
        p50.is_some_and(|p50| p50 < 2000) && samples > 3,
        "p50 {p50:?} of {samples} samples"
    );
    assert!(smtp().with_subject("orders_sh_us").is_empty());

    // The target goes away: lag grows, an alert is raised and mailed once.
    target.kill9();
    eventually!(Duration::from_secs(30), "an open lag alert", {
        let open = s.open_alerts("lag3").await;
        (!open.is_empty()).then_some(())
    });
    let (_, _, lag) = s.observed().await;
    assert!(lag.unwrap() > 3000, "lag {lag:?} while the target is down");
    let raised = eventually!(Duration::from_secs(20), "the RAISED mail", {
        let mails = smtp().with_subject("[ottr] RAISED lag orders_sh_us");
        (!mails.is_empty()).then_some(mails)
    });
    let text = &raised[0].text;
    assert!(
        text.contains("ops@example.com") && text.contains("dba@example.com"),
        "{text}"
    );
    assert!(text.contains("Measured: lag "), "{text}");
    assert!(text.contains("v_lag"), "{text}");
    // The condition holds for many more checks (one a second): still one mail, thanks to the
    // quiet period.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp().with_subject("lag orders_sh_us").len(), 1);
    let repeats: u32 = s
        .meta
        .query_first("SELECT repeats FROM alert")
        .await
        .unwrap()
        .unwrap();
    assert!(repeats >= 3, "repeats {repeats}");

    // The target is back: the pipeline catches up, the alert resolves, and that is mailed.
    target.restart();
    eventually!(Duration::from_secs(60), "the alert to resolve", {
        let states = s.alert_states("lag3").await;
        (states == ["resolved"]).then_some(())
    });
    eventually!(Duration::from_secs(20), "the RESOLVED mail", {
        (!smtp()
            .with_subject("[ottr] RESOLVED lag orders_sh_us")
            .is_empty())
        .then_some(())
    });
    let (observed, _, lag) = s.observed().await;
    assert_eq!(observed, "running");
    assert!(lag.unwrap() < 3000);
    let sent: u64 = s
        .meta
        .query_first("SELECT mails_sent FROM v_alert")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent, 2);
}

#[tokio::test]
async fn the_quiet_period_sends_one_mail_and_then_reminders() {
    let mut s = setup("quiet").await;
    s.dead_node("gone-quiet").await;
    s.dead_node("gone-remind").await;
    // Both rules see both nodes; the first is quiet for an hour, the second for 3 s.
    s.meta
        .query_drop(
            "CALL add_alarm_rule('quiet', 'node_dead', NULL, '0', '* * * * * *', 'ops@example.com', 3600, NULL); \
             CALL add_alarm_rule('remind', 'node_dead', NULL, '0', '* * * * * *', 'ops@example.com', 3, NULL)",
        )
        .await
        .unwrap();
    let _node = s.node("n1");
    eventually!(Duration::from_secs(20), "four open alerts", {
        let open: u64 = s
            .meta
            .query_first("SELECT COUNT(*) FROM alert WHERE state = 'open'")
            .await
            .unwrap()
            .unwrap();
        (open == 4).then_some(())
    });
    tokio::time::sleep(Duration::from_secs(8)).await;
    let quiet: Vec<String> = s
        .meta
        .query("SELECT m.event FROM alert_mail m JOIN alert a ON a.id = m.alert_id JOIN alarm_rule r ON r.id = a.rule_id \
                WHERE r.name = 'quiet' AND a.scope = 'gone-quiet' AND m.state = 'sent'")
        .await
        .unwrap();
    assert_eq!(
        quiet,
        ["raised"],
        "one mail in the quiet period, not one per check"
    );
    let reminders: u64 = s
        .meta
        .query_first("SELECT COUNT(*) FROM alert_mail m JOIN alert a ON a.id = m.alert_id JOIN alarm_rule r ON r.id = a.rule_id \
                      WHERE r.name = 'remind' AND a.scope = 'gone-remind' AND m.event = 'reminder' AND m.state = 'sent'")
        .await
        .unwrap()
        .unwrap();
    assert!(
        (1..=3).contains(&reminders),
        "{reminders} reminders in 8 s with a 3 s quiet period"
    );
    let from_quiet: Vec<_> = smtp()
        .with_subject("node_dead gone-quiet")
        .into_iter()
        .filter(|mail| mail.text.contains("alarm rule 'quiet'"))
        .collect();
    assert_eq!(
        from_quiet.len(),
        1,
        "one mail from the quiet rule: {from_quiet:?}"
    );
    assert!(from_quiet[0].subject.starts_with("[ottr] RAISED"));
    assert!(
        !smtp()
            .with_subject("[ottr] STILL node_dead gone-remind")
            .is_empty()
    );
}

#[tokio::test]
async fn a_five_field_cron_fires_on_its_day_and_a_rule_outside_its_window_stays_silent() {
    let mut s = setup("cron").await;
    s.dead_node("gone-cron").await;
    // "Today" must stay today until the 5-field rule fires (within a minute).
    loop {
        let seconds: u32 = s
            .meta
            .query_first("SELECT TIME_TO_SEC(UTC_TIME())")
            .await
            .unwrap()
            .unwrap();
        if seconds < 86_400 - 150 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let (today, tomorrow, hour): (u32, u32, u32) = s
        .meta
        .query_first("SELECT DAYOFWEEK(UTC_TIMESTAMP()) - 1, DAYOFWEEK(UTC_TIMESTAMP()) MOD 7, HOUR(UTC_TIMESTAMP())")
        .await
        .unwrap()
        .unwrap();
    let other_hour = (hour + 12) % 24;
    let sql = format!(
        "CALL add_alarm_rule('today', 'node_dead', NULL, '0', '* * * * {today}', 'ops@example.com', 3600, NULL); \
         CALL add_alarm_rule('tomorrow', 'node_dead', NULL, '0', '* * * * {tomorrow}', 'ops@example.com', 3600, NULL); \
         CALL add_alarm_rule('outside', 'node_dead', NULL, '0', '* * * * * *', 'ops@example.com', 3600, NULL); \
         CALL add_alarm_window('outside', 'all', '{other_hour:02}:00', '{other_hour:02}:30'); \
         CALL add_alarm_rule('inside', 'node_dead', NULL, '0', '* * * * * *', 'ops@example.com', 3600, NULL); \
         CALL add_alarm_window('inside', 'all', '00:00', '24:00');"
    );
    s.meta.query_drop(sql).await.unwrap();
    let _node = s.node("n1");
    eventually!(
        Duration::from_secs(15),
        "the rule inside its window to fire",
        { (!s.open_alerts("inside").await.is_empty()).then_some(()) }
    );
    // A 5-field rule fires at second 0 of a minute: within 61 s.
    eventually!(Duration::from_secs(65), "today's 5-field rule to fire", {
        (!s.open_alerts("today").await.is_empty()).then_some(())
    });
    assert!(
        s.open_alerts("tomorrow").await.is_empty(),
        "tomorrow's rule fired today"
    );
    assert!(
        s.open_alerts("outside").await.is_empty(),
        "a rule outside its window fired"
    );
    let checked: Option<String> = s
        .meta
        .query_first("SELECT CAST(checked_at AS CHAR) FROM v_alarm_rule WHERE name = 'outside'")
        .await
        .unwrap()
        .unwrap();
    assert!(
        checked.is_none(),
        "a rule outside its window was checked at {checked:?}"
    );
    eventually!(
        Duration::from_secs(10),
        "the mail of both rules that fired",
        {
            (smtp()
                .with_subject("[ottr] RAISED node_dead gone-cron")
                .len()
                == 2)
                .then_some(())
        }
    );
}

#[tokio::test]
async fn auto_recovery_restarts_a_pipeline_in_error() {
    let target = shared(ServerKind::Target);
    let mut s = setup("recover").await;
    // The target table is missing: the pipeline stops in error at its first row, and would
    // only look again after retry_max_ms (10 minutes here).
    s.channel("recover", target, "mon_recover", false).await;
    s.meta
        .query_drop(
            "CALL set_setting('retry_max_ms', 600000); \
             CALL add_alarm_rule('stuck', 'pipeline_error', NULL, '0', '* * * * * *', 'ops@example.com', 3600, 3)",
        )
        .await
        .unwrap();
    let _node = s.node("n1");
    eventually!(Duration::from_secs(30), "the pipeline to run", {
        let (observed, _, _) = s.observed().await;
        (observed == "running").then_some(())
    });
    source()
        .run("INSERT INTO mon_recover.t VALUES (1, 'x')")
        .await;
    eventually!(Duration::from_secs(30), "an open pipeline_error alert", {
        let open = s.open_alerts("stuck").await;
        open.first().map(|(_, measured)| measured.clone())
    });
    // The operator fixes the target; only a restart makes the pipeline look again soon.
    target
        .run("CREATE TABLE mon_recover.t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await;
    eventually!(
        Duration::from_secs(30),
        "the row to arrive after the auto-recovery",
        {
            let mut conn = target.conn().await;
            let v: Option<String> = conn
                .query_first("SELECT v FROM mon_recover.t WHERE id = 1")
                .await
                .unwrap();
            v.filter(|v| v == "x")
        }
    );
    let recovered: String = s
        .meta
        .query_first("SELECT message FROM event_log WHERE kind = 'auto_recovery'")
        .await
        .unwrap()
        .expect("an auto_recovery event");
    assert!(recovered.contains("3 times in a row"), "{recovered}");
    let restarts: u64 = s
        .meta
        .query_first("SELECT restart_seq FROM pipeline")
        .await
        .unwrap()
        .unwrap();
    assert!(restarts >= 1);
    eventually!(Duration::from_secs(20), "the alert to resolve", {
        (s.alert_states("stuck").await.last().map(String::as_str) == Some("resolved")).then_some(())
    });
}

#[tokio::test]
async fn one_node_runs_the_monitor_and_another_takes_over_when_it_dies() {
    let mut s = setup("takeover").await;
    s.meta
        .query_drop("CALL add_alarm_rule('dead', 'node_dead', NULL, '0', '* * * * * *', 'ops@example.com', 3600, NULL)")
        .await
        .unwrap();
    let mut nodes = [s.node("a"), s.node("b")];
    let holder = eventually!(
        Duration::from_secs(20),
        "one monitor among two live nodes",
        {
            let rows: Vec<(String, i64, i64)> = s
                .meta
                .query("SELECT node, alive, monitor FROM v_node_status")
                .await
                .unwrap();
            let alive = rows.iter().filter(|(_, alive, _)| *alive == 1).count();
            let monitors: Vec<&String> = rows
                .iter()
                .filter(|(_, _, monitor)| *monitor == 1)
                .map(|(node, _, _)| node)
                .collect();
            (alive == 2 && monitors.len() == 1).then(|| monitors[0].clone())
        }
    );
    // Stay with one monitor for a while.
    for _ in 0..10 {
        let monitors: u64 = s
            .meta
            .query_first("SELECT SUM(monitor) FROM v_node_status")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(monitors, 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (victim, survivor) = if holder == "a" { (0, "b") } else { (1, "a") };
    nodes[victim].kill9();
    // The survivor takes the monitor over after the lease, and its first act is to see the
    // dead node.
    eventually!(
        Duration::from_secs(20),
        "the survivor to run the monitor",
        {
            let node: Option<String> = s
                .meta
                .query_first("SELECT node FROM v_node_status WHERE monitor = 1")
                .await
                .unwrap();
            node.filter(|node| node == survivor)
        }
    );
    eventually!(
        Duration::from_secs(20),
        "a node_dead alert for the killed node",
        {
            let open = s.open_alerts("dead").await;
            open.iter().any(|(scope, _)| *scope == holder).then_some(())
        }
    );
}

#[tokio::test]
async fn a_bad_rule_inserted_by_hand_is_reported_and_the_rest_keep_working() {
    let mut s = setup("badrule").await;
    s.dead_node("gone-bad").await;
    s.meta
        .query_drop(
            "INSERT INTO alarm_rule (name, kind, threshold, cron, recipients) VALUES ('broken', 'lag', 5, 'every minute', 'ops@example.com'); \
             INSERT INTO alarm_rule (name, kind, threshold, cron, recipients) VALUES ('nobody', 'lag', 5, '* * * * * *', 'ops'); \
             CALL add_alarm_rule('fine', 'node_dead', NULL, '0', '* * * * * *', 'ops@example.com', 3600, NULL)",
        )
        .await
        .unwrap();
    let mut node = s.node("n1");
    eventually!(Duration::from_secs(20), "the good rule to work", {
        (!s.open_alerts("fine").await.is_empty()).then_some(())
    });
    let problems: Vec<(String, Option<String>)> = s
        .meta
        .query("SELECT name, problem FROM v_alarm_rule ORDER BY name")
        .await
        .unwrap();
    let problem = |name: &str| problems.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert!(
        problem("broken").unwrap().contains("cron 'every minute'"),
        "{problems:?}"
    );
    assert!(
        problem("nobody")
            .unwrap()
            .contains("'ops' is not an email address"),
        "{problems:?}"
    );
    assert_eq!(problem("fine"), None);
    let logged: u64 = s
        .meta
        .query_first("SELECT COUNT(*) FROM event_log WHERE kind = 'invalid_alarm_rule'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(logged, 2, "each bad row is logged once");
    assert!(
        node.try_exit().is_none(),
        "the node died:\n{}",
        node.log_text()
    );
}

#[tokio::test]
async fn without_write_access_to_ottr_sys_lag_comes_from_event_times_and_does_not_grow() {
    // A reader that may not write ottr_sys on the source: heartbeats fail, the pipeline runs.
    source()
        .run(
            "CREATE USER IF NOT EXISTS 'lag_reader'@'%'; \
             GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'lag_reader'@'%'",
        )
        .await;
    let mut s = setup("nobeat").await;
    s.channel_as(
        "nobeat",
        shared(ServerKind::Target),
        "mon_nobeat",
        true,
        "lag_reader",
        "",
    )
    .await;
    let _node = s.node("n1");
    eventually!(
        Duration::from_secs(30),
        "the heartbeat failure to be logged",
        {
            let message: Option<String> = s
                .meta
                .query_first("SELECT message FROM event_log WHERE kind = 'heartbeat_failed'")
                .await
                .unwrap();
            message
        }
    );
    let (observed, _, _) = s.observed().await;
    assert_eq!(observed, "running");
    source()
        .run("INSERT INTO mon_nobeat.t VALUES (1, 'a')")
        .await;
    let (method, last): (String, i64) =
        eventually!(Duration::from_secs(20), "an event-time lag reading", {
            let reading: Option<(String, i64)> = s
                .meta
                .query_first("SELECT method, lag_ms FROM pipeline_lag")
                .await
                .unwrap();
            reading
        });
    assert_eq!(method, "event_time");
    // An idle source without heartbeats: the reading stays as it was while the pipeline runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, _, lag) = s.observed().await;
    assert_eq!(
        lag,
        Some(last),
        "lag must not grow on an idle source without heartbeats"
    );
    // Heartbeats turned off by the operator: the same, without failures.
    s.meta
        .query_drop("CALL set_pipeline_option('nobeat', 'heartbeat_ms', '0')")
        .await
        .unwrap();
    source()
        .run("INSERT INTO mon_nobeat.t VALUES (2, 'b')")
        .await;
    eventually!(Duration::from_secs(20), "the second row", {
        let mut conn = shared(ServerKind::Target).conn().await;
        let rows: Option<u64> = conn
            .query_first("SELECT COUNT(*) FROM mon_nobeat.t")
            .await
            .unwrap();
        rows.filter(|rows| *rows == 2)
    });
    let failures: u64 = s
        .meta
        .query_first("SELECT COUNT(*) FROM event_log WHERE kind = 'heartbeat_failed'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failures, 1,
        "logged once, and not again with heartbeats off"
    );
}

#[tokio::test]
async fn a_failed_send_is_recorded_on_the_alert_and_retried() {
    let mut s = setup("mailfail").await;
    // Nothing listens on this port: every send fails.
    let dead_port = common::free_port();
    s.meta
        .exec_drop(
            "CALL set_smtp('127.0.0.1', ?, 'none', NULL, NULL, 'ottr@example.com')",
            (dead_port,),
        )
        .await
        .unwrap();
    s.dead_node("gone-mailfail").await;
    s.meta
        .query_drop("CALL add_alarm_rule('dead', 'node_dead', NULL, '0', '* * * * * *', 'ops@example.com', 3600, NULL)")
        .await
        .unwrap();
    let _node = s.node("n1");
    let error = eventually!(Duration::from_secs(20), "the failed send on the alert", {
        let error: Option<Option<String>> = s
            .meta
            .query_first("SELECT mail_error FROM v_alert WHERE scope = 'gone-mailfail'")
            .await
            .unwrap();
        error.flatten()
    });
    assert!(error.contains("SMTP send failed"), "{error}");
    let (state, attempts): (String, u32) = s
        .meta
        .query_first("SELECT state, attempts FROM alert_mail")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    // The mail server is fixed: the retry goes out, and the alert's error is cleared.
    s.meta
        .exec_drop(
            "CALL set_smtp('127.0.0.1', ?, 'none', NULL, NULL, 'ottr@example.com')",
            (smtp().port,),
        )
        .await
        .unwrap();
    eventually!(Duration::from_secs(30), "the retried mail", {
        (!smtp()
            .with_subject("[ottr] RAISED node_dead gone-mailfail")
            .is_empty())
        .then_some(())
    });
    eventually!(
        Duration::from_secs(10),
        "the alert's mail error to clear",
        {
            let row: Option<(Option<String>, u64)> = s
                .meta
                .query_first(
                    "SELECT mail_error, mails_sent FROM v_alert WHERE scope = 'gone-mailfail'",
                )
                .await
                .unwrap();
            row.filter(|(error, sent)| error.is_none() && *sent == 1)
        }
    );
    let logged: u64 = s
        .meta
        .query_first("SELECT COUNT(*) FROM event_log WHERE kind = 'mail_failed'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(logged, 1);
}

/// Mail over STARTTLS (required, never opportunistic) with the server's certificate checked
/// against the CA `set_smtp_tls` names: a CA that did not sign it refuses the send, named on
/// the alert; the right one lets the retry through.
#[tokio::test]
async fn mail_goes_over_starttls_checked_against_the_configured_ca() {
    let dir = common::temp_dir("smtp_tls");
    let ca = common::tls::TestCa::new(&dir.join("ca"), "ca");
    let wrong = common::tls::TestCa::new(&dir.join("wrong"), "wrong");
    let certificate = ca.issue("mail", &["localhost"], false);
    let sink = common::SmtpSink::start_tls(&certificate.cert, &certificate.key);
    let mut s = setup("mailtls").await;
    s.meta
        .exec_drop(
            "CALL set_smtp('localhost', ?, 'starttls', NULL, NULL, 'ottr@example.com'); ",
            (sink.port,),
        )
        .await
        .unwrap();
    s.meta
        .exec_drop(
            "CALL set_smtp_tls(?, NULL, NULL)",
            (wrong.cert.to_str().unwrap(),),
        )
        .await
        .unwrap();
    s.dead_node("gone-mailtls").await;
    s.meta
        .query_drop("CALL add_alarm_rule('dead', 'node_dead', NULL, '0', '* * * * * *', 'ops@example.com', 3600, NULL)")
        .await
        .unwrap();
    let _node = s.node("n1");
    let error = eventually!(
        Duration::from_secs(20),
        "the refused certificate on the alert",
        {
            let error: Option<Option<String>> = s
                .meta
                .query_first("SELECT mail_error FROM v_alert WHERE scope = 'gone-mailtls'")
                .await
                .unwrap();
            error.flatten()
        }
    );
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(sink.messages().is_empty());
    s.meta
        .exec_drop(
            "CALL set_smtp_tls(?, NULL, NULL)",
            (ca.cert.to_str().unwrap(),),
        )
        .await
        .unwrap();
    eventually!(Duration::from_secs(30), "the mail over TLS", {
        (!sink
            .with_subject("[ottr] RAISED node_dead gone-mailtls")
            .is_empty())
        .then_some(())
    });
    sink.stop();
}

#[tokio::test]
async fn status_watch_redraws_until_interrupted() {
    let mut s = setup("watch").await;
    s.dead_node("gone-watch").await;
    s.meta
        .query_drop("CALL add_alarm_rule('dead', 'node_dead', NULL, '0', '* * * * * *', 'ops@example.com', 3600, NULL)")
        .await
        .unwrap();
    let _node = s.node("n1");
    eventually!(Duration::from_secs(20), "an open alert", {
        (!s.open_alerts("dead").await.is_empty()).then_some(())
    });
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ottr"))
        .args(["status", "--meta", &s.url, "--watch", "0.3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.matches("(Ctrl-C to stop)").count() >= 3, "{text}");
    assert!(
        text.contains("Open alerts") && text.contains("gone-watch"),
        "{text}"
    );
    assert!(text.contains("monitor"), "{text}");
}
