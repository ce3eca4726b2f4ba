//! Journeys: who is in a journey's segment, who may enter, and the enrollment state machine
//! that runs steps until an enrollment has to wait or ends.

use chrono::{DateTime, Utc};
use minijinja::Environment;

use crate::clock::{from_millis, to_millis};
use crate::definitions::journey::{Assign, Audience, Entry, Reentry};
use crate::definitions::{Action, Definitions, Journey};
use crate::model::{AccountState, Contact};
use crate::rules::{Bindings, RuleEngine};
use crate::store::{
    Assignment, EmailPayload, Enrollment, EnrollmentStatus, EnrollmentUpdate, LogEntry,
    OutboxRecord, Payload, Strategy, TaskPayload, WebhookPayload,
};

use super::context;

/// Most steps one enrollment runs in one pass (validation rejects loops that never wait;
/// this is the backstop).
const MAX_STEPS_PER_PASS: usize = 256;

/// How long a branch that could not decide waits before it tries again (ms).
const BRANCH_RETRY_MS: i64 = 3_600_000;

/// Why a subject is not in a journey's segment, or `Ok` if it is. `bindings` must hold the
/// subject (account, and contact for contact journeys).
pub fn segment_check(
    engine: &RuleEngine,
    journey: &Journey,
    state: &AccountState,
    tier: Option<&str>,
    bindings: &mut Bindings,
) -> Result<(), SegmentMiss> {
    let segment = &journey.file.segment;
    if let Some(goal) = &segment.adoption_goal
        && !state.account.goals.contains(&goal.value)
    {
        return Err(SegmentMiss::Out(format!(
            "adoption goal `{}` is not among the account's goals",
            goal.value
        )));
    }
    if let Some(tiers) = &segment.tiers {
        let tier = tier.unwrap_or("(none)");
        if !tiers.iter().any(|t| t.value.as_str() == tier) {
            let allowed: Vec<&str> = tiers.iter().map(|t| t.value.as_str()).collect();
            return Err(SegmentMiss::Out(format!(
                "tier `{tier}` is not one of {}",
                allowed.join(", ")
            )));
        }
    }
    if let Some(rule) = &journey.segment_rule {
        match engine.run_bool(rule, bindings) {
            Ok(true) => {}
            Ok(false) => {
                return Err(SegmentMiss::Out(format!(
                    "segment condition is false: {}",
                    rule.source.trim()
                )));
            }
            Err(error) => return Err(SegmentMiss::RuleFailed(error.to_string())),
        }
    }
    Ok(())
}

/// Why a subject is not in a journey's segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentMiss {
    /// It is not: why.
    Out(String),
    /// The segment condition could not be evaluated: why. Nothing is decided.
    RuleFailed(String),
}

/// The engine's verdict on one subject's entry into a journey, as the engine acts on it and
/// `explain` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryVerdict {
    /// Not in the segment: why.
    NotInSegment(String),
    /// A rule (segment or entry condition) could not be evaluated — it read an unknown
    /// score or a missing metric: why. Nothing is decided: no entry, the edge is kept.
    RuleFailed(String),
    /// The entry condition is false.
    ConditionFalse,
    /// The entry condition held at the last evaluation too: entry waits for it to turn
    /// false, then true again.
    ConditionStillTrue,
    /// Entry is due (the condition became true, or the event or schedule came), but earlier
    /// enrollments forbid it: why.
    ReentryBlocked(String),
    /// Enters: now for a condition that became true, else when the event or schedule comes.
    Enters,
}

impl EntryVerdict {
    /// Whether segment and entry condition hold together (the edge the engine stores, so a
    /// condition enrolls when it *becomes* true); `None` when a rule failed and it is not
    /// known (the stored edge stays as it is).
    pub fn condition_holds(&self) -> Option<bool> {
        match self {
            Self::RuleFailed(_) => None,
            Self::ConditionStillTrue | Self::ReentryBlocked(_) | Self::Enters => Some(true),
            Self::NotInSegment(_) | Self::ConditionFalse => Some(false),
        }
    }
}

