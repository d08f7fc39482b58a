//! Decoding one binlog column value into a typed [`Value`], using the column's type, its
//! TABLE_MAP metadata bytes, signedness, character set and ENUM/SET labels.
//!
//! mysql_common parses the bytes; this module gives them their meaning: unsigned integers by
//! the column's flag (not by the variant mysql_common chose), temporal precision, text versus
//! binary by character set, ENUM and SET labels, BIT as a number, MySQL JSON as text.

use crate::error::{Error, Result};
use crate::model::{Charset, JsonOperation, Value};
use mysql_async::Value as SqlValue;
use mysql_async::binlog::jsondiff::JsonDiffOperation;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;

/// The collation id of the `binary` character set.
const BINARY_COLLATION: u16 = 63;

/// How to decode one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDecoder {
    pub name: String,
    /// The real type (ENUM and SET resolved from their STRING wrapping).
    pub column_type: ColumnType,
    /// The TABLE_MAP metadata bytes of the column.
    pub metadata: Vec<u8>,
    pub unsigned: bool,
    /// The character set of a character, ENUM or SET column (None for binary collations and
    /// non-character columns).
    pub charset: Option<Charset>,
    /// ENUM or SET labels, in definition order.
    pub labels: Vec<String>,
}

impl ColumnDecoder {
    /// The fractional-seconds precision of a temporal column.
    fn fsp(&self) -> u8 {
        self.metadata.first().copied().unwrap_or(0).min(6)
    }

    /// The byte length of a CHAR/BINARY column, from its TABLE_MAP metadata.
    fn fixed_length(&self) -> usize {
        let (byte0, byte1) = (
            usize::from(self.metadata.first().copied().unwrap_or(0)),
            usize::from(self.metadata.get(1).copied().unwrap_or(0)),
        );
        if byte0 & 0x30 != 0x30 {
            byte1 | (((byte0 & 0x30) ^ 0x30) << 4)
        } else {
            byte1
        }
    }

    fn bad(&self, found: &dyn std::fmt::Debug) -> Error {
        Error::BadRow {
            context: format!("column {} ({:?})", self.name, self.column_type),
            problem: format!("cannot decode {found:?}"),
        }
    }

