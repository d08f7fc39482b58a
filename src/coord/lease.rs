//! Coordination by the metadata database's lease clocks alone: a node is alive while it
//! heartbeats, and a pipeline may be claimed when its lease is free or expired.

use super::{Change, Contention, Coordinator, Liveness};
use crate::config::Settings;
use crate::meta::{Claim, Lease};
use crate::model::PipelineId;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// Leases alone: nothing to connect to, nothing to confirm.
#[derive(Debug, Default)]
pub struct Leases;

impl Coordinator for Leases {
    fn describe(&self, _held: usize) -> String {
        "leases".to_owned()
    }

    async fn refresh(&mut self) -> Option<Change> {
        None
    }

    fn follow(&mut self, _settings: &Settings) {}

    fn session(&self) -> u64 {
        0
    }

    fn deadline(&self, _session: u64, lease_until: Instant, _now: Instant) -> (Instant, bool) {
        (lease_until, false)
    }

    fn alive(&self) -> Liveness<'_> {
        Liveness::ByLease
    }

    async fn contend(&mut self, _pipeline: PipelineId, _lease: Option<&Lease>) -> Contention {
        Contention::Claim(Claim::Lease)
    }

    async fn withdraw(&mut self, _pipeline: PipelineId) {}

    async fn withdraw_except(&mut self, _keep: &BTreeSet<PipelineId>) {}

    fn takeover(&self, lease: Duration) -> Duration {
        lease
    }

    async fn close(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leases_confirm_until_the_lease_ends_and_always_let_a_node_claim() {
        let mut leases = Leases;
        let now = Instant::now();
        let until = now + Duration::from_secs(3);
        assert_eq!(leases.deadline(0, until, now), (until, false));
        assert_eq!(
            leases.contend(PipelineId(1), None).await,
            Contention::Claim(Claim::Lease)
        );
        assert!(matches!(leases.alive(), Liveness::ByLease));
        assert_eq!(leases.describe(2), "leases");
    }
}
