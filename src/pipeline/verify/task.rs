//! The verification of one table: described on both sides, then chunk after chunk along its
//! primary key from where the metadata says the last recorded chunk ended (see the module's
//! comment in [`super`] for how a chunk is compared).

use super::Shared;
use super::compare::{self, Found, Hashed};
use super::hash::{Kind, Side, kind_of};
use crate::error::{Error, Result, chain};
use crate::meta::verify::{Diff, VerifyCounts, VerifyWork};
use crate::meta::{self, EventLevel};
use crate::model::{BinlogFilePos, EventKind, PipelineKey, TableId};
use crate::pipeline::connect;
use crate::pipeline::copy::{
    KeyText, Outcome, Rate, ReadChunk, VerifyWindow, key_json, key_text, retried, row_key,
    table_meta,
};
use crate::pipeline::extract::pair_for;
use crate::pipeline::select::{BinlogReader, ReaderOptions, SourceEvent};
use crate::pipeline::transform::bind::{Bound, from_param};
use crate::pipeline::transform::target_of;
use crate::sql::{key_compare, quote};
use crate::sys::applied::{LEAST_APPLIED, UNPLACED_PARTITIONS};
use crate::sys::copy::{CREATE_SCHEMA, CREATE_WATERMARK, WRITE_WATERMARK};
use crate::sys::repair::READ_CHANNEL_SUSPECTS;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

const COLUMNS: &str = "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
const PRIMARY_KEY: &str = "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX";
const ENGINE: &str = "SELECT ENGINE FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";
const ESTIMATE: &str = "SELECT TABLE_ROWS FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";
/// The target connection reads in snapshots: REPEATABLE READ, whatever the server's default.
const REPEATABLE_READ: &str = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";

const FIRST_CHUNK: usize = 1_000;
const MIN_CHUNK: usize = 100;
const MAX_CHUNK: usize = 200_000;
/// Keys compared value by value per window.
pub(super) const KEYS_PER_WINDOW: usize = 500;
/// How many windows a differing key is compared in before it is reported unverified.
pub(super) const RECHECKS: u32 = 6;
/// How many times a window spoiled by a DDL or a stream restart is taken again.
const RETAKES: u32 = 10;
const HIGH_WATERMARK_WAIT: Duration = Duration::from_secs(600);
/// Two-way: how many row changes of the target's binlog a window reads at most to tell the
/// keys in flight; past that, its keys are compared again later.
const MAX_IN_FLIGHT_ROWS: usize = 2_000_000;

/// The table as both sides read it.
pub(super) struct Described {
    pub id: TableId,
    pub source: Side,
    pub target: Side,
    /// The source's columns (all) and key, for a repair's `SELECT *`.
    pub all_columns: Vec<String>,
    pub source_key: Vec<String>,
    pub target_name: String,
    pub target_id: TableId,
    pub estimate: Option<u64>,
}

/// A key range: after (exclusive), through (inclusive); None: open.
struct Range<'a> {
    after: Option<&'a [Bound]>,
    through: Option<&'a [Bound]>,
}

/// The connections of a verification: autocommit reads on the source, snapshots on the
/// target, and the watermarks between them.
pub(super) struct Windows {
    pub shared: Arc<Shared>,
    pub slot: u16,
    pub table: TableId,
    pub source: Conn,
    /// Handed to the stream at each high watermark and back; None after an error.
    pub target: Option<Conn>,
}

impl Windows {
    pub async fn open(shared: &Arc<Shared>, slot: u16, table: TableId) -> Result<Self> {
        let mut source = connect(&shared.config.source).await?;
        for statement in [CREATE_SCHEMA, CREATE_WATERMARK] {
            source.query_drop(statement).await.map_err(on_side(
                shared,
                true,
                "create ottr_sys.watermark (a verification needs CREATE, INSERT, UPDATE on ottr_sys.*)",
            ))?;
        }
        Ok(Windows {
            shared: shared.clone(),
            slot,
            table,
            source,
            target: None,
        })
    }

    /// The target connection, connected when needed.
    async fn target(&mut self) -> Result<&mut Conn> {
        if self.target.is_none() {
            let mut conn = connect(&self.shared.config.target).await?;
            conn.query_drop(REPEATABLE_READ).await.map_err(on_side(
                &self.shared,
                false,
                "set REPEATABLE READ",
            ))?;
            self.target = Some(conn);
        }
        Ok(self.target.as_mut().expect("connected"))
    }

