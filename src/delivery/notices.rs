//! Notices to a CSM about a new task: an email to the CSM and, if the CSM has a
//! `notify_webhook`, a Slack-compatible `{"text": …}` message. They are outbox records
//! written in the transaction that creates the task, so each task is announced once.

use crate::definitions::Definitions;
use crate::store::{NewTask, OutboxRecord};

/// The notices for a task just created from `record`.
pub fn for_task(
    definitions: &Definitions,
    record: &OutboxRecord,
    task: &NewTask,
) -> Vec<OutboxRecord> {
    let Some(csm) = task
        .assignee
        .as_deref()
        .and_then(|id| definitions.config.csm(id))
    else {
        return Vec::new();
    };
    let due = task
        .due_at
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| format!("\nDue: {}", t.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let summary = format!(
        "New {} task for account {}: {}{due}",
        task.priority, task.account_id, task.title
    );
    let description = if task.description.trim().is_empty() {
        String::new()
    } else {
        format!("\n{}\n", task.description.trim())
    };
    let notice = |kind: &str, suffix: &str, payload: serde_json::Value| OutboxRecord {
        idempotency_key: format!("{}:{suffix}", record.idempotency_key),
        kind: kind.into(),
        contact_id: String::new(),
        payload,
        ..record.clone()
    };
    let mut notices = Vec::new();
    if csm.notify_email {
        notices.push(notice(
        "email",
        "notice",
        serde_json::json!({
            "notice": true,
            "to": format!("{} <{}>", csm.name, csm.email),
            "subject": format!("[touchline] {}", task.title),
            "text": format!(
                "Hi {},\n\n{summary}\n{description}\nJourney: {} / step {}\nSee it with: touchline tasks list --csm {}\n",
                csm.name, task.journey_id, task.step_id, csm.id.value
            ),
        }),
    ));
    }
    if let Some(endpoint) = &csm.notify_webhook {
        notices.push(notice(
            "webhook",
            "notice-webhook",
            serde_json::json!({
                "endpoint": endpoint.value,
                "body": { "text": format!("{}: {summary}", csm.name) },
            }),
        ));
    }
    notices
}
