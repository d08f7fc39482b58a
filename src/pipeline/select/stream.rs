//! The binlog reader: one replication connection to the source, from a file position or a
//! GTID state, yielding decoded events with the position at which each ends.
//!
//! It follows rotations (the file of every position is known), asks for heartbeats so that a
//! dead connection is noticed, and refuses a purged start position with the ways out.

use super::decode::collation_map;
use super::event::{EventDecoder, SourceEvent};
use crate::config::{DataSource, DataSourceKind};
use crate::error::{Error, Result, server_code};
use crate::model::{BinlogFilePos, GtidState};
use crate::pipeline::connect;
use futures_util::{FutureExt, StreamExt};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest};
use std::time::Duration;

const SELECT_COLLATIONS: &str = "SELECT ID, CHARACTER_SET_NAME, COLLATION_NAME \
     FROM information_schema.COLLATIONS WHERE ID IS NOT NULL";
const SELECT_APPLICABLE: &str = "SELECT ID, CHARACTER_SET_NAME, FULL_COLLATION_NAME \
     FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY WHERE ID IS NOT NULL";
const SHOW_BINARY_LOGS: &str = "SHOW BINARY LOGS";
const SELECT_CHECKSUM: &str = "SELECT @@GLOBAL.binlog_checksum";
/// The type code of QUERY_EVENT.
const QUERY_EVENT: u8 = 2;
/// ER_MASTER_FATAL_ERROR_READING_BINLOG: the source cannot send from the position asked for
/// (purged, or never there).
const POSITION_GONE: u16 = 1236;
/// How long connecting and starting a stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to read.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// The replica server id, unique among the source's replicas.
    pub server_id: u32,
    /// How often the server sends a heartbeat when it has nothing else to send.
    pub heartbeat: Duration,
    /// Stop at the current end of the binlog instead of waiting for more.
    pub stop_at_end: bool,
}

/// One decoded event and where it ends (the position after it).
#[derive(Debug, Clone)]
pub struct ReadEvent {
    pub event: SourceEvent,
    /// Where this event starts (`log_pos - event_size`; meaningless for the fake events a
    /// stream opens with, whose `log_pos` is 0).
    pub start: BinlogFilePos,
    /// The position right after this event (`file:log_pos`).
    pub end: BinlogFilePos,
    /// The event's timestamp (seconds since the epoch, the source's clock).
    pub timestamp: u32,
    /// QUERY events: the id of the connection that ran the statement.
    pub thread_id: Option<u32>,
}

/// A binlog stream being read.
pub struct BinlogReader {
    stream: BinlogStream,
    decoder: EventDecoder,
    /// The binlog file being read, from the last ROTATE.
    file: String,
    /// Who reads, for messages: the data source's name and the replica server id.
    source_name: String,
    server_id: u32,
    /// The end offset of the last event that had one (for messages).
    last_end: u64,
    /// Time spent decoding events since the last [`BinlogReader::take_busy`] (statistics).
    busy: std::time::Duration,
    /// Start and end of the TRANSACTION_PAYLOAD whose inflated events are being read: they
    /// carry no positions of their own (log_pos 0), so they take the payload's.
    payload: Option<(BinlogFilePos, BinlogFilePos)>,
}

impl BinlogReader {
    /// Connects to `source` and starts streaming at `file` or after `gtid` (MariaDB), within
    /// 30 s.
    pub async fn open(
        source: &DataSource,
        options: &ReaderOptions,
        file: Option<&BinlogFilePos>,
        gtid: Option<&GtidState>,
    ) -> Result<Self> {
        let context = format!(
            "cannot open the binlog stream of data source '{}'",
            source.name
        );
        tokio::time::timeout(OPEN_TIMEOUT, Self::open_now(source, options, file, gtid))
            .await
            .unwrap_or_else(|_| Err(Error::Timeout(context, OPEN_TIMEOUT.as_millis() as u64)))
    }

