//! Reconciling what this node runs with the configuration read at a poll: stopping what
//! should no longer run here, restarting what changed, spawning pipeline tasks.

use super::balance::Runnable;
use super::{Held, Node};
use crate::config::{ConfigError, ConfigSnapshot, PipelineConfig, validate_pipeline};
use crate::coord::Coordinator;
use crate::error::chain;
use crate::meta::{self, EventLevel};
use crate::model::{EventKind, FencingToken, PipelineId};
use crate::pipeline::{PipelineHandle, PipelineTask, StopReason};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

impl<C: Coordinator> Node<C> {
    /// Stops what should no longer run here; restarts what changed.
    pub(super) async fn reconcile(&mut self, snapshot: &ConfigSnapshot, leases: &[meta::Lease]) {
        let me = self.registration.name.clone();
        let pipelines: Vec<PipelineId> = self.held.keys().copied().collect();
        for pipeline in pipelines {
            let row = snapshot.pipelines.iter().find(|row| row.id == pipeline);
            let lease = leases.iter().find(|lease| lease.pipeline == pipeline);
            let held = &self.held[&pipeline];
            let still_ours = lease
                .is_some_and(|l| l.holder.as_deref() == Some(me.as_str()) && l.token == held.token);
            let allowed = Runnable {
                pipeline,
                allowed_nodes: snapshot.allowed_nodes(pipeline),
            }
            .allows(&me);
            let stop = match row {
                None => Some((StopReason::Removed, false)),
                Some(_) if !still_ours => Some((StopReason::LeaseLost, false)),
                Some(row) if !snapshot.is_desired_running(row) => {
                    Some((StopReason::ChannelStopped, true))
                }
                Some(_) if !allowed => Some((StopReason::Removed, true)),
                Some(_) if self.drained => Some((StopReason::Drained, true)),
                Some(row) => {
                    let config = validate_pipeline(snapshot, row);
                    if config != held.config {
                        self.restart(pipeline, config).await;
                    }
                    None
                }
            };
            if let Some((reason, release)) = stop {
                let held = self.held.remove(&pipeline).expect("held pipeline");
                held.handle.stop(reason).await;
                if release
                    && let Err(error) = meta::release_lease(&self.meta, pipeline, held.token).await
                {
                    warn!(pipeline = %pipeline, error = %chain(&error), "cannot release the lease");
                }
                self.coordinator.withdraw(pipeline).await;
                if reason == StopReason::LeaseLost {
                    warn!(pipeline = %pipeline, why = "taken over", "lease lost");
                    let text = "lease lost: taken over, expired or reset";
                    self.log(EventLevel::Warn, Some(pipeline), EventKind::LeaseLost, text)
                        .await;
                } else {
                    info!(pipeline = %pipeline, reason = %reason, "pipeline stopped");
                    let text = reason.to_string();
                    self.log(
                        EventLevel::Info,
                        Some(pipeline),
                        EventKind::PipelineStopped,
                        &text,
                    )
                    .await;
                }
            }
        }
    }

    /// Restarts a held pipeline's task with a new configuration, under the same lease.
    pub(super) async fn restart(
        &mut self,
        pipeline: PipelineId,
        config: Result<PipelineConfig, ConfigError>,
    ) {
        let Some(held) = self.held.remove(&pipeline) else {
            return;
        };
        held.handle.stop(StopReason::ConfigChanged).await;
        info!(pipeline = %pipeline, "configuration changed: restarting the pipeline");
        self.log(
            EventLevel::Info,
            Some(pipeline),
            EventKind::ConfigChanged,
            "configuration changed: pipeline restarted",
        )
        .await;
        let handle = self.spawn(pipeline, held.token, &held.deadline, config.clone());
        self.held.insert(
            pipeline,
            Held {
                config,
                handle,
                ..held
            },
        );
    }

    pub(super) fn spawn(
        &self,
        pipeline: PipelineId,
        token: FencingToken,
        deadline: &watch::Sender<Instant>,
        config: Result<PipelineConfig, ConfigError>,
    ) -> PipelineHandle {
        PipelineTask {
            meta: self.meta.clone(),
            node: self.registration.name.clone(),
            instance: self.registration.instance,
            pipeline,
            token,
            config,
            settings: self.settings.clone(),
            takeover: self.coordinator.takeover(self.settings.lease),
            installation: self.installation.clone(),
        }
        .spawn(deadline.subscribe())
    }
}
