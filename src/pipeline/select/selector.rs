//! The Select stage: turns the binlog into batches of whole transactions, cut at a number of
//! rows, of bytes, or after a time, whichever comes first, each with the position where
//! reading resumes once it is applied.
//!
//! Invariants:
//! - a resume position is always a transaction start (after XID, COMMIT or a standalone
//!   statement), plus, inside a transaction split across batches, how many of its row changes
//!   were already handed on; reopening there hands on every later row exactly once;
//! - bytes buffered in batches (the one being built and those handed on but not yet dropped)
//!   are counted in a [`ByteBudget`]; a batch is cut before a row would take it past
//!   `batch_bytes`, so a transaction of any size streams through bounded memory;
//! - a lost connection, a dead stream (no event, not even a heartbeat, for three heartbeat
//!   periods) or a restarted server is reopened from the last position handed on, with
//!   backoff; everything read after that position is discarded and read again.

use super::event::{SourceEvent, TransactionGtid};
use super::stream::{BinlogReader, ReadEvent, ReaderOptions};
use crate::config::DataSource;
use crate::error::{Error, ErrorClass, Result, chain};
use crate::model::{BinlogFilePos, GtidState, Position, RowChange};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// One change handed on by Select.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Row(RowChange),
    /// A statement outside any transaction (DDL), with the session's default schema.
    Ddl {
        schema: String,
        sql: String,
    },
}

impl Change {
    fn size(&self) -> usize {
        match self {
            Change::Row(row) => row.size(),
            Change::Ddl { schema, sql } => 64 + schema.len() + sql.len(),
        }
    }
}

/// Bytes held in batches, shared between Select and whoever holds its batches.
#[derive(Debug, Default)]
pub struct ByteBudget {
    buffered: AtomicUsize,
    peak: AtomicUsize,
}

impl ByteBudget {
    /// Bytes buffered now.
    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// The most bytes ever buffered at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        let now = self.buffered.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        self.buffered.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Bytes of one batch, released from the budget when the batch is dropped.
#[derive(Debug)]
struct Reservation {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// Changes of whole transactions (or of one part of a transaction too big for a batch).
#[derive(Debug)]
pub struct Batch {
    pub changes: Vec<Change>,
    /// Where reading resumes once this batch is applied.
    pub end: Position,
    /// The source timestamp of the last event read into the batch.
    pub last_event_time: u32,
    reservation: Reservation,
}

impl Batch {
    /// Bytes this batch counts against the budget.
    pub fn bytes(&self) -> usize {
        self.reservation.bytes
    }
}

/// How Select cuts batches and reconnects.
#[derive(Debug, Clone)]
pub struct SelectOptions {
    pub reader: ReaderOptions,
    pub batch_rows: usize,
    pub batch_bytes: usize,
    pub batch_timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// The transaction being read.
#[derive(Debug, Clone)]
struct Transaction {
    /// Where it starts (its GTID or BEGIN event).
    start: BinlogFilePos,
    gtid: Option<TransactionGtid>,
    /// A MariaDB standalone statement: no BEGIN/COMMIT follows.
    standalone: bool,
    /// Row changes read so far, skipped ones included.
    rows_seen: u64,
}

/// The Select stage of one pipeline.
pub struct Selector {
    source: DataSource,
    options: SelectOptions,
    budget: Arc<ByteBudget>,
    /// The position after the last batch handed on.
    handed_on: Position,
    reader: Option<BinlogReader>,
    /// The position after the last complete transaction read.
    committed: Position,
    transaction: Option<Transaction>,
    /// Rows of the first transaction after (re)opening that were handed on before.
    skip: u64,
    building: Vec<Change>,
    building_bytes: usize,
    /// When the batch being built got its first change, or the position last moved.
    building_since: Option<Instant>,
    last_event_time: u32,
    /// Row changes read but not yet placed in a batch (the rest of a rows event when a batch
    /// was cut in its middle), and a statement waiting behind a cut.
    pending: VecDeque<(Change, u32)>,
    pending_statement: Option<ReadEvent>,
    backoff: Duration,
    /// How many times the stream was reopened after a failure.
    reconnects: u64,
    /// When the last event (heartbeats included) arrived.
    last_read: Instant,
}

impl Selector {
    /// A selector that starts reading at `start`.
    pub fn new(
        source: DataSource,
        options: SelectOptions,
        start: Position,
        budget: Arc<ByteBudget>,
    ) -> Self {
        let backoff = options.retry_min;
        Selector {
            source,
            options,
            budget,
            committed: start.clone(),
            handed_on: start,
            reader: None,
            transaction: None,
            skip: 0,
            building: Vec::new(),
            building_bytes: 0,
            building_since: None,
            last_event_time: 0,
            pending: VecDeque::new(),
            pending_statement: None,
            backoff,
            reconnects: 0,
            last_read: Instant::now(),
        }
    }

    /// How many times the stream was reopened after a failure.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The position after the last batch handed on.
    pub fn position(&self) -> &Position {
        &self.handed_on
    }

