//! Configuration rows exactly as stored in the metadata schema, before validation.

use super::Secret;
use crate::model::{ChannelId, DataSourceId, Desired, PipelineId, TablePairId};

/// A `data_source` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSourceRow {
    pub id: DataSourceId,
    pub name: String,
    pub kind: String,
    pub host: String,
    pub port: u32,
    pub user: String,
    /// From the secrets schema: none, a literal, `env:NAME` or `file:PATH` (never shown by
    /// `Debug`).
    pub password: Secret,
    /// `disabled`, `preferred`, `required`, `verify_ca` or `verify_identity`.
    pub tls_mode: String,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
}

/// A `channel` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub id: ChannelId,
    pub name: String,
    pub mode: String,
    pub desired: String,
    /// two_way: the data source whose version wins conflicts (or ties).
    pub primary_source_id: Option<DataSourceId>,
    pub conflict_policy: String,
    pub conflict_column: Option<String>,
}

/// A `pipeline` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRow {
    pub id: PipelineId,
    pub channel_id: ChannelId,
    pub name: String,
    pub source_id: DataSourceId,
    pub target_id: DataSourceId,
    pub batch_rows: u64,
    pub batch_bytes: u64,
    pub batch_timeout_ms: u64,
    pub load_parallelism: u64,
    /// Flags as stored (BOOLEAN is TINYINT: a hand-written 2 must be reported, not guessed).
    pub ddl_sync: i64,
    pub skip_ddl_errors: i64,
    pub transactional: i64,
    pub skip_load_errors: i64,
    /// Source heartbeat interval; 0 = off.
    pub heartbeat_ms: u64,
    /// Bumped to restart the pipeline.
    pub restart_seq: u64,
    /// The first start copies every paired table while streaming.
    pub initial_copy: i64,
    /// The time one copy chunk should take.
    pub copy_chunk_ms: u64,
    /// Copies wait while the pipeline lags more than this.
    pub copy_max_lag_ms: u64,
    /// Differences a verification finds are repaired at once.
    pub verify_repair: i64,
    /// When the channel is verified (cron); None: only on request.
    pub verify_schedule: Option<String>,
    pub server_id: Option<u32>,
    pub start_kind: String,
    pub start_file: Option<String>,
    pub start_offset: Option<u64>,
    pub start_gtid: Option<String>,
    /// As stored: text, since MariaDB accepts zero dates that are no time at all.
    pub start_time: Option<String>,
    /// two_way: the pipeline from data_source_b to data_source_a (table pairs inverted).
    pub reverse: i64,
}

/// A `table_pair` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePairRow {
    pub id: TablePairId,
    pub channel_id: ChannelId,
    pub source_schema: String,
    pub source_table: String,
    pub target_schema: Option<String>,
    pub target_table: Option<String>,
    /// two_way: overrides the channel's conflict policy.
    pub conflict_policy: Option<String>,
    pub conflict_column: Option<String>,
}

/// A `column_pair` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPairRow {
    pub id: u32,
    pub table_pair_id: TablePairId,
    pub mode: String,
    pub source_column: String,
    pub target_column: Option<String>,
}

/// A `pipeline_node` row: a node allowed to run a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineNodeRow {
    pub pipeline_id: PipelineId,
    pub node: String,
}

/// Every configuration row a node needs, read at one poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSnapshot {
    pub data_sources: Vec<DataSourceRow>,
    pub channels: Vec<ChannelRow>,
    pub pipelines: Vec<PipelineRow>,
    pub table_pairs: Vec<TablePairRow>,
    pub column_pairs: Vec<ColumnPairRow>,
    pub pipeline_nodes: Vec<PipelineNodeRow>,
}

impl ConfigSnapshot {
    /// The channel of a pipeline (always present: a foreign key guarantees it).
    pub fn channel_of(&self, pipeline: &PipelineRow) -> Option<&ChannelRow> {
        self.channels.iter().find(|c| c.id == pipeline.channel_id)
    }

    /// Whether the operator wants this pipeline to run.
    pub fn is_desired_running(&self, pipeline: &PipelineRow) -> bool {
        self.channel_of(pipeline)
            .is_some_and(|channel| channel.desired.parse() == Ok(Desired::Running))
    }

    /// The nodes allowed to run a pipeline; empty means any node.
    pub fn allowed_nodes(&self, pipeline: PipelineId) -> Vec<String> {
        self.pipeline_nodes
            .iter()
            .filter(|row| row.pipeline_id == pipeline)
            .map(|row| row.node.clone())
            .collect()
    }
}
