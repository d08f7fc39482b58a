//! Pure validation of configuration rows into the typed configuration a pipeline runs with.

use super::{
    ChannelRow, ColumnPairRow, ConfigError, ConfigSnapshot, DataSourceRow, NamePattern,
    PipelineRow, RowRef, Secret, TablePairRow, Tls,
};
use crate::model::{
    BinlogFilePos, ChannelId, ChannelMode, DataSourceId, GtidState, PipelineId, StartPoint,
    TablePairId,
};
use std::time::Duration;

pub use crate::model::DataSourceKind;

/// A validated data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    pub id: DataSourceId,
    pub name: String,
    pub kind: DataSourceKind,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub tls: Tls,
}

impl DataSource {
    /// Whether `other` is the same server: the same row, or the same host and port.
    pub fn same_server(&self, other: &DataSource) -> bool {
        self.id == other.id || (self.host == other.host && self.port == other.port)
    }
}

/// How a pipeline batches and applies changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineOptions {
    pub batch_rows: u32,
    pub batch_bytes: u64,
    pub batch_timeout: Duration,
    pub load_parallelism: u16,
    pub ddl_sync: bool,
    pub skip_ddl_errors: bool,
    pub transactional: bool,
    /// Rows the target rejects are recorded in `skipped_row` and left out.
    pub skip_load_errors: bool,
    /// How often a heartbeat row is written into `ottr_sys` on the source, for lag; `None`
    /// when off (lag then comes from event timestamps, to the second).
    pub heartbeat: Option<Duration>,
    /// Part of the configuration so that bumping it (restart_pipeline, auto-recovery)
    /// restarts the pipeline like any other change.
    pub restart_seq: u64,
    /// The first start of the pipeline copies every paired table while it streams.
    pub initial_copy: bool,
    /// The time one copy chunk should take to read and apply (chunk sizes adapt to it).
    pub copy_chunk: Duration,
    /// Copies wait while the pipeline lags more than this.
    pub copy_max_lag: Duration,
    /// Differences a verification finds are repaired at once.
    pub verify_repair: bool,
    /// When the channel is verified: a cron expression the node's parser accepts; None: only
    /// on request.
    pub verify_schedule: Option<String>,
}

/// Which columns of a table pair travel, and under which target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnSelection {
    /// Every column, same names.
    All,
    /// Only these source columns, each with an optional target name.
    Include(Vec<(String, Option<String>)>),
    /// Every column but these.
    Exclude(Vec<String>),
}

/// Schemas that are never synced, whatever a pattern matches.
pub const SYSTEM_SCHEMAS: &[&str] = &[
    crate::model::SYSTEM_SCHEMA,
    "mysql",
    "information_schema",
    "performance_schema",
    "sys",
];

/// How a two-way channel resolves a row changed on both sides between syncs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConflictPolicy {
    /// The primary data source's version wins.
    PrimaryWins,
    /// The version with the greater value in this column wins; a tie goes to the primary.
    NewerWins { column: String },
}

/// The conflict policy a pipeline of a two-way channel applies to one table pair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConflictRule {
    pub policy: ConflictPolicy,
    /// Whether the pipeline's source is the channel's primary.
    pub source_is_primary: bool,
}

/// A validated table pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePair {
    pub id: TablePairId,
    pub schema: NamePattern,
    pub table: NamePattern,
    /// None: the same schema as the source.
    pub target_schema: Option<String>,
    /// None: the same table as the source.
    pub target_table: Option<String>,
    pub columns: ColumnSelection,
    /// Two-way channels: how conflicts on this pair's tables are resolved.
    pub conflict: Option<ConflictRule>,
}

impl TablePair {
    /// Whether this pair selects `schema.table`; system schemas are never selected.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        !SYSTEM_SCHEMAS.contains(&schema)
            && self.schema.matches(schema)
            && self.table.matches(table)
    }
}

