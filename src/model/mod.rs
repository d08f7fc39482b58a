//! Typed values shared by every stage: ids, fencing tokens, binlog positions, start points,
//! column values and row changes.
//! Nothing here does IO.

mod change;
mod ids;
mod position;
mod value;

pub use change::{ChangeKind, ColumnMeta, RowChange, TableId, TableMeta};
pub use ids::{ChannelId, DataSourceId, FencingToken, PipelineId, TablePairId};
pub use position::{
    BinlogFilePos, ChangeAt, GtidState, MariaGtid, ParsePositionError, Position, StartPoint,
};
pub use value::{Charset, JsonOperation, Value};
