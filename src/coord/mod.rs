//! How the nodes of an installation agree on who is alive and who may claim a pipeline.
//!
//! One interface, [`Coordinator`], with two implementations:
//! - [`Leases`]: the metadata database's lease clocks alone (the default);
//! - [`ZooKeeper`] (`ottr node --zk`): liveness by ephemeral nodes and ownership by leader
//!   election, on top of the leases.
//!
//! Either way the metadata database stays the truth and the fencing authority: a claim is a
//! lease row with a fencing token, and every position and target write is checked against it.
//! The node loop (`crate::node`) calls the coordinator; it never asks which one it has.

mod lease;
mod zk;

pub use lease::Leases;
pub use zk::ZooKeeper;

use crate::config::Settings;
use crate::meta::{Claim, Lease};
use crate::model::PipelineId;
use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// What changed in the coordinator's view at a [`Coordinator::refresh`], for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The coordinator answered after failing (or for the first time).
    Reachable,
    /// The coordinator stopped answering; the text says why.
    Unreachable(String),
    /// The session ended (expired, closed, or its authentication failed; the text says
    /// which): every claim made in it is unconfirmed.
    SessionEnded(String),
}

/// Who is alive, as the coordinator sees it.
#[derive(Debug, Clone, Copy)]
pub enum Liveness<'a> {
    /// Every node is judged by its heartbeat and lease clocks alone.
    ByLease,
    /// These node names are alive; a node that says it coordinates the same way but is not
    /// listed is taken for dead (its leases are up for election).
    Listed(&'a BTreeSet<String>),
    /// The coordinator cannot say now: claim nothing.
    Unknown,
}

/// What may be claimed after queueing for a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contention {
    /// Claim the lease this way.
    Claim(Claim),
    /// Another node is ahead: not now.
    Behind,
    /// The coordinator did not answer (the text says why): no more claims at this poll.
    Failed(String),
}

/// One node process's side of the coordination. Calls come from the node loop only.
pub trait Coordinator: Send {
    /// What `v_node_status.coordination` shows, for a node holding `held` pipelines.
    fn describe(&self, held: usize) -> String;

    /// Checks the connection (at each heartbeat) and reads who is alive; returns what
    /// changed, if anything.
    fn refresh(&mut self) -> impl Future<Output = Option<Change>> + Send;

    /// Takes new settings (timeouts).
    fn follow(&mut self, settings: &Settings);

    /// The session a claim made now belongs to.
    fn session(&self) -> u64;

    /// The local deadline of a pipeline claimed in `session` whose lease alone runs until
    /// `lease_until`, and whether the coordinator no longer confirms it (then it must be
    /// handed back at once).
    fn deadline(&self, session: u64, lease_until: Instant, now: Instant) -> (Instant, bool);

    /// Who is alive.
    fn alive(&self) -> Liveness<'_>;

    /// Queues for `pipeline` (once) and says how it may be claimed; `lease` is its lease
    /// row as last read.
    fn contend(
        &mut self,
        pipeline: PipelineId,
        lease: Option<&Lease>,
    ) -> impl Future<Output = Contention> + Send;

    /// Leaves the queue of `pipeline`.
    fn withdraw(&mut self, pipeline: PipelineId) -> impl Future<Output = ()> + Send;

    /// Leaves every queue but those of `keep`.
    fn withdraw_except(&mut self, keep: &BTreeSet<PipelineId>) -> impl Future<Output = ()> + Send;

    /// How long a dead holder's pipeline may wait for its takeover, with leases of `lease`.
    fn takeover(&self, lease: Duration) -> Duration;

    /// Leaves every queue and says goodbye, at a node's stop.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}
