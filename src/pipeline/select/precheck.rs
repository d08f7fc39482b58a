//! Prechecks of a source server, each failing with the fix in its message: version, binary
//! log on, ROW format, FULL row image, FULL row metadata, no binlog compression, and the
//! reader's privileges.

use crate::config::DataSourceKind;
use crate::error::{Error, Result};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;

const SELECT_VARIABLES: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
     ('version', 'version_comment', 'log_bin', 'binlog_format', 'binlog_row_image', \
      'binlog_row_metadata', 'log_bin_compress', 'server_id')";
const SHOW_GRANTS: &str = "SHOW GRANTS FOR CURRENT_USER()";
const AUTO_INCREMENT: &str =
    "SELECT @@GLOBAL.auto_increment_increment, @@GLOBAL.auto_increment_offset";

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed(String),
    /// Works, but an operator should look.
    Warning(String),
    /// The source cannot be read as it is: what was found, and how to fix it.
    Failed {
        found: String,
        fix: String,
    },
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
}

/// Runs every source check on `conn`; a query that fails is an error, a check that fails is
/// an [`Outcome::Failed`].
pub async fn run_prechecks(conn: &mut Conn, kind: DataSourceKind) -> Result<Vec<Check>> {
    let variables: HashMap<String, String> = conn
        .query::<(String, String), _>(SELECT_VARIABLES)
        .await
        .map_err(|error| Error::database("cannot read the source's variables", error))?
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let grants: Vec<String> = conn
        .query(SHOW_GRANTS)
        .await
        .map_err(|error| Error::database("cannot read the reader's grants", error))?;
    Ok(evaluate(&variables, &grants, kind))
}

/// Loop avoidance needs ottr's marks in the source's binlog: fails when a binlog filter
/// (`binlog_do_db` / `binlog_ignore_db`) leaves `ottr_sys` out.
pub async fn check_marks_logged(conn: &mut Conn, kind: DataSourceKind) -> Result<Check> {
    let row = super::start::binlog_status(conn, kind).await?;
    let column = |row: &mysql_async::Row, name: &str| -> String {
        row.columns_ref()
            .iter()
            .position(|column| column.name_str().eq_ignore_ascii_case(name))
            .and_then(|index| row.get_opt::<String, _>(index))
            .and_then(std::result::Result::ok)
            .unwrap_or_default()
    };
    let (only, ignored) = row.as_ref().map_or((String::new(), String::new()), |row| {
        (column(row, "Binlog_Do_DB"), column(row, "Binlog_Ignore_DB"))
    });
    Ok(Check {
        name: "loop_marks_logged",
        outcome: marks_outcome(&only, &ignored),
    })
}

fn marks_outcome(only: &str, ignored: &str) -> Outcome {
    let listed = |list: &str| list.split(',').any(|name| name.trim() == "ottr_sys");
    let fix =
        "ottr recognises its own writes by rows of ottr_sys in the binlog: remove the filter \
               (binlog_do_db must list ottr_sys, binlog_ignore_db must not)"
            .to_owned();
    if listed(ignored) {
        Outcome::Failed {
            found: format!("binlog_ignore_db = {ignored} leaves ottr_sys out of the binlog"),
            fix,
        }
    } else if !only.trim().is_empty() && !listed(only) {
        Outcome::Failed {
            found: format!("binlog_do_db = {only} leaves ottr_sys out of the binlog"),
            fix,
        }
    } else {
        Outcome::Passed("ottr_sys is in the binlog".into())
    }
}

/// Two-way: both servers hand out auto-increment values; the same increment and offset on
/// both means inserts on the two sides take the same ids (a conflict each time).
pub async fn check_auto_increment(source: &mut Conn, target: &mut Conn) -> Result<Check> {
    let fail = |error| Error::database("cannot read auto_increment_increment/offset", error);
    let source = source
        .query_first::<(u64, u64), _>(AUTO_INCREMENT)
        .await
        .map_err(fail)?
        .unwrap_or((1, 1));
    let target = target
        .query_first::<(u64, u64), _>(AUTO_INCREMENT)
        .await
        .map_err(fail)?
        .unwrap_or((1, 1));
    Ok(Check {
        name: "auto_increment",
        outcome: auto_increment_outcome(source, target),
    })
}

fn auto_increment_outcome(source: (u64, u64), target: (u64, u64)) -> Outcome {
    let (increment, offset) = source;
    let (other_increment, other_offset) = target;
    // Distinct only when both step by the same n > 1 from offsets distinct modulo n.
    let collide = increment != other_increment
        || increment < 2
        || offset % increment == other_offset % other_increment;
    if collide {
        Outcome::Warning(format!(
            "auto_increment_increment/offset are {increment}/{offset} on one server and {other_increment}/{other_offset} on the other: \
             rows inserted on both sides can take the same ids and collide; set auto_increment_increment = 2 \
             on both and auto_increment_offset = 1 on one, 2 on the other"
        ))
    } else {
        Outcome::Passed(format!(
            "auto_increment {increment}/{offset} and {other_increment}/{other_offset} hand out distinct ids"
        ))
    }
}

