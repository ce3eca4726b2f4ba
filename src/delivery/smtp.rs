//! Step emails over SMTP: a pool of connections per engine, TLS as configured, and failures
//! classified: a 5xx reply is permanent, everything else (4xx, connection errors, timeouts)
//! is temporary and retried.
//!
//! lettre speaks SMTP; touchline opens the TCP connections itself so they carry
//! `TCP_NODELAY`. Without it, the message body and the closing `.` go out as two writes and
//! the second waits for the server's delayed ACK (about 40 ms) on every mail, which caps a
//! connection at a couple of dozen mails a second. The pool is touchline's own as well:
//! lettre's sends a NOOP before every reuse, one more round trip per mail; here a
//! connection idle for a while is tested before reuse, and a recently used one is trusted,
//! with one fresh try if it turns out to be closed before the first command.
//!
//! Where the server offers PIPELINING (RFC 2920), a mail takes two round trips instead of
//! four: MAIL FROM, RCPT TO and DATA go in one write, and the dot-stuffed message with its
//! closing `.` in another.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::Attempt;
use crate::definitions::config::{Smtp, SmtpTls};

/// How long one mail (or one connection set-up) may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(30);
/// A connection idle longer than this is tested (NOOP) before it carries another mail.
const TRUSTED_IDLE: Duration = Duration::from_secs(5);
/// A connection idle longer than this is closed rather than reused: servers drop idle
/// sessions after a few minutes.
const MAX_IDLE: Duration = Duration::from_secs(60);

type LettreError = lettre::transport::smtp::Error;

/// Why a mail did not go: the server or lettre said so, or the TCP connection failed.
#[derive(Debug)]
enum Trouble {
    Smtp(LettreError),
    Connect(io::Error),
}

impl From<LettreError> for Trouble {
    fn from(error: LettreError) -> Self {
        Trouble::Smtp(error)
    }
}

/// An SMTP server, ready to send.
pub struct SmtpChannel {
    server: String,
    host: String,
    port: u16,
    tls: Option<(SmtpTls, TlsParameters)>,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// One permit per connection that may be open.
    slots: Semaphore,
    /// Open connections waiting for their next mail, with when they were last used.
    idle: Mutex<Vec<(Session, Instant)>>,
}

