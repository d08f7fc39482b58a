//! Starting a pipeline: prechecks of the source, a check that the target is reachable (and
//! how each connection is encrypted), and the start position resolved and saved when none is.

use super::{PipelineTask, connect, load, select};
use crate::config::PipelineConfig;
use crate::error::{Result, chain};
use crate::meta::{self, EventLevel};
use crate::model::{EventKind, Position, StartPoint};
use tracing::warn;

/// Where streaming starts, as the prechecks resolved it.
#[derive(Debug)]
pub(super) struct Start {
    pub(super) position: Position,
    /// A warning to show with the running state (position near the oldest binlog kept).
    pub(super) warning: Option<String>,
}

impl PipelineTask {
    /// Prechecks the source, checks the target, and saves the start position if none is
    /// saved. Returns the summary shown as the reason of a running pipeline.
    pub(super) async fn check_and_resolve(&self, config: &PipelineConfig) -> Result<Start> {
        let mut source = connect(&config.source).await?;
        let checks = select::run_prechecks(&mut source, config.source.kind).await?;
        if let Some(failure) = select::first_failure(&checks) {
            return Err(failure);
        }
        let mut target = connect(&config.target).await?;
        for (role, server, conn) in [
            ("source", &config.source, &mut source),
            ("target", &config.target, &mut target),
        ] {
            self.record_encryption(role, server, conn).await;
        }
        if !config.echo_pipelines.is_empty() {
            let marks = select::check_marks_logged(&mut source, config.source.kind).await?;
            if let Some(failure) = select::first_failure(std::slice::from_ref(&marks)) {
                return Err(failure);
            }
        }
        if config.two_way()
            && let select::Outcome::Warning(text) =
                select::check_auto_increment(&mut source, &mut target)
                    .await?
                    .outcome
        {
            self.log(EventLevel::Warn, EventKind::AutoIncrementCollision, &text)
                .await;
        }
        let _ = target.disconnect().await;
        let position = match meta::read_position(&self.meta, self.pipeline).await? {
            Some(position) => position,
            None => {
                let resolved = match &config.start {
                    StartPoint::End => select::resolve_end(&mut source, config.source.kind).await?,
                    StartPoint::File(file) => Position {
                        file: Some(file.clone()),
                        gtid: None,
                        trx_rows_done: 0,
                    },
                    StartPoint::Gtid(gtid) => Position {
                        file: None,
                        gtid: Some(gtid.clone()),
                        trx_rows_done: 0,
                    },
                    StartPoint::Timestamp(time) => {
                        select::resolve_timestamp(&config.source, config.server_id, *time).await?
                    }
                };
                // Forget what the target recorded as applied before the new position is saved:
                // a rewind must not be skipped by the target's rows of a later position.
                let mut loader =
                    load::Loader::open(&config.target, self.load_options(config)).await?;
                loader.forget_applied().await?;
                loader.close().await;
                // The first start: with initial_copy, the copy of every paired table is
                // queued before the position is saved (so a crash in between queues it again,
                // once), and runs while the pipeline streams from the resolved position.
                if config.options.initial_copy {
                    meta::copy::queue_initial_copy(&self.meta, self.pipeline).await?;
                }
                meta::write_position(&self.meta, self.pipeline, self.token, &resolved).await?;
                self.log(
                    EventLevel::Info,
                    EventKind::PositionResolved,
                    &format!("start position {resolved} (from {})", config.start),
                )
                .await;
                resolved
            }
        };
        let warning = match &position.file {
            Some(file) => select::check_not_purged(&mut source, file, &config.source.name).await?,
            None => None,
        };
        let _ = source.disconnect().await;
        Ok(Start { position, warning })
    }

    /// Records (for `v_data_source`) how the connection in `role` to `server` is
    /// encrypted; a failure only logs, and a plain connection is a warning.
    pub(super) async fn record_encryption(
        &self,
        role: &str,
        server: &crate::config::DataSource,
        conn: &mut mysql_async::Conn,
    ) {
        let tls = match crate::tls::encryption(conn).await {
            Ok(tls) => tls,
            Err(error) => {
                warn!(pipeline = %self.pipeline, error = %error, "cannot read the connection's encryption");
                return;
            }
        };
        if tls.is_none() {
            warn!(pipeline = %self.pipeline, data_source = %server.name, tls_mode = %server.tls.mode, "the connection to the {role} is not encrypted");
        }
        let recorded = meta::record_connection(
            &self.meta,
            self.pipeline,
            role,
            server.id,
            &self.node,
            self.token,
            tls,
        )
        .await;
        if let Err(error) = recorded {
            warn!(pipeline = %self.pipeline, error = %chain(&error), "cannot record the connection's encryption");
        }
    }
}
