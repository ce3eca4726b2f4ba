//! Whether a step email may go now: its recipient may be suppressed or unsubscribed, outside
//! the send window, or over the frequency cap.
//!
//! What the checks need is read once per claimed batch, in three queries for the whole
//! batch (suppressions, contacts' subscriptions and time zones, recent mails), not in three
//! per mail: at the mail server's pace, per-mail queries would cost more than the mail. Only
//! the few facts the checks read are read, not whole accounts.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::window;
use crate::clock::{from_millis, to_millis};
use crate::definitions::Definitions;
use crate::definitions::config::OverCap;
use crate::store::{OutboxItem, Payload, RecipientFacts, Store, StoreError, Suppression};

/// The time zones and subscriptions of one account's contacts.
#[derive(Debug, Default)]
struct AccountContacts {
    timezone: Option<String>,
    contacts: HashMap<String, (bool, Option<String>)>,
}

impl AccountContacts {
    fn contact(&self, id: &str) -> Option<&(bool, Option<String>)> {
        self.contacts.get(id)
    }
}

/// Why a mail is held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Until this time; why.
    Until(DateTime<Utc>, String),
    /// For good: why.
    Skip(String),
}

/// What the checks know about the recipients of one claimed batch.
#[derive(Debug, Default)]
pub struct Recipients {
    suppressed: HashMap<String, Suppression>,
    /// Each account's time zone, and its contacts': whether subscribed, their time zone.
    accounts: HashMap<String, AccountContacts>,
    /// When step emails went to each (account, contact) within the frequency cap's period.
    sent: HashMap<(String, String), Vec<i64>>,
}

impl Recipients {
    /// Reads what the checks need for the step emails among `items`.
    pub async fn read<S: Store>(
        store: &S,
        definitions: &Definitions,
        items: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let mut addresses = HashSet::new();
        let mut accounts = HashSet::new();
        for item in items {
            if let Payload::Email(mail) = &item.record.payload
                && !mail.notice
            {
                addresses.insert(address_of(&mail.to));
                accounts.insert(item.record.account_id.clone());
            }
        }
        if addresses.is_empty() {
            return Ok(Self::default());
        }
        let addresses: Vec<String> = addresses.into_iter().collect();
        let accounts: Vec<String> = accounts.into_iter().collect();
        let suppressed = store
            .suppressions_of(&addresses)
            .await?
            .into_iter()
            .map(|s| (s.email.clone(), s))
            .collect();
        let mut zones: HashMap<String, AccountContacts> = HashMap::new();
        for facts in store.recipient_facts(&accounts).await? {
            let RecipientFacts {
                account_id,
                contact_id,
                subscribed,
                timezone,
                account_timezone,
            } = facts;
            let account = zones.entry(account_id).or_default();
            account.timezone = account_timezone;
            if let Some(contact) = contact_id {
                account.contacts.insert(contact, (subscribed, timezone));
            }
        }
        let mut sent: HashMap<(String, String), Vec<i64>> = HashMap::new();
        if let Some(cap) = &definitions.config.frequency_cap {
            let since = to_millis(now) - period_ms(cap);
            for (account, contact, at) in store.emails_sent_to(&accounts, since).await? {
                sent.entry((account, contact)).or_default().push(at);
            }
        }
        Ok(Self {
            suppressed,
            accounts: zones,
            sent,
        })
    }

    /// The times step emails went to this recipient within the cap's period, oldest first;
    /// the caller adds the mails it sends.
    pub fn sent_to(&mut self, account_id: &str, contact_id: &str) -> Vec<i64> {
        self.sent
            .remove(&(account_id.to_string(), contact_id.to_string()))
            .unwrap_or_default()
    }

    /// Why the step email `item` to `to` may not go now, given the mails `sent` to the same
    /// recipient lately.
    pub fn hold(
        &self,
        definitions: &Definitions,
        item: &OutboxItem,
        to: &str,
        sent: &[i64],
        now: DateTime<Utc>,
    ) -> Option<Hold> {
        let record = &item.record;
        if let Some(suppression) = self.suppressed.get(&address_of(to)) {
            return Some(Hold::Skip(format!(
                "suppressed: {} ({})",
                suppression.reason, suppression.detail
            )));
        }
        let state = self.accounts.get(&record.account_id);
        let contact = state.and_then(|s| s.contact(&record.contact_id));
        if contact.is_some_and(|(subscribed, _)| !subscribed) {
            return Some(Hold::Skip(
                "suppressed: the contact is not subscribed".into(),
            ));
        }
        if let Some(opening) = send_window_opening(definitions, item, state, now) {
            return Some(Hold::Until(
                opening,
                "outside the send window in the recipient's time zone".into(),
            ));
        }
        frequency_cap(definitions, sent, now)
    }
}

fn period_ms(cap: &crate::definitions::config::FrequencyCap) -> i64 {
    i64::try_from(cap.per.value.0.as_millis()).unwrap_or(i64::MAX)
}

/// When an email may go out, if not now: the global and the journey's send windows, in the
/// contact's time zone, else the account's, else the configured one.
fn send_window_opening(
    definitions: &Definitions,
    item: &OutboxItem,
    state: Option<&AccountContacts>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let config = &definitions.config;
    let journey = definitions
        .journeys
        .get(&item.record.journey_id)
        .and_then(|j| j.file.send_window.as_ref());
    let windows: Vec<&crate::definitions::values::SendWindow> =
        config.send_window.iter().chain(journey).collect();
    if windows.is_empty() {
        return None;
    }
    let contact_zone = state
        .and_then(|s| s.contact(&item.record.contact_id))
        .and_then(|(_, zone)| zone.clone());
    let account_zone = state.and_then(|s| s.timezone.clone());
    let zone = contact_zone
        .or(account_zone)
        .and_then(|name| name.parse::<chrono_tz::Tz>().ok())
        .unwrap_or(config.timezone.value.0);
    window::next_opening(now, zone, &windows)
}

/// At most `max_emails` step emails per contact in any rolling `per`: a mail over the cap
/// waits until the oldest of them leaves the period, or is skipped. `sent` may hold mails
/// older than the period (the caller's own); only those within it count.
fn frequency_cap(definitions: &Definitions, sent: &[i64], now: DateTime<Utc>) -> Option<Hold> {
    let cap = definitions.config.frequency_cap.as_ref()?;
    let per = period_ms(cap);
    let since = to_millis(now) - per;
    let sent: Vec<i64> = sent.iter().copied().filter(|&at| at > since).collect();
    let max = cap.max_emails as usize;
    if sent.len() < max {
        return None;
    }
    let why = format!(
        "frequency cap: {} in the last {}",
        crate::text::count(sent.len() as u64, "mail", "mails"),
        crate::text::duration(cap.per.value.0)
    );
    Some(match cap.over_cap {
        OverCap::Skip => Hold::Skip(why),
        OverCap::Wait => {
            // The cap allows another mail once enough of these have left the period.
            let frees_at = sent[sent.len() - max] + per + 1;
            Hold::Until(from_millis(frees_at), why)
        }
    })
}

/// The bare address of `Name <addr>` or `addr`, lower-cased.
pub fn address_of(to: &str) -> String {
    let bare = match (to.rfind('<'), to.rfind('>')) {
        (Some(start), Some(end)) if start < end => &to[start + 1..end],
        _ => to,
    };
    bare.trim().to_lowercase()
}
