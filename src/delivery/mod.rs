//! Delivery: the outbox worker that turns outbox records into step emails and CSM tasks.
//!
//! A record is *claimed* (leased to this worker for a while), delivered, and *finished*
//! (sent, retried later, or failed); a worker that dies mid-delivery lets its lease run out
//! and another takes the record over. What makes each step produce its output once:
//!
//! - **Tasks** are written in the same transaction that marks the record sent, and an open
//!   task with the same key is updated, never duplicated.
//! - **Email without an SMTP server** goes to `<outbox_dir>/<key>.eml`, named by the
//!   record's idempotency key and written atomically, so a repeat overwrites, never adds.
//!
//! - **Email over SMTP** carries a Message-ID derived from the same key, so a mail that is
//!   sent again after a crash between sending and marking is recognisable as the same mail.
//!
//! Webhook records stay pending until their channel exists.

pub mod email_file;
pub mod smtp;
pub mod tasks;
pub mod window;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::to_millis;
use crate::definitions::Definitions;
use crate::store::{DeliveryOutcome, OutboxItem, Store, StoreError, TaskWrite};

/// Records claimed per round.
const CLAIM: i64 = 200;
/// How long a claim lasts before another worker may take the record over.
const LEASE_MS: i64 = 5 * 60 * 1000;
/// Attempts before a record is given up (dead letter).
pub const MAX_ATTEMPTS: i64 = 8;

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Emails written.
    pub emails: u64,
    /// Tasks created.
    pub tasks_created: u64,
    /// Open tasks updated instead of duplicated.
    pub tasks_updated: u64,
    /// Attempts that will be retried.
    pub retried: u64,
    /// Records that failed for good.
    pub failed: u64,
    /// Mails held for their recipient's send window.
    pub deferred: u64,
}

impl DeliveryReport {
    /// Adds another round's counts.
    pub fn add(&mut self, other: &DeliveryReport) {
        self.emails += other.emails;
        self.tasks_created += other.tasks_created;
        self.tasks_updated += other.tasks_updated;
        self.retried += other.retried;
        self.failed += other.failed;
        self.deferred += other.deferred;
    }

    /// True when nothing was delivered or failed.
    pub fn is_idle(&self) -> bool {
        *self == Self::default()
    }
}

/// The outbox folder named in `touchline.yaml` (default `outbox`), under the project.
pub fn outbox_dir(definitions: &Definitions) -> PathBuf {
    definitions.root.join(
        definitions
            .config
            .email
            .outbox_dir
            .as_deref()
            .unwrap_or("outbox"),
    )
}

/// Delivers outbox records for one project.
#[derive(Debug)]
pub struct Deliverer<S: Store> {
    definitions: Arc<Definitions>,
    store: S,
    owner: String,
    outbox_dir: PathBuf,
    smtp: Option<Result<smtp::SmtpChannel, String>>,
}

impl<S: Store> Deliverer<S> {
    /// A worker writing `.eml` files into `outbox_dir` (when no SMTP server is set).
    pub fn new(definitions: Arc<Definitions>, store: S, outbox_dir: PathBuf) -> Self {
        let owner = format!("{}-{}", std::process::id(), rand::random::<u32>());
        let smtp = definitions
            .config
            .email
            .smtp
            .as_ref()
            .map(smtp::SmtpChannel::new);
        Self {
            definitions,
            store,
            owner,
            outbox_dir,
            smtp,
        }
    }

