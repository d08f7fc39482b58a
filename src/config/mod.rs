//! Typed configuration rows read from the metadata schema, and their pure validation.
//!
//! A node reads every configuration row it needs into a [`ConfigSnapshot`] (plain typed rows,
//! exactly as stored) and turns each pipeline into a [`PipelineConfig`] with
//! [`validate_pipeline`]. Validation does no IO: what it cannot check without a connection
//! (a password in an environment variable, a reachable server) is checked when the pipeline
//! connects. An invalid row becomes a [`ConfigError`] naming the row, which the node reports
//! as that pipeline's error; it never stops the node or other pipelines.

mod alarm;
mod error;
mod pattern;
mod rows;
mod secret;
mod settings;
mod tls;
mod validate;

pub use alarm::{
    AlarmRule, AlarmRuleRow, AlarmWindowRow, Condition, Smtp, SmtpRow, SmtpSecurity, Window,
    parse_cron, parse_recipients, validate_rule, validate_smtp,
};
pub use error::{ConfigError, RowRef};
pub use pattern::NamePattern;
pub use rows::{
    ChannelRow, ColumnPairRow, ConfigSnapshot, DataSourceRow, PipelineNodeRow, PipelineRow,
    TablePairRow,
};
pub use secret::{
    CERTIFICATE_FILE_LIMIT, DEFAULT_ENV_PREFIX, SECRET_FILE_LIMIT, Secret, SecretPolicy,
    install_policy, read_public_file, read_secret_file,
};
pub use settings::Settings;
pub use tls::{ClientCertificate, Tls, TlsMode};
pub use validate::{
    ColumnSelection, ConflictPolicy, ConflictRule, DataSource, DataSourceKind, PipelineConfig,
    PipelineOptions, SYSTEM_SCHEMAS, TablePair, validate_data_source, validate_pipeline,
};
