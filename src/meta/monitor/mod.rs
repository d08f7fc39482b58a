//! What the monitor reads and writes: alarm rules and windows, SMTP settings, the monitor
//! lease, the facts rules are checked against, alerts, and the mail outbox.

mod alerts;

pub use alerts::*;

use super::{MetaDb, timed};
use crate::config::{AlarmRuleRow, AlarmWindowRow, SmtpRow};
use crate::error::{Error, Result};
use crate::model::{Desired, PipelineId, PipelineState};
use crate::row::take;
use mysql_async::Params;
use mysql_async::prelude::{FromRow, Queryable};
use std::time::Duration;

const READ_RULES: &str = "SELECT id, name, CAST(kind AS CHAR) AS kind, pipeline_id, threshold, \
     pattern, cron, recipients, quiet_period_s, auto_recovery_after, CAST(status AS CHAR) AS status, \
     (status = 'paused' AND (paused_until IS NULL OR paused_until > NOW(6))) AS paused_now \
     FROM alarm_rule WHERE status <> 'disabled' ORDER BY id";
const READ_WINDOWS: &str = "SELECT rule_id, CAST(days AS CHAR), TIME_TO_SEC(from_time), TIME_TO_SEC(to_time) \
     FROM alarm_window ORDER BY id";
/// The SMTP settings with the password from the secrets schema (`{secret}`).
const READ_SMTP: &str = "SELECT s.host, s.port, CAST(s.security AS CHAR) AS security, s.user, p.password, \
     s.from_address, s.tls_ca_file, s.tls_cert_file, s.tls_key_file \
     FROM smtp s LEFT JOIN {secret}.smtp_password p ON p.id = s.id WHERE s.id = 1";
const WRITE_RULE_STATE: &str = "INSERT INTO alarm_rule_state (rule_id, checked_at, next_check_at, problem) \
     VALUES (?, IF(?, NOW(6), NULL), FROM_UNIXTIME(?), ?) \
     ON DUPLICATE KEY UPDATE checked_at = IF(?, NOW(6), checked_at), \
     next_check_at = VALUES(next_check_at), problem = VALUES(problem)";
const CLAIM_MONITOR: &str = "UPDATE monitor_lease SET holder = ?, token = token + 1, acquired_at = NOW(6), \
     expires_at = NOW(6) + INTERVAL ? MICROSECOND \
     WHERE id = 1 AND (holder IS NULL OR expires_at IS NULL OR expires_at <= NOW(6))";
const MONITOR_TOKEN: &str = "SELECT token FROM monitor_lease WHERE id = 1 AND holder = ?";
const RENEW_MONITOR: &str = "UPDATE monitor_lease SET expires_at = NOW(6) + INTERVAL ? MICROSECOND \
     WHERE id = 1 AND holder = ? AND token = ? AND expires_at > NOW(6)";
const RELEASE_MONITOR: &str = "UPDATE monitor_lease SET holder = NULL, expires_at = NULL WHERE id = 1 AND holder = ? AND token = ?";
const PIPELINE_FACTS: &str = "SELECT p.id, p.name, c.desired, s.observed, s.reason, s.lag_ms, \
     CAST(TIMESTAMPDIFF(MICROSECOND, s.since, NOW(6)) / 1000 AS SIGNED), \
     pos.binlog_file, pos.binlog_offset, \
     CAST(TIMESTAMPDIFF(MICROSECOND, pos.updated_at, NOW(6)) / 1000 AS SIGNED), \
     (SELECT COUNT(*) FROM conflict_log cl WHERE cl.pipeline_id = p.id \
       AND cl.detected_at > NOW(6) - INTERVAL 1 MINUTE), \
     (SELECT GROUP_CONCAT(CONCAT('job ', t.job_id, ' ', t.source_schema, '.', t.source_table, ': ', \
       LEFT(COALESCE(t.last_error, ''), 200)) ORDER BY t.job_id SEPARATOR '; ') \
       FROM copy_table t JOIN copy_job j ON j.id = t.job_id \
       WHERE j.pipeline_id = p.id AND t.state = 'failed' AND j.requested <> 'cancel') \
     FROM pipeline p JOIN channel c ON c.id = p.channel_id \
     JOIN v_pipeline_status s ON s.pipeline = p.name \
     LEFT JOIN pipeline_position pos ON pos.pipeline_id = p.id ORDER BY p.id";
