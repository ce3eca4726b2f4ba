//! Step emails as `.eml` files, for when no SMTP server is configured: each mail is a
//! complete RFC 5322 message named by its idempotency key, written atomically.

use std::path::{Path, PathBuf};

use lettre::message::{Mailbox, MultiPart, header::ContentType};

use crate::store::OutboxRecord;

/// Why a mail could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailError {
    /// The mail itself is wrong (an address that is not one): retrying will not help.
    Permanent(String),
    /// The folder could not be written: try again later.
    Temporary(String),
}

/// A Message-ID that is the same every time the same step's mail is produced.
pub fn message_id(idempotency_key: &str) -> String {
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
    format!("<{local}@touchline>")
}

/// Builds the message for an email outbox record.
pub fn build(record: &OutboxRecord, from: Option<&str>) -> Result<lettre::Message, EmailError> {
    let text = |field: &str| {
        record.payload[field]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let to: Mailbox = text("to")
        .parse()
        .map_err(|e| EmailError::Permanent(format!("bad recipient `{}`: {e}", text("to"))))?;
    let from: Mailbox = from
        .unwrap_or("touchline <touchline@localhost>")
        .parse()
        .map_err(|e| EmailError::Permanent(format!("bad sender in touchline.yaml: {e}")))?;
    let builder = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(text("subject"))
        .message_id(Some(message_id(&record.idempotency_key)));
    let body = match record.payload["html"].as_str() {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            text("text"),
            html.to_string(),
        )),
        None => builder.header(ContentType::TEXT_PLAIN).body(text("text")),
    };
    body.map_err(|e| EmailError::Permanent(format!("cannot build the mail: {e}")))
}

/// Writes the mail to `<dir>/<key>.eml` (replacing an earlier copy of the same step's mail).
pub fn write(dir: &Path, record: &OutboxRecord, from: Option<&str>) -> Result<PathBuf, EmailError> {
    let message = build(record, from)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| EmailError::Temporary(format!("cannot create {}: {e}", dir.display())))?;
    let name: String = record
        .idempotency_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{name}.eml"));
    let temporary = dir.join(format!(".{name}.eml.tmp"));
    std::fs::write(&temporary, message.formatted())
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| EmailError::Temporary(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}
