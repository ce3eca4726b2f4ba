//! `touchline preview`: renders one step for one account (and contact) exactly as it would
//! go out — mail subject, text and HTML, task title and description, or webhook body — but
//! strictly: a field the template reads that this customer lacks is an error naming the
//! field, unless the template gives a fallback with `default(...)`.

use minijinja::UndefinedBehavior;

use crate::definitions::journey::Audience;
use crate::definitions::{Action, Definitions};
use crate::model::Contact;
use crate::store::{EmailPayload, OutboxRecord, Payload, Store, Strategy};
use crate::suggest;

/// A rendered step.
#[derive(Debug, Clone)]
pub struct Preview {
    /// `email`, `task` or `webhook`.
    pub kind: &'static str,
    /// Who it goes to (mail address, CSM assignment, endpoint).
    pub to: String,
    /// The rendered parts, labelled (`subject`, `text`, `html`, `title`, …).
    pub parts: Vec<(&'static str, String)>,
    /// What the step would hand to delivery.
    pub payload: Payload,
}

impl Preview {
    /// The preview as text for the terminal or a file.
    pub fn render(&self) -> String {
        let mut text = format!("{}: {}\n", self.kind, self.to);
        for (label, part) in &self.parts {
            if part.contains('\n') {
                text.push_str(&format!("\n--- {label} ---\n{}\n", part.trim_end()));
            } else {
                text.push_str(&format!("{label}: {part}\n"));
            }
        }
        text
    }