    /// Writes the low watermark of a new window (the target connected first: nothing may
    /// fail between the low watermark and the high one without the mark being forgotten).
    async fn low(&mut self) -> Result<u64> {
        self.target().await?;
        let shared = &self.shared;
        let mark = shared.marks.next_mark();
        shared.marks.expect(mark, self.table.clone());
        let written = self
            .source
            .exec_drop(WRITE_WATERMARK, (&shared.key, self.slot, mark, "low"))
            .await
            .map_err(on_side(shared, true, "write a low watermark"));
        if let Err(error) = written {
            shared.marks.forget(mark);
            return Err(error);
        }
        Ok(mark)
    }

    /// The window's source read failed: nothing waits for its high watermark.
    fn forget(&self, mark: u64) {
        self.shared.marks.forget(mark);
    }

    /// Writes the high watermark and waits for the stream to reach it: then the target
    /// connection is in a snapshot at that point, and the keys changed in the window are
    /// returned (None: the window was spoiled, take it again).
    async fn high(&mut self, mark: u64) -> Result<Option<HashSet<KeyText>>> {
        let Some(mut target) = self.target.take() else {
            self.forget(mark);
            return Err(Error::StreamLost("the target connection was lost".into()));
        };
        // a connection that died quietly would hold the stream up at the high watermark
        if let Err(error) = target.ping().await {
            self.forget(mark);
            return Err(self.target_error("reach the target", error));
        }
        let shared = self.shared.clone();
        let (reply, receiver) = oneshot::channel();
        shared
            .marks
            .window(mark, self.table.clone(), VerifyWindow { target, reply });
        if let Err(error) = self
            .source
            .exec_drop(WRITE_WATERMARK, (&shared.key, self.slot, mark, "high"))
            .await
        {
            shared.marks.forget(mark);
            return Err(Error::database(
                format!(
                    "cannot write a high watermark on data source '{}'",
                    shared.config.source.name
                ),
                error,
            ));
        }
        match tokio::time::timeout(HIGH_WATERMARK_WAIT, receiver).await {
            Ok(Ok(end)) => {
                self.target = Some(end.target);
                match end.changed {
                    Ok(changed) => Ok(Some(changed)),
                    Err(why) => {
                        tracing::debug!(pipeline = %shared.pipeline, table = %self.table, why = %why, "verification window taken again");
                        if why.contains("snapshot") {
                            self.target = None;
                        }
                        Ok(None)
                    }
                }
            }
            Ok(Err(_)) => Err(Error::StreamLost(
                "the stream stopped before the verification window closed".into(),
            )),
            Err(_) => {
                shared.marks.forget(mark);
                Err(Error::StreamLost(format!(
                    "the stream did not reach a verification's high watermark in ottr_sys.watermark within {} s (it lags, or ottr_sys is filtered out of the source's binlog)",
                    HIGH_WATERMARK_WAIT.as_secs()
                )))
            }
        }
    }

    /// Ends the target's snapshot.
    async fn end_snapshot(&mut self) -> Result<()> {
        if let Some(target) = self.target.as_mut()
            && let Err(error) = target.query_drop("COMMIT").await
        {
            self.target = None;
            return Err(Error::database(
                "cannot end a snapshot on the target",
                error,
            ));
        }
        Ok(())
    }

