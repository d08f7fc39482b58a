//! `ottr_sys.repair`: the keys of a two-way channel whose two sides may differ after a
//! conflict (JSON), kept on the primary until repaired.

pub const KEEP_SUSPECT: &str = "INSERT IGNORE INTO ottr_sys.repair (pipeline_key, suspect_hash, suspect) \
     VALUES (?, SHA2(?, 256), ?)";
pub const READ_SUSPECTS: &str = "SELECT suspect FROM ottr_sys.repair WHERE pipeline_key = ?";
/// Every suspect of a two-way channel's pipelines (`key, key`), for a verification to leave
/// alone.
pub const READ_CHANNEL_SUSPECTS: &str =
    "SELECT suspect FROM ottr_sys.repair WHERE pipeline_key IN (?, ?)";
pub const FORGET_SUSPECT: &str =
    "DELETE FROM ottr_sys.repair WHERE pipeline_key = ? AND suspect_hash = SHA2(?, 256)";
