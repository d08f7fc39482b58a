//! The copy of one table: described on the source, its target created when missing, then
//! chunk after chunk along its primary key from where the target's `ottr_sys.copy_progress`
//! says the last committed chunk ended, each read between two watermarks and handed to the
//! stream (see [`super::splice`]). Errors that go away by themselves are tried again; others
//! fail the table in `v_copy` with a message naming it.

use super::Shared;
use super::create::target_create;
use super::splice::{ChunkProgress, Outcome, ReadChunk};
use crate::error::{Error, ErrorClass, Result, chain};
use crate::meta::copy::{CopyCounts, CopyWork, Requested};
use crate::meta::{self, EventLevel};
use crate::model::{ColumnMeta, EventKind, TableId, TableMeta};
use crate::pipeline::connect;
use crate::pipeline::extract::pair_for;
use crate::pipeline::transform::bind::{Bound, from_param};
use crate::pipeline::transform::{TargetTable, target_of};
use crate::sql::{key_compare, quote};
use crate::sys::copy::{CREATE_SCHEMA, CREATE_WATERMARK, READ_PROGRESS, WRITE_WATERMARK};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

const COLUMNS: &str = "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
const PRIMARY_KEY: &str = "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX";
const ESTIMATE: &str = "SELECT TABLE_ROWS FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";

/// Rows of the first chunk; later chunks are sized to `copy_chunk_ms`.
const FIRST_CHUNK: usize = 1_000;
const MIN_CHUNK: usize = 100;
const MAX_CHUNK: usize = 100_000;
/// A chunk holds about this many bytes at most (rows are sized from the last chunk's): with
/// `load_parallelism` chunks in flight, and each copied once to be written, the node stays
/// within its memory goal.
const CHUNK_BYTES: usize = 8 << 20;
/// How long a chunk may wait for the stream to reach its high watermark.
const HIGH_WATERMARK_WAIT: Duration = Duration::from_secs(600);
/// How many times in a row an error that goes away by itself is tried again.
const RETRIES: u32 = 8;

/// One table of a copy job, being copied.
pub(super) struct TableCopy {
    pub(super) shared: Arc<Shared>,
    pub(super) work: CopyWork,
    /// Its row in `ottr_sys.watermark`.
    pub(super) slot: u16,
}

/// How a table's copy ended.
enum Finished {
    Done,
    /// Paused or cancelled by the operator.
    Stopped,
}

/// The source table as a chunk reads it.
struct Described {
    id: TableId,
    /// Its columns, in order, and its primary key's.
    columns: Vec<String>,
    key: Vec<String>,
    target: Arc<TargetTable>,
    /// The source column index of each target column.
    sources: Vec<usize>,
    estimate: Option<u64>,
}

/// Where a table's copy stands.
#[derive(Default)]
struct Progress {
    last_key: Option<Vec<Bound>>,
    rows: u64,
    chunks: u64,
    done: bool,
}

/// A chunk as it was read from the source.
struct Read {
    rows: u64,
    last_key: Option<Vec<Bound>>,
    bytes: usize,
    done: bool,
}

/// Creates the target tables of `work` that are missing (and checks those that exist), over
/// one connection to each side; a table that cannot be prepared fails in `v_copy` by name and
/// is returned. An error is returned only when a server cannot be reached.
pub(super) async fn prepare(shared: &Arc<Shared>, work: &[CopyWork]) -> Result<Vec<CopyWork>> {
    let config = &shared.config;
    let mut source = connect(&config.source).await?;
    let mut target = connect(&config.target).await?;
    let mut failed = Vec::new();
    for work in work {
        let copy = TableCopy {
            shared: shared.clone(),
            work: work.clone(),
            slot: 0,
        };
        let prepared = match copy.describe(&mut source).await {
            Ok(table) => copy.create_target(&mut source, &mut target, &table).await,
            Err(error) => Err(error),
        };
        match prepared {
            Ok(()) => {}
            Err(error) if error.class() == ErrorClass::Transient => return Err(error),
            Err(error) => {
                copy.fail(&error).await;
                failed.push(work.clone());
            }
        }
    }
    let _ = source.disconnect().await;
    let _ = target.disconnect().await;
    Ok(failed)
}

