//! Typed values shared by every stage: ids, fencing tokens, binlog positions, start points,
//! column values, row changes and replayed statements, what the statistics count, and the
//! records of conflicts and skipped rows.
//! Nothing here does IO.

mod change;
mod ids;
mod position;
mod records;
mod state;
mod statement;
mod stats;
mod value;

pub use change::{ChangeKind, ColumnMeta, RowChange, TableId, TableMeta};
pub use ids::{
    ChannelId, DataSourceId, FencingToken, InstallationId, PipelineId, PipelineKey, SYSTEM_SCHEMA,
    TablePairId,
};
pub use position::{
    BinlogFilePos, ChangeAt, GtidState, MariaGtid, ParsePositionError, Position, StartPoint,
};
pub use records::{ConflictKind, ConflictRecord, SkippedRow};
pub use state::{ChannelMode, Desired, EventKind, PipelineState, UnknownValue};
pub use statement::{DataSourceKind, Session, SqlMode, Statement, decode_charset, encode_charset};
pub use stats::{
    KindCounts, LAG_BOUNDS_MS, LagMethod, LagReading, PipelineBucket, StageTimes, StatsDelta,
    lag_bucket,
};
pub use value::{Charset, JsonOperation, Value};
