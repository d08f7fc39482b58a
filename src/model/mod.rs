//! Typed values shared by every stage: ids, fencing tokens, binlog positions, start points,
//! column values, row changes and replayed statements.
//! Nothing here does IO.

mod change;
mod ids;
mod position;
mod statement;
mod value;

pub use change::{ChangeKind, ColumnMeta, RowChange, TableId, TableMeta};
pub use ids::{ChannelId, DataSourceId, FencingToken, PipelineId, TablePairId};
pub use position::{
    BinlogFilePos, ChangeAt, GtidState, MariaGtid, ParsePositionError, Position, StartPoint,
};
pub use statement::{DataSourceKind, Session, SqlMode, Statement, decode_charset, encode_charset};
pub use value::{Charset, JsonOperation, Value};