    /// The next batch; None only when the reader stops at the end of the binlog
    /// (`stop_at_end`) and nothing is left. Transient failures are retried inside.
    pub async fn next_batch(&mut self) -> Result<Option<Batch>> {
        loop {
            while let Some((change, time)) = self.pending.pop_front() {
                if let Some(batch) = self.add(change, time) {
                    return Ok(Some(batch));
                }
            }
            if let Some(statement) = self.pending_statement.take() {
                if let Some(batch) = self.handle(statement)? {
                    return Ok(Some(batch));
                }
                continue;
            }
            if self.reader.is_none() {
                match self.open().await {
                    Ok(()) => {}
                    Err(error) if error.class() == ErrorClass::Transient => {
                        self.retry_after(&error).await;
                        continue;
                    }
                    Err(error) => return Err(error),
                }
            }
            let wait = self.wait();
            let reader = self.reader.as_mut().expect("opened above");
            match tokio::time::timeout(wait, reader.next()).await {
                Err(_) => {
                    if let Some(batch) = self.cut_on_time() {
                        return Ok(Some(batch));
                    }
                    if self.idle_too_long() {
                        let error = Error::Binlog(format!(
                            "no event and no heartbeat from data source '{}' for {} ms",
                            self.source.name,
                            self.idle_limit().as_millis()
                        ));
                        self.retry_after(&error).await;
                    }
                }
                Ok(Ok(Some(read))) => {
                    self.last_read = Instant::now();
                    if let Some(batch) = self.handle(read)? {
                        return Ok(Some(batch));
                    }
                }
                Ok(Ok(None)) => {
                    if self.transaction.is_none()
                        && (!self.building.is_empty() || self.committed != self.handed_on)
                    {
                        return Ok(Some(self.cut(self.committed.clone())));
                    }
                    return Ok(None);
                }
                Ok(Err(error)) if error.class() == ErrorClass::Transient => {
                    self.retry_after(&error).await
                }
                Ok(Err(error)) => return Err(error),
            }
        }
    }

    /// Opens the stream at the last position handed on, forgetting everything read after it.
    async fn open(&mut self) -> Result<()> {
        self.discard();
        let position = self.handed_on.clone();
        let reader = BinlogReader::open(
            &self.source,
            &self.options.reader,
            position.file.as_ref(),
            if position.file.is_none() {
                position.gtid.as_ref()
            } else {
                None
            },
        )
        .await?;
        self.reader = Some(reader);
        self.committed = position.clone();
        self.skip = position.trx_rows_done;
        self.last_read = Instant::now();
        Ok(())
    }

    /// Drops the reader and whatever was read after the last position handed on.
    fn discard(&mut self) {
        self.reader = None;
        self.transaction = None;
        self.pending.clear();
        self.pending_statement = None;
        self.building.clear();
        self.budget.release(self.building_bytes);
        self.building_bytes = 0;
        self.building_since = None;
    }

    async fn retry_after(&mut self, error: &Error) {
        warn!(
            source = %self.source.name,
            position = %self.handed_on,
            retry_in_ms = self.backoff.as_millis() as u64,
            error = %chain(error),
            "binlog stream failed: reopening"
        );
        self.discard();
        self.reconnects += 1;
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(self.options.retry_max);
    }

    fn idle_limit(&self) -> Duration {
        self.options.reader.heartbeat * 3 + Duration::from_secs(1)
    }

    fn idle_too_long(&self) -> bool {
        !self.options.reader.stop_at_end && self.last_read.elapsed() > self.idle_limit()
    }

    /// How long to wait for the next event before checking the batch timeout and liveness.
    fn wait(&self) -> Duration {
        let until_cut = self.building_since.map(|since| {
            (since + self.options.batch_timeout).saturating_duration_since(Instant::now())
        });
        let until_idle = self.idle_limit().saturating_sub(self.last_read.elapsed());
        until_cut
            .map_or(until_idle, |cut| cut.min(until_idle))
            .max(Duration::from_millis(1))
    }

    /// A batch cut because its time is up, if one may be cut now (between transactions).
    fn cut_on_time(&mut self) -> Option<Batch> {
        let due = self
            .building_since
            .is_some_and(|since| since.elapsed() >= self.options.batch_timeout);
        (due && self.transaction.is_none()).then(|| self.cut(self.committed.clone()))
    }

    /// Hands on what was built, resuming at `end` once it is applied.
    fn cut(&mut self, end: Position) -> Batch {
        let changes = std::mem::take(&mut self.building);
        let bytes = std::mem::take(&mut self.building_bytes);
        self.building_since = None;
        self.handed_on = end.clone();
        self.backoff = self.options.retry_min;
        Batch {
            changes,
            end,
            last_event_time: self.last_event_time,
            reservation: Reservation {
                budget: self.budget.clone(),
                bytes,
            },
        }
    }

