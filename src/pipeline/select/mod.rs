//! Select: everything that reads the source server. It owns the source connection:
//! prechecks, resolving start points into positions, and the binlog reader, which decodes
//! every event into typed values and never skips one silently.

mod batch;
mod decode;
mod echo;
mod engines;
mod event;
#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod fuzz_tests;
mod precheck;
mod query;
mod selector;
mod start;
mod stream;
mod table;

pub use batch::{Batch, BatchData, ByteBudget, Change};
pub use decode::{ColumnDecoder, collation_map};
pub use event::{EventDecoder, SourceEvent, TransactionGtid, event_name};
pub use precheck::{
    Check, Outcome, check_auto_increment, check_marks_logged, first_failure, run_prechecks,
};
pub use query::{CollationNames, SourceLogging, read_session};
pub use selector::{SelectOptions, Selector};
pub use start::{binlog_end, list_binlogs, resolve_end, resolve_timestamp};
pub use stream::{BinlogReader, ReadEvent, ReaderOptions, check_not_purged};
pub use table::{TableDecoder, table_decoder};
