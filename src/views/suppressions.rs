//! The suppression list: addresses no step email goes to.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{Store, StoreError};

/// One suppressed address.
#[derive(Debug, Clone, Serialize)]
pub struct SuppressionView {
    /// The address, lower-cased.
    pub email: String,
    /// `unsubscribed`, `hard_bounced` or `manual`.
    pub reason: String,
    /// Details (the bounce, who added it).
    pub detail: String,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// Every suppressed address.
pub async fn build<S: Store>(store: &S) -> Result<Vec<SuppressionView>, StoreError> {
    Ok(store
        .suppressions()
        .await?
        .into_iter()
        .map(|s| SuppressionView {
            email: s.email,
            reason: s.reason,
            detail: s.detail,
            created_at: super::time(s.created_at),
        })
        .collect())
}

/// The list as text.
pub fn text(list: &[SuppressionView]) -> String {
    let mut out = String::new();
    for s in list {
        let _ = writeln!(
            out,
            "  {:<40} {:<13} {} ({})",
            s.email,
            s.reason,
            s.created_at.format("%Y-%m-%d"),
            s.detail
        );
    }
    if list.is_empty() {
        out.push_str("no suppressed addresses\n");
    }
    out
}
