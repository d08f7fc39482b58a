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

use super::echo;
use super::event::{SourceEvent, TransactionGtid};
use super::stream::{BinlogReader, ReadEvent, ReaderOptions};
use crate::config::DataSource;
use crate::error::{Error, ErrorClass, Result, chain};
use crate::model::{BinlogFilePos, ChangeAt, GtidState, Position, RowChange, Statement, TableId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// One change handed on by Select.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// A changed row, and where it is in the source binlog.
    Row(RowChange, ChangeAt),
    /// A statement (DDL) as the source logged it, and where it is.
    Ddl { statement: Statement, at: ChangeAt },
}

impl Change {
    fn size(&self) -> usize {
        match self {
            Change::Row(row, _) => row.size(),
            Change::Ddl { statement, .. } => 64 + statement.schema.len() + statement.text.len(),
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
    /// Time Select spent decoding and batching this batch (waiting for the source excluded).
    pub select_time: Duration,
    /// What Select did that the event log should say (rows of a rolled-back transaction
    /// kept because their tables are not transactional).
    pub notes: Vec<String>,
    reservation: Reservation,
}

/// What of a batch crosses the network between the select and the load side: its changes
/// and where reading resumes once they are applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchData {
    pub changes: Vec<Change>,
    pub end: Position,
}

impl Batch {
    /// The serialisable part of this batch (a copy; the batch keeps counting its bytes).
    pub fn data(&self) -> BatchData {
        BatchData {
            changes: self.changes.clone(),
            end: self.end.clone(),
        }
    }

