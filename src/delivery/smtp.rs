//! Step emails over SMTP (lettre): a pooled connection per engine, TLS as configured, and
//! failures classified: a 5xx reply is permanent, everything else (4xx, connection errors,
//! timeouts) is temporary and retried.

use std::time::Duration;

use std::path::Path;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Attempt;
use crate::definitions::config::{Smtp, SmtpTls};

/// An SMTP server, ready to send.
#[derive(Clone)]
pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
}

impl std::fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpChannel")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SmtpChannel {
    /// Connects lazily to the server in `touchline.yaml`, keeping up to `connections` open
    /// (one per delivery in flight); the password comes from the environment variable
    /// `password_env` names.
    pub fn new(smtp: &Smtp, connections: usize, root: &Path) -> Result<Self, String> {
        let port = smtp.port.unwrap_or(match smtp.tls {
            SmtpTls::Tls => 465,
            SmtpTls::Starttls => 587,
            SmtpTls::None => 25,
        });
        let builder = match smtp.tls {
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &smtp.host,
            )),
        }
        .map_err(|e| format!("SMTP server {}: {e}", smtp.host))?;
        let builder = match (&smtp.ca_file, smtp.tls) {
            (Some(file), SmtpTls::Tls | SmtpTls::Starttls) => {
                let path = root.join(file);
                let pem = std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let ca = Certificate::from_pem(&pem)
                    .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
                let parameters = TlsParameters::builder(smtp.host.clone())
                    .add_root_certificate(ca)
                    .build()
                    .map_err(|e| format!("SMTP TLS settings: {e}"))?;
                builder.tls(match smtp.tls {
                    SmtpTls::Tls => Tls::Wrapper(parameters),
                    _ => Tls::Required(parameters),
                })
            }
            _ => builder,
        };
        let pool = PoolConfig::new().max_size(u32::try_from(connections).unwrap_or(u32::MAX));
        let mut builder = builder
            .port(port)
            .timeout(Some(Duration::from_secs(30)))
            .pool_config(pool);
        if let Some(user) = &smtp.username {
            let password = match &smtp.password_env {
                Some(var) => {
                    std::env::var(var).map_err(|_| format!("set {var} to the SMTP password"))?
                }
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            server: format!("{}:{port}", smtp.host),
        })
    }

    /// Sends one message: the server's reply on success; a 550/551/553 reply (no such
    /// mailbox) is a hard bounce.
    pub async fn send(&self, message: Message) -> Attempt {
        match self.transport.send(message).await {
            Ok(response) => Attempt::Sent(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Err(error) if error.is_permanent() => {
                let reason = format!("{}: {error}", self.server);
                let code = error.status().map(|code| code.to_string());
                match code.as_deref() {
                    Some("550" | "551" | "553") => Attempt::Bounced(reason),
                    _ => Attempt::Permanent(reason),
                }
            }
            Err(error) => Attempt::Temporary(format!("{}: {error}", self.server), None),
        }
    }
}
