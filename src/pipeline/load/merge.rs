//! Planning the apply of a batch: partitions by primary-key hash, and Otter's merge per key
//! inside a partition (I+U→I, I+D→D, U+U→U, U+D→D, D+I→I; an update that changes the key is a
//! delete of the old key and an insert of the new one, so chains 1→2, 2→3 follow). Every
//! write carries the whole after-image, so the merged result is each key's last image, or a
//! delete by key. Pure: no IO.

use crate::model::ChangeKind;
use crate::pipeline::transform::bind::Bound;
use crate::pipeline::transform::{TargetRow, TargetTable};
use std::collections::HashMap;
use std::sync::Arc;

/// What to do to one key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyOp<'a> {
    /// Write this whole row (insert or replace).
    Upsert(&'a [Bound]),
    /// Delete the row with this key.
    Delete(Vec<Bound>),
}

/// The merged operations of one partition, per table in first-seen order: deletes first,
/// then upserts (the images borrowed from the rows merged).
#[derive(Debug, Default, PartialEq)]
pub struct Merged<'a> {
    pub deletes: Vec<(Arc<TargetTable>, Vec<Vec<Bound>>)>,
    pub upserts: Vec<(Arc<TargetTable>, Vec<&'a [Bound]>)>,
}

/// The key values of `image` for `table`.
pub fn key_of(table: &TargetTable, image: &[Bound]) -> Vec<Bound> {
    table
        .key
        .iter()
        .map(|index| image[*index].clone())
        .collect()
}

/// The key values of `image` as bytes, for hashing and comparing keys.
fn key_bytes(table: &TargetTable, image: &[Bound], out: &mut Vec<u8>) {
    for index in &table.key {
        image[*index].key_text(out);
    }
}

/// The partition (0..partitions) of a keyed row: a stable FNV-1a hash of table and key.
pub fn partition_of(row: &TargetRow, partitions: usize) -> usize {
    let image = row
        .after
        .as_ref()
        .or(row.before.as_ref())
        .expect("a row has an image");
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(row.table.schema.as_bytes());
    bytes.push(b'.');
    bytes.extend_from_slice(row.table.table.as_bytes());
    bytes.push(0);
    key_bytes(&row.table, image, &mut bytes);
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % partitions as u64) as usize
}

/// The operations of keyed rows, in binlog order, as single-key operations.
pub fn key_ops(row: &TargetRow) -> Vec<KeyOp<'_>> {
    let key = |image: &Vec<Bound>| key_of(&row.table, image);
    match (row.kind, &row.before, &row.after) {
        (ChangeKind::Delete, Some(before), _) => vec![KeyOp::Delete(key(before))],
        (ChangeKind::Update, Some(before), Some(after)) if key(before) != key(after) => {
            vec![KeyOp::Delete(key(before)), KeyOp::Upsert(after)]
        }
        (_, _, Some(after)) => vec![KeyOp::Upsert(after)],
        _ => Vec::new(),
    }
}

/// A key of a row: schema, table, and the key values as bytes.
type KeySlot<'a> = (&'a str, &'a str, Vec<u8>);

/// Merges keyed rows per key: each key's last operation wins.
pub fn merge<'a>(rows: &[&'a TargetRow]) -> Merged<'a> {
    // (table, key) → (first-seen order, last operation)
    let mut last: HashMap<KeySlot<'a>, (usize, &'a Arc<TargetTable>, KeyOp<'a>)> =
        HashMap::with_capacity(rows.len());
    let mut order = 0;
    for row in rows {
        let row: &'a TargetRow = row;
        for op in key_ops(row) {
            let mut key = Vec::with_capacity(16);
            match &op {
                KeyOp::Upsert(image) => key_bytes(&row.table, image, &mut key),
                KeyOp::Delete(values) => values.iter().for_each(|value| value.key_text(&mut key)),
            }
            let slot = (row.table.schema.as_str(), row.table.table.as_str(), key);
            let seen = last
                .get(&slot)
                .map(|(seen, _, _)| *seen)
                .unwrap_or_else(|| {
                    order += 1;
                    order
                });
            last.insert(slot, (seen, &row.table, op));
        }
    }
    let mut ops: Vec<(usize, &Arc<TargetTable>, KeyOp<'a>)> = last.into_values().collect();
    ops.sort_by_key(|(seen, _, _)| *seen);
    let mut merged = Merged::default();
    for (_, table, op) in ops {
        match op {
            KeyOp::Delete(key) => push_to(&mut merged.deletes, table, key),
            KeyOp::Upsert(image) => push_to(&mut merged.upserts, table, image),
        }
    }
    merged
}

/// One step of a key, for a two-way channel's checks: the version the change expects on the
/// target (None: it inserts the row) and the version it leaves (None: it deletes the row). An
/// update that changes the key is a delete of the old key and an insert of the new one.
///
/// Steps are never merged across changes: a change made on the other side after it received
/// this side's forced version (an echo, dropped by Select) expects that version, and merging
/// it with the change before would make it expect a version the target never had.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyStep<'a> {
    pub table: &'a Arc<TargetTable>,
    pub key: Vec<Bound>,
    pub expected: Option<&'a [Bound]>,
    pub last: Option<&'a [Bound]>,
}

