//! Values as the load side binds them to statements, converted from the decoded [`Value`]s:
//! text re-encoded as UTF-8 (the load connection's character set), TIMESTAMP as a UTC
//! datetime (load sessions run with `time_zone='+00:00'`), ENUM and SET by label, BIT as a
//! number, GEOMETRY in MySQL's internal form, which the server takes as it is.

use crate::model::Value;
use chrono::DateTime;
use mysql_async::Value as Param;

/// A value ready to bind; serialisable so that batches can cross the network.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Bound {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Bytes(Vec<u8>),
    /// A DECIMAL as the binlog decoder wrote it (`-12.500`): written unquoted, so that a key
    /// is compared as a DECIMAL, not as a double.
    Decimal(String),
    /// year, month, day, hour, minute, second, microsecond
    DateTime(u16, u8, u8, u8, u8, u8, u32),
    /// negative, days, hours, minutes, seconds, microseconds
    Time(bool, u32, u8, u8, u8, u32),
}

impl Bound {
    /// The statement parameter.
    pub fn param(&self) -> Param {
        match self {
            Bound::Null => Param::NULL,
            Bound::Int(number) => Param::Int(*number),
            Bound::UInt(number) => Param::UInt(*number),
            Bound::Float(number) => Param::Float(*number),
            Bound::Double(number) => Param::Double(*number),
            Bound::Bytes(bytes) => Param::Bytes(bytes.clone()),
            Bound::Decimal(text) => Param::Bytes(text.clone().into_bytes()),
            Bound::DateTime(year, month, day, hour, minute, second, micros) => {
                Param::Date(*year, *month, *day, *hour, *minute, *second, *micros)
            }
            Bound::Time(negative, days, hours, minutes, seconds, micros) => {
                Param::Time(*negative, *days, *hours, *minutes, *seconds, *micros)
            }
        }
    }

    /// Writes the value as an SQL literal, as a load session reads it (`utf8mb4`, backslash
    /// escapes on): text as a quoted string, bytes that are not UTF-8 as `X'…'`, floats in
    /// their shortest exact form, dates and times quoted.
    pub fn write_literal(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match self {
            Bound::Null => write!(out, "NULL"),
            Bound::Int(number) => write!(out, "{number}"),
            Bound::UInt(number) => write!(out, "{number}"),
            // the FLOAT's exact value: a key compared with 1e-1 would never match 0.1f32
            Bound::Float(number) => write!(out, "{:e}", f64::from(*number)),
            Bound::Double(number) => write!(out, "{number:e}"),
            Bound::Bytes(bytes) => {
                match std::str::from_utf8(bytes) {
                    Ok(text) => quote_text(text, out),
                    Err(_) => {
                        out.push_str("X'");
                        for byte in bytes {
                            let _ = write!(out, "{byte:02X}");
                        }
                        out.push('\'');
                    }
                }
                Ok(())
            }
            Bound::Decimal(text) if is_decimal(text) => write!(out, "{text}"),
            Bound::Decimal(text) => {
                quote_text(text, out);
                Ok(())
            }
            Bound::DateTime(year, month, day, 0, 0, 0, 0) => {
                write!(out, "'{year:04}-{month:02}-{day:02}'")
            }
            Bound::DateTime(year, month, day, hour, minute, second, micros) => write!(
                out,
                "'{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}'"
            ),
            Bound::Time(negative, days, hours, minutes, seconds, micros) => write!(
                out,
                "'{}{:02}:{minutes:02}:{seconds:02}.{micros:06}'",
                if *negative { "-" } else { "" },
                days * 24 + u32::from(*hours)
            ),
        };
    }

    /// A key value's text for telling keys apart however the value was read (decoded from
    /// the binlog, or read with the binary protocol, which gives a narrow UNSIGNED column
    /// as a signed number): numbers as digits, text and decimals as their bytes.
    pub fn identity_text(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let _ = match self {
            Bound::Int(number) => write!(out, "{number}"),
            Bound::UInt(number) => write!(out, "{number}"),
            Bound::Bytes(bytes) => out.write_all(bytes),
            Bound::Decimal(text) => out.write_all(text.as_bytes()),
            other => write!(out, "{other:?}"),
        };
        out.push(0);
    }

