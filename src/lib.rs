//! ottr: binlog-based synchronisation of MySQL and MariaDB databases whose control plane lives
//! inside a MySQL database.
//!
//! Operators configure ottr by calling procedures and inserting rows in a metadata schema, and
//! read its state from views in the same schema. Nodes (`ottr node`) register there, claim
//! pipelines through leases with fencing tokens, and write back positions and state.
//!
//! # Layout
//!
//! - [`error`]: the one error type and its class (transient, table, fatal).
//! - [`failpoint`]: faults the tests inject into debug builds (`OTTR_FAILPOINTS`).
//! - [`model`]: typed ids, positions and start points shared by every stage.
//! - [`config`]: typed rows read from the metadata schema and their pure validation.
//! - [`meta`]: the only code that speaks SQL to the metadata schema (migrate, reads, writes).
//! - [`node`]: registration, heartbeats, leases, choosing which pipelines to run, shutdown.
//! - [`pipeline`]: running one claimed pipeline; [`pipeline::select`] owns the source
//!   connection (prechecks and start positions today, the binlog reader next).
//! - [`monitor`]: alarm rules checked on their cron schedule, alerts, auto-recovery and
//!   mail; run by one node at a time under the monitor lease.
//! - [`status`]: the `ottr status` and `ottr check` reports.
//! - [`inspect`]: `ottr binlog`, the decoded events of a source, for debugging.
//! - [`sql`]: SQL text built from names and bytes: quoted identifiers, hex literals.
//! - [`tls`]: TLS options and encryption of connections to MySQL/MariaDB servers.

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
