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

use super::batch::{Batch, ByteBudget, Change, Reservation};
use super::echo;
use super::event::{SourceEvent, TransactionGtid};
use super::stream::{BinlogReader, ReadEvent, ReaderOptions};
use crate::config::DataSource;
use crate::error::{Error, ErrorClass, Result, chain};
use crate::model::{BinlogFilePos, ChangeAt, GtidState, Position, TableId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// How Select cuts batches and reconnects.
#[derive(Debug, Clone)]
pub struct SelectOptions {
    pub reader: ReaderOptions,
    pub batch_rows: usize,
    pub batch_bytes: usize,
    pub batch_timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Whether a transaction bigger than a batch may be split across batches (bounded memory);
    /// off in transactional mode, where each source transaction is applied whole.
    pub split_transactions: bool,
    /// Cut a batch between transactions as soon as the source has sent nothing for this long,
    /// rather than waiting for `batch_timeout` (as Canal hands on what is there): the tail of
    /// a catch-up and an idle source's heartbeats are not held back. `None`: by time only.
    pub cut_when_idle: Option<Duration>,
    /// Keys (`installation/pipeline id`) of the pipelines that write into this source from
    /// this pipeline's target: transactions they wrote are dropped whole (loop avoidance).
    pub echo_keys: HashSet<String>,
}

/// The transaction being read.
#[derive(Debug, Clone)]
struct Transaction {
    /// Where it starts (its GTID or BEGIN event).
    start: BinlogFilePos,
    gtid: Option<TransactionGtid>,
    /// A single statement with no BEGIN/COMMIT (a MariaDB standalone GTID, or a MySQL GTID
    /// not followed by BEGIN).
    standalone: bool,
    /// Row changes read so far, skipped ones included.
    rows_seen: u64,
    /// Where this transaction's changes start in the batch being built; None once part of
    /// it was handed on (a rollback can then no longer be undone here).
    first_index: Option<usize>,
    /// Savepoints: name and index in the batch being built (None once handed on past it).
    savepoints: Vec<(String, Option<usize>)>,
    /// Written by a pipeline of `echo_keys`: its changes are dropped.
    echo: bool,
    /// An echo transaction that announces a DDL: the connection that runs it next.
    announces_ddl: Option<u32>,
}

impl Transaction {
    fn new(
        start: BinlogFilePos,
        gtid: Option<TransactionGtid>,
        standalone: bool,
        first_index: usize,
    ) -> Self {
        Transaction {
            start,
            gtid,
            standalone,
            rows_seen: 0,
            first_index: Some(first_index),
            savepoints: Vec::new(),
            echo: false,
            announces_ddl: None,
        }
    }
}

impl Drop for Selector {
    fn drop(&mut self) {
        self.budget.release(self.building_bytes);
    }
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
    /// Time spent placing events in batches since the last cut (statistics).
    busy: Duration,
    /// Connections whose next DDL was announced by an echo transaction: that DDL is dropped.
    echo_ddl_threads: HashSet<u32>,
    /// Whether source tables are transactional, as far as a ROLLBACK needed to know.
    transactional: HashMap<TableId, bool>,
    /// Tables whose engines a ROLLBACK waiting in `pending_statement` needs first.
    engines_wanted: Vec<TableId>,
    /// Notes for the event log, handed on with the next batch.
    notes: Vec<String>,
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
            busy: Duration::ZERO,
            echo_ddl_threads: HashSet::new(),
            transactional: HashMap::new(),
            engines_wanted: Vec::new(),
            notes: Vec::new(),
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
            if !self.engines_wanted.is_empty() {
                let tables = std::mem::take(&mut self.engines_wanted);
                match super::engines::transactional(&self.source, &tables).await {
                    Ok(found) => self.transactional.extend(found),
                    Err(error) if error.class() == ErrorClass::Transient => {
                        self.retry_after(&error).await;
                        continue;
                    }
                    Err(error) => return Err(error),
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
                        let error = Error::StreamLost(format!(
                            "no event and no heartbeat from data source '{}' for {} ms",
                            self.source.name,
                            self.idle_limit().as_millis()
                        ));
                        self.retry_after(&error).await;
                    }
                }
                Ok(Ok(Some(read))) => {
                    self.last_read = Instant::now();
                    let handled = self.handle(read);
                    self.busy += self.last_read.elapsed();
                    if let Some(batch) = handled? {
                        return Ok(Some(batch));
                    }
                }
                Ok(Ok(None)) if !self.options.reader.stop_at_end => {
                    let error = Error::StreamLost(format!(
                        "data source '{}' ended the binlog stream",
                        self.source.name
                    ));
                    self.retry_after(&error).await;
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
        // Announcements read before the restart: their DDL may lie ahead.
        self.echo_ddl_threads = echo::announced(&self.source, &self.options.echo_keys).await?;
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
        self.engines_wanted.clear();
        self.notes.clear();
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
            let timeout =
                (since + self.options.batch_timeout).saturating_duration_since(Instant::now());
            match self.options.cut_when_idle {
                Some(idle) if self.transaction.is_none() => timeout.min(idle),
                _ => timeout,
            }
        });
        let until_idle = self.idle_limit().saturating_sub(self.last_read.elapsed());
        until_cut
            .map_or(until_idle, |cut| cut.min(until_idle))
            .max(Duration::from_millis(1))
    }

    /// A batch cut because its time is up, or because the source went quiet (with
    /// `cut_when_idle`), if one may be cut now (between transactions). Called when no event
    /// came within [`Selector::wait`].
    fn cut_on_time(&mut self) -> Option<Batch> {
        let due = self.building_since.is_some_and(|since| {
            since.elapsed() >= self.options.batch_timeout
                || self
                    .options
                    .cut_when_idle
                    .is_some_and(|idle| self.last_read.elapsed() >= idle)
        });
        (due && self.transaction.is_none()).then(|| self.cut(self.committed.clone()))
    }

    /// Hands on what was built, resuming at `end` once it is applied.
    fn cut(&mut self, end: Position) -> Batch {
        let changes = std::mem::take(&mut self.building);
        let bytes = std::mem::take(&mut self.building_bytes);
        self.building_since = None;
        self.handed_on = end.clone();
        self.backoff = self.options.retry_min;
        let decoding = self
            .reader
            .as_mut()
            .map_or(Duration::ZERO, BinlogReader::take_busy);
        Batch {
            changes,
            end,
            last_event_time: self.last_event_time,
            select_time: std::mem::take(&mut self.busy) + decoding,
            notes: std::mem::take(&mut self.notes),
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
        let may_cut = self.transaction.is_none() || self.options.split_transactions;
        if full && may_cut && !self.building.is_empty() {
            let end = match &self.transaction {
                // Cut inside a transaction: resume at its start, past the rows handed on.
                // Resume at its start, past the rows before this change (its own index).
                Some(transaction) => Position {
                    file: Some(transaction.start.clone()),
                    gtid: self.committed.gtid.clone(),
                    trx_rows_done: match &change {
                        Change::Row(_, at) | Change::Ddl { at, .. } => at.index,
                    },
                },
                None => self.committed.clone(),
            };
            self.pending.push_front((change, time));
            if let Some(transaction) = &mut self.transaction {
                transaction.first_index = None;
                for (_, index) in &mut transaction.savepoints {
                    *index = None;
                }
            }
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
                self.abandon_open_transaction(&read.start)?;
                // A MySQL GTID is followed by BEGIN for a transaction, or by one statement.
                let standalone = standalone || matches!(gtid, TransactionGtid::MySql { .. });
                self.transaction = Some(Transaction::new(
                    read.start,
                    Some(gtid),
                    standalone,
                    self.building.len(),
                ));
                Ok(None)
            }
            SourceEvent::Begin => {
                match &mut self.transaction {
                    Some(transaction) if transaction.standalone && transaction.rows_seen == 0 => {
                        transaction.standalone = false;
                    }
                    _ => {
                        self.abandon_open_transaction(&read.start)?;
                        self.transaction = Some(Transaction::new(
                            read.start,
                            None,
                            false,
                            self.building.len(),
                        ));
                    }
                }
                Ok(None)
            }
            SourceEvent::Rows(changes) => {
                let first_index = self.building.len();
                let transaction = self.transaction.get_or_insert_with(|| {
                    Transaction::new(read.start.clone(), None, false, first_index)
                });
                let mut rows = Vec::with_capacity(changes.len());
                for change in changes {
                    transaction.rows_seen += 1;
                    // The mark is the first change of every transaction a pipeline writes,
                    // so an echo is known before any of its rows (and again when a split
                    // transaction is read from its start after a restart).
                    match echo::mark(&change, &self.options.echo_keys) {
                        echo::Mark::Echo => transaction.echo = true,
                        echo::Mark::AnnouncesDdl(thread) if transaction.echo => {
                            transaction.announces_ddl = Some(thread);
                        }
                        echo::Mark::DdlDone(thread) => {
                            self.echo_ddl_threads.remove(&thread);
                        }
                        _ => {}
                    }
                    if transaction.echo {
                        continue;
                    }
                    if transaction.rows_seen > self.skip {
                        let at = ChangeAt {
                            transaction: transaction.start.clone(),
                            index: transaction.rows_seen - 1,
                        };
                        rows.push((Change::Row(change, at), read.timestamp));
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
            SourceEvent::Commit => {
                let transaction = self.transaction.take();
                if let Some(thread) = transaction.as_ref().and_then(|t| t.announces_ddl) {
                    self.echo_ddl_threads.insert(thread);
                }
                self.committed = self.after(transaction.as_ref(), read.end);
                self.skip = 0;
                Ok(self.cut_if_full())
            }
            SourceEvent::Rollback => {
                // A server logs a ROLLBACK with rows only when some could not be rolled back:
                // the rows of non-transactional tables persisted on the source and are kept
                // (as a replica applies them); the rest never happened and is dropped.
                if let Some(transaction) = &self.transaction
                    && let Some(first) = transaction.first_index
                {
                    let unknown: Vec<TableId> = self
                        .rolled_back_tables(first)
                        .into_iter()
                        .filter(|table| !self.transactional.contains_key(table))
                        .collect();
                    if !unknown.is_empty() {
                        // their engines are looked up first (see `next_batch`)
                        self.engines_wanted = unknown;
                        self.pending_statement = Some(read);
                        return Ok(None);
                    }
                }
                let transaction = self.transaction.take();
                if let Some(transaction) = &transaction {
                    self.roll_back_keeping_non_transactional(
                        transaction.first_index,
                        &read.start,
                        "ROLLBACK",
                    )?;
                }
                self.committed = self.after(transaction.as_ref(), read.end);
                self.skip = 0;
                Ok(self.cut_if_full())
            }
            SourceEvent::Query(statement) => {
                let standalone = self
                    .transaction
                    .as_ref()
                    .is_none_or(|transaction| transaction.standalone);
                if !standalone {
                    if self.transaction.as_ref().is_some_and(|t| t.echo) {
                        return Ok(None);
                    }
                    if let Some(unknown) = self.engines_to_know(&statement) {
                        // the savepoint's rows' engines are looked up first (`next_batch`)
                        self.engines_wanted = unknown;
                        self.pending_statement = Some(ReadEvent {
                            event: SourceEvent::Query(statement),
                            ..read
                        });
                        return Ok(None);
                    }
                    return self.inner_statement(statement, &read.start, read.timestamp);
                }
                if let Some(thread) = read.thread_id
                    && self.echo_ddl_threads.remove(&thread)
                {
                    // A DDL a pipeline of `echo_keys` ran: passed over, not handed on.
                    let transaction = self.transaction.take();
                    self.committed = self.after(transaction.as_ref(), read.end);
                    self.skip = 0;
                    return Ok(None);
                }
                if !self.building.is_empty() {
                    // A statement is a batch of its own: hand on what came before it first.
                    let before = self.committed.clone();
                    self.pending_statement = Some(ReadEvent {
                        event: SourceEvent::Query(statement),
                        ..read
                    });
                    return Ok(Some(self.cut(before)));
                }
                let transaction = self.transaction.take();
                let at = ChangeAt {
                    transaction: transaction
                        .as_ref()
                        .map_or(read.start.clone(), |t| t.start.clone()),
                    index: 0,
                };
                self.committed = self.after(transaction.as_ref(), read.end.clone());
                self.skip = 0;
                // a table's engine may change with DDL
                self.transactional.clear();
                let statement = Change::Ddl { statement, at };
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
    /// After a transaction: a batch is cut when full, or when the transaction wrote an online
    /// copy's or a verification's high watermark (something waits for it: see
    /// `pipeline::copy`).
    fn cut_if_full(&mut self) -> Option<Batch> {
        let full = self.building.len() >= self.options.batch_rows
            || self.building_bytes >= self.options.batch_bytes;
        let watermark = matches!(self.building.last(), Some(Change::Row(row, _))
            if crate::sys::copy::is_high_watermark(row));
        ((full || watermark) && !self.building.is_empty()).then(|| self.cut(self.committed.clone()))
    }
}

mod transaction;

#[cfg(test)]
mod tests;