/// The first failed check as an error whose message holds the fix.
pub fn first_failure(checks: &[Check]) -> Option<Error> {
    checks.iter().find_map(|check| match &check.outcome {
        Outcome::Failed { found, fix } => Some(Error::Precheck(format!(
            "precheck {}: {found}; fix: {fix}",
            check.name
        ))),
        _ => None,
    })
}

fn evaluate(
    variables: &HashMap<String, String>,
    grants: &[String],
    kind: DataSourceKind,
) -> Vec<Check> {
    let get = |name: &str| variables.get(name).map(String::as_str).unwrap_or("");
    let is_on = |name: &str| matches!(get(name).to_ascii_uppercase().as_str(), "ON" | "1");
    let version = get("version");
    let mut checks = vec![Check {
        name: "version",
        outcome: check_version(version, kind),
    }];
    let expect = |name: &'static str, wanted: &str, fix: &str| Check {
        name,
        outcome: if get(name).eq_ignore_ascii_case(wanted) {
            Outcome::Passed(format!("{name} = {wanted}"))
        } else {
            Outcome::Failed {
                found: format!("{name} is {}", display(get(name))),
                fix: fix.to_owned(),
            }
        },
    };
    checks.push(Check {
        name: "log_bin",
        outcome: if is_on("log_bin") {
            Outcome::Passed("binary log is on".into())
        } else {
            Outcome::Failed {
                found: "the binary log is off".into(),
                fix:
                    "start the server with log_bin=mysql-bin (and a server_id) in its configuration"
                        .into(),
            }
        },
    });
    checks.push(expect(
        "binlog_format",
        "ROW",
        "SET GLOBAL binlog_format = 'ROW' and set binlog_format=ROW in the server's configuration",
    ));
    checks.push(expect(
        "binlog_row_image",
        "FULL",
        "SET GLOBAL binlog_row_image = 'FULL' and set binlog_row_image=FULL in the server's configuration",
    ));
    checks.push(expect(
        "binlog_row_metadata",
        "FULL",
        "SET GLOBAL binlog_row_metadata = 'FULL' and set binlog_row_metadata=FULL in the server's configuration",
    ));
    if kind == DataSourceKind::MariaDb {
        checks.push(Check {
            name: "log_bin_compress",
            outcome: if is_on("log_bin_compress") {
                Outcome::Failed {
                    found: "log_bin_compress is ON, and compressed binlog events cannot be decoded".into(),
                    fix: "SET GLOBAL log_bin_compress = OFF and remove it from the server's configuration".into(),
                }
            } else {
                Outcome::Passed("binlog events are not compressed".into())
            },
        });
    }
    checks.push(Check {
        name: "privileges",
        outcome: check_grants(grants, kind),
    });
    checks
}

fn display(value: &str) -> &str {
    if value.is_empty() {
        "not available"
    } else {
        value
    }
}

fn check_version(version: &str, kind: DataSourceKind) -> Outcome {
    let is_mariadb = version.to_ascii_lowercase().contains("mariadb");
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse::<u32>().ok());
    let major_minor = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    match (kind, is_mariadb) {
        (DataSourceKind::MySql, true) => Outcome::Failed {
            found: format!("the server is MariaDB {version}, but the data source's kind is mysql"),
            fix: "UPDATE data_source SET kind = 'mariadb' for this data source".into(),
        },
        (DataSourceKind::MariaDb, false) => Outcome::Failed {
            found: format!("the server is MySQL {version}, but the data source's kind is mariadb"),
            fix: "UPDATE data_source SET kind = 'mysql' for this data source".into(),
        },
        (DataSourceKind::MariaDb, true) if major_minor < (10, 6) => Outcome::Failed {
            found: format!("MariaDB {version} is older than 10.6"),
            fix: "upgrade the source to MariaDB 10.6 or newer".into(),
        },
        (DataSourceKind::MySql, false) if major_minor < (8, 0) => Outcome::Failed {
            found: format!("MySQL {version} is older than 8.0"),
            fix: "upgrade the source to MySQL 8.0 or newer".into(),
        },
        _ => Outcome::Passed(format!("version {version}")),
    }
}

/// Global privileges named in the grants, upper-case; `ALL` for ALL PRIVILEGES.
fn global_privileges(grants: &[String]) -> Vec<String> {
    grants
        .iter()
        .filter_map(|grant| {
            let rest = grant.strip_prefix("GRANT ")?;
            let (privileges, on) = rest.split_once(" ON ")?;
            on.starts_with("*.* ").then_some(privileges)
        })
        .flat_map(|privileges| privileges.split(','))
        .map(|privilege| privilege.trim().to_ascii_uppercase())
        .map(|privilege| {
            if privilege == "ALL PRIVILEGES" {
                "ALL".to_owned()
            } else {
                privilege
            }
        })
        .collect()
}

