//! Turning raw binlog events into [`SourceEvent`]s: MariaDB's own events (GTID, GTID list,
//! binlog checkpoint, annotate rows) decoded from their bytes, rows events V1 and V2 decoded
//! into typed row changes, CRC32 checksums verified. An event type that cannot be decoded is
//! an error naming the type and position: no event is ever skipped silently.

use super::decode::ColumnDecoder;
use super::query::{CollationNames, SourceLogging, read_session};
use super::table::{TableDecoder, table_decoder};
use crate::error::{Error, Result};
use crate::model::{
    BinlogFilePos, ChangeKind, Charset, DataSourceKind, MariaGtid, RowChange, Session, Statement,
    Value,
};
use crate::sql::classify::{QueryKind, classify_query};
use mysql_async::binlog::BinlogChecksumAlg;
use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_common::io::ParseBuf;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The GTID that opens a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionGtid {
    MariaDb(MariaGtid),
    /// MySQL: `uuid:number`.
    MySql {
        uuid: String,
        number: u64,
    },
}

impl fmt::Display for TransactionGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionGtid::MariaDb(gtid) => gtid.fmt(f),
            TransactionGtid::MySql { uuid, number } => write!(f, "{uuid}:{number}"),
        }
    }
}

/// One decoded binlog event.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// A transaction's GTID. `standalone`: no BEGIN/COMMIT follows (MariaDB DDL).
    Gtid {
        gtid: TransactionGtid,
        standalone: bool,
    },
    /// QUERY `BEGIN` (or `XA START`).
    Begin,
    /// Row changes of one rows event.
    Rows(Vec<RowChange>),
    /// XID, or QUERY `COMMIT` (`XA COMMIT`/`XA PREPARE` ends what the server logged).
    Commit,
    /// QUERY `ROLLBACK`: the transaction's changes to non-transactional tables stay logged.
    Rollback,
    /// `XA ROLLBACK` of a transaction that was prepared earlier (its changes already handed on).
    XaRollback { sql: String },
    /// Any other statement: DDL, SAVEPOINT, ROLLBACK TO, XA END, …, with its bytes, the
    /// session's default database (may be empty) and the session state it was written in.
    Query(Statement),
    /// The stream moved to another binlog file.
    Rotate { file: String },
    /// The server is alive and at this position (no event was written meanwhile).
    Heartbeat,
    /// An event with no data to pass on (format description, GTID list, checkpoint, annotate,
    /// previous GTIDs, rows query, MariaDB's dummy replacements).
    Meta(&'static str),
}

impl fmt::Display for SourceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceEvent::Gtid { gtid, standalone } => {
                write!(
                    f,
                    "GTID {gtid}{}",
                    if *standalone { " (standalone)" } else { "" }
                )
            }
            SourceEvent::Begin => f.write_str("BEGIN"),
            SourceEvent::Rows(changes) => {
                for (index, change) in changes.iter().enumerate() {
                    if index > 0 {
                        f.write_str("\n    ")?;
                    }
                    change.fmt(f)?;
                }
                Ok(())
            }
            SourceEvent::Commit => f.write_str("COMMIT"),
            SourceEvent::Rollback => f.write_str("ROLLBACK"),
            SourceEvent::XaRollback { sql } => write!(f, "QUERY {sql}"),
            SourceEvent::Query(statement) if statement.schema.is_empty() => {
                write!(f, "QUERY {}", statement.shown(usize::MAX))
            }
            SourceEvent::Query(statement) => write!(
                f,
                "QUERY [{}] {}",
                statement.schema,
                statement.shown(usize::MAX)
            ),
            SourceEvent::Rotate { file } => write!(f, "ROTATE to {file}"),
            SourceEvent::Heartbeat => f.write_str("HEARTBEAT"),
            SourceEvent::Meta(name) => f.write_str(name),
        }
    }
}

