//! The only code that speaks SQL to the metadata schema: migrations, configuration reads,
//! node rows, leases, positions, state and the event log.
//!
//! Every statement is a named constant in the submodule that owns it; values are always bound
//! parameters. Every call has a deadline ([`QUERY_TIMEOUT`]) so that a hung metadata server
//! turns into a [`Error::Timeout`] instead of a hung node.

mod audit;
mod config;
pub mod copy;
mod events;
mod leases;
mod migrate;
pub mod monitor;
mod nodes;
mod stats;
pub mod verify;
mod views;

pub use config::{read_data_source, read_installation, read_settings, read_snapshot};
pub use events::{
    EventLevel, log_event, log_event_or_warn, prune_event_log, recent_events, record_conflicts,
    record_skipped,
};
pub use leases::{
    Claim, Lease, RunId, claim_lease, ensure_lease_rows, raise_lease_token, read_leases,
    read_position, record_connection, release_lease, renew_lease, start_run, stop_run,
    write_position, write_state,
};
pub use migrate::{
    MigrateReport, check_schema, known_version, migrate, migrate_as, schema_version,
};
pub use nodes::{NodeRegistration, NodeState, heartbeat, mark_stopped, node_states, register_node};
pub use stats::{prune_stats, write_stats};
pub use views::{TextTable, copy_status, node_status, open_alerts, pipeline_status, verify_status};

use crate::error::{Error, Result, chain};
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
    /// How to connect (TLS aside), with the schema as default database.
    options: OptsBuilder,
    /// The URL's TLS settings (`tls_mode`, `tls_ca`, `tls_cert`, `tls_key`).
    tls: crate::config::Tls,
    /// Connections, made at the first query (for TLS `preferred`, once the server said
    /// whether it offers TLS).
    pool: tokio::sync::OnceCell<Pool>,
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

impl MetaServer {
    /// The server's pool, made at the first call.
    async fn pool(&self) -> Result<Pool> {
        self.pool
            .get_or_try_init(|| async {
                let options = crate::tls::pool_options(
                    self.options.clone(),
                    &self.tls,
                    crate::tls::KeyFrom::CommandLine,
                )
                .await
                .map_err(|error| {
                    let context = format!(
                        "cannot connect to the metadata database {} (TLS {})",
                        self.display_url, self.tls.mode
                    );
                    match error {
                        crate::tls::TlsConnectError::Settings(problem) => {
                            Error::Precheck(format!("{context}: {problem}"))
                        }
                        crate::tls::TlsConnectError::Driver(error) => {
                            Error::database(context, error)
                        }
                    }
                })?;
                Ok(Pool::new(options))
            })
            .await
            .cloned()
    }
}

impl MetaDb {
    /// Opens a pool on the metadata schema named in `url` (`mysql://user[:pass]@host:port/ottr`),
    /// or on each of several comma-separated URLs (a primary and its replicas, same schema):
    /// every call then uses the one server that is writable, and follows a failover that
    /// promoted a replica. Connecting happens lazily, at the first query.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_as(url, None)
    }

    /// Like [`MetaDb::open`], with the password given apart from the URL (from a file or the
    /// environment, so that it does not show in the process list).
    pub fn open_as(url: &str, password: Option<&str>) -> Result<Self> {
        let mut servers = Vec::new();
        let mut schema = None;
        for url in url.split(',').map(str::trim).filter(|url| !url.is_empty()) {
            let (opts, tls) = parse_url(url)?;
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
            let mut builder = OptsBuilder::from_opts(opts)
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
            if let Some(password) = password {
                builder = builder.pass(Some(password));
            }
            servers.push(MetaServer {
                options: builder,
                tls,
                pool: tokio::sync::OnceCell::new(),
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

    /// The secrets schema's name: the metadata schema's with `_secret` (`ottr_secret`). It
    /// holds the passwords, so that a monitoring user with SELECT on the metadata schema
    /// cannot read them.
    pub fn secret_schema(&self) -> String {
        secret_schema_of(&self.schema)
    }

    /// `sql` with `{secret}` replaced by the secrets schema's quoted name.
    pub(crate) fn with_secret_schema(&self, sql: &str) -> String {
        sql.replace("{secret}", &crate::sql::quote(&self.secret_schema()))
    }

    /// The URL of the server in use, with any password replaced by `***`.
    pub fn display_url(&self) -> &str {
        &self.servers[self.current.load(Ordering::Relaxed)].display_url
    }

    /// The pool of the server in use.
    pub(crate) async fn pool(&self) -> Result<Pool> {
        self.servers[self.current.load(Ordering::Relaxed)]
            .pool()
            .await
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
                let pool = server.pool().await.map_err(|error| chain(&error))?;
                let mut conn = pool.get_conn().await.map_err(|error| error.to_string())?;
                conn.query_first::<bool, _>(IS_WRITABLE)
                    .await
                    .map_err(|error| error.to_string())
            };
            match tokio::time::timeout(WRITABLE_CHECK_TIMEOUT, check).await {
                Ok(Ok(Some(true))) => Ok(true),
                Ok(Ok(_)) => Ok(false),
                Ok(Err(error)) => Err(error),
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
                .pool()
                .await?
                .get_conn()
                .await
                .map_err(|error| Error::database(context.clone(), error))
        })
        .await
    }

    /// Closes every pooled connection.
    pub async fn close(self) {
        for server in self.servers.iter() {
            if let Some(pool) = server.pool.get() {
                let _ = pool.clone().disconnect().await;
            }
        }
    }
}

impl std::fmt::Debug for MetaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetaDb({})", self.display_url())
    }
}