    async fn open_now(
        source: &DataSource,
        options: &ReaderOptions,
        file: Option<&BinlogFilePos>,
        gtid: Option<&GtidState>,
    ) -> Result<Self> {
        let mut conn = connect(source).await?;
        let query_error = |what: &str| {
            let what = what.to_owned();
            move |error| {
                Error::database(
                    format!("cannot {what} on data source '{}'", source.name),
                    error,
                )
            }
        };
        // MariaDB 10.10+ lists collations such as uca1400's under each character set only.
        let collations: Vec<(u16, String, String)> = match conn.query(SELECT_APPLICABLE).await {
            Ok(rows) => rows,
            Err(mysql_async::Error::Server(_)) => conn
                .query(SELECT_COLLATIONS)
                .await
                .map_err(query_error("read collations"))?,
            Err(error) => return Err(query_error("read collations")(error)),
        };
        let checksum: Option<String> = conn
            .query_first(SELECT_CHECKSUM)
            .await
            .map_err(query_error("read binlog_checksum"))?;
        if let Some(file) = file {
            check_not_purged(&mut conn, file, &source.name).await?;
        }
        let heartbeat_ns = options.heartbeat.as_nanos().max(1_000_000) as u64;
        conn.query_drop(format!("SET @master_heartbeat_period = {heartbeat_ns}"))
            .await
            .map_err(query_error("set the heartbeat period"))?;
        let mut request = BinlogStreamRequest::new(options.server_id);
        if options.stop_at_end {
            request = request.with_non_blocking();
        }
        let start_file = file
            .map(|position| position.file.clone())
            .unwrap_or_default();
        match (source.kind, file, gtid) {
            (DataSourceKind::MariaDb, _, _) => {
                conn.query_drop("SET @mariadb_slave_capability = 4")
                    .await
                    .map_err(query_error("announce MariaDB replica capabilities"))?;
                match (file, gtid) {
                    (Some(position), _) => {
                        request = request
                            .with_filename(position.file.as_bytes())
                            .with_pos(position.offset);
                    }
                    (None, Some(gtid)) => {
                        conn.exec_drop("SET @slave_connect_state = ?", (gtid.to_string(),))
                            .await
                            .map_err(query_error("set the GTID start"))?;
                        conn.query_drop("SET @slave_gtid_strict_mode = 0")
                            .await
                            .map_err(query_error("set the GTID mode"))?;
                        request = request.with_filename(b"").with_pos(4);
                    }
                    (None, None) => {
                        return Err(Error::Binlog(
                            "a binlog reader needs a file position or a GTID".into(),
                        ));
                    }
                }
            }
            (DataSourceKind::MySql, Some(position), _) => {
                request = request
                    .with_filename(position.file.as_bytes())
                    .with_pos(position.offset);
            }
            (DataSourceKind::MySql, None, Some(gtid)) => {
                // COM_BINLOG_DUMP_GTID: the server sends every transaction not in the set.
                request = request
                    .with_gtid()
                    .with_gtid_set(mysql_gtid_set(gtid)?)
                    .with_filename(b"")
                    .with_pos(4);
            }
            (DataSourceKind::MySql, None, None) => {
                return Err(Error::Binlog(
                    "a binlog reader needs a file position or a GTID".into(),
                ));
            }
        }
        let stream = conn.get_binlog_stream(request).await.map_err(|error| {
            let text = error.to_string();
            if server_code(&error) == Some(POSITION_GONE) {
                Error::PositionGone(format!(
                    "data source '{}' cannot stream from {}: {text}; reset the position (CALL reset_position) or re-snapshot the target",
                    source.name,
                    file.map(ToString::to_string).or(gtid.map(ToString::to_string)).unwrap_or_default()
                ))
            } else {
                Error::database(format!("cannot start the binlog stream on data source '{}'", source.name), error)
            }
        })?;
        Ok(BinlogReader {
            stream,
            decoder: EventDecoder::new(
                collation_map(
                    collations
                        .iter()
                        .map(|(id, charset, _)| (*id, charset.clone()))
                        .collect(),
                ),
                checksum.is_some_and(|value| value.eq_ignore_ascii_case("CRC32")),
            )
            .for_kind(source.kind)
            .with_collation_names(
                collations
                    .into_iter()
                    .map(|(id, charset, collation)| (id, (charset, collation)))
                    .collect(),
            ),
            file: start_file,
            source_name: source.name.clone(),
            server_id: options.server_id,
            last_end: 0,
            payload: None,
            busy: std::time::Duration::ZERO,
        })
    }

    /// Time spent decoding events since the last call (waiting for the source excluded).
    pub fn take_busy(&mut self) -> std::time::Duration {
        std::mem::take(&mut self.busy)
    }

    /// The next event; None at the end of the binlog when reading with `stop_at_end`.
    pub async fn next(&mut self) -> Result<Option<ReadEvent>> {
        // The driver parses events as it reads them: a panic there (bytes it cannot take) is
        // the stream's error, not the task's end.
        let next = std::panic::AssertUnwindSafe(self.stream.next()).catch_unwind();
        let Some(event) = next.await.map_err(|panic| {
            Error::Binlog(format!(
                "an event after {}:{} from data source '{}' cannot be parsed ({}); ottr never skips an event",
                self.file,
                self.last_end,
                self.source_name,
                crate::error::panic_message(&*panic)
            ))
        })?
        else {
            return Ok(None);
        };
        let event = event.map_err(|error| self.stream_error(error))?;
        let header = event.header();
        let end = BinlogFilePos {
            file: self.file.clone(),
            offset: u64::from(header.log_pos()),
        };
        let start = BinlogFilePos {
            file: self.file.clone(),
            offset: end.offset.saturating_sub(u64::from(header.event_size())),
        };
        let inflated = header.log_pos() == 0 && self.payload.is_some();
        let (mut start, mut end) = match (&self.payload, inflated) {
            (Some((payload_start, payload_end)), true) => {
                (payload_start.clone(), payload_end.clone())
            }
            _ => (start, end),
        };
        if header.log_pos() > 0 {
            self.payload = None;
            self.last_end = u64::from(header.log_pos());
        }
        let decoding = std::time::Instant::now();
        let decoded = self.decoder.decode(&event, &end)?;
        self.busy += decoding.elapsed();
        if decoded == SourceEvent::Meta("TRANSACTION_PAYLOAD") {
            self.payload = Some((start.clone(), end.clone()));
        }
        if let SourceEvent::Rotate { file } = &decoded {
            self.file = file.clone();
            // A fake ROTATE (log_pos 0) is not in any file: place it in the one it names.
            if header.log_pos() == 0 {
                start.file = file.clone();
                end.file = file.clone();
            }
        }
        // QUERY_EVENT's body starts with the connection id (slave_proxy_id).
        let thread_id = (header.event_type_raw() == QUERY_EVENT)
            .then(|| event.data().get(0..4))
            .flatten()
            .map(|bytes| u32::from_le_bytes(bytes.try_into().expect("4 bytes")));
        Ok(Some(ReadEvent {
            event: decoded,
            start,
            end,
            timestamp: header.timestamp(),
            thread_id,
        }))
    }

