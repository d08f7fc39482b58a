//! ottr: binlog-based synchronisation of MySQL and MariaDB databases whose control plane lives
//! inside a MySQL database.
//!
//! Operators configure ottr by calling procedures and inserting rows in a metadata schema, and
//! read its state from views in the same schema. Nodes (`ottr node`) register there, claim
//! pipelines through leases with fencing tokens, and write back positions and state.
//!
//! # The data path: Select → Extract → Transform → Load
//!
//! One claimed pipeline (one direction of a channel, source → target) runs as one task
//! ([`pipeline::PipelineTask`]): [`pipeline::start`](pipeline) prechecks the source and
//! resolves the start position, then the stream loop moves batches through four stages.
//!
//! | stage | module | reads | hands on | may touch |
//! |---|---|---|---|---|
//! | **Select** | [`pipeline::select`] | the source's binlog (a replica connection), decoded event by event, never skipping one | [`pipeline::select::Batch`]: whole transactions (or parts of a huge one) of [`pipeline::select::Change`]s (row images with [`model::ChangeAt`], DDL as a [`model::Statement`] with its session), and the [`model::Position`] reading resumes at | the source only |
//! | **Extract** | [`pipeline::extract`] | a batch's changes | the changes of paired tables, columns included or excluded | nothing (pure) |
//! | **Transform** | [`pipeline::transform`] | extracted changes | [`pipeline::transform::TargetChange`]: rows renamed and bound to target values ([`pipeline::transform::bind`]), DDL planned for the target | nothing (pure) |
//! | **Load** | [`pipeline::load`] | target changes and the batch's end position | rows applied in partitions, exactly once, DDL as a barrier; two-way conflicts decided and repaired | the target (and, two-way, the source's write-back row) |
//!
//! Beside the stream, [`pipeline::copy`] copies live tables (jobs of `copy_tables`): chunks
//! read between watermarks on the source, spliced into the stream at their high watermark, and
//! applied there by Load with their progress (see `pipeline::copy::splice`).
//! [`pipeline::verify`] compares live tables the same way: a chunk's aggregate read between
//! watermarks on the source, and in a target snapshot the stream starts at the high
//! watermark; differing keys compared value by value, and repaired as copy chunks of keys.
//!
//! After each batch the pipeline writes the position to the metadata (fenced by its lease's
//! token), lag ([`pipeline::heartbeat`]) and statistics ([`pipeline::stats`]).
//!
//! # Layers, from the bottom up
//!
//! Each module imports only from the ones listed before it (no module imports from a later
//! one, and there is no import cycle):
//!
//! - [`model`]: typed ids and keys, positions and start points, row changes and statements,
//!   the closed sets the schema stores (pipeline state, channel mode, event kind), what the
//!   statistics count, conflict and skipped-row records. No IO.
//! - [`failpoint`]: faults the tests inject into debug builds (`OTTR_FAILPOINTS`).
//! - [`sql`]: SQL text both ways: quoting names and values, and the one SQL tokenizer.
//! - [`config`]: typed configuration rows and their pure validation.
//! - [`tls`]: TLS options and encryption of connections to MySQL/MariaDB servers.
//! - [`error`]: the one error type; each variant is definite (fatal) or transient.
//! - [`sys`]: every statement on `ottr_sys`, what ottr keeps on data servers (applied
//!   positions and fencing, DDL records, repair suspects, heartbeats).
//! - [`meta`]: the only code that speaks SQL to the metadata schema (migrate, reads, writes).
//! - [`coord`]: who is alive and who may claim: one [`coord::Coordinator`] interface, with
//!   leases alone or ZooKeeper.
//! - [`pipeline`]: running one claimed pipeline (the stages above).
//! - [`monitor`]: alarm rules on their cron schedule, alerts, auto-recovery and mail; run by
//!   one node at a time under the monitor lease.
//! - [`node`]: registration, heartbeats, leases and claims through the coordinator, the
//!   monitor lease, reconciling pipeline tasks with the configuration, shutdown.
//! - [`status`], [`inspect`]: the `ottr status`/`ottr check` reports and `ottr binlog`.

pub mod config;
pub mod coord;
pub mod error;
pub mod failpoint;
pub mod inspect;
pub mod meta;
pub mod model;
pub mod monitor;
pub mod node;
pub mod pipeline;
mod row;
pub mod sql;
pub mod sys;

/// Unit tests see the largest allocation a piece of code makes (the decoders' property tests
/// bound what a length field can make them allocate).
#[cfg(test)]
pub(crate) mod test_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static TRACKING: Cell<bool> = const { Cell::new(false) };
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    pub struct Tracking;

    /// Records `size` while tracking, except what a panic's report allocates (the panic
    /// hook's backtrace), which is not the tracked code's own.
    fn note(size: usize) {
        if TRACKING.with(Cell::get) && !std::thread::panicking() {
            LARGEST.with(|largest| largest.set(largest.get().max(size)));
        }
    }

    unsafe impl GlobalAlloc for Tracking {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Tracking = Tracking;

    /// Runs `work` and returns its result with the largest single allocation it made on
    /// this thread.
    pub fn largest_allocation<T>(work: impl FnOnce() -> T) -> (T, usize) {
        LARGEST.with(|largest| largest.set(0));
        TRACKING.with(|tracking| tracking.set(true));
        let result = work();
        TRACKING.with(|tracking| tracking.set(false));
        (result, LARGEST.with(Cell::get))
    }
}
pub mod status;
pub mod tls;

pub use error::{Error, ErrorClass};
