//! Outbox records and why they wait or failed: what `touchline deliveries` shows.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{DeliveryRow, DeliveryStatus, Store, StoreError};

/// One outbox record.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    /// The record's number.
    pub id: i64,
    /// `pending`, `sending`, `sent`, `skipped`, `failed` or `dead`.
    pub status: String,
    /// `email`, `webhook` or `task`.
    pub kind: String,
    /// The journey.
    pub journey_id: String,
    /// The step.
    pub step_id: String,
    /// The account.
    pub account_id: String,
    /// Where it goes: a mail address, `endpoint NAME`, or a task's title.
    pub target: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The next attempt, for pending records.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why a pending record waits (a send window, the frequency cap).
    pub waiting: Option<String>,
    /// The last failure, or why it was skipped.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(row: DeliveryRow) -> Self {
        let r = &row.record;
        let target = r.payload.target();
        let pending = row.status == DeliveryStatus::Pending;
        Self {
            id: row.id,
            kind: r.kind().to_string(),
            journey_id: r.journey_id.clone(),
            step_id: r.step_id.clone(),
            account_id: r.account_id.clone(),
            target,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at.filter(|_| pending).map(super::time),
            waiting: row.held_reason.filter(|_| pending),
            last_error: row.last_error,
            delivered_at: row.delivered_at.map(super::time),
            status: row.status.as_str().to_string(),
        }
    }
}

/// The latest `limit` records with one of `statuses`, newest first.
pub async fn build<S: Store>(
    store: &S,
    statuses: &[DeliveryStatus],
    limit: i64,
) -> Result<Vec<DeliveryView>, StoreError> {
    Ok(store
        .deliveries(statuses, limit)
        .await?
        .into_iter()
        .map(DeliveryView::from)
        .collect())
}

/// The records as text, with why each waits or failed (`statuses`: what was asked for).
pub fn text(list: &[DeliveryView], statuses: &[DeliveryStatus]) -> String {
    let mut out = String::new();
    for d in list {
        let when = d.next_attempt_at.map_or(String::new(), |t| {
            format!(", next attempt {}", t.format("%Y-%m-%d %H:%M UTC"))
        });
        let _ = writeln!(
            out,
            "  #{:<6} {:<8} {:<7} {}/{} → {} ({} attempts{when})",
            d.id, d.status, d.kind, d.journey_id, d.step_id, d.target, d.attempts
        );
        if let Some(why) = &d.waiting {
            let _ = writeln!(out, "         waiting: {why}");
        }
        if let Some(error) = &d.last_error {
            let _ = writeln!(out, "         last error: {error}");
        }
    }
    if list.is_empty() {
        let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let _ = writeln!(out, "no deliveries with status {}", names.join(", "));
    }
    out
}
