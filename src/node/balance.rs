//! Which free pipelines a node tries to claim at one poll. Pure: decided from the rows read.
//!
//! Balance rule: a node claims at most ceil(runnable / alive nodes) pipelines while another
//! alive node that may run the pipeline holds fewer than that; it never takes a live lease
//! from another node. Candidates are tried in an order that differs per node, so that nodes
//! starting together do not all race for the same pipeline first.

use crate::meta::Lease;
use crate::model::PipelineId;
use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

/// A pipeline the operator wants running, with the nodes allowed to run it (empty: any).
#[derive(Debug, Clone)]
pub struct Runnable {
    pub pipeline: PipelineId,
    pub allowed_nodes: Vec<String>,
}

impl Runnable {
    /// Whether `node` may run this pipeline.
    pub fn allows(&self, node: &str) -> bool {
        self.allowed_nodes.is_empty() || self.allowed_nodes.iter().any(|allowed| allowed == node)
    }
}

/// The pipelines `me` should try to claim now, in the order to try them.
pub fn plan_claims(
    me: &str,
    runnable: &[Runnable],
    leases: &[Lease],
    alive: &[String],
    held: &BTreeSet<PipelineId>,
) -> Vec<PipelineId> {
    let mut counts: HashMap<&str, usize> = alive.iter().map(|node| (node.as_str(), 0)).collect();
    for lease in leases.iter().filter(|lease| lease.live) {
        if let Some(count) = lease
            .holder
            .as_deref()
            .and_then(|holder| counts.get_mut(holder))
        {
            *count += 1;
        }
    }
    let nodes = alive.iter().filter(|node| node.as_str() != me).count() + 1;
    let cap = runnable.len().div_ceil(nodes);
    let mut mine = held.len();
    let lease_of = |pipeline: PipelineId| leases.iter().find(|lease| lease.pipeline == pipeline);
    let mut candidates: Vec<&Runnable> = runnable
        .iter()
        .filter(|candidate| candidate.allows(me) && !held.contains(&candidate.pipeline))
        .filter(|candidate| match lease_of(candidate.pipeline) {
            Some(lease) => !lease.live || lease.holder.as_deref() == Some(me),
            None => false,
        })
        .collect();
    candidates.sort_by_key(|candidate| {
        let mut hasher = DefaultHasher::new();
        (me, candidate.pipeline).hash(&mut hasher);
        hasher.finish()
    });
    let mut plan = Vec::new();
    for candidate in candidates {
        let own_lease =
            lease_of(candidate.pipeline).and_then(|lease| lease.holder.as_deref()) == Some(me);
        let another_has_room = alive.iter().any(|node| {
            node != me
                && candidate.allows(node)
                && counts.get(node.as_str()).copied().unwrap_or(0) < cap
        });
        if mine >= cap && another_has_room && !own_lease {
            continue;
        }
        plan.push(candidate.pipeline);
        mine += 1;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FencingToken;

    fn runnable(ids: &[u32]) -> Vec<Runnable> {
        ids.iter()
            .map(|id| Runnable {
                pipeline: PipelineId(*id),
                allowed_nodes: vec![],
            })
            .collect()
    }

    fn lease(id: u32, holder: Option<&str>, live: bool) -> Lease {
        Lease {
            pipeline: PipelineId(id),
            holder: holder.map(str::to_owned),
            token: FencingToken(1),
            live,
        }
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_lone_node_claims_everything_free() {
        let leases: Vec<Lease> = (1..=5).map(|id| lease(id, None, false)).collect();
        let plan = plan_claims(
            "a",
            &runnable(&[1, 2, 3, 4, 5]),
            &leases,
            &names(&["a"]),
            &BTreeSet::new(),
        );
        assert_eq!(plan.len(), 5);
    }

    #[test]
    fn with_three_nodes_each_claims_its_share() {
        let leases: Vec<Lease> = (1..=5).map(|id| lease(id, None, false)).collect();
        let plan = plan_claims(
            "a",
            &runnable(&[1, 2, 3, 4, 5]),
            &leases,
            &names(&["a", "b", "c"]),
            &BTreeSet::new(),
        );
        assert_eq!(plan.len(), 2, "ceil(5 / 3)");
    }

    #[test]
    fn live_leases_of_others_are_never_taken_but_expired_ones_are() {
        let leases = vec![lease(1, Some("b"), true), lease(2, Some("b"), false)];
        let plan = plan_claims(
            "a",
            &runnable(&[1, 2]),
            &leases,
            &names(&["a", "b"]),
            &BTreeSet::new(),
        );
        assert_eq!(plan, vec![PipelineId(2)]);
    }

    #[test]
    fn a_restarted_node_takes_back_its_own_live_leases() {
        let leases = vec![lease(1, Some("a"), true)];
        let plan = plan_claims(
            "a",
            &runnable(&[1]),
            &leases,
            &names(&["a"]),
            &BTreeSet::new(),
        );
        assert_eq!(plan, vec![PipelineId(1)]);
    }

    #[test]
    fn a_node_beyond_its_share_still_claims_what_no_other_node_may_run() {
        let mut pipelines = runnable(&[1, 2]);
        pipelines[1].allowed_nodes = names(&["a"]);
        let leases = vec![lease(1, Some("a"), true), lease(2, None, false)];
        let held = BTreeSet::from([PipelineId(1)]);
        let plan = plan_claims("a", &pipelines, &leases, &names(&["a", "b"]), &held);
        assert_eq!(plan, vec![PipelineId(2)]);
    }

    #[test]
    fn pipelines_for_other_nodes_only_are_left_alone() {
        let mut pipelines = runnable(&[1]);
        pipelines[0].allowed_nodes = names(&["b"]);
        let plan = plan_claims(
            "a",
            &pipelines,
            &[lease(1, None, false)],
            &names(&["a", "b"]),
            &BTreeSet::new(),
        );
        assert!(plan.is_empty());
    }
}