/// Decides whether a subject enters `journey`: its segment, its entry condition (if the
/// journey starts on one) against `condition_held` (the stored edge), and re-entry.
/// `bindings` must hold the subject.
pub fn entry_verdict(
    engine: &RuleEngine,
    journey: &Journey,
    state: &AccountState,
    bindings: &mut Bindings,
    earlier: &[&Enrollment],
    condition_held: bool,
    now: DateTime<Utc>,
) -> EntryVerdict {
    match segment_check(engine, journey, state, state.tier.as_deref(), bindings) {
        Ok(()) => {}
        Err(SegmentMiss::Out(why)) => return EntryVerdict::NotInSegment(why),
        Err(SegmentMiss::RuleFailed(why)) => return EntryVerdict::RuleFailed(why),
    }
    if let (Entry::Condition(_), Some(rule)) = (&journey.file.entry, &journey.entry_rule) {
        match engine.run_bool(rule, bindings) {
            Err(error) => return EntryVerdict::RuleFailed(error.reason),
            Ok(false) => return EntryVerdict::ConditionFalse,
            Ok(true) if condition_held => return EntryVerdict::ConditionStillTrue,
            Ok(true) => {}
        }
    }
    match reentry_check(journey, earlier, now) {
        Err(why) => EntryVerdict::ReentryBlocked(why),
        Ok(()) => EntryVerdict::Enters,
    }
}

/// A subject's enrollments (any status) in one journey: the account's, or one contact's.
pub fn subject_enrollments<'a>(
    enrollments: &'a [Enrollment],
    journey_id: &str,
    contact_id: &str,
) -> Vec<&'a Enrollment> {
    enrollments
        .iter()
        .filter(|e| e.journey_id == journey_id && e.contact_id == contact_id)
        .collect()
}

/// Whether a subject may enter again, given its earlier enrollments in this journey.
pub fn reentry_check(
    journey: &Journey,
    earlier: &[&Enrollment],
    now: DateTime<Utc>,
) -> Result<(), String> {
    if earlier.iter().any(|e| e.status == EnrollmentStatus::Active) {
        return Err("already enrolled".to_string());
    }
    let Some(last_end) = earlier.iter().filter_map(|e| e.ended_at).max() else {
        return Ok(());
    };
    match journey.file.reentry {
        Reentry::Never => Err("was enrolled before and re-entry is `never`".to_string()),
        Reentry::After(wait) => {
            let allowed_at = from_millis(last_end) + wait.as_chrono();
            if now >= allowed_at {
                Ok(())
            } else {
                Err(format!(
                    "may re-enter from {}",
                    allowed_at.format("%Y-%m-%d %H:%M UTC")
                ))
            }
        }
    }
}

/// Everything a step needs to run for one enrollment.
#[derive(Debug)]
pub struct StepContext<'a> {
    /// All definitions.
    pub definitions: &'a Definitions,
    /// The version the enrollment is pinned to.
    pub journey: &'a Journey,
    /// The account.
    pub state: &'a AccountState,
    /// The contact, for contact journeys.
    pub contact: Option<&'a Contact>,
    /// Rule variables for the subject.
    pub bindings: &'a mut Bindings,
    /// Template renderer.
    pub templates: &'a Environment<'static>,
    /// The time of the pass.
    pub now: DateTime<Utc>,
}

/// How a goal or exit check came out.
fn holds(
    engine: &RuleEngine,
    rule: Option<&crate::rules::Rule>,
    bindings: &mut Bindings,
    log: &mut Vec<LogEntry>,
) -> bool {
    let Some(rule) = rule else { return false };
    match engine.run_bool(rule, bindings) {
        Ok(value) => value,
        Err(error) => {
            log.push(LogEntry {
                step_id: None,
                event: "rule_error".into(),
                detail: error.to_string(),
            });
            false
        }
    }
}