/// Decodes events of one stream; keeps the table maps seen so far.
#[derive(Debug, Default)]
pub struct EventDecoder {
    /// Table maps by table id, with the decoder built from each.
    tables: HashMap<u64, (TableMapEvent<'static>, Arc<TableDecoder>)>,
    /// Character sets by collation id, read from the source.
    collations: HashMap<u16, Charset>,
    /// The fake ROTATE that opens a stream from a CRC32 server still carries the checksum
    /// in its name; set until that ROTATE has been read.
    strip_opening_rotate_crc: bool,
    /// MariaDB counts GEOMETRY columns among the character columns whose charsets the
    /// optional metadata lists; MySQL does not.
    geometry_has_charset: bool,
    /// Character set and collation names by collation id, for the sessions of statements.
    collation_names: CollationNames,
    /// How the source logs sessions (its flavour, and from the format description, its
    /// version).
    logging: SourceLogging,
}

impl EventDecoder {
    /// A decoder for a new stream; `crc32` says whether the server writes CRC32 checksums.
    pub fn new(collations: HashMap<u16, Charset>, crc32: bool) -> Self {
        EventDecoder {
            tables: HashMap::new(),
            collations,
            strip_opening_rotate_crc: crc32,
            geometry_has_charset: false,
            collation_names: CollationNames::new(),
            logging: SourceLogging::default(),
        }
    }

    /// Follows the metadata conventions of `kind`'s server.
    pub fn for_kind(mut self, kind: DataSourceKind) -> Self {
        self.geometry_has_charset = kind == DataSourceKind::MariaDb;
        self.logging = SourceLogging::new(kind, (10, 11, 0));
        self
    }

    /// Reads the sessions of statements with the source's collation names.
    pub fn with_collation_names(mut self, names: CollationNames) -> Self {
        self.collation_names = names;
        self
    }

