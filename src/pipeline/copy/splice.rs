//! The stream's side of the online copy (DBLog's method): a chunk is read between a low and
//! a high watermark written into the source's `ottr_sys.watermark`; the stream notes the keys
//! of the chunk's table that change between the two in the binlog, and at the high watermark
//! the chunk is applied without those keys (the stream has applied their newer versions).
//! Everything before the high watermark is applied first, so a chunk lands at exactly its
//! place in the stream. A DDL between the watermarks, or a low watermark the stream did not
//! see (it restarted in between), sends the chunk back to be read again.
//!
//! A verification (see `pipeline::verify`) uses the same watermarks: its window ends with a
//! [`Piece::Window`] at the high watermark, where the stream, everything before applied and
//! committed, starts a consistent snapshot on the target for the verification to read.

use crate::model::{ChangeAt, RowChange, TableId, TableMeta, Value};
use crate::pipeline::select::Change;
use crate::pipeline::transform::bind::{self, Bound};
use crate::sys::copy::{SCHEMA, WATERMARK_TABLE};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A key as bytes that compare equal however its values were read (see
/// [`Bound::identity_text`]).
pub type KeyText = Vec<u8>;

/// The identity text of the values of `image` at `key` (indexes).
pub fn key_text<'v>(values: impl Iterator<Item = &'v Bound>) -> KeyText {
    let mut out = Vec::with_capacity(16);
    for value in values {
        value.identity_text(&mut out);
    }
    out
}

/// Where a table's copy stands once a chunk is committed (written to the target with it).
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkProgress {
    pub job: u64,
    /// `schema.table` on the source.
    pub source_table: String,
    /// The key walked, as JSON (column names).
    pub key_columns: String,
    /// The last key copied, as JSON (None: nothing yet).
    pub last_key: Option<String>,
    pub rows_copied: u64,
    pub chunks_done: u64,
    pub done: bool,
}

/// A chunk read from the source, waiting for its high watermark in the stream.
#[derive(Debug)]
pub struct ReadChunk {
    /// The source table: column names in the order of `rows`, and its primary key.
    pub table: Arc<TableMeta>,
    pub rows: Vec<Vec<Bound>>,
    /// The key range the chunk covers: after this key (None: from the first), through this
    /// key (None: to the last). Target rows in it that the chunk lacks are deleted when
    /// `delete_extras`.
    pub after: Option<Vec<Bound>>,
    pub through: Option<Vec<Bound>>,
    /// A repair's chunk covers these keys only (source key order), not a range: those the
    /// source lacks are deleted from the target when `delete_extras`.
    pub keys: Option<Vec<Vec<Bound>>>,
    pub delete_extras: bool,
    /// Where the table's copy stands once the chunk is committed (None: a repair).
    pub progress: Option<ChunkProgress>,
    /// Told how the chunk ended.
    pub outcome: oneshot::Sender<Outcome>,
}

/// How a chunk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed on the target: rows written, rows left to the stream, extra target rows
    /// deleted.
    Applied {
        written: u64,
        left_to_stream: u64,
        deleted: u64,
    },
    /// Not applied: read it again (why).
    Again(String),
    /// Cannot be applied: the target table does not fit (why); the stream goes on.
    Failed(String),
}

/// A verification window waiting for its high watermark: once everything before it is
/// applied, the stream starts a consistent snapshot on `target` and hands it back.
#[derive(Debug)]
pub struct VerifyWindow {
    pub target: mysql_async::Conn,
    pub reply: oneshot::Sender<WindowEnd>,
}

/// How a verification window ended.
#[derive(Debug)]
pub struct WindowEnd {
    /// The target connection: in a consistent snapshot taken at the high watermark when
    /// `changed` is Ok.
    pub target: mysql_async::Conn,
    /// The keys of the table that changed between the watermarks, or why the window must be
    /// taken again.
    pub changed: std::result::Result<HashSet<KeyText>, String>,
}

/// What a copy or verification task has told the stream about a watermark.
#[derive(Debug)]
enum Slot {
    /// The low watermark is being written: its table is this.
    Expected(TableId),
    /// The chunk was read; the high watermark follows.
    Read(Box<ReadChunk>),
    /// The verification's source read is done; the high watermark follows.
    Window(TableId, Box<VerifyWindow>),
}

/// What waits at a high watermark.
enum Waiting {
    Chunk(Box<ReadChunk>),
    Window(Box<VerifyWindow>),
}

impl Waiting {
    /// Sends the chunk or window back to be taken again.
    fn again(self, why: String) {
        match self {
            Waiting::Chunk(chunk) => {
                let _ = chunk.outcome.send(Outcome::Again(why));
            }
            Waiting::Window(window) => {
                let _ = window.reply.send(WindowEnd {
                    target: window.target,
                    changed: Err(why),
                });
            }
        }
    }
}