/// Everything a node needs to run one pipeline, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    pub id: PipelineId,
    pub name: String,
    pub channel_id: ChannelId,
    pub channel: String,
    pub source: DataSource,
    pub target: DataSource,
    pub options: PipelineOptions,
    /// The replica server id this pipeline uses on its source.
    pub server_id: u32,
    /// Where to start when no position is saved.
    pub start: StartPoint,
    pub table_pairs: Vec<TablePair>,
    /// The pipelines that write into this pipeline's source from its target (the other
    /// direction of a two-way channel, or a one-way channel back): what they wrote is this
    /// pipeline's own data coming back, and is dropped.
    pub echo_pipelines: Vec<PipelineId>,
    /// Two-way channels: the channel's other pipeline.
    pub reverse_pipeline: Option<PipelineId>,
}

impl PipelineConfig {
    /// Whether this is a pipeline of a two-way channel (its pairs carry a conflict rule).
    pub fn two_way(&self) -> bool {
        self.table_pairs.iter().any(|pair| pair.conflict.is_some())
    }
}

/// Validates one `data_source` row.
pub fn validate_data_source(row: &DataSourceRow) -> Result<DataSource, ConfigError> {
    let invalid = |problem: String| {
        ConfigError::new(
            RowRef::DataSource {
                id: row.id,
                name: row.name.clone(),
            },
            problem,
        )
    };
    let kind = match row.kind.as_str() {
        "mysql" => DataSourceKind::MySql,
        "mariadb" => DataSourceKind::MariaDb,
        other => {
            return Err(invalid(format!(
                "unknown kind '{other}': use mysql or mariadb"
            )));
        }
    };
    let port = u16::try_from(row.port)
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| invalid(format!("port {} is not between 1 and 65535", row.port)))?;
    if row.host.trim().is_empty() {
        return Err(invalid("host is empty".into()));
    }
    if row.user.is_empty() {
        return Err(invalid("user is empty".into()));
    }
    let password = row.password.clone();
    if let Secret::Env(name) = &password
        && (name.is_empty() || name.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
    {
        return Err(invalid(
            "a password starting with env: must be env:NAME".into(),
        ));
    }
    let tls = Tls::validate(
        &row.tls_mode,
        row.tls_ca_file.as_deref(),
        row.tls_cert_file.as_deref(),
        row.tls_key_file.as_deref(),
    )
    .map_err(invalid)?;
    Ok(DataSource {
        id: row.id,
        name: row.name.clone(),
        kind,
        host: row.host.clone(),
        port,
        user: row.user.clone(),
        password,
        tls,
    })
}