    fn kinds(&self) -> Vec<&'static str> {
        vec!["task", "email"]
    }

    /// When an email may go out, if not now: the global and the journey's send windows, in
    /// the contact's time zone, else the account's, else the configured one.
    async fn send_window_opening(
        &self,
        item: &OutboxItem,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let config = &self.definitions.config;
        let journey = self
            .definitions
            .journeys
            .get(&item.record.journey_id)
            .and_then(|j| j.file.send_window.as_ref());
        let windows: Vec<&crate::definitions::values::SendWindow> =
            config.send_window.iter().chain(journey).collect();
        if windows.is_empty() {
            return Ok(None);
        }
        let state = self
            .store
            .load_accounts(std::slice::from_ref(&item.record.account_id), true)
            .await?
            .pop();
        let contact_zone = state
            .as_ref()
            .and_then(|s| s.contacts.iter().find(|c| c.id == item.record.contact_id))
            .and_then(|c| c.timezone.clone());
        let account_zone = state.as_ref().and_then(|s| s.account.timezone.clone());
        let zone = contact_zone
            .or(account_zone)
            .and_then(|name| name.parse::<chrono_tz::Tz>().ok())
            .unwrap_or(config.timezone.value.0);
        Ok(window::next_opening(now, zone, &windows))
    }

    /// Delivers everything due at `now`.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        let kinds = self.kinds();
        loop {
            let items = self
                .store
                .claim_outbox(&kinds, to_millis(now), &self.owner, LEASE_MS, CLAIM)
                .await?;
            if items.is_empty() {
                break;
            }
            for item in items {
                self.deliver(item, now, &mut report).await?;
            }
        }
        Ok(report)
    }

    async fn deliver(
        &self,
        item: OutboxItem,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<(), StoreError> {
        let at = to_millis(now);
        match item.record.kind.as_str() {
            "task" => {
                let task = tasks::plan(&self.definitions, &self.store, &item.record, now).await?;
                match self
                    .store
                    .deliver_task(item.id, &self.owner, at, &task)
                    .await?
                {
                    Some(TaskWrite::Created(_)) => report.tasks_created += 1,
                    Some(TaskWrite::Updated(_)) => report.tasks_updated += 1,
                    None => {}
                }
            }
            "email" => {
                if let Some(opening) = self.send_window_opening(&item, now).await? {
                    report.deferred += 1;
                    self.store
                        .finish_outbox(
                            item.id,
                            &self.owner,
                            at,
                            &DeliveryOutcome::Defer(to_millis(opening)),
                        )
                        .await?;
                    return Ok(());
                }
                let from = self.definitions.config.email.from.as_deref();
                let sent = match &self.smtp {
                    None => email_file::write(&self.outbox_dir, &item.record, from)
                        .map(|path| path.display().to_string()),
                    Some(Err(problem)) => Err(email_file::EmailError::Temporary(problem.clone())),
                    Some(Ok(channel)) => match email_file::build(&item.record, from) {
                        Ok(message) => channel.send(message).await,
                        Err(error) => Err(error),
                    },
                };
                let outcome = match sent {
                    Ok(result) => {
                        report.emails += 1;
                        DeliveryOutcome::Sent(result)
                    }
                    Err(email_file::EmailError::Permanent(reason)) => {
                        report.failed += 1;
                        DeliveryOutcome::Failed(reason)
                    }
                    Err(email_file::EmailError::Temporary(reason)) => {
                        retry(&item, at, reason, report)
                    }
                };
                self.store
                    .finish_outbox(item.id, &self.owner, at, &outcome)
                    .await?;
            }
            other => {
                let reason = format!("no channel delivers `{other}` records");
                report.failed += 1;
                self.store
                    .finish_outbox(item.id, &self.owner, at, &DeliveryOutcome::Failed(reason))
                    .await?;
            }
        }
        Ok(())
    }
}

/// The next attempt's time, or the dead letter after the last attempt: 5 minutes, then
/// three times longer each time, at most 12 hours apart, with ±20% jitter (8 attempts span
/// more than a day).
fn retry(
    item: &OutboxItem,
    now: i64,
    error: String,
    report: &mut DeliveryReport,
) -> DeliveryOutcome {
    if item.attempts >= MAX_ATTEMPTS {
        report.failed += 1;
        return DeliveryOutcome::Dead(error);
    }
    report.retried += 1;
    let base_ms = (5 * 60 * 1000_i64)
        .saturating_mul(3_i64.saturating_pow((item.attempts - 1).max(0) as u32))
        .min(12 * 3600 * 1000);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    DeliveryOutcome::Retry {
        at: now + (base_ms as f64 * jitter) as i64,
        error,
    }
}
