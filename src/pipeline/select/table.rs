//! Table metadata from TABLE_MAP events: column names, types, signedness, character sets,
//! ENUM/SET labels and the primary key, all from the event's optional metadata
//! (`binlog_row_metadata=FULL`). Also how each column's binlog value is to be decoded.

use super::decode::ColumnDecoder;
use crate::error::{Error, Result};
use crate::model::{Charset, ColumnMeta, TableId, TableMeta};
use mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType;
use std::collections::HashMap;
use std::sync::Arc;

/// The most columns a MySQL or MariaDB table has (MySQL's limit; InnoDB allows 1,017).
const MAX_COLUMNS: usize = 4096;
/// The most members a SET has: one bit each in a 64-bit value.
const MAX_SET_MEMBERS: usize = 64;
/// The most members an ENUM has.
const MAX_ENUM_MEMBERS: usize = 65_535;

/// A table's metadata and the decoder of each column.
#[derive(Debug, Clone)]
pub struct TableDecoder {
    pub meta: Arc<TableMeta>,
    pub columns: Vec<ColumnDecoder>,
}

/// Builds the decoder of the table a TABLE_MAP event describes. `collations` maps collation
/// ids to character sets (read from the source once per connection); `geometry_has_charset`
/// is MariaDB's convention of listing a charset for GEOMETRY columns too.
pub fn table_decoder(
    tme: &TableMapEvent<'_>,
    collations: &HashMap<u16, Charset>,
    geometry_has_charset: bool,
) -> Result<TableDecoder> {
    let id = TableId {
        schema: tme.database_name().into_owned(),
        table: tme.table_name().into_owned(),
    };
    let bad = |problem: String| Error::BadRow {
        context: format!("TABLE_MAP of {id}"),
        problem,
    };
    let count = usize::try_from(tme.columns_count()).unwrap_or(usize::MAX);
    if count == 0 || count > MAX_COLUMNS {
        return Err(bad(format!(
            "it declares {count} columns (a table has 1 to {MAX_COLUMNS})"
        )));
    }
    let mut types = Vec::with_capacity(count);
    for index in 0..count {
        let column_type = tme
            .get_column_type(index)
            .map_err(|error| bad(format!("column {index}: {error}")))?
            .ok_or_else(|| bad(format!("column {index} has no type")))?;
        types.push(column_type);
    }
    let mut names: Vec<Option<String>> = vec![None; count];
    let mut unsigned = vec![false; count];
    let mut charsets: Vec<Option<u16>> = vec![None; count];
    let mut enum_labels: Vec<Vec<String>> = Vec::new();
    let mut set_labels: Vec<Vec<String>> = Vec::new();
    let mut primary_key = Vec::new();
    let character: Vec<usize> = (0..count)
        .filter(|&i| {
            types[i].is_character_type()
                || (geometry_has_charset && types[i] == ColumnType::MYSQL_TYPE_GEOMETRY)
        })
        .collect();
    let enum_or_set: Vec<usize> = (0..count)
        .filter(|&i| types[i].is_enum_or_set_type())
        .collect();
    for field in tme.iter_optional_meta() {
        let field = field.map_err(|error| bad(format!("optional metadata: {error}")))?;
        match field {
            OptionalMetadataField::Signedness(bits) => {
                let numeric = (0..count).filter(|&i| types[i].is_numeric_type());
                for (index, bit) in numeric.zip(bits.iter().by_vals()) {
                    unsigned[index] = bit;
                }
            }
            OptionalMetadataField::ColumnName(column_names) => {
                for (index, name) in column_names.iter_names().enumerate() {
                    let name = name.map_err(|error| bad(format!("column names: {error}")))?;
                    if let Some(slot) = names.get_mut(index) {
                        *slot = Some(name.name().into_owned());
                    }
                }
            }
            OptionalMetadataField::DefaultCharset(default) => {
                for &index in &character {
                    charsets[index] = Some(default.default_charset());
                }
                for non_default in default.iter_non_default() {
                    let non_default =
                        non_default.map_err(|error| bad(format!("charsets: {error}")))?;
                    if let Some(&index) = character.get(non_default.column_index() as usize) {
                        charsets[index] = Some(non_default.charset());
                    }
                }
            }
            OptionalMetadataField::ColumnCharset(per_column) => {
                for (position, charset) in per_column.iter_charsets().enumerate() {
                    let charset = charset.map_err(|error| bad(format!("charsets: {error}")))?;
                    if let Some(&index) = character.get(position) {
                        charsets[index] = Some(charset);
                    }
                }
            }
            OptionalMetadataField::EnumAndSetDefaultCharset(default) => {
                for &index in &enum_or_set {
                    charsets[index] = Some(default.default_charset());
                }
            }
            OptionalMetadataField::EnumStrValue(values) => {
                for labels in values.iter_values() {
                    let labels = labels.map_err(|error| bad(format!("ENUM labels: {error}")))?;
                    enum_labels.push(
                        labels
                            .values()
                            .iter()
                            .map(|label| label.value().into_owned())
                            .collect(),
                    );
                }
            }
            OptionalMetadataField::SetStrValue(values) => {
                for labels in values.iter_values() {
                    let labels = labels.map_err(|error| bad(format!("SET labels: {error}")))?;
                    set_labels.push(
                        labels
                            .values()
                            .iter()
                            .map(|label| label.value().into_owned())
                            .collect(),
                    );
                }
            }
            OptionalMetadataField::SimplePrimaryKey(key) => {
                for index in key.iter_indexes() {
                    primary_key.push(index.map_err(|error| bad(format!("primary key: {error}")))? as usize);
                }
            }
            OptionalMetadataField::PrimaryKeyWithPrefix(keys) => {
                for key in keys.iter_keys() {
                    let key = key.map_err(|error| bad(format!("primary key: {error}")))?;
                    primary_key.push(key.column_index() as usize);
                }
            }
            _ => {}
        }
    }
    if let Some(labels) = set_labels
        .iter()
        .find(|labels| labels.len() > MAX_SET_MEMBERS)
    {
        return Err(bad(format!(
            "a SET column lists {} members (a SET has at most {MAX_SET_MEMBERS})",
            labels.len()
        )));
    }
    if let Some(labels) = enum_labels
        .iter()
        .find(|labels| labels.len() > MAX_ENUM_MEMBERS)
    {
        return Err(bad(format!(
            "an ENUM column lists {} members (an ENUM has at most {MAX_ENUM_MEMBERS})",
            labels.len()
        )));
    }
    let mut enum_labels = enum_labels.into_iter();
    let mut set_labels = set_labels.into_iter();
    let mut columns = Vec::with_capacity(count);
    let mut decoders = Vec::with_capacity(count);
    for (index, column_type) in types.iter().enumerate() {
        let name = names[index].clone().ok_or_else(|| {
            Error::Precheck(format!(
                "the binlog has no column names for {id}: set binlog_row_metadata=FULL on the source"
            ))
        })?;
        let labels = match column_type {
            ColumnType::MYSQL_TYPE_ENUM => enum_labels.next().unwrap_or_default(),
            ColumnType::MYSQL_TYPE_SET => set_labels.next().unwrap_or_default(),
            _ => Vec::new(),
        };
        let charset = charsets[index].map(|collation| {
            collations
                .get(&collation)
                .copied()
                .unwrap_or(Charset::Other(collation))
        });
        columns.push(ColumnMeta {
            name: name.clone(),
            type_name: format!("{column_type:?}")
                .trim_start_matches("MYSQL_TYPE_")
                .to_owned(),
            unsigned: unsigned[index],
        });
        decoders.push(ColumnDecoder {
            name,
            column_type: *column_type,
            metadata: tme.get_column_metadata(index).unwrap_or_default().to_vec(),
            unsigned: unsigned[index],
            charset,
            labels,
        });
    }
    Ok(TableDecoder {
        meta: Arc::new(TableMeta {
            id,
            columns,
            primary_key,
        }),
        columns: decoders,
    })
}