    /// Decodes `event`, which ends at `end`. Verifies its checksum first. A panic in the
    /// decoding (a value the parser cannot take) becomes an error naming the event.
    pub fn decode(&mut self, event: &Event, end: &BinlogFilePos) -> Result<SourceEvent> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.decode_event(event, end)
        }))
        .unwrap_or_else(|panic| {
            let header = event.header();
            Err(Error::Binlog(format!(
                "binlog event {} at {}:{}: decoding it failed ({}); ottr never skips an event",
                event_name(header.event_type_raw()),
                end.file,
                end.offset.saturating_sub(u64::from(header.event_size())),
                crate::error::panic_message(&*panic)
            )))
        })
    }

    fn decode_event(&mut self, event: &Event, end: &BinlogFilePos) -> Result<SourceEvent> {
        let header = event.header();
        let type_code = header.event_type_raw();
        let start = BinlogFilePos {
            file: end.file.clone(),
            offset: end.offset.saturating_sub(u64::from(header.event_size())),
        };
        if let Some(stored) = event.checksum() {
            let computed = event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
            if u32::from_le_bytes(stored) != computed {
                return Err(Error::Binlog(format!(
                    "binlog event {} at {start}: CRC32 checksum mismatch (stored {:08x}, computed {computed:08x}): the binlog or the network corrupted it",
                    event_name(type_code),
                    u32::from_le_bytes(stored)
                )));
            }
        }
        let fail = |problem: String| {
            Error::Binlog(format!(
                "binlog event {} at {start}: {problem}",
                event_name(type_code)
            ))
        };
        match type_code {
            // Events with nothing to pass on are not parsed at all: their counts and lengths
            // would size allocations for nothing.
            STOP => return Ok(SourceEvent::Meta("STOP")),
            INTVAR => return Ok(SourceEvent::Meta("INTVAR")),
            RAND => return Ok(SourceEvent::Meta("RAND")),
            USER_VAR => return Ok(SourceEvent::Meta("USER_VAR")),
            ROWS_QUERY => return Ok(SourceEvent::Meta("ROWS_QUERY")),
            ANONYMOUS_GTID => return Ok(SourceEvent::Meta("ANONYMOUS_GTID")),
            PREVIOUS_GTIDS => return Ok(SourceEvent::Meta("PREVIOUS_GTIDS")),
            MARIADB_ANNOTATE_ROWS => return Ok(SourceEvent::Meta("ANNOTATE_ROWS")),
            MARIADB_BINLOG_CHECKPOINT => return Ok(SourceEvent::Meta("BINLOG_CHECKPOINT")),
            MARIADB_GTID_LIST => return Ok(SourceEvent::Meta("GTID_LIST")),
            MARIADB_START_ENCRYPTION => return Ok(SourceEvent::Meta("START_ENCRYPTION")),
            MARIADB_GTID => {
                return mariadb_gtid(event.data(), header.server_id())
                    .ok_or_else(|| fail("truncated GTID event".into()));
            }
            0xa5..=0xab => {
                return Err(fail(
                    "MariaDB compressed events cannot be decoded: SET GLOBAL log_bin_compress=OFF on the source; ottr never skips an event"
                        .into(),
                ));
            }
            _ => {}
        }
        let data = event
            .read_data()
            .map_err(|error| fail(format!("cannot decode: {error}")))?
            .ok_or_else(|| {
                fail("unknown event type: ottr never skips an event it cannot decode".into())
            })?;
        Ok(match data {
            EventData::FormatDescriptionEvent(description) => {
                self.logging = SourceLogging::new(self.logging.flavor, description.split_version());
                SourceEvent::Meta("FORMAT_DESCRIPTION")
            }
            EventData::RotateEvent(rotate) => {
                let mut name = rotate.name_raw();
                // The fake ROTATE opening a stream carries the CRC after the name: strip it
                // when the name without those 4 bytes is a binlog name and with them is not.
                let looks_like_binlog = |name: &[u8]| {
                    name.rsplit(|byte| *byte == b'.')
                        .next()
                        .is_some_and(|extension| {
                            !extension.is_empty() && extension.iter().all(u8::is_ascii_digit)
                        })
                };
                if std::mem::take(&mut self.strip_opening_rotate_crc)
                    && header.log_pos() == 0
                    && name.len() > 4
                    && !looks_like_binlog(name)
                    && looks_like_binlog(&name[..name.len() - 4])
                {
                    name = &name[..name.len() - 4];
                }
                if header.log_pos() > 0 {
                    // A real ROTATE ends a file; table ids are announced again in the next.
                    self.tables.clear();
                }
                SourceEvent::Rotate {
                    file: String::from_utf8_lossy(name).into_owned(),
                }
            }
            EventData::HeartbeatEvent => SourceEvent::Heartbeat,
            EventData::XidEvent(_) => SourceEvent::Commit,
            EventData::QueryEvent(query) => match classify_query(query.query_raw()) {
                QueryKind::Statement => {
                    let session =
                        read_session(query.status_vars_raw(), self.logging, &self.collation_names);
                    let schema = std::str::from_utf8(query.schema_raw())
                        .map_err(|_| fail("its default database's name is not UTF-8".into()))?;
                    // A state that cannot be read whole matters only to a statement that
                    // must be replayed: Transform refuses it then, naming the problem.
                    let session = session.unwrap_or_else(|problem| {
                        Session::unreadable(problem, self.logging.flavor, self.logging.version)
                    });
                    SourceEvent::Query(Statement {
                        schema: schema.to_owned(),
                        text: query.query_raw().to_vec(),
                        session: Arc::new(session),
                    })
                }
                QueryKind::Begin => SourceEvent::Begin,
                QueryKind::Commit => SourceEvent::Commit,
                QueryKind::Rollback => SourceEvent::Rollback,
                QueryKind::XaRollback => SourceEvent::XaRollback {
                    sql: String::from_utf8_lossy(query.query_raw()).into_owned(),
                },
                QueryKind::Dummy => SourceEvent::Meta("DUMMY"),
            },
            EventData::TableMapEvent(tme) => {
                // Every rows event follows a TABLE_MAP of its table, mostly the same as last time.
                let known = self
                    .tables
                    .get(&tme.table_id())
                    .is_some_and(|(known, _)| *known == tme);
                if !known {
                    let decoder = table_decoder(&tme, &self.collations, self.geometry_has_charset)?;
                    self.tables
                        .insert(tme.table_id(), (tme.into_owned(), Arc::new(decoder)));
                }
                SourceEvent::Meta("TABLE_MAP")
            }
            EventData::RowsEvent(rows) => {
                SourceEvent::Rows(self.rows(&rows).map_err(|error| match error {
                    Error::Binlog(text) => fail(text),
                    other => other,
                })?)
            }
            EventData::GtidEvent(gtid) => SourceEvent::Gtid {
                gtid: TransactionGtid::MySql {
                    uuid: format_uuid(&gtid.sid()),
                    number: gtid.gno(),
                },
                standalone: false,
            },
            EventData::TransactionPayloadEvent(payload) => {
                // The stream inflates the payload into the events that follow, but drops it
                // without a word when it cannot: check it inflates whole, or stop here.
                let expected = payload.uncompressed_size();
                if expected > MAX_PAYLOAD_BYTES {
                    return Err(fail(format!(
                        "the compressed transaction announces {expected} bytes, more than ottr reads ({MAX_PAYLOAD_BYTES})"
                    )));
                }
                let inflated = payload
                    .decompressed()
                    .and_then(|reader| {
                        std::io::copy(
                            &mut std::io::Read::take(reader, expected + 1),
                            &mut std::io::sink(),
                        )
                    })
                    .map_err(|error| {
                        fail(format!(
                            "the compressed transaction cannot be inflated: {error}"
                        ))
                    })?;
                if inflated != expected {
                    return Err(fail(format!(
                        "the compressed transaction inflates to {inflated} bytes, not the {expected} it announces"
                    )));
                }
                SourceEvent::Meta("TRANSACTION_PAYLOAD")
            }
            EventData::IncidentEvent(incident) => {
                return Err(fail(format!(
                    "the source logged an incident ({:?}): its binlog may miss changes; re-snapshot the target",
                    incident.message()
                )));
            }
            // MariaDB ends the prepared part of an XA transaction with this event; its
            // changes are applied then (a later XA ROLLBACK of them is refused loudly).
            EventData::XaPrepareLogEvent(_) => SourceEvent::Commit,
            _ => {
                return Err(fail(
                    "this event has no row-based meaning ottr can apply (is binlog_format ROW?)"
                        .into(),
                ));
            }
        })
    }

    fn rows(&self, rows: &RowsEventData<'_>) -> Result<Vec<RowChange>> {
        let (tme, table) = self.tables.get(&rows.table_id()).ok_or_else(|| {
            Error::Binlog(format!(
                "rows of table id {} arrive without its TABLE_MAP",
                rows.table_id()
            ))
        })?;
        let kind = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                ChangeKind::Insert
            }
            RowsEventData::UpdateRowsEventV1(_)
            | RowsEventData::UpdateRowsEvent(_)
            | RowsEventData::PartialUpdateRowsEvent(_) => ChangeKind::Update,
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                ChangeKind::Delete
            }
        };
        // mysql_common overflows (a panic with overflow checks, which ottr's builds keep on) on
        // values it cannot read: stop loudly, naming the table (the whole event's decoding is
        // guarded too, see `decode`).
        let panicked = |panic: Box<dyn std::any::Any + Send>| {
            Error::Binlog(format!(
                "rows of {} cannot be decoded: decoding a value failed ({}); ottr never skips a row",
                table.meta.id,
                crate::error::panic_message(&*panic)
            ))
        };
        if !matches!(rows, RowsEventData::PartialUpdateRowsEvent(_)) {
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                parse_rows(rows, &table.columns, &table.meta.id)
            }))
            .map_err(panicked)??;
            return Ok(parsed
                .into_iter()
                .map(|(before, after)| RowChange {
                    table: table.meta.clone(),
                    kind,
                    before,
                    after,
                })
                .collect());
        }
        // MySQL's partial JSON updates: mysql_common's own row parser, up to its first error
        // (its iterator goes on returning errors at a position it cannot pass).
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let parsed = rows
                .rows(tme)
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|error| {
                    Error::Binlog(format!(
                        "rows of {} cannot be decoded: {error}",
                        table.meta.id
                    ))
                })?;
            let mut changes = Vec::new();
            for (before, after) in parsed {
                changes.push(RowChange {
                    table: table.meta.clone(),
                    kind,
                    before: before
                        .map(|row| image(&table.columns, &row, &table.meta.id))
                        .transpose()?,
                    after: after
                        .map(|row| image(&table.columns, &row, &table.meta.id))
                        .transpose()?,
                });
            }
            Ok(changes)
        }))
        .map_err(panicked)?
    }
}