    /// A mail record for a test send to `address` (a key of its own, so it never collides
    /// with the step's real mail).
    pub fn test_mail(
        &self,
        journey: &str,
        step: &str,
        account: &str,
        address: &str,
    ) -> Option<OutboxRecord> {
        let Payload::Email(mail) = &self.payload else {
            return None;
        };
        Some(OutboxRecord {
            idempotency_key: format!(
                "preview-{journey}-{step}-{account}-{:08x}",
                rand::random::<u32>()
            ),
            enrollment_id: 0,
            journey_id: journey.into(),
            step_id: step.into(),
            account_id: account.into(),
            contact_id: String::new(),
            payload: Payload::Email(EmailPayload {
                to: address.into(),
                subject: format!("[test] {}", mail.subject),
                ..mail.clone()
            }),
            held_out: false,
        })
    }
}

/// Renders `source` strictly (escaping what it inserts if `what` is `html`); a missing
/// field is named.
fn render(what: &str, source: &str, data: &serde_json::Value) -> Result<String, String> {
    let mut env = crate::engine::journeys::template_environment();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let name = if what == "html" {
        crate::engine::journeys::html_name(source)
    } else {
        source.to_string()
    };
    let rendered = env
        .add_template_owned(name.clone(), source.to_string())
        .and_then(|()| env.get_template(&name)?.render(data));
    rendered.map_err(|error| {
        let at = error
            .range()
            .and_then(|range| source.get(range))
            .map(str::trim);
        match (error.kind(), at) {
            (minijinja::ErrorKind::UndefinedError, Some(field)) => format!(
                "{what}: `{field}` is not set for this customer; add a fallback with `{{{{ {field} | default('…') }}}}` or fill in the data"
            ),
            _ => format!("{what}: {error}"),
        }
    })
}

/// Renders step `step_id` of `journey_id` for `account_id` (and `contact_id`).
pub async fn preview<S: Store>(
    definitions: &Definitions,
    store: &S,
    journey_id: &str,
    step_id: &str,
    account_id: &str,
    contact_id: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Preview, String> {
    let journey = definitions.journeys.get(journey_id).ok_or_else(|| {
        let hint = suggest::hint(journey_id, definitions.journeys.keys().map(String::as_str))
            .map_or(String::new(), |h| format!(" ({h})"));
        format!("no journey `{journey_id}`{hint}")
    })?;
    let step = journey
        .steps
        .iter()
        .find(|s| s.id == step_id)
        .ok_or_else(|| {
            let ids: Vec<&str> = journey.steps.iter().map(|s| s.id.as_str()).collect();
            format!(
                "journey `{journey_id}` has no step `{step_id}`; its steps are {}",
                suggest::backticked(&ids)
            )
        })?;
    let state = store
        .load_accounts(&[account_id.to_string()], true)
        .await
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or_else(|| format!("no account `{account_id}`"))?;
    let contact = pick_contact(
        &state.contacts,
        journey.file.audience,
        &step.action,
        contact_id,
    )?;
    if let Action::Email(email) = &step.action
        && !definitions
            .template_files
            .contains_key(&email.template.value)
    {
        return Err(format!("template `{}` does not load", email.template.value));
    }
    let strict = |what: &str, source: &str, data: &serde_json::Value| render(what, source, data);
    let rendered = crate::engine::journeys::step_payload(
        definitions,
        journey_id,
        step,
        &state,
        contact,
        &strict,
        now,
    )?;
    let Some(payload) = rendered else {
        return Err(format!(
            "step `{step_id}` sends nothing (only email, task and webhook steps can be previewed)"
        ));
    };
    let (kind, to, parts) = match &payload {
        Payload::Email(mail) => {
            let mut parts = vec![
                ("subject", mail.subject.clone()),
                ("text", mail.text.clone()),
            ];
            parts.extend(mail.html.clone().map(|html| ("html", html)));
            ("email", mail.to.clone(), parts)
        }
        Payload::Task(task) => {
            let pool = task.assign.pool.as_deref().unwrap_or_default();
            let to = match task.assign.strategy {
                Strategy::RoundRobin => format!("pool `{pool}`, round robin"),
                Strategy::LeastLoaded => format!("pool `{pool}`, least loaded"),
                Strategy::Owner => format!(
                    "the account's owner ({})",
                    state.account.owner.as_deref().unwrap_or("none set")
                ),
            };
            let mut parts = vec![("title", task.title.clone())];
            parts.extend(task.description.clone().map(|d| ("description", d)));
            ("task", to, parts)
        }
        Payload::Webhook(call) => {
            let body = serde_json::to_string_pretty(&call.body).map_err(|e| e.to_string())?;
            (
                "webhook",
                format!("endpoint `{}`", call.endpoint),
                vec![("body", format!("{body}\n"))],
            )
        }
    };
    Ok(Preview {
        kind,
        to,
        parts,
        payload,
    })
}

/// The contact to render for: the one asked for; for a contact journey one must be named;
/// for an account journey's mail, the first contact with an addressed role.
fn pick_contact<'a>(
    contacts: &'a [Contact],
    audience: Audience,
    action: &Action,
    wanted: Option<&str>,
) -> Result<Option<&'a Contact>, String> {
    let ids = || {
        let ids: Vec<&str> = contacts.iter().map(|c| c.id.as_str()).collect();
        if ids.is_empty() {
            "the account has no contacts".to_string()
        } else {
            format!("its contacts are {}", suggest::backticked(&ids))
        }
    };
    if let Some(id) = wanted {
        return contacts
            .iter()
            .find(|c| c.id == id)
            .map(Some)
            .ok_or_else(|| format!("no contact `{id}` at this account; {}", ids()));
    }
    match (audience, action) {
        (Audience::Contacts, _) => Err(format!(
            "this journey follows contacts: pass --contact ID; {}",
            ids()
        )),
        (Audience::Accounts, Action::Email(email)) => {
            crate::engine::journeys::addressed(contacts, email)
                .first()
                .copied()
                .map(Some)
                .ok_or_else(|| {
                    let roles: Vec<&str> = email
                        .to
                        .iter()
                        .flatten()
                        .map(|r| r.value.as_str())
                        .collect();
                    format!(
                        "no contact with role {} at this account; pass --contact ID",
                        suggest::backticked(&roles)
                    )
                })
        }
        _ => Ok(None),
    }
}
