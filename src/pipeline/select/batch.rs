//! What Select hands on: batches of changes (rows and DDL, each with where it is in the
//! source binlog) and the position reading resumes at once a batch is applied, with the bytes
//! every batch holds counted in a shared budget until it is dropped.

use crate::model::{ChangeAt, Position, RowChange, Statement};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// One change handed on by Select.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// A changed row, and where it is in the source binlog.
    Row(RowChange, ChangeAt),
    /// A statement (DDL) as the source logged it, and where it is.
    Ddl { statement: Statement, at: ChangeAt },
}

impl Change {
    #[inline]
    pub(super) fn size(&self) -> usize {
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

    #[inline]
    pub(super) fn add(&self, bytes: usize) {
        let now = self.buffered.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn release(&self, bytes: usize) {
        self.buffered.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Bytes of one batch, released from the budget when the batch is dropped.
#[derive(Debug)]
pub(super) struct Reservation {
    pub(super) budget: Arc<ByteBudget>,
    pub(super) bytes: usize,
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
    pub(super) reservation: Reservation,
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