/// Validates a pipeline row with the rows it refers to.
pub fn validate_pipeline(
    snapshot: &ConfigSnapshot,
    row: &PipelineRow,
) -> Result<PipelineConfig, ConfigError> {
    let pipeline_ref = RowRef::Pipeline {
        id: row.id,
        name: row.name.clone(),
    };
    let invalid = |problem: String| ConfigError::new(pipeline_ref.clone(), problem);
    let channel = snapshot
        .channel_of(row)
        .ok_or_else(|| invalid(format!("channel id {} does not exist", row.channel_id)))?;
    let two_way = match channel.mode.parse() {
        Ok(ChannelMode::OneWay) => false,
        Ok(ChannelMode::TwoWay) => true,
        Err(_) => {
            return Err(invalid(format!(
                "channel '{}' has mode '{}', which this ottr does not run",
                channel.name, channel.mode
            )));
        }
    };
    let reverse = flag("reverse", row.reverse).map_err(invalid)?;
    let data_source = |id: DataSourceId, role: &str| {
        snapshot
            .data_sources
            .iter()
            .find(|source| source.id == id)
            .ok_or_else(|| invalid(format!("{role} data source id {id} does not exist")))
            .and_then(validate_data_source)
    };
    let source = data_source(row.source_id, "source")?;
    let target = data_source(row.target_id, "target")?;
    let options = validate_options(row).map_err(invalid)?;
    if two_way && options.heartbeat.is_none() {
        return Err(invalid(
            "heartbeat_ms 0 is not allowed in a two-way channel: conflicts are repaired once the heartbeat has passed them (use 1000)".into(),
        ));
    }
    let start = validate_start(row).map_err(invalid)?;
    let server_id = match row.server_id {
        Some(0) => {
            return Err(invalid(
                "server_id 0 is not allowed: use NULL or 1..".into(),
            ));
        }
        Some(id) => id,
        None => 1_000_000u32.saturating_add(row.id.0),
    };
    let mut table_pairs = Vec::new();
    let same_server = source.same_server(&target);
    for pair in snapshot
        .table_pairs
        .iter()
        .filter(|pair| pair.channel_id == row.channel_id)
    {
        let columns: Vec<&ColumnPairRow> = snapshot
            .column_pairs
            .iter()
            .filter(|column| column.table_pair_id == pair.id)
            .collect();
        let mut pair = validate_table_pair(pair, &columns, same_server)?;
        if reverse {
            pair = invert_pair(pair)?;
        }
        if two_way {
            pair.conflict = Some(conflict_rule(channel, row, pair_row(snapshot, pair.id))?);
        }
        table_pairs.push(pair);
    }
    let server = |id: DataSourceId| {
        snapshot
            .data_sources
            .iter()
            .find(|source| source.id == id)
            .and_then(|row| validate_data_source(row).ok())
    };
    let echo_pipelines = snapshot
        .pipelines
        .iter()
        .filter(|other| other.id != row.id)
        .filter(|other| {
            server(other.source_id).is_some_and(|from| from.same_server(&target))
                && server(other.target_id).is_some_and(|to| to.same_server(&source))
        })
        .map(|other| other.id)
        .collect();
    let reverse_pipeline = snapshot
        .pipelines
        .iter()
        .find(|other| two_way && other.channel_id == row.channel_id && other.id != row.id)
        .map(|other| other.id);
    if table_pairs.is_empty() {
        return Err(invalid(format!(
            "channel '{}' has no table pairs: CALL add_table_pair",
            channel.name
        )));
    }
    Ok(PipelineConfig {
        id: row.id,
        name: row.name.clone(),
        channel_id: channel.id,
        channel: channel.name.clone(),
        source,
        target,
        options,
        server_id,
        start,
        table_pairs,
        echo_pipelines,
        reverse_pipeline,
    })
}

fn pair_row(snapshot: &ConfigSnapshot, id: TablePairId) -> &TablePairRow {
    snapshot
        .table_pairs
        .iter()
        .find(|pair| pair.id == id)
        .expect("validated from this snapshot")
}

/// The conflict rule of a two-way pipeline for one table pair: the pair's policy, else the
/// channel's; the primary is the channel's (its first data source unless set otherwise).
fn conflict_rule(
    channel: &ChannelRow,
    pipeline: &PipelineRow,
    pair: &TablePairRow,
) -> Result<ConflictRule, ConfigError> {
    let (policy, column, row) = match &pair.conflict_policy {
        Some(policy) => (
            policy.as_str(),
            &pair.conflict_column,
            RowRef::TablePair { id: pair.id },
        ),
        None => (
            channel.conflict_policy.as_str(),
            &channel.conflict_column,
            RowRef::Channel {
                id: channel.id,
                name: channel.name.clone(),
            },
        ),
    };
    let policy = match (policy, column) {
        ("primary_wins", _) => ConflictPolicy::PrimaryWins,
        ("newer_wins", Some(column)) if !column.is_empty() => ConflictPolicy::NewerWins {
            column: column.clone(),
        },
        ("newer_wins", _) => {
            return Err(ConfigError::new(
                row,
                "conflict policy newer_wins names no column to compare: CALL set_conflict_policy"
                    .to_owned(),
            ));
        }
        (other, _) => {
            return Err(ConfigError::new(
                row,
                format!("unknown conflict policy '{other}': use primary_wins or newer_wins"),
            ));
        }
    };
    // Without a primary set, the forward pipeline's source (data_source_a) is the primary.
    let source_is_primary = match channel.primary_source_id {
        Some(primary) => primary == pipeline.source_id,
        None => pipeline.reverse == 0,
    };
    Ok(ConflictRule {
        policy,
        source_is_primary,
    })
}

