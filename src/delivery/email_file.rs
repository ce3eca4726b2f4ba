//! Step emails as `.eml` files, for when no SMTP server is configured: each mail is a
//! complete RFC 5322 message named by its idempotency key, written atomically.

use std::path::{Path, PathBuf};

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use crate::store::{OutboxRecord, Payload};

/// Why a mail could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailError {
    /// The mail itself is wrong (an address that is not one): retrying will not help.
    Permanent(String),
    /// The folder could not be written: try again later.
    Temporary(String),
}

/// A Message-ID that is the same every time the same step's mail is produced, and unique
/// across installations: the record's key, the installation's random id (kept in the
/// database), at the sender's domain. Mailbox providers drop a message whose Message-ID they
/// have seen, so two installations (or one after a database reset) must never share one.
pub fn message_id(idempotency_key: &str, installation: &str, from: &Mailbox) -> String {
    let local: String = idempotency_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{local}.{installation}@{}>", from.email.domain())
}

/// `List-Unsubscribe: <https://…/unsubscribe?token=…>` (RFC 2369).
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim_matches(|c| c == '<' || c == '>').to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".into())
    }
}

/// What a mail carries besides its rendered payload.
#[derive(Debug, Clone, Default)]
pub struct Envelope<'a> {
    /// Sender (`email.from`).
    pub from: Option<&'a str>,
    /// Reply-To (`email.reply_to`).
    pub reply_to: Option<&'a str>,
    /// The one-click unsubscribe link (none for notices to CSMs and test sends).
    pub unsubscribe: Option<String>,
    /// Send to this address instead of the record's recipient (`preview --send-test`).
    pub to_override: Option<&'a str>,
    /// The installation's id, part of every Message-ID.
    pub installation: &'a str,
}

/// Builds the message for an email outbox record.
pub fn build(
    record: &OutboxRecord,
    envelope: &Envelope<'_>,
) -> Result<lettre::Message, EmailError> {
    let Payload::Email(mail) = &record.payload else {
        return Err(EmailError::Permanent(format!(
            "record {} is a {}, not a mail",
            record.idempotency_key,
            record.kind()
        )));
    };
    let to_text = envelope
        .to_override
        .map_or_else(|| mail.to.clone(), str::to_string);
    let to: Mailbox = to_text
        .parse()
        .map_err(|e| EmailError::Permanent(format!("bad recipient `{to_text}`: {e}")))?;
    let from: Mailbox = envelope
        .from
        .unwrap_or("touchline <touchline@localhost>")
        .parse()
        .map_err(|e| EmailError::Permanent(format!("bad sender in touchline.yaml: {e}")))?;
    let id = message_id(&record.idempotency_key, envelope.installation, &from);
    let mut builder = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .message_id(Some(id));
    if let Some(reply_to) = envelope.reply_to {
        let reply_to: Mailbox = reply_to
            .parse()
            .map_err(|e| EmailError::Permanent(format!("bad reply_to in touchline.yaml: {e}")))?;
        builder = builder.reply_to(reply_to);
    }
    if let Some(link) = &envelope.unsubscribe {
        builder = builder
            .header(ListUnsubscribe(link.clone()))
            .header(ListUnsubscribePost);
    }
    let body = match &mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            html.clone(),
        )),
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone()),
    };
    body.map_err(|e| EmailError::Permanent(format!("cannot build the mail: {e}")))
}

/// `text` with everything but ASCII letters, digits and `-` replaced by `_`, for a file name.
pub fn safe_file_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the mail to `<dir>/<key>.eml` (replacing an earlier copy of the same step's mail).
pub fn write(
    dir: &Path,
    record: &OutboxRecord,
    envelope: &Envelope<'_>,
) -> Result<PathBuf, EmailError> {
    let message = build(record, envelope)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| EmailError::Temporary(format!("cannot create {}: {e}", dir.display())))?;
    let name = safe_file_name(&record.idempotency_key);
    let path = dir.join(format!("{name}.eml"));
    let temporary = dir.join(format!(".{name}.eml.tmp"));
    std::fs::write(&temporary, message.formatted())
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| EmailError::Temporary(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}
