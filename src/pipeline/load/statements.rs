//! The SQL the load side writes: multi-row upserts and deletes for keyed tables, with their
//! values written as escaped literals; row-by-row statements with bound values for the serial
//! paths and tables without a key. Identifiers are always quoted.

use crate::pipeline::transform::bind::Bound;
use crate::pipeline::transform::{SourceNames, TargetTable};
use mysql_async::Value as Param;

pub use crate::sql::quote;

/// `schema`.`table`
pub fn table_name(table: &TargetTable) -> String {
    format!("{}.{}", quote(&table.schema), quote(&table.table))
}

/// A multi-row statement written as text stays below this many bytes, well under the
/// smallest `max_allowed_packet` in use (1 MiB); a longer row is bound to a prepared statement.
pub const TEXT_STATEMENT_BYTES: usize = 512 << 10;
/// Rows per multi-row statement written as text.
pub const TEXT_STATEMENT_ROWS: usize = 1000;

/// What an upsert does to a row of the same key already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    /// Replace it (the stream: every write carries the whole after-image).
    Replace,
    /// Keep it.
    Keep,
    /// Replace it when the new row's column `column` (an index) is greater, or equal too
    /// when `or_equal`.
    IfNewer { column: usize, or_equal: bool },
}

/// `INSERT INTO t (…) VALUES ` and ` ON DUPLICATE KEY UPDATE c = VALUES(c), …` (as `on`
/// says).
fn upsert_parts(table: &TargetTable, columns: &[usize], on: OnDuplicate) -> (String, String) {
    let names: Vec<String> = columns
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    let mut updated: Vec<usize> = match on {
        OnDuplicate::Keep => Vec::new(),
        _ => columns
            .iter()
            .copied()
            .filter(|index| !table.key.contains(index))
            .collect(),
    };
    let updates: Vec<String> = match on {
        OnDuplicate::IfNewer { column, or_equal } => {
            let compared = quote(&table.columns[column]);
            let newer = format!(
                "VALUES({compared}) {} {compared}",
                if or_equal { ">=" } else { ">" }
            );
            // the compared column last: the others test it before it changes
            updated.retain(|index| *index != column);
            updated.push(column);
            updated
                .iter()
                .map(|index| {
                    let name = quote(&table.columns[*index]);
                    format!("{name} = IF({newer}, VALUES({name}), {name})")
                })
                .collect()
        }
        _ => updated
            .iter()
            .map(|index| {
                let name = quote(&table.columns[*index]);
                format!("{name} = VALUES({name})")
            })
            .collect(),
    };
    let on_duplicate = if updates.is_empty() {
        // nothing to update (every column is in the key, or the row is kept), but a
        // duplicate is no error
        let first = quote(&table.columns[table.key[0]]);
        format!("{first} = {first}")
    } else {
        updates.join(", ")
    };
    (
        format!(
            "INSERT INTO {} ({}) VALUES ",
            table_name(table),
            names.join(", ")
        ),
        format!(" ON DUPLICATE KEY UPDATE {on_duplicate}"),
    )
}

/// `DELETE FROM t WHERE (k1, k2) IN (` and `)`.
fn delete_parts(table: &TargetTable) -> (String, String) {
    let names: Vec<String> = table
        .key
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    (
        format!(
            "DELETE FROM {} WHERE ({}) IN (",
            table_name(table),
            names.join(", ")
        ),
        ")".to_owned(),
    )
}

/// `(?, ?, …)` for `count` values.
fn placeholders(count: usize) -> String {
    format!("({})", vec!["?"; count].join(", "))
}

/// `(v1, v2, …)` with the values written as literals.
pub fn literal_tuple<'v>(values: impl Iterator<Item = &'v Bound>) -> String {
    let mut tuple = String::from("(");
    for (at, value) in values.enumerate() {
        if at > 0 {
            tuple.push_str(", ");
        }
        value.write_literal(&mut tuple);
    }
    tuple.push(')');
    tuple
}

/// `INSERT … VALUES (…),(…) ON DUPLICATE KEY UPDATE c = VALUES(c), …` for `rows` images.
pub fn upsert<R: AsRef<[Bound]>>(
    table: &TargetTable,
    columns: &[usize],
    rows: &[R],
    on: OnDuplicate,
) -> (String, Vec<Param>) {
    let (head, tail) = upsert_parts(table, columns, on);
    let sql = format!(
        "{head}{}{tail}",
        vec![placeholders(columns.len()); rows.len()].join(", ")
    );
    let params = rows
        .iter()
        .flat_map(|row| columns.iter().map(|index| row.as_ref()[*index].param()))
        .collect();
    (sql, params)
}

