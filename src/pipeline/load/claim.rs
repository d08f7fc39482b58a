//! Taking the pipeline's rows of `ottr_sys.applied` on the target (and, two-way, its
//! write-back row on the source) under the lease's fencing token, and reading from them
//! where each load partition stands. A claim that finds a newer token is fenced; one that
//! finds the same token under another holder means the metadata handed a token out twice.

use super::Loader;
use crate::error::{Error, Result};
use crate::model::{BinlogFilePos, FencingToken, GtidState, Position};
use crate::sys::{self, applied::*};
use mysql_async::Pool;
use mysql_async::prelude::Queryable;

/// Whether two applied positions are the same point of the binlog (GTID states may be known
/// for one and not the other).
pub(super) fn same_point(a: &Option<Position>, b: &Option<Position>) -> bool {
    let point =
        |position: &Option<Position>| position.as_ref().map(|p| (p.file.clone(), p.trx_rows_done));
    point(a) == point(b)
}

impl Loader {
    /// Creates `ottr_sys` if needed, registers and claims the pipeline's partitions under the
    /// lease's token, and takes where each stands.
    pub(super) async fn prepare(&mut self, target: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        sys::ensure(&mut conn, target).await?;
        let options = &self.options;
        for partition in 0..=options.parallelism {
            conn.exec_drop(
                ADD_PARTITION,
                (
                    &options.pipeline_key,
                    partition as u32,
                    &options.pipeline_name,
                ),
            )
            .await
            .map_err(self.fail("register the partitions"))?;
        }
        let token = options.token.0;
        conn.exec_drop(
            CLAIM_PARTITIONS,
            (
                token,
                &options.holder,
                &options.pipeline_key,
                token,
                token,
                &options.holder,
            ),
        )
        .await
        .map_err(self.fail("claim the partitions"))?;
        let claimed = conn.affected_rows();
        let rows: Option<u64> = conn
            .exec_first(COUNT_PARTITIONS, (&options.pipeline_key,))
            .await
            .map_err(self.fail("count the partitions"))?;
        if claimed < rows.unwrap_or(0) {
            return Err(self.refused_claim(target).await);
        }
        let applied: Vec<AppliedColumns> = conn
            .exec(READ_APPLIED, (&options.pipeline_key,))
            .await
            .map_err(self.fail("read the applied positions"))?;
        self.take_positions(&mut conn, applied).await
    }

    /// Takes where each partition stands from its applied row. Rows routed with another
    /// layout (load_parallelism, transactional) are moved to this one where every partition
    /// agrees on what is applied, and refused otherwise.
    async fn take_positions(
        &mut self,
        conn: &mut mysql_async::Conn,
        applied: Vec<AppliedColumns>,
    ) -> Result<()> {
        let options = &self.options;
        let token = options.token.0;
        let layout = format!(
            "{}{}",
            options.parallelism,
            if options.transactional {
                " transactional"
            } else {
                ""
            }
        );
        let position_of = |file: Option<String>,
                           offset: Option<u64>,
                           gtid: Option<String>,
                           trx_rows_done: u64| {
            file.zip(offset).map(|(file, offset)| Position {
                file: Some(BinlogFilePos { file, offset }),
                gtid: gtid.and_then(|text| text.parse::<GtidState>().ok()),
                trx_rows_done,
            })
        };
        let earlier: Vec<(String, Option<Position>)> = applied
            .iter()
            .filter(|row| !row.5.is_empty())
            .map(|row| {
                (
                    row.5.clone(),
                    position_of(row.1.clone(), row.2, row.3.clone(), row.4),
                )
            })
            .collect();
        if earlier.iter().any(|(used, _)| *used != layout) {
            // Rows were routed with another layout: safe to change only where every partition
            // agrees on what is applied (as after every whole batch).
            let first = earlier
                .first()
                .map(|(_, position)| position.clone())
                .unwrap_or_default();
            if earlier
                .iter()
                .any(|(_, position)| !same_point(position, &first))
            {
                let used = &earlier
                    .iter()
                    .find(|(used, _)| *used != layout)
                    .expect("found above")
                    .0;
                return Err(Error::Transform(format!(
                    "the load layout changed from '{used}' to '{layout}' (load_parallelism, transactional) while a batch \
                     was half applied on the target: set it back until the pipeline has caught up"
                )));
            }
            let file = first.as_ref().and_then(|position| position.file.clone());
            conn.exec_drop(
                SET_LAYOUT,
                (
                    &layout,
                    file.as_ref().map(|file| file.file.clone()),
                    file.as_ref().map(|file| file.offset),
                    first
                        .as_ref()
                        .and_then(|position| position.gtid.as_ref().map(ToString::to_string)),
                    first.as_ref().map_or(0, |position| position.trx_rows_done),
                    &options.pipeline_key,
                    token,
                ),
            )
            .await
            .map_err(self.fail("record the load layout"))?;
            self.applied
                .iter_mut()
                .for_each(|slot| *slot = first.clone());
            return Ok(());
        }
        let unmarked = applied.iter().any(|row| row.5.is_empty());
        for (partition, file, offset, gtid, trx_rows_done, _) in applied {
            if let Some(slot) = self.applied.get_mut(partition as usize) {
                *slot = position_of(file, offset, gtid, trx_rows_done);
            }
        }
        if unmarked {
            conn.exec_drop(MARK_LAYOUT, (&layout, &options.pipeline_key))
                .await
                .map_err(self.fail("record the load layout"))?;
        }
        Ok(())
    }

