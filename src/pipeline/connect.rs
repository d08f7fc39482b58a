//! Connections to data servers (sources and targets), built from a validated data source:
//! over TCP, with TLS as the data source's mode says, the password resolved here (within
//! the node's secret allow-list), never appearing in an error.

use crate::config::DataSource;
use crate::error::{Error, Result};
use crate::tls::TlsConnectError;
use mysql_async::{Conn, OptsBuilder};
use std::time::Duration;

/// How long connecting to a data server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What failing to connect to `source` is called.
fn context(source: &DataSource) -> String {
    format!(
        "cannot connect to data source '{}' ({}:{} as {}, TLS {})",
        source.name, source.host, source.port, source.user, source.tls.mode
    )
}

/// Connection options for `source` over TCP, with its password resolved, without TLS.
async fn base_options(source: &DataSource) -> Result<OptsBuilder> {
    let password =
        source.password.resolve().await.map_err(|problem| {
            Error::Precheck(format!("data source '{}': {problem}", source.name))
        })?;
    Ok(OptsBuilder::default()
        .ip_or_hostname(source.host.clone())
        .tcp_port(source.port)
        .user(Some(source.user.clone()))
        .pass(password)
        .prefer_socket(false))
}

fn failed(source: &DataSource, error: TlsConnectError) -> Error {
    match error {
        TlsConnectError::Settings(problem) => {
            Error::Precheck(format!("{}: {problem}", context(source)))
        }
        TlsConnectError::Driver(error) => Error::database(context(source), error),
    }
}

/// Connection options for a pool of connections to `source`: TLS as its mode says (for
/// `preferred`, one connection tells whether the server offers TLS).
pub async fn options(source: &DataSource) -> Result<OptsBuilder> {
    let base = base_options(source).await?;
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        crate::tls::pool_options(base, &source.tls, crate::tls::KeyFrom::SecretsDir),
    )
    .await
    {
        Ok(result) => result.map_err(|error| failed(source, error)),
        Err(_) => Err(Error::Timeout(
            context(source),
            CONNECT_TIMEOUT.as_millis() as u64,
        )),
    }
}

/// Opens one connection to `source` in UTC, over TCP.
pub async fn connect(source: &DataSource) -> Result<Conn> {
    let opts = base_options(source)
        .await?
        .init(vec!["SET SESSION time_zone = '+00:00'"]);
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        crate::tls::connect(opts, &source.tls, crate::tls::KeyFrom::SecretsDir),
    )
    .await
    {
        Ok(result) => result.map_err(|error| failed(source, error)),
        Err(_) => Err(Error::Timeout(
            context(source),
            CONNECT_TIMEOUT.as_millis() as u64,
        )),
    }
}
