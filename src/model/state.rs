//! The closed sets the metadata schema stores as ENUMs: a pipeline's observed state, a
//! channel's desired state and mode. Each is written and compared through its type; the
//! text is only what the column holds.

use std::fmt;
use std::str::FromStr;

/// Text that is not one of a closed set's values: names the set and the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a {set}")]
pub struct UnknownValue {
    pub set: &'static str,
    pub text: String,
}

macro_rules! closed_set {
    ($(#[$doc:meta])* $name:ident, $set:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the column's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text the column holds.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { set: $set, text: text.to_owned() }),
                }
            }
        }
    };
}

closed_set!(
    /// `pipeline_state.state`: what a pipeline's task last reported.
    PipelineState, "pipeline state" {
        /// Not running (stopped by the operator, a drain, a shutdown).
        Stopped = "stopped",
        /// Prechecks and start position.
        Starting = "starting",
        Running = "running",
        /// A transient failure: trying again after a backoff.
        Retrying = "retrying",
        /// A failure that needs the operator (or a changed row); checked again slowly.
        Error = "error",
    }
);

impl PipelineState {
    /// Whether the pipeline is failing (what the `pipeline_error` alarm watches).
    pub fn is_failing(self) -> bool {
        matches!(self, PipelineState::Error | PipelineState::Retrying)
    }
}

closed_set!(
    /// `channel.desired`: whether the operator wants the channel's pipelines to run.
    Desired, "desired channel state" {
        Stopped = "stopped",
        Running = "running",
    }
);

closed_set!(
    /// `channel.mode`.
    ChannelMode, "channel mode" {
        /// One pipeline, from data_source_a to data_source_b.
        OneWay = "one_way",
        /// Two pipelines, one each way, with loop avoidance and conflict handling.
        TwoWay = "two_way",
    }
);

closed_set!(
    /// `event_log.kind`: what happened, as a short machine-readable word that operators
    /// filter on.
    EventKind, "event kind" {
        AutoIncrementCollision = "auto_increment_collision",
        AutoRecovery = "auto_recovery",
        ConfigChanged = "config_changed",
        ConflictUnrepaired = "conflict_unrepaired",
        CopyDone = "copy_done",
        CopyFailed = "copy_failed",
        CopyStarted = "copy_started",
        DdlSkipped = "ddl_skipped",
        FencingTokenRaised = "fencing_token_raised",
        HeartbeatFailed = "heartbeat_failed",
        HeartbeatRestored = "heartbeat_restored",
        InvalidAlarmRule = "invalid_alarm_rule",
        InvalidConfig = "invalid_config",
        InvalidSetting = "invalid_setting",
        LeaseAcquired = "lease_acquired",
        LeaseLost = "lease_lost",
        MailFailed = "mail_failed",
        MonitorAcquired = "monitor_acquired",
        MonitorLost = "monitor_lost",
        NodeDrained = "node_drained",
        NodeStarted = "node_started",
        NodeStopped = "node_stopped",
        NodeUndrained = "node_undrained",
        PipelineError = "pipeline_error",
        PipelineStopped = "pipeline_stopped",
        PositionResolved = "position_resolved",
        RollbackRowsKept = "rollback_rows_kept",
        RowSkipped = "row_skipped",
        VerifyDifferent = "verify_different",
        VerifyDone = "verify_done",
        VerifyFailed = "verify_failed",
        VerifyRepaired = "verify_repaired",
        VerifyStarted = "verify_started",
        ZookeeperEnsembleMismatch = "zookeeper_ensemble_mismatch",
        ZookeeperReachable = "zookeeper_reachable",
        ZookeeperSessionEnded = "zookeeper_session_ended",
        ZookeeperUnreachable = "zookeeper_unreachable",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_from_its_text_and_other_text_is_named() {
        for state in PipelineState::ALL {
            assert_eq!(state.as_str().parse::<PipelineState>(), Ok(*state));
        }
        for mode in ChannelMode::ALL {
            assert_eq!(mode.to_string().parse::<ChannelMode>(), Ok(*mode));
        }
        let wrong = "three_way".parse::<ChannelMode>().unwrap_err();
        assert_eq!(wrong.to_string(), "'three_way' is not a channel mode");
        assert!(PipelineState::Retrying.is_failing());
        assert!(!PipelineState::Running.is_failing());
    }
}
