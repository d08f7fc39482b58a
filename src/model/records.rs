//! What a pipeline records in the metadata schema beside its position: the conflicts a
//! two-way pipeline resolved (`conflict_log`) and the rows `skip_load_errors` left out
//! (`skipped_row`).

/// Which change met a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    Insert,
    Update,
    Delete,
    /// The row collided with another row on a unique key.
    UniqueKey,
}

impl ConflictKind {
    /// As `conflict_log.kind` holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Insert => "insert",
            ConflictKind::Update => "update",
            ConflictKind::Delete => "delete",
            ConflictKind::UniqueKey => "unique_key",
        }
    }
}

/// One conflict, as `conflict_log` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    /// `schema.table` on the target.
    pub table: String,
    pub key: String,
    pub kind: ConflictKind,
    /// The version the source sent (None: it deleted the row).
    pub source_row: Option<String>,
    /// The version found on the target (None: no row).
    pub target_row: Option<String>,
    /// Whether the source's version was applied (else the target's was kept).
    pub source_applied: bool,
    /// The rule that decided, and why.
    pub policy: String,
}

/// A row the target rejected and `skip_load_errors` left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRow {
    /// `schema.table` on the target.
    pub table: String,
    /// Its key (or first columns) and its source position.
    pub row: String,
    pub error: String,
}