impl TableCopy {
    pub(super) fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    fn name(&self) -> String {
        format!("{}.{}", self.work.schema, self.work.table)
    }

    async fn log(&self, level: EventLevel, kind: EventKind, message: &str) {
        let shared = &self.shared;
        meta::log_event_or_warn(
            &shared.meta,
            level,
            Some(&shared.node),
            Some(shared.pipeline),
            kind,
            message,
        )
        .await;
    }

    async fn run(self) {
        let what = format!("copy job {} table {}", self.work.job, self.name());
        let copied = retried(self.shared.pipeline, &what, || async {
            self.copy().await.map(|_: Finished| ())
        })
        .await;
        if let Err(error) = copied {
            self.fail(&error).await;
        }
    }

    /// Fails the table in `v_copy` and the event log with `error`.
    async fn fail(&self, error: &Error) {
        let text = format!(
            "copy job {} table {}: {}",
            self.work.job,
            self.name(),
            chain(error)
        );
        warn!(pipeline = %self.shared.pipeline, error = %text, "copy failed");
        if let Err(error) =
            meta::copy::copy_failed(&self.shared.meta, &self.work, &chain(error)).await
        {
            warn!(pipeline = %self.shared.pipeline, error = %chain(&error), "cannot record a failed copy");
        }
        self.log(EventLevel::Error, EventKind::CopyFailed, &text)
            .await;
    }

    async fn copy(&self) -> Result<Finished> {
        let shared = &self.shared;
        let config = &shared.config;
        let mut source = connect(&config.source).await?;
        let mut table = self.describe(&mut source).await?;
        let condition = match &self.work.condition {
            None => None,
            Some(text) => Some(crate::sql::condition::parse_condition(text).map_err(
                |problem| {
                    Error::Precheck(format!(
                        "{problem}: cancel_copy({}) and copy again",
                        self.work.job
                    ))
                },
            )?),
        };
        let mut target = connect(&config.target).await?;
        self.create_target(&mut source, &mut target, &table).await?;
        let mut progress = self.read_progress(&mut target, &table).await?;
        let _ = target.disconnect().await;
        let target_name = format!("{}.{}", table.target.schema, table.target.table);
        meta::copy::copy_started(&shared.meta, &self.work, &target_name, table.estimate).await?;
        if progress.done {
            meta::copy::copy_progress(&shared.meta, &self.work, counts(&progress, None), true)
                .await?;
            return Ok(Finished::Done);
        }
        let how = if progress.chunks == 0 {
            "started".to_owned()
        } else {
            format!("resumed after {} rows", progress.rows)
        };
        let text = format!(
            "copy job {} table {} into {target_name}: {how}",
            self.work.job,
            self.name()
        );
        self.log(EventLevel::Info, EventKind::CopyStarted, &text)
            .await;
        for statement in [CREATE_SCHEMA, CREATE_WATERMARK] {
            source.query_drop(statement).await.map_err(self.on_source(
                "create ottr_sys.watermark (the copy needs CREATE, INSERT, UPDATE on ottr_sys.*)",
            ))?;
        }
        let mut rows_wanted = FIRST_CHUNK;
        let mut rate = Rate::default();
        while !progress.done {
            match meta::copy::copy_requested(&shared.meta, self.work.job).await? {
                Requested::Run => {}
                Requested::Pause | Requested::Cancel => return Ok(Finished::Stopped),
            }
            self.wait_for_lag().await;
            let started = Instant::now();
            let (outcome, chunk) = self
                .chunk(
                    &mut source,
                    &table,
                    &progress,
                    condition.as_deref(),
                    rows_wanted,
                )
                .await?;
            match outcome {
                Outcome::Applied { .. } => {
                    progress.rows += chunk.rows;
                    progress.chunks += 1;
                    progress.last_key = chunk.last_key.or(progress.last_key.take());
                    progress.done = chunk.done;
                    rate.add(progress.rows);
                    let counts = counts(&progress, rate.per_second());
                    meta::copy::copy_progress(&shared.meta, &self.work, counts, progress.done)
                        .await?;
                    rows_wanted = next_size(
                        rows_wanted,
                        started.elapsed(),
                        config.options.copy_chunk,
                        chunk.rows,
                        chunk.bytes,
                    );
                }
                Outcome::Failed(why) => return Err(Error::Precheck(why)),
                Outcome::Again(why) => {
                    debug!(pipeline = %shared.pipeline, table = %self.name(), why = %why, "chunk read again");
                    table = self.describe(&mut source).await?;
                }
            }
        }
        let text = format!(
            "copy job {} table {} done: {} rows in {} chunks",
            self.work.job,
            self.name(),
            progress.rows,
            progress.chunks
        );
        info!(pipeline = %shared.pipeline, "{text}");
        self.log(EventLevel::Info, EventKind::CopyDone, &text).await;
        Ok(Finished::Done)
    }