/// Whether the journey's goal (checked first) or exit condition holds: the status and
/// reason that end the enrollment, with a history line added to `log`.
fn goal_or_exit(
    engine: &RuleEngine,
    journey: &Journey,
    bindings: &mut Bindings,
    log: &mut Vec<LogEntry>,
) -> Option<(EnrollmentStatus, &'static str)> {
    let (status, reason, detail) = if holds(engine, journey.goal_rule.as_ref(), bindings, log) {
        (
            EnrollmentStatus::GoalReached,
            "goal reached",
            "goal condition holds",
        )
    } else if holds(engine, journey.exit_rule.as_ref(), bindings, log) {
        (
            EnrollmentStatus::Exited,
            "exit condition",
            "exit condition holds",
        )
    } else {
        return None;
    };
    log.push(LogEntry {
        step_id: None,
        event: status.as_str().into(),
        detail: detail.into(),
    });
    Some((status, reason))
}

/// Checks an active enrollment's goal and exit conditions after its data changed. Returns
/// the update that ends it, or that wakes a `wait until` whose condition now holds.
pub fn on_data_change(
    ctx: &mut StepContext<'_>,
    enrollment: &Enrollment,
) -> Option<EnrollmentUpdate> {
    let engine = &ctx.definitions.engine;
    let mut log = Vec::new();
    let end = |status: EnrollmentStatus, reason: String, log: Vec<LogEntry>| EnrollmentUpdate {
        before: enrollment.clone(),
        status,
        step_index: enrollment.step_index,
        wait_started_at: None,
        next_due_at: None,
        end_reason: Some(reason),
        outbox: Vec::new(),
        log,
    };
    if let Some((status, reason)) = goal_or_exit(engine, ctx.journey, ctx.bindings, &mut log) {
        return Some(end(status, reason.into(), log));
    }
    let step = ctx.journey.steps.get(enrollment.step_index as usize)?;
    if let Action::WaitUntil { rule, .. } = &step.action
        && enrollment.wait_started_at.is_some()
        && matches!(engine.run_bool(rule, ctx.bindings), Ok(true))
        && enrollment
            .next_due_at
            .is_some_and(|due| due > to_millis(ctx.now))
    {
        return Some(EnrollmentUpdate {
            before: enrollment.clone(),
            status: EnrollmentStatus::Active,
            step_index: enrollment.step_index,
            wait_started_at: enrollment.wait_started_at,
            next_due_at: Some(to_millis(ctx.now)),
            end_reason: None,
            outbox: Vec::new(),
            log,
        });
    }
    None
}

