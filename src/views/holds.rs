//! Journeys the blast-radius guard holds: what `touchline hold list` and `touchline status`
//! show, so a person decides whether their mail goes out.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{Store, StoreError};
use crate::text::count;

/// One journey on hold.
#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    /// The journey.
    pub journey_id: String,
    /// Why it is held.
    pub reason: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Outbox records waiting for a decision.
    pub records: i64,
}

/// Every journey on hold.
pub async fn build<S: Store>(store: &S) -> Result<Vec<HoldView>, StoreError> {
    Ok(store
        .holds()
        .await?
        .into_iter()
        .map(|h| HoldView {
            journey_id: h.journey_id,
            reason: h.reason,
            since: super::time(h.created_at),
            records: h.records,
        })
        .collect())
}

/// The holds as text, with what to do.
pub fn text(holds: &[HoldView]) -> String {
    let mut out = String::new();
    for h in holds {
        let _ = writeln!(
            out,
            "  {:<30} {} held since {}: {}",
            h.journey_id,
            count(h.records as u64, "record", "records"),
            h.since.format("%Y-%m-%d %H:%M UTC"),
            h.reason
        );
    }
    if holds.is_empty() {
        out.push_str("no journeys on hold\n");
    } else {
        out.push_str(
            "  decide with `touchline hold release JOURNEY` (send them) or `touchline hold discard JOURNEY`\n",
        );
    }
    out
}
