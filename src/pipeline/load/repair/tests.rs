//! Unit tests of `repair`.

use super::*;
use crate::config::{ConflictPolicy, ConflictRule};
use std::sync::Arc;

fn suspect(columns: &[&str], key: Vec<Bound>) -> Suspect {
    Suspect {
        table: Arc::new(TargetTable {
            schema: "shop".into(),
            table: "orders".into(),
            columns: columns.iter().map(|name| (*name).to_owned()).collect(),
            key: vec![0, 1],
            conflict: Some(ConflictRule {
                policy: ConflictPolicy::PrimaryWins,
                source_is_primary: false,
            }),
            source: Some(SourceNames {
                schema: "shop".into(),
                table: "orders".into(),
                columns: columns.iter().map(|name| (*name).to_owned()).collect(),
            }),
        }),
        key,
    }
}

#[test]
fn a_suspect_survives_its_row_in_ottr_sys_repair_and_is_named_by_table_and_key() {
    let key = vec![Bound::Double(0.1 + 0.2), Bound::Bytes(b"a\0'b".to_vec())];
    let kept = suspect(&["price", "sku", "note"], key.clone());
    let json = serde_json::to_string(&kept).unwrap();
    let taken: Suspect = serde_json::from_str(&json).unwrap();
    assert_eq!(taken.key, key, "a double key round-trips exactly");
    assert!(taken.is(&kept));
    assert_eq!(taken.identity().unwrap(), kept.identity().unwrap());
    // A column added to the table later: still the same key, and the same row to forget.
    let wider = suspect(&["price", "sku", "note", "added"], key);
    assert!(wider.is(&kept));
    assert_eq!(wider.identity().unwrap(), kept.identity().unwrap());
    let other = suspect(
        &["price", "sku", "note"],
        vec![Bound::Double(0.3), Bound::Null],
    );
    assert!(!other.is(&kept));
    assert_ne!(other.identity().unwrap(), kept.identity().unwrap());
}
