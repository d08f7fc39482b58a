//! Claiming: queueing with the coordinator for the pipelines the balance rule gives this
//! node, taking their leases, starting their tasks; and what the coordinator's view tells
//! the event log (reachability, nodes that use another ensemble).

use super::{Held, Node, deadline_after};
use crate::config::{ConfigSnapshot, validate_pipeline};
use crate::coord::{Change, Contention, Coordinator};
use crate::error::{Error, Result, chain};
use crate::meta::{self, EventLevel};
use crate::model::{EventKind, PipelineId};
use std::collections::BTreeSet;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

impl<C: Coordinator> Node<C> {
    /// Says in the event log what changed in the connection to ZooKeeper.
    pub(super) async fn log_zookeeper_change(&self, change: Change) {
        match change {
            Change::Reachable => {
                let text = "zookeeper reachable: claiming pipelines by election";
                self.log(EventLevel::Info, None, EventKind::ZookeeperReachable, text)
                    .await
            }
            Change::Unreachable(why) => {
                let text = format!(
                    "zookeeper unreachable ({why}): claiming nothing, handing back the {} held pipelines when their tokens can no longer be confirmed",
                    self.held.len()
                );
                self.log(
                    EventLevel::Warn,
                    None,
                    EventKind::ZookeeperUnreachable,
                    &text,
                )
                .await
            }
            Change::SessionEnded(how) => {
                let text = format!(
                    "zookeeper session ended ({how}): its pipelines are handed back, a new session is built"
                );
                self.log(
                    EventLevel::Warn,
                    None,
                    EventKind::ZookeeperSessionEnded,
                    &text,
                )
                .await
            }
        }
    }

    /// Queues for each planned pipeline, claims those the coordinator lets this node
    /// claim, and starts their tasks. Only a replaced node is an error.
    pub(super) async fn claim(
        &mut self,
        plan: Vec<PipelineId>,
        snapshot: &ConfigSnapshot,
        leases: &[meta::Lease],
    ) -> Result<()> {
        for pipeline in plan {
            let lease = leases.iter().find(|lease| lease.pipeline == pipeline);
            let claim = match self.coordinator.contend(pipeline, lease).await {
                Contention::Claim(claim) => claim,
                Contention::Behind => continue,
                Contention::Failed(why) => {
                    // Counted as unreachable until the next refresh: no more calls now.
                    warn!(pipeline = %pipeline, error = why, "cannot queue for the pipeline");
                    break;
                }
            };
            let sent = Instant::now();
            let session = self.coordinator.session();
            let claimed = meta::claim_lease(
                &self.meta,
                pipeline,
                &self.registration,
                self.settings.lease,
                &claim,
            )
            .await;
            if !matches!(claimed, Ok(Some(_))) {
                self.coordinator.withdraw(pipeline).await;
            }
            match claimed {
                Ok(Some(token)) => {
                    let Some(row) = snapshot.pipelines.iter().find(|row| row.id == pipeline) else {
                        continue;
                    };
                    let config = validate_pipeline(snapshot, row);
                    info!(pipeline = %pipeline, token = %token, "lease acquired");
                    self.log(
                        EventLevel::Info,
                        Some(pipeline),
                        EventKind::LeaseAcquired,
                        &format!("lease acquired with token {token}"),
                    )
                    .await;
                    let lease_until = deadline_after(sent, self.settings.lease);
                    let (deadline, _) =
                        self.coordinator
                            .deadline(session, lease_until, Instant::now());
                    let (deadline, _) = watch::channel(deadline);
                    let handle = self.spawn(pipeline, token, &deadline, config.clone());
                    self.held.insert(
                        pipeline,
                        Held {
                            token,
                            deadline,
                            config,
                            handle,
                            session,
                            lease_until,
                        },
                    );
                }
                Ok(None) => {}
                Err(error @ Error::NodeReplaced { .. }) => return Err(error),
                Err(error) => warn!(pipeline = %pipeline, error = %chain(&error), "claim failed"),
            }
        }
        Ok(())
    }

    /// Reports (once each) nodes that have said for longer than a lease and a session that
    /// they coordinate through ZooKeeper, and heartbeat all along, but that this node's
    /// ensemble does not list: they use another ensemble (or chroot), and each side takes the
    /// other for dead. Fencing keeps the data right, but pipelines would move back and forth.
    pub(super) async fn look_for_strangers(
        &mut self,
        nodes: &[meta::NodeState],
        alive: &BTreeSet<String>,
    ) {
        let me = &self.registration.name;
        let missing: BTreeSet<&String> = nodes
            .iter()
            .filter(|node| node.alive && node.zookeeper && node.claiming)
            .map(|node| &node.name)
            .filter(|name| *name != me && !alive.contains(*name))
            .collect();
        self.strangers.retain(|name, _| missing.contains(name));
        let now = Instant::now();
        for name in missing {
            self.strangers.entry(name.clone()).or_insert((now, false));
        }
        let patience = self.settings.lease + self.settings.zk_session_timeout();
        let due: Vec<String> = self
            .strangers
            .iter()
            .filter(|(_, (since, reported))| !reported && since.elapsed() > patience)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            let text = format!(
                "node {name} heartbeats and says it coordinates through ZooKeeper, but the ensemble this node uses does not list it: every --zk node of an installation must use the same ensemble (and chroot)"
            );
            error!("{text}");
            self.log(
                EventLevel::Error,
                None,
                EventKind::ZookeeperEnsembleMismatch,
                &text,
            )
            .await;
            if let Some((_, reported)) = self.strangers.get_mut(&name) {
                *reported = true;
            }
        }
    }
}
