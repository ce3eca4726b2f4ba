//! Step emails as `.eml` files, for when no SMTP server is configured: each mail is a
//! complete RFC 5322 message named by its idempotency key, written atomically.

use std::path::{Path, PathBuf};

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use crate::definitions::config::EmailSettings;
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

/// The sender's mailboxes (`email.from`, `email.reply_to`), parsed once per deliverer
/// rather than once per mail.
#[derive(Debug, Clone)]
pub struct Sender {
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

/// The sender when `email.from` is not set.
const DEFAULT_FROM: &str = "touchline <touchline@localhost>";

impl Sender {
    /// The sender `settings` name, or why one of its addresses is not one.
    pub fn of(settings: &EmailSettings) -> Result<Self, String> {
        let from = settings
            .from
            .as_deref()
            .unwrap_or(DEFAULT_FROM)
            .parse()
            .map_err(|e| format!("bad sender in touchline.yaml: {e}"))?;
        let reply_to = settings
            .reply_to
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| format!("bad reply_to in touchline.yaml: {e}"))?;
        Ok(Self { from, reply_to })
    }
}

/// What a mail carries besides its rendered payload and its sender.
#[derive(Debug, Clone, Default)]
pub struct Envelope<'a> {
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
    sender: &Sender,
    envelope: &Envelope<'_>,
) -> Result<lettre::Message, EmailError> {
    let Payload::Email(mail) = &record.payload else {
        return Err(EmailError::Permanent(format!(
            "record {} is a {}, not a mail",
            record.idempotency_key,
            record.kind()
        )));
    };
    let to_text = envelope.to_override.unwrap_or(&mail.to);
    let to: Mailbox = to_text
        .parse()
        .map_err(|e| EmailError::Permanent(format!("bad recipient `{to_text}`: {e}")))?;
    // Given rather than left to lettre, which would parse it back out of the headers just
    // written.
    let smtp_envelope =
        lettre::address::Envelope::new(Some(sender.from.email.clone()), vec![to.email.clone()])
            .map_err(|e| EmailError::Permanent(format!("cannot address the mail: {e}")))?;
    let id = message_id(&record.idempotency_key, envelope.installation, &sender.from);
    let mut builder = lettre::Message::builder()
        .from(sender.from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .message_id(Some(id))
        .envelope(smtp_envelope);
    if let Some(reply_to) = &sender.reply_to {
        builder = builder.reply_to(reply_to.clone());
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
    sender: &Sender,
    envelope: &Envelope<'_>,
) -> Result<PathBuf, EmailError> {
    let message = build(record, sender, envelope)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(from: Option<&str>, reply_to: Option<&str>) -> EmailSettings {
        EmailSettings {
            from: from.map(str::to_string),
            reply_to: reply_to.map(str::to_string),
            ..EmailSettings::default()
        }
    }

    #[test]
    fn the_sender_is_read_once_and_a_bad_address_says_which_setting() {
        let sender = Sender::of(&settings(None, None)).expect("the default sender");
        assert_eq!(sender.from.email.to_string(), "touchline@localhost");
        let sender = Sender::of(&settings(
            Some("Ana <ana@example.com>"),
            Some("help@example.com"),
        ))
        .expect("a sender");
        assert_eq!(sender.from.to_string(), "Ana <ana@example.com>");
        assert_eq!(
            sender.reply_to.map(|mailbox| mailbox.to_string()),
            Some("help@example.com".into())
        );
        let bad_from = Sender::of(&settings(Some("not an address"), None)).expect_err("bad");
        assert!(
            bad_from.starts_with("bad sender in touchline.yaml"),
            "{bad_from}"
        );
        let bad_reply = Sender::of(&settings(None, Some("nope"))).expect_err("bad");
        assert!(
            bad_reply.starts_with("bad reply_to in touchline.yaml"),
            "{bad_reply}"
        );
    }
}
