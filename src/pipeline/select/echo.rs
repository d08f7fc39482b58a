//! Loop avoidance: recognising in a source's binlog what ottr itself wrote there.
//!
//! Every target transaction a pipeline writes begins with a change to its own row of
//! `ottr_sys.applied` (one row per load partition, so no hot row), which carries the
//! pipeline's key. A pipeline reading that server drops every transaction whose first change
//! is the mark of a pipeline writing back towards it (the other direction of a two-way
//! channel): its own data coming back. A DDL cannot carry a row, so the load side announces
//! it: the transaction committed just before the DDL, on the same connection, records it in
//! `ottr_sys.ddl` as `applying` with `CONNECTION_ID()`; the next DDL of that connection (the
//! QUERY event's thread id) is then dropped too. This needs no privilege (unlike `SET SESSION server_id`) and
//! works for DROP TABLE, whose logged text the server rewrites.

use crate::config::DataSource;
use crate::error::{Error, Result};
use crate::model::{RowChange, Value};
use crate::sys::SCHEMA as SYSTEM_SCHEMA;
use crate::sys::ddl::ANNOUNCED;
use mysql_async::prelude::Queryable;
use std::collections::HashSet;

/// ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR: nothing was ever announced on this server.
const NOTHING_ANNOUNCED: [u16; 2] = [1146, 1054];
/// ER_TABLEACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR: the reader may not look.
const MAY_NOT_READ: [u16; 2] = [1142, 1044];

/// What a row change says about its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The mark of a pipeline whose writes are this pipeline's echo.
    Echo,
    /// A DDL record in `applying` state: this connection (thread id) runs that DDL next.
    AnnouncesDdl(u32),
    /// A DDL record of an echo pipeline leaving `applying` (applied, or failed and never
    /// logged): that connection's announcement is over.
    DdlDone(u32),
    /// Anything else.
    Other,
}

/// The thread ids of DDL that echo pipelines announced on `source` and that a reader
/// opening now may still meet.
pub async fn announced(source: &DataSource, echo_keys: &HashSet<String>) -> Result<HashSet<u32>> {
    if echo_keys.is_empty() {
        return Ok(HashSet::new());
    }
    let mut conn = crate::pipeline::connect::connect(source).await?;
    let rows: std::result::Result<Vec<(String, u64)>, _> = conn.query(ANNOUNCED).await;
    let _ = conn.disconnect().await;
    match rows {
        Ok(rows) => Ok(rows
            .into_iter()
            .filter(|(key, _)| echo_keys.contains(key))
            .map(|(_, thread)| thread as u32)
            .collect()),
        Err(mysql_async::Error::Server(error)) if NOTHING_ANNOUNCED.contains(&error.code) => {
            Ok(HashSet::new())
        }
        Err(mysql_async::Error::Server(error)) if MAY_NOT_READ.contains(&error.code) => {
            tracing::warn!(source = %source.name, error = %error.message,
                "cannot read ottr_sys.ddl on the source (grant SELECT on ottr_sys.*): a DDL announced before a restart may come back");
            Ok(HashSet::new())
        }
        Err(error) => Err(Error::database(
            format!(
                "cannot read the DDL announced on data source '{}'",
                source.name
            ),
            error,
        )),
    }
}

