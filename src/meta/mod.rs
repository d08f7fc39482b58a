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
pub use events::{
    EventLevel, log_event, log_event_or_warn, prune_event_log, recent_events, record_conflicts,
    record_skipped,
};
pub use leases::{
    Claim, Lease, RunId, claim_lease, ensure_lease_rows, raise_lease_token, read_leases,
    read_position, release_lease, renew_lease, start_run, stop_run, write_position, write_state,
};
pub use migrate::{MigrateReport, check_schema, known_version, migrate, schema_version};
pub use nodes::{NodeRegistration, NodeState, heartbeat, mark_stopped, node_states, register_node};
pub use stats::{prune_stats, write_stats};
pub use views::{TextTable, node_status, open_alerts, pipeline_status};

use crate::error::{Error, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The longest any one metadata call may take before it counts as a failure.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection pools to the metadata schema: one server, or several (a primary and its
/// replicas), of which the one that is writable (`@@read_only = 0`) is used.
#[derive(Clone)]
pub struct MetaDb {
    servers: Arc<Vec<MetaServer>>,
    /// The server in use (an index into `servers`).
    current: Arc<AtomicUsize>,
    /// Which server was last found the one writable server, and when (several servers only).
    confirmed: Arc<std::sync::Mutex<Option<(usize, std::time::Instant)>>>,
    /// The schema named in the URL (`ottr` by convention).
    schema: String,
}

/// One metadata server.
struct MetaServer {
    /// Connections with the schema as default database.
    pool: Pool,
    /// The URL without its password, for messages.
    display_url: String,
}

/// How long a metadata session may stay idle before the server closes it (and rolls back
/// what a frozen node left open).
const SESSION_IDLE_LIMIT: Duration = Duration::from_secs(30);
/// Session limits: idle sessions closed after [`SESSION_IDLE_LIMIT`] (30 s), lock waits given
/// up before [`QUERY_TIMEOUT`].
const SESSION_LIMITS: &str = "SET SESSION wait_timeout = 30, innodb_lock_wait_timeout = 5";

/// How long a server found writable is used without asking every server again.
const WRITABLE_RECHECK: Duration = Duration::from_secs(1);
/// How long a server may take to say whether it is writable.
const WRITABLE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
const IS_WRITABLE: &str = "SELECT @@read_only = 0";

impl MetaDb {
    /// Opens a pool on the metadata schema named in `url` (`mysql://user[:pass]@host:port/ottr`),
    /// or on each of several comma-separated URLs (a primary and its replicas, same schema):
    /// every call then uses the one server that is writable, and follows a failover that
    /// promoted a replica. Connecting happens lazily, at the first query.
    pub fn open(url: &str) -> Result<Self> {
        let mut servers = Vec::new();
        let mut schema = None;
        for url in url.split(',').map(str::trim).filter(|url| !url.is_empty()) {
            let opts = parse_url(url)?;
            let named = opts
                .db_name()
                .map(str::to_owned)
                .filter(|name| !name.is_empty())
                .ok_or_else(|| {
                    Error::Precheck(format!(
                        "the metadata URL {} names no schema: add one, e.g. …/ottr",
                        redact_url(url)
                    ))
                })?;
            if schema.as_ref().is_some_and(|schema| *schema != named) {
                return Err(Error::Precheck(format!(
                    "the metadata URLs name different schemas ({} and {named}): a replica holds the same schema as its primary",
                    schema.unwrap_or_default()
                )));
            }
            schema = Some(named);
            let constraints = PoolConstraints::new(0, 8).expect("0 <= 8");
            let pool_opts = PoolOpts::default()
                .with_constraints(constraints)
                // dropped well before the server's wait_timeout closes them
                .with_inactive_connection_ttl(SESSION_IDLE_LIMIT / 3)
                .with_ttl_check_interval(SESSION_IDLE_LIMIT / 6);
            let builder = OptsBuilder::from_opts(opts)
                .pool_opts(pool_opts)
                // count matched rows, so that a fenced write that changes nothing still counts
                .client_found_rows(true)
                // `setup`, not `init`: the pool resets a connection when it comes back, and
                // only setup commands run again after that (their order is not kept).
                .setup(vec![
                    "SET SESSION time_zone = '+00:00'",
                    // fenced writes rely on locking reads; keep InnoDB's default isolation
                    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                    // a node frozen or cut off inside a transaction (statistics, the
                    // monitor's writes) holds its locks until the server closes the session
                    SESSION_LIMITS,
                ]);
            servers.push(MetaServer {
                pool: Pool::new(builder),
                display_url: redact_url(url),
            });
        }
        let schema = schema.ok_or_else(|| Error::Precheck("no metadata URL given".into()))?;
        Ok(MetaDb {
            servers: Arc::new(servers),
            current: Arc::new(AtomicUsize::new(0)),
            confirmed: Arc::new(std::sync::Mutex::new(None)),
            schema,
        })
    }

    /// The metadata schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The URL of the server in use, with any password replaced by `***`.
    pub fn display_url(&self) -> &str {
        &self.servers[self.current.load(Ordering::Relaxed)].display_url
    }

    /// The pool of the server in use.
    pub(crate) fn pool(&self) -> Pool {
        self.servers[self.current.load(Ordering::Relaxed)]
            .pool
            .clone()
    }

    /// A connection from the pool, within [`QUERY_TIMEOUT`]; with several servers, from the
    /// one writable server (found again at most every [`WRITABLE_RECHECK`]).
    pub(crate) async fn conn(&self) -> Result<Conn> {
        if self.servers.len() == 1 {
            return self.conn_to(0).await;
        }
        let confirmed = *self.confirmed.lock().expect("not poisoned");
        if let Some((index, at)) = confirmed
            && at.elapsed() < WRITABLE_RECHECK
            && let Ok(conn) = self.conn_to(index).await
        {
            return Ok(conn);
        }
        let index = self.find_writable().await?;
        self.conn_to(index).await
    }

    /// Asks every server at once whether it is writable; exactly one must be. None (a
    /// failover in progress) or several (a split brain: an old primary back without
    /// read_only) is an error that the caller retries, never a guess.
    async fn find_writable(&self) -> Result<usize> {
        let checks = self.servers.iter().map(|server| async move {
            let check = async {
                let mut conn = server.pool.get_conn().await?;
                conn.query_first::<bool, _>(IS_WRITABLE).await
            };
            match tokio::time::timeout(WRITABLE_CHECK_TIMEOUT, check).await {
                Ok(Ok(Some(true))) => Ok(true),
                Ok(Ok(_)) => Ok(false),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!(
                    "no answer within {} ms",
                    WRITABLE_CHECK_TIMEOUT.as_millis()
                )),
            }
        });
        let answers = futures_util::future::join_all(checks).await;
        let writable: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, answer)| matches!(answer, Ok(true)))
            .map(|(index, _)| index)
            .collect();
        let describe = || {
            self.servers
                .iter()
                .zip(&answers)
                .map(|(server, answer)| {
                    let state = match answer {
                        Ok(true) => "writable".to_owned(),
                        Ok(false) => "read-only".to_owned(),
                        Err(error) => error.clone(),
                    };
                    format!("{}: {state}", server.display_url)
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        match writable.as_slice() {
            [index] => {
                let previous = self.current.swap(*index, Ordering::Relaxed);
                *self.confirmed.lock().expect("not poisoned") =
                    Some((*index, std::time::Instant::now()));
                if previous != *index {
                    tracing::warn!(
                        from = %self.servers[previous].display_url,
                        to = %self.servers[*index].display_url,
                        "metadata database: following the writable server"
                    );
                }
                Ok(*index)
            }
            [] => Err(Error::MetaUnavailable(format!(
                "none of the metadata servers is writable ({}): promote one (SET GLOBAL read_only = OFF)",
                describe()
            ))),
            _ => Err(Error::MetaUnavailable(format!(
                "several metadata servers are writable ({}): refusing to choose; set read_only = ON on all but the primary",
                describe()
            ))),
        }
    }

    /// A connection to server `index`, within [`QUERY_TIMEOUT`].
    async fn conn_to(&self, index: usize) -> Result<Conn> {
        let server = &self.servers[index];
        let context = format!(
            "cannot connect to the metadata database {}",
            server.display_url
        );
        timed(&context, async {
            server
                .pool
                .get_conn()
                .await
                .map_err(|error| Error::database(context.clone(), error))
        })
        .await
    }

    /// Closes every pooled connection.
    pub async fn close(self) {
        for server in self.servers.iter() {
            let _ = server.pool.clone().disconnect().await;
        }
    }
}

impl std::fmt::Debug for MetaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetaDb({})", self.display_url())
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
    fn several_urls_must_name_one_schema() {
        let meta =
            MetaDb::open("mysql://root@127.0.0.1:3307/ottr, mysql://root@127.0.0.1:3308/ottr")
                .unwrap();
        assert_eq!(meta.servers.len(), 2);
        assert_eq!(meta.display_url(), "mysql://root@127.0.0.1:3307/ottr");
        let error = MetaDb::open("mysql://root:pw@h1/ottr,mysql://root:pw@h2/other")
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("different schemas (ottr and other)"),
            "{error}"
        );
        assert!(!error.contains("pw"), "{error}");
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