    /// Compares the values of `keys` on both sides, window after window; keys that change
    /// in every window are reported unverified after [`RECHECKS`] windows.
    pub async fn recheck(&mut self, table: &Described, keys: Vec<Vec<Bound>>) -> Result<Vec<Diff>> {
        let names: Vec<String> = table
            .source
            .columns
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        let mut diffs = Vec::new();
        let mut pending = keys;
        for attempt in 0..RECHECKS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let mut again = Vec::new();
            for part in pending.chunks(KEYS_PER_WINDOW) {
                // two-way: what of the target's binlog the source had before the window
                let since = match self.shared.reverse_key.clone() {
                    Some(reverse) => Some(self.least_applied(&reverse).await?),
                    None => None,
                };
                let mark = self.low().await?;
                let on_source = values_of(&mut self.source, &table.source, part).await;
                let on_source = match on_source {
                    Ok(values) => values,
                    Err(error) => {
                        self.forget(mark);
                        return Err(self.source_error("read rows to compare", error));
                    }
                };
                let Some(mut changed) = self.high(mark).await? else {
                    again.extend_from_slice(part);
                    continue;
                };
                let target = self.target.as_mut().expect("connected");
                let on_target = values_of(target, &table.target, part).await;
                self.end_snapshot().await?;
                let on_target = match on_target {
                    Ok(values) => values,
                    Err(error) => {
                        self.target = None;
                        return Err(self.target_error("read rows to compare", error));
                    }
                };
                // two-way: keys the target changed that the source may not have had yet, and
                // keys a conflict left to repair, are compared again later
                if let Some(since) = since {
                    let in_flight = match since {
                        Some(since) => self.changed_on_target_since(&since, table).await?,
                        None => None,
                    };
                    match in_flight {
                        Some(keys) => changed.extend(keys),
                        None => {
                            again.extend_from_slice(part);
                            continue;
                        }
                    }
                    changed.extend(self.suspects(table).await?);
                }
                let (moved, kept) = compare::split_changed(part.to_vec(), &changed);
                again.extend(moved);
                for key in kept {
                    let text = key_text(key.iter());
                    let found = compare::compare(
                        on_source.get(&text).map(Vec::as_slice),
                        on_target.get(&text).map(Vec::as_slice),
                        &names,
                    );
                    if let Some(kind) = found.kind() {
                        diffs.push(diff(&key, kind, &found));
                    }
                }
            }
            pending = again;
        }
        diffs.extend(pending.iter().map(|key| Diff {
            row_key: compare::display_key(key),
            key_json: serde_json::to_string(key).expect("values serialise"),
            kind: "unverified",
            columns: None,
        }));
        Ok(diffs)
    }

    /// A repair: reads the current source rows of `keys` between watermarks and hands them
    /// to the stream as a copy chunk of those keys, applied at the high watermark (keys the
    /// source lacks are deleted from the target); returns how it went.
    pub async fn copy_keys(&mut self, table: &Described, keys: &[Vec<Bound>]) -> Result<Outcome> {
        let shared = self.shared.clone();
        let mark = self.low().await?;
        let (condition, params) = keys_condition(&table.source_key, keys);
        let sql = format!("SELECT * FROM {} WHERE {condition}", table.source.table);
        let read: std::result::Result<Vec<mysql_async::Row>, _> =
            self.source.exec(sql, params).await;
        let read = match read {
            Ok(rows) => rows,
            Err(error) => {
                self.forget(mark);
                return Err(self.source_error("read the rows to repair", error));
            }
        };
        let names: Vec<String> = match read.first() {
            Some(row) => row
                .columns_ref()
                .iter()
                .map(|column| column.name_str().into_owned())
                .collect(),
            None => table.all_columns.clone(),
        };
        let meta = match table_meta(&table.id, &names, &table.source_key) {
            Ok(meta) => Arc::new(meta),
            Err(error) => {
                self.forget(mark);
                return Err(error);
            }
        };
        let rows = read
            .into_iter()
            .map(|row| row.unwrap().into_iter().map(from_param).collect())
            .collect();
        let (sender, receiver) = oneshot::channel();
        shared.marks.read(
            mark,
            ReadChunk {
                table: meta,
                rows,
                after: None,
                through: None,
                keys: Some(keys.to_vec()),
                delete_extras: true,
                progress: None,
                outcome: sender,
            },
        );
        if let Err(error) = self
            .source
            .exec_drop(WRITE_WATERMARK, (&shared.key, self.slot, mark, "high"))
            .await
        {
            shared.marks.forget(mark);
            return Err(self.source_error("write a high watermark", error));
        }
        match tokio::time::timeout(HIGH_WATERMARK_WAIT, receiver).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(Error::StreamLost(
                "the stream stopped before a repair was applied".into(),
            )),
            Err(_) => {
                shared.marks.forget(mark);
                Err(Error::Precheck(format!(
                    "the stream did not reach a repair's high watermark within {} s",
                    HIGH_WATERMARK_WAIT.as_secs()
                )))
            }
        }
    }

    /// Two-way: the least position of the target's binlog the reverse pipeline has applied
    /// to the source over its partitions (None: a partition has none yet).
    async fn least_applied(&mut self, reverse: &PipelineKey) -> Result<Option<BinlogFilePos>> {
        let unplaced: Option<u64> = self
            .source
            .exec_first(UNPLACED_PARTITIONS, (reverse,))
            .await
            .map_err(|error| self.source_error("read ottr_sys.applied", error))?;
        if unplaced.unwrap_or(0) > 0 {
            return Ok(None);
        }
        let least: Option<(String, u64)> = self
            .source
            .exec_first(LEAST_APPLIED, (reverse,))
            .await
            .map_err(|error| self.source_error("read ottr_sys.applied", error))?;
        Ok(least.map(|(file, offset)| BinlogFilePos { file, offset }))
    }

    /// Two-way: the keys of the table changed in the target's binlog from `since` to its
    /// end (None: too many to tell, or a key that cannot be told).
    async fn changed_on_target_since(
        &self,
        since: &BinlogFilePos,
        table: &Described,
    ) -> Result<Option<HashSet<KeyText>>> {
        use std::hash::{BuildHasher, RandomState};
        let random = RandomState::new().hash_one(std::time::SystemTime::now()) as u32;
        let options = ReaderOptions {
            server_id: 0x4000_0000 | (random & 0x3FFF_FFFF),
            heartbeat: Duration::from_secs(1),
            stop_at_end: true,
        };
        let mut reader =
            BinlogReader::open(&self.shared.config.target, &options, Some(since), None).await?;
        let mut keys = HashSet::new();
        let mut rows = 0_usize;
        let mut told = true;
        while let Some(read) = reader.next().await? {
            let SourceEvent::Rows(changes) = read.event else {
                continue;
            };
            rows += changes.len();
            for change in changes {
                if change.table.id != table.target_id {
                    continue;
                }
                for image in [&change.before, &change.after].into_iter().flatten() {
                    match row_key(&change.table, image) {
                        Some(key) => {
                            keys.insert(key);
                        }
                        None => told = false,
                    }
                }
            }
            if rows > MAX_IN_FLIGHT_ROWS || !told {
                reader.close().await;
                return Ok(None);
            }
        }
        reader.close().await;
        Ok(Some(keys))
    }

    /// Two-way: the keys of the table that conflicts left to repair (`ottr_sys.repair` on
    /// either side).
    async fn suspects(&mut self, table: &Described) -> Result<HashSet<KeyText>> {
        #[derive(serde::Deserialize)]
        struct Named {
            schema: String,
            table: String,
        }
        #[derive(serde::Deserialize)]
        struct Suspect {
            table: Named,
            key: Vec<Bound>,
        }
        let shared = self.shared.clone();
        let Some(reverse) = &shared.reverse_key else {
            return Ok(HashSet::new());
        };
        let keys = (&shared.key, reverse);
        let mut texts: Vec<String> = Vec::new();
        self.target().await?;
        for conn in [&mut self.source, self.target.as_mut().expect("connected")] {
            match conn.exec(READ_CHANNEL_SUSPECTS, keys).await {
                Ok(rows) => texts.extend(rows),
                // no conflict ever kept a suspect there
                Err(mysql_async::Error::Server(error)) if error.code == 1146 => {}
                Err(error) => {
                    return Err(Error::database("cannot read ottr_sys.repair", error));
                }
            }
        }
        Ok(texts
            .iter()
            .filter_map(|text| serde_json::from_str::<Suspect>(text).ok())
            .filter(|suspect| {
                let named = TableId {
                    schema: suspect.table.schema.clone(),
                    table: suspect.table.table.clone(),
                };
                named == table.id || named == table.target_id
            })
            .map(|suspect| key_text(suspect.key.iter()))
            .collect())
    }

    fn source_error(&self, what: &str, error: mysql_async::Error) -> Error {
        on_side(&self.shared, true, what)(error)
    }

    fn target_error(&self, what: &str, error: mysql_async::Error) -> Error {
        on_side(&self.shared, false, what)(error)
    }
}

