//! The monitor: checks alarm rules when their cron schedule says, raises and resolves alerts
//! (one open alert per rule and scope), restarts pipelines for auto-recovery, and sends the
//! mail queued in `alert_mail`.
//!
//! Exactly one node runs it at a time, through the `monitor_lease` row (expiry judged by the
//! metadata database's clock, like pipeline leases); the node renews it with its heartbeat,
//! and the task stops by itself when its local deadline passes without a renewal. It runs in
//! a task of its own and only talks to the metadata database and, for binlog rules, to
//! sources: it never blocks a pipeline.
//!
//! Mail is an outbox: a check queues a row; the sender sends what is due and records a
//! failure on the mail and its alert, retrying with backoff. A rule row the monitor cannot
//! use is reported in `alarm_rule_state.problem` (and once in the event log), never a crash.
//! The quiet period: at most one raise mail per rule and scope within it, and a reminder
//! every quiet period while an alert stays open (none when it is 0).

mod checks;
mod mail;

pub use checks::{Checked, Finding, check};
pub use mail::Mailer;

use crate::config::{
    self, AlarmRule, Condition, ConfigSnapshot, Settings, validate_pipeline, validate_rule,
};
use crate::error::{Result, chain};
use crate::meta::monitor::{self as store, EventFacts, MailEvent, NodeFacts, PipelineFacts};
use crate::meta::{self, EventLevel, MetaDb};
use crate::model::{EventKind, PipelineId};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

/// What rules are checked against, read once per tick in which a rule is due.
#[derive(Debug, Default)]
pub struct Facts {
    pub pipelines: Vec<PipelineFacts>,
    pub nodes: Vec<NodeFacts>,
    /// Per pipeline: its source's binlogs (oldest first, with sizes), or why they could not
    /// be listed. Read only when a binlog rule is due.
    pub binlogs: HashMap<PipelineId, std::result::Result<Vec<(String, u64)>, String>>,
    pub lease: Duration,
}

/// The running monitor task, owned by the node that holds the monitor lease.
pub struct MonitorHandle {
    pub token: u64,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    /// The lease's local deadline, moved on by each renewal.
    pub deadline: watch::Sender<Instant>,
}

