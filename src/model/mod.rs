//! Typed values shared by every stage: ids, fencing tokens, binlog positions and start points.
//! Nothing here does IO.

mod ids;
mod position;

pub use ids::{ChannelId, DataSourceId, FencingToken, PipelineId, TablePairId};
pub use position::{BinlogFilePos, GtidState, MariaGtid, ParsePositionError, Position, StartPoint};
