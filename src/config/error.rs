//! The error of an invalid configuration row: which row, and what is wrong with it.

use crate::model::{ChannelId, DataSourceId, PipelineId, TablePairId};
use std::fmt;

/// The row at fault, as an operator would look it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowRef {
    DataSource { id: DataSourceId, name: String },
    Channel { id: ChannelId, name: String },
    Pipeline { id: PipelineId, name: String },
    TablePair { id: TablePairId },
    ColumnPair { id: u32 },
    Setting { name: String },
}

impl fmt::Display for RowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowRef::DataSource { id, name } => write!(f, "data source '{name}' (id {id})"),
            RowRef::Channel { id, name } => write!(f, "channel '{name}' (id {id})"),
            RowRef::Pipeline { id, name } => write!(f, "pipeline '{name}' (id {id})"),
            RowRef::TablePair { id } => write!(f, "table pair {id}"),
            RowRef::ColumnPair { id } => write!(f, "column pair {id}"),
            RowRef::Setting { name } => write!(f, "setting {name}"),
        }
    }
}

/// A configuration row that cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{row}: {problem}")]
pub struct ConfigError {
    /// The row at fault.
    pub row: RowRef,
    /// What is wrong with it, in words an operator can act on.
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(row: RowRef, problem: impl Into<String>) -> Self {
        ConfigError {
            row,
            problem: problem.into(),
        }
    }
}
