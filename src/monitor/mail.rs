//! Sends alert mail through SMTP with lettre (plain, STARTTLS or TLS with rustls). A login
//! goes only over an encrypted connection (validation refuses a user without TLS, and
//! STARTTLS is required, never opportunistic); the server's certificate is checked against
//! the configured CA (or the public roots), and a client certificate can be presented.

use crate::config::{Smtp, SmtpSecurity, read_public_file, read_secret_file};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, Identity, Tls, TlsParameters,
};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection setup to the mail server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Mailer {
    /// Builds a transport from the SMTP settings, reading its TLS files; the error names
    /// what is wrong (a password reference that cannot be read, a CA file, a host TLS cannot
    /// use).
    pub async fn new(smtp: &Smtp) -> Result<Self, String> {
        let tls = match smtp.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(smtp).await?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(smtp).await?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
                .port(smtp.port)
                .tls(tls)
                .timeout(Some(SEND_TIMEOUT));
        if let Some(user) = &smtp.user {
            let password = smtp
                .password
                .resolve()
                .await
                .map_err(|problem| format!("SMTP password: {problem}"))?
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: smtp.from.clone(),
        })
    }

    /// Sends one plain-text mail to every recipient.
    pub async fn send(
        &self,
        recipients: &[String],
        subject: &str,
        body: &str,
    ) -> Result<(), String> {
        let mut message = Message::builder().from(self.from.clone()).subject(subject);
        for recipient in recipients {
            let mailbox = recipient
                .parse()
                .map_err(|_| format!("recipient '{recipient}' is not an email address"))?;
            message = message.to(mailbox);
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|error| format!("cannot build the mail: {error}"))?;
        match tokio::time::timeout(SEND_TIMEOUT * 2, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("SMTP send failed: {error}")),
            Err(_) => Err(format!(
                "SMTP send took over {} s",
                (SEND_TIMEOUT * 2).as_secs()
            )),
        }
    }
}

/// TLS parameters for the mail server: its certificate checked against the configured CA
/// (only that CA) or the public roots, and a client certificate when one is configured.
async fn tls_parameters(smtp: &Smtp) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(ca) = &smtp.tls_ca_file {
        let pem = read_public_file(ca, "SMTP CA file").await?;
        let certificate = Certificate::from_pem(&pem)
            .map_err(|error| format!("SMTP CA file {}: {error}", ca.display()))?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(certificate);
    }
    if let Some(client) = &smtp.client {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let pem = read_public_file(&client.cert_file, "SMTP client certificate").await?;
        // lettre takes the certificate as DER (only the first of a chain is sent)
        let der = CertificateDer::from_pem_slice(&pem).map_err(|error| {
            format!(
                "SMTP client certificate {}: {error}",
                client.cert_file.display()
            )
        })?;
        let key = read_secret_file(&client.key_file).await?;
        let identity = Identity::from_pem(der.as_ref(), &key)
            .map_err(|error| format!("SMTP client key {}: {error}", client.key_file.display()))?;
        builder = builder.identify_with(identity);
    }
    builder
        .build_rustls()
        .map_err(|error| format!("SMTP host {}: {error}", smtp.host))
}