/// Per pipeline, its last finished verification's differences not repaired.
const VERIFY_FACTS: &str = "SELECT j.pipeline_id, CONCAT('job ', j.id, ': ', COUNT(*), ' key(s) differ, e.g. ', \
     MIN(CONCAT(d.source_schema, '.', d.source_table, ' (', LEFT(d.row_key, 60), ') ', d.kind))) \
     FROM verify_diff d JOIN verify_job j ON j.id = d.job_id \
     WHERE j.id IN (SELECT MAX(l.id) FROM verify_job l WHERE NOT EXISTS (SELECT 1 FROM verify_table u \
       WHERE u.job_id = l.id AND u.state IN ('queued', 'verifying')) GROUP BY l.pipeline_id) \
     AND d.kind <> 'unverified' AND COALESCE(d.repair, '') <> 'repaired' GROUP BY j.pipeline_id, j.id";
const NODE_FACTS: &str =
    "SELECT node, alive, heartbeat_age_ms, stopped_at IS NOT NULL FROM v_node_status ORDER BY node";
/// Error events after an id, except those the monitor writes itself.
const EVENTS_AFTER: &str = "SELECT e.id, p.name, e.node, e.message FROM event_log e \
     LEFT JOIN pipeline p ON p.id = e.pipeline_id \
     WHERE e.id > ? AND e.level = 'error' \
     AND e.kind NOT IN ('auto_recovery', 'invalid_alarm_rule', 'mail_failed') ORDER BY e.id LIMIT 10000";
const LAST_EVENT_BEFORE: &str =
    "SELECT COALESCE(MAX(id), 0) FROM event_log WHERE at < NOW(6) - INTERVAL ? SECOND";
async fn query<T: FromRow + Send + 'static>(
    meta: &MetaDb,
    context: &str,
    sql: &str,
    params: Params,
) -> Result<Vec<T>> {
    let mut conn = meta.conn().await?;
    timed(context, async {
        conn.exec(sql, params)
            .await
            .map_err(|error| Error::database(context, error))
    })
    .await
}

async fn execute(meta: &MetaDb, context: &str, sql: &'static str, params: Params) -> Result<u64> {
    let mut conn = meta.conn().await?;
    timed(context, async {
        conn.exec_drop(sql, params)
            .await
            .map_err(|error| Error::database(context, error))?;
        Ok(conn.affected_rows())
    })
    .await
}