/// A table pair as the reverse pipeline of a two-way channel applies it: from the pair's
/// target names back to its source names, column renames undone. A pair that renames must
/// name exact tables, since a regex cannot be inverted.
fn invert_pair(pair: TablePair) -> Result<TablePair, ConfigError> {
    let invalid = |problem: String| ConfigError::new(RowRef::TablePair { id: pair.id }, problem);
    let renames = |target: &Option<String>, source: &NamePattern| {
        target
            .as_deref()
            .is_some_and(|target| target != source.as_str())
    };
    let schema_renamed = renames(&pair.target_schema, &pair.schema);
    let table_renamed = renames(&pair.target_table, &pair.table);
    if (schema_renamed || table_renamed) && (pair.schema.is_regex() || pair.table.is_regex()) {
        return Err(invalid(
            "a pair of a two-way channel that renames must use exact names: a renaming regex cannot be inverted"
                .into(),
        ));
    }
    let (schema, target_schema) = if schema_renamed {
        let target = pair.target_schema.clone().expect("renamed");
        (
            NamePattern::Exact(target),
            Some(pair.schema.as_str().to_owned()),
        )
    } else {
        (pair.schema.clone(), None)
    };
    let (table, target_table) = if table_renamed {
        let target = pair.target_table.clone().expect("renamed");
        (
            NamePattern::Exact(target),
            Some(pair.table.as_str().to_owned()),
        )
    } else {
        (pair.table.clone(), None)
    };
    let columns = match pair.columns {
        ColumnSelection::Include(columns) => ColumnSelection::Include(
            columns
                .into_iter()
                .map(|(source, target)| match target {
                    Some(target) if target != source => (target, Some(source)),
                    _ => (source, None),
                })
                .collect(),
        ),
        other => other,
    };
    Ok(TablePair {
        id: pair.id,
        schema,
        table,
        target_schema,
        target_table,
        columns,
        conflict: None,
    })
}

fn validate_options(row: &PipelineRow) -> Result<PipelineOptions, String> {
    let in_range = |name: &str, value: u64, min: u64, max: u64| {
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(format!("{name} {value} is not between {min} and {max}"))
        }
    };
    Ok(PipelineOptions {
        batch_rows: in_range("batch_rows", row.batch_rows, 1, 1_000_000)? as u32,
        batch_bytes: in_range("batch_bytes", row.batch_bytes, 1024, 1 << 32)?,
        batch_timeout: Duration::from_millis(in_range(
            "batch_timeout_ms",
            row.batch_timeout_ms,
            1,
            3_600_000,
        )?),
        load_parallelism: in_range("load_parallelism", row.load_parallelism, 1, 256)? as u16,
        ddl_sync: flag("ddl_sync", row.ddl_sync)?,
        skip_ddl_errors: flag("skip_ddl_errors", row.skip_ddl_errors)?,
        transactional: flag("transactional", row.transactional)?,
        skip_load_errors: flag("skip_load_errors", row.skip_load_errors)?,
        heartbeat: match row.heartbeat_ms {
            0 => None,
            ms => Some(Duration::from_millis(in_range(
                "heartbeat_ms",
                ms,
                100,
                3_600_000,
            )?)),
        },
        restart_seq: row.restart_seq,
        initial_copy: flag("initial_copy", row.initial_copy)?,
        copy_chunk: Duration::from_millis(in_range(
            "copy_chunk_ms",
            row.copy_chunk_ms,
            10,
            60_000,
        )?),
        copy_max_lag: Duration::from_millis(in_range(
            "copy_max_lag_ms",
            row.copy_max_lag_ms,
            100,
            86_400_000,
        )?),
        verify_repair: flag("verify_repair", row.verify_repair)?,
        verify_schedule: match &row.verify_schedule {
            None => None,
            Some(text) => {
                crate::config::parse_cron(text)
                    .map_err(|problem| format!("verify_schedule: {problem}"))?;
                Some(text.clone())
            }
        },
    })
}

fn flag(name: &str, value: i64) -> Result<bool, String> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(format!("{name} is {other}: use 0 (off) or 1 (on)")),
    }
}

