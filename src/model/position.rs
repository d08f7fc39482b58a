//! Binlog positions and start points.
//!
//! A [`Position`] is where a pipeline has read to: a binlog file and offset, and the GTID state
//! at that point (MariaDB: one GTID per replication domain as in `@@gtid_binlog_pos`; MySQL: a
//! GTID set). A [`StartPoint`] is what an operator asks for: the source's current end, a file
//! and offset, a GTID state, or a UTC timestamp. Both parse from and print to the forms that
//! `CALL reset_position` accepts.

use chrono::NaiveDateTime;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A text that is not a position in any accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "position '{0}' is not FILE:POS, a GTID, a UTC timestamp 'YYYY-MM-DD hh:mm:ss[.ffffff]', now or end"
)]
pub struct ParsePositionError(pub String);

/// A binlog file name and a byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BinlogFilePos {
    /// The binlog file name as the server names it, e.g. `mysql-bin.000003`.
    pub file: String,
    /// The byte offset in the file; 4 is the first event.
    pub offset: u64,
}

impl BinlogFilePos {
    /// The file's sequence number (its numeric extension), used for ordering.
    fn sequence(&self) -> (&str, Option<u64>) {
        match self.file.rsplit_once('.') {
            Some((base, extension)) => (base, extension.parse().ok()),
            None => (self.file.as_str(), None),
        }
    }
}

impl Ord for BinlogFilePos {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sequence()
            .cmp(&other.sequence())
            .then_with(|| self.file.cmp(&other.file))
            .then_with(|| self.offset.cmp(&other.offset))
    }
}

impl PartialOrd for BinlogFilePos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for BinlogFilePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}

impl FromStr for BinlogFilePos {
    type Err = ParsePositionError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParsePositionError(text.to_owned());
        let (file, offset) = text.rsplit_once(':').ok_or_else(error)?;
        let valid_file = !file.is_empty()
            && file
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        let offset: u64 = offset.parse().map_err(|_| error())?;
        if !valid_file || offset < 4 {
            return Err(error());
        }
        Ok(BinlogFilePos {
            file: file.to_owned(),
            offset,
        })
    }
}

/// One MariaDB GTID, `domain-server-sequence`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub sequence: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.sequence)
    }
}

/// The GTID state at a position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum GtidState {
    /// MariaDB: the last GTID of each replication domain, sorted by domain.
    MariaDb(Vec<MariaGtid>),
    /// MySQL: an executed GTID set, `uuid:1-42[:50-60],uuid2:…`, kept as normalised text.
    MySql(String),
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidState::MariaDb(gtids) => {
                for (index, gtid) in gtids.iter().enumerate() {
                    if index > 0 {
                        f.write_str(",")?;
                    }
                    gtid.fmt(f)?;
                }
                Ok(())
            }
            GtidState::MySql(set) => f.write_str(set),
        }
    }
}

impl FromStr for GtidState {
    type Err = ParsePositionError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParsePositionError(text.to_owned());
        let text = text.trim();
        if text.is_empty() {
            return Ok(GtidState::MariaDb(Vec::new()));
        }
        if let Some(gtids) = parse_maria_gtids(text) {
            let mut domains: Vec<u32> = gtids.iter().map(|gtid| gtid.domain).collect();
            domains.dedup();
            if domains.len() != gtids.len() {
                return Err(error());
            }
            return Ok(GtidState::MariaDb(gtids));
        }
        let normalised: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if normalised.split(',').all(is_mysql_gtid_interval_list) {
            return Ok(GtidState::MySql(normalised.to_ascii_lowercase()));
        }
        Err(error())
    }
}

impl GtidState {
    /// The state after a MariaDB transaction with `gtid` committed: its domain's entry is
    /// replaced. A MySQL set is left as it is (its GTIDs are tracked by file position).
    pub fn with_committed(&self, gtid: MariaGtid) -> GtidState {
        match self {
            GtidState::MariaDb(gtids) => {
                let mut gtids: Vec<MariaGtid> = gtids
                    .iter()
                    .copied()
                    .filter(|g| g.domain != gtid.domain)
                    .collect();
                gtids.push(gtid);
                gtids.sort();
                GtidState::MariaDb(gtids)
            }
            GtidState::MySql(_) => self.clone(),
        }
    }
}

