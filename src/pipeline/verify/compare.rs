//! Comparing what both sides read of a chunk: keys and hashes (which keys to look at
//! again), then the compared values of those keys (what differs, by column).

use crate::pipeline::copy::{KeyText, key_text};
use crate::pipeline::transform::bind::Bound;
use std::collections::{HashMap, HashSet};

/// A key's values and its row's hash.
pub type Hashed = (Vec<Bound>, u64);

/// The keys whose hashes differ between the sides, or that one side lacks.
pub fn differing_keys(source: Vec<Hashed>, target: Vec<Hashed>) -> Vec<Vec<Bound>> {
    let mut on_target: HashMap<KeyText, (Vec<Bound>, u64)> = target
        .into_iter()
        .map(|(key, hash)| (key_text(key.iter()), (key, hash)))
        .collect();
    let mut differing = Vec::new();
    for (key, hash) in source {
        match on_target.remove(&key_text(key.iter())) {
            Some((_, other)) if other == hash => {}
            _ => differing.push(key),
        }
    }
    differing.extend(on_target.into_values().map(|(key, _)| key));
    differing
}

/// How a key compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Equal,
    MissingOnTarget,
    ExtraOnTarget,
    /// These columns differ.
    Different(Vec<String>),
}

impl Found {
    pub fn kind(&self) -> Option<&'static str> {
        match self {
            Found::Equal => None,
            Found::MissingOnTarget => Some("missing_on_target"),
            Found::ExtraOnTarget => Some("extra_on_target"),
            Found::Different(_) => Some("different"),
        }
    }
}

/// Compares a key's values on both sides (None: the side has no row of the key).
pub fn compare(
    source: Option<&[mysql_async::Value]>,
    target: Option<&[mysql_async::Value]>,
    names: &[String],
) -> Found {
    match (source, target) {
        (None, None) => Found::Equal,
        (Some(_), None) => Found::MissingOnTarget,
        (None, Some(_)) => Found::ExtraOnTarget,
        (Some(source), Some(target)) => {
            let differing: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(at, _)| source.get(*at) != target.get(*at))
                .map(|(_, name)| name.clone())
                .collect();
            if differing.is_empty() {
                Found::Equal
            } else {
                Found::Different(differing)
            }
        }
    }
}

/// Splits `keys` into those that changed between the watermarks and the others.
pub fn split_changed(
    keys: Vec<Vec<Bound>>,
    changed: &HashSet<KeyText>,
) -> (Vec<Vec<Bound>>, Vec<Vec<Bound>>) {
    keys.into_iter()
        .partition(|key| changed.contains(&key_text(key.iter())))
}

/// A key's values as an operator reads them: comma-separated.
pub fn display_key(key: &[Bound]) -> String {
    key.iter().map(display).collect::<Vec<_>>().join(", ")
}

fn display(value: &Bound) -> String {
    match value {
        Bound::Null => "NULL".into(),
        Bound::Int(number) => number.to_string(),
        Bound::UInt(number) => number.to_string(),
        Bound::Float(number) => number.to_string(),
        Bound::Double(number) => number.to_string(),
        Bound::Decimal(text) => text.clone(),
        Bound::Bytes(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
            _ => format!(
                "0x{}",
                bytes.iter().map(|b| format!("{b:02X}")).collect::<String>()
            ),
        },
        Bound::DateTime(year, month, day, hour, minute, second, micros) => {
            let mut text =
                format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}");
            if *micros > 0 {
                text.push_str(&format!(".{micros:06}"));
            }
            text
        }
        Bound::Time(negative, days, hours, minutes, seconds, micros) => {
            let hours = u64::from(*days) * 24 + u64::from(*hours);
            let sign = if *negative { "-" } else { "" };
            let mut text = format!("{sign}{hours:02}:{minutes:02}:{seconds:02}");
            if *micros > 0 {
                text.push_str(&format!(".{micros:06}"));
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value;

    #[test]
    fn keys_with_other_hashes_or_on_one_side_only_differ() {
        let source = vec![
            (vec![Bound::Int(1)], 10),
            (vec![Bound::Int(2)], 20),
            (vec![Bound::Int(3)], 30),
        ];
        // the target read a narrow unsigned key as unsigned: the same key
        let target = vec![
            (vec![Bound::UInt(1)], 10),
            (vec![Bound::Int(2)], 21),
            (vec![Bound::Int(4)], 40),
        ];
        let mut differing: Vec<String> = differing_keys(source, target)
            .iter()
            .map(|key| display_key(key))
            .collect();
        differing.sort();
        assert_eq!(differing, ["2", "3", "4"]);
    }

    #[test]
    fn values_name_the_columns_that_differ() {
        let names = ["id".to_owned(), "name".to_owned(), "note".to_owned()];
        let row = |name: &str| {
            vec![
                Value::Bytes(b"1".to_vec()),
                Value::Bytes(name.as_bytes().to_vec()),
                Value::NULL,
            ]
        };
        let (a, b) = (row("a"), row("A"));
        assert_eq!(compare(Some(&a), Some(&a), &names), Found::Equal);
        assert_eq!(
            compare(Some(&a), Some(&b), &names),
            Found::Different(vec!["name".into()])
        );
        assert_eq!(
            compare(Some(&a), None, &names).kind(),
            Some("missing_on_target")
        );
        assert_eq!(
            compare(None, Some(&a), &names).kind(),
            Some("extra_on_target")
        );
    }

    #[test]
    fn keys_display_as_an_operator_writes_them() {
        let key = [
            Bound::Int(-3),
            Bound::Bytes(b"a,b".to_vec()),
            Bound::Bytes(vec![0, 255]),
            Bound::DateTime(2026, 12, 3, 1, 2, 3, 0),
        ];
        assert_eq!(display_key(&key), "-3, a,b, 0x00FF, 2026-12-03 01:02:03");
        let changed: HashSet<KeyText> = [key_text([Bound::Int(-3)].iter())].into();
        let (moved, kept) =
            split_changed(vec![vec![Bound::Int(-3)], vec![Bound::Int(4)]], &changed);
        assert_eq!((moved.len(), kept.len()), (1, 1));
    }
}