    /// Decodes one value of this column.
    pub fn decode(&self, value: &BinlogValue<'_>) -> Result<Value> {
        use ColumnType::*;
        let plain = match value {
            BinlogValue::Value(plain) => plain,
            BinlogValue::Jsonb(json) => {
                let json =
                    serde_json::Value::try_from(json.clone()).map_err(|error| self.bad(&error))?;
                return Ok(Value::Json(json.to_string()));
            }
            BinlogValue::JsonDiff(diffs) => {
                let mut operations = Vec::with_capacity(diffs.len());
                for diff in diffs {
                    let value = match diff.value() {
                        Some(json) => Some(
                            serde_json::Value::try_from(json.clone())
                                .map_err(|error| self.bad(&error))?
                                .to_string(),
                        ),
                        None => None,
                    };
                    operations.push(JsonOperation {
                        operation: match diff.operation() {
                            JsonDiffOperation::REPLACE => "replace",
                            JsonDiffOperation::INSERT => "insert",
                            JsonDiffOperation::REMOVE => "remove",
                        }
                        .to_owned(),
                        path: diff.path_str().into_owned(),
                        value,
                    });
                }
                return Ok(Value::JsonPartial(operations));
            }
        };
        if matches!(plain, SqlValue::NULL) {
            return Ok(Value::Null);
        }
        match (self.column_type, plain) {
            (
                MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
                | MYSQL_TYPE_LONGLONG,
                number,
            ) => self.integer(number),
            (MYSQL_TYPE_FLOAT, SqlValue::Float(number)) => Ok(Value::Float(*number)),
            (MYSQL_TYPE_DOUBLE, SqlValue::Double(number)) => Ok(Value::Double(*number)),
            (MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL, SqlValue::Bytes(digits)) => {
                Ok(Value::Decimal(String::from_utf8_lossy(digits).into_owned()))
            }
            (MYSQL_TYPE_YEAR, SqlValue::Bytes(year)) => {
                let year: u16 = std::str::from_utf8(year)
                    .ok()
                    .and_then(|y| y.parse().ok())
                    .ok_or_else(|| self.bad(plain))?;
                // YEAR stores 0 for 0000 and year - 1900 otherwise; 1900 itself is not a YEAR.
                Ok(Value::Year(if year == 1900 { 0 } else { year }))
            }
            (MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE, SqlValue::Date(year, month, day, ..)) => {
                Ok(Value::Date {
                    year: *year,
                    month: *month,
                    day: *day,
                })
            }
            (
                MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2,
                SqlValue::Date(year, month, day, hour, minute, second, micros),
            ) => Ok(Value::DateTime {
                year: *year,
                month: *month,
                day: *day,
                hour: *hour,
                minute: *minute,
                second: *second,
                micros: *micros,
                fsp: if self.column_type == MYSQL_TYPE_DATETIME {
                    0
                } else {
                    self.fsp()
                },
            }),
            (
                MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2,
                SqlValue::Time(negative, days, hours, minutes, seconds, micros),
            ) => Ok(Value::Time {
                negative: *negative,
                hours: days * 24 + u32::from(*hours),
                minutes: *minutes,
                seconds: *seconds,
                micros: *micros,
                fsp: if self.column_type == MYSQL_TYPE_TIME {
                    0
                } else {
                    self.fsp()
                },
            }),
            (MYSQL_TYPE_TIMESTAMP, SqlValue::Int(seconds)) => Ok(Value::Timestamp {
                seconds: *seconds,
                micros: 0,
                fsp: 0,
            }),
            (MYSQL_TYPE_TIMESTAMP2, SqlValue::Bytes(text)) => {
                let text = std::str::from_utf8(text).map_err(|_| self.bad(plain))?;
                let (seconds, micros) = text.split_once('.').unwrap_or((text, "0"));
                Ok(Value::Timestamp {
                    seconds: seconds.parse().map_err(|_| self.bad(plain))?,
                    micros: micros.parse().map_err(|_| self.bad(plain))?,
                    fsp: self.fsp(),
                })
            }
            (MYSQL_TYPE_BIT | MYSQL_TYPE_SET, SqlValue::Bytes(bytes)) if bytes.len() > 8 => {
                Err(self.bad(plain))
            }
            (MYSQL_TYPE_BIT, SqlValue::Bytes(bytes)) => {
                let width = u16::from(self.metadata.get(1).copied().unwrap_or(0)) * 8
                    + u16::from(self.metadata.first().copied().unwrap_or(0));
                let bits = bytes
                    .iter()
                    .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
                Ok(Value::Bit { bits, width })
            }
            (MYSQL_TYPE_ENUM, SqlValue::Int(index)) => {
                let index = u16::try_from(*index).map_err(|_| self.bad(plain))?;
                let label = match index {
                    0 => String::new(),
                    _ => self
                        .labels
                        .get(usize::from(index) - 1)
                        .cloned()
                        .ok_or_else(|| self.bad(plain))?,
                };
                Ok(Value::Enum { index, label })
            }
            (MYSQL_TYPE_SET, SqlValue::Bytes(bytes)) => {
                let bits = bytes
                    .iter()
                    .rev()
                    .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
                let labels = self
                    .labels
                    .iter()
                    .take(64)
                    .enumerate()
                    .filter(|(index, _)| bits & (1u64 << index) != 0)
                    .map(|(_, label)| label.clone())
                    .collect();
                Ok(Value::Set { bits, labels })
            }
            (MYSQL_TYPE_GEOMETRY, SqlValue::Bytes(bytes)) => Ok(Value::Geometry(bytes.clone())),
            (MYSQL_TYPE_JSON, SqlValue::Bytes(bytes)) => {
                Ok(Value::Json(String::from_utf8_lossy(bytes).into_owned()))
            }
            (
                MYSQL_TYPE_STRING
                | MYSQL_TYPE_VARCHAR
                | MYSQL_TYPE_VAR_STRING
                | MYSQL_TYPE_BLOB
                | MYSQL_TYPE_TINY_BLOB
                | MYSQL_TYPE_MEDIUM_BLOB
                | MYSQL_TYPE_LONG_BLOB,
                SqlValue::Bytes(bytes),
            ) => Ok(match self.charset {
                // BINARY(n) is logged without its trailing zero bytes; SELECT pads them back.
                Some(Charset::Other(BINARY_COLLATION)) | None
                    if self.column_type == MYSQL_TYPE_STRING =>
                {
                    let mut padded = bytes.clone();
                    padded.resize(padded.len().max(self.fixed_length()), 0);
                    Value::Bytes(padded)
                }
                Some(Charset::Other(BINARY_COLLATION)) | None => Value::Bytes(bytes.clone()),
                Some(charset) => Value::Text {
                    bytes: bytes.clone(),
                    charset,
                },
            }),
            _ => Err(self.bad(plain)),
        }
    }

