//! The benchmark of `scripts/bench.sh`: ottr against MariaDB's own replication, on the same
//! binlog, on the same machine, in the same run.
//!
//! It starts a source, ottr's target, a native replica and a metadata server (binlog ROW /
//! FULL / FULL metadata, `innodb_flush_log_at_trx_commit=2`, `sync_binlog=0`, the same buffer
//! pool on all of them), loads a sysbench-like dataset (8 tables, 100,000 rows each, with a
//! secondary index) on the source, the target and the replica alike, and for each workload
//! variant writes a fixed, seeded workload into the source's binlog with nothing reading it.
//! Then, for each repetition, it restores the target and the replica to the dataset and times:
//!
//! - ottr catching up from the variant's start to its end (CHECKSUM TABLE compared after every
//!   run: a run that does not end identical is a failure, not a figure), with its peak RSS;
//! - the replica's IO thread fetching the workload, then its SQL thread applying it, with
//!   `slave_parallel_threads=0` and with 4 in optimistic mode.
//!
//! It also measures Select alone (decoding to typed rows, no load) and the heartbeat lag at a
//! steady offered rate. Figures are printed as one table and written to
//! `target/bench/results.csv` (`variant,system,rows,seconds,rows_per_s`), medians of the
//! repetitions.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{MariaDb, NodeProcess, ServerKind, conn_to, fresh_meta, temp_dir};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use ottr::model::BinlogFilePos;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Tables and rows of the dataset.
const TABLES: usize = 8;
const TABLE_ROWS: u64 = 100_000;
const SCHEMA: &str = "sbtest";
const BASE: &str = "sbbase";
/// Settings every server gets.
const SERVER_ARGS: [&str; 3] = [
    "--innodb-buffer-pool-size=1G",
    "--innodb-log-file-size=512M",
    "--max-allowed-packet=64M",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Every change its own transaction.
    Autocommit,
    /// 100 changes per transaction.
    Trx100,
    /// Inserts only, autocommit.
    Insert,
    /// The online copy of the dataset into an empty target, against mariadb-dump | mariadb,
    /// then again while the source takes the autocommit workload.
    Copy,
    /// A verification of the dataset, idle and while the source takes the autocommit
    /// workload, against CHECKSUM TABLE on both servers at once and pt-table-checksum.
    Verify,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Autocommit => "autocommit",
            Variant::Trx100 => "trx100",
            Variant::Insert => "insert",
            Variant::Copy => "copy",
            Variant::Verify => "verify",
        }
    }

    fn parse(name: &str) -> Variant {
        match name {
            "autocommit" => Variant::Autocommit,
            "trx100" => Variant::Trx100,
            "insert" => Variant::Insert,
            "copy" => Variant::Copy,
            "verify" => Variant::Verify,
            other => {
                panic!("unknown variant {other}: use autocommit, trx100, insert, copy, verify")
            }
        }
    }
}

struct Args {
    rows: u64,
    variants: Vec<Variant>,
    repetitions: usize,
    lag_seconds: u64,
    rate: u64,
    /// Pipeline options to set (`--parallelism N` is `load_parallelism=N`); the defaults
    /// otherwise.
    options: Vec<(String, String)>,
}

fn args() -> Args {
    let mut args = Args {
        rows: 1_000_000,
        variants: vec![
            Variant::Autocommit,
            Variant::Trx100,
            Variant::Insert,
            Variant::Copy,
            Variant::Verify,
        ],
        repetitions: 3,
        lag_seconds: 60,
        rate: 5_000,
        options: Vec::new(),
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = || {
            given
                .next()
                .unwrap_or_else(|| panic!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--rows" => args.rows = value().parse().expect("--rows N"),
            "--variants" => args.variants = value().split(',').map(Variant::parse).collect(),
            "--repetitions" => args.repetitions = value().parse().expect("--repetitions N"),
            "--lag-seconds" => args.lag_seconds = value().parse().expect("--lag-seconds N"),
            "--rate" => args.rate = value().parse().expect("--rate N"),
            "--parallelism" => args.options.push(("load_parallelism".into(), value())),
            "--option" => {
                let option = value();
                let (name, setting) = option.split_once('=').expect("--option NAME=VALUE");
                args.options.push((name.into(), setting.into()));
            }
            "--bench" => {}
            other => panic!(
                "unknown argument {other}: --rows N --variants a,b --repetitions N --lag-seconds N --rate N --parallelism N --option NAME=VALUE"
            ),
        }
    }
    args
}

/// A small deterministic generator (splitmix64): the same workload for every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Which keys exist in each table, so that every statement changes exactly one row.
struct Keys {
    /// Per table: the existing ids, and where each sits in the list.
    ids: Vec<Vec<u64>>,
    next: Vec<u64>,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            ids: (0..TABLES).map(|_| (1..=TABLE_ROWS).collect()).collect(),
            next: vec![TABLE_ROWS + 1; TABLES],
        }
    }

    /// One statement that changes exactly one row.
    fn statement(&mut self, random: &mut Random, variant: Variant) -> String {
        let table = random.below(TABLES as u64) as usize;
        let name = format!("{SCHEMA}.sbtest{}", table + 1);
        let roll = if variant == Variant::Insert {
            99
        } else {
            random.below(100)
        };
        let ids = &mut self.ids[table];
        match roll {
            0..50 if !ids.is_empty() => {
                let id = ids[random.below(ids.len() as u64) as usize];
                let k = random.below(TABLE_ROWS);
                format!("UPDATE {name} SET k = k + 1, c = LPAD({k}, 120, 'u') WHERE id = {id}")
            }
            50..75 if !ids.is_empty() => {
                let at = random.below(ids.len() as u64) as usize;
                let id = ids.swap_remove(at);
                format!("DELETE FROM {name} WHERE id = {id}")
            }
            _ => {
                let id = self.next[table];
                self.next[table] += 1;
                ids.push(id);
                let k = random.below(TABLE_ROWS);
                format!(
                    "INSERT INTO {name} (id, k, c, pad) VALUES ({id}, {k}, '{:0>120}', '{:0>60}')",
                    random.next(),
                    random.next() % 1_000_000
                )
            }
        }
    }
}

