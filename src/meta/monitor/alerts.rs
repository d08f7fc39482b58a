//! Alerts and the mail outbox: raising, seeing again, resolving and recovering alerts, each
//! with the mail it queues, in transactions fenced by the monitor lease's token; and the
//! outbox's due mails, claimed, sent or failed with backoff.

use super::{execute, query};
use crate::error::{Error, Result};
use crate::meta::{MetaDb, timed};
use crate::model::PipelineId;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Transaction, TxOpts};
use std::time::Duration;

const OPEN_ALERTS: &str = "SELECT a.id, a.rule_id, a.scope, a.repeats, \
     CAST(TIMESTAMPDIFF(SECOND, COALESCE((SELECT MAX(m.created_at) FROM alert_mail m \
       WHERE m.alert_id = a.id AND m.state IN ('pending', 'sent')), a.raised_at), NOW(6)) AS SIGNED), \
     (SELECT COUNT(*) FROM alert_mail m WHERE m.alert_id = a.id AND m.state IN ('pending', 'sent')), \
     DATE_FORMAT(a.raised_at, '%Y-%m-%d %H:%i:%s UTC'), a.first_measured \
     FROM alert a WHERE a.state = 'open' ORDER BY a.id";

const RAISE: &str = "INSERT INTO alert (rule_id, scope, pipeline_id, open_scope, first_measured, measured) \
     VALUES (?, ?, ?, ?, ?, ?)";

const SEEN: &str = "UPDATE alert SET last_seen_at = NOW(6), measured = ?, repeats = repeats + 1 \
     WHERE id = ? AND state = 'open'";

const RECOVERED: &str = "UPDATE alert SET repeats = 0, recoveries = recoveries + 1 WHERE id = ?";

const RESOLVE: &str = "UPDATE alert SET state = 'resolved', open_scope = NULL, resolved_at = NOW(6) \
     WHERE id = ? AND state = 'open'";

const RECENT_MAILS: &str = "SELECT COUNT(*) FROM alert_mail m JOIN alert a ON a.id = m.alert_id \
     WHERE a.rule_id = ? AND a.scope = ? AND m.state IN ('pending', 'sent') \
     AND m.created_at > NOW(6) - INTERVAL ? SECOND";

const QUEUE_MAIL: &str = "INSERT INTO alert_mail (alert_id, event, recipients, subject, body, state) \
     VALUES (?, ?, ?, ?, ?, ?)";

const CHECK_MONITOR: &str = "SELECT token FROM monitor_lease \
     WHERE id = 1 AND holder = ? AND token = ? AND expires_at > NOW(6) LOCK IN SHARE MODE";

/// Takes a due mail for five minutes: a sender that dies meanwhile leaves it to be retried.
const CLAIM_MAIL: &str = "UPDATE alert_mail SET next_attempt_at = NOW(6) + INTERVAL 300 SECOND \
     WHERE id = ? AND state = 'pending' AND next_attempt_at <= NOW(6)";

const RESTART_PIPELINE: &str = "UPDATE pipeline SET restart_seq = restart_seq + 1 WHERE id = ?";

const DUE_MAILS: &str = "SELECT id, alert_id, recipients, subject, body, attempts FROM alert_mail \
     WHERE state = 'pending' AND next_attempt_at <= NOW(6) ORDER BY id LIMIT 20";

const MAIL_SENT: &str = "UPDATE alert_mail SET state = 'sent', sent_at = NOW(6), attempts = attempts + 1, \
     last_error = NULL WHERE id = ?";

const MAIL_FAILED: &str = "UPDATE alert_mail SET state = IF(attempts + 1 >= ?, 'failed', 'pending'), \
     attempts = attempts + 1, last_error = ?, next_attempt_at = NOW(6) + INTERVAL ? SECOND WHERE id = ?";

const ALERT_MAIL_ERROR: &str = "UPDATE alert SET mail_error = ? WHERE id = ?";

/// A mail is given up after this many failed sends (about a day with the backoff).
pub const MAIL_ATTEMPTS: u32 = 30;

/// An open alert.
#[derive(Debug, Clone)]
pub struct OpenAlert {
    pub id: u64,
    pub rule: u32,
    pub scope: String,
    pub repeats: u32,
    /// Seconds since its last mail (or since it was raised).
    pub since_mail_s: i64,
    /// Mails sent or waiting for it.
    pub mails: u64,
    pub raised_at: String,
    pub first_measured: String,
}

