//! Resolving start points into positions: the source's current end, or the first
//! transaction at or after a time.

use super::event::SourceEvent;
use super::stream::{BinlogReader, ReaderOptions, binlog_files};
use crate::config::{DataSource, DataSourceKind};
use crate::error::{Error, Result};
use crate::model::{BinlogFilePos, GtidState, Position};
use crate::pipeline::connect;
use crate::row::take;
use chrono::NaiveDateTime;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use std::time::Duration;

const SHOW_MASTER_STATUS: &str = "SHOW MASTER STATUS";
/// How long listing a source's binlogs may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
const SHOW_BINARY_LOG_STATUS: &str = "SHOW BINARY LOG STATUS";
// The GTID state at exactly that file and offset (two separate reads could disagree).
const MARIADB_GTID_POS: &str = "SELECT BINLOG_GTID_POS(?, ?)";

/// The source's `SHOW MASTER STATUS` row (file, position, binlog filters, …); None when
/// its binlog is off.
pub async fn binlog_status(conn: &mut Conn, kind: DataSourceKind) -> Result<Option<Row>> {
    let context = "cannot read the source's binlog status";
    Ok(match kind {
        // MySQL 8.4 renamed the statement; 8.0 knows only the old name.
        DataSourceKind::MySql => match conn.query_first(SHOW_BINARY_LOG_STATUS).await {
            Ok(row) => row,
            Err(_) => conn
                .query_first(SHOW_MASTER_STATUS)
                .await
                .map_err(|error| Error::database(context, error))?,
        },
        DataSourceKind::MariaDb => conn
            .query_first(SHOW_MASTER_STATUS)
            .await
            .map_err(|error| Error::database(context, error))?,
    })
}

/// A server's binlog end as a file and offset only (cheaper than [`resolve_end`], which also
/// asks MariaDB for the GTID state there).
pub async fn binlog_end(conn: &mut Conn, kind: DataSourceKind) -> Result<BinlogFilePos> {
    let context = "cannot read the server's binlog position";
    let mut status = binlog_status(conn, kind).await?.ok_or_else(|| {
        Error::Precheck("the server reports no binlog position: is log_bin on?".into())
    })?;
    Ok(BinlogFilePos {
        file: take(&mut status, "File", context)?,
        offset: take(&mut status, "Position", context)?,
    })
}

/// The source's current end: its binlog file and offset, and its GTID state.
pub async fn resolve_end(conn: &mut Conn, kind: DataSourceKind) -> Result<Position> {
    let context = "cannot read the source's binlog position";
    let status = binlog_status(conn, kind).await?;
    let mut status = status.ok_or_else(|| {
        Error::Precheck("the source reports no binlog position: is log_bin on?".into())
    })?;
    let file: String = take(&mut status, "File", context)?;
    let offset: u64 = take(&mut status, "Position", context)?;
    let gtid_text: Option<String> = match kind {
        DataSourceKind::MariaDb => conn
            .exec_first::<Option<String>, _, _>(MARIADB_GTID_POS, (&file, offset))
            .await
            .map_err(|error| Error::database(context, error))?
            .flatten(),
        DataSourceKind::MySql => status
            .take_opt::<String, _>("Executed_Gtid_Set")
            .and_then(Result::ok),
    };
    let gtid = match gtid_text.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<GtidState>().map_err(|error| Error::BadRow {
            context: context.to_owned(),
            problem: error.to_string(),
        })?),
    };
    Ok(Position {
        file: Some(BinlogFilePos { file, offset }),
        gtid,
        trx_rows_done: 0,
    })
}

/// The position of the first transaction that starts at or after `time` (UTC). Event times
/// have whole seconds, so transactions of `time`'s own second are included: starting a
/// little early is safe, starting late would lose changes. Fails if the source no longer
/// keeps binlogs that old.
pub async fn resolve_timestamp(
    source: &DataSource,
    server_id: u32,
    time: NaiveDateTime,
) -> Result<Position> {
    let target = u32::try_from(time.and_utc().timestamp().max(0)).unwrap_or(u32::MAX);
    let files: Vec<String> = list_binlogs(source)
        .await?
        .into_iter()
        .map(|(file, _)| file)
        .collect();
    let options = ReaderOptions {
        server_id,
        heartbeat: Duration::from_secs(1),
        stop_at_end: true,
    };
    // The newest file created before the target holds the first transaction at or after it.
    let mut candidate = None;
    for file in files.iter().rev() {
        // Strictly before: events of the target's own second may end the previous file.
        if file_created(source, &options, file).await? < target {
            candidate = Some(file.clone());
            break;
        }
    }
    let Some(file) = candidate else {
        let oldest = files.first().cloned().unwrap_or_default();
        return Err(Error::Binlog(format!(
            "data source '{}' no longer keeps binlogs from {time} UTC: its oldest, {oldest}, starts later; \
             CALL reset_position to '{oldest}:4' (changes in between are lost) or re-snapshot the target",
            source.name
        )));
    };
    let start = BinlogFilePos { file, offset: 4 };
    let mut reader = BinlogReader::open(source, &options, Some(&start), None).await?;
    let mut last_end = start.clone();
    let mut in_transaction = false;
    while let Some(read) = reader.next().await? {
        let opens = match read.event {
            SourceEvent::Gtid { .. } => true,
            SourceEvent::Begin => !in_transaction,
            SourceEvent::Query(_) => !in_transaction,
            _ => false,
        };
        if opens && read.timestamp >= target {
            reader.close().await;
            return Ok(Position {
                file: Some(read.start),
                gtid: None,
                trx_rows_done: 0,
            });
        }
        match read.event {
            SourceEvent::Gtid { standalone, .. } => in_transaction = !standalone,
            SourceEvent::Begin => in_transaction = true,
            SourceEvent::Commit | SourceEvent::Rollback => in_transaction = false,
            _ => {}
        }
        if read.end.offset > 0 {
            last_end = read.end;
        }
    }
    reader.close().await;
    // Nothing that late yet: start at the current end.
    Ok(Position {
        file: Some(last_end),
        gtid: None,
        trx_rows_done: 0,
    })
}

/// The binlog files the source keeps, oldest first, with their sizes (the last one's size is
/// where its binlog ends now).
pub async fn list_binlogs(source: &DataSource) -> Result<Vec<(String, u64)>> {
    let mut conn = connect(source).await?;
    let listed = tokio::time::timeout(LIST_TIMEOUT, binlog_files(&mut conn, &source.name)).await;
    let _ = conn.disconnect().await;
    listed.unwrap_or_else(|_| {
        Err(Error::Timeout(
            format!("cannot list the binlogs of data source '{}'", source.name),
            LIST_TIMEOUT.as_millis() as u64,
        ))
    })
}

/// When `file` was created: the timestamp of its FORMAT_DESCRIPTION event.
async fn file_created(source: &DataSource, options: &ReaderOptions, file: &str) -> Result<u32> {
    let start = BinlogFilePos {
        file: file.to_owned(),
        offset: 4,
    };
    let mut reader = BinlogReader::open(source, options, Some(&start), None).await?;
    let mut created = None;
    while let Some(read) = reader.next().await? {
        if read.event == SourceEvent::Meta("FORMAT_DESCRIPTION") && read.timestamp > 0 {
            created = Some(read.timestamp);
            break;
        }
    }
    reader.close().await;
    created.ok_or_else(|| Error::Binlog(format!("binlog {file} has no format description event")))
}