/// Parses `d-s-n[,d-s-n…]`, sorted by domain; None if the text is not in that form.
fn parse_maria_gtids(text: &str) -> Option<Vec<MariaGtid>> {
    let mut gtids = Vec::new();
    for part in text.split(',') {
        let mut fields = part.trim().split('-');
        let gtid = MariaGtid {
            domain: fields.next()?.parse().ok()?,
            server: fields.next()?.parse().ok()?,
            sequence: fields.next()?.parse().ok()?,
        };
        if fields.next().is_some() {
            return None;
        }
        gtids.push(gtid);
    }
    gtids.sort();
    Some(gtids)
}

/// Whether `part` is `uuid:N[-M][:N[-M]…]`.
fn is_mysql_gtid_interval_list(part: &str) -> bool {
    let mut fields = part.split(':');
    let uuid = fields.next().unwrap_or_default();
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    let uuid_ok =
        groups == [8, 4, 4, 4, 12] && uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit());
    let mut intervals = 0;
    for interval in fields {
        intervals += 1;
        let mut bounds = interval.splitn(2, '-');
        let start = bounds.next().and_then(|n| n.parse::<u64>().ok());
        let end = match bounds.next() {
            Some(n) => n.parse::<u64>().ok(),
            None => start,
        };
        match (start, end) {
            (Some(start), Some(end)) if start >= 1 && end >= start => {}
            _ => return false,
        }
    }
    uuid_ok && intervals > 0
}

/// Where a pipeline starts when it has no saved position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StartPoint {
    /// The source's current end, resolved once when a node first claims the pipeline.
    End,
    /// A binlog file and offset (the start of a transaction).
    File(BinlogFilePos),
    /// A GTID state: start after these transactions.
    Gtid(GtidState),
    /// The first event at or after this UTC time.
    Timestamp(NaiveDateTime),
}

impl fmt::Display for StartPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartPoint::End => f.write_str("end"),
            StartPoint::File(position) => position.fmt(f),
            StartPoint::Gtid(gtid) => gtid.fmt(f),
            StartPoint::Timestamp(time) => write!(f, "{}", time.format("%Y-%m-%d %H:%M:%S%.f")),
        }
    }
}

impl FromStr for StartPoint {
    type Err = ParsePositionError;
    /// Parses the forms of `CALL reset_position`, except `now`, which needs a clock.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("end") {
            return Ok(StartPoint::End);
        }
        for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(StartPoint::Timestamp(time));
            }
        }
        // GTID forms first: `uuid:23` would also read as a file named like a UUID.
        let looks_like_gtid = (text.split('-').count() == 3 && !text.contains(':'))
            || text
                .split(':')
                .next()
                .is_some_and(|head| is_mysql_gtid_interval_list(&format!("{head}:1")));
        if !looks_like_gtid && let Ok(position) = text.parse::<BinlogFilePos>() {
            return Ok(StartPoint::File(position));
        }
        match text.parse::<GtidState>() {
            Ok(gtid) if !text.is_empty() => Ok(StartPoint::Gtid(gtid)),
            _ => Err(ParsePositionError(text.to_owned())),
        }
    }
}

/// Where one change is in the source binlog: the start of its transaction, and its index
/// among that transaction's row changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ChangeAt {
    pub transaction: BinlogFilePos,
    pub index: u64,
}

impl ChangeAt {
    /// Whether this change comes before `resume`, i.e. was handed on (or applied) by whoever
    /// recorded `resume` as its position.
    pub fn is_before(&self, resume: &Position) -> bool {
        match &resume.file {
            Some(file) => {
                self.transaction < *file
                    || (self.transaction == *file && self.index < resume.trx_rows_done)
            }
            None => false,
        }
    }
}

