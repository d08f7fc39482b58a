//! A chunk of the online copy, applied at its high watermark (see `pipeline::copy`): in one
//! target transaction marked as the pipeline's (fenced, and recognised as its own by a
//! two-way channel's other pipeline), the target rows of the chunk's key range that the
//! source lacks are deleted (unless a two-way conflict rule keeps the target's rows), the
//! chunk's rows written (but those whose keys changed between
//! the watermarks: the stream has applied them), and the table's copy progress moved on in
//! `ottr_sys.copy_progress`. A crash before the commit leaves the chunk to be read again.

use super::Loader;
use super::statements::{OnDuplicate, delete_texts, literal_tuple, table_name};
use super::tables::TableInfo;
use crate::error::Result;
use crate::pipeline::copy::{ChunkProgress, KeyText, key_text};
use crate::pipeline::transform::TargetTable;
use crate::pipeline::transform::bind::{Bound, from_param};
use crate::sql::{key_compare, quote};
use crate::sys::copy::WRITE_PROGRESS;
use futures_util::future::join_all;
use mysql_async::prelude::Queryable;
use std::collections::HashSet;
use std::sync::Arc;

/// A chunk as the target gets it.
#[derive(Debug)]
pub struct TargetChunk {
    pub table: Arc<TargetTable>,
    /// Rows in the target table's column order.
    pub rows: Vec<Vec<Bound>>,
    /// The key range covered (target key order): after (exclusive), through (inclusive).
    pub after: Option<Vec<Bound>>,
    pub through: Option<Vec<Bound>>,
    /// A repair: the chunk covers these keys (target key order) instead of a range.
    pub keys: Option<Vec<Vec<Bound>>>,
    pub delete_extras: bool,
    /// Keys that changed between the watermarks: the stream's, not the chunk's.
    pub skip: HashSet<KeyText>,
    /// None for a repair.
    pub progress: Option<ChunkProgress>,
}

/// What a chunk did on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkApplied {
    pub written: u64,
    pub left_to_stream: u64,
    pub deleted: u64,
}

impl Loader {
    /// Applies chunks whose high watermarks follow each other in the stream with no change
    /// between them (see the module's comment): each in a transaction of its own, at once.
    /// The caller has applied everything before the first high watermark. A chunk whose
    /// target table does not fit fails with [`crate::error::Error::Precheck`] alone.
    pub async fn apply_chunks(&mut self, chunks: Vec<TargetChunk>) -> Vec<Result<ChunkApplied>> {
        let mut infos = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            infos.push(self.table_info(&chunk.table).await);
        }
        let this = &*self;
        // each marks a row of its own: one row's lock would queue them
        let partitions = this.options.parallelism + 1;
        join_all(
            chunks
                .into_iter()
                .zip(infos)
                .enumerate()
                .map(|(at, (chunk, info))| async move {
                    this.apply_chunk(chunk, &info?, at % partitions).await
                }),
        )
        .await
    }

    async fn apply_chunk(
        &self,
        chunk: TargetChunk,
        info: &TableInfo,
        partition: usize,
    ) -> Result<ChunkApplied> {
        let table = &chunk.table;
        let mut conn = self.conn().await?;
        let mut transaction = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(self.fail("start a transaction"))?;
        self.mark(&mut transaction, partition).await?;
        let mut applied = ChunkApplied::default();
        let key_of = |row: &Vec<Bound>| key_text(table.key.iter().map(|index| &row[*index]));
        let on = on_duplicate(table, info.newer);
        // Target rows the source lacks are deleted only where the copy wins outright: a
        // two-way channel's primary keeps its own rows.
        if chunk.delete_extras && on == OnDuplicate::Replace {
            let present = match &chunk.keys {
                Some(keys) => keys.clone(),
                None => self.keys_in_range(&mut transaction, &chunk).await?,
            };
            if !present.is_empty() {
                let copied: HashSet<KeyText> = chunk.rows.iter().map(key_of).collect();
                let extras = present
                    .into_iter()
                    .filter(|key| {
                        let text = key_text(key.iter());
                        !copied.contains(&text) && !chunk.skip.contains(&text)
                    })
                    .map(|key| literal_tuple(key.iter()))
                    .collect::<Vec<_>>();
                applied.deleted = extras.len() as u64;
                for sql in delete_texts(table, &extras) {
                    self.run_text(&mut transaction, table, sql).await?;
                }
            }
        }
        let mut images: Vec<&[Bound]> = Vec::with_capacity(chunk.rows.len());
        for row in &chunk.rows {
            if !chunk.skip.is_empty() && chunk.skip.contains(&key_of(row)) {
                applied.left_to_stream += 1;
            } else {
                images.push(row);
            }
        }
        applied.written = images.len() as u64;
        self.write_upserts(&mut transaction, table, &images, on)
            .await?;
        if let Some(progress) = &chunk.progress {
            transaction
                .exec_drop(
                    WRITE_PROGRESS,
                    (
                        &self.options.pipeline_key,
                        progress.job,
                        &progress.source_table,
                        &progress.key_columns,
                        &progress.last_key,
                        progress.rows_copied,
                        progress.chunks_done,
                        progress.done,
                    ),
                )
                .await
                .map_err(self.fail("record a copy's progress"))?;
        }
        transaction.commit().await.map_err(self.fail("commit"))?;
        Ok(applied)
    }

    /// The keys of the target table in the chunk's range.
    async fn keys_in_range(
        &self,
        transaction: &mut mysql_async::Transaction<'_>,
        chunk: &TargetChunk,
    ) -> Result<Vec<Vec<Bound>>> {
        let table = &chunk.table;
        let names: Vec<String> = table
            .key
            .iter()
            .map(|index| table.columns[*index].clone())
            .collect();
        let mut conditions = vec!["TRUE".to_owned()];
        let mut params = Vec::new();
        for (bound, after) in [(&chunk.after, true), (&chunk.through, false)] {
            if let Some(values) = bound {
                let (text, binds) = key_compare(&names, after);
                conditions.push(text);
                params.extend(binds.into_iter().map(|at| values[at].param()));
            }
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            names
                .iter()
                .map(|name| quote(name))
                .collect::<Vec<_>>()
                .join(", "),
            table_name(table),
            conditions.join(" AND ")
        );
        let rows: Vec<mysql_async::Row> = transaction
            .exec(sql, params)
            .await
            .map_err(self.fail("read the target keys of a copy chunk"))?;
        Ok(rows
            .into_iter()
            .map(|row| row.unwrap().into_iter().map(from_param).collect())
            .collect())
    }
}

/// A copied row meets a target row of its key: one way, or into the non-primary side of a
/// two-way channel, the copy wins; into the primary under primary_wins, the primary's row
/// stays; under newer_wins (`newer`: the compared column), the copy wins only when its
/// column is newer (on a tie, when it comes from the primary).
fn on_duplicate(table: &TargetTable, newer: Option<usize>) -> OnDuplicate {
    match (&table.conflict, newer) {
        (None, _) => OnDuplicate::Replace,
        (Some(rule), Some(column)) => OnDuplicate::IfNewer {
            column,
            or_equal: rule.source_is_primary,
        },
        (Some(rule), None) if rule.source_is_primary => OnDuplicate::Replace,
        (Some(_), None) => OnDuplicate::Keep,
    }
}