/// `DELETE FROM … WHERE (k1, k2) IN ((?, ?), …)` for `keys`.
pub fn delete_keys(table: &TargetTable, keys: &[Vec<Bound>]) -> (String, Vec<Param>) {
    let (head, tail) = delete_parts(table);
    let sql = format!(
        "{head}{}{tail}",
        vec![placeholders(table.key.len()); keys.len()].join(", ")
    );
    let params = keys
        .iter()
        .flat_map(|key| key.iter().map(Bound::param))
        .collect();
    (sql, params)
}

/// Upserts with their values written as literals (`tuples` from [`literal_tuple`]), packed
/// into statements of at most [`TEXT_STATEMENT_ROWS`] rows and [`TEXT_STATEMENT_BYTES`]: what a
/// [`Packer`] makes one at a time, all at once (for the tests of the packing).
#[cfg(test)]
pub fn upsert_texts(
    table: &TargetTable,
    columns: &[usize],
    tuples: &[String],
    on: OnDuplicate,
) -> Vec<String> {
    let (head, tail) = upsert_parts(table, columns, on);
    pack(&head, &tail, tuples)
}

/// Deletes by key with the keys written as literals, packed as [`upsert_texts`] does.
pub fn delete_texts(table: &TargetTable, tuples: &[String]) -> Vec<String> {
    let (head, tail) = delete_parts(table);
    pack(&head, &tail, tuples)
}

/// `head` + tuples joined by `, ` + `tail`, as few statements as the limits allow.
fn pack(head: &str, tail: &str, tuples: &[String]) -> Vec<String> {
    let mut packer = Packer::new(head.to_owned(), tail.to_owned());
    let mut statements: Vec<String> = tuples.iter().filter_map(|t| packer.push(t)).collect();
    statements.extend(packer.finish());
    statements
}

/// Multi-row statements made one at a time, so that only one is held: tuples go in, and a
/// statement comes out when the next tuple would pass [`TEXT_STATEMENT_ROWS`] or
/// [`TEXT_STATEMENT_BYTES`].
pub struct Packer {
    head: String,
    tail: String,
    current: String,
    rows: usize,
}

impl Packer {
    fn new(head: String, tail: String) -> Packer {
        Packer {
            head,
            tail,
            current: String::new(),
            rows: 0,
        }
    }

    /// Upserts of `table`'s `columns`, doing `on` to a row already there.
    pub fn upserts(table: &TargetTable, columns: &[usize], on: OnDuplicate) -> Packer {
        let (head, tail) = upsert_parts(table, columns, on);
        Packer::new(head, tail)
    }

    /// Adds `tuple`; returns the statement it did not fit in, if any.
    pub fn push(&mut self, tuple: &str) -> Option<String> {
        let full = self.rows == TEXT_STATEMENT_ROWS
            || self.current.len() + 2 + tuple.len() + self.tail.len() > TEXT_STATEMENT_BYTES;
        let done = (self.rows > 0 && full).then(|| {
            self.current.push_str(&self.tail);
            self.rows = 0;
            std::mem::take(&mut self.current)
        });
        if self.rows == 0 {
            self.current
                .reserve(self.head.len() + self.tail.len() + tuple.len() * 2);
            self.current.push_str(&self.head);
        } else {
            self.current.push_str(", ");
        }
        self.current.push_str(tuple);
        self.rows += 1;
        done
    }

    /// The last statement, if any tuple is in it.
    pub fn finish(mut self) -> Option<String> {
        (self.rows > 0).then(|| {
            self.current.push_str(&self.tail);
            self.current
        })
    }
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

/// `c1 <=> v1 AND c2 <=> v2 …` over `columns`: the row holds exactly this version, as the
/// server compares the literal the upsert would write.
fn same_version(table: &TargetTable, columns: &[usize], image: &[Bound]) -> String {
    let mut out = String::new();
    for (at, index) in columns.iter().enumerate() {
        if at > 0 {
            out.push_str(" AND ");
        }
        out.push_str(&quote(&table.columns[*index]));
        out.push_str(" <=> ");
        image[*index].write_literal(&mut out);
    }
    out
}

/// `(k1, k2) = (v1, v2)` for a key.
fn key_is(table: &TargetTable, key: &[Bound]) -> String {
    let names: Vec<String> = table
        .key
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    format!("({}) = {}", names.join(", "), literal_tuple(key.iter()))
}

/// `c1 = v1, c2 = v2 …` for the columns outside the key (`k = k` when every column is in it).
fn set_all(table: &TargetTable, columns: &[usize], image: &[Bound]) -> String {
    let sets: Vec<String> = columns
        .iter()
        .filter(|index| !table.key.contains(index))
        .map(|index| {
            let mut set = format!("{} = ", quote(&table.columns[*index]));
            image[*index].write_literal(&mut set);
            set
        })
        .collect();
    if sets.is_empty() {
        let first = quote(&table.columns[table.key[0]]);
        format!("{first} = {first}")
    } else {
        sets.join(", ")
    }
}

/// `INSERT INTO t (…) VALUES (…)`: fails on any duplicate key.
pub fn insert_text(table: &TargetTable, columns: &[usize], image: &[Bound]) -> String {
    let names: Vec<String> = columns
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        table_name(table),
        names.join(", "),
        literal_tuple(columns.iter().map(|index| &image[*index]))
    )
}