/// Classifies one row change.
pub fn mark(change: &RowChange, echo_keys: &HashSet<String>) -> Mark {
    let table = &change.table;
    if table.id.schema != SYSTEM_SCHEMA {
        return Mark::Other;
    }
    let text = |column: &str, fallback: usize, image: Option<&Vec<Value>>| -> Option<String> {
        let index = table
            .columns
            .iter()
            .position(|meta| meta.name.eq_ignore_ascii_case(column))
            .unwrap_or(fallback);
        match image?.get(index)? {
            Value::Text { bytes, .. } | Value::Bytes(bytes) => {
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
            Value::Enum { label, .. } => Some(label.clone()),
            _ => None,
        }
    };
    match table.id.table.as_str() {
        "applied" => {
            let key = text("pipeline_key", 0, change.after.as_ref())
                .or_else(|| text("pipeline_key", 0, change.before.as_ref()));
            if key.is_some_and(|key| echo_keys.contains(&key)) {
                Mark::Echo
            } else {
                Mark::Other
            }
        }
        // pipeline_key, binlog_file, binlog_offset, state, statement, connection_id, …
        "ddl" => {
            let index = table
                .columns
                .iter()
                .position(|meta| meta.name.eq_ignore_ascii_case("connection_id"))
                .unwrap_or(5);
            let thread = match change.after.as_ref().and_then(|image| image.get(index)) {
                Some(Value::UInt(id)) => *id as u32,
                Some(Value::Int(id)) => *id as u32,
                _ => return Mark::Other,
            };
            let ours = text("pipeline_key", 0, change.after.as_ref())
                .is_some_and(|key| echo_keys.contains(&key));
            match text("state", 3, change.after.as_ref()).as_deref() {
                Some("applying") => Mark::AnnouncesDdl(thread),
                Some(_) if ours => Mark::DdlDone(thread),
                _ => Mark::Other,
            }
        }
        _ => Mark::Other,
    }
}

/// The columns of `ottr_sys.ddl` a DDL announcement is read by, for tests.
#[cfg(test)]
pub(super) const DDL_COLUMNS: [&str; 6] = [
    "pipeline_key",
    "binlog_file",
    "binlog_offset",
    "state",
    "statement",
    "connection_id",
];

/// A table of VARCHAR columns keyed by its first, for tests of marks.
#[cfg(test)]
pub(super) fn table(
    schema: &str,
    name: &str,
    columns: &[&str],
) -> std::sync::Arc<crate::model::TableMeta> {
    use crate::model::{ColumnMeta, TableId, TableMeta};
    std::sync::Arc::new(TableMeta {
        id: TableId {
            schema: schema.into(),
            table: name.into(),
        },
        columns: columns
            .iter()
            .map(|column| ColumnMeta {
                name: (*column).into(),
                type_name: "VARCHAR".into(),
                unsigned: false,
            })
            .collect(),
        primary_key: vec![0],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChangeKind, Charset, TableMeta};
    use std::sync::Arc;

    fn text(value: &str) -> Value {
        Value::Text {
            bytes: value.as_bytes().to_vec(),
            charset: Charset::Utf8mb4,
        }
    }

    #[test]
    fn marks_of_echo_pipelines_and_ddl_announcements_are_recognised() {
        let echo: HashSet<String> = ["inst/2".to_owned()].into();
        let applied = table("ottr_sys", "applied", &["pipeline_key", "partition_no"]);
        let change = |table: &Arc<TableMeta>, before: Vec<Value>, after: Vec<Value>| RowChange {
            table: table.clone(),
            kind: ChangeKind::Update,
            before: Some(before),
            after: Some(after),
        };
        let ours = change(
            &applied,
            vec![text("inst/2"), Value::UInt(0)],
            vec![text("inst/2"), Value::UInt(0)],
        );
        assert_eq!(mark(&ours, &echo), Mark::Echo);
        let other = change(
            &applied,
            vec![text("inst/3"), Value::UInt(0)],
            vec![text("inst/3"), Value::UInt(0)],
        );
        assert_eq!(mark(&other, &echo), Mark::Other);
        // The same table name in a user schema is just data.
        let user = table("shop", "applied", &["pipeline_key"]);
        assert_eq!(
            mark(
                &change(&user, vec![text("inst/2")], vec![text("inst/2")]),
                &echo
            ),
            Mark::Other
        );
        let ddl = table("ottr_sys", "ddl", &DDL_COLUMNS);
        let record = |state: &str| RowChange {
            table: ddl.clone(),
            kind: ChangeKind::Insert,
            before: None,
            after: Some(vec![
                text("inst/2"),
                text("b.000001"),
                Value::UInt(4),
                Value::Enum {
                    index: 1,
                    label: state.into(),
                },
                text("ALTER TABLE t ADD c INT"),
                Value::UInt(42),
            ]),
        };
        assert_eq!(mark(&record("applying"), &echo), Mark::AnnouncesDdl(42));
        assert_eq!(mark(&record("applied"), &echo), Mark::DdlDone(42));
        assert_eq!(mark(&record("failed"), &echo), Mark::DdlDone(42));
    }
}
