//! Alarm rules, their time windows and the SMTP settings, as stored and as validated.
//!
//! Pure: the monitor reads rows, validates each with [`validate_rule`], and reports an invalid
//! row (a cron expression its parser refuses, a pattern that does not compile, no recipients)
//! in `alarm_rule_state.problem` instead of failing. Cron expressions are UTC: 6 fields
//! (`sec min hour dom month dow`, the cron crate's form, day-of-week 1-7 with 1 = Sunday), an
//! optional 7th (year), or the familiar 5 unix fields, whose day-of-week (0-7, 0 and 7 =
//! Sunday) is translated to the crate's numbering.

use super::Secret;
use crate::model::PipelineId;
use chrono::{DateTime, Datelike, Duration as Days, Timelike, Utc};
use regex::Regex;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

/// An `alarm_rule` row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmRuleRow {
    pub id: u32,
    pub name: String,
    pub kind: String,
    pub pipeline_id: Option<u32>,
    pub threshold: Option<u64>,
    pub pattern: Option<String>,
    pub cron: String,
    pub recipients: String,
    pub quiet_period_s: u32,
    pub auto_recovery_after: Option<u32>,
    /// `enabled`, `paused` or `disabled`, as stored.
    pub status: String,
    /// Paused now (status paused and its pause not over, by the metadata clock).
    pub paused_now: bool,
}

/// An `alarm_window` row: days as the SET stores them (`mon,tue`), times in seconds of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmWindowRow {
    pub rule_id: u32,
    pub days: String,
    pub from_s: u32,
    pub to_s: u32,
}

/// What a rule watches.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Lag above this.
    Lag(Duration),
    /// The position has not moved for this long while the source's binlog moved.
    NoProgress(Duration),
    /// Observed `error` or `retrying` for this long.
    PipelineError(Duration),
    /// A node past its lease for this long (and not stopped cleanly).
    NodeDead(Duration),
    /// An error event whose message matches.
    ErrorText(Regex),
    /// The position is within this many binlog files of the oldest the source keeps.
    BinlogRetention(u64),
    /// More conflicts than this in the last minute (two-way channels).
    Conflicts(u64),
    /// A table of an online copy failed (until its job is cancelled).
    CopyFailed,
    /// The last verification of a pipeline found differences not repaired since.
    VerifyMismatch,
}

impl Condition {
    /// The kind's name, as in `alarm_rule.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Lag(_) => "lag",
            Condition::NoProgress(_) => "no_progress",
            Condition::PipelineError(_) => "pipeline_error",
            Condition::NodeDead(_) => "node_dead",
            Condition::ErrorText(_) => "error_text",
            Condition::BinlogRetention(_) => "binlog_retention",
            Condition::Conflicts(_) => "conflicts",
            Condition::CopyFailed => "copy_failed",
            Condition::VerifyMismatch => "verify_mismatch",
        }
    }

    /// The threshold in words, for mail.
    pub fn threshold(&self) -> String {
        match self {
            Condition::Lag(limit)
            | Condition::NoProgress(limit)
            | Condition::PipelineError(limit)
            | Condition::NodeDead(limit) => format!("{} s", limit.as_secs()),
            Condition::ErrorText(pattern) => format!("/{}/", pattern.as_str()),
            Condition::BinlogRetention(files) => format!("{files} binlog file(s)"),
            Condition::Conflicts(per_minute) => format!("{per_minute} conflicts per minute"),
            Condition::CopyFailed => "a failed copy".to_owned(),
            Condition::VerifyMismatch => "a difference found".to_owned(),
        }
    }
}

/// A time window in UTC: on these days (Monday = 0), from `from` to `to` seconds of the day;
/// a window whose end is before its start runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: BTreeSet<u32>,
    from: u32,
    to: u32,
}

