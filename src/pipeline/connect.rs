//! Connections to data servers (sources and targets), built from a validated data source.
//! The password is resolved here, at connect time, and never appears in an error.

use crate::config::DataSource;
use crate::error::{Error, Result};
use mysql_async::{Conn, OptsBuilder};
use std::time::Duration;

/// How long connecting to a data server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection options for `source` over TCP, with its password resolved (the error names
/// the reference, never a password).
pub fn options(source: &DataSource) -> Result<OptsBuilder> {
    let password = source
        .password
        .resolve()
        .map_err(|problem| Error::Precheck(format!("data source '{}': {problem}", source.name)))?;
    Ok(OptsBuilder::default()
        .ip_or_hostname(source.host.clone())
        .tcp_port(source.port)
        .user(Some(source.user.clone()))
        .pass(password)
        .prefer_socket(false))
}

/// Opens one connection to `source` in UTC, over TCP.
pub async fn connect(source: &DataSource) -> Result<Conn> {
    let opts = options(source)?.init(vec!["SET SESSION time_zone = '+00:00'"]);
    let context = format!(
        "cannot connect to data source '{}' ({}:{} as {})",
        source.name, source.host, source.port, source.user
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(Error::database(context, error)),
        Err(_) => Err(Error::Timeout(context, CONNECT_TIMEOUT.as_millis() as u64)),
    }
}