    /// Takes the changes out; the batch keeps counting its bytes until it is dropped.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

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

/// What a statement inside a transaction means to Select.
enum InnerStatement {
    Savepoint(String),
    RollbackTo(String),
    /// RELEASE SAVEPOINT, XA END: nothing to hand on.
    Nothing,
    /// Table DDL logged inside a transaction (CREATE TABLE … SELECT): handed on in order.
    Ddl,
    /// Anything else: statement-based DML, which cannot be applied row by row.
    Unknown,
}

fn classify_inner(sql: &str) -> InnerStatement {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(4)
        .map(|word| {
            word.trim_matches(|c| c == '`' || c == ';')
                .to_ascii_uppercase()
        })
        .collect();
    let name = |index: usize| -> String {
        sql.split_whitespace()
            .nth(index)
            .unwrap_or_default()
            .trim_matches(|c| c == '`' || c == ';')
            .to_owned()
    };
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["SAVEPOINT", ..] => InnerStatement::Savepoint(name(1)),
        ["ROLLBACK", "TO", "SAVEPOINT", ..] | ["ROLLBACK", "WORK", "TO", "SAVEPOINT"] => {
            InnerStatement::RollbackTo(name(words.len() - 1))
        }
        ["ROLLBACK", "TO", ..] => InnerStatement::RollbackTo(name(2)),
        ["RELEASE", ..] | ["XA", "END", ..] => InnerStatement::Nothing,
        ["CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE", ..] => InnerStatement::Ddl,
        _ => InnerStatement::Unknown,
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

    /// Handles a statement inside a BEGIN … COMMIT transaction.
    fn inner_statement(
        &mut self,
        statement: Statement,
        start: &BinlogFilePos,
        time: u32,
    ) -> Result<Option<Batch>> {
        let building = self.building.len();
        let transaction = self.transaction.as_mut().expect("inside a transaction");
        let sql = statement.shown(200);
        match classify_inner(&sql) {
            InnerStatement::Savepoint(name) => {
                transaction
                    .savepoints
                    .retain(|(existing, _)| *existing != name);
                transaction.savepoints.push((name, Some(building)));
                Ok(None)
            }
            InnerStatement::RollbackTo(name) => {
                let Some(at) = transaction
                    .savepoints
                    .iter()
                    .position(|(existing, _)| *existing == name)
                else {
                    return Err(Error::Binlog(format!(
                        "`{sql}` at {} names no savepoint of its transaction",
                        start
                    )));
                };
                let index = transaction.savepoints[at].1;
                transaction.savepoints.truncate(at + 1);
                // Logged only when non-transactional rows were changed since the savepoint
                // (their engines were looked up before, see `handle`).
                self.roll_back_keeping_non_transactional(index, start, &sql)?;
                Ok(None)
            }
            InnerStatement::Nothing => Ok(None),
            InnerStatement::Ddl => {
                let at = ChangeAt {
                    transaction: transaction.start.clone(),
                    index: transaction.rows_seen,
                };
                Ok(self.add(Change::Ddl { statement, at }, time))
            }
            InnerStatement::Unknown => Err(Error::Binlog(format!(
                "statement `{}` at {} inside a transaction cannot be applied row by row: \
                 a session on the source writes with binlog_format=STATEMENT or MIXED; make it ROW",
                sql.chars().take(80).collect::<String>(),
                start
            ))),
        }
    }

    /// For a `ROLLBACK TO` a savepoint of the open transaction: the tables of the rows it
    /// rolls back whose engines are not known yet (None when there are none).
    fn engines_to_know(&self, statement: &Statement) -> Option<Vec<TableId>> {
        let InnerStatement::RollbackTo(name) = classify_inner(&statement.shown(200)) else {
            return None;
        };
        let transaction = self.transaction.as_ref()?;
        let (_, index) = transaction
            .savepoints
            .iter()
            .find(|(existing, _)| *existing == name)?;
        let unknown: Vec<TableId> = self
            .rolled_back_tables((*index)?)
            .into_iter()
            .filter(|table| !self.transactional.contains_key(table))
            .collect();
        (!unknown.is_empty()).then_some(unknown)
    }

    /// The tables of the rows built from `first` on.
    fn rolled_back_tables(&self, first: usize) -> Vec<TableId> {
        let mut tables: Vec<TableId> = self.building[first.min(self.building.len())..]
            .iter()
            .filter_map(|change| match change {
                Change::Row(row, _) => Some(row.table.id.clone()),
                Change::Ddl { .. } => None,
            })
            .collect();
        tables.sort();
        tables.dedup();
        tables
    }

    /// A ROLLBACK of `transaction`: its rows of non-transactional tables stay (the source
    /// kept them), the others are dropped; a note says what was kept.
    fn roll_back_keeping_non_transactional(
        &mut self,
        first: Option<usize>,
        at: &BinlogFilePos,
        what: &str,
    ) -> Result<()> {
        let Some(first) = first else {
            return self.roll_back_to(None, at, what);
        };
        let first = first.min(self.building.len());
        let kept_tables: Vec<TableId> = self
            .rolled_back_tables(first)
            .into_iter()
            .filter(|table| self.transactional.get(table) == Some(&false))
            .collect();
        if kept_tables.is_empty() {
            return self.roll_back_to(Some(first), at, what);
        }
        let rolled_back: Vec<Change> = self.building.drain(first..).collect();
        let mut kept = 0;
        for change in rolled_back {
            match &change {
                Change::Row(row, _) if kept_tables.contains(&row.table.id) => {
                    kept += 1;
                    self.building.push(change);
                }
                _ => {
                    let size = change.size();
                    self.building_bytes -= size;
                    self.budget.release(size);
                }
            }
        }
        let names: Vec<String> = kept_tables.iter().map(ToString::to_string).collect();
        let note = format!(
            "`{what}` at {at}: {kept} rows of non-transactional tables ({}) persisted on the source and are applied; the other rows it rolled back are dropped",
            names.join(", ")
        );
        warn!(source = %self.source.name, "{note}");
        self.notes.push(note);
        if self.building.is_empty() {
            self.building_since = None;
        }
        Ok(())
    }

    /// Drops the changes built from `index` on (a rollback). Fails if some of them were
    /// already handed on (`index` is None), since they can no longer be taken back here.
    fn roll_back_to(&mut self, index: Option<usize>, at: &BinlogFilePos, what: &str) -> Result<()> {
        let Some(index) = index else {
            return Err(Error::Binlog(format!(
                "`{what}` at {at} rolls back changes of a transaction split across batches, some already \
                 handed on: raise the pipeline's batch_rows/batch_bytes above the transaction's size and \
                 re-snapshot the tables it touched"
            )));
        };
        let dropped: usize = self
            .building
            .drain(index.min(self.building.len())..)
            .map(|change| change.size())
            .sum();
        self.building_bytes -= dropped;
        self.budget.release(dropped);
        if self.building.is_empty() {
            self.building_since = None;
        }
        Ok(())
    }

    /// A new transaction starts while one is still open: the open one was cut short (a
    /// binlog truncated by a crash), so its changes never committed and are dropped.
    fn abandon_open_transaction(&mut self, at: &BinlogFilePos) -> Result<()> {
        match self.transaction.take() {
            Some(open) if !open.standalone || open.rows_seen > 0 => {
                warn!(source = %self.source.name, at = %at, started = %open.start, "a transaction without its commit: dropping it");
                self.roll_back_to(open.first_index, at, "a transaction without its commit")
            }
            _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataSourceKind, Secret};
    use crate::model::{
        ChangeKind, ColumnMeta, DataSourceId, MariaGtid, TableId, TableMeta, Value,
    };

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
}