impl Window {
    /// Whether `at` is inside the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let day = at.weekday().num_days_from_monday();
        let second = at.num_seconds_from_midnight();
        if self.from <= self.to {
            self.days.contains(&day) && (self.from..=self.to).contains(&second)
        } else {
            let yesterday = (at - Days::days(1)).weekday().num_days_from_monday();
            (self.days.contains(&day) && second >= self.from)
                || (self.days.contains(&yesterday) && second <= self.to)
        }
    }
}

/// A rule the monitor can use.
#[derive(Debug, Clone)]
pub struct AlarmRule {
    pub id: u32,
    pub name: String,
    pub condition: Condition,
    /// One pipeline, or None for all (every node for `node_dead`).
    pub pipeline: Option<PipelineId>,
    pub schedule: cron::Schedule,
    pub recipients: Vec<String>,
    pub quiet_period: Duration,
    pub auto_recovery_after: Option<u32>,
    /// Checked only inside one of these; none = always.
    pub windows: Vec<Window>,
    pub paused: bool,
}

impl AlarmRule {
    /// Whether the rule may be checked at `at` (inside a window, if it has any).
    pub fn in_window(&self, at: DateTime<Utc>) -> bool {
        self.windows.is_empty() || self.windows.iter().any(|window| window.contains(at))
    }
}

/// Validates a rule row with its windows; the error says what is wrong in an operator's words.
pub fn validate_rule(row: &AlarmRuleRow, windows: &[AlarmWindowRow]) -> Result<AlarmRule, String> {
    let seconds = || {
        row.threshold
            .map(Duration::from_secs)
            .ok_or_else(|| format!("a {} rule needs a threshold in seconds", row.kind))
    };
    let condition = match row.kind.as_str() {
        "lag" => Condition::Lag(seconds()?),
        "no_progress" => Condition::NoProgress(seconds()?),
        "pipeline_error" => Condition::PipelineError(seconds()?),
        "node_dead" => Condition::NodeDead(seconds()?),
        "error_text" => {
            let pattern = row
                .pattern
                .as_deref()
                .filter(|pattern| !pattern.is_empty())
                .ok_or("an error_text rule needs a pattern")?;
            Condition::ErrorText(
                Regex::new(pattern)
                    .map_err(|error| format!("pattern '{pattern}' does not compile: {error}"))?,
            )
        }
        "binlog_retention" => Condition::BinlogRetention(
            row.threshold
                .filter(|files| *files > 0)
                .ok_or("a binlog_retention rule needs a threshold of 1 or more binlog files")?,
        ),
        "conflicts" => Condition::Conflicts(
            row.threshold
                .ok_or("a conflicts rule needs a threshold: conflicts per minute")?,
        ),
        "copy_failed" => Condition::CopyFailed,
        "verify_mismatch" => Condition::VerifyMismatch,
        other => {
            return Err(format!(
                "unknown kind '{other}': use lag, no_progress, pipeline_error, node_dead, error_text, binlog_retention, conflicts, copy_failed or verify_mismatch"
            ));
        }
    };
    if matches!(condition, Condition::NodeDead(_)) && row.pipeline_id.is_some() {
        return Err("a node_dead rule watches every node: its pipeline must be NULL".into());
    }
    let schedule = parse_cron(&row.cron)?;
    let recipients = parse_recipients(&row.recipients)?;
    let windows = windows
        .iter()
        .filter(|window| window.rule_id == row.id)
        .map(validate_window)
        .collect::<Result<Vec<_>, _>>()?;
    if !["enabled", "paused", "disabled"].contains(&row.status.as_str()) {
        return Err(format!(
            "status '{}' is not enabled, paused or disabled",
            row.status
        ));
    }
    Ok(AlarmRule {
        id: row.id,
        name: row.name.clone(),
        condition,
        pipeline: row.pipeline_id.map(PipelineId),
        schedule,
        recipients,
        quiet_period: Duration::from_secs(u64::from(row.quiet_period_s)),
        auto_recovery_after: row.auto_recovery_after.filter(|after| *after > 0),
        windows,
        paused: row.paused_now,
    })
}

