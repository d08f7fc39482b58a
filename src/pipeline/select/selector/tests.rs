//! Unit tests of `selector`.

use super::*;
use crate::config::{DataSourceKind, Secret};
use crate::model::{ChangeKind, ColumnMeta, DataSourceId, MariaGtid, TableId, TableMeta, Value};
use crate::model::{RowChange, Statement};
use crate::pipeline::select::batch::BatchData;

fn selector(batch_rows: usize) -> Selector {
    let source = DataSource {
        id: DataSourceId(1),
        name: "sh".into(),
        kind: DataSourceKind::MySql,
        host: "127.0.0.1".into(),
        port: 3306,
        user: "u".into(),
        password: Secret::None,
        tls: crate::config::Tls::default(),
    };
    let options = SelectOptions {
        reader: ReaderOptions {
            server_id: 1,
            heartbeat: Duration::from_secs(1),
            stop_at_end: true,
        },
        batch_rows,
        batch_bytes: 1 << 20,
        echo_keys: HashSet::new(),
        batch_timeout: Duration::from_secs(60),
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(10),
        split_transactions: true,
        cut_when_idle: None,
    };
    let start = Position {
        file: Some(BinlogFilePos {
            file: "binlog.000001".into(),
            offset: 4,
        }),
        gtid: None,
        trx_rows_done: 0,
    };
    Selector::new(source, options, start, Arc::new(ByteBudget::default()))
}

fn at(offset: u64, event: SourceEvent) -> ReadEvent {
    ReadEvent {
        event,
        start: BinlogFilePos {
            file: "binlog.000001".into(),
            offset: offset - 10,
        },
        end: BinlogFilePos {
            file: "binlog.000001".into(),
            offset,
        },
        timestamp: 1,
        thread_id: None,
    }
}

fn row(id: i64) -> SourceEvent {
    let table = Arc::new(TableMeta {
        id: TableId {
            schema: "shop".into(),
            table: "t".into(),
        },
        columns: vec![ColumnMeta {
            name: "id".into(),
            type_name: "LONG".into(),
            unsigned: false,
        }],
        primary_key: vec![0],
    });
    SourceEvent::Rows(vec![RowChange {
        table,
        kind: ChangeKind::Insert,
        before: None,
        after: Some(vec![Value::Int(id)]),
    }])
}

fn mysql_gtid(number: u64) -> SourceEvent {
    SourceEvent::Gtid {
        gtid: TransactionGtid::MySql {
            uuid: "3e11fa47-71ca-11e1-9e33-c80aa9429562".into(),
            number,
        },
        standalone: false,
    }
}

fn query(sql: &str) -> SourceEvent {
    SourceEvent::Query(Statement {
        schema: "shop".into(),
        text: sql.as_bytes().to_vec(),
        session: Arc::new(crate::model::Session::for_tests(0, "utf8mb4")),
    })
}

fn ids(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|change| match change {
            Change::Row(row, _) => row.after.as_ref().unwrap()[0].to_string(),
            Change::Ddl { statement, .. } => statement.shown(usize::MAX),
        })
        .collect()
}