fn diff(key: &[Bound], kind: &'static str, found: &Found) -> Diff {
    Diff {
        row_key: compare::display_key(key),
        key_json: serde_json::to_string(key).expect("values serialise"),
        kind,
        columns: match found {
            Found::Different(columns) => Some(columns.join(", ")),
            _ => None,
        },
    }
}

/// What failing to `what` on the source or the target is called.
fn on_side(
    shared: &Shared,
    source: bool,
    what: &str,
) -> impl Fn(mysql_async::Error) -> Error + use<> {
    let name = if source {
        &shared.config.source.name
    } else {
        &shared.config.target.name
    };
    let context = format!("cannot {what} on data source '{name}'");
    move |error| Error::database(context.clone(), error)
}

/// One table of a verification job, being verified.
pub(super) struct TableVerify {
    shared: Arc<Shared>,
    work: VerifyWork,
    slot: u16,
}

/// What a chunk found.
struct Compared {
    rows: u64,
    diffs: Vec<Diff>,
}

impl TableVerify {
    pub(super) fn new(shared: Arc<Shared>, work: VerifyWork, slot: u16) -> Self {
        TableVerify { shared, work, slot }
    }

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
        let what = format!("verification {} table {}", self.work.job, self.name());
        let verified = retried(self.shared.pipeline, &what, || self.verify()).await;
        if let Err(error) = verified {
            let text = format!("{what}: {}", chain(&error));
            warn!(pipeline = %self.shared.pipeline, error = %text, "verification failed");
            if let Err(error) =
                meta::verify::verify_failed(&self.shared.meta, &self.work, &chain(&error)).await
            {
                warn!(pipeline = %self.shared.pipeline, error = %chain(&error), "cannot record a failed verification");
            }
            self.log(EventLevel::Error, EventKind::VerifyFailed, &text)
                .await;
        }
    }

    async fn verify(&self) -> Result<()> {
        let shared = &self.shared;
        let id = TableId {
            schema: self.work.schema.clone(),
            table: self.work.table.clone(),
        };
        let mut windows = Windows::open(shared, self.slot, id.clone()).await?;
        let table = describe(&mut windows, &id).await?;
        let resume = meta::verify::verify_started(
            &shared.meta,
            &self.work,
            &table.target_name,
            table.estimate,
        )
        .await?;
        let key_columns = key_json(&table.source.key_names());
        let (mut last, mut chunks, mut compared) = match (&resume.key_columns, &resume.last_key) {
            (Some(columns), Some(last)) if *columns == key_columns => {
                let last: Vec<Bound> = serde_json::from_str(last).map_err(|error| {
                    Error::Precheck(format!(
                        "the verification progress of {} cannot be read ({error})",
                        self.name()
                    ))
                })?;
                (Some(last), resume.chunks, resume.compared)
            }
            _ => (None, 0, 0),
        };
        let how = if chunks == 0 {
            "started".to_owned()
        } else {
            format!("resumed after {compared} rows")
        };
        self.log(
            EventLevel::Info,
            EventKind::VerifyStarted,
            &format!(
                "verification {} table {} against {}: {how}",
                self.work.job,
                self.name(),
                table.target_name
            ),
        )
        .await;
        let mut rows_wanted = FIRST_CHUNK;
        let mut rate = Rate::default();
        let mut found = resume.differing;
        loop {
            let (run, repair) = meta::verify::verify_requested(&shared.meta, self.work.job).await?;
            if !run {
                return Ok(());
            }
            crate::pipeline::copy::wait_for_lag(&shared.lag_ms, shared.config.options.copy_max_lag)
                .await;
            let started = Instant::now();
            let upper = upper_bound(&mut windows, &table, last.as_deref(), rows_wanted).await?;
            let range = Range {
                after: last.as_deref(),
                through: upper.as_deref(),
            };
            let result = compare_chunk(&mut windows, &table, &range).await?;
            chunks += 1;
            compared += result.rows;
            found += result
                .diffs
                .iter()
                .filter(|diff| diff.kind != "unverified")
                .count() as u64;
            rate.add(compared);
            let done = upper.is_none();
            if upper.is_some() {
                last = upper;
            }
            let left = table.estimate.unwrap_or(0).saturating_sub(compared);
            let counts = VerifyCounts {
                key_columns: key_columns.clone(),
                last_key: last
                    .as_ref()
                    .map(|key| serde_json::to_string(key).expect("values serialise")),
                chunks,
                chunks_total: Some(if done {
                    chunks
                } else {
                    chunks + (left as usize).div_ceil(rows_wanted).max(1) as u64
                }),
                compared,
                rate: rate.per_second(),
            };
            meta::verify::verify_progress(
                &shared.meta,
                &self.work,
                &result.diffs,
                repair,
                &counts,
                done,
            )
            .await?;
            if done {
                break;
            }
            rows_wanted = next_size(
                rows_wanted,
                started.elapsed(),
                shared.config.options.copy_chunk,
            );
        }
        let text = format!(
            "verification {} table {} done: {compared} rows compared in {chunks} chunks, {found} differing",
            self.work.job,
            self.name(),
        );
        info!(pipeline = %shared.pipeline, "{text}");
        let (level, kind) = if found > 0 {
            (EventLevel::Warn, EventKind::VerifyDifferent)
        } else {
            (EventLevel::Info, EventKind::VerifyDone)
        };
        self.log(level, kind, &text).await;
        Ok(())
    }
}