/// The servers of one benchmark run.
struct Servers {
    source: MariaDb,
    target: MariaDb,
    replica: MariaDb,
    meta: MariaDb,
}

impl Servers {
    fn start() -> Servers {
        let with = |extra: &[&str]| {
            let mut args: Vec<&str> = SERVER_ARGS.to_vec();
            args.extend_from_slice(extra);
            MariaDb::start_with(ServerKind::Source, &args)
        };
        Servers {
            source: with(&[]),
            target: with(&["--server-id=2"]),
            replica: with(&[
                "--server-id=3",
                "--log-slave-updates=ON",
                "--relay-log=relay-bin",
                "--skip-slave-start",
            ]),
            meta: with(&["--server-id=4"]),
        }
    }
}

/// Creates the dataset in `schema` on `server`, without writing it to the binlog.
async fn load_dataset(server: &MariaDb, schema: &str) {
    let mut conn = server.conn().await;
    conn.query_drop(format!(
        "SET SESSION sql_log_bin = 0; DROP DATABASE IF EXISTS {schema}; CREATE DATABASE {schema}"
    ))
    .await
    .unwrap();
    for table in 1..=TABLES {
        conn.query_drop(format!(
            "SET SESSION sql_log_bin = 0;
             CREATE TABLE {schema}.sbtest{table} (id INT UNSIGNED NOT NULL, k INT UNSIGNED NOT NULL DEFAULT 0,
               c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '',
               PRIMARY KEY (id), KEY k_{table} (k)) ENGINE=InnoDB;
             INSERT INTO {schema}.sbtest{table} (id, k, c, pad)
               SELECT seq, (seq * 7919 + {table}) % {TABLE_ROWS}, LPAD(seq * 104729, 120, '7'), LPAD(seq, 60, '3')
               FROM {schema}.seq_1_to_{TABLE_ROWS}"
        ))
        .await
        .unwrap();
    }
}

/// Puts `schema` back to the dataset kept in `base`, without writing to the binlog.
async fn restore(server: &MariaDb) {
    let mut conn = server.conn().await;
    for table in 1..=TABLES {
        conn.query_drop(format!(
            "SET SESSION sql_log_bin = 0; SET SESSION foreign_key_checks = 0;
             TRUNCATE TABLE {SCHEMA}.sbtest{table};
             INSERT INTO {SCHEMA}.sbtest{table} SELECT * FROM {BASE}.sbtest{table}"
        ))
        .await
        .unwrap();
    }
}

async fn binlog_end(server: &MariaDb) -> BinlogFilePos {
    let mut conn = server.conn().await;
    common::binlog_end(&mut conn).await
}

/// Writes the variant's workload into the source's binlog; returns where it starts and ends.
async fn generate(source: &MariaDb, variant: Variant, rows: u64) -> (BinlogFilePos, BinlogFilePos) {
    restore(source).await;
    let mut conn = source.conn().await;
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let start = binlog_end(source).await;
    let mut random = Random(0x077e_2026 + variant as u64);
    let mut keys = Keys::new();
    let per_transaction = if variant == Variant::Trx100 { 100 } else { 1 };
    let mut written = 0;
    let mut sql = String::new();
    while written < rows {
        sql.clear();
        // Many statements per round trip; each is its own transaction unless grouped.
        for _ in 0..200 {
            if written >= rows {
                break;
            }
            if per_transaction > 1 && written % per_transaction == 0 {
                sql.push_str("BEGIN;");
            }
            sql.push_str(&keys.statement(&mut random, variant));
            sql.push(';');
            written += 1;
            if per_transaction > 1 && (written % per_transaction == 0 || written == rows) {
                sql.push_str("COMMIT;");
            }
        }
        conn.query_drop(&sql).await.unwrap();
    }
    let end = binlog_end(source).await;
    (start, end)
}

/// CHECKSUM TABLE of every table, on both servers; panics when they differ.
async fn assert_identical(a: &MariaDb, b: &MariaDb, what: &str) {
    let tables: Vec<String> = (1..=TABLES)
        .map(|table| format!("{SCHEMA}.sbtest{table}"))
        .collect();
    let sql = format!("CHECKSUM TABLE {}", tables.join(", "));
    let mut left = a.conn().await;
    let mut right = b.conn().await;
    let sums_a: Vec<(String, Option<u64>)> = left.query(&sql).await.unwrap();
    let sums_b: Vec<(String, Option<u64>)> = right.query(&sql).await.unwrap();
    assert_eq!(
        sums_a, sums_b,
        "{what}: source and copy differ after the run"
    );
}

fn ahead_of(position: &(String, u64), end: &BinlogFilePos) -> bool {
    (position.0.as_str(), position.1) >= (end.file.as_str(), end.offset)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
    };
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => 0.0,
    }
}