/// Chunks and verification windows between their watermarks, shared by the copy and
/// verification tasks and the stream.
#[derive(Debug)]
pub struct Marks {
    slots: Mutex<HashMap<u64, Slot>>,
    /// The next watermark mark: random high bits (unique to this run of the stream, so that
    /// an earlier run's watermarks are never taken for this one's), a counter below.
    next: std::sync::atomic::AtomicU64,
}

impl Default for Marks {
    fn default() -> Self {
        use std::hash::{BuildHasher, RandomState};
        let run = RandomState::new().hash_one(std::time::SystemTime::now()) & 0xFFFF_FFFF;
        Marks {
            slots: Mutex::default(),
            next: std::sync::atomic::AtomicU64::new(run << 31),
        }
    }
}

impl Marks {
    /// A new mark, for a chunk's or a window's watermarks.
    pub fn next_mark(&self) -> u64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// A low watermark `mark` for `table` is about to be written.
    pub fn expect(&self, mark: u64, table: TableId) {
        self.lock().insert(mark, Slot::Expected(table));
    }

    /// The chunk of `mark` was read; its high watermark is about to be written.
    pub fn read(&self, mark: u64, chunk: ReadChunk) {
        self.lock().insert(mark, Slot::Read(Box::new(chunk)));
    }

    /// The verification window of `mark` was read on the source; its high watermark is
    /// about to be written.
    pub fn window(&self, mark: u64, table: TableId, window: VerifyWindow) {
        self.lock()
            .insert(mark, Slot::Window(table, Box::new(window)));
    }

    /// The copy task gave `mark` up (it failed to write a watermark).
    pub fn forget(&self, mark: u64) {
        self.lock().remove(&mark);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        self.slots.lock().expect("not poisoned")
    }

    fn table_of(&self, mark: u64) -> Option<TableId> {
        match self.lock().get(&mark)? {
            Slot::Expected(table) => Some(table.clone()),
            Slot::Read(chunk) => Some(chunk.table.id.clone()),
            Slot::Window(table, _) => Some(table.clone()),
        }
    }

    fn take(&self, mark: u64) -> Option<Waiting> {
        match self.lock().remove(&mark)? {
            Slot::Read(chunk) => Some(Waiting::Chunk(chunk)),
            Slot::Window(_, window) => Some(Waiting::Window(window)),
            Slot::Expected(_) => None,
        }
    }
}

/// What the stream applies, in order: changes, and chunks at their high watermark.
#[derive(Debug)]
pub enum Piece {
    Changes(Vec<Change>),
    Chunk {
        chunk: Box<ReadChunk>,
        /// The chunk's keys that changed between its watermarks: left to the stream.
        changed: HashSet<KeyText>,
        /// Where the high watermark is.
        at: ChangeAt,
    },
    /// A verification window's high watermark: the target snapshot is taken here.
    Window {
        window: Box<VerifyWindow>,
        /// The table's keys that changed between the watermarks.
        changed: HashSet<KeyText>,
        at: ChangeAt,
    },
}

impl Piece {
    /// Where a chunk or window lands in the stream (None: changes).
    pub fn high_watermark(&self) -> Option<&ChangeAt> {
        match self {
            Piece::Changes(_) => None,
            Piece::Chunk { at, .. } | Piece::Window { at, .. } => Some(at),
        }
    }
}

/// Keys of a table noted between a chunk's watermarks.
#[derive(Debug)]
struct Tracked {
    table: TableId,
    keys: HashSet<KeyText>,
    /// Why the chunk must be read again, if it must.
    spoiled: Option<&'static str>,
}

/// Follows watermarks through the stream and splices chunks in.
#[derive(Debug)]
pub struct Splicer {
    pipeline_key: String,
    marks: Arc<Marks>,
    tracking: HashMap<u64, Tracked>,
}

/// A watermark of a pipeline in the binlog.
struct Watermark {
    mark: u64,
    high: bool,
}

fn watermark(row: &RowChange, pipeline_key: &str) -> Option<Watermark> {
    let after = row.after.as_ref()?;
    let column = |name: &str| row.table.columns.iter().position(|c| c.name == name);
    let ours = matches!(after.get(column("pipeline_key")?),
        Some(Value::Text { bytes, .. }) if bytes == pipeline_key.as_bytes());
    if !ours {
        return None;
    }
    let mark = match after.get(column("mark")?)? {
        Value::UInt(mark) => *mark,
        Value::Int(mark) => u64::try_from(*mark).ok()?,
        _ => return None,
    };
    let high = match after.get(column("kind")?)? {
        Value::Enum { index, .. } => *index == 2,
        Value::Text { bytes, .. } => bytes == b"high",
        _ => return None,
    };
    Some(Watermark { mark, high })
}