/// The table's compared columns on both sides, its key, and its target.
pub(super) async fn describe(windows: &mut Windows, id: &TableId) -> Result<Described> {
    let shared = windows.shared.clone();
    let config = &shared.config;
    let name = id.to_string();
    let params = (&id.schema, &id.table);
    let fail = on_side(&shared, true, &format!("describe {name}"));
    let columns: Vec<(String, String, Option<String>)> =
        windows.source.exec(COLUMNS, params).await.map_err(&fail)?;
    if columns.is_empty() {
        return Err(Error::Precheck(format!(
            "no table {name} on data source '{}'",
            config.source.name
        )));
    }
    let key: Vec<String> = windows
        .source
        .exec(PRIMARY_KEY, params)
        .await
        .map_err(&fail)?;
    if key.is_empty() {
        return Err(Error::Precheck(format!(
            "{name} has no primary key: a verification walks the primary key"
        )));
    }
    let estimate: Option<Option<u64>> = windows
        .source
        .exec_first(ESTIMATE, params)
        .await
        .map_err(&fail)?;
    let all_columns: Vec<String> = columns.iter().map(|(name, ..)| name.clone()).collect();
    let meta = table_meta(id, &all_columns, &key)?;
    let pair = pair_for(&config.table_pairs, id).ok_or_else(|| {
        Error::Precheck(format!(
            "{name} is outside the table pairs of pipeline {}",
            config.name
        ))
    })?;
    let (target, sources) = target_of(pair, &meta).map_err(Error::Precheck)?;
    let target_name = format!("{}.{}", target.schema, target.table);
    let present: Vec<(String, String, Option<String>)> = windows
        .target()
        .await?
        .exec(COLUMNS, (&target.schema, &target.table))
        .await
        .map_err(on_side(&shared, false, &format!("describe {target_name}")))?;
    if present.is_empty() {
        return Err(Error::Precheck(format!(
            "no target table {target_name} on data source '{}' (copy_tables creates it)",
            config.target.name
        )));
    }
    let engine: Option<Option<String>> = windows
        .target()
        .await?
        .exec_first(ENGINE, (&target.schema, &target.table))
        .await
        .map_err(on_side(&shared, false, &format!("describe {target_name}")))?;
    let engine = engine.flatten().unwrap_or_default();
    if !engine.eq_ignore_ascii_case("InnoDB") {
        return Err(Error::Precheck(format!(
            "target table {target_name} is ENGINE={engine}: a verification reads the target in a consistent snapshot, which only InnoDB keeps (ALTER TABLE … ENGINE=InnoDB)"
        )));
    }
    let mut target_columns = Vec::with_capacity(target.columns.len());
    for column in &target.columns {
        let (name, data_type, charset) = present
            .iter()
            .find(|(name, ..)| name.eq_ignore_ascii_case(column))
            .ok_or_else(|| {
                Error::Precheck(format!(
                    "target table {target_name} has no column {column}: the pair writes it"
                ))
            })?;
        target_columns.push((name.clone(), kind_of(data_type, charset.as_deref())));
    }
    let mut source_columns: Vec<(String, Kind)> = sources
        .iter()
        .map(|index| {
            let (name, data_type, charset) = &columns[*index];
            (name.clone(), kind_of(data_type, charset.as_deref()))
        })
        .collect();
    // a long column on either side is hashed as one on both: the same expression
    for (source, target) in source_columns.iter_mut().zip(target_columns.iter_mut()) {
        if source.1.is_long() || target.1.is_long() {
            source.1 = source.1.long();
            target.1 = target.1.long();
        }
    }
    Ok(Described {
        id: id.clone(),
        source: Side {
            table: format!("{}.{}", quote(&id.schema), quote(&id.table)),
            columns: source_columns,
            key: target.key.clone(),
        },
        target: Side {
            table: format!("{}.{}", quote(&target.schema), quote(&target.table)),
            columns: target_columns,
            key: target.key.clone(),
        },
        all_columns,
        source_key: key,
        target_name,
        target_id: TableId {
            schema: target.schema.clone(),
            table: target.table.clone(),
        },
        estimate: estimate.flatten(),
    })
}

