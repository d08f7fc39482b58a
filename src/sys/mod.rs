//! What ottr keeps on the data servers it syncs, in the schema `ottr_sys` (created on first
//! use; the user needs CREATE, ALTER, SELECT, INSERT, UPDATE and DELETE on `ottr_sys.*`):
//!
//! - [`applied`]: one row per pipeline and load partition on the target, holding the position
//!   applied up to, the fencing token and holder that may write, and a counter bumped first in
//!   every transaction ottr writes (how two-way pipelines recognise their own echo);
//! - [`ddl`]: the DDL barrier's records (applying, applied, failed), and which connection
//!   replays a DDL (its binlog event is recognised by that thread id);
//! - [`repair`]: the keys of a two-way channel whose sides may differ after a conflict;
//! - [`heartbeat`]: one row per pipeline on the source, stamped with its clock, for lag;
//! - [`copy`]: the online copy's watermarks on the source and its progress on the target.
//!
//! Every piece of SQL that touches `ottr_sys` is in this module. It knows nothing of
//! pipelines beyond their key (`installation id/pipeline id`).

pub mod applied;
pub mod copy;
pub mod ddl;
pub mod heartbeat;
pub mod repair;

use crate::error::{Error, Result};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

pub use crate::model::SYSTEM_SCHEMA as SCHEMA;

pub const CREATE_SCHEMA: &str = "CREATE DATABASE IF NOT EXISTS ottr_sys";
const CREATE_APPLIED: &str = "CREATE TABLE IF NOT EXISTS ottr_sys.applied (
    pipeline_key VARCHAR(100) NOT NULL COMMENT 'installation id / pipeline id',
    partition_no SMALLINT UNSIGNED NOT NULL,
    pipeline_name VARCHAR(130) NOT NULL,
    binlog_file VARCHAR(255) NULL,
    binlog_offset BIGINT UNSIGNED NULL,
    gtid TEXT NULL,
    trx_rows_done BIGINT UNSIGNED NOT NULL DEFAULT 0,
    fencing_token BIGINT UNSIGNED NOT NULL DEFAULT 0,
    holder VARCHAR(130) NULL COMMENT 'the node process (name#instance) that took the row under fencing_token',
    layout VARCHAR(32) NOT NULL DEFAULT '' COMMENT 'partitions and mode that routed rows here',
    marks BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'bumped first in every transaction the pipeline writes: how its writes are recognised in this server''s binlog',
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline_key, partition_no)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
const CREATE_DDL: &str = "CREATE TABLE IF NOT EXISTS ottr_sys.ddl (
    pipeline_key VARCHAR(100) NOT NULL,
    binlog_file VARCHAR(255) NOT NULL,
    binlog_offset BIGINT UNSIGNED NOT NULL,
    state ENUM('applying','applied','failed') NOT NULL,
    statement MEDIUMTEXT NOT NULL,
    connection_id BIGINT UNSIGNED NULL COMMENT 'the connection that runs the statement: its DDL event is recognised by this thread id',
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline_key, binlog_file, binlog_offset)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
const CREATE_REPAIR: &str = "CREATE TABLE IF NOT EXISTS ottr_sys.repair (
    pipeline_key VARCHAR(100) NOT NULL,
    suspect_hash CHAR(64) NOT NULL,
    suspect MEDIUMTEXT NOT NULL COMMENT 'a two-way key whose sides may differ after a conflict, until repaired (JSON)',
    created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline_key, suspect_hash)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
/// Columns added to `ottr_sys` tables after their first release: table, column, and how to
/// add it to a target whose table predates it.
const ADDED_COLUMNS: [(&str, &str, &str); 3] = [
    (
        "applied",
        "marks",
        "ALTER TABLE ottr_sys.applied ADD COLUMN marks BIGINT UNSIGNED NOT NULL DEFAULT 0",
    ),
    (
        "ddl",
        "connection_id",
        "ALTER TABLE ottr_sys.ddl ADD COLUMN connection_id BIGINT UNSIGNED NULL",
    ),
    (
        "applied",
        "holder",
        "ALTER TABLE ottr_sys.applied ADD COLUMN holder VARCHAR(130) NULL AFTER fencing_token",
    ),
];
const HAS_COLUMN: &str = "SELECT COUNT(*) FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = 'ottr_sys' AND TABLE_NAME = ? AND COLUMN_NAME = ?";

/// Creates ottr's schema and tables on a data server (or adds what an older ottr did not
/// create).
pub async fn ensure(conn: &mut Conn, server: &str) -> Result<()> {
    for sql in [
        CREATE_SCHEMA,
        CREATE_APPLIED,
        CREATE_DDL,
        CREATE_REPAIR,
        copy::CREATE_PROGRESS,
    ] {
        conn.query_drop(sql).await.map_err(|error| {
            Error::database(format!("cannot create ottr_sys on data source '{server}' (it needs CREATE on ottr_sys.*)"), error)
        })?;
    }
    for (table, column, add) in ADDED_COLUMNS {
        let present: Option<u64> =
            conn.exec_first(HAS_COLUMN, (table, column))
                .await
                .map_err(|error| {
                    Error::database(
                        format!("cannot read the columns of ottr_sys on data source '{server}'"),
                        error,
                    )
                })?;
        if present == Some(0) {
            conn.query_drop(add).await.or_else(|error| match &error {
                // another pipeline added it meanwhile
                mysql_async::Error::Server(server) if server.code == 1060 => Ok(()),
                _ => Err(error),
            }).map_err(|error| {
                Error::database(format!("cannot add column {column} to ottr_sys.{table} on data source '{server}' (it needs ALTER on ottr_sys.*)"), error)
            })?;
        }
    }
    Ok(())
}
