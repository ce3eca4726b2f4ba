//! An account's story for the CSM reading it: what `explain` shows (facts, scores, tier and
//! the rule behind it, journeys), the scores' history as small charts, what the customer
//! already received, and the account's tasks with their history.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::from_millis;
use crate::definitions::Definitions;
use crate::model::Account;
use crate::store::{Payload, Store, StoreError, TaskLogEntry};
use crate::views::explain::{self, JourneyLine, TierChangeLine};

/// The account page.
#[derive(Debug, Clone, Serialize)]
pub struct AccountStory {
    /// The account's facts.
    pub account: Account,
    /// Its tier now.
    pub tier: Option<String>,
    /// The rule that decided it.
    pub tier_rule: Option<String>,
    /// Tier changes, oldest first.
    pub tier_history: Vec<TierChangeLine>,
    /// Each score now and over time.
    pub scores: Vec<ScoreStory>,
    /// The journeys and where the account stands in each.
    pub journeys: Vec<JourneyLine>,
    /// What was delivered: mails, tasks, webhooks.
    pub received: Vec<Received>,
    /// Its tasks, newest first.
    pub tasks: Vec<TaskStory>,
}

/// A score now and over time.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreStory {
    /// The score.
    pub name: String,
    /// Its value now.
    pub value: Option<f64>,
    /// Why it is unknown.
    pub unknown: Option<String>,
    /// Its history as chart points in a 240 × 40 box (0–100 up the side).
    pub history: Vec<Point>,
    /// When the history starts.
    pub since: Option<DateTime<Utc>>,
}

/// A point of a small chart.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Across.
    pub x: f64,
    /// Down.
    pub y: f64,
}

/// Something delivered.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// When.
    pub at: DateTime<Utc>,
    /// What, in words.
    pub what: String,
    /// The journey.
    pub journey_id: String,
    /// The step.
    pub step_id: String,
}

/// A task of the account.
#[derive(Debug, Clone, Serialize)]
pub struct TaskStory {
    /// Its number.
    pub id: i64,
    /// Title.
    pub title: String,
    /// `open` or `done`.
    pub status: String,
    /// The CSM.
    pub assignee: Option<String>,
    /// The note left when done.
    pub note: Option<String>,
    /// Who did what to it.
    pub history: Vec<TaskLogEntry>,
}

/// Builds the story of `account_id` at `now`; `None` if there is no such account.
pub async fn build<S: Store>(
    store: &S,
    definitions: &Definitions,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<AccountStory>, StoreError> {
    let Some(view) = explain::build(store, definitions, account_id, now).await? else {
        return Ok(None);
    };
    let history = store.score_history(account_id).await?;
    let scores = view
        .scores
        .iter()
        .map(|score| {
            let points: Vec<(i64, f64)> = history
                .iter()
                .filter(|(name, ..)| name == &score.name)
                .map(|(_, value, at)| (*at, *value))
                .collect();
            ScoreStory {
                name: score.name.clone(),
                value: score.value,
                unknown: score.unknown.clone(),
                since: points.first().map(|(at, _)| from_millis(*at)),
                history: chart(&points),
            }
        })
        .collect();
    let received = store
        .delivered_to(account_id)
        .await?
        .into_iter()
        .map(|row| Received {
            at: from_millis(row.delivered_at.unwrap_or_default()),
            what: match &row.record.payload {
                Payload::Email(mail) => format!("mail to {}: {}", mail.to, mail.subject),
                Payload::Task(task) => format!("task: {}", task.title),
                Payload::Webhook(call) => format!("webhook to {}", call.endpoint),
            },
            journey_id: row.record.journey_id,
            step_id: row.record.step_id,
        })
        .collect();
    let mut tasks = Vec::new();
    for task in store.account_tasks(account_id).await? {
        tasks.push(TaskStory {
            id: task.id,
            history: store.task_log(task.id).await?,
            title: task.task.title,
            status: task.status.as_str().to_string(),
            assignee: task.task.assignee,
            note: task.note,
        });
    }
    let tier_rule = view.tier_history.last().map(|c| c.rule.clone());
    Ok(Some(AccountStory {
        account: view.account,
        tier: view.tier,
        tier_rule,
        tier_history: view.tier_history,
        scores,
        journeys: view.journeys,
        received,
        tasks,
    }))
}

/// Points of a 240 × 40 chart: time across, 0–100 up (clamped).
fn chart(points: &[(i64, f64)]) -> Vec<Point> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Vec::new();
    };
    let span = (last.0 - first.0).max(1) as f64;
    points
        .iter()
        .map(|(at, value)| Point {
            x: 4.0 + 232.0 * (at - first.0) as f64 / span,
            y: 36.0 - 32.0 * value.clamp(0.0, 100.0) / 100.0,
        })
        .collect()
}
