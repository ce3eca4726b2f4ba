//! Notices to a CSM about a new task: an email to the CSM and, if the CSM has a
//! `notify_webhook`, a Slack-compatible `{"text": …}` message. They are outbox records
//! written in the transaction that creates the task, so each task is announced once.

use crate::definitions::Definitions;
use crate::store::{EmailPayload, NewTask, OutboxRecord, Payload, WebhookPayload};

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
    let notice = |suffix: &str, payload: Payload| OutboxRecord {
        idempotency_key: format!("{}:{suffix}", record.idempotency_key),
        contact_id: String::new(),
        payload,
        ..record.clone()
    };
    let mut notices = Vec::new();
    if csm.notify_email {
        notices.push(notice(
            "notice",
            Payload::Email(EmailPayload {
                template: None,
                to: format!("{} <{}>", csm.name, csm.email),
                subject: format!("[touchline] {}", task.title),
                text: format!(
                    "Hi {},\n\n{summary}\n{description}\nJourney: {} / step {}\nSee it with: touchline tasks list --csm {}\n",
                    csm.name, task.journey_id, task.step_id, csm.id.value
                ),
                html: None,
                notice: true,
            }),
        ));
    }
    if let Some(endpoint) = &csm.notify_webhook {
        notices.push(notice(
            "notice-webhook",
            Payload::Webhook(WebhookPayload {
                endpoint: endpoint.value.clone(),
                body: Some(serde_json::json!({ "text": format!("{}: {summary}", csm.name) })),
            }),
        ));
    }
    notices
}