    /// What failing to `what` on the source is called.
    fn on_source(&self, what: &str) -> impl Fn(mysql_async::Error) -> Error + use<> {
        let context = format!(
            "cannot {what} on data source '{}'",
            self.shared.config.source.name
        );
        move |error| Error::database(context.clone(), error)
    }

    /// What failing to `what` on the target is called.
    fn on_target(&self, what: &str) -> impl Fn(mysql_async::Error) -> Error + use<> {
        let context = format!(
            "cannot {what} on data source '{}'",
            self.shared.config.target.name
        );
        move |error| Error::database(context.clone(), error)
    }

    async fn wait_for_lag(&self) {
        let shared = &self.shared;
        wait_for_lag(&shared.lag_ms, shared.config.options.copy_max_lag).await;
    }

    /// The source table's columns, primary key, and target.
    async fn describe(&self, source: &mut Conn) -> Result<Described> {
        let config = &self.shared.config;
        let fail = self.on_source(&format!("describe {}", self.name()));
        let params = (&self.work.schema, &self.work.table);
        let columns: Vec<String> = source.exec(COLUMNS, params).await.map_err(&fail)?;
        if columns.is_empty() {
            return Err(Error::Precheck(format!(
                "no table {} on data source '{}'",
                self.name(),
                config.source.name
            )));
        }
        let key: Vec<String> = source.exec(PRIMARY_KEY, params).await.map_err(&fail)?;
        if key.is_empty() {
            return Err(Error::Precheck(format!(
                "{} has no primary key: the copy walks the primary key (ALTER TABLE … ADD PRIMARY KEY, or seed this table by hand)",
                self.name()
            )));
        }
        let estimate: Option<Option<u64>> =
            source.exec_first(ESTIMATE, params).await.map_err(&fail)?;
        let id = TableId {
            schema: self.work.schema.clone(),
            table: self.work.table.clone(),
        };
        let meta = table_meta(&id, &columns, &key)?;
        let pair = pair_for(&config.table_pairs, &id).ok_or_else(|| {
            Error::Precheck(format!(
                "{} is outside the table pairs of pipeline {}",
                self.name(),
                config.name
            ))
        })?;
        let (target, sources) = target_of(pair, &meta).map_err(Error::Precheck)?;
        Ok(Described {
            id,
            columns,
            key,
            target,
            sources,
            estimate: estimate.flatten(),
        })
    }