/// `UPDATE t SET … WHERE key = … [AND <the row is version expected>]`.
pub fn update_text(
    table: &TargetTable,
    columns: &[usize],
    key: &[Bound],
    expected: Option<&[Bound]>,
    image: &[Bound],
) -> String {
    let mut sql = format!(
        "UPDATE {} SET {} WHERE {}",
        table_name(table),
        set_all(table, columns, image),
        key_is(table, key)
    );
    if let Some(expected) = expected {
        sql.push_str(" AND ");
        sql.push_str(&same_version(table, columns, expected));
    }
    sql
}

/// `DELETE FROM t WHERE key = … [AND <the row is version expected>]`.
pub fn delete_text(
    table: &TargetTable,
    columns: &[usize],
    key: &[Bound],
    expected: Option<&[Bound]>,
) -> String {
    let mut sql = format!(
        "DELETE FROM {} WHERE {}",
        table_name(table),
        key_is(table, key)
    );
    if let Some(expected) = expected {
        sql.push_str(" AND ");
        sql.push_str(&same_version(table, columns, expected));
    }
    sql
}

/// `CONCAT_WS(', ', CONCAT('c1=', QUOTE(c1)), …)`: a row as the conflict log shows it.
fn row_text(table: &TargetTable, columns: &[usize]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|index| {
            let name = &table.columns[*index];
            let mut label = String::new();
            Bound::Bytes(format!("{name}=").into_bytes()).write_literal(&mut label);
            format!("CONCAT({label}, QUOTE({}))", quote(name))
        })
        .collect();
    format!("LEFT(CONCAT_WS(', ', {}), 2000)", parts.join(", "))
}

/// `CASE …`: 1 when `image`'s value of `column` is greater than the row's (a NULL is less
/// than any value), 0 when equal, -1 when less.
fn newer_than_row(table: &TargetTable, column: usize, image: &[Bound]) -> String {
    let name = quote(&table.columns[column]);
    let mut value = String::new();
    image[column].write_literal(&mut value);
    format!(
        "CASE WHEN {name} <=> {value} THEN 0 WHEN {name} IS NULL THEN 1 WHEN {value} IS NULL THEN -1 \
         WHEN {value} > {name} THEN 1 ELSE -1 END"
    )
}

/// Locks and reads the target row of `key`: `is_last` (it holds `last` already), how `last`
/// compares on the newer_wins column (0 without one), and the row as text.
pub fn check_text(
    table: &TargetTable,
    columns: &[usize],
    key: &[Bound],
    last: Option<&[Bound]>,
    newer: Option<usize>,
) -> String {
    let is_last = last.map_or("0".to_owned(), |last| {
        format!("({})", same_version(table, columns, last))
    });
    let compare = match (newer, last) {
        (Some(column), Some(last)) => newer_than_row(table, column, last),
        _ => "0".to_owned(),
    };
    format!(
        "SELECT {is_last}, {compare}, {} FROM {} WHERE {} FOR UPDATE",
        row_text(table, columns),
        table_name(table),
        key_is(table, key)
    )
}

/// `WHERE (u1, u2) = (…) AND NOT (key = …)`: the rows other than `key` that hold `image`'s
/// values in the unique key `unique` (column indexes).
fn colliding(table: &TargetTable, unique: &[usize], key: &[Bound], image: &[Bound]) -> String {
    let names: Vec<String> = unique
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    format!(
        "WHERE ({}) = {} AND NOT ({})",
        names.join(", "),
        literal_tuple(unique.iter().map(|index| &image[*index])),
        key_is(table, key)
    )
}

/// Locks and reads the rows that collide with `image` on the unique key `unique`: how
/// `image` compares on the newer_wins column (0 without one), and the rows as text.
pub fn colliding_text(
    table: &TargetTable,
    columns: &[usize],
    unique: &[usize],
    key: &[Bound],
    image: &[Bound],
    newer: Option<usize>,
) -> String {
    let compare = newer.map_or("0".to_owned(), |column| {
        newer_than_row(table, column, image)
    });
    format!(
        "SELECT {compare}, {} FROM {} {} FOR UPDATE",
        row_text(table, columns),
        table_name(table),
        colliding(table, unique, key, image)
    )
}