/// Every rule that is not disabled, and every window.
pub async fn read_alarm_rules(meta: &MetaDb) -> Result<(Vec<AlarmRuleRow>, Vec<AlarmWindowRow>)> {
    let context = "cannot read the alarm rules";
    let rows: Vec<mysql_async::Row> = query(meta, context, READ_RULES, Params::Empty).await?;
    let rules = rows
        .into_iter()
        .map(|mut row| {
            let paused: i64 = take(&mut row, "paused_now", "alarm_rule")?;
            Ok(AlarmRuleRow {
                id: take(&mut row, "id", "alarm_rule")?,
                name: take(&mut row, "name", "alarm_rule")?,
                kind: take(&mut row, "kind", "alarm_rule")?,
                pipeline_id: take(&mut row, "pipeline_id", "alarm_rule")?,
                threshold: take(&mut row, "threshold", "alarm_rule")?,
                pattern: take(&mut row, "pattern", "alarm_rule")?,
                cron: take(&mut row, "cron", "alarm_rule")?,
                recipients: take(&mut row, "recipients", "alarm_rule")?,
                quiet_period_s: take(&mut row, "quiet_period_s", "alarm_rule")?,
                auto_recovery_after: take(&mut row, "auto_recovery_after", "alarm_rule")?,
                status: take(&mut row, "status", "alarm_rule")?,
                paused_now: paused != 0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let windows: Vec<(u32, String, u32, u32)> =
        query(meta, context, READ_WINDOWS, Params::Empty).await?;
    let windows = windows
        .into_iter()
        .map(|(rule_id, days, from_s, to_s)| AlarmWindowRow {
            rule_id,
            days,
            from_s,
            to_s,
        })
        .collect();
    Ok((rules, windows))
}

/// The SMTP settings, if set.
pub async fn read_smtp(meta: &MetaDb) -> Result<Option<SmtpRow>> {
    let sql = meta.with_secret_schema(READ_SMTP);
    let rows: Vec<mysql_async::Row> =
        query(meta, "cannot read the SMTP settings", &sql, Params::Empty).await?;
    let Some(mut row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let context = "smtp";
    Ok(Some(SmtpRow {
        host: take(&mut row, "host", context)?,
        port: take(&mut row, "port", context)?,
        security: take(&mut row, "security", context)?,
        user: take(&mut row, "user", context)?,
        password: crate::config::Secret::from_stored(
            take::<Option<String>>(&mut row, "password", context)?.as_deref(),
        ),
        from_address: take(&mut row, "from_address", context)?,
        tls_ca_file: take(&mut row, "tls_ca_file", context)?,
        tls_cert_file: take(&mut row, "tls_cert_file", context)?,
        tls_key_file: take(&mut row, "tls_key_file", context)?,
    }))
}

/// Records a rule's last check (when `checked`), its next one, and its problem (None = valid).
pub async fn write_rule_state(
    meta: &MetaDb,
    rule: u32,
    checked: bool,
    next_check_unix: Option<i64>,
    problem: Option<&str>,
) -> Result<()> {
    let params = (rule, checked, next_check_unix, problem, checked);
    execute(
        meta,
        "cannot record an alarm rule's state",
        WRITE_RULE_STATE,
        params.into(),
    )
    .await?;
    Ok(())
}

/// Takes the monitor lease if it is free or expired (judged by the metadata clock); returns
/// its new token.
pub async fn claim_monitor(meta: &MetaDb, node: &str, lease: Duration) -> Result<Option<u64>> {
    let context = "cannot claim the monitor lease";
    let claimed = execute(
        meta,
        context,
        CLAIM_MONITOR,
        (node, lease.as_micros() as u64).into(),
    )
    .await?;
    if claimed == 0 {
        return Ok(None);
    }
    let token: Vec<u64> = query(meta, context, MONITOR_TOKEN, (node,).into()).await?;
    Ok(token.into_iter().next())
}

/// Renews the monitor lease; false when it is no longer this holder's.
pub async fn renew_monitor(meta: &MetaDb, node: &str, token: u64, lease: Duration) -> Result<bool> {
    let params = (lease.as_micros() as u64, node, token);
    let renewed = execute(
        meta,
        "cannot renew the monitor lease",
        RENEW_MONITOR,
        params.into(),
    )
    .await?;
    Ok(renewed == 1)
}

/// Gives the monitor lease up, so that another node takes it at its next heartbeat.
pub async fn release_monitor(meta: &MetaDb, node: &str, token: u64) -> Result<()> {
    execute(
        meta,
        "cannot release the monitor lease",
        RELEASE_MONITOR,
        (node, token).into(),
    )
    .await?;
    Ok(())
}

/// A pipeline as alarm rules see it (durations by the metadata clock).
#[derive(Debug, Clone)]
pub struct PipelineFacts {
    pub id: PipelineId,
    pub name: String,
    pub desired_running: bool,
    pub observed: PipelineState,
    pub reason: Option<String>,
    pub lag_ms: Option<i64>,
    /// How long it has been in its observed state.
    pub state_ms: Option<i64>,
    pub binlog_file: Option<String>,
    pub binlog_offset: Option<u64>,
    /// How long since its position last changed.
    pub position_age_ms: Option<i64>,
    /// Conflicts it met in the last minute (two-way channels).
    pub conflicts_per_minute: u64,
    /// Its copies' tables that failed (jobs not cancelled): which, and why.
    pub failed_copies: Option<String>,
    /// Its last finished verification's differences not repaired: how many, and one.
    pub verify_mismatch: Option<String>,
}

/// A node as alarm rules see it.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub alive: bool,
    pub heartbeat_age_ms: i64,
    pub stopped_cleanly: bool,
}

pub async fn pipeline_facts(meta: &MetaDb) -> Result<Vec<PipelineFacts>> {
    let rows: Vec<mysql_async::Row> = query(
        meta,
        "cannot read the pipelines' status",
        PIPELINE_FACTS,
        Params::Empty,
    )
    .await?;
    let mismatches: Vec<(u32, String)> = query(
        meta,
        "cannot read the verifications' differences",
        VERIFY_FACTS,
        Params::Empty,
    )
    .await?;
    let mut mismatches: std::collections::HashMap<u32, String> = mismatches.into_iter().collect();
    rows.into_iter()
        .map(|row| {
            type Columns = (
                u32,
                String,
                String,
                String,
                Option<String>,
                Option<i64>,
                Option<i64>,
                Option<String>,
                Option<u64>,
                Option<i64>,
                u64,
                Option<String>,
            );
            let columns: Columns = mysql_async::from_row_opt(row).map_err(|error| {
                Error::Precheck(format!("cannot read the pipelines' status: {error}"))
            })?;
            let (
                id,
                name,
                desired,
                observed,
                reason,
                lag_ms,
                state_ms,
                file,
                offset,
                age,
                conflicts,
                failed_copies,
            ) = columns;
            Ok(PipelineFacts {
                id: PipelineId(id),
                name,
                desired_running: desired.parse() == Ok(Desired::Running),
                observed: observed.parse().map_err(|unknown| {
                    Error::Precheck(format!("cannot read the state of pipeline {id}: {unknown}"))
                })?,
                reason,
                lag_ms,
                state_ms,
                binlog_file: file,
                binlog_offset: offset,
                position_age_ms: age,
                conflicts_per_minute: conflicts,
                failed_copies,
                verify_mismatch: mismatches.remove(&id),
            })
        })
        .collect()
}

pub async fn node_facts(meta: &MetaDb) -> Result<Vec<NodeFacts>> {
    let rows: Vec<(String, i64, i64, i64)> = query(
        meta,
        "cannot read the nodes' status",
        NODE_FACTS,
        Params::Empty,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, alive, age, stopped)| NodeFacts {
            name,
            alive: alive != 0,
            heartbeat_age_ms: age,
            stopped_cleanly: stopped != 0,
        })
        .collect())
}

/// An error event.
#[derive(Debug, Clone)]
pub struct EventFacts {
    pub id: u64,
    pub pipeline: Option<String>,
    pub node: Option<String>,
    pub message: String,
}

/// Error events after `after` (an event id).
pub async fn events_after(meta: &MetaDb, after: u64) -> Result<Vec<EventFacts>> {
    let rows: Vec<(u64, Option<String>, Option<String>, String)> = query(
        meta,
        "cannot read the event log",
        EVENTS_AFTER,
        (after,).into(),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, pipeline, node, message)| EventFacts {
            id,
            pipeline,
            node,
            message,
        })
        .collect())
}

/// The id of the last event older than `age`.
pub async fn last_event_before(meta: &MetaDb, age: Duration) -> Result<u64> {
    let rows: Vec<u64> = query(
        meta,
        "cannot read the event log",
        LAST_EVENT_BEFORE,
        (age.as_secs(),).into(),
    )
    .await?;
    Ok(rows.into_iter().next().unwrap_or(0))
}
