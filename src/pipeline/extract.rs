//! Extract: which table pair selects a source table, and which of its columns travel under
//! which target names. Pure: no IO.
//!
//! The first pair (in `table_pair` id order) whose schema and table patterns match selects a
//! table; system schemas (`ottr_sys`, `mysql`, …) are never selected. Column pairs either
//! include columns (optionally renamed) or exclude them; the primary key must stay.

use crate::config::{ColumnSelection, TablePair};
use crate::model::TableId;

/// The pair that selects `table`, if any.
pub fn pair_for<'a>(pairs: &'a [TablePair], table: &TableId) -> Option<&'a TablePair> {
    pairs
        .iter()
        .find(|pair| pair.matches(&table.schema, &table.table))
}

/// The source columns that travel, by index, with their target names. Fails naming the
/// column when a key column would be left out.
pub fn kept_columns(
    pair: &TablePair,
    columns: &[String],
    key: &[usize],
) -> Result<Vec<(usize, String)>, String> {
    let kept: Vec<(usize, String)> = match &pair.columns {
        ColumnSelection::All => columns.iter().cloned().enumerate().collect(),
        ColumnSelection::Include(included) => {
            let mut kept = Vec::new();
            for (name, target) in included {
                let index = columns
                    .iter()
                    .position(|column| column == name)
                    .ok_or_else(|| {
                        format!("included column {name} does not exist in the source table")
                    })?;
                kept.push((index, target.clone().unwrap_or_else(|| name.clone())));
            }
            kept.sort_by_key(|(index, _)| *index);
            kept
        }
        ColumnSelection::Exclude(excluded) => columns
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, name)| !excluded.contains(name))
            .collect(),
    };
    for index in key {
        if !kept.iter().any(|(kept_index, _)| kept_index == index) {
            return Err(format!(
                "column {} is part of the primary key and must be synced",
                columns.get(*index).map_or("?", String::as_str)
            ));
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamePattern;
    use crate::model::TablePairId;

    fn pair(schema: &str, table: &str, columns: ColumnSelection) -> TablePair {
        TablePair {
            id: TablePairId(1),
            schema: NamePattern::parse(schema).unwrap(),
            table: NamePattern::parse(table).unwrap(),
            target_schema: None,
            target_table: None,
            columns,
            conflict: None,
        }
    }

    fn id(schema: &str, table: &str) -> TableId {
        TableId {
            schema: schema.into(),
            table: table.into(),
        }
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_first_matching_pair_selects_and_system_schemas_never() {
        let pairs = vec![
            pair("shop", "order_.*", ColumnSelection::All),
            pair(".*", ".*", ColumnSelection::All),
        ];
        assert_eq!(
            pair_for(&pairs, &id("shop", "order_1"))
                .unwrap()
                .table
                .as_str(),
            "order_.*"
        );
        assert_eq!(
            pair_for(&pairs, &id("crm", "customers"))
                .unwrap()
                .table
                .as_str(),
            ".*"
        );
        assert!(pair_for(&pairs, &id("ottr_sys", "applied")).is_none());
        assert!(pair_for(&pairs, &id("mysql", "user")).is_none());
    }

    #[test]
    fn include_renames_and_exclude_drops_columns() {
        let columns = names(&["id", "amount", "secret"]);
        let include = pair(
            "s",
            "t",
            ColumnSelection::Include(vec![
                ("amount".into(), Some("total".into())),
                ("id".into(), None),
            ]),
        );
        assert_eq!(
            kept_columns(&include, &columns, &[0]).unwrap(),
            vec![(0, "id".into()), (1, "total".into())]
        );
        let exclude = pair("s", "t", ColumnSelection::Exclude(vec!["secret".into()]));
        assert_eq!(
            kept_columns(&exclude, &columns, &[0]).unwrap(),
            vec![(0, "id".into()), (1, "amount".into())]
        );
    }

    #[test]
    fn the_key_must_travel_and_included_columns_must_exist() {
        let columns = names(&["id", "amount"]);
        let without_key = pair("s", "t", ColumnSelection::Exclude(vec!["id".into()]));
        assert_eq!(
            kept_columns(&without_key, &columns, &[0]).unwrap_err(),
            "column id is part of the primary key and must be synced"
        );
        let missing = pair(
            "s",
            "t",
            ColumnSelection::Include(vec![("id".into(), None), ("nope".into(), None)]),
        );
        assert!(
            kept_columns(&missing, &columns, &[0])
                .unwrap_err()
                .contains("nope")
        );
    }
}
