//! The typed hand-off from the engine to delivery: what an outbox record delivers. The
//! engine writes it once, delivery reads it typed; it is stored as JSON tagged with its kind.

use serde::{Deserialize, Serialize};

use crate::model::Priority;

/// What an outbox record delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// A step email, or a notice mail to a CSM.
    Email(EmailPayload),
    /// A webhook call.
    Webhook(WebhookPayload),
    /// A CSM task.
    Task(TaskPayload),
}

impl Payload {
    /// `email`, `webhook` or `task`, as stored in the outbox's `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Email(_) => "email",
            Self::Webhook(_) => "webhook",
            Self::Task(_) => "task",
        }
    }

    /// Reads a stored payload of the outbox's `kind` column (which the payload's own `kind`,
    /// where it has one, always repeats: records written before payloads carried it have
    /// none). Parsed straight into the kind's type, not through a `serde_json::Value` first:
    /// every claimed record is read here.
    pub fn from_stored(kind: &str, text: &str) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;
        match kind {
            "email" => serde_json::from_str(text).map(Self::Email),
            "webhook" => serde_json::from_str(text).map(Self::Webhook),
            "task" => serde_json::from_str(text).map(Self::Task),
            other => Err(serde_json::Error::custom(format!(
                "unknown outbox kind `{other}`"
            ))),
        }
    }

    /// Where it goes, for people: a mail address, `endpoint NAME`, or a task's title.
    pub fn target(&self) -> String {
        match self {
            Self::Email(mail) => mail.to.clone(),
            Self::Webhook(call) => format!("endpoint {}", call.endpoint),
            Self::Task(task) => task.title.clone(),
        }
    }
}

/// A mail, rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailPayload {
    /// The template it was rendered from (none for notices).
    #[serde(default)]
    pub template: Option<String>,
    /// The recipient: an address, or `Name <address>`.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    #[serde(default)]
    pub html: Option<String>,
    /// A notice to a CSM: no unsubscribe link, no send window, no frequency cap.
    #[serde(default)]
    pub notice: bool,
}

/// A webhook call, rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// The endpoint's name in touchline.yaml.
    pub endpoint: String,
    /// The JSON body.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// A CSM task, rendered; assigned when it is delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPayload {
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Who gets it.
    pub assign: Assignment,
    /// Due after, as written (`2d`).
    #[serde(default)]
    pub due: Option<String>,
    /// Due after, in seconds (whole days count as working days).
    #[serde(default)]
    pub due_seconds: Option<u64>,
    /// Priority.
    #[serde(default)]
    pub priority: Priority,
    /// An explicit key: open tasks with the same key are merged across steps and journeys.
    #[serde(default)]
    pub key: Option<String>,
    /// Why it was made: journey, step, tier, scores.
    #[serde(default)]
    pub reason: serde_json::Value,
}

/// How a task is assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The rule.
    pub strategy: Strategy,
    /// The pool, for round robin and least loaded.
    #[serde(default)]
    pub pool: Option<String>,
    /// The account's owner CSM, for `owner`.
    #[serde(default)]
    pub owner: Option<String>,
}

/// An assignment rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The account's owner CSM.
    Owner,
    /// Each CSM of the pool in turn.
    RoundRobin,
    /// The CSM of the pool with the fewest open tasks.
    LeastLoaded,
}

impl Strategy {
    /// The name as written and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::RoundRobin => "round_robin",
            Self::LeastLoaded => "least_loaded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_payloads_read_with_or_without_their_kind() {
        let old = r#"{"endpoint": "crm", "body": {"account": "a1"}}"#;
        let payload = Payload::from_stored("webhook", old).expect("old record");
        assert_eq!(
            payload,
            Payload::Webhook(WebhookPayload {
                endpoint: "crm".into(),
                body: Some(serde_json::json!({"account": "a1"})),
            })
        );
        let written = serde_json::to_string(&payload).expect("json");
        assert_eq!(
            Payload::from_stored("webhook", &written).expect("new"),
            payload
        );
        let task = r#"{"title": "Call", "assign": {"strategy": "round_robin", "pool": "team"}, "priority": "high", "reason": {}}"#;
        let Payload::Task(task) = Payload::from_stored("task", task).expect("task") else {
            panic!("a task");
        };
        assert!(
            Payload::from_stored("fax", "{}").is_err(),
            "an unknown kind"
        );
        assert_eq!(
            (task.assign.strategy, task.priority),
            (Strategy::RoundRobin, Priority::High)
        );
    }
}