pub async fn open_alerts(meta: &MetaDb) -> Result<Vec<OpenAlert>> {
    type Columns = (u64, u32, String, u32, i64, u64, String, String);
    let rows: Vec<Columns> = query(
        meta,
        "cannot read the open alerts",
        OPEN_ALERTS,
        Params::Empty,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, rule, scope, repeats, since_mail_s, mails, raised_at, first_measured)| {
                OpenAlert {
                    id,
                    rule,
                    scope,
                    repeats,
                    since_mail_s,
                    mails,
                    raised_at,
                    first_measured,
                }
            },
        )
        .collect())
}

/// Who may change alerts: the holder of the monitor lease under this token. Every alert
/// change checks it in its own transaction, so a monitor that lost its lease changes nothing.
#[derive(Debug, Clone)]
pub struct MonitorFence {
    pub node: String,
    pub token: u64,
}

/// A mail to queue with an alert change.
#[derive(Debug, Clone)]
pub struct MailDraft {
    pub event: MailEvent,
    pub recipients: String,
    pub subject: String,
    pub body: String,
    /// Recorded, never sent (the quiet period).
    pub suppressed: bool,
}

/// Starts a transaction that holds a shared lock on the monitor lease row, after checking
/// that the lease is still held under the fence's token.
pub(super) async fn fenced_transaction<'c>(
    conn: &'c mut Conn,
    fence: &MonitorFence,
    context: &str,
) -> Result<Transaction<'c>> {
    let fail = |error| Error::database(context, error);
    let mut transaction = conn
        .start_transaction(TxOpts::default())
        .await
        .map_err(fail)?;
    let held: Option<u64> = transaction
        .exec_first(CHECK_MONITOR, (&fence.node, fence.token))
        .await
        .map_err(fail)?;
    match held {
        Some(_) => Ok(transaction),
        None => Err(Error::Precheck(format!(
            "{context}: the monitor lease of {} (token {}) is no longer held",
            fence.node, fence.token
        ))),
    }
}

pub(super) async fn insert_mail(
    transaction: &mut Transaction<'_>,
    alert: u64,
    mail: &MailDraft,
    context: &str,
) -> Result<()> {
    let state = if mail.suppressed {
        "suppressed"
    } else {
        "pending"
    };
    let params = (
        alert,
        mail.event.as_str(),
        crate::meta::leases::truncate(&mail.recipients, 1024),
        crate::meta::leases::truncate(&mail.subject, 255),
        &mail.body,
        state,
    );
    transaction
        .exec_drop(QUEUE_MAIL, params)
        .await
        .map_err(|error| Error::database(context, error))
}

/// Opens an alert and queues its mail, in one transaction; returns the alert's id, or None
/// when one is open for this rule and scope already.
pub async fn raise_alert(
    meta: &MetaDb,
    fence: &MonitorFence,
    rule: u32,
    scope: &str,
    pipeline: Option<PipelineId>,
    measured: &str,
    mail: &MailDraft,
) -> Result<Option<u64>> {
    let mut conn = meta.conn().await?;
    let context = "cannot raise an alert";
    let measured = crate::meta::leases::truncate(measured, 1024);
    timed(context, async {
        let mut transaction = fenced_transaction(&mut conn, fence, context).await?;
        let params = (
            rule,
            scope,
            pipeline.map(|p| p.0),
            scope,
            &measured,
            &measured,
        );
        let alert = match transaction.exec_drop(RAISE, params).await {
            Ok(()) => transaction.last_insert_id().unwrap_or(0),
            Err(mysql_async::Error::Server(error)) if error.code == 1062 => return Ok(None),
            Err(error) => return Err(Error::database(context, error)),
        };
        insert_mail(&mut transaction, alert, mail, context).await?;
        transaction
            .commit()
            .await
            .map_err(|error| Error::database(context, error))?;
        Ok(Some(alert))
    })
    .await
}

/// Records another check that found an open alert's condition, with a reminder mail.
pub async fn alert_seen(
    meta: &MetaDb,
    fence: &MonitorFence,
    alert: u64,
    measured: &str,
    reminder: Option<&MailDraft>,
) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = "cannot update an alert";
    let measured = crate::meta::leases::truncate(measured, 1024);
    timed(context, async {
        let mut transaction = fenced_transaction(&mut conn, fence, context).await?;
        transaction
            .exec_drop(SEEN, (&measured, alert))
            .await
            .map_err(|error| Error::database(context, error))?;
        if let Some(mail) = reminder {
            insert_mail(&mut transaction, alert, mail, context).await?;
        }
        transaction
            .commit()
            .await
            .map_err(|error| Error::database(context, error))
    })
    .await
}

