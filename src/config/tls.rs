//! TLS settings of a connection to a MySQL/MariaDB server (a data source, the metadata
//! database) or a mail server: the mode, and the files it needs. Pure: reading the files and
//! building the driver's options is `crate::tls`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// How a connection is encrypted, as MySQL's `--ssl-mode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Never TLS.
    Disabled,
    /// TLS when the server offers it, without checking its certificate; plain otherwise (an
    /// attacker on the path can make it plain).
    #[default]
    Preferred,
    /// Always TLS, without checking the certificate.
    Required,
    /// Always TLS; the certificate must chain to the configured CA.
    VerifyCa,
    /// Always TLS; the certificate must chain to the CA (or a public root when none is set)
    /// and name the host the connection was made to.
    VerifyIdentity,
}

impl TlsMode {
    /// Whether the connection is refused unless it is encrypted.
    pub fn requires_tls(self) -> bool {
        !matches!(self, TlsMode::Disabled | TlsMode::Preferred)
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Preferred => "preferred",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify_ca",
            TlsMode::VerifyIdentity => "verify_identity",
        })
    }
}

impl FromStr for TlsMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "disabled" => TlsMode::Disabled,
            "preferred" => TlsMode::Preferred,
            "required" => TlsMode::Required,
            "verify_ca" => TlsMode::VerifyCa,
            "verify_identity" => TlsMode::VerifyIdentity,
            _ => {
                return Err(format!(
                    "unknown TLS mode '{text}': use disabled, preferred, required, verify_ca or verify_identity"
                ));
            }
        })
    }
}

/// Validated TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub mode: TlsMode,
    /// PEM CA(s) the server's certificate must chain to (verify_ca, verify_identity).
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM chain) and its key, presented to the server.
    pub client: Option<ClientCertificate>,
}

/// A client certificate and its private key (a secret file: resolved within the node's
/// `--secrets-dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Tls {
    /// Validates stored TLS settings; the error says what is wrong.
    pub fn validate(
        mode: &str,
        ca_file: Option<&str>,
        cert_file: Option<&str>,
        key_file: Option<&str>,
    ) -> Result<Tls, String> {
        let mode: TlsMode = mode.parse()?;
        let path = |text: Option<&str>| {
            text.filter(|text| !text.is_empty())
                .map(|text| PathBuf::from(text.strip_prefix("file:").unwrap_or(text)))
        };
        let ca_file = path(ca_file);
        if mode == TlsMode::VerifyCa && ca_file.is_none() {
            return Err("TLS mode verify_ca needs a CA file".into());
        }
        let client = match (path(cert_file), path(key_file)) {
            (None, None) => None,
            (Some(cert_file), Some(key_file)) => Some(ClientCertificate {
                cert_file,
                key_file,
            }),
            _ => return Err("a client certificate needs both a certificate and a key file".into()),
        };
        if client.is_some() && mode == TlsMode::Disabled {
            return Err("a client certificate needs TLS: the mode is disabled".into());
        }
        Ok(Tls {
            mode,
            ca_file,
            client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_files_are_checked() {
        assert_eq!(
            Tls::validate("preferred", None, None, None).unwrap(),
            Tls::default()
        );
        let tls = Tls::validate(
            "VERIFY_IDENTITY",
            Some("/ca.pem"),
            Some("/c.pem"),
            Some("file:c.key"),
        )
        .unwrap();
        assert_eq!(tls.mode, TlsMode::VerifyIdentity);
        assert_eq!(tls.client.unwrap().key_file, PathBuf::from("c.key"));
        assert!(
            Tls::validate("verify_ca", None, None, None)
                .unwrap_err()
                .contains("CA file")
        );
        assert!(
            Tls::validate("maybe", None, None, None)
                .unwrap_err()
                .contains("unknown TLS mode 'maybe'")
        );
        assert!(
            Tls::validate("required", None, Some("/c.pem"), None)
                .unwrap_err()
                .contains("both")
        );
        assert!(
            Tls::validate("disabled", None, Some("/c"), Some("k"))
                .unwrap_err()
                .contains("disabled")
        );
        assert!(TlsMode::Required.requires_tls() && !TlsMode::Preferred.requires_tls());
    }
}
