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

pub mod config;
pub mod error;
pub mod inspect;
pub mod meta;
pub mod model;
pub mod monitor;
pub mod node;
pub mod pipeline;
mod row;
pub mod sql;
pub mod status;

pub use error::{Error, ErrorClass};