/// The secrets schema of metadata schema `schema`.
pub fn secret_schema_of(schema: &str) -> String {
    format!("{schema}_secret")
}

/// ottr's own URL parameters: the TLS settings of a metadata URL.
const TLS_PARAMETERS: [&str; 4] = ["tls_mode", "tls_ca", "tls_cert", "tls_key"];

/// Parses a MySQL URL and its TLS parameters (`tls_mode` = disabled, preferred (the default),
/// required, verify_ca or verify_identity; `tls_ca`, `tls_cert` and `tls_key` = PEM files, the
/// key this node's own, read within no allow-list). `prefer_socket` is off unless the URL asks
/// for it, so that a TCP URL reaches the server it names and host-based grants apply as
/// written; TLS is refused over a unix socket (where the driver would skip it silently).
pub(crate) fn parse_url(url: &str) -> Result<(Opts, crate::config::Tls)> {
    let invalid = |problem: String| {
        Error::Precheck(format!(
            "invalid database URL {}: {problem}",
            redact_url(url)
        ))
    };
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut tls_values: std::collections::HashMap<&str, String> = Default::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if TLS_PARAMETERS.contains(&name) {
            let value = percent_decode(value).map_err(invalid)?;
            tls_values.insert(name, value);
        } else {
            kept.push(pair);
        }
    }
    if tls_values.contains_key("tls_mode")
        && kept.iter().any(|pair| pair.starts_with("require_ssl="))
    {
        return Err(invalid(
            "give either tls_mode or require_ssl, not both".into(),
        ));
    }
    let tls = crate::config::Tls::validate(
        tls_values
            .get("tls_mode")
            .map_or("preferred", String::as_str),
        tls_values.get("tls_ca").map(String::as_str),
        tls_values.get("tls_cert").map(String::as_str),
        tls_values.get("tls_key").map(String::as_str),
    )
    .map_err(invalid)?;
    let plain = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let opts = Opts::from_url(&plain).map_err(|error| invalid(error.to_string()))?;
    let over_socket = kept.iter().any(|pair| {
        pair.starts_with("socket=") || *pair == "prefer_socket=true" || *pair == "prefer_socket=1"
    });
    if over_socket
        && tls.mode != crate::config::TlsMode::Disabled
        && tls_values.contains_key("tls_mode")
    {
        return Err(invalid(
            "TLS needs TCP: a unix socket connection is never encrypted".into(),
        ));
    }
    // A URL that asks mysql_async for TLS itself (require_ssl) keeps it; otherwise ottr's.
    let tls = if opts.ssl_opts().is_some() || over_socket {
        crate::config::Tls {
            mode: crate::config::TlsMode::Disabled,
            ..Default::default()
        }
    } else {
        tls
    };
    let opts = if plain.contains("prefer_socket=") {
        opts
    } else {
        OptsBuilder::from_opts(opts).prefer_socket(false).into()
    };
    Ok((opts, tls))
}

/// A URL query value with `%XX` escapes decoded (file paths may hold any character).
fn percent_decode(value: &str) -> std::result::Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = value
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("bad escape in '{value}'"))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("'{value}' is not UTF-8"))
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