/// The identity text of a binlog row image's primary key, or None when a value cannot be
/// bound (it is then no key of a copied row either).
pub fn row_key(meta: &TableMeta, image: &[Value]) -> Option<KeyText> {
    let mut out = Vec::with_capacity(16);
    for index in &meta.primary_key {
        bind::bind(image.get(*index)?).ok()?.identity_text(&mut out);
    }
    Some(out)
}

impl Splicer {
    pub fn new(pipeline_key: String, marks: Arc<Marks>) -> Self {
        Splicer {
            pipeline_key,
            marks,
            tracking: HashMap::new(),
        }
    }

    /// Whether nothing is between watermarks and no chunk waits (the common case: a batch
    /// then goes through untouched).
    fn idle(&self) -> bool {
        self.tracking.is_empty() && self.marks.lock().is_empty()
    }

    /// Splits a batch's changes at the high watermarks of chunks read meanwhile.
    pub fn split(&mut self, changes: Vec<Change>) -> Vec<Piece> {
        if self.idle() {
            return vec![Piece::Changes(changes)];
        }
        let mut pieces = Vec::new();
        let mut current = Vec::with_capacity(changes.len());
        for change in changes {
            match &change {
                Change::Row(row, at)
                    if row.table.id.schema == SCHEMA && row.table.id.table == WATERMARK_TABLE =>
                {
                    let Some(mark) = watermark(row, &self.pipeline_key) else {
                        current.push(change);
                        continue;
                    };
                    if !mark.high {
                        if let Some(table) = self.marks.table_of(mark.mark) {
                            self.tracking.insert(
                                mark.mark,
                                Tracked {
                                    table,
                                    keys: HashSet::new(),
                                    spoiled: None,
                                },
                            );
                        }
                        continue;
                    }
                    let tracked = self.tracking.remove(&mark.mark);
                    let Some(waiting) = self.marks.take(mark.mark) else {
                        continue;
                    };
                    match tracked {
                        Some(Tracked {
                            spoiled: Some(why), ..
                        }) => waiting.again(why.into()),
                        Some(tracked) => {
                            pieces.push(Piece::Changes(std::mem::take(&mut current)));
                            pieces.push(match waiting {
                                Waiting::Chunk(chunk) => Piece::Chunk {
                                    chunk,
                                    changed: tracked.keys,
                                    at: at.clone(),
                                },
                                Waiting::Window(window) => Piece::Window {
                                    window,
                                    changed: tracked.keys,
                                    at: at.clone(),
                                },
                            });
                        }
                        None => waiting
                            .again("the stream did not see the window's low watermark".into()),
                    }
                }
                Change::Row(row, _) => {
                    for tracked in self.tracking.values_mut() {
                        if tracked.table != row.table.id {
                            continue;
                        }
                        for image in [&row.before, &row.after].into_iter().flatten() {
                            match row_key(&row.table, image) {
                                Some(key) => {
                                    tracked.keys.insert(key);
                                }
                                None => {
                                    tracked.spoiled =
                                        Some("a changed key of the chunk's table cannot be told")
                                }
                            }
                        }
                    }
                    current.push(change);
                }
                Change::Ddl { .. } => {
                    for tracked in self.tracking.values_mut() {
                        tracked.spoiled = Some("a DDL was logged while the chunk was read");
                    }
                    current.push(change);
                }
            }
        }
        pieces.push(Piece::Changes(current));
        // a copy task that gave its chunk up leaves nothing to follow
        let marks = self.marks.lock();
        self.tracking.retain(|mark, _| marks.contains_key(mark));
        drop(marks);
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        BinlogFilePos, ChangeKind, Charset, ColumnMeta, Session, Statement, TableMeta,
    };

    const KEY: &str = "i/1";

    fn at(offset: u64) -> ChangeAt {
        ChangeAt {
            transaction: BinlogFilePos {
                file: "mysql-bin.000001".into(),
                offset,
            },
            index: 0,
        }
    }

    fn table(schema: &str, name: &str, columns: &[&str]) -> Arc<TableMeta> {
        Arc::new(TableMeta {
            id: TableId {
                schema: schema.into(),
                table: name.into(),
            },
            columns: columns
                .iter()
                .map(|name| ColumnMeta {
                    name: (*name).into(),
                    type_name: String::new(),
                    unsigned: false,
                })
                .collect(),
            primary_key: vec![0],
        })
    }

    fn orders() -> TableId {
        table("shop", "orders", &["id"]).id.clone()
    }

