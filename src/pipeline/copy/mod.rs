//! The online copy: brings live source tables into the target while the pipeline streams,
//! without locks (DBLog's watermarks, see [`splice`]).
//!
//! A [`Copier`] runs beside the stream of a running pipeline: it keeps the list of paired
//! source tables in the metadata (`source_table`, what a `copy_tables` regex is matched
//! against), lists the tables of new jobs, and runs up to `load_parallelism` table copies at
//! once ([`task`]), after creating the target tables of every queued table (before the
//! stream starts, and as jobs arrive), so that the stream never meets a missing one. Each walks the table's primary key in chunks sized to `copy_chunk_ms`:
//! low watermark, one short read, high watermark; the stream applies the chunk at its high
//! watermark and commits its progress with its rows (see `load::copy`). A copy waits while
//! the pipeline lags more than `copy_max_lag_ms`, and before each chunk looks whether the
//! operator paused or cancelled its job. The target table is created from the source's
//! `SHOW CREATE TABLE` ([`create`]) before the first chunk.

mod create;
mod splice;
mod task;

pub use splice::{
    ChunkProgress, KeyText, Marks, Outcome, Piece, ReadChunk, Splicer, VerifyWindow, WindowEnd,
    key_text, row_key,
};
pub(crate) use task::{Rate, key_json, retried, table_meta, wait_for_lag};

use crate::config::PipelineConfig;
use crate::error::{Result, chain};
use crate::meta::{self, MetaDb};
use crate::model::{PipelineId, PipelineKey, TableId};
use crate::pipeline::extract::pair_for;
use crate::pipeline::{AbortOnDrop, connect};
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::warn;

/// How often the list of source tables is refreshed.
const LIST_EVERY: Duration = Duration::from_secs(30);
const SOURCE_TABLES: &str = "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
     WHERE TABLE_TYPE = 'BASE TABLE'";

/// What the copy tasks of a pipeline share.
pub struct Shared {
    pub meta: MetaDb,
    pub node: String,
    pub pipeline: PipelineId,
    pub key: PipelineKey,
    pub config: PipelineConfig,
    pub marks: Arc<Marks>,
    /// The pipeline's lag as last measured (ms).
    pub lag_ms: Arc<AtomicU64>,
    /// How often the copier looks for jobs (the node's `poll_ms`).
    poll: Duration,
}

/// What the copier keeps between its rounds.
#[derive(Default)]
struct Rounds {
    /// Table copies running, with their watermark slot; aborted with the copier (a copy
    /// outliving its stream would wait for watermarks no stream follows).
    running: HashMap<meta::copy::CopyWork, (u16, AbortOnDrop)>,
    /// Work whose target table was created (or found).
    prepared: std::collections::HashSet<meta::copy::CopyWork>,
    listed_at: Option<tokio::time::Instant>,
}

/// Runs a pipeline's copy jobs beside its stream.
pub struct Copier {
    shared: Arc<Shared>,
}

impl Copier {
    pub fn new(
        meta: MetaDb,
        node: String,
        key: PipelineKey,
        config: PipelineConfig,
        marks: Arc<Marks>,
        lag_ms: Arc<AtomicU64>,
        poll: Duration,
    ) -> Self {
        Copier {
            shared: Arc::new(Shared {
                meta,
                node,
                pipeline: config.id,
                key,
                config,
                marks,
                lag_ms,
                poll,
            }),
        }
    }

