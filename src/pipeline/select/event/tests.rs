//! Unit tests of `event`.

use super::*;

#[test]
fn queries_are_classified_by_their_first_words() {
    assert_eq!(classify_query(b"BEGIN"), QueryKind::Begin);
    assert_eq!(classify_query(b"COMMIT"), QueryKind::Commit);
    assert_eq!(classify_query(b"XA START X'01',X'',1"), QueryKind::Begin);
    assert_eq!(classify_query(b"ROLLBACK"), QueryKind::Rollback);
    assert_eq!(classify_query(b"ROLLBACK TO sp1"), QueryKind::Statement);
    assert_eq!(classify_query(b"BEGINNING_TABLE"), QueryKind::Statement);
    assert_eq!(
        classify_query(b"ALTER TABLE t ADD c INT"),
        QueryKind::Statement
    );
    assert_eq!(
        classify_query(b" \nalter table \x95\x5c"),
        QueryKind::Statement
    );
}

#[test]
fn mariadb_gtid_events_are_read_from_their_bytes() {
    let mut data = 42u64.to_le_bytes().to_vec();
    data.extend_from_slice(&3u32.to_le_bytes());
    data.push(0x01);
    let event = mariadb_gtid(&data, 7).unwrap();
    assert_eq!(event.to_string(), "GTID 3-7-42 (standalone)");
    assert!(mariadb_gtid(&data[..10], 7).is_none());
}

#[test]
fn short_times_decode_negative_values_with_fractions() {
    // -12:34:56.78 as TIME(2): MySQL's encoding of the packed value
    let encode = |negative: bool, h: i64, m: i64, s: i64, hundredths: i64| -> [u8; 4] {
        let hms = (h << 12) | (m << 6) | s;
        let mut int_part = if negative { -hms } else { hms };
        let mut frac = if negative { -hundredths } else { hundredths };
        if frac < 0 {
            int_part -= 1;
            frac += 0x100;
        }
        let stored = (int_part + 0x80_0000) as u32;
        let [_, a, b, c] = stored.to_be_bytes();
        [a, b, c, frac as u8]
    };
    assert_eq!(
        short_time2(encode(true, 12, 34, 56, 78)),
        mysql_async::Value::Time(true, 0, 12, 34, 56, 780_000)
    );
    assert_eq!(
        short_time2(encode(false, 838, 59, 59, 99)),
        mysql_async::Value::Time(false, 34, 22, 59, 59, 990_000)
    );
    assert_eq!(
        short_time2(encode(true, 1, 0, 0, 0)),
        mysql_async::Value::Time(true, 0, 1, 0, 0, 0)
    );
}

#[test]
fn event_names_are_given_with_their_code() {
    assert_eq!(event_name(0xa5), "QUERY_COMPRESSED (0xa5)");
    assert_eq!(event_name(0xee), "type 0xee");
}