/// Runs a due enrollment from its current step until it has to wait or ends.
pub fn advance(ctx: &mut StepContext<'_>, enrollment: &Enrollment) -> EnrollmentUpdate {
    let engine = &ctx.definitions.engine;
    let now = to_millis(ctx.now);
    let steps = &ctx.journey.steps;
    let mut index = enrollment.step_index.max(0) as usize;
    let mut waiting_since = enrollment.wait_started_at;
    let mut log: Vec<LogEntry> = Vec::new();
    let mut outbox = Vec::new();
    let tier = ctx.state.tier.as_deref();
    let update = |status: EnrollmentStatus,
                  index: usize,
                  waiting_since,
                  next_due_at,
                  reason: Option<String>,
                  log,
                  outbox| EnrollmentUpdate {
        before: enrollment.clone(),
        status,
        step_index: index as i64,
        wait_started_at: waiting_since,
        next_due_at,
        end_reason: reason,
        outbox,
        log,
    };
    for _ in 0..MAX_STEPS_PER_PASS {
        if let Some((status, reason)) = goal_or_exit(engine, ctx.journey, ctx.bindings, &mut log) {
            return update(status, index, None, None, Some(reason.into()), log, outbox);
        }
        let Some(step) = steps.get(index) else {
            log.push(LogEntry {
                step_id: None,
                event: "completed".into(),
                detail: "ran out of steps".into(),
            });
            return update(
                EnrollmentStatus::Completed,
                index,
                None,
                None,
                Some("completed".into()),
                log,
                outbox,
            );
        };
        let entry = |event: &str, detail: String| LogEntry {
            step_id: Some(step.id.clone()),
            event: event.into(),
            detail,
        };
        if let Some(tiers) = &step.tiers
            && !tiers.iter().any(|t| Some(t.as_str()) == tier)
        {
            let allowed: Vec<&str> = tiers.iter().map(|t| t.as_str()).collect();
            log.push(entry(
                "skipped",
                format!(
                    "tier `{}` is not one of {}",
                    tier.unwrap_or("(none)"),
                    allowed.join(", ")
                ),
            ));
            index += 1;
            waiting_since = None;
            continue;
        }
        match &step.action {
            Action::Email(_) | Action::Webhook(_) | Action::Task(_) => {
                let records = render(ctx, enrollment, index);
                let held_out = records.first().is_some_and(|r| r.held_out);
                let detail = match records.len() {
                    0 => "no recipients".to_string(),
                    1 => format!("{} queued", records[0].kind()),
                    n => format!("{n} {}s queued", records[0].kind()),
                };
                if held_out {
                    log.push(entry(
                        "held_out",
                        format!("{detail}, not sent: in the holdout"),
                    ));
                } else {
                    log.push(entry("queued", detail));
                }
                outbox.extend(records);
                index += 1;
                waiting_since = None;
            }
            Action::Wait(duration) => match waiting_since {
                Some(_) => {
                    log.push(entry("waited", step_wait_text(duration.0)));
                    index += 1;
                    waiting_since = None;
                }
                None => {
                    let due = to_millis(ctx.now + duration.as_chrono());
                    log.push(entry("waiting", step_wait_text(duration.0)));
                    return update(
                        EnrollmentStatus::Active,
                        index,
                        Some(now),
                        Some(due),
                        None,
                        log,
                        outbox,
                    );
                }
            },
            Action::WaitUntil { rule, timeout } => {
                let started = waiting_since.unwrap_or(now);
                let deadline = to_millis(from_millis(started) + timeout.as_chrono());
                match engine.run_bool(rule, ctx.bindings) {
                    Ok(true) => {
                        log.push(entry("condition_met", rule.source.trim().to_string()));
                        index += 1;
                        waiting_since = None;
                    }
                    outcome if now >= deadline => {
                        let why = match outcome {
                            Err(error) => format!("timed out ({error})"),
                            _ => format!("timed out after {}", step_wait_text(timeout.0)),
                        };
                        log.push(entry("timed_out", why));
                        index += 1;
                        waiting_since = None;
                    }
                    _ => {
                        if waiting_since.is_none() {
                            log.push(entry("waiting", format!("until {}", rule.source.trim())));
                        }
                        return update(
                            EnrollmentStatus::Active,
                            index,
                            Some(started),
                            Some(deadline),
                            None,
                            log,
                            outbox,
                        );
                    }
                }
            }
            Action::Branch(arms) => {
                let mut next = index + 1;
                for (rule, target) in arms {
                    let taken = match rule {
                        None => true,
                        Some(rule) => match engine.run_bool(rule, ctx.bindings) {
                            Ok(taken) => taken,
                            Err(error) => {
                                // An arm that cannot be decided (an unknown score, a missing
                                // metric) takes no arm: the branch waits and decides later.
                                log.push(entry(
                                    "waiting",
                                    format!("branch undecided, tried again in an hour: {error}"),
                                ));
                                let retry = now + BRANCH_RETRY_MS;
                                return update(
                                    EnrollmentStatus::Active,
                                    index,
                                    None,
                                    Some(retry),
                                    None,
                                    log,
                                    outbox,
                                );
                            }
                        },
                    };
                    if taken {
                        next = *target;
                        break;
                    }
                }
                let target = steps.get(next).map_or("(end)", |s| s.id.as_str());
                log.push(entry("branched", format!("to {target}")));
                index = next;
                waiting_since = None;
            }
            Action::Exit(reason) => {
                log.push(entry("exited", reason.clone()));
                return update(
                    EnrollmentStatus::Exited,
                    index,
                    None,
                    None,
                    Some(reason.clone()),
                    log,
                    outbox,
                );
            }
        }
    }
    log.push(LogEntry {
        step_id: None,
        event: "paused".into(),
        detail: format!("ran {MAX_STEPS_PER_PASS} steps in one pass"),
    });
    update(
        EnrollmentStatus::Active,
        index,
        None,
        Some(now + 60_000),
        None,
        log,
        outbox,
    )
}