    /// Creates the target table from the source's SHOW CREATE TABLE when it is missing; an
    /// existing one must have every column the pair writes.
    async fn create_target(
        &self,
        source: &mut Conn,
        target: &mut Conn,
        table: &Described,
    ) -> Result<()> {
        let name = &table.target;
        let shown_name = format!("{}.{}", name.schema, name.table);
        let present: Vec<String> = target
            .exec(COLUMNS, (&name.schema, &name.table))
            .await
            .map_err(self.on_target(&format!("describe {shown_name}")))?;
        if !present.is_empty() {
            let missing: Vec<&str> = name
                .columns
                .iter()
                .filter(|column| !present.iter().any(|p| p.eq_ignore_ascii_case(column)))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(Error::Precheck(format!(
                    "target table {shown_name} has no column {} (it exists with other columns: align it, or drop it and copy again to have it created)",
                    missing.join(", ")
                )));
            }
            return Ok(());
        }
        let shown: Option<(String, String)> = source
            .query_first(format!(
                "SHOW CREATE TABLE {}.{}",
                quote(&table.id.schema),
                quote(&table.id.table)
            ))
            .await
            .map_err(self.on_source(&format!("read SHOW CREATE TABLE {}", self.name())))?;
        let (_, shown) = shown.ok_or_else(|| {
            Error::Precheck(format!("SHOW CREATE TABLE {} gave nothing", self.name()))
        })?;
        let create = target_create(&shown, name, &table.columns, &table.sources).map_err(
            |problem| {
                Error::Precheck(format!(
                    "cannot make the target table {shown_name} from the source's: {problem} (create it by hand)"
                ))
            },
        )?;
        let fail = self.on_target(&format!("create the target table {shown_name}"));
        let schema = format!("CREATE DATABASE IF NOT EXISTS {}", quote(&name.schema));
        target.query_drop(schema).await.map_err(&fail)?;
        target.query_drop(create).await.map_err(&fail)?;
        info!(pipeline = %self.shared.pipeline, table = %self.name(), "target table {shown_name} created");
        Ok(())
    }

    /// Where the target says this table's copy stands. A copy whose key changed since starts
    /// over.
    async fn read_progress(&self, target: &mut Conn, table: &Described) -> Result<Progress> {
        let shared = &self.shared;
        let row: Option<(String, Option<String>, u64, u64, bool)> = target
            .exec_first(READ_PROGRESS, (&shared.key, self.work.job, self.name()))
            .await
            .map_err(self.on_target("read a copy's progress"))?;
        let Some((key_columns, last_key, rows, chunks, done)) = row else {
            return Ok(Progress::default());
        };
        if key_columns != key_json(&table.key) {
            return Ok(Progress::default());
        }
        let last_key = match last_key {
            None => None,
            Some(text) => Some(serde_json::from_str::<Vec<Bound>>(&text).map_err(|error| {
                Error::Precheck(format!(
                    "the copy progress of {} on the target cannot be read ({error})",
                    self.name()
                ))
            })?),
        };
        Ok(Progress {
            last_key,
            rows,
            chunks,
            done,
        })
    }

    /// One chunk: low watermark, read, high watermark, then what the stream made of it.
    async fn chunk(
        &self,
        source: &mut Conn,
        table: &Described,
        progress: &Progress,
        condition: Option<&str>,
        rows_wanted: usize,
    ) -> Result<(Outcome, Read)> {
        let shared = &self.shared;
        let mark = shared.marks.next_mark();
        shared.marks.expect(mark, table.id.clone());
        let read = self
            .read_between_watermarks(source, table, progress, condition, rows_wanted, mark)
            .await;
        let (receiver, read) = match read {
            Ok(read) => read,
            Err(error) => {
                shared.marks.forget(mark);
                return Err(error);
            }
        };
        let outcome = match tokio::time::timeout(HIGH_WATERMARK_WAIT, receiver).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => {
                return Err(Error::StreamLost(
                    "the stream stopped before the chunk was applied".into(),
                ));
            }
            Err(_) => {
                shared.marks.forget(mark);
                return Err(Error::Precheck(format!(
                    "the stream did not reach the chunk's high watermark in ottr_sys.watermark within {} s (is ottr_sys filtered out of the source's binlog?)",
                    HIGH_WATERMARK_WAIT.as_secs()
                )));
            }
        };
        Ok((outcome, read))
    }

    /// Writes the low watermark, reads the chunk, hands it to the stream and writes the high
    /// watermark; the outcome is to be awaited.
    async fn read_between_watermarks(
        &self,
        source: &mut Conn,
        table: &Described,
        progress: &Progress,
        condition: Option<&str>,
        rows_wanted: usize,
        mark: u64,
    ) -> Result<(oneshot::Receiver<Outcome>, Read)> {
        let shared = &self.shared;
        let watermark = |kind: &'static str| (&shared.key, self.slot, mark, kind);
        source
            .exec_drop(WRITE_WATERMARK, watermark("low"))
            .await
            .map_err(self.on_source("write a low watermark"))?;
        let (sql, params) =
            chunk_query(table, progress.last_key.as_deref(), condition, rows_wanted);
        let result: Vec<mysql_async::Row> = source
            .exec(sql, params)
            .await
            .map_err(self.on_source("read a copy chunk"))?;
        // the chunk's own column list (SELECT *), in case the table changed since described
        let names: Vec<String> = match result.first() {
            Some(row) => row
                .columns_ref()
                .iter()
                .map(|column| column.name_str().into_owned())
                .collect(),
            None => table.columns.clone(),
        };
        let mut bytes = 0;
        let rows: Vec<Vec<Bound>> = result
            .into_iter()
            .map(|row| {
                let values: Vec<Bound> = row.unwrap().into_iter().map(from_param).collect();
                bytes += values.iter().map(bound_size).sum::<usize>();
                values
            })
            .collect();
        let done = rows.len() < rows_wanted;
        let meta = Arc::new(table_meta(&table.id, &names, &table.key)?);
        let last_key: Option<Vec<Bound>> = rows.last().map(|row| {
            meta.primary_key
                .iter()
                .map(|index| row[*index].clone())
                .collect()
        });
        let read = rows.len() as u64;
        let (sender, receiver) = oneshot::channel();
        let chunk = ReadChunk {
            table: meta,
            rows,
            after: progress.last_key.clone(),
            through: if done { None } else { last_key.clone() },
            keys: None,
            delete_extras: condition.is_none(),
            progress: Some(ChunkProgress {
                job: self.work.job,
                source_table: self.name(),
                key_columns: key_json(&table.key),
                last_key: last_key
                    .as_ref()
                    .or(progress.last_key.as_ref())
                    .map(|key| serde_json::to_string(key).expect("values serialise")),
                rows_copied: progress.rows + read,
                chunks_done: progress.chunks + 1,
                done,
            }),
            outcome: sender,
        };
        shared.marks.read(mark, chunk);
        source
            .exec_drop(WRITE_WATERMARK, watermark("high"))
            .await
            .map_err(self.on_source("write a high watermark"))?;
        Ok((
            receiver,
            Read {
                rows: read,
                last_key,
                bytes,
                done,
            },
        ))
    }
}

