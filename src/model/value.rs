//! Typed column values decoded from the binlog, exact: integers over their whole signed and
//! unsigned range, decimals as their digits, text with its character set (bytes preserved),
//! temporal values with their fractional precision. `Display` prints a value as `SELECT`
//! shows it (with `time_zone='+00:00'` for TIMESTAMP), which is what `ottr binlog` prints.

use chrono::DateTime;
use std::fmt;

/// The character set of a text value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Charset {
    Utf8mb4,
    Utf8mb3,
    /// MySQL's latin1, which is Windows-1252.
    Latin1,
    Gbk,
    Ascii,
    /// Any other character set, by collation id; converted only when it is valid UTF-8.
    Other(u16),
}

impl Charset {
    /// The charset of a character set name as `information_schema.COLLATIONS` gives it.
    pub fn from_name(name: &str, collation: u16) -> Charset {
        match name {
            "utf8mb4" => Charset::Utf8mb4,
            "utf8mb3" | "utf8" => Charset::Utf8mb3,
            "latin1" => Charset::Latin1,
            "gbk" => Charset::Gbk,
            "ascii" => Charset::Ascii,
            _ => Charset::Other(collation),
        }
    }

    /// Decodes `bytes` to UTF-8; None when they are not valid in this character set.
    pub fn decode(self, bytes: &[u8]) -> Option<String> {
        let encoding = match self {
            Charset::Utf8mb4 | Charset::Utf8mb3 | Charset::Ascii | Charset::Other(_) => {
                return std::str::from_utf8(bytes).ok().map(str::to_owned);
            }
            Charset::Latin1 => encoding_rs::WINDOWS_1252,
            Charset::Gbk => encoding_rs::GBK,
        };
        let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
        (!had_errors).then(|| text.into_owned())
    }
}

/// One column value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    Null,
    /// TINYINT … BIGINT, signed.
    Int(i64),
    /// TINYINT … BIGINT UNSIGNED.
    UInt(u64),
    Float(f32),
    Double(f64),
    /// DECIMAL, as every digit SELECT shows.
    Decimal(String),
    /// CHAR, VARCHAR, TEXT (and MariaDB's JSON): the bytes as stored, and their charset.
    Text {
        bytes: Vec<u8>,
        charset: Charset,
    },
    /// BINARY, VARBINARY, BLOB.
    Bytes(Vec<u8>),
    /// DATE; zero parts are kept (`0000-00-00`).
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// TIME, possibly negative, hours up to 838.
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
        fsp: u8,
    },
    /// DATETIME(fsp).
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
        fsp: u8,
    },
    /// TIMESTAMP(fsp): seconds since the Unix epoch in UTC; 0 is the zero timestamp.
    Timestamp {
        seconds: i64,
        micros: u32,
        fsp: u8,
    },
    /// YEAR; 0 is `0000`.
    Year(u16),
    /// ENUM: the 1-based index (0 for the empty error value) and its label.
    Enum {
        index: u16,
        label: String,
    },
    /// SET: the bitmask and the labels of its members.
    Set {
        bits: u64,
        labels: Vec<String>,
    },
    /// BIT(width), as an unsigned number.
    Bit {
        bits: u64,
        width: u16,
    },
    /// MySQL's binary JSON, rendered as JSON text.
    Json(String),
    /// MySQL's partial JSON update: the operations on the before-image's document.
    JsonPartial(Vec<JsonOperation>),
    /// GEOMETRY in MySQL's internal form (SRID + WKB).
    Geometry(Vec<u8>),
}

/// One operation of a partial JSON update.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JsonOperation {
    /// `replace`, `insert` or `remove`.
    pub operation: String,
    /// The JSON path, e.g. `$.a[2]`.
    pub path: String,
    /// The new value as JSON text (None for remove).
    pub value: Option<String>,
}

impl Value {
    /// An approximate size in bytes, for batch byte budgets.
    pub fn size(&self) -> usize {
        match self {
            Value::Text { bytes, .. } | Value::Bytes(bytes) | Value::Geometry(bytes) => {
                bytes.len() + 8
            }
            Value::Decimal(text) | Value::Json(text) => text.len() + 8,
            Value::Enum { label, .. } => label.len() + 8,
            Value::Set { labels, .. } => labels.iter().map(|l| l.len() + 1).sum::<usize>() + 16,
            Value::JsonPartial(ops) => ops
                .iter()
                .map(|op| op.path.len() + op.value.as_ref().map_or(0, String::len) + 16)
                .sum(),
            _ => 16,
        }
    }
}