    /// Classifies an error of the stream: another replica with the same server id, and any
    /// error the source sends about the position, are fatal; the rest is the connection's.
    fn stream_error(&self, error: mysql_async::Error) -> Error {
        let text = error.to_string();
        let same_id = matches!(&error, mysql_async::Error::Server(server) if server.code == 4052)
            || text.contains("same server_uuid/server_id");
        let unreadable = matches!(
            &error,
            mysql_async::Error::Io(mysql_async::IoError::Io(io)) if io.kind() == std::io::ErrorKind::InvalidData
        );
        if unreadable {
            return Error::Binlog(format!(
                "an event after {}:{} from data source '{}' cannot be parsed ({text}); ottr never skips an event",
                self.file, self.last_end, self.source_name
            ));
        }
        if same_id {
            Error::ServerIdInUse(format!(
                "server id {} is used by another replica of data source '{}': give this pipeline a distinct one \
                 (CALL set_pipeline_option(pipeline, 'server_id', …)); the source said: {text}",
                self.server_id, self.source_name
            ))
        } else if server_code(&error) == Some(POSITION_GONE) {
            Error::PositionGone(format!("the source stopped the binlog stream: {text}"))
        } else {
            Error::database("the binlog stream failed", error)
        }
    }

    /// Closes the replication connection.
    pub async fn close(self) {
        let _ = self.stream.close().await;
    }
}

/// The SIDs of a MySQL GTID set, as COM_BINLOG_DUMP_GTID takes them.
fn mysql_gtid_set(gtid: &GtidState) -> Result<Vec<mysql_async::Sid<'static>>> {
    let GtidState::MySql(set) = gtid else {
        return Err(Error::Binlog(format!(
            "'{gtid}' is a MariaDB GTID position, but the data source's kind is mysql"
        )));
    };
    set.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<mysql_async::Sid>()
                .map_err(|error| Error::Binlog(format!("GTID set part '{part}': {error}")))
        })
        .collect()
}

/// The binlog files the server of `conn` keeps, oldest first, with their sizes (the last
/// one's size is where its binlog ends now); `source` names it in the error.
pub async fn binlog_files(
    conn: &mut mysql_async::Conn,
    source: &str,
) -> Result<Vec<(String, u64)>> {
    let logs: Vec<mysql_async::Row> = conn.query(SHOW_BINARY_LOGS).await.map_err(|error| {
        Error::database(
            format!("cannot list the binlogs of data source '{source}'"),
            error,
        )
    })?;
    Ok(logs
        .into_iter()
        .filter_map(|mut row| Some((row.take::<String, _>(0)?, row.take::<u64, _>(1)?)))
        .collect())
}

/// Fails, with the oldest position still available and the ways out, if `position`'s file
/// has been purged from the source. Returns a warning when it is in the oldest binlog the
/// source keeps while newer ones exist: the next purge will take it.
pub async fn check_not_purged(
    conn: &mut mysql_async::Conn,
    position: &BinlogFilePos,
    source: &str,
) -> Result<Option<String>> {
    let names: Vec<String> = binlog_files(conn, source)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    if names.first() == Some(&position.file) && names.len() > 1 {
        return Ok(Some(format!(
            "warning: position {position} is in the oldest binlog data source '{source}' keeps ({} files kept): \
             the next purge will take it; raise the source's binlog retention or catch up",
            names.len()
        )));
    }
    if names.contains(&position.file) {
        return Ok(None);
    }
    let oldest = names
        .first()
        .map(|name| format!("{name}:4"))
        .unwrap_or_else(|| "none".into());
    Err(Error::Binlog(format!(
        "position {position} is no longer on data source '{source}' (purged); the oldest available is {oldest}: \
         CALL reset_position to it (changes in between are lost) or re-snapshot the target"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mysql_gtid_set_becomes_sids_and_a_mariadb_one_is_refused() {
        let set: GtidState =
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,4e11fa47-71ca-11e1-9e33-c80aa9429562:3"
                .parse()
                .unwrap();
        assert_eq!(mysql_gtid_set(&set).unwrap().len(), 2);
        let maria: GtidState = "0-1-5".parse().unwrap();
        assert!(
            mysql_gtid_set(&maria)
                .unwrap_err()
                .to_string()
                .contains("MariaDB GTID position")
        );
    }
}