/// Runs `attempt` until it succeeds or fails for good: an error that goes away by itself is
/// tried again, up to [`RETRIES`] times in a row with a growing pause, and logged with `what`
/// (a copy's or a verification's table). Returns the error it gave up on.
pub(crate) async fn retried<F, Fut>(
    pipeline: crate::model::PipelineId,
    what: &str,
    mut attempt: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut tries = 0;
    let mut backoff = Duration::from_millis(500);
    loop {
        let error = match attempt().await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        tries += 1;
        if error.class() != ErrorClass::Transient || tries >= RETRIES {
            return Err(error);
        }
        warn!(pipeline = %pipeline, error = %format!("{what}: {}", chain(&error)), "failed, trying again");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Waits while the pipeline lags more than `limit` (`copy_max_lag_ms`), a minute at most:
/// streaming comes first.
pub(crate) async fn wait_for_lag(lag_ms: &std::sync::atomic::AtomicU64, limit: Duration) {
    let limit = limit.as_millis() as u64;
    let mut waited = Duration::ZERO;
    while lag_ms.load(Ordering::Relaxed) > limit && waited < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        waited += Duration::from_millis(250);
    }
}

fn counts(progress: &Progress, rate: Option<f64>) -> CopyCounts {
    CopyCounts {
        rows: progress.rows,
        chunks: progress.chunks,
        rate,
    }
}

/// A source table's description with its key's column indexes; fails naming a key column
/// the columns lack (the table changed meanwhile).
pub(crate) fn table_meta(id: &TableId, columns: &[String], key: &[String]) -> Result<TableMeta> {
    let primary_key = key
        .iter()
        .map(|name| {
            columns
                .iter()
                .position(|column| column == name)
                .ok_or_else(|| {
                    Error::StreamLost(format!(
                        "{id}: the key column {name} is gone (the table changed): reading it again"
                    ))
                })
        })
        .collect::<Result<Vec<usize>>>()?;
    Ok(TableMeta {
        id: id.clone(),
        columns: columns
            .iter()
            .map(|name| ColumnMeta {
                name: name.clone(),
                type_name: String::new(),
                unsigned: false,
            })
            .collect(),
        primary_key,
    })
}

pub(crate) fn key_json(key: &[String]) -> String {
    serde_json::to_string(key).expect("names serialise")
}

/// `SELECT * FROM t WHERE key > last AND (condition) ORDER BY key LIMIT n`, with its values.
fn chunk_query(
    table: &Described,
    after: Option<&[Bound]>,
    condition: Option<&str>,
    rows: usize,
) -> (String, Vec<mysql_async::Value>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let Some(after) = after {
        let (text, binds) = key_compare(&table.key, true);
        conditions.push(text);
        params.extend(binds.into_iter().map(|at| after[at].param()));
    }
    if let Some(condition) = condition {
        conditions.push(format!("({condition})"));
    }
    let order: Vec<String> = table.key.iter().map(|name| quote(name)).collect();
    let sql = format!(
        "SELECT * FROM {}.{}{} ORDER BY {} LIMIT {rows}",
        quote(&table.id.schema),
        quote(&table.id.table),
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        },
        order.join(", ")
    );
    (sql, params)
}