/// Resolves an open alert and queues its mail, in one transaction; false (and no mail) when
/// it was no longer open (resolved by a disable, or by another monitor).
pub async fn resolve_alert(
    meta: &MetaDb,
    fence: &MonitorFence,
    alert: u64,
    mail: &MailDraft,
) -> Result<bool> {
    let mut conn = meta.conn().await?;
    let context = "cannot resolve an alert";
    timed(context, async {
        let mut transaction = fenced_transaction(&mut conn, fence, context).await?;
        transaction
            .exec_drop(RESOLVE, (alert,))
            .await
            .map_err(|error| Error::database(context, error))?;
        if transaction.affected_rows() == 0 {
            return Ok(false);
        }
        insert_mail(&mut transaction, alert, mail, context).await?;
        transaction
            .commit()
            .await
            .map_err(|error| Error::database(context, error))?;
        Ok(true)
    })
    .await
}

/// Restarts a pipeline for an alert (auto-recovery) and counts it on the alert, in one
/// transaction.
pub async fn recover_pipeline(
    meta: &MetaDb,
    fence: &MonitorFence,
    alert: u64,
    pipeline: PipelineId,
) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = "cannot restart a pipeline";
    timed(context, async {
        let fail = |error| Error::database(context, error);
        let mut transaction = fenced_transaction(&mut conn, fence, context).await?;
        transaction
            .exec_drop(RESTART_PIPELINE, (pipeline.0,))
            .await
            .map_err(fail)?;
        transaction
            .exec_drop(RECOVERED, (alert,))
            .await
            .map_err(fail)?;
        transaction.commit().await.map_err(fail)
    })
    .await
}

/// Mails sent or waiting for this rule and scope within `window`.
pub async fn recent_mails(meta: &MetaDb, rule: u32, scope: &str, window: Duration) -> Result<u64> {
    let rows: Vec<u64> = query(
        meta,
        "cannot read the mail outbox",
        RECENT_MAILS,
        (rule, scope, window.as_secs()).into(),
    )
    .await?;
    Ok(rows.into_iter().next().unwrap_or(0))
}

/// What an alert's mail is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailEvent {
    Raised,
    Reminder,
    Resolved,
}

impl MailEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            MailEvent::Raised => "raised",
            MailEvent::Reminder => "reminder",
            MailEvent::Resolved => "resolved",
        }
    }
}

/// A mail due to be sent.
#[derive(Debug, Clone)]
pub struct DueMail {
    pub id: u64,
    pub alert: u64,
    pub recipients: String,
    pub subject: String,
    pub body: String,
    /// Failed sends so far.
    pub attempts: u32,
}

pub async fn due_mails(meta: &MetaDb) -> Result<Vec<DueMail>> {
    let rows: Vec<(u64, u64, String, String, String, u32)> = query(
        meta,
        "cannot read the mail outbox",
        DUE_MAILS,
        Params::Empty,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, alert, recipients, subject, body, attempts)| DueMail {
            id,
            alert,
            recipients,
            subject,
            body,
            attempts,
        })
        .collect())
}

/// Takes a due mail so that no other sender sends it; false when another one has it.
pub async fn claim_mail(meta: &MetaDb, mail: &DueMail) -> Result<bool> {
    let claimed = execute(meta, "cannot claim a mail", CLAIM_MAIL, (mail.id,).into()).await?;
    Ok(claimed == 1)
}

pub async fn mail_sent(meta: &MetaDb, mail: &DueMail) -> Result<()> {
    let context = "cannot record a sent mail";
    execute(meta, context, MAIL_SENT, (mail.id,).into()).await?;
    execute(
        meta,
        context,
        ALERT_MAIL_ERROR,
        (None::<String>, mail.alert).into(),
    )
    .await?;
    Ok(())
}

/// Records a failed send on the mail and its alert; it is tried again after `retry_in`.
pub async fn mail_failed(
    meta: &MetaDb,
    mail: &DueMail,
    error: &str,
    retry_in: Duration,
) -> Result<()> {
    let context = "cannot record a failed mail";
    let error = crate::meta::leases::truncate(error, 1024);
    let params = (MAIL_ATTEMPTS, &error, retry_in.as_secs(), mail.id);
    execute(meta, context, MAIL_FAILED, params.into()).await?;
    execute(meta, context, ALERT_MAIL_ERROR, (&error, mail.alert).into()).await?;
    Ok(())
}