/// The keys of the rows that collide with `image` on the unique key `unique`.
pub fn colliding_keys(
    table: &TargetTable,
    unique: &[usize],
    key: &[Bound],
    image: &[Bound],
) -> String {
    let keys: Vec<String> = table
        .key
        .iter()
        .map(|index| quote(&table.columns[*index]))
        .collect();
    format!(
        "SELECT {} FROM {} {} FOR UPDATE",
        keys.join(", "),
        table_name(table),
        colliding(table, unique, key, image)
    )
}

/// Deletes the rows that collide with `image` on the unique key `unique`.
pub fn delete_colliding_text(
    table: &TargetTable,
    unique: &[usize],
    key: &[Bound],
    image: &[Bound],
) -> String {
    format!(
        "DELETE FROM {} {}",
        table_name(table),
        colliding(table, unique, key, image)
    )
}

/// `SELECT <columns> FROM <table> WHERE (<key>) = (?, …)` with the names of `names` (a
/// target table's own, or its source's): a row in the target table's column order.
pub fn row_by_key(table: &TargetTable, source: &SourceNames) -> String {
    let columns: Vec<String> = source.columns.iter().map(|name| quote(name)).collect();
    let key: Vec<String> = table
        .key
        .iter()
        .map(|index| quote(&source.columns[*index]))
        .collect();
    format!(
        "SELECT {} FROM {}.{} WHERE ({}) = ({})",
        columns.join(", "),
        quote(&source.schema),
        quote(&source.table),
        key.join(", "),
        vec!["?"; key.len()].join(", ")
    )
}

/// A row image as the conflict log shows it (`c1=v1, c2=v2`).
pub fn image_text(table: &TargetTable, columns: &[usize], image: &[Bound]) -> String {
    let mut out = String::new();
    for (at, index) in columns.iter().enumerate() {
        if at > 0 {
            out.push_str(", ");
        }
        out.push_str(&table.columns[*index]);
        out.push('=');
        image[*index].write_literal(&mut out);
    }
    out
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
            conflict: None,
            source: None,
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
            OnDuplicate::Replace,
        );
        assert_eq!(
            sql,
            "INSERT INTO `shop`.`or``ders` (`id`, `v`) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"
        );
        assert_eq!(params.len(), 4);
        let rows = [vec![Bound::Int(1), Bound::Null]];
        let (kept, _) = upsert(&table(), &[0, 1], &rows, OnDuplicate::Keep);
        assert!(
            kept.ends_with("ON DUPLICATE KEY UPDATE `id` = `id`"),
            "{kept}"
        );
        let (newer, _) = upsert(
            &table(),
            &[0, 1],
            &rows,
            OnDuplicate::IfNewer {
                column: 1,
                or_equal: false,
            },
        );
        assert!(
            newer
                .ends_with("ON DUPLICATE KEY UPDATE `v` = IF(VALUES(`v`) > `v`, VALUES(`v`), `v`)"),
            "{newer}"
        );
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
    fn text_statements_carry_literals_and_respect_their_limits() {
        let tuples: Vec<String> = (0..2500)
            .map(|id| literal_tuple([Bound::Int(id), Bound::Bytes(b"it's".to_vec())].iter()))
            .collect();
        let upserts = upsert_texts(&table(), &[0, 1], &tuples[..2], OnDuplicate::Replace);
        assert_eq!(
            upserts,
            [
                "INSERT INTO `shop`.`or``ders` (`id`, `v`) VALUES (0, 'it\\'s'), (1, 'it\\'s') ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"
            ]
        );
        let keys: Vec<String> = (0..3)
            .map(|id| literal_tuple([Bound::Int(id)].iter()))
            .collect();
        assert_eq!(
            delete_texts(&table(), &keys),
            ["DELETE FROM `shop`.`or``ders` WHERE (`id`) IN ((0), (1), (2))"]
        );
        // by rows
        let statements = upsert_texts(&table(), &[0, 1], &tuples, OnDuplicate::Replace);
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[2].matches("'it").count(), 500);
        // by bytes; a row longer than the limit alone is a statement of its own
        let big = literal_tuple(
            [
                Bound::Int(1),
                Bound::Bytes(vec![b'x'; TEXT_STATEMENT_BYTES / 3]),
            ]
            .iter(),
        );
        let huge = literal_tuple(
            [
                Bound::Int(2),
                Bound::Bytes(vec![b'y'; TEXT_STATEMENT_BYTES]),
            ]
            .iter(),
        );
        let statements = upsert_texts(
            &table(),
            &[0, 1],
            &[big.clone(), big.clone(), huge, big],
            OnDuplicate::Replace,
        );
        assert_eq!(statements.len(), 3);
        assert!(
            statements[..1]
                .iter()
                .all(|sql| sql.len() <= TEXT_STATEMENT_BYTES)
        );
        assert!(statements[1].len() > TEXT_STATEMENT_BYTES);
        assert!(statements[2].len() <= TEXT_STATEMENT_BYTES);
    }
}
