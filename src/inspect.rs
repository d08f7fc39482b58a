//! `ottr binlog`: prints what Select sees, one decoded event per line (one line per changed
//! row), values as SELECT shows them. For operators debugging a stuck pipeline.

use crate::config::validate_data_source;
use crate::error::{Error, Result};
use crate::meta::{self, MetaDb};
use crate::model::{BinlogFilePos, GtidState, StartPoint};
use crate::pipeline::connect;
use crate::pipeline::select::{BinlogReader, ReaderOptions, SourceEvent, resolve_end};
use std::io::Write;
use std::time::Duration;

/// What `ottr binlog` was asked for.
#[derive(Debug, Clone)]
pub struct BinlogRequest {
    pub data_source: String,
    /// `FILE:POS`, a MariaDB GTID position, or `end` (the default).
    pub from: StartPoint,
    /// Stop after this many events.
    pub limit: Option<u64>,
    /// Keep waiting for new events at the end of the binlog.
    pub follow: bool,
    /// The replica server id to use (must differ from every other replica of the source).
    pub server_id: u32,
}

/// Streams the events of a data source to `out`; returns how many it printed.
pub async fn print_binlog(
    meta: &MetaDb,
    request: &BinlogRequest,
    out: &mut impl Write,
) -> Result<u64> {
    meta::check_schema(meta).await?;
    let row = meta::read_data_source(meta, &request.data_source)
        .await?
        .ok_or_else(|| Error::Precheck(format!("unknown data source '{}'", request.data_source)))?;
    let source = validate_data_source(&row)?;
    let (file, gtid): (Option<BinlogFilePos>, Option<GtidState>) = match &request.from {
        StartPoint::File(position) => (Some(position.clone()), None),
        StartPoint::Gtid(gtid) => (None, Some(gtid.clone())),
        StartPoint::End => {
            let mut conn = connect(&source).await?;
            let end = resolve_end(&mut conn, source.kind).await?;
            let _ = conn.disconnect().await;
            (end.file, None)
        }
        StartPoint::Timestamp(_) => {
            return Err(Error::Precheck(
                "ottr binlog starts at FILE:POS, a GTID or end".into(),
            ));
        }
    };
    let options = ReaderOptions {
        server_id: request.server_id,
        heartbeat: Duration::from_secs(1),
        stop_at_end: !request.follow,
    };
    let mut reader = BinlogReader::open(&source, &options, file.as_ref(), gtid.as_ref()).await?;
    let mut printed = 0;
    let write_error =
        |error: std::io::Error| Error::Precheck(format!("cannot write the output: {error}"));
    while request.limit.is_none_or(|limit| printed < limit) {
        let Some(read) = reader.next().await? else {
            break;
        };
        if matches!(read.event, SourceEvent::Heartbeat) {
            continue;
        }
        let time = chrono::DateTime::from_timestamp(i64::from(read.timestamp), 0)
            .map(|time| time.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        match &read.event {
            SourceEvent::Rows(changes) => {
                for change in changes {
                    writeln!(out, "{}  {time}  {change}", read.end).map_err(write_error)?;
                }
            }
            event => writeln!(out, "{}  {time}  {event}", read.end).map_err(write_error)?,
        }
        out.flush().map_err(write_error)?;
        printed += 1;
    }
    reader.close().await;
    Ok(printed)
}
