//! Row changes and the table metadata they refer to.

use super::Value;
use std::fmt;
use std::sync::Arc;

/// A table by schema and name.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TableId {
    pub schema: String,
    pub table: String,
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// One column of a table as the binlog describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnMeta {
    pub name: String,
    /// The column's type name as the binlog gives it (e.g. `LONGLONG`, `VARCHAR`).
    pub type_name: String,
    pub unsigned: bool,
}

/// A table's columns, in order, and its primary key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableMeta {
    pub id: TableId,
    pub columns: Vec<ColumnMeta>,
    /// Indexes into `columns`; empty when the table has no primary key.
    pub primary_key: Vec<usize>,
}

/// What a row change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Insert => "INSERT",
            ChangeKind::Update => "UPDATE",
            ChangeKind::Delete => "DELETE",
        })
    }
}

/// One changed row, with its before-image (update, delete) and after-image (insert, update).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowChange {
    pub table: Arc<TableMeta>,
    pub kind: ChangeKind,
    pub before: Option<Vec<Value>>,
    pub after: Option<Vec<Value>>,
}

impl RowChange {
    /// An approximate size in bytes, for batch byte budgets.
    pub fn size(&self) -> usize {
        let image = |values: &Option<Vec<Value>>| {
            values
                .as_ref()
                .map_or(0, |values| values.iter().map(Value::size).sum())
        };
        64 + image(&self.before) + image(&self.after)
    }
}

impl fmt::Display for RowChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.table.id)?;
        let columns = &self.table.columns;
        let image = |f: &mut fmt::Formatter<'_>, label: &str, values: &[Value]| -> fmt::Result {
            write!(f, " {label} (")?;
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    f.write_str(", ")?;
                }
                let name = columns
                    .get(index)
                    .map_or("?", |column| column.name.as_str());
                match value {
                    Value::Null => write!(f, "{name}=NULL")?,
                    Value::Int(_)
                    | Value::UInt(_)
                    | Value::Float(_)
                    | Value::Double(_)
                    | Value::Decimal(_)
                    | Value::Bit { .. } => write!(f, "{name}={value}")?,
                    _ => write!(f, "{name}='{}'", value.to_string().replace('\'', "''"))?,
                }
            }
            f.write_str(")")
        };
        if let Some(before) = &self.before {
            image(f, "before", before)?;
        }
        if let Some(after) = &self.after {
            image(f, "after", after)?;
        }
        Ok(())
    }
}