fn step_wait_text(duration: std::time::Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Renders one template text: `what` names the part (`subject`, `html`, `title`, `body`, …;
/// `html` is auto-escaped), `source` is the template, `data` what it sees. The engine's
/// renderer is lenient (a broken template shows its error in the record), preview's strict.
pub type TextRenderer<'r> = dyn Fn(&str, &str, &serde_json::Value) -> Result<String, String> + 'r;

/// What an email, webhook or task step sends to one recipient (the contact, for mail);
/// `None` for steps that send nothing. The one rendering of a step, used by the engine and
/// by `touchline preview`.
pub fn step_payload(
    definitions: &Definitions,
    journey_id: &str,
    step: &crate::definitions::compile::StepDef,
    state: &AccountState,
    contact: Option<&Contact>,
    render: &TextRenderer<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Payload>, String> {
    let owner = state
        .account
        .owner
        .as_ref()
        .and_then(|id| definitions.config.csm(id));
    let mut data = context::template_data(state, contact, owner);
    // When the step runs, and the pages of `touchline run` a message can point at.
    let base = crate::delivery::unsubscribe::public_url(&definitions.config);
    let account: String =
        url::form_urlencoded::byte_serialize(state.account.id.as_bytes()).collect();
    data["now"] = serde_json::json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    data["today"] = serde_json::json!(now.format("%Y-%m-%d").to_string());
    data["links"] = serde_json::json!({
        "account": format!("{base}/accounts/{account}"),
        "inbox": format!("{base}/inbox"),
    });
    let text = |what: &str, source: &str| render(what, source, &data);
    let optional = |what: &str, source: Option<&String>| source.map(|s| text(what, s)).transpose();
    Ok(Some(match &step.action {
        Action::Email(email) => {
            let template = definitions.template_files.get(&email.template.value);
            Payload::Email(EmailPayload {
                template: Some(email.template.value.clone()),
                to: contact.map(|c| c.email.clone()).unwrap_or_default(),
                subject: optional("subject", template.map(|t| &t.subject))?.unwrap_or_default(),
                text: optional("text", template.map(|t| &t.text))?.unwrap_or_default(),
                html: optional("html", template.and_then(|t| t.html.as_ref()))?,
                notice: false,
            })
        }
        Action::Webhook(webhook) => Payload::Webhook(WebhookPayload {
            endpoint: webhook.endpoint.value.clone(),
            body: match &webhook.body {
                Some(body) => Some(render_json(&text, body)?),
                None => None,
            },
        }),
        Action::Task(task) => {
            let (strategy, pool) = match &task.assign {
                Assign::Owner => (Strategy::Owner, None),
                Assign::RoundRobin(pool) => (Strategy::RoundRobin, Some(pool.value.clone())),
                Assign::LeastLoaded(pool) => (Strategy::LeastLoaded, Some(pool.value.clone())),
            };
            Payload::Task(TaskPayload {
                title: text("title", &task.title)?,
                description: optional("description", task.description.as_ref())?,
                assign: Assignment {
                    strategy,
                    pool,
                    owner: state.account.owner.clone(),
                },
                due: task.due.as_ref().map(|d| step_wait_text(d.value.0)),
                due_seconds: task.due.as_ref().map(|d| d.value.0.as_secs()),
                priority: task.priority,
                key: optional("key", task.key.as_ref())?,
                reason: serde_json::json!({
                    "journey": journey_id,
                    "step": step.id,
                    "tier": state.tier,
                    "scores": state.scores,
                }),
            })
        }
        _ => return Ok(None),
    }))
}

/// The outbox records of an email, webhook or task step.
fn render(ctx: &StepContext<'_>, enrollment: &Enrollment, index: usize) -> Vec<OutboxRecord> {
    let step = &ctx.journey.steps[index];
    let renderer = |what: &str, source: &str, data: &serde_json::Value| {
        let name = if what == "html" {
            html_name(source)
        } else {
            source.to_string()
        };
        Ok(render_text(ctx.templates, &name, data))
    };
    let recipients: Vec<Option<&Contact>> = match (&step.action, ctx.journey.file.audience) {
        (Action::Email(_), Audience::Contacts) if ctx.contact.is_some() => vec![ctx.contact],
        (Action::Email(email), _) => addressed(&ctx.state.contacts, email)
            .into_iter()
            .map(Some)
            .collect(),
        _ => vec![ctx.contact],
    };
    let key = format!("{}:{}", enrollment.id, step.id);
    // The holdout gets no mail and no task; webhooks keep other systems in step.
    let held_out = matches!(step.action, Action::Email(_) | Action::Task(_))
        && ctx.journey.holds_out(&enrollment.account_id);
    recipients
        .into_iter()
        .filter_map(|contact| {
            let rendered = step_payload(
                ctx.definitions,
                &enrollment.journey_id,
                step,
                ctx.state,
                contact,
                &renderer,
                ctx.now,
            );
            // The lenient renderer never fails.
            let payload = rendered.ok().flatten()?;
            let mail = matches!(payload, Payload::Email(_));
            let (key, contact_id) = match (mail, ctx.journey.file.audience, contact) {
                (true, Audience::Accounts, Some(c)) => (format!("{key}:{}", c.id), c.id.clone()),
                (true, _, Some(c)) => (key.clone(), c.id.clone()),
                _ => (key.clone(), enrollment.contact_id.clone()),
            };
            Some(OutboxRecord {
                idempotency_key: key,
                enrollment_id: enrollment.id,
                journey_id: enrollment.journey_id.clone(),
                step_id: step.id.clone(),
                account_id: enrollment.account_id.clone(),
                contact_id,
                payload,
                held_out,
            })
        })
        .collect()
}

/// The contacts an account journey's mail goes to: those with one of its `to:` roles.
pub fn addressed<'a>(
    contacts: &'a [Contact],
    email: &crate::definitions::journey::EmailStep,
) -> Vec<&'a Contact> {
    contacts
        .iter()
        .filter(|c| {
            c.role
                .as_deref()
                .is_some_and(|role| email.to.iter().flatten().any(|r| r.value == role))
        })
        .collect()
}

/// The name an HTML part is compiled under: HTML parts are auto-escaped, others are not.
pub fn html_name(source: &str) -> String {
    format!("{HTML_PREFIX}{source}")
}

const HTML_PREFIX: &str = "html:";

/// An environment whose templates named by [`html_name`] escape what they insert.
pub fn template_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.starts_with(HTML_PREFIX) {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env
}

/// Renders the template compiled under `name` (its source, or [`html_name`] of it); a broken
/// template renders as its error, so the record shows what to fix instead of vanishing.
fn render_text(env: &Environment<'static>, name: &str, data: &serde_json::Value) -> String {
    let rendered = match env.get_template(name) {
        Ok(template) => template.render(data),
        Err(error) => Err(error),
    };
    rendered.unwrap_or_else(|error| format!("[template error: {error}]"))
}

fn render_json(
    text: &dyn Fn(&str, &str) -> Result<String, String>,
    value: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    Ok(match value {
        serde_json::Value::String(s) => serde_json::Value::String(text("body", s)?),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| render_json(text, v))
            .collect::<Result<_, _>>()?,
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), render_json(text, v)?)))
            .collect::<Result<_, String>>()?,
        other => other.clone(),
    })
}