/// Peak resident memory of a process, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The metadata schema and the channel of the catch-up runs.
async fn configure(servers: &Servers, options: &[(String, String)]) -> (String, Conn) {
    let url = fresh_meta(&servers.meta, "ottr_bench").await;
    let mut meta = conn_to(&servers.meta, "ottr_bench").await;
    meta.query_drop(
        "CALL set_setting('lease_ms', 5000); CALL set_setting('heartbeat_ms', 500);
         CALL set_setting('poll_ms', 200); CALL set_setting('retry_min_ms', 200);
         CALL set_setting('retry_max_ms', 2000);",
    )
    .await
    .unwrap();
    meta.exec_drop(
        "CALL add_data_source('source', 'mariadb', ?, NULL)",
        (servers.source.source_url("root"),),
    )
    .await
    .unwrap();
    meta.exec_drop(
        "CALL add_data_source('target', 'mariadb', ?, NULL)",
        (servers.target.source_url("root"),),
    )
    .await
    .unwrap();
    meta.query_drop(format!(
        "CALL create_channel('bench', 'source', 'target');
         CALL add_table_pair('bench', '{SCHEMA}', 'sbtest[0-9]+', NULL, NULL);"
    ))
    .await
    .unwrap();
    for (name, value) in options {
        meta.exec_drop("CALL set_pipeline_option('bench', ?, ?)", (name, value))
            .await
            .unwrap();
    }
    (url, meta)
}

/// Time per stage and batches, summed over every statistics bucket of the pipeline.
#[derive(Debug, Default)]
struct StageSums {
    select: f64,
    extract: f64,
    transform: f64,
    load: f64,
    batches: u64,
}

impl StageSums {
    fn minus(&self, before: &StageSums) -> StageSums {
        StageSums {
            select: self.select - before.select,
            extract: self.extract - before.extract,
            transform: self.transform - before.transform,
            load: self.load - before.load,
            batches: self.batches - before.batches,
        }
    }
}

async fn stage_sums(meta: &mut Conn) -> StageSums {
    let sums: Option<(f64, f64, f64, f64, u64)> = meta
        .query_first(
            "SELECT COALESCE(SUM(select_us), 0) / 1e6, COALESCE(SUM(extract_us), 0) / 1e6, \
             COALESCE(SUM(transform_us), 0) / 1e6, COALESCE(SUM(load_us), 0) / 1e6, \
             CAST(COALESCE(SUM(batches), 0) AS UNSIGNED) FROM stat_pipeline",
        )
        .await
        .unwrap();
    sums.map_or_else(
        StageSums::default,
        |(select, extract, transform, load, batches)| StageSums {
            select,
            extract,
            transform,
            load,
            batches,
        },
    )
}

