//! `touchline status`: accounts per tier, enrollments per journey and step, the outbox, open
//! tasks per CSM, and the latest outbox records of each kind.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::definitions::Definitions;
use crate::store::{Payload, Store, StoreError};
use crate::text::count;

/// The whole status view.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// Accounts in all.
    pub accounts: i64,
    /// Accounts per tier.
    pub tiers: Vec<TierCount>,
    /// Enrollments per journey, status and step.
    pub enrollments: Vec<EnrollmentCount>,
    /// Outbox records per kind and status.
    pub outbox: Vec<OutboxCount>,
    /// Open tasks per CSM.
    pub open_tasks: Vec<CsmCount>,
    /// Accounts whose score is unknown (its formula failed: missing data), per score.
    pub unknown_scores: Vec<UnknownCount>,
    /// Journeys held by the blast-radius guard.
    pub holds: Vec<super::holds::HoldView>,
    /// The latest few outbox records of each kind.
    pub latest: Vec<LatestRecord>,
}

/// Accounts in one tier.
#[derive(Debug, Clone, Serialize)]
pub struct TierCount {
    /// `high`, `low`, `tech`, or `(not evaluated)`.
    pub tier: String,
    /// How many.
    pub accounts: i64,
    /// Share of all accounts, in percent.
    pub share: f64,
}

/// Enrollments of one journey with one status (at one step, for active ones).
#[derive(Debug, Clone, Serialize)]
pub struct EnrollmentCount {
    /// The journey.
    pub journey_id: String,
    /// `active`, `completed`, `exited`, `failed`.
    pub status: String,
    /// The step active enrollments are at.
    pub step: Option<String>,
    /// How many.
    pub count: i64,
}

/// Outbox records of one kind and status.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxCount {
    /// `email`, `webhook`, `task`.
    pub kind: String,
    /// `pending`, `sent`, …
    pub status: String,
    /// How many.
    pub count: i64,
}

/// Open tasks of one CSM.
#[derive(Debug, Clone, Serialize)]
pub struct CsmCount {
    /// The CSM's id.
    pub csm: String,
    /// The CSM's name.
    pub name: String,
    /// Open tasks.
    pub open: i64,
}

/// Accounts with one score unknown.
#[derive(Debug, Clone, Serialize)]
pub struct UnknownCount {
    /// The score.
    pub score: String,
    /// Accounts for which it is unknown.
    pub accounts: i64,
}

/// One recent outbox record.
#[derive(Debug, Clone, Serialize)]
pub struct LatestRecord {
    /// `email`, `webhook`, `task`.
    pub kind: String,
    /// The journey.
    pub journey_id: String,
    /// The step.
    pub step_id: String,
    /// What it is: recipient and subject, task title, endpoint.
    pub summary: String,
}

/// Builds the view, with up to `examples` latest records of each kind.
pub async fn build<S: Store>(
    store: &S,
    definitions: &Definitions,
    examples: i64,
) -> Result<StatusView, StoreError> {
    let tier_counts = store.tier_counts().await?;
    let accounts: i64 = tier_counts.iter().map(|c| c.count).sum();
    let tiers = tier_counts
        .into_iter()
        .map(|c| TierCount {
            share: if accounts > 0 {
                c.count as f64 * 100.0 / accounts as f64
            } else {
                0.0
            },
            tier: c.label,
            accounts: c.count,
        })
        .collect();
    let enrollments = store
        .enrollment_counts()
        .await?
        .into_iter()
        .map(|c| {
            let mut parts = c.label.splitn(3, ' ');
            let journey_id = parts.next().unwrap_or_default().to_string();
            let status = parts.next().unwrap_or_default().to_string();
            let index = parts.next().unwrap_or_default();
            let step = (status == "active").then(|| {
                definitions
                    .journeys
                    .get(&journey_id)
                    .and_then(|j| index.parse::<usize>().ok().and_then(|i| j.steps.get(i)))
                    .map_or_else(|| format!("step {index}"), |s| s.id.clone())
            });
            EnrollmentCount {
                journey_id,
                status,
                step,
                count: c.count,
            }
        })
        .collect();
    let outbox = store
        .outbox_counts()
        .await?
        .into_iter()
        .map(|c| {
            let (kind, status) = c.label.split_once(' ').unwrap_or((&c.label, ""));
            OutboxCount {
                kind: kind.to_string(),
                status: status.to_string(),
                count: c.count,
            }
        })
        .collect();
    let open_tasks = store
        .open_task_counts()
        .await?
        .into_iter()
        .map(|c| CsmCount {
            name: definitions
                .config
                .csm(&c.label)
                .map_or_else(|| c.label.clone(), |csm| csm.name.clone()),
            csm: c.label,
            open: c.count,
        })
        .collect();
    let unknown_scores = store
        .unknown_score_counts()
        .await?
        .into_iter()
        .map(|c| UnknownCount {
            score: c.label,
            accounts: c.count,
        })
        .collect();
    Ok(StatusView {
        accounts,
        tiers,
        enrollments,
        outbox,
        open_tasks,
        unknown_scores,
        holds: super::holds::build(store).await?,
        latest: latest(store, examples).await?,
    })
}

