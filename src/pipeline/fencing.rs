//! Raising the lease's fencing token when a data server holds one the lease has not passed
//! (the metadata handed a token out twice, as after a failover to a replica that missed
//! lease rows), and stopping for good when it happens again soon (two lease authorities).

use super::{PipelineTask, seconds};
use crate::error::{Error, chain};
use crate::meta::{self, EventLevel};
use crate::model::{EventKind, FencingToken, PipelineState};
use tracing::warn;

/// Leases within which a second fencing-token raise stops the pipeline (see
/// `PipelineTask::raise_token`).
pub(super) const RAISE_WINDOW_LEASES: u32 = 10;

impl PipelineTask {
    /// A data server holds a token for this pipeline the lease has not passed: raises the
    /// lease's token to it and hands the lease back (only while the lease is still this
    /// task's), so that the next claim takes a token no holder has used. Ends the task.
    ///
    /// A second raise within [`RAISE_WINDOW_LEASES`] leases means two lease authorities (two
    /// metadata databases with the same installation id, or a split brain), which would
    /// raise past each other in turn: the pipeline then stays in `error`, holding its lease,
    /// until the channel is stopped.
    pub(super) async fn raise_token(&self, server: &str, newest: FencingToken) -> Error {
        let fenced = Error::Fenced {
            pipeline: self.pipeline,
            token: self.token,
        };
        let window = self.settings.lease * RAISE_WINDOW_LEASES;
        match meta::recent_events(
            &self.meta,
            self.pipeline,
            EventKind::FencingTokenRaised,
            window,
        )
        .await
        {
            Ok(0) => {}
            Ok(_) => {
                let reason = format!(
                    "data source '{server}' holds fencing token {newest}, not older than this \
                     lease's {}, again within {}: is another metadata database handing out \
                     leases for this pipeline (a copy with the same installation id, or a split \
                     brain)? Stop the other one, then stop and start the channel",
                    self.token,
                    seconds(window)
                );
                if let Err(error) = self.report(PipelineState::Error, Some(&reason)).await {
                    return error;
                }
                self.log(EventLevel::Error, EventKind::PipelineError, &reason)
                    .await;
                return std::future::pending().await;
            }
            Err(error) => {
                warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot read the event log");
                return fenced;
            }
        }
        match meta::raise_lease_token(&self.meta, self.pipeline, &self.node, self.token, newest)
            .await
        {
            Ok(true) => {
                let text = format!(
                    "data source '{server}' holds fencing token {newest}, not older than this \
                     lease's {}: the metadata handed the token out before (a failover to a \
                     replica that missed lease rows?); the lease's token is raised to {newest} \
                     and the lease handed back, so the next claim takes a new one",
                    self.token
                );
                warn!(pipeline = %self.pipeline, "{text}");
                self.log(EventLevel::Warn, EventKind::FencingTokenRaised, &text)
                    .await;
            }
            Ok(false) => {}
            Err(error) => {
                warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot raise the lease's fencing token");
            }
        }
        fenced
    }
}