/// The key of the `rows`-th row after `after` on the source: the chunk's end (None: the
/// chunk runs to the end of the table).
async fn upper_bound(
    windows: &mut Windows,
    table: &Described,
    after: Option<&[Bound]>,
    rows: usize,
) -> Result<Option<Vec<Bound>>> {
    let side = &table.source;
    let (condition, params) = range_condition(
        side,
        &Range {
            after,
            through: None,
        },
    );
    let sql = format!(
        "SELECT {keys} FROM {} WHERE {condition} ORDER BY {keys} LIMIT 1 OFFSET {}",
        side.table,
        rows.saturating_sub(1),
        keys = side.key_list()
    );
    let row: Option<mysql_async::Row> = windows
        .source
        .exec_first(sql, params)
        .await
        .map_err(|error| windows.source_error("find a verification chunk's end", error))?;
    Ok(row.map(|row| row.unwrap().into_iter().map(from_param).collect()))
}

/// A chunk compared at one point of the stream: aggregates first; keys and hashes when they
/// differ; values of the keys that differ last.
async fn compare_chunk(
    windows: &mut Windows,
    table: &Described,
    range: &Range<'_>,
) -> Result<Compared> {
    let (on_source, on_target) = at_one_point(windows, table, range, Pass::Aggregate).await?;
    let (Read::Aggregate(on_source), Read::Aggregate(on_target)) = (on_source, on_target) else {
        unreachable!("an aggregate pass reads aggregates");
    };
    if on_source == on_target {
        return Ok(Compared {
            rows: on_source.0,
            diffs: Vec::new(),
        });
    }
    let (Read::Hashes(source_keys), Read::Hashes(target_keys)) =
        at_one_point(windows, table, range, Pass::Hashes).await?
    else {
        unreachable!("a hashes pass reads hashes");
    };
    let differing = compare::differing_keys(source_keys, target_keys);
    let diffs = windows.recheck(table, differing).await?;
    Ok(Compared {
        rows: on_source.0,
        diffs,
    })
}