/// One ottr catch-up from `start` to `end`: seconds, peak RSS in MB.
async fn ottr_catch_up(
    servers: &Servers,
    url: &str,
    meta: &mut Conn,
    start: &BinlogFilePos,
    end: &BinlogFilePos,
    dir: &std::path::Path,
) -> (f64, f64) {
    restore(&servers.target).await;
    meta.query_drop("CALL stop_channel('bench')").await.unwrap();
    meta.exec_drop(
        "CALL reset_position('bench', ?)",
        (format!("{}:{}", start.file, start.offset),),
    )
    .await
    .unwrap();
    meta.query_drop(
        "CALL set_pipeline_option('bench', 'heartbeat_ms', '0'); CALL start_channel('bench')",
    )
    .await
    .unwrap();
    let stages_before = stage_sums(meta).await;
    let events_before: u64 = meta
        .query_first("SELECT COALESCE(MAX(id), 0) FROM event_log")
        .await
        .unwrap()
        .unwrap_or(0);
    let node = NodeProcess::spawn(url, "bench-node", dir, &[("OTTR_LOG", "warn")]);
    let cpu_before = (
        cpu_seconds(servers.source.pid()),
        cpu_seconds(servers.target.pid()),
    );
    // Timed from the moment the pipeline streams.
    let began = loop {
        let observed: Option<(String, Option<String>)> = meta
            .query_first("SELECT observed, reason FROM v_pipeline_status")
            .await
            .unwrap();
        match observed {
            Some((state, _)) if state == "running" => break Instant::now(),
            Some((state, reason)) if state == "error" => panic!("the pipeline failed: {reason:?}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    // OTTR_PERF=FILE: a system-wide profile of the catch-up (each run overwrites it).
    let perf = std::env::var("OTTR_PERF").ok().map(|out| {
        std::process::Command::new("perf")
            .args(["record", "-F", "499", "-g", "-a", "-o", &out])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start perf (OTTR_PERF is set)")
    });
    loop {
        let position: Option<(String, u64)> = meta
            .query_first("SELECT binlog_file, binlog_offset FROM pipeline_position")
            .await
            .unwrap();
        if position.is_some_and(|position| ahead_of(&position, end)) {
            break;
        }
        let observed: Option<(String, Option<String>)> = meta
            .query_first("SELECT observed, reason FROM v_pipeline_status")
            .await
            .unwrap();
        if let Some((state, reason)) = observed
            && state == "error"
        {
            panic!("the pipeline failed: {reason:?}\n{}", node.log_text());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = began.elapsed().as_secs_f64();
    if let Some(mut perf) = perf {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &perf.id().to_string()])
            .status();
        let _ = perf.wait();
    }
    let rss = peak_rss_mb(node.pid());
    eprintln!(
        "  CPU seconds during the catch-up: node {:.1}, target mariadbd {:.1}, source mariadbd {:.1}",
        cpu_seconds(node.pid()),
        cpu_seconds(servers.target.pid()) - cpu_before.1,
        cpu_seconds(servers.source.pid()) - cpu_before.0
    );
    meta.query_drop("CALL stop_channel('bench')").await.unwrap();
    let mut node = node;
    // A node that stops writes its last counts: the statistics are then whole.
    node.terminate();
    let stages = stage_sums(meta).await.minus(&stages_before);
    // A catch-up that had to restart is still timed, but says so.
    let errors: Vec<String> = meta
        .exec(
            "SELECT message FROM event_log WHERE id > ? AND level = 'error' ORDER BY id",
            (events_before,),
        )
        .await
        .unwrap();
    if let Some(first) = errors.first() {
        eprintln!(
            "  WARNING: {} pipeline errors during the catch-up; the first: {first}",
            errors.len()
        );
    }
    eprintln!(
        "  ottr stages: select {:.2} s, extract {:.2} s, transform {:.2} s, load {:.2} s, {} batches",
        stages.select, stages.extract, stages.transform, stages.load, stages.batches
    );
    assert_identical(&servers.source, &servers.target, "ottr").await;
    (seconds, rss)
}

async fn slave_status(replica: &mut Conn) -> mysql_async::Row {
    replica
        .query_first("SHOW SLAVE STATUS")
        .await
        .unwrap()
        .expect("a replica is configured")
}

/// MariaDB's replication of `start`..`end`: the IO thread's fetch time, then the SQL thread's
/// apply time with `threads` parallel threads (0 = single-threaded).
async fn native(
    servers: &Servers,
    start: &BinlogFilePos,
    end: &BinlogFilePos,
    threads: u32,
) -> (f64, f64) {
    restore(&servers.replica).await;
    let mut replica = servers.replica.conn().await;
    replica
        .query_drop("STOP SLAVE; RESET SLAVE ALL")
        .await
        .unwrap();
    replica
        .query_drop(format!(
            "SET GLOBAL slave_parallel_threads = {threads}; SET GLOBAL slave_parallel_mode = 'optimistic';
             CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root',
               MASTER_LOG_FILE = '{}', MASTER_LOG_POS = {}, MASTER_USE_GTID = no",
            servers.source.port, start.file, start.offset
        ))
        .await
        .unwrap();
    let fetching = Instant::now();
    replica.query_drop("START SLAVE IO_THREAD").await.unwrap();
    loop {
        let status = slave_status(&mut replica).await;
        let read: (String, u64) = (
            status.get("Master_Log_File").unwrap(),
            status.get("Read_Master_Log_Pos").unwrap(),
        );
        if ahead_of(&read, end) {
            break;
        }
        let error: String = status.get("Last_IO_Error").unwrap_or_default();
        assert!(error.is_empty(), "replica IO thread: {error}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fetch = fetching.elapsed().as_secs_f64();
    let applying = Instant::now();
    let cpu_before = cpu_seconds(servers.replica.pid());
    replica.query_drop("START SLAVE SQL_THREAD").await.unwrap();
    loop {
        let status = slave_status(&mut replica).await;
        let done: (String, u64) = (
            status.get("Relay_Master_Log_File").unwrap(),
            status.get("Exec_Master_Log_Pos").unwrap(),
        );
        if ahead_of(&done, end) {
            break;
        }
        let error: String = status.get("Last_SQL_Error").unwrap_or_default();
        assert!(error.is_empty(), "replica SQL thread: {error}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let apply = applying.elapsed().as_secs_f64();
    eprintln!(
        "  CPU seconds of the replica's mariadbd while applying with {threads} threads: {:.1}",
        cpu_seconds(servers.replica.pid()) - cpu_before
    );
    replica.query_drop("STOP SLAVE").await.unwrap();
    assert_identical(&servers.source, &servers.replica, "native replication").await;
    (fetch, apply)
}

/// Select alone: decoding `start`..`end` into typed row changes. Row changes per second.
async fn select_alone(source: &MariaDb, start: &BinlogFilePos, rows: u64) -> f64 {
    use ottr::pipeline::select::{ByteBudget, Selector};
    let mut options = common::select_options(3_999_001, true, 5000, 16 << 20);
    options.batch_timeout = Duration::from_secs(1);
    let position = ottr::model::Position {
        file: Some(start.clone()),
        gtid: None,
        trx_rows_done: 0,
    };
    let mut selector = Selector::new(
        source.data_source(),
        options,
        position,
        std::sync::Arc::new(ByteBudget::default()),
    );
    let started = Instant::now();
    let mut changes = 0u64;
    while let Some(mut batch) = selector.next_batch().await.unwrap() {
        changes += batch.take_changes().len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        changes >= rows,
        "Select decoded {changes} changes of {rows}"
    );
    rows as f64 / seconds
}

/// Lag at a steady offered rate: heartbeat lag p50/p99 (ms) and the rate achieved.
async fn steady_lag(
    servers: &Servers,
    url: &str,
    meta: &mut Conn,
    seconds: u64,
    rate: u64,
    dir: &std::path::Path,
) -> (f64, f64, f64) {
    restore(&servers.target).await;
    restore(&servers.source).await;
    meta.query_drop("CALL stop_channel('bench')").await.unwrap();
    meta.query_drop(
        "CALL reset_position('bench', 'end'); CALL set_pipeline_option('bench', 'heartbeat_ms', '200');
         CALL set_pipeline_option('bench', 'batch_timeout_ms', '50'); CALL start_channel('bench')",
    )
    .await
    .unwrap();
    let _node = NodeProcess::spawn(url, "lag-node", dir, &[("OTTR_LOG", "warn")]);
    loop {
        let lag: Option<Option<i64>> = meta
            .query_first("SELECT lag_ms FROM v_pipeline_status")
            .await
            .unwrap();
        if lag.flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let from: i64 = meta
        .query_first("SELECT UNIX_TIMESTAMP()")
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let writers: Vec<_> = (0..2u64)
        .map(|thread| {
            let port = servers.source.port;
            tokio::spawn(async move {
                let url = format!("mysql://root@127.0.0.1:{port}?prefer_socket=false");
                let mut conn = Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                    .await
                    .unwrap();
                let mut random = Random(0xbeef + thread);
                let per_thread = rate / 2;
                let mut done = 0u64;
                let began = Instant::now();
                while began.elapsed() < Duration::from_secs(seconds) {
                    // Paced: every 10 ms, the changes due by then, as autocommit updates.
                    let due = (began.elapsed().as_secs_f64() * per_thread as f64) as u64;
                    let mut sql = String::new();
                    while done < due {
                        let table = random.below(TABLES as u64) + 1;
                        let id = random.below(TABLE_ROWS) + 1;
                        let _ = write!(
                            sql,
                            "UPDATE {SCHEMA}.sbtest{table} SET k = k + 1 WHERE id = {id};"
                        );
                        done += 1;
                    }
                    if !sql.is_empty() {
                        conn.query_drop(&sql).await.unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                done
            })
        })
        .collect();
    let mut offered = 0;
    for writer in writers {
        offered += writer.await.unwrap();
    }
    let achieved = offered as f64 / started.elapsed().as_secs_f64();
    // Let the last heartbeats land, then read the histogram of the run's buckets.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sql = format!(
        "SELECT MIN(CASE WHEN below >= 0.50 * total THEN le_ms END), MIN(CASE WHEN below >= 0.99 * total THEN le_ms END)
           FROM (SELECT le_ms, SUM(samples) OVER (ORDER BY le_ms) AS below, SUM(samples) OVER () AS total
                   FROM (SELECT le_ms, SUM(samples) AS samples FROM stat_lag
                          WHERE bucket_start >= FROM_UNIXTIME({from}) GROUP BY le_ms) h) c"
    );
    let (p50, p99): (Option<u64>, Option<u64>) = meta.query_first(sql).await.unwrap().unwrap();
    (p50.unwrap_or(0) as f64, p99.unwrap_or(0) as f64, achieved)
}

/// The dataset's tables dropped from the target (without the binlog).
async fn empty_target(target: &MariaDb) {
    target
        .conn()
        .await
        .query_drop(format!(
            "SET SESSION sql_log_bin = 0; DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA}"
        ))
        .await
        .unwrap();
}

/// `mariadb-dump --single-transaction | mariadb` of the dataset into an empty target: seconds.
fn dump_and_load(servers: &Servers) -> f64 {
    let started = Instant::now();
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; mariadb-dump -h127.0.0.1 -P{} -uroot --single-transaction {SCHEMA} | mariadb -h127.0.0.1 -P{} -uroot {SCHEMA}",
            servers.source.port, servers.target.port
        ))
        .status()
        .expect("run mariadb-dump | mariadb");
    assert!(status.success(), "mariadb-dump | mariadb failed: {status}");
    started.elapsed().as_secs_f64()
}

/// Waits until every table is the same on both servers (CHECKSUM TABLE), at most `limit`.
async fn converge(a: &MariaDb, b: &MariaDb, limit: Duration, what: &str) {
    let tables: Vec<String> = (1..=TABLES)
        .map(|table| format!("{SCHEMA}.sbtest{table}"))
        .collect();
    let sql = format!("CHECKSUM TABLE {}", tables.join(", "));
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<(String, Option<u64>)> = a.conn().await.query(&sql).await.unwrap();
        let right: Vec<(String, Option<u64>)> = b.conn().await.query(&sql).await.unwrap();
        if left == right {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the target differs from the source\n{left:?}\n{right:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// ottr's online copy of the dataset into an empty target, timed from `copy_tables` to every
/// table done; with `load`, the source takes the autocommit workload meanwhile. The target
/// must then end identical. Returns seconds, the node's peak RSS (MB) and the writes taken.
async fn ottr_copy(
    servers: &Servers,
    url: &str,
    meta: &mut Conn,
    dir: &std::path::Path,
    load: bool,
) -> (f64, f64, u64) {
    restore(&servers.source).await;
    empty_target(&servers.target).await;
    let end = binlog_end(&servers.source).await;
    meta.query_drop("CALL stop_channel('bench'); DELETE FROM copy_job")
        .await
        .unwrap();
    meta.exec_drop(
        "CALL reset_position('bench', ?)",
        (format!("{}:{}", end.file, end.offset),),
    )
    .await
    .unwrap();
    meta.query_drop(
        "CALL set_pipeline_option('bench', 'heartbeat_ms', '1000'); CALL start_channel('bench')",
    )
    .await
    .unwrap();
    let mut node = NodeProcess::spawn(url, "bench-copy", dir, &[("OTTR_LOG", "warn")]);
    loop {
        let listed: Option<u64> = meta
            .query_first("SELECT COUNT(*) FROM source_table")
            .await
            .unwrap();
        if listed == Some(TABLES as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let job: u64 = meta
        .exec_first(
            "CALL copy_tables('bench', ?, 'sbtest[0-9]+', NULL)",
            (SCHEMA,),
        )
        .await
        .unwrap()
        .unwrap();
    // The copy creates the target tables first; the writes start once they exist, as they
    // would on a channel whose copy was queued before it started (initial_copy).
    loop {
        let created: Option<u64> = servers
            .target
            .conn()
            .await
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                (SCHEMA,),
            )
            .await
            .unwrap();
        if created == Some(TABLES as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = load.then(|| spawn_load(&servers.source, 0x0c09_2026, stop.clone()));
    loop {
        let states: Vec<(String, Option<String>)> = meta
            .exec("SELECT state, last_error FROM v_copy WHERE job = ?", (job,))
            .await
            .unwrap();
        if let Some(failed) = states.iter().find(|(state, _)| state == "failed") {
            panic!("the copy failed: {failed:?}\n{}", node.log_text());
        }
        if states.len() == TABLES && states.iter().all(|(state, _)| state == "done") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss = peak_rss_mb(node.pid());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = match writer {
        Some(writer) => writer.await.unwrap(),
        None => 0,
    };
    converge(
        &servers.source,
        &servers.target,
        Duration::from_secs(120),
        "ottr copy",
    )
    .await;
    meta.query_drop("CALL stop_channel('bench')").await.unwrap();
    node.terminate();
    (seconds, rss, written)
}

/// The copy variant: dump-and-load, ottr's copy, ottr's copy under load; medians.
async fn copy_figures(
    servers: &Servers,
    url: &str,
    meta: &mut Conn,
    dir: &std::path::Path,
    repetitions: usize,
    figures: &mut Vec<Figure>,
) {
    let rows = TABLES as u64 * TABLE_ROWS;
    let (mut dump, mut copy, mut loaded, mut rss) = (vec![], vec![], vec![], 0f64);
    for repetition in 1..=repetitions {
        restore(&servers.source).await;
        empty_target(&servers.target).await;
        let dumped = dump_and_load(servers);
        let (copied, copy_rss, _) = ottr_copy(servers, url, meta, dir, false).await;
        let (under_load, load_rss, written) = ottr_copy(servers, url, meta, dir, true).await;
        rss = rss.max(copy_rss).max(load_rss);
        eprintln!(
            "copy run {repetition}: mariadb-dump | mariadb {dumped:.1} s, ottr copy {copied:.1} s (peak RSS {copy_rss:.0} MB), ottr copy under load {under_load:.1} s ({written} source writes meanwhile, peak RSS {load_rss:.0} MB), target identical"
        );
        dump.push(dumped);
        copy.push(copied);
        loaded.push(under_load);
    }
    for (system, values) in [
        ("dump_load", &mut dump),
        ("ottr_copy", &mut copy),
        ("ottr_copy_load", &mut loaded),
    ] {
        let seconds = median(values);
        figures.push(Figure {
            variant: "copy".into(),
            system,
            rows,
            seconds,
            rows_per_s: rows as f64 / seconds,
        });
    }
    figures.push(Figure {
        variant: "copy".into(),
        system: "ottr_copy_rss_mb",
        rows,
        seconds: 0.0,
        rows_per_s: rss,
    });
    // the dataset back on the target for the catch-up variants
    restore(&servers.source).await;
    restore(&servers.target).await;
}

/// Writes the autocommit workload to the source, 50 statements a round, until `stop`;
/// returns the statements written.
fn spawn_load(
    source: &MariaDb,
    seed: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let port = source.port;
    tokio::spawn(async move {
        let url = format!("mysql://root@127.0.0.1:{port}");
        let mut conn = Conn::new(mysql_async::Opts::from_url(&url).unwrap())
            .await
            .unwrap();
        let (mut random, mut keys, mut written) = (Random(seed), Keys::new(), 0u64);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let mut sql = String::new();
            for _ in 0..50 {
                sql.push_str(&keys.statement(&mut random, Variant::Autocommit));
                sql.push(';');
            }
            conn.query_drop(&sql).await.unwrap();
            written += 50;
        }
        written
    })
}

/// CHECKSUM TABLE of the dataset on both servers at once: seconds until both are done.
async fn checksum_both(servers: &Servers) -> f64 {
    let tables: Vec<String> = (1..=TABLES)
        .map(|table| format!("{SCHEMA}.sbtest{table}"))
        .collect();
    let sql = format!("CHECKSUM TABLE {}", tables.join(", "));
    let started = Instant::now();
    let (mut a, mut b) = (servers.source.conn().await, servers.target.conn().await);
    let (left, right) = tokio::join!(
        a.query::<(String, Option<u64>), _>(&sql),
        b.query::<(String, Option<u64>), _>(&sql)
    );
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        left.unwrap(),
        right.unwrap(),
        "the dataset is the same on both"
    );
    seconds
}

/// pt-table-checksum's chunk checksums of the dataset on both servers at once (each as its
/// own master, no replicas): seconds, or None when it is not installed.
fn pt_table_checksum(servers: &Servers) -> Option<f64> {
    let found = std::process::Command::new("pt-table-checksum")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        eprintln!("pt-table-checksum not found (Debian: percona-toolkit): no second reference");
        return None;
    }
    let started = Instant::now();
    let runs: Vec<std::process::Child> = [servers.source.port, servers.target.port]
        .iter()
        .map(|port| {
            std::process::Command::new("pt-table-checksum")
                .args([
                    &format!("h=127.0.0.1,P={port},u=root"),
                    "--databases",
                    SCHEMA,
                    "--recursion-method=none",
                    "--no-check-binlog-format",
                    "--no-check-replication-filters",
                    "--no-version-check",
                    "--chunk-time=0.5",
                    // its statement-format writes to percona.checksums stay out of the binlog
                    // (ottr refuses statement-format DML, and nothing replicates from here)
                    "--set-vars=sql_log_bin=0",
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("run pt-table-checksum")
        })
        .collect();
    for run in runs {
        let status = run
            .wait_with_output()
            .expect("pt-table-checksum ends")
            .status;
        // its exit status is a bit mask of warnings; 255 is a failure
        assert!(
            status.code() != Some(255),
            "pt-table-checksum failed: {status}"
        );
    }
    Some(started.elapsed().as_secs_f64())
}

/// ottr's verification of the dataset, timed from `verify` to every table done; with
/// `load`, the source takes the autocommit workload meanwhile. Returns seconds, rows
/// compared, keys differing, keys unverified and the writes taken.
async fn ottr_verify(servers: &Servers, meta: &mut Conn, load: bool) -> (f64, u64, u64, u64, u64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = load.then(|| spawn_load(&servers.source, 0x0e1f_2026, stop.clone()));
    if load {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let started = Instant::now();
    let job: u64 = meta
        .exec_first("CALL verify('bench', ?, NULL)", (SCHEMA,))
        .await
        .unwrap()
        .unwrap();
    let totals = loop {
        let states: Vec<(String, Option<String>, u64, u64, u64)> = meta
            .exec(
                "SELECT state, last_error, rows_compared, rows_differing, rows_unverified FROM v_verify WHERE job = ?",
                (job,),
            )
            .await
            .unwrap();
        if let Some(failed) = states.iter().find(|row| row.0 == "failed") {
            panic!("the verification failed: {failed:?}");
        }
        if states.len() == TABLES && states.iter().all(|row| row.0 == "done") {
            break states.iter().fold((0, 0, 0), |sum, row| {
                (sum.0 + row.2, sum.1 + row.3, sum.2 + row.4)
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = match writer {
        Some(writer) => writer.await.unwrap(),
        None => 0,
    };
    (seconds, totals.0, totals.1, totals.2, written)
}

/// The verify variant: CHECKSUM TABLE on both servers, pt-table-checksum on both, ottr's
/// verification idle and under the autocommit workload; medians. A verification that
/// reports a difference fails the benchmark: there is none.
async fn verify_figures(
    servers: &Servers,
    url: &str,
    meta: &mut Conn,
    dir: &std::path::Path,
    repetitions: usize,
    figures: &mut Vec<Figure>,
) {
    let rows = TABLES as u64 * TABLE_ROWS;
    restore(&servers.source).await;
    restore(&servers.target).await;
    let end = binlog_end(&servers.source).await;
    meta.query_drop("CALL stop_channel('bench')").await.unwrap();
    meta.exec_drop(
        "CALL reset_position('bench', ?)",
        (format!("{}:{}", end.file, end.offset),),
    )
    .await
    .unwrap();
    meta.query_drop(
        "CALL set_pipeline_option('bench', 'heartbeat_ms', '1000'); CALL start_channel('bench')",
    )
    .await
    .unwrap();
    let mut node = NodeProcess::spawn(url, "bench-verify", dir, &[("OTTR_LOG", "warn")]);
    loop {
        let listed: Option<u64> = meta
            .query_first("SELECT COUNT(*) FROM source_table")
            .await
            .unwrap();
        if listed == Some(TABLES as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut checksum, mut pt, mut idle, mut loaded) = (vec![], vec![], vec![], vec![]);
    for repetition in 1..=repetitions {
        if repetition > 1 {
            // the dataset again on both (off the binlog): the workload's inserts start over
            restore(&servers.source).await;
            restore(&servers.target).await;
        }
        let summed = checksum_both(servers).await;
        let percona = pt_table_checksum(servers);
        let (seconds, compared, differing, unverified, _) = ottr_verify(servers, meta, false).await;
        assert_eq!(differing, 0, "no false difference when idle");
        let (under_load, compared_load, differing_load, unverified_load, written) =
            ottr_verify(servers, meta, true).await;
        assert_eq!(differing_load, 0, "no false difference under load");
        eprintln!(
            "verify run {repetition}: CHECKSUM TABLE on both {summed:.2} s, pt-table-checksum on both {}, ottr verify {seconds:.2} s ({compared} rows, {unverified} unverified), under load {under_load:.2} s ({compared_load} rows, {unverified_load} unverified, {written} source writes meanwhile), 0 differences",
            percona.map_or("n/a".to_owned(), |s| format!("{s:.2} s"))
        );
        checksum.push(summed);
        pt.extend(percona);
        idle.push(seconds);
        loaded.push(under_load);
        converge(
            &servers.source,
            &servers.target,
            Duration::from_secs(120),
            "after the verification under load",
        )
        .await;
    }
    for (system, values) in [
        ("checksum_table", &mut checksum),
        ("pt_checksum", &mut pt),
        ("ottr_verify", &mut idle),
        ("ottr_verify_load", &mut loaded),
    ] {
        if values.is_empty() {
            continue;
        }
        let seconds = median(values);
        figures.push(Figure {
            variant: "verify".into(),
            system,
            rows,
            seconds,
            rows_per_s: rows as f64 / seconds,
        });
    }
    meta.query_drop("CALL stop_channel('bench')").await.unwrap();
    node.terminate();
    // the catch-up variants start from the dataset on both
    restore(&servers.source).await;
    restore(&servers.target).await;
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

struct Figure {
    variant: String,
    system: &'static str,
    rows: u64,
    seconds: f64,
    rows_per_s: f64,
}

#[tokio::main]
async fn main() {
    let args = args();
    eprintln!("starting source, target, replica and metadata servers");
    let servers = Servers::start();
    eprintln!(
        "loading {TABLES} tables of {TABLE_ROWS} rows on the source, the target and the replica"
    );
    for server in [&servers.source, &servers.target, &servers.replica] {
        load_dataset(server, BASE).await;
        load_dataset(server, SCHEMA).await;
    }
    let dir = temp_dir("bench");
    let (url, mut meta) = configure(&servers, &args.options).await;
    let mut figures: Vec<Figure> = Vec::new();
    let mut peak_rss: f64 = 0.0;
    // One variant at a time: its workload is the end of the source's binlog while it is
    // replayed, so that every copy can be compared with the source as it is.
    for variant in &args.variants {
        if *variant == Variant::Verify {
            verify_figures(
                &servers,
                &url,
                &mut meta,
                &dir,
                args.repetitions,
                &mut figures,
            )
            .await;
            continue;
        }
        if *variant == Variant::Copy {
            copy_figures(
                &servers,
                &url,
                &mut meta,
                &dir,
                args.repetitions,
                &mut figures,
            )
            .await;
            continue;
        }
        let generating = Instant::now();
        let (start, end) = generate(&servers.source, *variant, args.rows).await;
        eprintln!(
            "{}: {} row changes written to the source's binlog in {:.1} s ({start} .. {end})",
            variant.name(),
            args.rows,
            generating.elapsed().as_secs_f64(),
        );
        let (mut ottr, mut single, mut parallel, mut fetch) = (vec![], vec![], vec![], vec![]);
        for repetition in 1..=args.repetitions {
            let (seconds, rss) = ottr_catch_up(&servers, &url, &mut meta, &start, &end, &dir).await;
            peak_rss = peak_rss.max(rss);
            let (fetched, st) = native(&servers, &start, &end, 0).await;
            let (_, p4) = native(&servers, &start, &end, 4).await;
            eprintln!(
                "{} run {repetition}: ottr {seconds:.1} s (peak RSS {rss:.0} MB), native single-threaded {st:.1} s, 4 optimistic {p4:.1} s, IO fetch {fetched:.1} s",
                variant.name()
            );
            ottr.push(seconds);
            single.push(st);
            parallel.push(p4);
            fetch.push(fetched);
        }
        for (system, values) in [
            ("ottr", &mut ottr),
            ("native_st", &mut single),
            ("native_p4", &mut parallel),
            ("native_fetch", &mut fetch),
        ] {
            let seconds = median(values);
            figures.push(Figure {
                variant: variant.name().to_owned(),
                system,
                rows: args.rows,
                seconds,
                rows_per_s: args.rows as f64 / seconds,
            });
        }
        if *variant == Variant::Autocommit {
            let mut rates: Vec<f64> = Vec::new();
            for _ in 0..args.repetitions {
                rates.push(select_alone(&servers.source, &start, args.rows).await);
            }
            let rate = median(&mut rates);
            eprintln!("autocommit: Select alone decodes {rate:.0} row changes/s");
            figures.push(Figure {
                variant: "autocommit".into(),
                system: "ottr_select",
                rows: args.rows,
                seconds: args.rows as f64 / rate,
                rows_per_s: rate,
            });
        }
    }
    figures.push(Figure {
        variant: "all".into(),
        system: "ottr_rss_mb",
        rows: args.rows,
        seconds: 0.0,
        rows_per_s: peak_rss,
    });
    if args.lag_seconds > 0 {
        let (p50, p99, achieved) =
            steady_lag(&servers, &url, &mut meta, args.lag_seconds, args.rate, &dir).await;
        let void = achieved < args.rate as f64 * 0.95;
        eprintln!(
            "lag at {} changes/s offered for {} s: achieved {achieved:.0}/s, p50 {p50} ms, p99 {p99} ms{}",
            args.rate,
            args.lag_seconds,
            if void {
                " (VOID: below 95 % of the offered rate)"
            } else {
                ""
            }
        );
        let rows = (achieved * args.lag_seconds as f64) as u64;
        for (system, value) in [("ottr_lag_p50_ms", p50), ("ottr_lag_p99_ms", p99)] {
            figures.push(Figure {
                variant: if void {
                    "steady_void".into()
                } else {
                    "steady".into()
                },
                system,
                rows,
                seconds: args.lag_seconds as f64,
                rows_per_s: value,
            });
        }
    }
    print_and_save(&figures);
}

fn print_and_save(figures: &[Figure]) {
    let mut csv = String::from("variant,system,rows,seconds,rows_per_s\n");
    let mut table =
        String::from("variant      system            rows      seconds   rows_per_s (or figure)\n");
    for figure in figures {
        let _ = writeln!(
            csv,
            "{},{},{},{:.3},{:.1}",
            figure.variant, figure.system, figure.rows, figure.seconds, figure.rows_per_s
        );
        let _ = writeln!(
            table,
            "{:<12} {:<16} {:>9} {:>10.2} {:>12.1}",
            figure.variant, figure.system, figure.rows, figure.seconds, figure.rows_per_s
        );
    }
    // ottr against the native single-threaded apply, per variant.
    let by = |variant: &str, system: &str| {
        figures
            .iter()
            .find(|figure| figure.variant == variant && figure.system == system)
            .map(|figure| figure.rows_per_s)
    };
    for (system, reference) in [("ottr_copy", "dump_load"), ("ottr_copy_load", "dump_load")] {
        if let (Some(ottr), Some(dump)) = (by("copy", system), by("copy", reference)) {
            let _ = writeln!(
                table,
                "copy: {system} / mariadb-dump | mariadb = {:.2}x",
                ottr / dump
            );
        }
    }
    for system in ["ottr_verify", "ottr_verify_load"] {
        for reference in ["checksum_table", "pt_checksum"] {
            if let (Some(ottr), Some(base)) = (by("verify", system), by("verify", reference)) {
                let _ = writeln!(
                    table,
                    "verify: {system} / {reference} = {:.2}x",
                    ottr / base
                );
            }
        }
    }
    for variant in ["autocommit", "trx100", "insert"] {
        if let (Some(ottr), Some(native)) = (by(variant, "ottr"), by(variant, "native_st")) {
            let _ = writeln!(
                table,
                "{variant}: ottr / native single-threaded = {:.2}x",
                ottr / native
            );
        }
    }
    if let (Some(select), Some(fetch)) = (
        by("autocommit", "ottr_select"),
        by("autocommit", "native_fetch"),
    ) {
        let _ = writeln!(
            table,
            "autocommit: Select alone / native IO fetch = {:.2}x",
            select / fetch
        );
    }
    print!("{table}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("results.csv"), csv).unwrap();
    println!("written to {}", path.join("results.csv").display());
}
