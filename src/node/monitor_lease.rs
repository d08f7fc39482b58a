//! The monitor lease: one node at a time runs the monitor (alarm rules, mail); this node
//! renews the lease while it holds it, claims it when it is free or expired, and starts or
//! stops the monitor task to match.

use super::{Node, deadline_after};
use crate::coord::Coordinator;
use crate::error::chain;
use crate::meta::{self, EventLevel};
use crate::model::EventKind;
use crate::monitor;
use tokio::time::Instant;
use tracing::{info, warn};

impl<C: Coordinator> Node<C> {
    /// Renews the monitor lease while this node holds it, or claims it when it is free or
    /// expired; starts and stops the monitor task to match.
    pub(super) async fn beat_monitor(&mut self) {
        let lease = self.settings.lease;
        let name = self.registration.name.clone();
        let sent = Instant::now();
        if self.drained {
            if let Some(handle) = self.monitor.take() {
                let token = handle.token;
                handle.abort();
                let _ = meta::monitor::release_monitor(&self.meta, &name, token).await;
                info!("monitor handed over: node drained");
            }
            return;
        }
        let Some(handle) = &self.monitor else {
            match meta::monitor::claim_monitor(&self.meta, &name, lease).await {
                Ok(Some(token)) => {
                    info!(token, "monitor lease acquired");
                    self.monitor = Some(monitor::spawn(
                        self.meta.clone(),
                        name,
                        self.settings.clone(),
                        token,
                        deadline_after(sent, lease),
                    ));
                    self.log(
                        EventLevel::Info,
                        None,
                        EventKind::MonitorAcquired,
                        &format!("this node runs the monitor (token {token})"),
                    )
                    .await;
                }
                Ok(None) => {}
                Err(error) => warn!(error = %chain(&error), "cannot claim the monitor lease"),
            }
            return;
        };
        let renewal = meta::monitor::renew_monitor(&self.meta, &name, handle.token, lease);
        let lost = match tokio::time::timeout(lease / 4, renewal).await {
            Ok(Ok(true)) if !handle.is_finished() => {
                handle.deadline.send_replace(deadline_after(sent, lease));
                None
            }
            Ok(Ok(true)) => {
                // Still ours, but its task ended: hand the lease back so that a monitor runs again.
                let _ = meta::monitor::release_monitor(&self.meta, &name, handle.token).await;
                Some("its task stopped")
            }
            Ok(Ok(false)) => Some("expired or taken over"),
            Ok(Err(error)) => {
                warn!(error = %chain(&error), "monitor lease renewal failed");
                (Instant::now() >= *handle.deadline.borrow()).then_some("not renewed in time")
            }
            Err(_) => {
                (Instant::now() >= *handle.deadline.borrow()).then_some("not renewed in time")
            }
        };
        if let Some(why) = lost
            && let Some(handle) = self.monitor.take()
        {
            handle.abort();
            warn!(why, "monitor lease lost");
            self.log(
                EventLevel::Warn,
                None,
                EventKind::MonitorLost,
                &format!("monitor lease lost: {why}"),
            )
            .await;
        }
    }
}