    /// Adds a change to the batch being built; returns a batch when one had to be cut first
    /// (the change then waits in `pending`).
    fn add(&mut self, change: Change, time: u32) -> Option<Batch> {
        let size = change.size();
        let full = self.building.len() >= self.options.batch_rows
            || self.building_bytes + size > self.options.batch_bytes;
        if full && !self.building.is_empty() {
            let end = match &self.transaction {
                // Cut inside a transaction: resume at its start, past the rows handed on.
                Some(transaction) => Position {
                    file: Some(transaction.start.clone()),
                    gtid: self.committed.gtid.clone(),
                    trx_rows_done: transaction.rows_seen - 1 - self.pending.len() as u64,
                },
                None => self.committed.clone(),
            };
            self.pending.push_front((change, time));
            return Some(self.cut(end));
        }
        self.budget.add(size);
        self.building_bytes += size;
        self.building.push(change);
        self.last_event_time = time;
        self.building_since.get_or_insert_with(Instant::now);
        None
    }

    /// Handles one event; returns a batch when one is complete.
    fn handle(&mut self, read: ReadEvent) -> Result<Option<Batch>> {
        match read.event {
            SourceEvent::Gtid { gtid, standalone } => {
                self.transaction = Some(Transaction {
                    start: read.start,
                    gtid: Some(gtid),
                    standalone,
                    rows_seen: 0,
                });
                Ok(None)
            }
            SourceEvent::Begin => {
                if self.transaction.is_none() {
                    self.transaction = Some(Transaction {
                        start: read.start,
                        gtid: None,
                        standalone: false,
                        rows_seen: 0,
                    });
                }
                Ok(None)
            }
            SourceEvent::Rows(changes) => {
                let transaction = self.transaction.get_or_insert_with(|| Transaction {
                    start: read.start.clone(),
                    gtid: None,
                    standalone: false,
                    rows_seen: 0,
                });
                let mut rows = Vec::with_capacity(changes.len());
                for change in changes {
                    transaction.rows_seen += 1;
                    if transaction.rows_seen > self.skip {
                        rows.push((Change::Row(change), read.timestamp));
                    }
                }
                // Count the rows still to be placed, so a cut knows how many were handed on.
                self.pending.extend(rows);
                while let Some((change, time)) = self.pending.pop_front() {
                    if let Some(batch) = self.add(change, time) {
                        return Ok(Some(batch));
                    }
                }
                Ok(None)
            }
            SourceEvent::Commit | SourceEvent::Rollback => {
                let transaction = self.transaction.take();
                self.committed = self.after(transaction.as_ref(), read.end);
                self.skip = 0;
                Ok(self.cut_if_full())
            }
            SourceEvent::Query { schema, sql } => {
                let standalone = self
                    .transaction
                    .as_ref()
                    .is_none_or(|transaction| transaction.standalone);
                if !standalone {
                    // SAVEPOINT, ROLLBACK TO, XA END…: nothing to hand on.
                    return Ok(None);
                }
                if !self.building.is_empty() {
                    // A statement is a batch of its own: hand on what came before it first.
                    let before = self.committed.clone();
                    self.pending_statement = Some(ReadEvent {
                        event: SourceEvent::Query { schema, sql },
                        ..read
                    });
                    return Ok(Some(self.cut(before)));
                }
                let transaction = self.transaction.take();
                self.committed = self.after(transaction.as_ref(), read.end.clone());
                self.skip = 0;
                let statement = Change::Ddl { schema, sql };
                let size = statement.size();
                self.budget.add(size);
                self.building_bytes = size;
                self.building.push(statement);
                self.last_event_time = read.timestamp;
                Ok(Some(self.cut(self.committed.clone())))
            }
            SourceEvent::Rotate { file } => {
                if read.end.offset > 0 && self.transaction.is_none() {
                    // A real ROTATE ends a file: what follows starts the next one.
                    self.committed.file = Some(BinlogFilePos { file, offset: 4 });
                }
                Ok(None)
            }
            SourceEvent::XaRollback { sql } => Err(Error::Binlog(format!(
                "`{sql}` at {} rolls back an XA transaction whose changes were handed on at its XA PREPARE: \
                 the target keeps them; re-snapshot the tables it touched",
                read.start
            ))),
            SourceEvent::Heartbeat | SourceEvent::Meta(_) => Ok(None),
        }
    }

    /// The position after `transaction`, which ended at `end`.
    fn after(&self, transaction: Option<&Transaction>, end: BinlogFilePos) -> Position {
        let gtid = match (
            transaction.and_then(|t| t.gtid.as_ref()),
            &self.committed.gtid,
        ) {
            (Some(TransactionGtid::MariaDb(gtid)), Some(state)) => {
                Some(state.with_committed(*gtid))
            }
            (Some(TransactionGtid::MariaDb(gtid)), None) => Some(GtidState::MariaDb(vec![*gtid])),
            (_, state) => state.clone(),
        };
        Position {
            file: Some(end),
            gtid,
            trx_rows_done: 0,
        }
    }

    /// A batch, if the one being built is full at a transaction boundary.
    fn cut_if_full(&mut self) -> Option<Batch> {
        let full = self.building.len() >= self.options.batch_rows
            || self.building_bytes >= self.options.batch_bytes;
        (full && !self.building.is_empty()).then(|| self.cut(self.committed.clone()))
    }
}