/// Where a pipeline has read to: always the start of a transaction, plus how many row
/// changes of that transaction were already handed on when a transaction was split.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The binlog file and offset; None when only a GTID state is known (a GTID start point
    /// before the first event was read).
    pub file: Option<BinlogFilePos>,
    /// The GTID state at this point, when the source has GTIDs.
    pub gtid: Option<GtidState>,
    /// Row changes of the transaction starting here that were already handed on.
    pub trx_rows_done: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, &self.gtid) {
            (Some(file), Some(gtid)) => write!(f, "{file} (gtid {gtid})")?,
            (Some(file), None) => write!(f, "{file}")?,
            (None, Some(gtid)) => write!(f, "gtid {gtid}")?,
            (None, None) => f.write_str("unknown")?,
        }
        if self.trx_rows_done > 0 {
            write!(f, " +{} rows", self.trx_rows_done)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_positions_order_by_sequence_number_then_offset() {
        let a: BinlogFilePos = "mysql-bin.999999:500".parse().unwrap();
        let b: BinlogFilePos = "mysql-bin.1000000:4".parse().unwrap();
        let c: BinlogFilePos = "mysql-bin.1000000:120".parse().unwrap();
        assert!(a < b && b < c);
        assert_eq!(c.to_string(), "mysql-bin.1000000:120");
    }

    #[test]
    fn file_position_rejects_offsets_before_the_first_event_and_junk() {
        assert!("mysql-bin.000001:3".parse::<BinlogFilePos>().is_err());
        assert!("mysql-bin.000001".parse::<BinlogFilePos>().is_err());
        assert!("a b:10".parse::<BinlogFilePos>().is_err());
    }

    #[test]
    fn start_points_parse_every_form_of_reset_position() {
        assert_eq!("end".parse::<StartPoint>().unwrap(), StartPoint::End);
        assert_eq!(
            "mysql-bin.000003:1234".parse::<StartPoint>().unwrap(),
            StartPoint::File(BinlogFilePos {
                file: "mysql-bin.000003".into(),
                offset: 1234
            })
        );
        let maria = "1-2-7,0-1-42".parse::<StartPoint>().unwrap();
        assert_eq!(maria.to_string(), "0-1-42,1-2-7");
        let mysql = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7-9".parse::<StartPoint>();
        assert_eq!(
            mysql.unwrap().to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9"
        );
        let single = "3E11FA47-71CA-11E1-9E33-C80AA9429562:23"
            .parse::<StartPoint>()
            .unwrap();
        assert!(
            matches!(single, StartPoint::Gtid(GtidState::MySql(_))),
            "{single:?}"
        );
        let time = "2026-11-22 08:00:00.5".parse::<StartPoint>().unwrap();
        assert_eq!(time.to_string(), "2026-11-22 08:00:00.500");
        assert!("2026-11-22T08:00:00".parse::<StartPoint>().is_ok());
    }

    #[test]
    fn a_committed_mariadb_gtid_replaces_its_domain() {
        let state: GtidState = "0-1-5,1-2-7".parse().unwrap();
        let next = state.with_committed(MariaGtid {
            domain: 1,
            server: 3,
            sequence: 8,
        });
        assert_eq!(next.to_string(), "0-1-5,1-3-8");
        let empty = GtidState::MariaDb(vec![]);
        assert_eq!(
            empty
                .with_committed(MariaGtid {
                    domain: 0,
                    server: 1,
                    sequence: 1
                })
                .to_string(),
            "0-1-1"
        );
    }

    #[test]
    fn a_change_is_before_a_resume_point_by_transaction_then_index() {
        let file = |offset| BinlogFilePos {
            file: "b.000002".into(),
            offset,
        };
        let resume = Position {
            file: Some(file(500)),
            gtid: None,
            trx_rows_done: 3,
        };
        assert!(
            ChangeAt {
                transaction: file(400),
                index: 99
            }
            .is_before(&resume)
        );
        assert!(
            ChangeAt {
                transaction: file(500),
                index: 2
            }
            .is_before(&resume)
        );
        assert!(
            !ChangeAt {
                transaction: file(500),
                index: 3
            }
            .is_before(&resume)
        );
        assert!(
            !ChangeAt {
                transaction: file(600),
                index: 0
            }
            .is_before(&resume)
        );
        let earlier_file = ChangeAt {
            transaction: BinlogFilePos {
                file: "b.000001".into(),
                offset: 900,
            },
            index: 0,
        };
        assert!(earlier_file.is_before(&resume));
    }

    #[test]
    fn start_point_errors_name_the_text() {
        let error = "yesterday".parse::<StartPoint>().unwrap_err();
        assert!(error.to_string().contains("'yesterday'"));
        assert!(
            "0-1-2,0-1-3".parse::<StartPoint>().is_err(),
            "one GTID per domain"
        );
        assert!(
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-1"
                .parse::<StartPoint>()
                .is_err()
        );
        assert!("".parse::<StartPoint>().is_err());
    }
}