/// The latest few of each kind, so mails, tasks and webhooks all show.
async fn latest<S: Store>(store: &S, examples: i64) -> Result<Vec<LatestRecord>, StoreError> {
    let mut recent = store.recent_outbox(2000).await?;
    let mut shown: HashMap<String, i64> = HashMap::new();
    recent.retain(|r| {
        let n = shown.entry(r.kind().to_string()).or_default();
        *n += 1;
        *n <= examples
    });
    Ok(recent
        .into_iter()
        .map(|record| {
            let summary = match &record.payload {
                Payload::Email(mail) => format!("to {} — {}", mail.to, mail.subject),
                Payload::Task(task) => format!(
                    "{} ({}, {})",
                    task.title,
                    task.assign.strategy.as_str(),
                    task.priority
                ),
                Payload::Webhook(call) => format!("to endpoint `{}`", call.endpoint),
            };
            LatestRecord {
                kind: record.kind().to_string(),
                journey_id: record.journey_id,
                step_id: record.step_id,
                summary,
            }
        })
        .collect())
}

/// The view as text.
pub fn text(view: &StatusView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Accounts by tier ({})",
        count(view.accounts as u64, "account", "accounts")
    );
    for tier in &view.tiers {
        let _ = writeln!(
            out,
            "  {:<18} {:>7}  {:>5.1}%",
            tier.tier, tier.accounts, tier.share
        );
    }
    if !view.holds.is_empty() {
        let _ = writeln!(out, "\nON HOLD (a pass enrolled far more than usual)");
        out.push_str(&super::holds::text(&view.holds));
    }
    if !view.unknown_scores.is_empty() {
        let _ = writeln!(
            out,
            "\nUnknown scores (formula failed, e.g. data not imported yet)"
        );
        for u in &view.unknown_scores {
            let _ = writeln!(
                out,
                "  {:<18} {:>7}",
                u.score,
                count(u.accounts as u64, "account", "accounts")
            );
        }
    }
    let _ = writeln!(out, "\nEnrollments by journey, status and step");
    let mut current = None;
    for e in &view.enrollments {
        if current != Some(&e.journey_id) {
            let _ = writeln!(out, "  {}", e.journey_id);
            current = Some(&e.journey_id);
        }
        let label = match &e.step {
            Some(step) => format!("{} at {step}", e.status),
            None => e.status.clone(),
        };
        let _ = writeln!(out, "    {label:<40} {:>7}", e.count);
    }
    let _ = writeln!(out, "\nOutbox");
    if view.outbox.is_empty() {
        let _ = writeln!(out, "  (empty)");
    }
    for c in &view.outbox {
        let _ = writeln!(
            out,
            "  {:<30} {:>7}",
            format!("{} {}", c.kind, c.status),
            c.count
        );
    }
    if !view.open_tasks.is_empty() {
        let _ = writeln!(out, "\nOpen CSM tasks");
        for c in &view.open_tasks {
            let _ = writeln!(out, "  {:<30} {:>7}", c.name, c.open);
        }
    }
    if !view.latest.is_empty() {
        let _ = writeln!(out, "\nLatest outbox records");
        for r in &view.latest {
            let _ = writeln!(
                out,
                "  {:<8} {:<28} {}",
                r.kind,
                format!("{}/{}", r.journey_id, r.step_id),
                r.summary
            );
        }
    }
    out
}