/// A row change's images (before, after) as values.
type Images = (Option<Vec<Value>>, Option<Vec<Value>>);

/// The row images of a rows event (before, after), decoded straight from the event's bytes.
///
/// mysql_common's `RowsEventRows` builds a `Column` (schema, table and column names, each an
/// allocation) for every column of every image, and parses the TABLE_MAP's optional metadata
/// again for every row; that was most of Select's time. The layout per image: a bitmap of
/// the NULL columns among those present, then each non-NULL value as the column's type and
/// TABLE_MAP metadata say (mysql_common's value parser).
fn parse_rows<'a>(
    rows: &'a RowsEventData<'a>,
    columns: &'a [ColumnDecoder],
    table: &crate::model::TableId,
) -> Result<Vec<Images>> {
    let bad = |error: std::io::Error| {
        Error::Binlog(format!("rows of {table} cannot be decoded: {error}"))
    };
    let count = usize::try_from(rows.num_columns()).unwrap_or(usize::MAX);
    // the columns present in each image, in order
    let before_columns: Option<Vec<usize>> = rows.columns_before_image().map(|bits| {
        (0..count.min(columns.len()))
            .filter(|index| bits.get(*index).is_some_and(|bit| *bit))
            .collect()
    });
    let after_columns: Option<Vec<usize>> = rows.columns_after_image().map(|bits| {
        (0..count.min(columns.len()))
            .filter(|index| bits.get(*index).is_some_and(|bit| *bit))
            .collect()
    });
    for image in [&before_columns, &after_columns].into_iter().flatten() {
        if image.len() != columns.len() || count != columns.len() {
            return Err(Error::Precheck(format!(
                "a row image of {table} has {} of its {} columns: set binlog_row_image=FULL on the source",
                image.len(),
                columns.len()
            )));
        }
    }
    let mut buf = ParseBuf(rows.rows_data());
    let read_image = |buf: &mut ParseBuf<'a>, image: &[usize]| -> Result<Vec<Value>> {
        let nulls: &[u8] = buf.parse(image.len().div_ceil(8)).map_err(bad)?;
        let mut values = Vec::with_capacity(image.len());
        for (at, index) in image.iter().enumerate() {
            if nulls[at / 8] & (1 << (at % 8)) != 0 {
                values.push(Value::Null);
                continue;
            }
            // the TABLE_MAP's type (ENUM and SET resolved) and metadata bytes
            let decoder = &columns[*index];
            let value: BinlogValue<'_> = if decoder.column_type
                == mysql_async::consts::ColumnType::MYSQL_TYPE_TIME2
                && matches!(decoder.metadata.first(), Some(1 | 2))
            {
                // mysql_common's TIME(1)/TIME(2) arithmetic overflows on negative values
                let bytes: &[u8] = buf.parse(4).map_err(bad)?;
                BinlogValue::Value(short_time2(bytes.try_into().expect("4 bytes")))
            } else {
                buf.parse((
                    decoder.column_type,
                    decoder.metadata.as_slice(),
                    decoder.unsigned,
                    false,
                ))
                .map_err(bad)?
            };
            values.push(decoder.decode(&value)?);
        }
        Ok(values)
    };
    if before_columns.is_none() && after_columns.is_none() {
        return Err(Error::Binlog(format!(
            "a rows event of {table} has neither a before nor an after image"
        )));
    }
    let mut images = Vec::new();
    while !buf.is_empty() {
        let left = buf.len();
        let before = match &before_columns {
            Some(image) => Some(read_image(&mut buf, image)?),
            None => None,
        };
        let after = match &after_columns {
            Some(image) => Some(read_image(&mut buf, image)?),
            None => None,
        };
        if buf.len() >= left {
            // An image of no bytes at all: a table map without columns would loop forever.
            return Err(Error::Binlog(format!(
                "a row image of {table} takes no bytes: the rows event cannot be read"
            )));
        }
        images.push((before, after));
    }
    Ok(images)
}