    /// A stable text for hashing keys into partitions.
    pub fn key_text(&self, out: &mut Vec<u8>) {
        match self {
            // a DECIMAL hashes as it did when it was bound as bytes
            Bound::Bytes(bytes) => out.extend_from_slice(bytes),
            Bound::Decimal(text) => out.extend_from_slice(text.as_bytes()),
            // the Debug text, written in place (the partition of a key must never change)
            other => {
                use std::io::Write as _;
                let _ = write!(out, "{other:?}");
            }
        }
        out.push(0);
    }
}

/// A value read from a server with the binary protocol, to write it elsewhere as it is.
pub fn from_param(value: Param) -> Bound {
    match value {
        Param::NULL => Bound::Null,
        Param::Int(number) => Bound::Int(number),
        Param::UInt(number) => Bound::UInt(number),
        Param::Float(number) => Bound::Float(number),
        Param::Double(number) => Bound::Double(number),
        Param::Bytes(bytes) => Bound::Bytes(bytes),
        Param::Date(year, month, day, hour, minute, second, micros) => {
            Bound::DateTime(year, month, day, hour, minute, second, micros)
        }
        Param::Time(negative, days, hours, minutes, seconds, micros) => {
            Bound::Time(negative, days, hours, minutes, seconds, micros)
        }
    }
}

/// Whether `text` is a plain decimal number (`-`, digits, at most one `.`).
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.')
        && digits.bytes().filter(|byte| *byte == b'.').count() <= 1
        && digits.bytes().any(|byte| byte.is_ascii_digit())
}

