//! Reads the status views as text tables, for `ottr status`.

use super::{MetaDb, timed};
use crate::error::{Error, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};

const PIPELINE_STATUS: &str = "SELECT s.channel, s.pipeline, s.desired, s.observed, s.node, s.position, \
     s.lag_ms, l.p99_1m_ms AS lag_p99_1m_ms, t.rows_per_s_1m, s.since, s.reason \
     FROM v_pipeline_status s LEFT JOIN v_lag l ON l.pipeline = s.pipeline \
     LEFT JOIN v_throughput t ON t.pipeline = s.pipeline ORDER BY s.channel, s.pipeline";
const NODE_STATUS: &str = "SELECT node, host, state, last_heartbeat, \
     pipelines, IF(monitor, 'yes', '') AS monitor, coordination, version FROM v_node_status \
     ORDER BY node";
/// Copies under way (or failed and not cancelled), with a progress bar of 20 steps.
const COPIES: &str = "SELECT job, pipeline, CONCAT(schema_name, '.', table_name) AS table_name, state, \
     CONCAT('[', REPEAT('#', FLOOR(COALESCE(percent, 0) / 5)), \
       REPEAT('.', 20 - FLOOR(COALESCE(percent, 0) / 5)), '] ', COALESCE(CONCAT(percent, '%'), '?')) AS progress, \
     rows_copied, rows_estimated, rows_per_s, eta_s, last_error FROM v_copy \
     WHERE state IN ('queued', 'copying', 'paused') OR (state = 'failed' AND requested <> 'cancel') \
     ORDER BY job, schema_name, table_name";
/// The last verification of each pipeline: its state over its tables, rows compared, keys
/// differing (and how many of them are repaired) and unverified.
const VERIFICATIONS: &str = "SELECT p.name AS pipeline, j.id AS job, j.origin, \
     CASE WHEN SUM(t.state IN ('queued', 'verifying')) > 0 THEN 'verifying' \
       WHEN SUM(t.state = 'failed') > 0 THEN 'failed' WHEN SUM(t.state = 'cancelled') > 0 THEN 'cancelled' \
       ELSE 'done' END AS state, \
     CONCAT(SUM(t.state = 'done'), '/', COUNT(*)) AS tables_done, SUM(t.rows_compared) AS rows_compared, \
     SUM(t.rows_differing) AS rows_differing, \
     (SELECT COUNT(*) FROM verify_diff d WHERE d.job_id = j.id AND d.repair = 'repaired') AS repaired, \
     SUM(t.rows_unverified) AS rows_unverified, MAX(t.finished_at) AS finished_at \
     FROM verify_job j JOIN pipeline p ON p.id = j.pipeline_id JOIN verify_table t ON t.job_id = j.id \
     WHERE j.id IN (SELECT MAX(id) FROM verify_job GROUP BY pipeline_id) \
     GROUP BY p.name, j.id, j.origin ORDER BY p.name";
const OPEN_ALERTS: &str =
    "SELECT rule, kind, scope, raised_at, duration_s, measured, mails_sent FROM v_open_alerts";

/// A view's rows as text: the header, then one line of cells per row ("" for NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// `v_pipeline_status`, as text.
pub async fn pipeline_status(meta: &MetaDb) -> Result<TextTable> {
    read_table(meta, PIPELINE_STATUS).await
}

/// `v_open_alerts`, as text.
pub async fn open_alerts(meta: &MetaDb) -> Result<TextTable> {
    read_table(meta, OPEN_ALERTS).await
}

/// `v_copy`'s copies under way or failed, with a progress bar, as text.
pub async fn copy_status(meta: &MetaDb) -> Result<TextTable> {
    read_table(meta, COPIES).await
}

/// The last verification of each pipeline, as text.
pub async fn verify_status(meta: &MetaDb) -> Result<TextTable> {
    read_table(meta, VERIFICATIONS).await
}

/// `v_node_status`, as text.
pub async fn node_status(meta: &MetaDb) -> Result<TextTable> {
    read_table(meta, NODE_STATUS).await
}

async fn read_table(meta: &MetaDb, sql: &str) -> Result<TextTable> {
    let mut conn = meta.conn().await?;
    let context = "cannot read the status views";
    timed(context, async {
        let mut result = conn
            .query_iter(sql)
            .await
            .map_err(|error| Error::database(context, error))?;
        let header = result
            .columns_ref()
            .iter()
            .map(|column| column.name_str().into_owned())
            .collect();
        let rows: Vec<Row> = result
            .collect()
            .await
            .map_err(|error| Error::database(context, error))?;
        let rows = rows
            .into_iter()
            .map(|row| row.unwrap().into_iter().map(value_text).collect())
            .collect();
        Ok(TextTable { header, rows })
    })
    .await
}

/// A value as the mysql client prints it.
fn value_text(value: Value) -> String {
    match value {
        Value::NULL => String::new(),
        Value::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Value::Int(number) => number.to_string(),
        Value::UInt(number) => number.to_string(),
        Value::Float(number) => number.to_string(),
        Value::Double(number) => number.to_string(),
        Value::Date(year, month, day, hour, minute, second, micros) => {
            let mut text =
                format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}");
            if micros > 0 {
                text.push_str(&format!(".{micros:06}"));
            }
            text
        }
        Value::Time(negative, days, hours, minutes, seconds, micros) => {
            let sign = if negative { "-" } else { "" };
            let hours = u32::from(hours) + days * 24;
            format!("{sign}{hours:02}:{minutes:02}:{seconds:02}.{micros:06}")
        }
    }
}
