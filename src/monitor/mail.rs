//! Sends alert mail through SMTP with lettre (plain, STARTTLS or TLS with rustls).

use crate::config::{Smtp, SmtpSecurity};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
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
    /// Builds a transport from the SMTP settings; the error names what is wrong (a password
    /// reference that cannot be read, a host TLS cannot use).
    pub fn new(smtp: &Smtp) -> Result<Self, String> {
        let builder = match smtp.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                    .map_err(|error| format!("SMTP host {}: {error}", smtp.host))?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                .map_err(|error| format!("SMTP host {}: {error}", smtp.host))?,
        };
        let mut builder = builder.port(smtp.port).timeout(Some(SEND_TIMEOUT));
        if let Some(user) = &smtp.user {
            let password = smtp
                .password
                .resolve()
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