/// Feeds events; returns the batches handed on.
fn feed(selector: &mut Selector, events: Vec<ReadEvent>) -> Result<Vec<Batch>> {
    let mut batches = Vec::new();
    for event in events {
        if let Some(batch) = selector.handle(event)? {
            batches.push(batch);
        }
        while let Some((change, time)) = selector.pending.pop_front() {
            if let Some(batch) = selector.add(change, time) {
                batches.push(batch);
            }
        }
        if let Some(statement) = selector.pending_statement.take()
            && let Some(batch) = selector.handle(statement)?
        {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// A row change of `ottr_sys.<table>` with text columns `values` (and, for `ddl`, a
/// connection id last).
fn system_row(table: &str, columns: &[&str], values: Vec<Value>) -> SourceEvent {
    let meta = echo::table("ottr_sys", table, columns);
    SourceEvent::Rows(vec![RowChange {
        table: meta,
        kind: ChangeKind::Update,
        before: Some(values.clone()),
        after: Some(values),
    }])
}

fn text(value: &str) -> Value {
    Value::Text {
        bytes: value.as_bytes().to_vec(),
        charset: crate::model::Charset::Utf8mb4,
    }
}

fn mark(key: &str) -> SourceEvent {
    system_row(
        "applied",
        &["pipeline_key", "partition_no"],
        vec![text(key), Value::UInt(0)],
    )
}

/// What the selector handed on, batches and the batch being built.
fn handed(batches: &[Batch], selector: &Selector) -> Vec<String> {
    batches
        .iter()
        .flat_map(|batch| ids(&batch.changes))
        .chain(ids(&selector.building))
        .filter(|id| !id.is_empty())
        .collect()
}

/// `inst/2` announcing `statement` on connection `connection` in `ottr_sys.ddl`.
fn announcement(statement: &str, connection: u64) -> SourceEvent {
    system_row(
        "ddl",
        &echo::DDL_COLUMNS,
        vec![
            text("inst/2"),
            text("b.000001"),
            Value::UInt(4),
            Value::Enum {
                index: 1,
                label: "applying".into(),
            },
            text(statement),
            Value::UInt(connection),
        ],
    )
}

/// A DDL statement run on connection `thread`.
fn ddl_on(offset: u64, thread: u32, sql: &str) -> ReadEvent {
    ReadEvent {
        thread_id: Some(thread),
        ..at(offset, query(sql))
    }
}

fn mariadb_gtid(sequence: u64) -> SourceEvent {
    SourceEvent::Gtid {
        gtid: TransactionGtid::MariaDb(MariaGtid {
            domain: 0,
            server: 1,
            sequence,
        }),
        standalone: false,
    }
}

#[test]
fn echo_transactions_are_dropped_whole_even_split_and_their_ddl_too() {
    let mut selector = selector(2);
    selector.options.echo_keys = ["inst/2".to_owned()].into();
    let announce = announcement("ALTER TABLE t ADD c INT", 77);
    let batches = feed(
        &mut selector,
        vec![
            // an echo bigger than a batch (MariaDB: no BEGIN after the GTID)
            at(100, mariadb_gtid(1)),
            at(110, mark("inst/2")),
            at(120, row(1)),
            at(130, row(2)),
            at(140, row(3)),
            at(150, SourceEvent::Commit),
            // a user's transaction, then another pipeline's (not an echo)
            at(200, mariadb_gtid(2)),
            at(210, row(10)),
            at(220, SourceEvent::Commit),
            at(300, mariadb_gtid(3)),
            at(310, mark("inst/9")),
            at(320, row(11)),
            at(330, SourceEvent::Commit),
            // the echo pipeline announces a DDL on connection 77 and runs it
            at(400, mariadb_gtid(4)),
            at(410, mark("inst/2")),
            at(420, announce),
            at(430, SourceEvent::Commit),
            ddl_on(500, 12, "ALTER TABLE t ADD d INT"),
            ddl_on(600, 77, "ALTER TABLE t ADD c INT"),
            at(700, mariadb_gtid(5)),
            at(710, row(12)),
            at(720, SourceEvent::Commit),
        ],
    )
    .unwrap();
    let handed = handed(&batches, &selector);
    assert!(
        handed
            .iter()
            .all(|id| !["1", "2", "3"].contains(&id.as_str())),
        "{handed:?}"
    );
    assert!(handed.contains(&"10".to_owned()) && handed.contains(&"11".to_owned()));
    assert!(
        handed.contains(&"ALTER TABLE t ADD d INT".to_owned()),
        "{handed:?}"
    );
    assert!(
        !handed.contains(&"ALTER TABLE t ADD c INT".to_owned()),
        "{handed:?}"
    );
    assert!(handed.contains(&"12".to_owned()), "{handed:?}");
    assert!(selector.echo_ddl_threads.is_empty());
}

#[test]
fn echo_transactions_are_dropped_in_mysql_layout_too() {
    // MySQL: GTID, BEGIN, rows, XID; a DDL is a GTID and its QUERY.
    let mut selector = selector(2);
    selector.options.echo_keys = ["inst/2".to_owned()].into();
    let announce = announcement("DROP TABLE t2", 91);
    let batches = feed(
        &mut selector,
        vec![
            at(100, mysql_gtid(1)),
            at(105, SourceEvent::Begin),
            at(110, mark("inst/2")),
            at(120, row(1)),
            at(130, row(2)),
            at(140, row(3)),
            at(150, SourceEvent::Commit),
            at(200, mysql_gtid(2)),
            at(205, SourceEvent::Begin),
            at(210, row(10)),
            at(220, SourceEvent::Commit),
            at(300, mysql_gtid(3)),
            at(305, SourceEvent::Begin),
            at(310, mark("inst/2")),
            at(320, announce),
            at(330, SourceEvent::Commit),
            at(400, mysql_gtid(4)),
            ddl_on(410, 91, "DROP TABLE `t2` /* generated by server */"),
            at(500, mysql_gtid(5)),
            ddl_on(510, 12, "DROP TABLE `t3` /* generated by server */"),
        ],
    )
    .unwrap();
    let handed = handed(&batches, &selector);
    assert_eq!(
        handed,
        vec![
            "10".to_owned(),
            "DROP TABLE `t3` /* generated by server */".to_owned()
        ]
    );
    assert!(selector.echo_ddl_threads.is_empty());
}

#[test]
fn a_mysql_ddl_after_its_gtid_is_handed_on_as_its_own_batch() {
    let mut selector = selector(100);
    let batches = feed(
        &mut selector,
        vec![
            at(100, mysql_gtid(1)),
            at(200, query("ALTER TABLE t ADD c INT")),
            at(300, mysql_gtid(2)),
            at(310, SourceEvent::Begin),
            at(400, row(1)),
            at(500, SourceEvent::Commit),
        ],
    )
    .unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(ids(&batches[0].changes), vec!["ALTER TABLE t ADD c INT"]);
    assert_eq!(batches[0].end.file.as_ref().unwrap().offset, 200);
    assert_eq!(
        ids(&selector.building),
        vec!["1"],
        "the next transaction is being built"
    );
}

#[test]
fn rolled_back_work_is_dropped_and_savepoints_honoured() {
    let mut selector = selector(100);
    let table = TableId {
        schema: "shop".into(),
        table: "t".into(),
    };
    selector.transactional.insert(table, true);
    feed(
        &mut selector,
        vec![
            at(100, mysql_gtid(1)),
            at(110, SourceEvent::Begin),
            at(200, row(1)),
            at(210, query("SAVEPOINT s")),
            at(300, row(2)),
            at(310, query("ROLLBACK TO SAVEPOINT s")),
            at(400, row(3)),
            at(500, SourceEvent::Commit),
            at(600, mysql_gtid(2)),
            at(610, SourceEvent::Begin),
            at(700, row(4)),
            at(800, SourceEvent::Rollback),
        ],
    )
    .unwrap();
    assert_eq!(ids(&selector.building), vec!["1", "3"]);
    assert_eq!(selector.committed.file.as_ref().unwrap().offset, 800);
    let expected: usize = selector.building.iter().map(Change::size).sum();
    assert_eq!(
        selector.budget.buffered(),
        expected,
        "dropped rows give their bytes back"
    );
}

#[test]
fn a_transaction_without_its_commit_is_dropped_when_the_next_begins() {
    let mut selector = selector(100);
    let gtid = |sequence| SourceEvent::Gtid {
        gtid: TransactionGtid::MariaDb(MariaGtid {
            domain: 0,
            server: 1,
            sequence,
        }),
        standalone: false,
    };
    feed(
        &mut selector,
        vec![
            at(100, gtid(1)),
            at(200, row(1)),
            at(300, gtid(2)),
            at(400, row(2)),
            at(500, SourceEvent::Commit),
        ],
    )
    .unwrap();
    assert_eq!(ids(&selector.building), vec!["2"]);
    assert_eq!(
        selector.committed.gtid.as_ref().unwrap().to_string(),
        "0-1-2"
    );
}

/// A row of `shop.<table>` with id `id`.
fn row_of(table: &str, id: i64) -> SourceEvent {
    let SourceEvent::Rows(mut changes) = row(id) else {
        unreachable!()
    };
    let mut meta = (*changes[0].table).clone();
    meta.id.table = table.into();
    changes[0].table = Arc::new(meta);
    SourceEvent::Rows(changes)
}

#[test]
fn a_rollback_keeps_the_rows_of_non_transactional_tables() {
    let mut selector = selector(100);
    let table = |name: &str| TableId {
        schema: "shop".into(),
        table: name.into(),
    };
    selector.transactional = [(table("inno"), true), (table("isam"), false)].into();
    feed(
        &mut selector,
        vec![
            at(100, mysql_gtid(1)),
            at(110, SourceEvent::Begin),
            at(200, row_of("inno", 1)),
            at(210, row_of("isam", 2)),
            at(220, row_of("inno", 3)),
            at(230, row_of("isam", 4)),
            at(300, SourceEvent::Rollback),
        ],
    )
    .unwrap();
    assert_eq!(ids(&selector.building), vec!["2", "4"]);
    assert_eq!(selector.committed.file.as_ref().unwrap().offset, 300);
    assert!(selector.notes[0].contains("2 rows of non-transactional tables (shop.isam)"));
    let expected: usize = selector.building.iter().map(Change::size).sum();
    assert_eq!(selector.budget.buffered(), expected);
    // ROLLBACK TO a savepoint is logged for the same reason: its MyISAM rows stay
    let mut selector = self::selector(100);
    selector.transactional = [(table("inno"), true), (table("isam"), false)].into();
    feed(
        &mut selector,
        vec![
            at(100, mysql_gtid(1)),
            at(110, SourceEvent::Begin),
            at(200, row_of("inno", 1)),
            at(210, query("SAVEPOINT s")),
            at(220, row_of("inno", 2)),
            at(230, row_of("isam", 3)),
            at(240, query("ROLLBACK TO SAVEPOINT s")),
            at(300, SourceEvent::Commit),
        ],
    )
    .unwrap();
    assert_eq!(ids(&selector.building), vec!["1", "3"]);
    // tables whose engines are not known yet are looked up before the ROLLBACK is handled
    let mut selector = self::selector(100);
    feed(
        &mut selector,
        vec![
            at(100, mysql_gtid(1)),
            at(110, SourceEvent::Begin),
            at(200, row_of("other", 1)),
        ],
    )
    .unwrap();
    assert!(
        selector
            .handle(at(300, SourceEvent::Rollback))
            .unwrap()
            .is_none()
    );
    assert_eq!(selector.engines_wanted, vec![table("other")]);
    assert!(selector.pending_statement.is_some());
}

#[test]
fn a_rollback_of_a_transaction_already_partly_handed_on_is_fatal() {
    let mut selector = selector(2);
    let mut events = vec![at(100, mysql_gtid(1)), at(110, SourceEvent::Begin)];
    events.extend((1..=5).map(|id| at(200 + id as u64 * 10, row(id))));
    events.push(at(400, SourceEvent::Rollback));
    let error = feed(&mut selector, events).expect_err("fatal").to_string();
    assert!(error.contains("split across batches"), "{error}");
}

#[test]
fn a_batch_round_trips_through_json() {
    let mut selector = selector(100);
    let batches = feed(
        &mut selector,
        vec![
            at(100, mysql_gtid(1)),
            at(110, SourceEvent::Begin),
            at(200, row(1)),
            at(300, SourceEvent::Commit),
            at(400, mysql_gtid(2)),
            at(500, query("DROP TABLE t")),
        ],
    )
    .unwrap();
    let data = batches[0].data();
    let text = serde_json::to_string(&data).unwrap();
    let back: BatchData = serde_json::from_str(&text).unwrap();
    assert_eq!(back, data);
    assert_eq!(ids(&back.changes), vec!["1"]);
}

#[test]
fn statement_based_dml_inside_a_transaction_is_fatal() {
    let mut selector = selector(100);
    let error = feed(
        &mut selector,
        vec![
            at(100, mysql_gtid(1)),
            at(110, SourceEvent::Begin),
            at(200, query("INSERT INTO t VALUES (1)")),
        ],
    )
    .expect_err("fatal")
    .to_string();
    assert!(
        error.contains("binlog_format=STATEMENT or MIXED"),
        "{error}"
    );
}