fn validate_window(row: &AlarmWindowRow) -> Result<Window, String> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let days = row
        .days
        .split(',')
        .map(|day| {
            NAMES
                .iter()
                .position(|name| name.eq_ignore_ascii_case(day.trim()))
                .map(|index| index as u32)
                .ok_or_else(|| format!("window day '{day}' is not one of mon..sun"))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    if days.is_empty() || row.from_s >= 86_400 || row.to_s >= 86_400 {
        return Err(format!(
            "window '{}' {}-{} is not a set of days with times of day",
            row.days, row.from_s, row.to_s
        ));
    }
    Ok(Window {
        days,
        from: row.from_s,
        to: row.to_s,
    })
}

/// Comma-separated addresses, each `local@domain`.
pub fn parse_recipients(text: &str) -> Result<Vec<String>, String> {
    let recipients: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
        .collect();
    if recipients.is_empty() {
        return Err("no recipients: give one or more email addresses, comma-separated".into());
    }
    for address in &recipients {
        if address.parse::<lettre::Address>().is_err() {
            return Err(format!("recipient '{address}' is not an email address"));
        }
    }
    Ok(recipients)
}

/// Parses a cron expression in UTC: 6 or 7 fields as the cron crate takes them, or 5 unix
/// fields (a seconds field of 0 is put in front and the day-of-week translated).
pub fn parse_cron(text: &str) -> Result<cron::Schedule, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let expression = match fields.len() {
        5 => {
            let restricted = |field: &str| field != "*" && field != "?";
            if restricted(fields[2]) && restricted(fields[4]) {
                return Err(format!(
                    "cron '{text}' restricts both day of month and day of week, which unix cron matches as either one: keep one of them '*'"
                ));
            }
            let day_of_week = unix_day_of_week(fields[4])
                .map_err(|problem| format!("cron '{text}': day of week: {problem}"))?;
            format!(
                "0 {} {} {} {} {day_of_week}",
                fields[0], fields[1], fields[2], fields[3]
            )
        }
        6 | 7 => fields.join(" "),
        count => {
            return Err(format!(
                "cron '{text}' has {count} fields: use 6 (sec min hour dom month dow) or 5 (unix)"
            ));
        }
    };
    cron::Schedule::from_str(&expression).map_err(|error| format!("cron '{text}': {error}"))
}

/// A unix day-of-week field (0-7, 0 and 7 = Sunday, names, ranges, steps, lists) in the cron
/// crate's numbering (1-7, 1 = Sunday), as an explicit list; `*` and `?` stay as they are.
fn unix_day_of_week(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    const NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let value = |text: &str| -> Result<u32, String> {
        if let Some(index) = NAMES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
        {
            return Ok(index as u32);
        }
        text.parse::<u32>()
            .ok()
            .filter(|day| *day <= 7)
            .ok_or_else(|| format!("'{text}' is not a day (0-7 or sun..sat)"))
    };
    let mut days = BTreeSet::new();
    for element in field.split(',') {
        let (range, step) = match element.split_once('/') {
            Some((range, step)) => (
                range,
                Some(
                    step.parse::<u32>()
                        .ok()
                        .filter(|step| *step > 0)
                        .ok_or_else(|| format!("'{step}' is not a step"))?,
                ),
            ),
            None => (element, None),
        };
        let (first, last) = match range.split_once('-') {
            _ if range == "*" => (0, 6),
            // `mon-sun`: Sunday as 7 at the end of a range
            Some((first, last)) => match (value(first)?, value(last)?) {
                (first, 0) if first > 0 => (first, 7),
                range => range,
            },
            // `a/n`: from a to the end of the week (7, Sunday again)
            None if step.is_some() => (value(range)?, 7),
            None => (value(range)?, value(range)?),
        };
        let step = step.unwrap_or(1);
        if first > last {
            return Err(format!("range '{range}' runs backwards"));
        }
        days.extend((first..=last).step_by(step as usize).map(|day| day % 7));
    }
    let crate_days: BTreeSet<u32> = days.into_iter().map(|day| day + 1).collect();
    Ok(crate_days
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

/// How the monitor reaches its mail server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    None,
    StartTls,
    Tls,
}

/// The `smtp` row as stored (the password from the secrets schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpRow {
    pub host: String,
    pub port: u16,
    pub security: String,
    pub user: Option<String>,
    pub password: Secret,
    pub from_address: String,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
}