    fn mark(mark: u64, high: bool, offset: u64) -> Change {
        let after = vec![
            Value::Text {
                bytes: KEY.as_bytes().to_vec(),
                charset: Charset::Utf8mb4,
            },
            Value::UInt(0),
            Value::UInt(mark),
            Value::Enum {
                index: if high { 2 } else { 1 },
                label: if high { "high" } else { "low" }.into(),
            },
        ];
        Change::Row(
            RowChange {
                table: table(
                    SCHEMA,
                    WATERMARK_TABLE,
                    &["pipeline_key", "slot", "mark", "kind"],
                ),
                kind: ChangeKind::Update,
                before: None,
                after: Some(after),
            },
            at(offset),
        )
    }

    fn update(id: i64, to: i64, offset: u64) -> Change {
        Change::Row(
            RowChange {
                table: table("shop", "orders", &["id"]),
                kind: ChangeKind::Update,
                before: Some(vec![Value::Int(id)]),
                after: Some(vec![Value::Int(to)]),
            },
            at(offset),
        )
    }

    fn chunk(marks: &Marks, mark: u64) -> oneshot::Receiver<Outcome> {
        let (outcome, receiver) = oneshot::channel();
        marks.read(
            mark,
            ReadChunk {
                table: table("shop", "orders", &["id"]),
                rows: vec![vec![Bound::Int(5)], vec![Bound::UInt(6)]],
                after: None,
                through: None,
                keys: None,
                delete_extras: true,
                progress: Some(ChunkProgress {
                    job: 1,
                    source_table: "shop.orders".into(),
                    key_columns: "[\"id\"]".into(),
                    last_key: None,
                    rows_copied: 2,
                    chunks_done: 1,
                    done: true,
                }),
                outcome,
            },
        );
        receiver
    }

    #[test]
    fn a_chunk_lands_at_its_high_watermark_without_the_keys_changed_since_its_low_one() {
        let marks = Arc::new(Marks::default());
        let mut splicer = Splicer::new(KEY.into(), marks.clone());
        // nothing under way: a batch goes through whole
        let pieces = splicer.split(vec![update(1, 1, 10)]);
        assert!(matches!(pieces.as_slice(), [Piece::Changes(changes)] if changes.len() == 1));
        marks.expect(7, orders());
        let first = splicer.split(vec![update(1, 1, 20), mark(7, false, 30), update(5, 5, 40)]);
        let _receiver = chunk(&marks, 7);
        let second = splicer.split(vec![update(6, 60, 50), mark(7, true, 60), update(2, 2, 70)]);
        assert!(matches!(first.as_slice(), [Piece::Changes(changes)] if changes.len() == 2));
        let [
            Piece::Changes(before),
            Piece::Chunk { changed, at, .. },
            Piece::Changes(after),
        ] = second.as_slice()
        else {
            panic!("{second:?}")
        };
        assert_eq!(
            (before.len(), after.len(), at.transaction.offset),
            (1, 1, 60)
        );
        // 5 and 6 (read as a signed or an unsigned number alike), and 60
        let keys = |ids: &[i64]| -> HashSet<KeyText> {
            ids.iter()
                .map(|id| key_text([Bound::Int(*id)].iter()))
                .collect()
        };
        assert_eq!(*changed, keys(&[5, 6, 60]));
        assert!(changed.contains(&key_text([Bound::UInt(6)].iter())));
    }

    #[test]
    fn a_ddl_between_the_watermarks_or_a_missed_low_watermark_sends_the_chunk_back() {
        let marks = Arc::new(Marks::default());
        let mut splicer = Splicer::new(KEY.into(), marks.clone());
        marks.expect(1, orders());
        let ddl = Change::Ddl {
            statement: Statement {
                schema: "shop".into(),
                text: b"ALTER TABLE orders ADD COLUMN x INT".to_vec(),
                session: Arc::new(Session::for_tests(0, "utf8mb4")),
            },
            at: at(20),
        };
        splicer.split(vec![mark(1, false, 10), ddl]);
        let mut receiver = chunk(&marks, 1);
        let pieces = splicer.split(vec![mark(1, true, 30)]);
        assert!(
            !pieces
                .iter()
                .any(|piece| matches!(piece, Piece::Chunk { .. }))
        );
        assert!(matches!(receiver.try_recv(), Ok(Outcome::Again(why)) if why.contains("DDL")));
        // a stream that starts after the low watermark never saw it
        let mut receiver = chunk(&marks, 2);
        let pieces = splicer.split(vec![mark(2, true, 40)]);
        assert!(
            !pieces
                .iter()
                .any(|piece| matches!(piece, Piece::Chunk { .. }))
        );
        assert!(
            matches!(receiver.try_recv(), Ok(Outcome::Again(why)) if why.contains("low watermark"))
        );
        // the watermark of a chunk no copy waits for (an earlier run's) is dropped
        let other = splicer.split(vec![mark(3, true, 50)]);
        assert!(
            !other
                .iter()
                .any(|piece| matches!(piece, Piece::Chunk { .. }))
        );
    }
}