impl MonitorHandle {
    /// Stops the task: a check or a send under way is abandoned (the outbox and the alert
    /// rows are left consistent: each change is one transaction). Waits at most a second.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    /// Stops the task at once (its lease is lost: it must not act any more).
    pub fn abort(self) {
        self.task.abort();
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Starts the monitor under lease `token`; it stops when told or when `deadline` passes.
pub fn spawn(
    meta: MetaDb,
    node: String,
    settings: Settings,
    token: u64,
    deadline: Instant,
) -> MonitorHandle {
    let (stop, stopped) = oneshot::channel();
    let (deadline, lapse) = watch::channel(deadline);
    let monitor = Monitor {
        fence: store::MonitorFence {
            node: node.clone(),
            token,
        },
        meta,
        node,
        settings,
        next_due: HashMap::new(),
        reported: HashMap::new(),
        event_marks: HashMap::new(),
    };
    let task = tokio::spawn(monitor.run(stopped, lapse));
    MonitorHandle {
        token,
        stop,
        task,
        deadline,
    }
}

struct Monitor {
    meta: MetaDb,
    /// The monitor lease this task runs under; every alert change checks it.
    fence: store::MonitorFence,
    node: String,
    settings: Settings,
    /// Per rule: its cron text and when it is next due.
    next_due: HashMap<u32, (String, DateTime<Utc>)>,
    /// Per rule: the problem last reported, so that it is logged once.
    reported: HashMap<u32, String>,
    /// Per error_text rule: the last event id it has seen.
    event_marks: HashMap<u32, u64>,
}

impl Monitor {
    /// Checks and sends at every tick until told to stop or until the lease's local deadline
    /// passes; either ends a check or a send under way at once.
    async fn run(mut self, mut stopped: oneshot::Receiver<()>, deadline: watch::Receiver<Instant>) {
        info!(node = %self.node, "monitor started");
        let mut tick = tokio::time::interval(self.settings.monitor_tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let lapsed = crate::pipeline::lapse(deadline);
        tokio::pin!(lapsed);
        loop {
            tokio::select! {
                biased;
                _ = &mut stopped => break,
                () = &mut lapsed => {
                    warn!(node = %self.node, "monitor lease deadline passed without renewal: stopping");
                    break;
                }
                _ = tick.tick() => {}
            }
            let work = async {
                if let Err(error) = self.tick().await {
                    warn!(error = %chain(&error), "monitor check failed");
                }
                if let Err(error) = self.send_mail().await {
                    warn!(error = %chain(&error), "cannot send alert mail");
                }
            };
            tokio::select! {
                biased;
                _ = &mut stopped => break,
                () = &mut lapsed => {
                    warn!(node = %self.node, "monitor lease deadline passed during a check: stopping");
                    break;
                }
                () = work => {}
            }
        }
        info!(node = %self.node, "monitor stopped");
    }

    /// Checks every due rule.
    async fn tick(&mut self) -> Result<()> {
        let (rows, windows) = store::read_alarm_rules(&self.meta).await?;
        let now = Utc::now();
        let known: BTreeSet<u32> = rows.iter().map(|row| row.id).collect();
        self.next_due.retain(|id, _| known.contains(id));
        let mut due = Vec::new();
        for row in &rows {
            let rule = match validate_rule(row, &windows) {
                Ok(rule) => rule,
                Err(problem) => {
                    self.report_problem(row.id, &row.name, &problem).await;
                    continue;
                }
            };
            if self.reported.remove(&row.id).is_some() {
                store::write_rule_state(&self.meta, row.id, false, None, None).await?;
            }
            if rule.paused {
                continue;
            }
            let next = match self.next_due.get(&row.id) {
                Some((cron, next)) if *cron == row.cron => *next,
                _ => {
                    let first = next_after(&rule, now - chrono::Duration::seconds(1));
                    self.next_due.insert(row.id, (row.cron.clone(), first));
                    store::write_rule_state(
                        &self.meta,
                        row.id,
                        false,
                        Some(first.timestamp()),
                        None,
                    )
                    .await?;
                    first
                }
            };
            if now < next {
                continue;
            }
            let following = next_after(&rule, now);
            self.next_due.insert(row.id, (row.cron.clone(), following));
            let checked = rule.in_window(now);
            store::write_rule_state(
                &self.meta,
                row.id,
                checked,
                Some(following.timestamp()),
                None,
            )
            .await?;
            if checked {
                due.push(rule);
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let facts = self.facts(&due).await?;
        let open = store::open_alerts(&self.meta).await?;
        for rule in &due {
            let events = self.events_for(rule).await?;
            let checked = check(rule, &facts, &events);
            self.act(rule, checked, &open).await?;
        }
        Ok(())
    }

    async fn report_problem(&mut self, rule: u32, name: &str, problem: &str) {
        if self.reported.get(&rule).map(String::as_str) == Some(problem) {
            return;
        }
        self.reported.insert(rule, problem.to_owned());
        warn!(rule = name, problem, "invalid alarm rule");
        let text = format!("alarm rule '{name}' (id {rule}) is not used: {problem}");
        let _ = store::write_rule_state(&self.meta, rule, false, None, Some(problem)).await;
        meta::log_event_or_warn(
            &self.meta,
            EventLevel::Error,
            Some(&self.node),
            None,
            EventKind::InvalidAlarmRule,
            &text,
        )
        .await;
    }

    async fn facts(&self, due: &[AlarmRule]) -> Result<Facts> {
        let mut facts = Facts {
            pipelines: store::pipeline_facts(&self.meta).await?,
            nodes: store::node_facts(&self.meta).await?,
            binlogs: HashMap::new(),
            lease: self.settings.lease,
        };
        let needs_binlogs = due.iter().any(|rule| {
            matches!(
                rule.condition,
                config::Condition::NoProgress(_) | config::Condition::BinlogRetention(_)
            )
        });
        if needs_binlogs {
            let snapshot = meta::read_snapshot(&self.meta).await?;
            facts.binlogs = source_binlogs(&snapshot).await;
        }
        Ok(facts)
    }

    /// The error events an error_text rule has not seen yet (the last minute's at
    /// its first check).
    async fn events_for(&mut self, rule: &AlarmRule) -> Result<Vec<EventFacts>> {
        if !matches!(rule.condition, config::Condition::ErrorText(_)) {
            return Ok(Vec::new());
        }
        let mark = match self.event_marks.get(&rule.id) {
            Some(mark) => *mark,
            None => store::last_event_before(&self.meta, Duration::from_secs(60)).await?,
        };
        let events = store::events_after(&self.meta, mark).await?;
        let newest = events.last().map_or(mark, |event| event.id);
        self.event_marks.insert(rule.id, newest);
        Ok(events)
    }

    /// Raises, updates and resolves the rule's alerts, queues their mail, and restarts
    /// pipelines for auto-recovery. Each alert change and its mail are one transaction.
    async fn act(
        &self,
        rule: &AlarmRule,
        checked: Checked,
        open: &[store::OpenAlert],
    ) -> Result<()> {
        let kind = rule.condition.kind();
        let mut still_open = BTreeSet::new();
        for finding in &checked.findings {
            still_open.insert(finding.scope.clone());
            let existing = open
                .iter()
                .find(|alert| alert.rule == rule.id && alert.scope == finding.scope);
            let (alert, repeats) = match existing {
                None => {
                    let recent = if rule.quiet_period.is_zero() {
                        0
                    } else {
                        store::recent_mails(&self.meta, rule.id, &finding.scope, rule.quiet_period)
                            .await?
                    };
                    let mut mail = self.mail(
                        rule,
                        MailEvent::Raised,
                        &finding.scope,
                        &finding.measured,
                        "now",
                        None,
                    );
                    mail.suppressed = recent > 0;
                    let raised = store::raise_alert(
                        &self.meta,
                        &self.fence,
                        rule.id,
                        &finding.scope,
                        finding.pipeline,
                        &finding.measured,
                        &mail,
                    )
                    .await?;
                    let Some(alert) = raised else { continue };
                    info!(rule = %rule.name, scope = %finding.scope, "alert raised");
                    (alert, 1)
                }
                Some(alert) => {
                    let quiet = rule.quiet_period.as_secs() as i64;
                    let reminder = (quiet > 0 && alert.since_mail_s >= quiet).then(|| {
                        self.mail(
                            rule,
                            MailEvent::Reminder,
                            &finding.scope,
                            &finding.measured,
                            &alert.raised_at,
                            Some(&alert.first_measured),
                        )
                    });
                    store::alert_seen(
                        &self.meta,
                        &self.fence,
                        alert.id,
                        &finding.measured,
                        reminder.as_ref(),
                    )
                    .await?;
                    (alert.id, alert.repeats + 1)
                }
            };
            if let (Some(after), Some(pipeline)) = (rule.auto_recovery_after, finding.pipeline)
                && repeats >= after
            {
                store::recover_pipeline(&self.meta, &self.fence, alert, pipeline).await?;
                let text = format!(
                    "alarm rule '{}' ({kind}) found the condition {repeats} times in a row: pipeline {} restarted ({})",
                    rule.name, finding.scope, finding.measured
                );
                warn!(rule = %rule.name, scope = %finding.scope, "auto-recovery: restarting the pipeline");
                meta::log_event(
                    &self.meta,
                    EventLevel::Warn,
                    Some(&self.node),
                    Some(pipeline),
                    EventKind::AutoRecovery,
                    &text,
                )
                .await?;
            }
        }
        for alert in open.iter().filter(|alert| alert.rule == rule.id) {
            if still_open.contains(&alert.scope) || checked.unknown.contains(&alert.scope) {
                continue;
            }
            let measured = format!(
                "the condition no longer holds (it was: {})",
                alert.first_measured
            );
            let mut mail = self.mail(
                rule,
                MailEvent::Resolved,
                &alert.scope,
                &measured,
                &alert.raised_at,
                Some(&alert.first_measured),
            );
            // Nobody was told of it (its raise fell in a quiet period): nobody is told it ended.
            mail.suppressed = alert.mails == 0;
            if store::resolve_alert(&self.meta, &self.fence, alert.id, &mail).await? {
                info!(rule = %rule.name, scope = %alert.scope, "alert resolved");
            }
        }
        Ok(())
    }

    /// The mail of an alert event: the subject names the event, the kind and the scope; the
    /// body what was measured, since when, and which view to look at.
    fn mail(
        &self,
        rule: &AlarmRule,
        event: MailEvent,
        scope: &str,
        measured: &str,
        since: &str,
        first: Option<&str>,
    ) -> store::MailDraft {
        let kind = rule.condition.kind();
        let word = match event {
            MailEvent::Raised => "RAISED",
            MailEvent::Reminder => "STILL",
            MailEvent::Resolved => "RESOLVED",
        };
        let subject = format!("[ottr] {word} {kind} {scope}");
        let schema = self.meta.schema();
        let name = crate::sql::string_literal(scope);
        let view = match rule.condition {
            Condition::Lag(_) => format!("SELECT * FROM {schema}.v_lag WHERE pipeline = {name};"),
            Condition::NodeDead(_) => {
                format!("SELECT * FROM {schema}.v_node_status WHERE node = {name};")
            }
            Condition::ErrorText(_) => format!("SELECT * FROM {schema}.v_event_log LIMIT 50;"),
            Condition::VerifyMismatch => {
                format!("SELECT * FROM {schema}.v_verify_diff WHERE pipeline = {name};")
            }
            Condition::CopyFailed => {
                format!("SELECT * FROM {schema}.v_copy WHERE pipeline = {name};")
            }
            _ => format!("SELECT * FROM {schema}.v_pipeline_status WHERE pipeline = {name};"),
        };
        let mut body = format!(
            "{word}: alarm rule '{}' ({kind}, threshold {}) for {scope}\n\nMeasured: {measured}\nSince: {since}\n",
            rule.name,
            rule.condition.threshold()
        );
        if let Some(first) = first {
            body.push_str(&format!("First measured: {first}\n"));
        }
        body.push_str(&format!(
            "Checked by node {} at {} UTC.\n\nLook at:\n  {view}\n  SELECT * FROM {schema}.v_open_alerts;\n",
            self.node,
            Utc::now().format("%Y-%m-%d %H:%M:%S")
        ));
        store::MailDraft {
            event,
            recipients: rule.recipients.join(", "),
            subject,
            body,
            suppressed: false,
        }
    }

    /// Sends the mail that is due; failures are recorded and retried with backoff.
    async fn send_mail(&self) -> Result<()> {
        let due = store::due_mails(&self.meta).await?;
        if due.is_empty() {
            return Ok(());
        }
        let mailer = match store::read_smtp(&self.meta).await? {
            None => Err("no SMTP settings: CALL set_smtp(host, port, security, user, password, from_address)".to_owned()),
            Some(row) => match config::validate_smtp(&row) {
                Ok(smtp) => Mailer::new(&smtp).await,
                Err(problem) => Err(problem),
            },
        };
        for mail in due {
            if !store::claim_mail(&self.meta, &mail).await? {
                continue;
            }
            let recipients = config::parse_recipients(&mail.recipients);
            let sent = match (&mailer, recipients) {
                (Err(problem), _) => Err(problem.clone()),
                (_, Err(problem)) => Err(problem),
                (Ok(mailer), Ok(recipients)) => {
                    mailer.send(&recipients, &mail.subject, &mail.body).await
                }
            };
            match sent {
                Ok(()) => {
                    info!(subject = %mail.subject, "alert mail sent");
                    store::mail_sent(&self.meta, &mail).await?;
                }
                Err(problem) => {
                    let retry_in = Duration::from_secs((5u64 << mail.attempts.min(7)).min(600));
                    warn!(subject = %mail.subject, error = %problem, "alert mail not sent");
                    store::mail_failed(&self.meta, &mail, &problem, retry_in).await?;
                    if mail.attempts == 0 {
                        let text = format!("mail '{}' not sent, retrying: {problem}", mail.subject);
                        meta::log_event_or_warn(
                            &self.meta,
                            EventLevel::Warn,
                            Some(&self.node),
                            None,
                            EventKind::MailFailed,
                            &text,
                        )
                        .await;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The first time after `after` that the rule's schedule fires (far away if never).
fn next_after(rule: &AlarmRule, after: DateTime<Utc>) -> DateTime<Utc> {
    rule.schedule
        .after(&after)
        .next()
        .unwrap_or(after + chrono::Duration::days(3650))
}

/// The binlogs of each pipeline's source (each source listed once).
async fn source_binlogs(
    snapshot: &ConfigSnapshot,
) -> HashMap<PipelineId, std::result::Result<Vec<(String, u64)>, String>> {
    let mut by_source: HashMap<String, std::result::Result<Vec<(String, u64)>, String>> =
        HashMap::new();
    let mut result = HashMap::new();
    for row in &snapshot.pipelines {
        let Ok(config) = validate_pipeline(snapshot, row) else {
            continue;
        };
        let key = format!("{}:{}", config.source.host, config.source.port);
        if !by_source.contains_key(&key) {
            let listed = crate::pipeline::select::list_binlogs(&config.source)
                .await
                .map_err(|error| chain(&error));
            by_source.insert(key.clone(), listed);
        }
        result.insert(row.id, by_source[&key].clone());
    }
    result
}
