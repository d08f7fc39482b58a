//! The only code that speaks SQL to the metadata schema: migrations, configuration reads,
//! node rows, leases, positions, state and the event log.
//!
//! Every statement is a named constant in the submodule that owns it; values are always bound
//! parameters. Every call has a deadline ([`QUERY_TIMEOUT`]) so that a hung metadata server
//! turns into a [`Error::Timeout`] instead of a hung node.

mod config;
mod events;
mod leases;
mod migrate;
pub mod monitor;
mod nodes;
mod stats;
mod views;

pub use config::{read_data_source, read_installation, read_settings, read_snapshot};
pub use events::{EventLevel, log_event, log_event_or_warn, prune_event_log, record_skipped};
pub use leases::{
    Lease, RunId, claim_lease, ensure_lease_rows, read_leases, read_position, release_lease,
    renew_lease, start_run, stop_run, write_position, write_state,
};
pub use migrate::{MigrateReport, check_schema, known_version, migrate, schema_version};
pub use nodes::{
    NodeRegistration, heartbeat, is_drained, mark_stopped, register_node, working_nodes,
};
pub use stats::{prune_stats, write_stats};
pub use views::{TextTable, node_status, open_alerts, pipeline_status};

use crate::error::{Error, Result};
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::future::Future;
use std::time::Duration;

/// The longest any one metadata call may take before it counts as a failure.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection pool to the metadata schema.
#[derive(Clone)]
pub struct MetaDb {
    /// Connections to the metadata server, with the schema as default database.
    pool: Pool,
    /// The schema named in the URL (`ottr` by convention).
    schema: String,
    /// The URL without its password, for messages.
    display_url: String,
}

impl MetaDb {
    /// Opens a pool on the metadata schema named in `url` (`mysql://user[:pass]@host:port/ottr`).
    /// Connecting happens lazily, at the first query.
    pub fn open(url: &str) -> Result<Self> {
        let opts = parse_url(url)?;
        let schema = opts
            .db_name()
            .map(str::to_owned)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                Error::Precheck(format!(
                    "the metadata URL {} names no schema: add one, e.g. …/ottr",
                    redact_url(url)
                ))
            })?;
        let constraints = PoolConstraints::new(0, 8).expect("0 <= 8");
        let builder = OptsBuilder::from_opts(opts)
            .pool_opts(PoolOpts::default().with_constraints(constraints))
            // count matched rows, so that a fenced write that changes nothing still counts
            .client_found_rows(true)
            // `setup`, not `init`: the pool resets a connection when it comes back, and only
            // setup commands run again after that (their order is not kept: keep them apart).
            .setup(vec![
                "SET SESSION time_zone = '+00:00'",
                // fenced writes rely on locking reads; keep InnoDB's default isolation
                "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            ]);
        Ok(MetaDb {
            pool: Pool::new(builder),
            schema,
            display_url: redact_url(url),
        })
    }

    /// The metadata schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The URL with any password replaced by `***`.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// A connection from the pool, within [`QUERY_TIMEOUT`].
    pub(crate) async fn conn(&self) -> Result<Conn> {
        let context = format!(
            "cannot connect to the metadata database {}",
            self.display_url
        );
        timed(&context, async {
            self.pool
                .get_conn()
                .await
                .map_err(|error| Error::database(context.clone(), error))
        })
        .await
    }

    /// Closes every pooled connection.
    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }
}

impl std::fmt::Debug for MetaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetaDb({})", self.display_url)
    }
}

/// Parses a MySQL URL; `prefer_socket` is off unless the URL asks for it, so that a TCP URL
/// reaches the server it names and host-based grants apply as written.
pub(crate) fn parse_url(url: &str) -> Result<Opts> {
    let opts = Opts::from_url(url).map_err(|error| {
        Error::Precheck(format!("invalid database URL {}: {error}", redact_url(url)))
    })?;
    if url.contains("prefer_socket=") {
        Ok(opts)
    } else {
        Ok(OptsBuilder::from_opts(opts).prefer_socket(false).into())
    }
}

/// `url` with the password part of its user info (between `scheme://user:` and the last `@`)
/// replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Runs `future` within [`QUERY_TIMEOUT`]; a timeout becomes [`Error::Timeout`].
pub(crate) async fn timed<T>(context: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(QUERY_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout(
                context.to_owned(),
                QUERY_TIMEOUT.as_millis() as u64,
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact_url("mysql://root:pw@127.0.0.1:3307/ottr"),
            "mysql://root:***@127.0.0.1:3307/ottr"
        );
        assert_eq!(redact_url("mysql://root@h/ottr"), "mysql://root@h/ottr");
        assert_eq!(
            redact_url("mysql://root:pa/s@s@h/ottr"),
            "mysql://root:***@h/ottr"
        );
        assert_eq!(redact_url("mysql://h:3306/ottr"), "mysql://h:3306/ottr");
    }

    #[test]
    fn a_url_without_a_schema_is_refused_with_the_fix() {
        let error = MetaDb::open("mysql://root:secret@127.0.0.1:3307")
            .err()
            .unwrap();
        let text = error.to_string();
        assert!(text.contains("names no schema"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
