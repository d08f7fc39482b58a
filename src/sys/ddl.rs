//! `ottr_sys.ddl`: a replayed DDL is recorded as applying (with the connection that runs it)
//! before it runs and as applied (or failed) after, so that a replay after a crash knows
//! whether "already done" errors mean done.

pub const DDL_STATE: &str = "SELECT state FROM ottr_sys.ddl WHERE pipeline_key = ? AND binlog_file = ? AND binlog_offset = ?";
pub const DDL_APPLYING: &str = "INSERT INTO ottr_sys.ddl \
     (pipeline_key, binlog_file, binlog_offset, state, statement, connection_id) \
     VALUES (?, ?, ?, 'applying', ?, CONNECTION_ID()) \
     ON DUPLICATE KEY UPDATE state = 'applying', connection_id = CONNECTION_ID(), updated_at = NOW(6)";
pub const DDL_FAILED: &str = "UPDATE ottr_sys.ddl SET state = 'failed' \
     WHERE pipeline_key = ? AND binlog_file = ? AND binlog_offset = ?";
pub const DDL_APPLIED: &str = "UPDATE ottr_sys.ddl SET state = 'applied' \
     WHERE pipeline_key = ? AND binlog_file = ? AND binlog_offset = ?";

/// The connections with a DDL announced by an echo pipeline and perhaps not yet read: those
/// still applying, and those applied in the last ten minutes (their DDL may lie after the
/// position a restarted reader resumes at).
pub const ANNOUNCED: &str = "SELECT pipeline_key, connection_id FROM ottr_sys.ddl \
     WHERE connection_id IS NOT NULL AND (state = 'applying' OR updated_at > NOW(6) - INTERVAL 10 MINUTE)";