/// A TIME(1) or TIME(2) value from its 4 binlog bytes: 3 bytes of sign-offset
/// hours-minutes-seconds (big-endian), then hundredths; a negative value with a fraction keeps
/// its fraction complemented (`0x100 - f`) and its integer part one lower, so that the bytes
/// sort as the values do (MySQL's `my_time_packed_from_binary`).
fn short_time2(bytes: [u8; 4]) -> mysql_async::Value {
    const INT_OFFSET: i64 = 0x80_0000;
    let mut int_part =
        i64::from(u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]])) - INT_OFFSET;
    let mut hundredths = i64::from(bytes[3]);
    if int_part < 0 && hundredths > 0 {
        int_part += 1;
        hundredths -= 0x100;
    }
    let packed = (int_part << 24) + hundredths * 10_000;
    let negative = packed < 0;
    let packed = packed.abs();
    let hms = packed >> 24;
    let micros = (packed % (1 << 24)) as u32;
    let hours = ((hms >> 12) % (1 << 10)) as u32;
    mysql_async::Value::Time(
        negative,
        hours / 24,
        (hours % 24) as u8,
        ((hms >> 6) % (1 << 6)) as u8,
        (hms % (1 << 6)) as u8,
        micros,
    )
}

/// Decodes one row image; every column must be present (binlog_row_image=FULL).
fn image(
    columns: &[ColumnDecoder],
    row: &BinlogRow,
    table: &crate::model::TableId,
) -> Result<Vec<Value>> {
    if row.len() != columns.len() {
        return Err(Error::Precheck(format!(
            "a row image of {table} has {} of its {} columns: set binlog_row_image=FULL on the source",
            row.len(),
            columns.len()
        )));
    }
    columns
        .iter()
        .enumerate()
        .map(|(index, column)| match row.as_ref(index) {
            Some(value) => column.decode(value),
            None => Ok(Value::Null),
        })
        .collect()
}