    fn integer(&self, value: &SqlValue) -> Result<Value> {
        match (value, self.unsigned) {
            // mysql_common does not sign-extend MEDIUMINT: 0x800000 and up are negative.
            (SqlValue::Int(number), false)
                if self.column_type == ColumnType::MYSQL_TYPE_INT24 && *number > 0x7F_FFFF =>
            {
                Ok(Value::Int(number - 0x100_0000))
            }
            (SqlValue::Int(number), false) => Ok(Value::Int(*number)),
            (SqlValue::UInt(number), false) => i64::try_from(*number)
                .map(Value::Int)
                .map_err(|_| self.bad(value)),
            // mysql_common returns unsigned values below 2^63 as Int: the flag decides.
            (SqlValue::Int(number), true) => {
                let width = match self.column_type {
                    ColumnType::MYSQL_TYPE_TINY => 8,
                    ColumnType::MYSQL_TYPE_SHORT => 16,
                    ColumnType::MYSQL_TYPE_INT24 => 24,
                    ColumnType::MYSQL_TYPE_LONG => 32,
                    _ => 64,
                };
                let unsigned = if width == 64 {
                    *number as u64
                } else {
                    (*number as u64) & ((1u64 << width) - 1)
                };
                Ok(Value::UInt(unsigned))
            }
            (SqlValue::UInt(number), true) => Ok(Value::UInt(*number)),
            _ => Err(self.bad(value)),
        }
    }
}

/// Maps collation ids to character sets, from `information_schema.COLLATIONS` rows.
pub fn collation_map(rows: Vec<(u16, String)>) -> std::collections::HashMap<u16, Charset> {
    rows.into_iter()
        .map(|(id, charset)| {
            let charset = if id == BINARY_COLLATION {
                Charset::Other(BINARY_COLLATION)
            } else {
                Charset::from_name(&charset, id)
            };
            (id, charset)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(column_type: ColumnType, unsigned: bool) -> ColumnDecoder {
        ColumnDecoder {
            name: "c".into(),
            column_type,
            metadata: vec![6, 0],
            unsigned,
            charset: Some(Charset::Utf8mb4),
            labels: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    fn plain(value: SqlValue) -> BinlogValue<'static> {
        BinlogValue::Value(value)
    }

    #[test]
    fn unsigned_integers_follow_the_column_flag() {
        let bigint = column(ColumnType::MYSQL_TYPE_LONGLONG, true);
        assert_eq!(
            bigint.decode(&plain(SqlValue::Int(-1))).unwrap(),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            bigint.decode(&plain(SqlValue::Int(5))).unwrap(),
            Value::UInt(5)
        );
        let tiny = column(ColumnType::MYSQL_TYPE_TINY, true);
        assert_eq!(
            tiny.decode(&plain(SqlValue::Int(255))).unwrap(),
            Value::UInt(255)
        );
        let medium = column(ColumnType::MYSQL_TYPE_INT24, false);
        assert_eq!(
            medium.decode(&plain(SqlValue::Int(0x80_0000))).unwrap(),
            Value::Int(-8_388_608)
        );
        assert_eq!(
            medium.decode(&plain(SqlValue::Int(0x7F_FFFF))).unwrap(),
            Value::Int(8_388_607)
        );
        let signed = column(ColumnType::MYSQL_TYPE_LONGLONG, false);
        assert_eq!(
            signed.decode(&plain(SqlValue::Int(i64::MIN))).unwrap(),
            Value::Int(i64::MIN)
        );
    }

    #[test]
    fn enum_and_set_take_their_labels() {
        let enumeration = column(ColumnType::MYSQL_TYPE_ENUM, false);
        assert_eq!(
            enumeration.decode(&plain(SqlValue::Int(2))).unwrap(),
            Value::Enum {
                index: 2,
                label: "b".into()
            }
        );
        let set = column(ColumnType::MYSQL_TYPE_SET, false);
        let decoded = set.decode(&plain(SqlValue::Bytes(vec![0b101]))).unwrap();
        assert_eq!(decoded.to_string(), "a,c");
    }

    #[test]
    fn a_value_of_the_wrong_shape_names_the_column() {
        let date = column(ColumnType::MYSQL_TYPE_DATE, false);
        let error = date.decode(&plain(SqlValue::Int(3))).unwrap_err();
        assert!(
            error.to_string().starts_with("column c (MYSQL_TYPE_DATE)"),
            "{error}"
        );
    }

    #[test]
    fn binary_collations_give_bytes_and_year_zero_is_kept() {
        let mut blob = column(ColumnType::MYSQL_TYPE_BLOB, false);
        blob.charset = Some(Charset::Other(BINARY_COLLATION));
        assert_eq!(
            blob.decode(&plain(SqlValue::Bytes(vec![0, 1]))).unwrap(),
            Value::Bytes(vec![0, 1])
        );
        let year = column(ColumnType::MYSQL_TYPE_YEAR, false);
        assert_eq!(
            year.decode(&plain(SqlValue::Bytes(b"1900".to_vec())))
                .unwrap(),
            Value::Year(0)
        );
    }
}
