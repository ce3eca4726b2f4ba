//! Notices to a CSM about a new task: an email to the CSM and, if the CSM has a
//! `notify_webhook`, a Slack-compatible `{"text": …}` message. They are outbox records
//! written in the transaction that creates the task, so each task is announced once.

use crate::definitions::Definitions;
use crate::delivery::signin::{self, PageKeys};
use crate::delivery::unsubscribe::public_url;
use crate::store::{EmailPayload, NewTask, OutboxRecord, Payload, WebhookPayload};

/// The notices for `task`'s assignee, keyed `{key}:notice…` (the record that made the task,
/// or its reassignment), with a link that signs them in to their inbox, valid from `now`
/// (unix ms).
pub fn for_task(
    definitions: &Definitions,
    key: &str,
    enrollment_id: i64,
    task: &NewTask,
    signin: &PageKeys,
    now: i64,
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
        idempotency_key: format!("{key}:{suffix}"),
        enrollment_id,
        journey_id: task.journey_id.clone(),
        step_id: task.step_id.clone(),
        account_id: task.account_id.clone(),
        contact_id: String::new(),
        payload,
        held_out: false,
    };
    let inbox = format!(
        "Your inbox (this link signs you in for {} days): {}\n",
        signin::LINK_DAYS,
        signin::link(
            &public_url(&definitions.config),
            signin,
            &csm.id.value,
            now / 1000
        )
    );
    let mut notices = Vec::new();
    if csm.notify_email {
        notices.push(notice(
            "notice",
            Payload::Email(EmailPayload {
                template: None,
                to: format!("{} <{}>", csm.name, csm.email),
                subject: format!("[touchline] {}", task.title),
                text: format!(
                    "Hi {},\n\n{summary}\n{description}\nJourney: {} / step {}\n{inbox}",
                    csm.name, task.journey_id, task.step_id
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
                body: Some(serde_json::json!({ "text": format!(
                    "{}: {summary} <{}/accounts/{}|Open the account>",
                    csm.name,
                    public_url(&definitions.config),
                    url::form_urlencoded::byte_serialize(task.account_id.as_bytes()).collect::<String>()
                ) })),
            }),
        ));
    }
    notices
}