const STOP: u8 = 0x03;
const INTVAR: u8 = 0x05;
const RAND: u8 = 0x0d;
const USER_VAR: u8 = 0x0e;
const ROWS_QUERY: u8 = 0x1d;
const ANONYMOUS_GTID: u8 = 0x22;
const PREVIOUS_GTIDS: u8 = 0x23;
/// The most a compressed transaction may inflate to (as the stream reader bounds it).
const MAX_PAYLOAD_BYTES: u64 = 256 << 20;
const MARIADB_ANNOTATE_ROWS: u8 = 0xa0;
const MARIADB_BINLOG_CHECKPOINT: u8 = 0xa1;
const MARIADB_GTID: u8 = 0xa2;
const MARIADB_GTID_LIST: u8 = 0xa3;
const MARIADB_START_ENCRYPTION: u8 = 0xa4;

/// MariaDB GTID event body: sequence u64, domain u32, flags u8 (0x01 standalone).
fn mariadb_gtid(data: &[u8], server: u32) -> Option<SourceEvent> {
    let sequence = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    let flags = *data.get(12)?;
    Some(SourceEvent::Gtid {
        gtid: TransactionGtid::MariaDb(MariaGtid {
            domain,
            server,
            sequence,
        }),
        standalone: flags & 0x01 != 0,
    })
}

fn format_uuid(sid: &[u8; 16]) -> String {
    let hex: String = sid.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The name of an event type, for messages.
pub fn event_name(code: u8) -> String {
    let name = match code {
        0x02 => "QUERY",
        0x04 => "ROTATE",
        0x0f => "FORMAT_DESCRIPTION",
        0x10 => "XID",
        0x13 => "TABLE_MAP",
        0x17 => "WRITE_ROWS_V1",
        0x18 => "UPDATE_ROWS_V1",
        0x19 => "DELETE_ROWS_V1",
        0x1a => "INCIDENT",
        0x1b => "HEARTBEAT",
        0x1e => "WRITE_ROWS",
        0x1f => "UPDATE_ROWS",
        0x20 => "DELETE_ROWS",
        0x26 => "XA_PREPARE",
        0x21 => "GTID",
        0x27 => "PARTIAL_UPDATE_ROWS",
        0x28 => "TRANSACTION_PAYLOAD",
        0xa0 => "ANNOTATE_ROWS",
        0xa1 => "BINLOG_CHECKPOINT",
        0xa2 => "MARIADB_GTID",
        0xa3 => "GTID_LIST",
        0xa4 => "START_ENCRYPTION",
        0xa5 => "QUERY_COMPRESSED",
        0xa6 => "WRITE_ROWS_COMPRESSED_V1",
        0xa7 => "UPDATE_ROWS_COMPRESSED_V1",
        0xa8 => "DELETE_ROWS_COMPRESSED_V1",
        0xa9 => "WRITE_ROWS_COMPRESSED",
        0xaa => "UPDATE_ROWS_COMPRESSED",
        0xab => "DELETE_ROWS_COMPRESSED",
        _ => return format!("type 0x{code:02x}"),
    };
    format!("{name} (0x{code:02x})")
}

#[cfg(test)]
mod tests;
