//! Property tests: real binlog events (a MariaDB 10.11 binlog with a table of every column
//! type, rows events, DDL under GBK, ANSI_QUOTES and NO_BACKSLASH_ESCAPES and a time zone,
//! in `fixtures/`) are mutated byte by byte, cut short and grown, and fed in order through
//! the same path as a stream (mysql_common's reader, then [`EventDecoder`]). Whatever the
//! bytes, decoding ends (no endless loop), refuses what it cannot read, never panics outside
//! its guard, and never allocates more than the event's size from a length field.
//!
//! `PROPTEST_CASES=100000 cargo test --lib fuzz` runs more cases than the normal run's.

use super::event::EventDecoder;
use super::query::tests::collations;
use crate::model::{BinlogFilePos, Charset};
use crate::test_alloc;
use mysql_async::binlog::BinlogVersion;
use mysql_common::binlog::EventStreamReader;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::collections::HashMap;

/// The fixture binlog: MariaDB's 4-byte magic, then events.
const FIXTURE: &[u8] = include_bytes!("fixtures/mariadb-10.11.binlog");
/// No allocation while decoding one event may exceed this: the fixture's events are a few
/// KiB, so anything near it was sized by a length field.
const ALLOCATION_BUDGET: usize = 1 << 20;

/// The fixture's events, each whole (header, body, CRC32).
fn events() -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    let mut at = 4;
    while at + 19 <= FIXTURE.len() {
        let size = u32::from_le_bytes(FIXTURE[at + 9..at + 13].try_into().unwrap()) as usize;
        events.push(FIXTURE[at..at + size].to_vec());
        at += size;
    }
    assert_eq!(at, FIXTURE.len(), "the fixture splits into whole events");
    events
}

/// How an event is damaged.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set(at, byte)),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
    ]
}

/// `event` damaged by `mutations` in its body (and header fields after the size), then made
/// whole again as a stream delivers it: its size field says its length, its CRC32 matches (so
/// that the damage reaches the decoders instead of the checksum check).
fn damaged(event: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    // header without the size (which the stream's packet length decides) and the body
    let mut bytes = event[..event.len() - 4].to_vec();
    for mutation in mutations {
        let len = bytes.len();
        // never the size field (9..13): a stream refuses a size its packet does not hold
        let place = |at: usize| {
            let at = at % len.max(1);
            if (9..13).contains(&at) { 13 } else { at }
        };
        match *mutation {
            Mutation::Set(at, byte) => {
                let at = place(at);
                bytes[at] = byte;
            }
            Mutation::Flip(at, bit) => {
                let at = place(at);
                bytes[at] ^= 1 << bit;
            }
            Mutation::Cut(at) => bytes.truncate((at % len).max(19)),
            Mutation::Insert(at, byte) => {
                let at = place(at).max(19).min(len);
                bytes.insert(at, byte);
            }
        }
    }
    let size = (bytes.len() + 4) as u32;
    bytes[9..13].copy_from_slice(&size.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    let crc = checksum(&bytes);
    let at = bytes.len() - 4;
    bytes[at..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn checksum(event: &[u8]) -> u32 {
    // CRC32 over everything but the checksum itself, as the server computes it: a format
    // description's "binlog in use" flag (set while the file is open) counts as clear
    let mut bytes = event[..event.len() - 4].to_vec();
    if bytes.get(4) == Some(&0x0f) && bytes.len() > 17 {
        bytes[17] &= !0x01;
    }
    let mut crc = 0xffff_ffffu32;
    for byte in &bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Feeds `events` in order as a stream would; returns how many decoded and the largest
/// allocation made while reading or decoding any of them.
fn feed(events: &[Vec<u8>]) -> (usize, usize) {
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut decoder = EventDecoder::new(HashMap::from([(45u16, Charset::Utf8mb4)]), true)
        .for_kind(crate::model::DataSourceKind::MariaDb)
        .with_collation_names(collations());
    let mut decoded = 0;
    let mut largest = 0;
    for (index, bytes) in events.iter().enumerate() {
        let end = BinlogFilePos {
            file: "mysql-bin.000002".into(),
            offset: index as u64 * 100 + 100,
        };
        let (read, allocated) = test_alloc::largest_allocation(|| {
            // the stream's reading is guarded in `BinlogReader::next`
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.read(&bytes[..])))
        });
        largest = largest.max(allocated);
        let Ok(Ok(Some(event))) = read else { continue };
        let (result, allocated) = test_alloc::largest_allocation(|| decoder.decode(&event, &end));
        largest = largest.max(allocated);
        if result.is_ok() {
            decoded += 1;
        }
    }
    (decoded, largest)
}

#[test]
fn the_fixture_decodes_whole() {
    let events = events();
    let (decoded, largest) = feed(&events);
    assert_eq!(decoded, events.len(), "every real event decodes");
    assert!(largest < ALLOCATION_BUDGET, "{largest}");
    // the checksum computed here is the server's
    for event in &events {
        let stored = u32::from_le_bytes(event[event.len() - 4..].try_into().unwrap());
        assert_eq!(stored, checksum(event));
    }
}

proptest! {
    #![proptest_config(Config {
        cases: 1000,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x07_7e_55),
        ..Config::default()
    })]

    #[test]
    fn damaged_events_are_refused_never_loop_panic_or_overallocate(
        pick in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut events = events();
        let index = pick.index(events.len());
        let kind = events[index][4];
        events[index] = damaged(&events[index], &mutations);
        let (_, largest) = feed(&events);
        prop_assert!(
            largest < ALLOCATION_BUDGET,
            "an allocation of {} bytes decoding event {} (type {:#x}) damaged by {:?}",
            largest, index, kind, mutations
        );
    }
}