    /// Creates the target tables of the copies queued now, then starts the copier in a task
    /// of its own; it runs until the handle is aborted (with the stream). Called before the
    /// stream applies anything, so that no change of a table being copied (`initial_copy`, or
    /// a job queued while the pipeline was away) meets a missing target table.
    pub async fn start(self) -> JoinHandle<()> {
        let mut rounds = Rounds::default();
        self.round(&mut rounds).await;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(self.shared.poll).await;
                self.round(&mut rounds).await;
            }
        })
    }

    /// One look at the jobs: tables of new jobs listed, the target tables of new work
    /// created (all of them at once: the stream may bring changes for any), and table copies
    /// started up to `load_parallelism`. Failures are logged and tried again next round.
    async fn round(&self, rounds: &mut Rounds) {
        let shared = &self.shared;
        let parallelism = usize::from(shared.config.options.load_parallelism).clamp(1, 64);
        rounds
            .running
            .retain(|_, (_, handle)| !handle.0.is_finished());
        let unexpanded = match meta::copy::unexpanded_jobs(&shared.meta, shared.pipeline).await {
            Ok(jobs) => jobs,
            Err(error) => {
                warn!(pipeline = %shared.pipeline, error = %chain(&error), "cannot read the copy jobs");
                return;
            }
        };
        let due = rounds.listed_at.is_none_or(|at| at.elapsed() >= LIST_EVERY);
        if due || !unexpanded.is_empty() {
            match self.list_and_expand(&unexpanded).await {
                Ok(()) => rounds.listed_at = Some(tokio::time::Instant::now()),
                Err(error) => {
                    warn!(pipeline = %shared.pipeline, error = %chain(&error), "cannot list the source tables for copies")
                }
            }
        }
        let work = match meta::copy::copy_work(&shared.meta, shared.pipeline).await {
            Ok(work) => work,
            Err(error) => {
                warn!(pipeline = %shared.pipeline, error = %chain(&error), "cannot read the copy jobs");
                return;
            }
        };
        let new: Vec<meta::copy::CopyWork> = work
            .iter()
            .filter(|work| !rounds.prepared.contains(*work))
            .cloned()
            .collect();
        let mut failed = Vec::new();
        if !new.is_empty() {
            match task::prepare(shared, &new).await {
                Ok(unfit) => {
                    failed = unfit;
                    rounds.prepared.extend(new);
                }
                Err(error) => {
                    warn!(pipeline = %shared.pipeline, error = %chain(&error), "cannot create the target tables of copies");
                    return;
                }
            }
        }
        for work in work {
            if rounds.running.len() >= parallelism {
                break;
            }
            if rounds.running.contains_key(&work) || failed.contains(&work) {
                continue;
            }
            let slot = (0..)
                .find(|slot| !rounds.running.values().any(|(used, _)| used == slot))
                .expect("a free slot");
            let handle = task::TableCopy {
                shared: shared.clone(),
                work: work.clone(),
                slot,
            }
            .spawn();
            rounds.running.insert(work, (slot, AbortOnDrop(handle)));
        }
    }

    /// Lists the paired source tables (for `copy_tables` regexes) and the tables of new jobs.
    async fn list_and_expand(&self, jobs: &[meta::copy::UnexpandedJob]) -> Result<()> {
        let shared = &self.shared;
        let config = &shared.config;
        // only the schemas the pairs name, when none is a regex
        let exact: Option<Vec<&str>> = config
            .table_pairs
            .iter()
            .map(|pair| (!pair.schema.is_regex()).then(|| pair.schema.as_str()))
            .collect();
        let (sql, schemas) = match exact {
            Some(schemas) if !schemas.is_empty() => (
                format!(
                    "{SOURCE_TABLES} AND TABLE_SCHEMA IN ({})",
                    vec!["?"; schemas.len()].join(", ")
                ),
                schemas,
            ),
            _ => (SOURCE_TABLES.to_owned(), Vec::new()),
        };
        let mut conn = connect(&config.source).await?;
        let rows: Vec<(String, String, Option<u64>)> =
            conn.exec(sql, schemas).await.map_err(|error| {
                crate::error::Error::database(
                    format!(
                        "cannot list the tables of data source '{}'",
                        config.source.name
                    ),
                    error,
                )
            })?;
        let _ = conn.disconnect().await;
        let paired: Vec<(String, String, Option<u64>)> = rows
            .into_iter()
            .filter(|(schema, table, _)| {
                let id = TableId {
                    schema: schema.clone(),
                    table: table.clone(),
                };
                pair_for(&config.table_pairs, &id).is_some()
            })
            .collect();
        meta::copy::record_source_tables(&shared.meta, shared.pipeline, &paired).await?;
        for job in jobs {
            let tables: Vec<(String, String, Option<u64>)> = match (&job.schema, &job.pattern) {
                (Some(schema), Some(pattern)) => match crate::config::NamePattern::parse(pattern) {
                    Ok(crate::config::NamePattern::Exact(_)) | Err(_) => Vec::new(),
                    Ok(pattern) => paired
                        .iter()
                        .filter(|(s, t, _)| s == schema && pattern.matches(t))
                        .cloned()
                        .collect(),
                },
                _ => paired.clone(),
            };
            meta::copy::expand_job(&shared.meta, job.job, &tables).await?;
        }
        Ok(())
    }
}
