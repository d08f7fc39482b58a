//! The error type of ottr and the class that decides what a supervisor does with it.
//!
//! Every failure has a class: [`ErrorClass::Transient`] (it goes away by itself: retry from
//! the saved position with backoff) or [`ErrorClass::Fatal`] (definite: record the reason as
//! the pipeline's `error` and check again only after `retry_max_ms`, since an operator must
//! act). Each variant is one or the other, never both. `Display` says what went wrong in this layer
//! only; [`chain`] renders the whole cause chain for logs and status rows.

use crate::config::ConfigError;
use crate::model::{FencingToken, PipelineId};

/// Everything that can go wrong in ottr outside of the command line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query on the metadata database or a data server failed; `context` says which.
    #[error("{context}")]
    Database {
        context: String,
        #[source]
        source: mysql_async::Error,
    },
    /// A configuration row is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The metadata schema was migrated by a newer ottr.
    #[error(
        "the metadata schema is at version {found}, newer than this ottr knows (up to {known}): upgrade ottr"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// The metadata schema is missing or older than this ottr.
    #[error(
        "the metadata schema is at version {found}, this ottr needs {known}: run `ottr migrate`"
    )]
    SchemaTooOld { found: i64, known: i64 },
    /// Another live process already runs a node under this name.
    #[error(
        "a node named '{name}' is alive on host {host} (pid {pid}): stop it or choose another --name"
    )]
    NodeNameTaken {
        name: String,
        host: String,
        pid: u32,
    },
    /// This process's node row was taken over by another process with the same name.
    #[error("node '{name}' was registered again by another process; this one stops")]
    NodeReplaced { name: String },
    /// Of several metadata servers, none or more than one is writable.
    #[error("{0}")]
    MetaUnavailable(String),
    /// A write was refused because the lease's fencing token has moved on.
    #[error("pipeline {pipeline}: fencing token {token} is no longer current (the lease was lost)")]
    Fenced {
        pipeline: PipelineId,
        token: FencingToken,
    },
    /// A data server holds a fencing token for the pipeline that is not older than the
    /// lease's: the metadata handed out a token it had handed out before (it failed over to a
    /// replica that missed lease rows). The pipeline raises the lease's token past it.
    #[error(
        "pipeline {pipeline}: data source '{server}' holds fencing token {newest}, not older than this lease's {token}"
    )]
    TokenBehind {
        pipeline: PipelineId,
        token: FencingToken,
        server: String,
        newest: FencingToken,
    },
    /// A source or target failed a precheck; the message holds the fix.
    #[error("{0}")]
    Precheck(String),
    /// A server's TLS handshake or certificate was refused: trying again will not help.
    #[error("{context}")]
    TlsRefused {
        context: String,
        #[source]
        source: mysql_async::Error,
    },
    /// A data server could not be reached (connection refused, timeout, gone away).
    #[error("{context}")]
    Unreachable {
        context: String,
        #[source]
        source: mysql_async::Error,
    },
    /// The binlog holds something ottr must not skip and cannot read: an unknown or
    /// compressed event, a bad checksum. The message says where and why.
    #[error("{0}")]
    Binlog(String),
    /// The source no longer has the binlog position to read from (purged, or never there).
    #[error("{0}")]
    PositionGone(String),
    /// The binlog stream ended or fell silent; it is reopened from the last position.
    #[error("{0}")]
    StreamLost(String),
    /// The pipeline was asked to stop (between batches); not a failure.
    #[error("stopped")]
    Stopped,
    /// The source refuses the replica server id: another connection uses it. Transient, since
    /// it is also what a restarted reader sees until the source drops its dead connection.
    #[error("{0}")]
    ServerIdInUse(String),
    /// A change cannot be mapped to the target (a key column left out, DDL on a renamed table).
    #[error("{0}")]
    Transform(String),
    /// A row read from a database does not have the shape ottr expects.
    #[error("{context}: {problem}")]
    BadRow { context: String, problem: String },
    /// A metadata query did not answer in time.
    #[error("{0}: no answer within {1} ms")]
    Timeout(String, u64),
    /// Code of ottr panicked while running a pipeline: a bug, reported like any failure.
    #[error(
        "{0} panicked: {1} (a bug in ottr: please report it with the node's log; the pipeline is checked again after its backoff)"
    )]
    Panicked(String, String),
}

/// What a supervisor does with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry from the saved position with backoff.
    Transient,
    /// Record the reason and alert; an operator must act (checked again slowly).
    Fatal,
}

impl Error {
    /// Wraps a database error with what was being done.
    pub fn database(context: impl Into<String>, source: mysql_async::Error) -> Self {
        let context = context.into();
        if crate::tls::is_tls_failure(&source) {
            Error::TlsRefused { context, source }
        } else if is_connection_error(&source) {
            Error::Unreachable { context, source }
        } else {
            Error::Database { context, source }
        }
    }

    /// The class that decides how this error is handled.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Unreachable { .. }
            | Error::Timeout(..)
            | Error::ServerIdInUse(_)
            | Error::StreamLost(_)
            | Error::Stopped
            | Error::MetaUnavailable(_) => ErrorClass::Transient,
            Error::Database { source, .. } if is_transient_server_error(source) => {
                ErrorClass::Transient
            }
            Error::Database { .. }
            | Error::Config(_)
            | Error::SchemaTooNew { .. }
            | Error::SchemaTooOld { .. }
            | Error::NodeNameTaken { .. }
            | Error::NodeReplaced { .. }
            | Error::Fenced { .. }
            | Error::TokenBehind { .. }
            | Error::Precheck(_)
            | Error::Binlog(_)
            | Error::PositionGone(_)
            | Error::Transform(_)
            | Error::BadRow { .. }
            | Error::TlsRefused { .. }
            | Error::Panicked(..) => ErrorClass::Fatal,
        }
    }
}

/// Whether the error means the server could not be reached or went away.
fn is_connection_error(error: &mysql_async::Error) -> bool {
    match error {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(driver) => matches!(
            driver,
            mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PoolDisconnected
        ),
        mysql_async::Error::Server(server) => matches!(
            server.code,
            // server shutdown in progress, too many connections, lost connection
            1053 | 1040 | 2013 | 2006
        ),
        _ => false,
    }
}

/// Server errors that go away by themselves: deadlocks and lock wait timeouts.
pub(crate) fn is_transient_server_error(error: &mysql_async::Error) -> bool {
    matches!(error, mysql_async::Error::Server(server) if matches!(server.code, 1205 | 1213))
}

/// The server error code of a database error, if the server sent one.
pub(crate) fn server_code(error: &mysql_async::Error) -> Option<u16> {
    match error {
        mysql_async::Error::Server(server) => Some(server.code),
        _ => None,
    }
}

/// Renders an error with its whole cause chain, `outer: inner: root`.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The message a panic carried (its payload is a `&str` or a `String` when it came from
/// `panic!` with a message).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A result with ottr's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