/// The steps of `rows`, in binlog order.
pub fn key_steps<'a>(rows: &[&'a TargetRow]) -> Vec<KeyStep<'a>> {
    let mut steps = Vec::with_capacity(rows.len());
    for row in rows {
        let row: &'a TargetRow = row;
        let step = |keyed: &'a [Bound], expected, last| KeyStep {
            table: &row.table,
            key: key_of(&row.table, keyed),
            expected,
            last,
        };
        match (row.kind, row.before.as_deref(), row.after.as_deref()) {
            (ChangeKind::Delete, Some(before), _) => steps.push(step(before, Some(before), None)),
            (ChangeKind::Update, Some(before), Some(after))
                if key_of(&row.table, before) != key_of(&row.table, after) =>
            {
                steps.push(step(before, Some(before), None));
                steps.push(step(after, None, Some(after)));
            }
            (ChangeKind::Update, Some(before), Some(after)) => {
                steps.push(step(after, Some(before), Some(after)));
            }
            (_, _, Some(after)) => steps.push(step(after, None, Some(after))),
            _ => {}
        }
    }
    steps
}

/// Adds `value` to the list of `table` (the same table may come in several `Arc`s).
fn push_to<T>(lists: &mut Vec<(Arc<TargetTable>, Vec<T>)>, table: &Arc<TargetTable>, value: T) {
    match lists
        .iter_mut()
        .find(|(existing, _)| Arc::ptr_eq(existing, table) || **existing == **table)
    {
        Some((_, values)) => values.push(value),
        None => lists.push((table.clone(), vec![value])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BinlogFilePos, ChangeAt};

    fn table() -> Arc<TargetTable> {
        Arc::new(TargetTable {
            schema: "s".into(),
            table: "t".into(),
            columns: vec!["id".into(), "v".into()],
            key: vec![0],
            conflict: None,
            source: None,
        })
    }

    fn row(kind: ChangeKind, before: Option<(i64, &str)>, after: Option<(i64, &str)>) -> TargetRow {
        let image =
            |(id, v): (i64, &str)| vec![Bound::Int(id), Bound::Bytes(v.as_bytes().to_vec())];
        TargetRow {
            table: table(),
            kind,
            before: before.map(image),
            after: after.map(image),
            at: ChangeAt {
                transaction: BinlogFilePos {
                    file: "b.1".into(),
                    offset: 4,
                },
                index: 0,
            },
        }
    }

    fn keys<R: AsRef<[Bound]>>(list: &[(Arc<TargetTable>, Vec<R>)]) -> Vec<Bound> {
        list.iter()
            .flat_map(|(_, rows)| rows.iter().map(|row| row.as_ref()[0].clone()))
            .collect()
    }

    #[test]
    fn otters_merge_rules_hold_per_key() {
        use ChangeKind::*;
        let rows = [
            row(Insert, None, Some((1, "a"))),
            row(Update, Some((1, "a")), Some((1, "b"))), // I+U → I with the last image
            row(Insert, None, Some((2, "x"))),
            row(Delete, Some((2, "x")), None), // I+D → D (by key: a replay may find the insert applied)
            row(Update, Some((3, "p")), Some((3, "q"))),
            row(Update, Some((3, "q")), Some((3, "r"))), // U+U → U
            row(Delete, Some((4, "z")), None),
            row(Insert, None, Some((4, "again"))), // D+I → I
        ];
        let merged = merge(&rows.iter().collect::<Vec<_>>());
        assert_eq!(keys(&merged.deletes), vec![Bound::Int(2)]);
        let upserts = &merged.upserts[0].1;
        assert_eq!(upserts.len(), 3);
        assert_eq!(upserts[0][1], Bound::Bytes(b"b".to_vec()));
        assert_eq!(upserts[1][1], Bound::Bytes(b"r".to_vec()));
        assert_eq!(upserts[2][1], Bound::Bytes(b"again".to_vec()));
    }

    #[test]
    fn key_steps_keep_every_change_and_split_key_changes() {
        let rows = [
            row(ChangeKind::Update, Some((1, "a")), Some((1, "b"))),
            row(ChangeKind::Insert, None, Some((2, "x"))),
            row(ChangeKind::Update, Some((1, "b")), Some((1, "c"))),
            row(ChangeKind::Delete, Some((2, "x")), None),
            row(ChangeKind::Update, Some((3, "p")), Some((4, "p"))),
        ];
        let refs: Vec<&TargetRow> = rows.iter().collect();
        let text = |image: Option<&[Bound]>| image.map(|image| image[1].clone());
        let summary: Vec<(Bound, Option<Bound>, Option<Bound>)> = key_steps(&refs)
            .iter()
            .map(|step| (step.key[0].clone(), text(step.expected), text(step.last)))
            .collect();
        let bytes = |text: &str| Some(Bound::Bytes(text.as_bytes().to_vec()));
        assert_eq!(
            summary,
            vec![
                (Bound::Int(1), bytes("a"), bytes("b")),
                (Bound::Int(2), None, bytes("x")),
                (Bound::Int(1), bytes("b"), bytes("c")),
                (Bound::Int(2), bytes("x"), None),
                (Bound::Int(3), bytes("p"), None),
                (Bound::Int(4), None, bytes("p")),
            ]
        );
    }

    #[test]
    fn key_changes_are_followed_through_chains() {
        use ChangeKind::*;
        let rows = [
            row(Update, Some((1, "a")), Some((2, "a"))),
            row(Update, Some((2, "a")), Some((3, "a"))),
        ];
        let merged = merge(&rows.iter().collect::<Vec<_>>());
        assert_eq!(keys(&merged.deletes), vec![Bound::Int(1), Bound::Int(2)]);
        assert_eq!(keys(&merged.upserts), vec![Bound::Int(3)]);
    }

    #[test]
    fn partitions_are_stable_for_a_key() {
        let a = row(ChangeKind::Insert, None, Some((7, "a")));
        let b = row(ChangeKind::Delete, Some((7, "b")), None);
        assert_eq!(partition_of(&a, 8), partition_of(&b, 8));
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|id| partition_of(&row(ChangeKind::Insert, None, Some((id, ""))), 8))
            .collect();
        assert!(spread.len() > 4, "keys spread over partitions: {spread:?}");
    }
}
