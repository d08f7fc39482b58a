//! Checking one alarm rule against what the metadata schema (and, for binlog rules, the
//! sources) say now. Durations come from the metadata database's clock.

use super::Facts;
use crate::config::{AlarmRule, Condition};
use crate::meta::monitor::EventFacts;
use crate::model::PipelineId;
use std::collections::BTreeSet;

/// A scope where the rule's condition holds, and what was measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The pipeline or node the finding is about.
    pub scope: String,
    pub pipeline: Option<PipelineId>,
    pub measured: String,
}

/// The outcome of one check of a rule.
#[derive(Debug, Default)]
pub struct Checked {
    pub findings: Vec<Finding>,
    /// Scopes that could not be checked (a source that did not answer): their open alerts
    /// stay as they are.
    pub unknown: BTreeSet<String>,
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Checks `rule`; `events` are the error events since its last check.
pub fn check(rule: &AlarmRule, facts: &Facts, events: &[EventFacts]) -> Checked {
    let mut checked = Checked::default();
    let in_scope = |id: PipelineId| rule.pipeline.is_none_or(|only| only == id);
    let pipelines = facts.pipelines.iter().filter(|p| in_scope(p.id));
    let mut found = |scope: &str, pipeline: Option<PipelineId>, measured: String| {
        checked.findings.push(Finding {
            scope: scope.to_owned(),
            pipeline,
            measured,
        })
    };
    match &rule.condition {
        Condition::Lag(limit) => {
            for p in pipelines.filter(|p| p.desired_running) {
                if let Some(lag) = p.lag_ms
                    && lag > limit.as_millis() as i64
                {
                    found(
                        &p.name,
                        Some(p.id),
                        format!("lag {} (threshold {} s)", seconds(lag), limit.as_secs()),
                    );
                }
            }
        }
        Condition::PipelineError(limit) => {
            for p in pipelines.filter(|p| p.desired_running) {
                let failing = p.observed.is_failing();
                let long = p.state_ms.unwrap_or(0) >= limit.as_millis() as i64;
                if failing && long {
                    found(
                        &p.name,
                        Some(p.id),
                        format!(
                            "{} for {}: {}",
                            p.observed,
                            seconds(p.state_ms.unwrap_or(0)),
                            p.reason.as_deref().unwrap_or("(no reason)")
                        ),
                    );
                }
            }
        }
        Condition::NodeDead(limit) => {
            for node in &facts.nodes {
                let past_lease = node.heartbeat_age_ms - facts.lease.as_millis() as i64;
                if !node.alive && !node.stopped_cleanly && past_lease >= limit.as_millis() as i64 {
                    found(
                        &node.name,
                        None,
                        format!(
                            "no heartbeat for {} (lease {} s), and no clean stop",
                            seconds(node.heartbeat_age_ms),
                            facts.lease.as_secs()
                        ),
                    );
                }
            }
        }
        Condition::NoProgress(limit) => {
            for p in pipelines.filter(|p| p.desired_running) {
                let (Some(file), Some(offset), Some(age)) =
                    (&p.binlog_file, p.binlog_offset, p.position_age_ms)
                else {
                    continue;
                };
                if age < limit.as_millis() as i64 {
                    continue;
                }
                match facts.binlogs.get(&p.id) {
                    Some(Ok(logs)) => {
                        let end = logs.last();
                        let source_moved = end.is_some_and(|(end_file, end_offset)| {
                            (end_file.as_str(), *end_offset) != (file.as_str(), offset)
                        });
                        if source_moved {
                            let (end_file, end_offset) = end.expect("checked above");
                            found(
                                &p.name,
                                Some(p.id),
                                format!(
                                    "position {file}:{offset} unchanged for {} while the source is at {end_file}:{end_offset}",
                                    seconds(age)
                                ),
                            );
                        }
                    }
                    _ => {
                        checked.unknown.insert(p.name.clone());
                    }
                }
            }
        }
        Condition::BinlogRetention(files) => {
            for p in pipelines {
                let Some(file) = &p.binlog_file else { continue };
                match facts.binlogs.get(&p.id) {
                    Some(Ok(logs)) => {
                        let oldest = logs.first().map_or("", |(name, _)| name.as_str());
                        match logs.iter().position(|(name, _)| name == file) {
                            Some(index) if (index as u64) < *files => found(
                                &p.name,
                                Some(p.id),
                                format!(
                                    "position in {file}, {index} file(s) after the oldest binlog the source keeps ({oldest}): purging {oldest} {}",
                                    if index == 0 {
                                        "loses the position"
                                    } else {
                                        "brings it closer"
                                    }
                                ),
                            ),
                            Some(_) => {}
                            None => found(
                                &p.name,
                                Some(p.id),
                                format!(
                                    "position in {file}, which the source no longer keeps (oldest: {oldest}): CALL reset_position or re-seed the target"
                                ),
                            ),
                        }
                    }
                    _ => {
                        checked.unknown.insert(p.name.clone());
                    }
                }
            }
        }
        Condition::Conflicts(limit) => {
            for p in pipelines {
                if p.conflicts_per_minute > *limit {
                    found(
                        &p.name,
                        Some(p.id),
                        format!(
                            "{} conflicts in the last minute (threshold {limit}; SELECT * FROM v_conflicts)",
                            p.conflicts_per_minute
                        ),
                    );
                }
            }
        }
        Condition::CopyFailed => {
            for p in pipelines {
                if let Some(failed) = &p.failed_copies {
                    found(
                        &p.name,
                        Some(p.id),
                        format!(
                            "copy failed: {failed} (SELECT * FROM v_copy; cancel_copy(job) clears this)"
                        ),
                    );
                }
            }
        }
        Condition::VerifyMismatch => {
            for p in pipelines {
                if let Some(mismatch) = &p.verify_mismatch {
                    found(
                        &p.name,
                        Some(p.id),
                        format!(
                            "verification {mismatch} (SELECT * FROM v_verify_diff; repair_differences(job) repairs them)"
                        ),
                    );
                }
            }
        }
        Condition::ErrorText(pattern) => {
            let mut seen: BTreeSet<String> = BTreeSet::new();
            for event in events {
                if !pattern.is_match(&event.message) {
                    continue;
                }
                let pipeline = event
                    .pipeline
                    .as_ref()
                    .and_then(|name| facts.pipelines.iter().find(|p| &p.name == name));
                if let Some(only) = rule.pipeline
                    && pipeline.is_none_or(|p| p.id != only)
                {
                    continue;
                }
                let scope = match (&event.pipeline, &event.node) {
                    (Some(pipeline), _) => pipeline.clone(),
                    (None, Some(node)) => node.clone(),
                    (None, None) => "(none)".to_owned(),
                };
                let count = events
                    .iter()
                    .filter(|other| pattern.is_match(&other.message))
                    .filter(|other| other.pipeline.as_ref().or(other.node.as_ref()) == Some(&scope))
                    .count();
                if seen.insert(scope.clone()) {
                    found(
                        &scope,
                        pipeline.map(|p| p.id),
                        format!("{count} matching event(s), the first: {}", event.message),
                    );
                }
            }
        }
    }
    checked
}