    /// Two-way: the row of `ottr_sys.applied` on the source that marks what this pipeline
    /// writes there (see `repair`).
    pub(super) async fn prepare_source(&self, source: &str) -> Result<()> {
        let pool = self.source.as_ref().expect("a two-way loader");
        let fail = |error| {
            Error::database(
                format!("cannot prepare ottr_sys on data source '{source}' for conflicts"),
                error,
            )
        };
        let mut conn = pool.get_conn().await.map_err(fail)?;
        sys::ensure(&mut conn, source).await?;
        let options = &self.options;
        conn.exec_drop(
            ADD_PARTITION,
            (
                &options.pipeline_key,
                WRITE_BACK_PARTITION,
                &options.pipeline_name,
            ),
        )
        .await
        .map_err(fail)?;
        // Held under this token: a node that lost the pipeline writes nothing back.
        let token = options.token.0;
        conn.exec_drop(
            CLAIM_WRITE_BACK,
            (
                token,
                &options.holder,
                &options.pipeline_key,
                WRITE_BACK_PARTITION,
                token,
                token,
                &options.holder,
            ),
        )
        .await
        .map_err(fail)?;
        if conn.affected_rows() == 0 {
            return Err(self.refused_claim(source).await);
        }
        Ok(())
    }

    /// Why a claim of the pipeline's `ottr_sys.applied` rows on `server` under the lease's
    /// token took fewer rows than there are: another holder's token is there. If the newest
    /// token the target (and, two-way, the source) holds is not older than the lease's, the
    /// metadata may have handed a token out twice (it failed over to a replica that missed
    /// lease rows): [`Error::TokenBehind`] with that token lets the pipeline raise the lease
    /// past it, once for both servers. Otherwise (or when it cannot be read), [`Error::Fenced`].
    pub(super) async fn refused_claim(&self, server: &str) -> Error {
        let options = &self.options;
        let fenced = Error::Fenced {
            pipeline: options.pipeline,
            token: options.token,
        };
        let newest_on = |pool: &Pool| {
            let pool = pool.clone();
            async move {
                let mut conn = pool.get_conn().await?;
                conn.exec_first::<Option<u64>, _, _>(NEWEST_TOKEN, (&options.pipeline_key,))
                    .await
                    .map(|token| token.flatten().unwrap_or(0))
            }
        };
        let Ok(mut newest) = newest_on(&self.pool).await else {
            return fenced;
        };
        // The source's, if it can be read (it may have no ottr_sys yet).
        if let Some(source) = &self.source
            && let Ok(token) = newest_on(source).await
        {
            newest = newest.max(token);
        }
        if newest < options.token.0 {
            return fenced;
        }
        Error::TokenBehind {
            pipeline: options.pipeline,
            token: options.token,
            server: server.to_owned(),
            newest: FencingToken(newest),
        }
    }

    /// Forgets what the target says is applied: the pipeline starts over from a new position.
    pub async fn forget_applied(&mut self) -> Result<()> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            FORGET_APPLIED,
            (&self.options.pipeline_key, self.options.token.0),
        )
        .await
        .map_err(self.fail("reset the applied positions"))?;
        conn.exec_drop(FORGET_DDL, (&self.options.pipeline_key,))
            .await
            .map_err(self.fail("reset the DDL records"))?;
        self.applied.iter_mut().for_each(|slot| *slot = None);
        Ok(())
    }
}