/// What a pass reads of a chunk on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// COUNT and BIT_XOR of the row hashes.
    Aggregate,
    /// Each key and its row's hash.
    Hashes,
}

enum Read {
    Aggregate((u64, u64)),
    Hashes(Vec<Hashed>),
}

impl Pass {
    async fn read(
        self,
        conn: &mut Conn,
        side: &Side,
        range: &Range<'_>,
    ) -> std::result::Result<Read, mysql_async::Error> {
        Ok(match self {
            Pass::Aggregate => Read::Aggregate(aggregate(conn, side, range).await?),
            Pass::Hashes => Read::Hashes(hashes(conn, side, range).await?),
        })
    }
}

/// Reads a pass of the chunk on the source between two watermarks, and on the target in the
/// snapshot taken at the high one; a spoiled window is taken again.
async fn at_one_point(
    windows: &mut Windows,
    table: &Described,
    range: &Range<'_>,
    pass: Pass,
) -> Result<(Read, Read)> {
    let mut retakes = 0;
    loop {
        let mark = windows.low().await?;
        let on_source = match pass.read(&mut windows.source, &table.source, range).await {
            Ok(read) => read,
            Err(error) => {
                windows.forget(mark);
                return Err(windows.source_error("read a verification chunk", error));
            }
        };
        if windows.high(mark).await?.is_none() {
            retakes += 1;
            if retakes >= RETAKES {
                return Err(retaken(table));
            }
            continue;
        }
        let target = windows.target.as_mut().expect("connected");
        let on_target = pass.read(target, &table.target, range).await;
        windows.end_snapshot().await?;
        let on_target = on_target.map_err(|error| {
            windows.target = None;
            windows.target_error("read a verification chunk", error)
        })?;
        return Ok((on_source, on_target));
    }
}

fn retaken(table: &Described) -> Error {
    Error::StreamLost(format!(
        "{}: verification windows were spoiled {RETAKES} times in a row (DDL, or the stream restarting)",
        table.id
    ))
}

/// `key > after AND key <= through` on a side, with its values.
fn range_condition(side: &Side, range: &Range<'_>) -> (String, Vec<mysql_async::Value>) {
    let names = side.key_names();
    let mut conditions = vec!["TRUE".to_owned()];
    let mut params = Vec::new();
    for (bound, after) in [(range.after, true), (range.through, false)] {
        if let Some(values) = bound {
            let (text, binds) = key_compare(&names, after);
            conditions.push(text);
            params.extend(binds.into_iter().map(|at| values[at].param()));
        }
    }
    (conditions.join(" AND "), params)
}

