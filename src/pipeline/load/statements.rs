//! The SQL the load side writes: multi-row upserts and deletes for keyed tables, row-matching
//! statements for tables without a key. Identifiers are always quoted; values always bound.

use super::bind::Bound;
use crate::pipeline::transform::TargetTable;
use mysql_async::Value as Param;

/// Rows per multi-row statement with `columns` values each: at most 200, and never near the
/// 65,535 placeholders a prepared statement may have.
pub fn rows_per_statement(columns: usize) -> usize {
    (60_000 / columns.max(1)).clamp(1, 200)
}

/// Splits `len` rows into runs whose sizes come from a fixed ladder (`max`, `max / 2`, … 1),
/// largest first: a multi-row statement then has one of a few shapes per table, so its
/// prepared form is found in the connection's statement cache instead of being prepared anew.
pub fn statement_chunks(len: usize, max: usize) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut size = max.max(1);
    while start < len {
        while size > 1 && len - start < size {
            size /= 2;
        }
        chunks.push(start..start + size);
        start += size;
    }
    chunks
}

/// `name` as a quoted identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `schema`.`table`
pub fn table_name(table: &TargetTable) -> String {
    format!("{}.{}", quote(&table.schema), quote(&table.table))
}

/// `INSERT … VALUES (…),(…) ON DUPLICATE KEY UPDATE c = VALUES(c), …` for `rows` images.
pub fn upsert<R: AsRef<[Bound]>>(
    table: &TargetTable,
    columns: &[usize],
    rows: &[R],
) -> (String, Vec<Param>) {
    let names: Vec<String> = columns
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    let placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
    let updates: Vec<String> = columns
        .iter()
        .filter(|index| !table.key.contains(index))
        .map(|index| {
            let name = quote(&table.columns[*index]);
            format!("{name} = VALUES({name})")
        })
        .collect();
    let on_duplicate = if updates.is_empty() {
        // every column is in the key: nothing to update, but a duplicate is no error
        let first = quote(&table.columns[table.key[0]]);
        format!("{first} = {first}")
    } else {
        updates.join(", ")
    };
    let sql = format!(
        "INSERT INTO {} ({}) VALUES {} ON DUPLICATE KEY UPDATE {on_duplicate}",
        table_name(table),
        names.join(", "),
        vec![placeholders; rows.len()].join(", ")
    );
    let params = rows
        .iter()
        .flat_map(|row| columns.iter().map(|index| row.as_ref()[*index].param()))
        .collect();
    (sql, params)
}

/// `DELETE FROM … WHERE (k1, k2) IN ((?, ?), …)` for `keys`.
pub fn delete_keys(table: &TargetTable, keys: &[Vec<Bound>]) -> (String, Vec<Param>) {
    let names: Vec<String> = table
        .key
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    let tuple = format!("({})", vec!["?"; names.len()].join(", "));
    let sql = format!(
        "DELETE FROM {} WHERE ({}) IN ({})",
        table_name(table),
        names.join(", "),
        vec![tuple; keys.len()].join(", ")
    );
    let params = keys
        .iter()
        .flat_map(|key| key.iter().map(Bound::param))
        .collect();
    (sql, params)
}

/// `UPDATE … SET <every column> WHERE (key) = (old key)`: a key change as the source made it,
/// so that the target's foreign keys see an update, not a delete.
pub fn update_key(
    table: &TargetTable,
    columns: &[usize],
    old_key: &[Bound],
    after: &[Bound],
) -> (String, Vec<Param>) {
    let sets: Vec<String> = columns
        .iter()
        .map(|index| format!("{} = ?", quote(&table.columns[*index])))
        .collect();
    let keys: Vec<String> = table
        .key
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE ({}) = ({})",
        table_name(table),
        sets.join(", "),
        keys.join(", "),
        vec!["?"; keys.len()].join(", ")
    );
    let mut params: Vec<Param> = columns.iter().map(|index| after[*index].param()).collect();
    params.extend(old_key.iter().map(Bound::param));
    (sql, params)
}

