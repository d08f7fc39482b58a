//! What a verification compares, as SQL each server computes over its own rows: the same
//! expressions on both sides, so that only keys and hashes cross the network until a chunk
//! differs.
//!
//! - Only the pair's mapped columns, in the target's order, under the target's names on
//!   the target and the source's on the source.
//! - Each value as text: character columns as their utf8mb4 bytes (converted when stored in
//!   another character set, so a column in latin1 on one side and utf8mb4 on the other
//!   compares equal when its characters are), binary columns (BINARY, BLOB, BIT, spatial) as
//!   their bytes (HEX when compared value by value), everything else as the server writes it
//!   in a UTC session (numbers, DECIMAL with its scale, dates, TIMESTAMP in UTC).
//! - A row's hash is the first 64 bits of the MD5 of those texts joined (character and
//!   binary values preceded by their length, so that no separator inside a value can shift
//!   one value into the next; TEXT, BLOB and JSON values as their own MD5, so that large
//!   values never make the joined text longer than `max_allowed_packet`, which would make it
//!   NULL) and of which values are NULL; a chunk's is the COUNT and
//!   BIT_XOR of its rows' hashes. Not CRC32: CRC is linear over XOR, so the same change made
//!   to two rows of the same length would cancel out in BIT_XOR; MD5's bits do not.
//!
//! What cannot differ, by construction: collation (values are compared as bytes, not by a
//! collation: `a` and `A` differ even under a case-insensitive collation), trailing spaces
//! of CHAR (both servers strip them alike), character set (converted). What can read as
//! different though equal in meaning: a DECIMAL whose scale differs between the sides
//! (`1.50` and `1.500`), a DATETIME or TIME whose fractional precision differs, FLOAT and
//! DOUBLE text between server kinds, JSON text between MySQL (normalised) and MariaDB (as
//! written). Two different rows share a hash one time in 2^64: the fast path then misses
//! that row; rows compared one by one are compared value by value.

use crate::sql::quote;

/// How a column's value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Characters in utf8mb4 (or utf8mb3, or ASCII: the same bytes): compared as bytes.
    Utf8,
    /// Characters in another character set: converted to utf8mb4, compared as bytes.
    Text,
    /// Bytes: compared as bytes (as HEX value by value).
    Binary,
    /// Numbers, dates and times: as the server writes them.
    Plain,
    /// The same as [`Kind::Utf8`], [`Kind::Text`], [`Kind::Binary`], for a TEXT, BLOB or JSON
    /// column (on either side): hashed as the MD5 of its bytes, so that a row of large values
    /// never makes the joined text longer than `max_allowed_packet` (it would be NULL: no
    /// hash at all).
    Utf8Long,
    TextLong,
    BinaryLong,
}

impl Kind {
    pub fn is_long(self) -> bool {
        matches!(self, Kind::Utf8Long | Kind::TextLong | Kind::BinaryLong)
    }

    /// The long variant of this kind (a number stays as it is).
    pub fn long(self) -> Kind {
        match self {
            Kind::Utf8 | Kind::Utf8Long => Kind::Utf8Long,
            Kind::Text | Kind::TextLong => Kind::TextLong,
            Kind::Binary | Kind::BinaryLong => Kind::BinaryLong,
            Kind::Plain => Kind::Plain,
        }
    }
}

/// The kind of an `information_schema.COLUMNS.DATA_TYPE` of `CHARACTER_SET_NAME`.
pub fn kind_of(data_type: &str, charset: Option<&str>) -> Kind {
    let data_type = data_type.to_ascii_lowercase();
    let kind = short_kind_of(&data_type, charset);
    if data_type.ends_with("text") || data_type.ends_with("blob") || data_type == "json" {
        kind.long()
    } else {
        kind
    }
}

fn short_kind_of(data_type: &str, charset: Option<&str>) -> Kind {
    match data_type {
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        | "json" => match charset.map(str::to_ascii_lowercase).as_deref() {
            Some("utf8mb4" | "utf8mb3" | "utf8" | "ascii") => Kind::Utf8,
            _ => Kind::Text,
        },
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit"
        | "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => Kind::Binary,
        _ => Kind::Plain,
    }
}

/// One side's columns as a verification reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// `schema`.`table`, quoted.
    pub table: String,
    /// The compared columns (mapped, in the target's order) and their kinds.
    pub columns: Vec<(String, Kind)>,
    /// Indexes into `columns` of the key, in key order.
    pub key: Vec<usize>,
}