fn bound_size(value: &Bound) -> usize {
    match value {
        Bound::Bytes(bytes) => bytes.len() + 24,
        Bound::Decimal(text) => text.len() + 24,
        _ => 24,
    }
}

/// The next chunk's rows: sized so that a chunk takes about `target` (at most twice or half
/// the last), and holds about [`CHUNK_BYTES`] at most.
fn next_size(last: usize, took: Duration, target: Duration, rows: u64, bytes: usize) -> usize {
    let by_time = if took.is_zero() {
        last * 2
    } else {
        (last as f64 * target.as_secs_f64() / took.as_secs_f64()) as usize
    };
    let mut next = by_time.clamp(last / 2, last * 2);
    if rows > 0 && bytes > 0 {
        let per_row = (bytes / rows as usize).max(1);
        next = next.min(CHUNK_BYTES / per_row);
    }
    next.clamp(MIN_CHUNK, MAX_CHUNK)
}

/// Rows copied (or verified) over the last minute.
#[derive(Default)]
pub(crate) struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    pub(crate) fn add(&mut self, rows: u64) {
        let now = Instant::now();
        self.samples.push_back((now, rows));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > Duration::from_secs(60))
        {
            self.samples.pop_front();
        }
    }

    pub(crate) fn per_second(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        (seconds > 0.0).then(|| (last.1 - first.1) as f64 / seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_grow_toward_their_time_and_stay_within_bounds() {
        let target = Duration::from_millis(500);
        assert_eq!(
            next_size(1000, Duration::from_millis(100), target, 1000, 100_000),
            2000
        );
        assert_eq!(
            next_size(1000, Duration::from_secs(5), target, 1000, 100_000),
            500
        );
        assert_eq!(
            next_size(100, Duration::from_secs(5), target, 100, 100),
            MIN_CHUNK
        );
        // rows of 1 MiB: 16 per chunk at most, but never under the minimum
        assert_eq!(
            next_size(1000, Duration::from_millis(100), target, 10, 10 << 20),
            MIN_CHUNK
        );
    }
}