fn write_fraction(f: &mut fmt::Formatter<'_>, micros: u32, fsp: u8) -> fmt::Result {
    if fsp == 0 {
        return Ok(());
    }
    let digits = format!("{micros:06}");
    write!(f, ".{}", &digits[..usize::from(fsp.min(6))])
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("0x")?;
    for byte in bytes {
        write!(f, "{byte:02X}")?;
    }
    Ok(())
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(number) => number.fmt(f),
            Value::UInt(number) => number.fmt(f),
            Value::Float(number) => number.fmt(f),
            Value::Double(number) => number.fmt(f),
            Value::Decimal(digits) => f.write_str(digits),
            Value::Text { bytes, charset } => match charset.decode(bytes) {
                Some(text) => f.write_str(&text),
                None => write_hex(f, bytes),
            },
            Value::Bytes(bytes) | Value::Geometry(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) if !text.chars().any(char::is_control) => f.write_str(text),
                _ => write_hex(f, bytes),
            },
            Value::Date { year, month, day } => write!(f, "{year:04}-{month:02}-{day:02}"),
            Value::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
                fsp,
            } => {
                let sign = if *negative { "-" } else { "" };
                write!(f, "{sign}{hours:02}:{minutes:02}:{seconds:02}")?;
                write_fraction(f, *micros, *fsp)
            }
            Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
                fsp,
            } => {
                write!(
                    f,
                    "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"
                )?;
                write_fraction(f, *micros, *fsp)
            }
            Value::Timestamp {
                seconds,
                micros,
                fsp,
            } => {
                if *seconds == 0 && *micros == 0 {
                    f.write_str("0000-00-00 00:00:00")?;
                } else {
                    let time = DateTime::from_timestamp(*seconds, 0).ok_or(fmt::Error)?;
                    write!(f, "{}", time.format("%Y-%m-%d %H:%M:%S"))?;
                }
                write_fraction(f, *micros, *fsp)
            }
            Value::Year(year) => write!(f, "{year:04}"),
            Value::Enum { label, .. } => f.write_str(label),
            Value::Set { labels, .. } => f.write_str(&labels.join(",")),
            Value::Bit { bits, .. } => write!(f, "b'{bits:b}'"),
            Value::Json(text) => f.write_str(text),
            Value::JsonPartial(operations) => {
                for (index, op) in operations.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    match &op.value {
                        Some(value) => write!(f, "{}({}, {value})", op.operation, op.path)?,
                        None => write!(f, "{}({})", op.operation, op.path)?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_values_print_with_their_precision() {
        let datetime = Value::DateTime {
            year: 2026,
            month: 11,
            day: 22,
            hour: 1,
            minute: 2,
            second: 3,
            micros: 456_789,
            fsp: 6,
        };
        assert_eq!(datetime.to_string(), "2026-11-22 01:02:03.456789");
        let datetime3 = Value::DateTime {
            year: 2026,
            month: 11,
            day: 22,
            hour: 1,
            minute: 2,
            second: 3,
            micros: 456_000,
            fsp: 3,
        };
        assert_eq!(datetime3.to_string(), "2026-11-22 01:02:03.456");
        let time = Value::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
            fsp: 6,
        };
        assert_eq!(time.to_string(), "-838:59:59.000000");
        let zero = Value::Timestamp {
            seconds: 0,
            micros: 0,
            fsp: 0,
        };
        assert_eq!(zero.to_string(), "0000-00-00 00:00:00");
        let stamp = Value::Timestamp {
            seconds: 1_704_135_845,
            micros: 678_000,
            fsp: 3,
        };
        assert_eq!(stamp.to_string(), "2024-01-01 19:04:05.678");
        assert_eq!(Value::Year(0).to_string(), "0000");
    }

    #[test]
    fn text_converts_from_its_charset_and_keeps_its_bytes() {
        let gbk = Value::Text {
            bytes: vec![0xD6, 0xD0, 0xCE, 0xC4],
            charset: Charset::Gbk,
        };
        assert_eq!(gbk.to_string(), "中文");
        let latin1 = Value::Text {
            bytes: vec![b'c', 0xE9, 0x80],
            charset: Charset::Latin1,
        };
        assert_eq!(latin1.to_string(), "cé€");
        let broken = Value::Text {
            bytes: vec![0xFF],
            charset: Charset::Utf8mb4,
        };
        assert_eq!(broken.to_string(), "0xFF");
    }
}
