//! Select: everything that reads the source server. Today: the prechecks a source must pass
//! before streaming, and resolving a start point into a position. The binlog reader lands
//! here next; it owns the source connection.

mod precheck;
mod start;

pub use precheck::{Check, Outcome, first_failure, run_prechecks};
pub use start::resolve_end;