/// `INSERT INTO … (…) VALUES (…)` for a table without a key.
pub fn insert(table: &TargetTable, columns: &[usize], row: &[Bound]) -> (String, Vec<Param>) {
    let names: Vec<String> = columns
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table_name(table),
        names.join(", "),
        vec!["?"; columns.len()].join(", ")
    );
    (
        sql,
        columns.iter().map(|index| row[*index].param()).collect(),
    )
}

/// `… WHERE c1 <=> ? AND … LIMIT 1`: matches one row equal to `row` in every column.
fn whole_row(
    columns: &[usize],
    table: &TargetTable,
    row: &[Bound],
    params: &mut Vec<Param>,
) -> String {
    let conditions: Vec<String> = columns
        .iter()
        .map(|index| {
            params.push(row[*index].param());
            format!("{} <=> ?", quote(&table.columns[*index]))
        })
        .collect();
    format!("WHERE {} LIMIT 1", conditions.join(" AND "))
}

/// `DELETE FROM … WHERE <every column equal> LIMIT 1` for a table without a key.
pub fn delete_row(table: &TargetTable, columns: &[usize], row: &[Bound]) -> (String, Vec<Param>) {
    let mut params = Vec::new();
    let filter = whole_row(columns, table, row, &mut params);
    (
        format!("DELETE FROM {} {filter}", table_name(table)),
        params,
    )
}

/// `UPDATE … SET … WHERE <every column equal to before> LIMIT 1` for a table without a key.
pub fn update_row(
    table: &TargetTable,
    columns: &[usize],
    before: &[Bound],
    after: &[Bound],
) -> (String, Vec<Param>) {
    let mut params = Vec::new();
    let sets: Vec<String> = columns
        .iter()
        .map(|index| {
            params.push(after[*index].param());
            format!("{} = ?", quote(&table.columns[*index]))
        })
        .collect();
    let filter = whole_row(columns, table, before, &mut params);
    (
        format!(
            "UPDATE {} SET {} {filter}",
            table_name(table),
            sets.join(", ")
        ),
        params,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TargetTable {
        TargetTable {
            schema: "shop".into(),
            table: "or`ders".into(),
            columns: vec!["id".into(), "v".into()],
            key: vec![0],
        }
    }

    #[test]
    fn statements_quote_identifiers_and_bind_values() {
        let (sql, params) = upsert(
            &table(),
            &[0, 1],
            &[
                vec![Bound::Int(1), Bound::Null],
                vec![Bound::Int(2), Bound::Null],
            ],
        );
        assert_eq!(
            sql,
            "INSERT INTO `shop`.`or``ders` (`id`, `v`) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"
        );
        assert_eq!(params.len(), 4);
        let (sql, _) = delete_keys(&table(), &[vec![Bound::Int(1)]]);
        assert_eq!(sql, "DELETE FROM `shop`.`or``ders` WHERE (`id`) IN ((?))");
        let (sql, params) = update_row(
            &table(),
            &[0, 1],
            &[Bound::Int(1), Bound::Null],
            &[Bound::Int(1), Bound::Int(5)],
        );
        assert_eq!(
            sql,
            "UPDATE `shop`.`or``ders` SET `id` = ?, `v` = ? WHERE `id` <=> ? AND `v` <=> ? LIMIT 1"
        );
        assert_eq!(params.len(), 4);
    }

    #[test]
    fn rows_are_split_into_a_few_fixed_statement_shapes() {
        let sizes = |len, max| -> Vec<usize> {
            statement_chunks(len, max)
                .iter()
                .map(|chunk| chunk.len())
                .collect()
        };
        assert_eq!(sizes(78, 200), [50, 25, 3]);
        assert_eq!(sizes(450, 200), [200, 200, 50]);
        assert_eq!(sizes(1, 200), [1]);
        assert!(sizes(0, 200).is_empty());
        for len in 0..1000 {
            let chunks = statement_chunks(len, 200);
            assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), len);
            assert!(chunks.windows(2).all(|pair| pair[0].end == pair[1].start));
            assert!(
                chunks
                    .iter()
                    .all(|c| [200, 100, 50, 25, 12, 6, 3, 1].contains(&c.len()))
            );
        }
    }
}