/// An open connection, and whether its server takes pipelined commands.
struct Session {
    connection: AsyncSmtpConnection,
    pipelining: bool,
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
        let tls = match smtp.tls {
            SmtpTls::None => None,
            mode => Some((mode, tls_parameters(smtp, root)?)),
        };
        let credentials = match &smtp.username {
            Some(user) => {
                let password = match &smtp.password_env {
                    Some(var) => {
                        std::env::var(var).map_err(|_| format!("set {var} to the SMTP password"))?
                    }
                    None => String::new(),
                };
                Some(Credentials::new(user.clone(), password))
            }
            None => None,
        };
        Ok(Self {
            server: format!("{}:{port}", smtp.host),
            host: smtp.host.clone(),
            port,
            tls,
            credentials,
            hello: ClientId::default(),
            slots: Semaphore::new(connections.max(1)),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends one message: the server's reply on success; a 550/551/553 reply (no such
    /// mailbox) is a hard bounce.
    pub async fn send(&self, message: Message) -> Attempt {
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        // The semaphore is never closed.
        let Ok(_slot) = self.slots.acquire().await else {
            return Attempt::Temporary(format!("{}: no connection slot", self.server), None);
        };
        let outcome = match tokio::time::timeout(TIMEOUT, self.send_pooled(&envelope, &bytes)).await
        {
            Ok(outcome) => outcome,
            Err(_) => return Attempt::Temporary(format!("{}: timed out", self.server), None),
        };
        match outcome {
            Ok(response) => Attempt::Sent(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Err(error) => self.classify(error),
        }
    }

    fn classify(&self, trouble: Trouble) -> Attempt {
        let error = match trouble {
            Trouble::Smtp(error) => error,
            Trouble::Connect(error) => {
                return Attempt::Temporary(format!("{}: {error}", self.server), None);
            }
        };
        let reason = format!("{}: {error}", self.server);
        if !error.is_permanent() {
            return Attempt::Temporary(reason, None);
        }
        match error.status().map(|code| code.to_string()).as_deref() {
            Some("550" | "551" | "553") => Attempt::Bounced(reason),
            _ => Attempt::Permanent(reason),
        }
    }

    /// Sends over a pooled connection; a reused one that turns out closed before the server
    /// saw anything of this mail is replaced by a fresh one, once.
    async fn send_pooled(&self, envelope: &Envelope, bytes: &[u8]) -> Result<Response, Trouble> {
        if let Some(connection) = self.reusable().await {
            match self.carry(connection, envelope, bytes).await {
                Err(Failed::BeforeMail(_)) => {}
                Ok(response) => return Ok(response),
                Err(Failed::During(error)) => return Err(error.into()),
            }
        }
        let connection = self.connect().await?;
        match self.carry(connection, envelope, bytes).await {
            Ok(response) => Ok(response),
            Err(Failed::BeforeMail(error) | Failed::During(error)) => Err(error.into()),
        }
    }

    /// One mail over `connection`: back to the pool after it, closed after a failure.
    async fn carry(
        &self,
        mut session: Session,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<Response, Failed> {
        let result = if session.pipelining {
            pipelined_transaction(&mut session.connection, envelope, bytes).await
        } else {
            transaction(&mut session.connection, envelope, bytes).await
        };
        match result {
            Ok(_) => self.put_back(session),
            Err(_) => session.connection.abort().await,
        }
        result
    }

    /// An idle connection fit for another mail, if there is one.
    async fn reusable(&self) -> Option<Session> {
        loop {
            let (mut session, since) = self.idle.lock().ok()?.pop()?;
            let idle = since.elapsed();
            if idle > MAX_IDLE {
                session.connection.abort().await;
                continue;
            }
            if idle > TRUSTED_IDLE && !session.connection.test_connected().await {
                session.connection.abort().await;
                continue;
            }
            return Some(session);
        }
    }

    fn put_back(&self, session: Session) {
        if session.connection.has_broken() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((session, Instant::now()));
        }
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, TLS as configured, then login.
    async fn connect(&self) -> Result<Session, Trouble> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(Trouble::Connect)?;
        tcp.set_nodelay(true).map_err(Trouble::Connect)?;
        let mut connection = match &self.tls {
            Some((SmtpTls::Tls, parameters)) => {
                #[allow(deprecated)]
                let mut stream =
                    lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(
                        Box::new(tcp),
                    );
                stream.upgrade_tls(parameters.clone()).await?;
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(TlsStream(stream)),
                    &self.hello,
                )
                .await?
            }
            Some((_, parameters)) => {
                let mut connection =
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?;
                connection.starttls(parameters.clone(), &self.hello).await?;
                connection
            }
            None => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?,
        };
        // lettre keeps only the extensions it knows of the server's EHLO reply, and
        // PIPELINING is not one of them: ask again (before logging in, which a fresh EHLO
        // could undo) and read it from the reply.
        let hello = connection.command(Ehlo::new(self.hello.clone())).await?;
        let pipelining = hello.message().any(|line| {
            line.split_ascii_whitespace()
                .next()
                .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
        });
        if let Some(credentials) = &self.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(Session {
            connection,
            pipelining,
        })
    }
}

/// TLS settings: the system's web roots, plus the CA in `ca_file` when one is set.
fn tls_parameters(smtp: &Smtp, root: &Path) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(smtp.host.clone());
    if let Some(file) = &smtp.ca_file {
        let path = root.join(file);
        let pem =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let ca = Certificate::from_pem(&pem)
            .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
        builder = builder.add_root_certificate(ca);
    }
    builder
        .build()
        .map_err(|e| format!("SMTP TLS settings: {e}"))
}

/// Where a mail transaction stopped.
enum Failed {
    /// The connection failed before the server answered `MAIL FROM`: nothing of this mail
    /// reached it, so another connection may try.
    BeforeMail(LettreError),
    /// Anything later.
    During(LettreError),
}

/// The MAIL FROM command for a mail, with the parameters its addresses and body need.
fn mail_command(connection: &AsyncSmtpConnection, envelope: &Envelope, bytes: &[u8]) -> Mail {
    // Declared when the server supports them; a server that does not rejects what it
    // cannot carry, with a reply that says so.
    let supports = |extension| connection.server_info().supports_feature(extension);
    let mut options = Vec::new();
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|address| !AsRef::<str>::as_ref(address).is_ascii());
    if non_ascii_address && supports(Extension::SmtpUtfEight) {
        options.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() && supports(Extension::EightBitMime) {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Mail::new(envelope.from().cloned(), options)
}

/// The reply to MAIL FROM: a failure to reach the server (rather than its refusal) means
/// nothing of this mail reached it.
fn mail_reply(reply: Result<Response, LettreError>) -> Result<Response, Failed> {
    match reply {
        Err(error) if error.is_transient() || error.is_permanent() => Err(Failed::During(error)),
        Err(error) => Err(Failed::BeforeMail(error)),
        Ok(response) => Ok(response),
    }
}

/// One mail: MAIL FROM, RCPT TO for each recipient, DATA and the message.
async fn transaction(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<Response, Failed> {
    let mail = mail_command(connection, envelope, bytes);
    mail_reply(connection.command(mail).await)?;
    for to in envelope.to() {
        connection
            .command(Rcpt::new(to.clone(), vec![]))
            .await
            .map_err(Failed::During)?;
    }
    connection.command(Data).await.map_err(Failed::During)?;
    connection.message(bytes).await.map_err(Failed::During)
}

/// One mail, pipelined (RFC 2920): MAIL FROM, every RCPT TO and DATA in one write, their
/// replies read in order (the first refusal is the mail's outcome; the connection is then
/// closed, with the replies still due unread), then the message and its closing `.` in one
/// write.
async fn pipelined_transaction(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<Response, Failed> {
    use std::fmt::Write as _;
    let mut commands = mail_command(connection, envelope, bytes).to_string();
    for to in envelope.to() {
        // Writing to a String cannot fail.
        let _ = write!(commands, "{}", Rcpt::new(to.clone(), vec![]));
    }
    let _ = write!(commands, "{Data}");
    mail_reply(connection.command(Raw(&commands)).await)?;
    for _ in envelope.to() {
        connection.read_response().await.map_err(Failed::During)?;
    }
    connection.read_response().await.map_err(Failed::During)?;
    match std::str::from_utf8(bytes) {
        Ok(text) => connection
            .command(Raw(&dot_stuffed(text)))
            .await
            .map_err(Failed::During),
        // lettre writes text; other bytes go its own way, in two writes.
        Err(_) => connection.message(bytes).await.map_err(Failed::During),
    }
}

/// Text written to the server as it is (lettre's `command` writes what a value displays).
struct Raw<'a>(&'a str);

impl std::fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A message as DATA carries it (RFC 5321 4.5.2): a line starting with `.` gets another
/// `.` in front, and `CRLF . CRLF` ends it.
fn dot_stuffed(message: &str) -> String {
    const END: &str = "\r\n.\r\n";
    // Most messages have no line to stuff: copied once, without walking their lines.
    if !message.starts_with('.') && !message.contains("\r\n.") {
        let mut out = String::with_capacity(message.len() + END.len());
        out.push_str(message);
        out.push_str(END);
        return out;
    }
    let mut out = String::with_capacity(message.len() + 16);
    for (i, line) in message.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    out.push_str(END);
    out
}

/// A TLS stream lettre set up (implicit TLS, port 465), handed back to lettre as a plain
/// tokio stream so the connection is opened by touchline, with `TCP_NODELAY`.
#[allow(deprecated)]
#[derive(Debug)]
struct TlsStream(lettre::transport::smtp::client::AsyncNetworkStream);

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        match futures_io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, unfilled) {
            Poll::Ready(Ok(read)) => {
                buf.advance(read);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::dot_stuffed;

    #[test]
    fn lines_starting_with_a_dot_get_another_and_a_dot_line_ends_the_message() {
        assert_eq!(dot_stuffed("Hi\r\n"), "Hi\r\n\r\n.\r\n");
        assert_eq!(
            dot_stuffed(".start\r\nmid.dle\r\n..two\r\n.\r\nend"),
            "..start\r\nmid.dle\r\n...two\r\n..\r\nend\r\n.\r\n"
        );
        // Only CRLF starts a line; a bare CR or LF does not.
        assert_eq!(dot_stuffed("a\r.b\n.c"), "a\r.b\n.c\r\n.\r\n");
    }
}
