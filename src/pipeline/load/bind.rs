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
            Bound::DateTime(year, month, day, hour, minute, second, micros) => {
                Param::Date(*year, *month, *day, *hour, *minute, *second, *micros)
            }
            Bound::Time(negative, days, hours, minutes, seconds, micros) => {
                Param::Time(*negative, *days, *hours, *minutes, *seconds, *micros)
            }
        }
    }

    /// A stable text for hashing keys into partitions.
    pub fn key_text(&self, out: &mut Vec<u8>) {
        match self {
            Bound::Bytes(bytes) => out.extend_from_slice(bytes),
            // the Debug text, written in place (the partition of a key must never change)
            other => {
                use std::io::Write as _;
                let _ = write!(out, "{other:?}");
            }
        }
        out.push(0);
    }
}

/// Converts a decoded value; fails for what cannot be written as it is.
pub fn bind(value: &Value) -> Result<Bound, String> {
    Ok(match value {
        Value::Null => Bound::Null,
        Value::Int(number) => Bound::Int(*number),
        Value::UInt(number) | Value::Bit { bits: number, .. } => Bound::UInt(*number),
        Value::Float(number) => Bound::Float(*number),
        Value::Double(number) => Bound::Double(*number),
        Value::Decimal(text) | Value::Json(text) => Bound::Bytes(text.clone().into_bytes()),
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
