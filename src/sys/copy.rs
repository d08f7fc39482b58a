//! The online copy's rows in `ottr_sys`: watermarks on the source (`watermark`, one row per
//! pipeline and copy slot, rewritten before and after each chunk is read, recognised in the
//! binlog), and each copied table's progress on the target (`copy_progress`, written in the
//! transaction that writes the chunk's rows, so that a resumed copy starts after the last
//! chunk committed).

pub use super::{CREATE_SCHEMA, SCHEMA};

/// The table of watermark rows on the source.
pub const WATERMARK_TABLE: &str = "watermark";

pub const CREATE_WATERMARK: &str = "CREATE TABLE IF NOT EXISTS ottr_sys.watermark (
    pipeline_key VARCHAR(100) NOT NULL COMMENT 'installation id / pipeline id',
    slot SMALLINT UNSIGNED NOT NULL COMMENT 'one per table being copied at once',
    mark BIGINT UNSIGNED NOT NULL COMMENT 'the chunk: unique within a run of the pipeline',
    kind ENUM('low','high') NOT NULL,
    written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline_key, slot)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
/// Writes a watermark: `pipeline_key, slot, mark, kind`.
pub const WRITE_WATERMARK: &str = "INSERT INTO ottr_sys.watermark (pipeline_key, slot, mark, kind) \
     VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE mark = VALUES(mark), kind = VALUES(kind)";

pub const CREATE_PROGRESS: &str = "CREATE TABLE IF NOT EXISTS ottr_sys.copy_progress (
    pipeline_key VARCHAR(100) NOT NULL,
    job_id BIGINT UNSIGNED NOT NULL,
    source_table VARCHAR(130) NOT NULL COMMENT 'schema.table on the source',
    key_columns TEXT NOT NULL COMMENT 'the key walked, as JSON: a resumed copy with another key starts over',
    last_key MEDIUMTEXT NULL COMMENT 'the last key copied, as JSON; NULL before the first chunk',
    rows_copied BIGINT UNSIGNED NOT NULL DEFAULT 0,
    chunks_done INT UNSIGNED NOT NULL DEFAULT 0,
    done BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline_key, job_id, source_table)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
/// `pipeline_key, job_id, source_table, key_columns, last_key, rows_copied, chunks_done, done`.
pub const WRITE_PROGRESS: &str = "INSERT INTO ottr_sys.copy_progress \
     (pipeline_key, job_id, source_table, key_columns, last_key, rows_copied, chunks_done, done) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE key_columns = VALUES(key_columns), \
     last_key = VALUES(last_key), rows_copied = VALUES(rows_copied), \
     chunks_done = VALUES(chunks_done), done = VALUES(done)";
/// `key_columns, last_key, rows_copied, chunks_done, done` of `pipeline_key, job_id, source_table`.
pub const READ_PROGRESS: &str = "SELECT key_columns, last_key, rows_copied, chunks_done, done \
     FROM ottr_sys.copy_progress WHERE pipeline_key = ? AND job_id = ? AND source_table = ?";

/// Whether a binlog row change writes a high watermark (of any pipeline): the batch is cut
/// after its transaction, since a copy chunk or a verification waits for it.
pub fn is_high_watermark(row: &crate::model::RowChange) -> bool {
    use crate::model::Value;
    if row.table.id.schema != SCHEMA || row.table.id.table != WATERMARK_TABLE {
        return false;
    }
    let Some(kind) = row.table.columns.iter().position(|c| c.name == "kind") else {
        return false;
    };
    match row.after.as_ref().and_then(|after| after.get(kind)) {
        Some(Value::Enum { index, .. }) => *index == 2,
        Some(Value::Text { bytes, .. }) => bytes == b"high",
        _ => false,
    }
}