/// COUNT and BIT_XOR of the row hashes in the range.
async fn aggregate(
    conn: &mut Conn,
    side: &Side,
    range: &Range<'_>,
) -> std::result::Result<(u64, u64), mysql_async::Error> {
    let (condition, params) = range_condition(side, range);
    let sql = format!(
        "SELECT COUNT(*), CAST(COALESCE(BIT_XOR({}), 0) AS UNSIGNED) FROM {} WHERE {condition}",
        side.row_hash(),
        side.table
    );
    let row: Option<(u64, u64)> = conn.exec_first(sql, params).await?;
    Ok(row.unwrap_or((0, 0)))
}

/// The keys and row hashes in the range.
async fn hashes(
    conn: &mut Conn,
    side: &Side,
    range: &Range<'_>,
) -> std::result::Result<Vec<Hashed>, mysql_async::Error> {
    let (condition, params) = range_condition(side, range);
    let sql = format!(
        "SELECT {}, {} FROM {} WHERE {condition}",
        side.key_list(),
        side.row_hash(),
        side.table
    );
    let rows: Vec<mysql_async::Row> = conn.exec(sql, params).await?;
    let width = side.key.len();
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut values: Vec<Bound> = row.unwrap().into_iter().map(from_param).collect();
            let hash = match values.pop() {
                Some(Bound::Int(hash)) => hash as u64,
                Some(Bound::UInt(hash)) => hash,
                _ => 0,
            };
            values.truncate(width);
            (values, hash)
        })
        .collect())
}

/// `(k1, k2) IN ((?, ?), …)` (or `k IN (?, …)`) for `keys`, with their values.
pub(super) fn keys_condition(
    names: &[String],
    keys: &[Vec<Bound>],
) -> (String, Vec<mysql_async::Value>) {
    let quoted: Vec<String> = names.iter().map(|name| quote(name)).collect();
    let one = format!("({})", vec!["?"; names.len()].join(", "));
    let list = vec![one; keys.len()].join(", ");
    let params = keys
        .iter()
        .flat_map(|key| key.iter().map(Bound::param))
        .collect();
    (format!("({}) IN ({list})", quoted.join(", ")), params)
}

/// The compared values of the rows of `keys`, by key.
async fn values_of(
    conn: &mut Conn,
    side: &Side,
    keys: &[Vec<Bound>],
) -> std::result::Result<HashMap<KeyText, Vec<mysql_async::Value>>, mysql_async::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (condition, params) = keys_condition(&side.key_names(), keys);
    let sql = format!(
        "SELECT {}, {} FROM {} WHERE {condition}",
        side.key_list(),
        side.values().join(", "),
        side.table
    );
    let rows: Vec<mysql_async::Row> = conn.exec(sql, params).await?;
    let width = side.key.len();
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut values = row.unwrap();
            let rest = values.split_off(width);
            let key: Vec<Bound> = values.into_iter().map(from_param).collect();
            (key_text(key.iter()), rest)
        })
        .collect())
}

/// The next chunk's rows: sized so that a chunk takes about `target` (at most twice or half
/// the last).
fn next_size(last: usize, took: Duration, target: Duration) -> usize {
    let by_time = if took.is_zero() {
        last * 2
    } else {
        (last as f64 * target.as_secs_f64() / took.as_secs_f64()) as usize
    };
    by_time
        .clamp(last / 2, last * 2)
        .clamp(MIN_CHUNK, MAX_CHUNK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_listed_as_row_values_with_one_parameter_each() {
        let names = ["a".to_owned(), "b`".to_owned()];
        let keys = vec![
            vec![Bound::Int(1), Bound::Bytes(b"x".to_vec())],
            vec![Bound::Int(2), Bound::Bytes(b"y".to_vec())],
        ];
        let (text, params) = keys_condition(&names, &keys);
        assert_eq!(text, "(`a`, `b```) IN ((?, ?), (?, ?))");
        assert_eq!(params.len(), 4);
    }

    #[test]
    fn chunks_grow_toward_their_time() {
        let target = Duration::from_millis(500);
        assert_eq!(next_size(1000, Duration::from_millis(100), target), 2000);
        assert_eq!(next_size(1000, Duration::from_secs(5), target), 500);
        assert_eq!(next_size(MAX_CHUNK, Duration::ZERO, target), MAX_CHUNK);
    }
}
