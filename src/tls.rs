//! TLS on connections to MySQL/MariaDB servers (data sources and the metadata database):
//! the driver's options built from validated settings, with the CA, certificate and key
//! files read by ottr (bounded; the key only within the node's `--secrets-dir`), and what a
//! live connection's encryption is.
//!
//! Invariants:
//! - with a CA file the built-in public roots are off, so only that CA's certificates pass;
//! - `preferred` falls back to a plain connection only when the server offers no TLS, or none
//!   rustls can use (it checks no certificate, and an attacker on the path can strip the
//!   offer anyway); the other modes never retry in plain;
//! - TLS is only asked for over TCP (the driver skips it on unix sockets without a word).

use crate::config::{Tls, TlsMode, read_public_file, read_secret_file};
use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, DriverError, OptsBuilder, SslOpts};

/// Where a client key may be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFrom {
    /// A configuration row named it: only inside the node's `--secrets-dir`.
    SecretsDir,
    /// The node's own command line named it (the metadata URL): any path.
    CommandLine,
}

/// The driver's TLS options for `tls`; None when the mode is disabled.
pub async fn ssl_opts(tls: &Tls, key_from: KeyFrom) -> Result<Option<SslOpts>, String> {
    let mut opts = match tls.mode {
        TlsMode::Disabled => return Ok(None),
        TlsMode::Preferred | TlsMode::Required => {
            SslOpts::default().with_danger_accept_invalid_certs(true)
        }
        TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
            let mut opts = SslOpts::default();
            if let Some(ca) = &tls.ca_file {
                let pem = read_public_file(ca, "CA file").await?;
                opts = opts
                    .with_root_certs(vec![pem.into()])
                    .with_disable_built_in_roots(true);
            }
            opts.with_danger_skip_domain_validation(tls.mode == TlsMode::VerifyCa)
        }
    };
    if let Some(client) = &tls.client {
        let cert = read_public_file(&client.cert_file, "client certificate").await?;
        let key = match key_from {
            KeyFrom::SecretsDir => read_secret_file(&client.key_file).await?,
            KeyFrom::CommandLine => read_public_file(&client.key_file, "client key").await?,
        };
        opts = opts.with_client_identity(Some(ClientIdentity::new(cert.into(), key.into())));
    }
    Ok(Some(opts))
}

/// Whether `preferred` falls back to a plain connection after `error`: when the server
/// offers no TLS, or its TLS cannot be used (an old protocol, a certificate rustls cannot
/// parse). `preferred` checks nothing anyway, and an attacker on the path can strip the
/// server's TLS offer, so this falls back no further than the mode promises.
fn falls_back(error: &mysql_async::Error) -> bool {
    matches!(
        error,
        mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)
    ) || is_tls_failure(error)
}

/// Connects with `base` (TCP) under `tls`: plain when disabled, TLS otherwise, and for
/// `preferred` plain again when the server offers no TLS, or none that can be used.
pub async fn connect(
    base: OptsBuilder,
    tls: &Tls,
    key_from: KeyFrom,
) -> Result<Conn, TlsConnectError> {
    let Some(ssl) = ssl_opts(tls, key_from)
        .await
        .map_err(TlsConnectError::Settings)?
    else {
        return Conn::new(base).await.map_err(TlsConnectError::Driver);
    };
    match Conn::new(base.clone().ssl_opts(ssl)).await {
        Err(error) if tls.mode == TlsMode::Preferred && falls_back(&error) => {
            if is_tls_failure(&error) {
                tracing::warn!(error = %error, "TLS mode preferred: the server's TLS cannot be used, connecting without it");
            }
            Conn::new(base).await.map_err(TlsConnectError::Driver)
        }
        Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)) => {
            Err(TlsConnectError::Settings(format!(
                "the server offers no TLS, and the TLS mode is {}",
                tls.mode
            )))
        }
        result => result.map_err(TlsConnectError::Driver),
    }
}

/// The options a pool of connections to the server of `base` uses under `tls`: for
/// `preferred`, one connection decides whether the server offers TLS.
pub async fn pool_options(
    base: OptsBuilder,
    tls: &Tls,
    key_from: KeyFrom,
) -> Result<OptsBuilder, TlsConnectError> {
    let Some(ssl) = ssl_opts(tls, key_from)
        .await
        .map_err(TlsConnectError::Settings)?
    else {
        return Ok(base);
    };
    if tls.mode != TlsMode::Preferred {
        return Ok(base.ssl_opts(ssl));
    }
    let with_tls = base.clone().ssl_opts(ssl);
    match Conn::new(with_tls.clone()).await {
        Ok(conn) => {
            let _ = conn.disconnect().await;
            Ok(with_tls)
        }
        Err(error) if falls_back(&error) => {
            if is_tls_failure(&error) {
                tracing::warn!(error = %error, "TLS mode preferred: the server's TLS cannot be used, connecting without it");
            }
            Ok(base)
        }
        Err(error) => Err(TlsConnectError::Driver(error)),
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
pub enum TlsConnectError {
    /// The TLS settings cannot be used (a file, a mode the server cannot meet).
    Settings(String),
    Driver(mysql_async::Error),
}

/// The TLS version and cipher of a live connection; None when it is not encrypted.
pub async fn encryption(conn: &mut Conn) -> Result<Option<(String, String)>, mysql_async::Error> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        .await?;
    let value = |name: &str| {
        rows.iter()
            .find(|(variable, _)| variable.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
    };
    Ok(value("Ssl_version").map(|version| (version, value("Ssl_cipher").unwrap_or_default())))
}

/// Whether a driver error is a refused TLS handshake or certificate, which trying again
/// will not fix (unlike a lost connection).
pub fn is_tls_failure(error: &mysql_async::Error) -> bool {
    match error {
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => true,
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}