fn check_grants(grants: &[String], kind: DataSourceKind) -> Outcome {
    let global = global_privileges(grants);
    let has = |wanted: &[&str]| {
        global
            .iter()
            .any(|privilege| privilege == "ALL" || wanted.contains(&privilege.as_str()))
    };
    let monitor: &[&str] = match kind {
        DataSourceKind::MariaDb => &["BINLOG MONITOR", "REPLICATION CLIENT", "SUPER"],
        DataSourceKind::MySql => &["REPLICATION CLIENT", "SUPER"],
    };
    let mut missing = Vec::new();
    if !has(&["REPLICATION SLAVE"]) {
        missing.push("REPLICATION SLAVE");
    }
    if !has(monitor) {
        missing.push(monitor[0]);
    }
    let select_everywhere = has(&["SELECT"]);
    if !missing.is_empty() {
        let mut all = missing.clone();
        if !select_everywhere {
            all.push("SELECT");
        }
        return Outcome::Failed {
            found: format!("the reader lacks {}", missing.join(", ")),
            fix: format!("GRANT {} ON *.* TO the reader", all.join(", ")),
        };
    }
    if select_everywhere {
        Outcome::Passed("REPLICATION SLAVE, binlog monitoring and SELECT are granted".into())
    } else {
        Outcome::Warning(
            "SELECT is not granted on *.*: make sure it covers every paired table".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_filters_that_drop_the_marks_and_colliding_auto_increments_are_caught() {
        assert!(matches!(marks_outcome("", ""), Outcome::Passed(_)));
        assert!(matches!(
            marks_outcome("shop,ottr_sys", ""),
            Outcome::Passed(_)
        ));
        assert!(matches!(marks_outcome("shop", ""), Outcome::Failed { .. }));
        assert!(matches!(
            marks_outcome("", "tmp,ottr_sys"),
            Outcome::Failed { .. }
        ));
        assert!(matches!(
            auto_increment_outcome((1, 1), (1, 1)),
            Outcome::Warning(_)
        ));
        assert!(matches!(
            auto_increment_outcome((2, 1), (2, 3)),
            Outcome::Warning(_)
        ));
        assert!(matches!(
            auto_increment_outcome((2, 1), (2, 2)),
            Outcome::Passed(_)
        ));
        assert!(matches!(
            auto_increment_outcome((1, 1), (2, 2)),
            Outcome::Warning(_)
        ));
    }

    fn good_variables() -> HashMap<String, String> {
        [
            ("version", "10.11.19-MariaDB-0+deb12u1-log"),
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", "FULL"),
            ("log_bin_compress", "OFF"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn grants(text: &str) -> Vec<String> {
        vec![text.to_owned()]
    }

    #[test]
    fn a_well_configured_mariadb_source_passes() {
        let checks = evaluate(
            &good_variables(),
            &grants("GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `canal`@`%`"),
            DataSourceKind::MariaDb,
        );
        assert!(first_failure(&checks).is_none(), "{checks:?}");
    }

    #[test]
    fn statement_format_fails_with_the_fix() {
        let mut variables = good_variables();
        variables.insert("binlog_format".into(), "STATEMENT".into());
        let checks = evaluate(
            &variables,
            &grants("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`"),
            DataSourceKind::MariaDb,
        );
        let error = first_failure(&checks).unwrap().to_string();
        assert_eq!(
            error,
            "precheck binlog_format: binlog_format is STATEMENT; fix: SET GLOBAL binlog_format = 'ROW' and set binlog_format=ROW in the server's configuration"
        );
    }

    #[test]
    fn missing_replication_grants_name_the_grant_to_run() {
        let checks = evaluate(
            &good_variables(),
            &grants("GRANT SELECT ON `shop`.* TO `canal`@`%`"),
            DataSourceKind::MariaDb,
        );
        let error = first_failure(&checks).unwrap().to_string();
        assert!(
            error.contains("GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT ON *.*"),
            "{error}"
        );
    }

    #[test]
    fn a_kind_that_does_not_match_the_server_is_refused() {
        let checks = evaluate(
            &good_variables(),
            &grants("GRANT ALL PRIVILEGES ON *.* TO x"),
            DataSourceKind::MySql,
        );
        assert!(
            first_failure(&checks)
                .unwrap()
                .to_string()
                .contains("kind is mysql")
        );
    }

    #[test]
    fn compressed_binlogs_are_refused() {
        let mut variables = good_variables();
        variables.insert("log_bin_compress".into(), "ON".into());
        let checks = evaluate(
            &variables,
            &grants("GRANT ALL PRIVILEGES ON *.* TO x"),
            DataSourceKind::MariaDb,
        );
        assert!(
            first_failure(&checks)
                .unwrap()
                .to_string()
                .contains("log_bin_compress")
        );
    }
}