/// Validated SMTP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub user: Option<String>,
    pub password: Secret,
    pub from: lettre::message::Mailbox,
    /// The CA the server's certificate must chain to (None: the public roots).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// A client certificate presented to the server.
    pub client: Option<super::ClientCertificate>,
}

/// Validates the `smtp` row.
pub fn validate_smtp(row: &SmtpRow) -> Result<Smtp, String> {
    let security = match row.security.as_str() {
        "none" => SmtpSecurity::None,
        "starttls" => SmtpSecurity::StartTls,
        "tls" => SmtpSecurity::Tls,
        other => {
            return Err(format!(
                "SMTP security '{other}' is not none, starttls or tls"
            ));
        }
    };
    let from = row.from_address.parse().map_err(|_| {
        format!(
            "From address '{}' is not an email address",
            row.from_address
        )
    })?;
    if security == SmtpSecurity::None && row.user.is_some() {
        return Err(
            "an SMTP login over an unencrypted connection would send the password in clear: use starttls or tls"
                .into(),
        );
    }
    // Certificates are checked whenever TLS is used: "required" stands for starttls/tls here.
    let tls = super::Tls::validate(
        "verify_identity",
        row.tls_ca_file.as_deref(),
        row.tls_cert_file.as_deref(),
        row.tls_key_file.as_deref(),
    )?;
    Ok(Smtp {
        host: row.host.clone(),
        port: row.port,
        security,
        user: row.user.clone(),
        password: row.password.clone(),
        from,
        tls_ca_file: tls.ca_file,
        client: tls.client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn next_after(cron: &str, after: DateTime<Utc>) -> DateTime<Utc> {
        parse_cron(cron).unwrap().after(&after).next().unwrap()
    }

    #[test]
    fn unix_days_of_week_are_translated() {
        assert_eq!(unix_day_of_week("0").unwrap(), "1");
        assert_eq!(unix_day_of_week("7").unwrap(), "1");
        assert_eq!(unix_day_of_week("1-5").unwrap(), "2,3,4,5,6");
        assert_eq!(unix_day_of_week("5-7").unwrap(), "1,6,7");
        assert_eq!(unix_day_of_week("sat,sun").unwrap(), "1,7");
        assert_eq!(unix_day_of_week("*/2").unwrap(), "1,3,5,7");
        assert_eq!(unix_day_of_week("3/1").unwrap(), "1,4,5,6,7");
        assert_eq!(unix_day_of_week("1/2").unwrap(), "1,2,4,6");
        assert_eq!(unix_day_of_week("mon-sun").unwrap(), "1,2,3,4,5,6,7");
        assert_eq!(unix_day_of_week("fri-0").unwrap(), "1,6,7");
        assert_eq!(unix_day_of_week("*").unwrap(), "*");
        assert!(unix_day_of_week("8").is_err());
        assert!(unix_day_of_week("5-1").is_err());
    }

    #[test]
    fn a_five_field_cron_with_a_day_of_week_fires_on_that_day() {
        // 2026-11-29 is a Sunday.
        let sunday = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        // unix 1 = Monday, at 09:30
        let next = next_after("30 9 * * 1", sunday);
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 30, 9, 30, 0).unwrap());
        // unix 0 and 7 are Sunday: the next is a week later
        for sunday_field in ["0", "7", "sun"] {
            let next = next_after(&format!("0 10 * * {sunday_field}"), sunday);
            assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap());
        }
        // weekdays only: Friday evening -> Monday
        let friday = Utc.with_ymd_and_hms(2026, 12, 4, 23, 0, 0).unwrap();
        let next = next_after("0 8 * * 1-5", friday);
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap());
        // the crate's own 6-field form: 2 = Monday
        let next = next_after("0 30 9 * * 2", sunday);
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 30, 9, 30, 0).unwrap());
    }

    #[test]
    fn bad_cron_expressions_say_what_is_wrong() {
        assert!(parse_cron("* * *").unwrap_err().contains("has 3 fields"));
        assert!(
            parse_cron("61 * * * * *")
                .unwrap_err()
                .contains("cron '61 * * * * *'")
        );
        assert!(parse_cron("* * * * 9").unwrap_err().contains("day of week"));
        assert!(parse_cron("0 0 1 * 1").unwrap_err().contains("either one"));
        assert!(parse_cron("0 0 1 * *").is_ok());
        assert!(parse_cron("*/10 * * * * *").is_ok());
        assert!(parse_cron("0 0 * * * Mon-Fri").is_ok());
    }

    fn rule(kind: &str, threshold: Option<u64>, pattern: Option<&str>) -> AlarmRuleRow {
        AlarmRuleRow {
            id: 1,
            name: "r".into(),
            kind: kind.into(),
            pipeline_id: None,
            threshold,
            pattern: pattern.map(str::to_owned),
            cron: "* * * * * *".into(),
            recipients: "ops@example.com, dba@example.com".into(),
            quiet_period_s: 60,
            auto_recovery_after: None,
            status: "enabled".into(),
            paused_now: false,
        }
    }

    #[test]
    fn rules_validate_or_say_why_not() {
        let valid = validate_rule(&rule("lag", Some(30), None), &[]).unwrap();
        assert_eq!(valid.recipients.len(), 2);
        assert_eq!(valid.condition.kind(), "lag");
        let problem = |row: AlarmRuleRow| validate_rule(&row, &[]).unwrap_err();
        assert!(problem(rule("lagg", Some(1), None)).contains("unknown kind 'lagg'"));
        assert!(problem(rule("lag", None, None)).contains("threshold"));
        assert!(problem(rule("error_text", None, Some("("))).contains("does not compile"));
        let mut bad_cron = rule("lag", Some(1), None);
        bad_cron.cron = "every minute".into();
        assert!(problem(bad_cron).contains("cron 'every minute'"));
        let mut nobody = rule("lag", Some(1), None);
        nobody.recipients = " , ".into();
        assert!(problem(nobody).contains("no recipients"));
        let mut not_mail = rule("lag", Some(1), None);
        not_mail.recipients = "ops".into();
        assert!(problem(not_mail).contains("'ops' is not an email address"));
    }

    #[test]
    fn windows_hold_their_days_and_run_past_midnight() {
        let row = |days: &str, from: u32, to: u32| AlarmWindowRow {
            rule_id: 1,
            days: days.into(),
            from_s: from,
            to_s: to,
        };
        let office = validate_window(&row("mon,tue,wed,thu,fri", 9 * 3600, 17 * 3600)).unwrap();
        let monday_noon = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let sunday_noon = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let monday_night = Utc.with_ymd_and_hms(2026, 11, 30, 20, 0, 0).unwrap();
        assert!(office.contains(monday_noon));
        assert!(!office.contains(sunday_noon));
        assert!(!office.contains(monday_night));
        let night = validate_window(&row("sun", 22 * 3600, 2 * 3600)).unwrap();
        let sunday_late = Utc.with_ymd_and_hms(2026, 11, 29, 23, 0, 0).unwrap();
        let monday_early = Utc.with_ymd_and_hms(2026, 11, 30, 1, 0, 0).unwrap();
        assert!(night.contains(sunday_late));
        assert!(night.contains(monday_early));
        assert!(!night.contains(monday_night));
    }
}
