//! `ottr_sys.applied`: per pipeline and load partition, the position applied up to, the
//! fencing token and holder allowed to write, the load layout that routed rows there, and
//! the marks counter. Partition 65535 is the row a two-way pipeline marks on its *source*.

/// The first statement of every transaction that writes rows or announces a DDL: a change in
/// the binlog that names the pipeline (see `select::echo`), and the fencing check.
pub const MARK: &str = "UPDATE ottr_sys.applied SET marks = marks + 1 \
     WHERE pipeline_key = ? AND partition_no = ? AND fencing_token <= ?";
/// The `ottr_sys.applied` row a two-way pipeline marks on its *source* when it writes there:
/// the primary's rows of conflicts' keys, and the suspects it takes over (see `repair`).
pub const WRITE_BACK_PARTITION: u32 = 65_535;
pub const CLAIM_WRITE_BACK: &str = "UPDATE ottr_sys.applied SET fencing_token = ?, holder = ? \
     WHERE pipeline_key = ? AND partition_no = ? \
     AND (fencing_token < ? OR (fencing_token = ? AND holder <=> ?))";
pub const ADD_PARTITION: &str = "INSERT IGNORE INTO ottr_sys.applied (pipeline_key, partition_no, pipeline_name) VALUES (?, ?, ?)";
/// A token is taken by one process only: the same token held by another process means two
/// holders were handed the same token (a metadata failover that lost lease rows), and the
/// claim fails, so that the lease's token is raised past the target's (see [`TokenBehind`]).
///
/// [`TokenBehind`]: Error::TokenBehind
pub const CLAIM_PARTITIONS: &str = "UPDATE ottr_sys.applied SET fencing_token = ?, holder = ? \
     WHERE pipeline_key = ? AND partition_no < 65535 \
     AND (fencing_token < ? OR (fencing_token = ? AND holder <=> ?))";
pub const NEWEST_TOKEN: &str =
    "SELECT MAX(fencing_token) FROM ottr_sys.applied WHERE pipeline_key = ?";
pub const COUNT_PARTITIONS: &str =
    "SELECT COUNT(*) FROM ottr_sys.applied WHERE pipeline_key = ? AND partition_no < 65535";
pub const SET_LAYOUT: &str = "UPDATE ottr_sys.applied SET layout = ?, binlog_file = ?, binlog_offset = ?, gtid = ?, \
     trx_rows_done = ? WHERE pipeline_key = ? AND fencing_token <= ? AND partition_no < 65535";
pub const MARK_LAYOUT: &str = "UPDATE ottr_sys.applied SET layout = ? \
     WHERE pipeline_key = ? AND layout = '' AND partition_no < 65535";
pub const READ_APPLIED: &str = "SELECT partition_no, binlog_file, binlog_offset, gtid, trx_rows_done, layout \
     FROM ottr_sys.applied WHERE pipeline_key = ? AND partition_no < 65535 ORDER BY partition_no";
pub const FORGET_APPLIED: &str = "UPDATE ottr_sys.applied SET binlog_file = NULL, binlog_offset = NULL, \
     gtid = NULL, trx_rows_done = 0 WHERE pipeline_key = ? AND fencing_token <= ? AND partition_no < 65535";
pub const FORGET_DDL: &str = "DELETE FROM ottr_sys.ddl WHERE pipeline_key = ?";
pub const MOVE_APPLIED: &str = "UPDATE ottr_sys.applied SET binlog_file = ?, binlog_offset = ?, gtid = ?, \
     trx_rows_done = ?, fencing_token = ? WHERE pipeline_key = ? AND partition_no = ? AND fencing_token <= ?";

/// `partition_no, binlog_file, binlog_offset, gtid, trx_rows_done, layout` of an applied row.
pub type AppliedColumns = (
    u32,
    Option<String>,
    Option<u64>,
    Option<String>,
    u64,
    String,
);
/// How far a pipeline has applied, at the least, over its partitions (`pipeline_key`): where
/// a two-way verification starts reading the other side's binlog.
pub const LEAST_APPLIED: &str = "SELECT binlog_file, binlog_offset FROM ottr_sys.applied \
     WHERE pipeline_key = ? AND partition_no < 65535 AND binlog_file IS NOT NULL \
     ORDER BY LENGTH(binlog_file), binlog_file, binlog_offset LIMIT 1";
/// Whether a pipeline has partitions with no position yet.
pub const UNPLACED_PARTITIONS: &str = "SELECT COUNT(*) FROM ottr_sys.applied \
     WHERE pipeline_key = ? AND partition_no < 65535 AND binlog_file IS NULL";