impl Side {
    pub fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|index| self.columns[*index].0.clone())
            .collect()
    }

    /// The key columns, quoted and comma-separated (what a read selects first and orders by).
    pub fn key_list(&self) -> String {
        self.key
            .iter()
            .map(|index| quote(&self.columns[*index].0))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The compared value of each column, as text.
    pub fn values(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|(name, kind)| value(name, *kind))
            .collect()
    }

    /// The row's hash: an unsigned 64-bit number.
    pub fn row_hash(&self) -> String {
        let mut parts: Vec<String> = Vec::with_capacity(self.columns.len() * 2 + 1);
        for (name, kind) in &self.columns {
            let column = quote(name);
            let bytes = match kind {
                Kind::Plain => {
                    parts.push(column);
                    continue;
                }
                Kind::Utf8 | Kind::Binary | Kind::Utf8Long | Kind::BinaryLong => {
                    format!("CAST({column} AS BINARY)")
                }
                Kind::Text | Kind::TextLong => {
                    format!("CAST(CONVERT({column} USING utf8mb4) AS BINARY)")
                }
            };
            if kind.is_long() {
                // 32 hex digits: no separator inside, never too long
                parts.push(format!("MD5({bytes})"));
            } else {
                parts.push(format!("LENGTH({bytes})"));
                parts.push(bytes);
            }
        }
        let nulls: Vec<String> = self
            .columns
            .iter()
            .map(|(name, _)| format!("ISNULL({})", quote(name)))
            .collect();
        parts.push(format!("CONCAT({})", nulls.join(", ")));
        format!(
            "CAST(CONV(LEFT(MD5(CONCAT_WS('|', {})), 16), 16, 10) AS UNSIGNED)",
            parts.join(", ")
        )
    }
}

/// A column's compared value.
fn value(name: &str, kind: Kind) -> String {
    let column = quote(name);
    match kind {
        Kind::Utf8 | Kind::Utf8Long => format!("CAST({column} AS BINARY)"),
        Kind::Text | Kind::TextLong => format!("CAST(CONVERT({column} USING utf8mb4) AS BINARY)"),
        Kind::Binary | Kind::BinaryLong => format!("HEX({column})"),
        Kind::Plain => format!("CAST({column} AS CHAR)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side() -> Side {
        Side {
            table: "`s`.`t`".into(),
            columns: vec![
                ("id".into(), kind_of("int", None)),
                ("na`me".into(), kind_of("VARCHAR", Some("latin1"))),
                ("data".into(), kind_of("blob", None)),
                ("title".into(), kind_of("text", Some("utf8mb4"))),
            ],
            key: vec![0],
        }
    }

    #[test]
    fn kinds_follow_the_column_types() {
        assert_eq!(kind_of("longtext", Some("utf8mb4")), Kind::Utf8Long);
        assert_eq!(kind_of("varchar", Some("utf8mb4")), Kind::Utf8);
        assert_eq!(kind_of("json", Some("utf8mb4")), Kind::Utf8Long);
        assert_eq!(kind_of("enum", Some("latin1")), Kind::Text);
        assert_eq!(kind_of("varbinary", None), Kind::Binary);
        assert_eq!(kind_of("bit", None), Kind::Binary);
        assert_eq!(kind_of("mediumblob", None), Kind::BinaryLong);
        assert_eq!(kind_of("decimal", None), Kind::Plain);
        assert_eq!(kind_of("timestamp", None), Kind::Plain);
    }

    #[test]
    fn the_row_hash_covers_every_column_quoted_with_nulls_and_text_lengths() {
        let side = side();
        assert_eq!(
            side.row_hash(),
            "CAST(CONV(LEFT(MD5(CONCAT_WS('|', `id`, \
             LENGTH(CAST(CONVERT(`na``me` USING utf8mb4) AS BINARY)), CAST(CONVERT(`na``me` USING utf8mb4) AS BINARY), \
             MD5(CAST(`data` AS BINARY)), MD5(CAST(`title` AS BINARY)), \
             CONCAT(ISNULL(`id`), ISNULL(`na``me`), ISNULL(`data`), ISNULL(`title`)))), 16), 16, 10) AS UNSIGNED)"
        );
        assert_eq!(side.key_list(), "`id`");
        assert_eq!(side.values()[2], "HEX(`data`)");
    }
}