/// `text` as a quoted string literal, escaped as `mysql_real_escape_string` does.
fn quote_text(text: &str, out: &mut String) {
    out.reserve(text.len() + 2);
    out.push('\'');
    for char in text.chars() {
        match char {
            '\0' => out.push_str("\\0"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            other => out.push(other),
        }
    }
    out.push('\'');
}

/// Converts a decoded value; fails for what cannot be written as it is.
pub fn bind(value: &Value) -> Result<Bound, String> {
    Ok(match value {
        Value::Null => Bound::Null,
        Value::Int(number) => Bound::Int(*number),
        Value::UInt(number) | Value::Bit { bits: number, .. } => Bound::UInt(*number),
        Value::Float(number) => Bound::Float(*number),
        Value::Double(number) => Bound::Double(*number),
        Value::Decimal(text) => Bound::Decimal(text.clone()),
        Value::Json(text) => Bound::Bytes(text.clone().into_bytes()),
        Value::Text { bytes, charset } => match charset.decode(bytes) {
            Some(text) => Bound::Bytes(text.into_bytes()),
            None => {
                return Err(format!(
                    "text is not valid in its character set {charset:?}"
                ));
            }
        },
        Value::Bytes(bytes) | Value::Geometry(bytes) => Bound::Bytes(bytes.clone()),
        Value::Date { year, month, day } => Bound::DateTime(*year, *month, *day, 0, 0, 0, 0),
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
            ..
        } => Bound::Time(
            *negative,
            hours / 24,
            (hours % 24) as u8,
            *minutes,
            *seconds,
            *micros,
        ),
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
            ..
        } => Bound::DateTime(*year, *month, *day, *hour, *minute, *second, *micros),
        Value::Timestamp {
            seconds: 0,
            micros: 0,
            ..
        } => Bound::DateTime(0, 0, 0, 0, 0, 0, 0),
        Value::Timestamp {
            seconds, micros, ..
        } => {
            let time = DateTime::from_timestamp(*seconds, 0)
                .ok_or_else(|| format!("timestamp {seconds} is out of range"))?;
            let naive = time.naive_utc();
            use chrono::{Datelike, Timelike};
            Bound::DateTime(
                naive.year() as u16,
                naive.month() as u8,
                naive.day() as u8,
                naive.hour() as u8,
                naive.minute() as u8,
                naive.second() as u8,
                *micros,
            )
        }
        Value::Year(year) => Bound::UInt(u64::from(*year)),
        Value::Enum { label, .. } => Bound::Bytes(label.clone().into_bytes()),
        Value::Set { labels, .. } => Bound::Bytes(labels.join(",").into_bytes()),
        Value::JsonPartial(_) => {
            return Err("a partial JSON update cannot be applied yet: set binlog_row_value_options='' on the source".into());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Charset;

    #[test]
    fn literals_are_escaped_exact_and_quoted() {
        let literal = |value: Bound| {
            let mut out = String::new();
            value.write_literal(&mut out);
            out
        };
        assert_eq!(literal(Bound::Null), "NULL");
        assert_eq!(literal(Bound::Int(-5)), "-5");
        assert_eq!(literal(Bound::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(literal(Bound::Double(0.1)), "1e-1");
        assert_eq!(literal(Bound::Double(-1.5e300)), "-1.5e300");
        assert_eq!(literal(Bound::Float(0.1)), "1.0000000149011612e-1");
        assert_eq!(
            literal(Bound::Bytes("it's \\ a \"q\"\n\r\0\u{1a} é".into())),
            "'it\\'s \\\\ a \\\"q\\\"\\n\\r\\0\\Z é'"
        );
        assert_eq!(literal(Bound::Bytes(vec![0xff, 0x00, 0x27])), "X'FF0027'");
        assert_eq!(literal(Bound::Bytes(Vec::new())), "''");
        assert_eq!(literal(Bound::Decimal("-12.500".into())), "-12.500");
        assert_eq!(literal(Bound::Decimal("1e5'".into())), "'1e5\\''");
        let mut decimal = Vec::new();
        Bound::Decimal("-12.500".into()).key_text(&mut decimal);
        let mut bytes = Vec::new();
        Bound::Bytes(b"-12.500".to_vec()).key_text(&mut bytes);
        assert_eq!(decimal, bytes, "a DECIMAL key stays in its partition");
        assert_eq!(
            literal(Bound::DateTime(2026, 1, 2, 0, 0, 0, 0)),
            "'2026-01-02'"
        );
        assert_eq!(
            literal(Bound::DateTime(0, 0, 0, 0, 0, 0, 0)),
            "'0000-00-00'"
        );
        assert_eq!(
            literal(Bound::DateTime(2026, 1, 2, 3, 4, 5, 60)),
            "'2026-01-02 03:04:05.000060'"
        );
        assert_eq!(
            literal(Bound::Time(true, 1, 2, 3, 4, 5)),
            "'-26:03:04.000005'"
        );
        for number in [0.1f64, 1.0 / 3.0, 1e-300, 123456.789, f64::MAX, -0.0] {
            let text = literal(Bound::Double(number));
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                number.to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn values_bind_as_the_target_takes_them() {
        let latin1 = Value::Text {
            bytes: vec![b'c', 0xE9],
            charset: Charset::Latin1,
        };
        assert_eq!(
            bind(&latin1).unwrap(),
            Bound::Bytes("cé".as_bytes().to_vec())
        );
        let time = Value::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
            fsp: 0,
        };
        assert_eq!(bind(&time).unwrap(), Bound::Time(true, 34, 22, 59, 59, 0));
        let stamp = Value::Timestamp {
            seconds: 1_704_135_845,
            micros: 678_000,
            fsp: 3,
        };
        assert_eq!(
            bind(&stamp).unwrap(),
            Bound::DateTime(2024, 1, 1, 19, 4, 5, 678_000)
        );
        let set = Value::Set {
            bits: 5,
            labels: vec!["a".into(), "c".into()],
        };
        assert_eq!(bind(&set).unwrap(), Bound::Bytes(b"a,c".to_vec()));
    }
}