fn validate_start(row: &PipelineRow) -> Result<StartPoint, String> {
    match row.start_kind.as_str() {
        "end" => Ok(StartPoint::End),
        "file" => match (&row.start_file, row.start_offset) {
            (Some(file), Some(offset)) => format!("{file}:{offset}")
                .parse::<BinlogFilePos>()
                .map(StartPoint::File)
                .map_err(|error| format!("start position: {error}")),
            _ => Err("start_kind 'file' needs start_file and start_offset".into()),
        },
        "gtid" => match &row.start_gtid {
            Some(text) if !text.trim().is_empty() => text
                .parse::<GtidState>()
                .map(StartPoint::Gtid)
                .map_err(|_| {
                    format!(
                        "start_gtid '{text}' is not a MariaDB GTID position or a MySQL GTID set"
                    )
                }),
            _ => Err("start_kind 'gtid' needs start_gtid".into()),
        },
        "timestamp" => match &row.start_time {
            Some(text) => chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .map(StartPoint::Timestamp)
                .map_err(|_| format!("start_time '{text}' is not a valid UTC time")),
            None => Err("start_kind 'timestamp' needs start_time".into()),
        },
        other => Err(format!("unknown start_kind '{other}'")),
    }
}

fn validate_table_pair(
    row: &TablePairRow,
    columns: &[&ColumnPairRow],
    same_server: bool,
) -> Result<TablePair, ConfigError> {
    let invalid = |problem: String| ConfigError::new(RowRef::TablePair { id: row.id }, problem);
    let pattern = |what: &str, text: &str| {
        if text.is_empty() {
            return Err(invalid(format!("source {what} is empty")));
        }
        NamePattern::parse(text).map_err(|error| {
            invalid(format!(
                "source {what} regex '{text}' does not compile: {error}"
            ))
        })
    };
    let schema = pattern("schema", &row.source_schema)?;
    let table = pattern("table", &row.source_table)?;
    if !schema.is_regex() && SYSTEM_SCHEMAS.contains(&row.source_schema.as_str()) {
        return Err(invalid(format!(
            "source schema {} is a system schema and is never synced",
            row.source_schema
        )));
    }
    for (what, name) in [("schema", &row.target_schema), ("table", &row.target_table)] {
        if let Some(name) = name
            && (name.is_empty() || name.chars().count() > 64)
        {
            return Err(invalid(format!(
                "target {what} '{name}' must have 1 to 64 characters"
            )));
        }
    }
    let onto_itself = row
        .target_schema
        .as_deref()
        .is_none_or(|target| target == row.source_schema)
        && row
            .target_table
            .as_deref()
            .is_none_or(|target| target == row.source_table);
    if same_server && onto_itself {
        return Err(invalid(
            "source and target are the same server and the pair renames nothing: it would copy tables onto themselves"
                .into(),
        ));
    }
    Ok(TablePair {
        id: row.id,
        schema,
        table,
        target_schema: row.target_schema.clone(),
        target_table: row.target_table.clone(),
        columns: validate_columns(columns)?,
        conflict: None,
    })
}

fn validate_columns(columns: &[&ColumnPairRow]) -> Result<ColumnSelection, ConfigError> {
    let Some(first) = columns.first() else {
        return Ok(ColumnSelection::All);
    };
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    for column in columns {
        let invalid =
            |problem: String| ConfigError::new(RowRef::ColumnPair { id: column.id }, problem);
        if column.mode != first.mode {
            return Err(invalid(format!(
                "mixes '{}' with '{}' in one table pair: a pair is either include or exclude",
                column.mode, first.mode
            )));
        }
        match column.mode.as_str() {
            "include" => include.push((column.source_column.clone(), column.target_column.clone())),
            "exclude" if column.target_column.is_some() => {
                return Err(invalid(format!(
                    "excludes column {} and also renames it",
                    column.source_column
                )));
            }
            "exclude" => exclude.push(column.source_column.clone()),
            other => {
                return Err(invalid(format!(
                    "unknown mode '{other}': use include or exclude"
                )));
            }
        }
    }
    Ok(if include.is_empty() {
        ColumnSelection::Exclude(exclude)
    } else {
        ColumnSelection::Include(include)
    })
}

#[cfg(test)]
mod tests;
