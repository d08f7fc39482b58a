//! A suspect: a key of a two-way channel whose two sides may differ after a conflict, and
//! how it is named in `ottr_sys.repair` (by table and key, as JSON).

use super::super::statements::literal_tuple;
use super::own_names;
use crate::error::{Error, Result};
use crate::pipeline::transform::TargetTable;
use crate::pipeline::transform::bind::Bound;
use std::sync::Arc;

/// A key whose two sides may differ after a conflict: the source gets the primary's row.
/// Kept in `ottr_sys.repair` on the target as JSON until it is repaired.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Suspect {
    pub table: Arc<TargetTable>,
    pub key: Vec<Bound>,
}

impl Suspect {
    /// The same key of the same table (whatever columns either description lists).
    pub(super) fn is(&self, other: &Suspect) -> bool {
        (&self.table.schema, &self.table.table, &self.key)
            == (&other.table.schema, &other.table.table, &other.key)
    }

    /// What names the key in `ottr_sys.repair`: table and key (not the table's description,
    /// which a configuration change may alter).
    pub(crate) fn identity(&self) -> Result<String> {
        Ok(format!(
            "{}.{}:{}",
            self.table.schema,
            self.table.table,
            serde_json::to_string(&self.key).map_err(encoding)?
        ))
    }

    /// The same key seen from the other side: what the channel's other pipeline repairs.
    pub(crate) fn inverted(&self) -> Option<Suspect> {
        let other = self.table.source.as_ref()?;
        Some(Suspect {
            table: Arc::new(TargetTable {
                schema: other.schema.clone(),
                table: other.table.clone(),
                columns: other.columns.clone(),
                key: self.table.key.clone(),
                conflict: self.table.conflict.clone(),
                source: Some(own_names(&self.table)),
            }),
            key: self.key.clone(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{}.{} key {}",
            self.table.schema,
            self.table.table,
            literal_tuple(self.key.iter())
        )
    }
}

pub(super) fn encoding(error: serde_json::Error) -> Error {
    Error::Transform(format!("cannot encode a conflict's key: {error}"))
}
