//! Running one journey test: a fresh in-memory database, the timeline played through the
//! engine, and each expectation checked at its time.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::check::Timeline;
use super::{
    EnrollmentExpectation, Expectation, MailExpectation, ScoreExpectation, TaskExpectation,
    TierExpectation, WebhookExpectation,
};
use crate::clock::from_millis;
use crate::definitions::Definitions;
use crate::diagnostic::Location;
use crate::simulate::Simulation;
use crate::store::{
    DeliveryRow, DeliveryStatus, EnrollmentStatus, Payload, SqliteStore, Store, Task,
};
use crate::yaml::Spanned;

/// An expectation that did not hold.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    /// Where the expectation is written.
    #[serde(flatten)]
    pub location: Location,
    /// What was expected.
    pub expected: String,
    /// What happened instead.
    pub actual: String,
}

/// Runs a test over `timeline`: the failed expectations (empty: it passed).
pub async fn run(
    definitions: Arc<Definitions>,
    timeline: Timeline,
    expectations: &[Spanned<Expectation>],
) -> Result<Vec<Failure>, String> {
    let store = crate::store::open_memory()
        .await
        .map_err(|e| format!("cannot open an in-memory database: {e}"))?;
    let mut simulation =
        Simulation::new(definitions.clone(), store, timeline.start, timeline.every);
    for (at, import) in &timeline.arrivals {
        simulation.arrive(*at, import.clone());
    }
    // State is checked at its time; what was sent, at the end.
    let mut order: Vec<(DateTime<Utc>, &Spanned<Expectation>)> = expectations
        .iter()
        .map(|e| (at(&e.value).unwrap_or(timeline.end), e))
        .collect();
    order.sort_by_key(|(time, _)| *time);
    let checker = Checker {
        definitions: &definitions,
        timeline: &timeline,
    };
    let mut failures = Vec::new();
    for (time, expectation) in order {
        simulation.advance_to(time, &mut |_| {}).await?;
        if let Err((expected, actual)) = checker
            .check(simulation.store(), &expectation.value)
            .await?
        {
            failures.push(Failure {
                location: expectation.span.location(),
                expected,
                actual,
            });
        }
    }
    simulation.advance_to(timeline.end, &mut |_| {}).await?;
    failures.sort_by_key(|f| (f.location.line, f.location.column));
    Ok(failures)
}

/// When a state expectation is checked (`None`: at the end).
fn at(expectation: &Expectation) -> Option<DateTime<Utc>> {
    let time = match expectation {
        Expectation::Tier(e) => e.at.as_ref(),
        Expectation::Score(e) => e.at.as_ref(),
        Expectation::Enrolled(e) | Expectation::NotEnrolled(e) | Expectation::GoalReached(e) => {
            e.at.as_ref()
        }
        _ => None,
    };
    time.map(|t| t.value.0)
}

/// Expected and actual, when an expectation does not hold.
type Verdict = Result<(), (String, String)>;

struct Checker<'a> {
    definitions: &'a Definitions,
    timeline: &'a Timeline,
}

impl Checker<'_> {
    async fn check(
        &self,
        store: &SqliteStore,
        expectation: &Expectation,
    ) -> Result<Verdict, String> {
        let result = match expectation {
            Expectation::Tier(e) => self.tier(store, e).await,
            Expectation::Score(e) => self.score(store, e).await,
            Expectation::Enrolled(e) => self.enrollment(store, e, Enrolled::Entered).await,
            Expectation::NotEnrolled(e) => self.enrollment(store, e, Enrolled::Never).await,
            Expectation::GoalReached(e) => self.enrollment(store, e, Enrolled::Goal).await,
            Expectation::Mail(e) => self.mails(store, e, true).await,
            Expectation::NoMail(e) => self.mails(store, e, false).await,
            Expectation::Task(e) => self.tasks(store, e, true).await,
            Expectation::NoTask(e) => self.tasks(store, e, false).await,
            Expectation::Webhook(e) => self.webhooks(store, e, true).await,
            Expectation::NoWebhook(e) => self.webhooks(store, e, false).await,
        };
        result.map_err(|e| e.to_string())
    }

    fn account(&self, named: Option<&Spanned<String>>) -> String {
        self.timeline.account(named).unwrap_or_default()
    }

    async fn tier(
        &self,
        store: &SqliteStore,
        e: &TierExpectation,
    ) -> Result<Verdict, crate::store::StoreError> {
        let account = self.account(e.account.as_ref());
        let state = store
            .load_accounts(std::slice::from_ref(&account), false)
            .await?;
        let tier = state.first().and_then(|s| s.tier.clone());
        let expected = format!(
            "account `{account}` in tier {}{}",
            e.is.value,
            when(e.at.as_ref())
        );
        Ok(match tier {
            Some(tier) if tier == e.is.value.as_str() => Ok(()),
            Some(tier) => Err((expected, format!("tier {tier}"))),
            None => Err((expected, "no tier yet (not evaluated)".into())),
        })
    }

    async fn score(
        &self,
        store: &SqliteStore,
        e: &ScoreExpectation,
    ) -> Result<Verdict, crate::store::StoreError> {
        let account = self.account(e.account.as_ref());
        let state = store
            .load_accounts(std::slice::from_ref(&account), false)
            .await?;
        let name = e.name.value.as_str();
        let value = state.first().and_then(|s| s.scores.get(name).copied());
        let why_unknown = state
            .first()
            .and_then(|s| s.unknown_scores.get(name).cloned());
        let mut wanted = Vec::new();
        if let Some(v) = e.equals {
            wanted.push(format!("= {v}"));
        }
        if let Some(v) = e.at_least {
            wanted.push(format!(">= {v}"));
        }
        if let Some(v) = e.at_most {
            wanted.push(format!("<= {v}"));
        }
        if e.unknown == Some(true) {
            wanted.push("unknown".into());
        }
        let expected = format!(
            "{name} of `{account}` {}{}",
            wanted.join(" and "),
            when(e.at.as_ref())
        );
        let actual = match (&value, &why_unknown) {
            (Some(v), _) => format!("{}", (v * 100.0).round() / 100.0),
            (None, Some(why)) => format!("unknown ({why})"),
            (None, None) => "not computed".into(),
        };
        let holds = match value {
            Some(v) => {
                e.unknown != Some(true)
                    && e.equals.is_none_or(|x| (v - x).abs() <= 0.01)
                    && e.at_least.is_none_or(|x| v >= x)
                    && e.at_most.is_none_or(|x| v <= x)
            }
            None => e.unknown == Some(true) && why_unknown.is_some(),
        };
        Ok(if holds {
            Ok(())
        } else {
            Err((expected, actual))
        })
    }

    async fn enrollment(
        &self,
        store: &SqliteStore,
        e: &EnrollmentExpectation,
        kind: Enrolled,
    ) -> Result<Verdict, crate::store::StoreError> {
        let account = self.account(e.account.as_ref());
        let journey = e.journey.value.as_str();
        let enrollments: Vec<_> = store
            .enrollments_of(std::slice::from_ref(&account))
            .await?
            .into_iter()
            .filter(|n| n.journey_id == journey)
            .filter(|n| e.contact.as_ref().is_none_or(|c| n.contact_id == c.value))
            .collect();
        let subject = match &e.contact {
            Some(contact) => format!("contact `{}`", contact.value),
            None => format!("account `{account}`"),
        };
        let steps = self.definitions.journeys.get(journey).map(|j| &j.steps);
        let describe = |n: &crate::store::Enrollment| {
            let step = usize::try_from(n.step_index)
                .ok()
                .and_then(|i| steps.and_then(|s| s.get(i)))
                .map_or("the end".to_string(), |s| format!("step {}", s.id));
            match n.status {
                EnrollmentStatus::Active => format!("active at {step}"),
                status => format!(
                    "{}{}",
                    status.as_str(),
                    n.end_reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            }
        };
        let actual = if enrollments.is_empty() {
            "never enrolled".to_string()
        } else {
            enrollments
                .iter()
                .map(describe)
                .collect::<Vec<_>>()
                .join("; ")
        };
        let when = when(e.at.as_ref());
        Ok(match kind {
            Enrolled::Never if enrollments.is_empty() => Ok(()),
            Enrolled::Never => Err((
                format!("{subject} never enrolled in {journey}{when}"),
                actual,
            )),
            Enrolled::Goal
                if enrollments
                    .iter()
                    .any(|n| n.status == EnrollmentStatus::GoalReached) =>
            {
                Ok(())
            }
            Enrolled::Goal => Err((
                format!("{subject} reached the goal of {journey}{when}"),
                actual,
            )),
            Enrolled::Entered => match &e.step {
                None if !enrollments.is_empty() => Ok(()),
                None => Err((format!("{subject} enrolled in {journey}{when}"), actual)),
                Some(step) => {
                    let at_step = enrollments.iter().any(|n| {
                        n.status == EnrollmentStatus::Active
                            && usize::try_from(n.step_index)
                                .ok()
                                .and_then(|i| steps.and_then(|s| s.get(i)))
                                .is_some_and(|s| s.id == step.value)
                    });
                    if at_step {
                        Ok(())
                    } else {
                        Err((
                            format!("{subject} at step {} of {journey}{when}", step.value),
                            actual,
                        ))
                    }
                }
            },
        })
    }

    async fn mails(
        &self,
        store: &SqliteStore,
        e: &MailExpectation,
        present: bool,
    ) -> Result<Verdict, crate::store::StoreError> {
        let rows = outbox(store).await?;
        let mut described = Vec::new();
        let mut matching = 0u32;
        for row in &rows {
            let Payload::Email(mail) = &row.record.payload else {
                continue;
            };
            let record = &row.record;
            let to_matches = e.to.as_ref().is_none_or(|to| {
                record.contact_id == to.value
                    || mail.to.to_lowercase().contains(&to.value.to_lowercase())
            });
            if !to_matches || !live(row.status, present) {
                continue;
            }
            let sent_at = row.delivered_at.map(from_millis);
            described.push(format!(
                "{} `{}` to {} ({})",
                mail.template.as_deref().unwrap_or("notice"),
                mail.subject,
                if record.contact_id.is_empty() {
                    &mail.to
                } else {
                    &record.contact_id
                },
                match sent_at {
                    Some(t) => format!("sent {}", self.local(record, t)),
                    None => row.status.as_str().to_string(),
                }
            ));
            let fits = e
                .template
                .as_ref()
                .is_none_or(|t| mail.template.as_deref() == Some(t.value.as_str()))
                && e.journey
                    .as_ref()
                    .is_none_or(|j| record.journey_id == j.value)
                && e.step.as_ref().is_none_or(|s| record.step_id == s.value)
                && e.subject_contains
                    .as_ref()
                    .is_none_or(|text| mail.subject.contains(text.as_str()))
                && (!present
                    || sent_at.is_some_and(|t| {
                        e.sent_after.as_ref().is_none_or(|a| t >= a.value.0)
                            && e.sent_before.as_ref().is_none_or(|b| t < b.value.0)
                            && e.local_hours
                                .as_ref()
                                .is_none_or(|h| h.value.contains(self.local_time(record, t).time()))
                    }));
            if fits {
                matching += 1;
            }
        }
        let mut wanted = Vec::new();
        if let Some(template) = &e.template {
            wanted.push(format!("from template {}", template.value));
        }
        if let Some(to) = &e.to {
            wanted.push(format!("to {}", to.value));
        }
        if let Some(text) = &e.subject_contains {
            wanted.push(format!("with a subject containing \"{text}\""));
        }
        if let Some(journey) = &e.journey {
            wanted.push(format!("from journey {}", journey.value));
        }
        if let Some(step) = &e.step {
            wanted.push(format!("at step {}", step.value));
        }
        if let Some(after) = &e.sent_after {
            wanted.push(format!("sent at or after {}", after.value.0.to_rfc3339()));
        }
        if let Some(before) = &e.sent_before {
            wanted.push(format!("sent before {}", before.value.0.to_rfc3339()));
        }
        if let Some(hours) = &e.local_hours {
            let end = hours
                .value
                .end
                .map_or("24:00".to_string(), |t| t.format("%H:%M").to_string());
            wanted.push(format!(
                "sent between {}-{end} local time",
                hours.value.start.format("%H:%M")
            ));
        }
        let actual = if described.is_empty() {
            "no mails".to_string()
        } else {
            format!(
                "{}: {}",
                crate::text::count(described.len() as u64, "mail", "mails"),
                described.join("; ")
            )
        };
        Ok(verdict("mail", &wanted, present, e.count, matching, actual))
    }

    async fn tasks(
        &self,
        store: &SqliteStore,
        e: &TaskExpectation,
        present: bool,
    ) -> Result<Verdict, crate::store::StoreError> {
        let tasks = store.tasks(None, None).await?;
        let matching = tasks.iter().filter(|t| task_fits(t, e)).count() as u32;
        let described: Vec<String> = tasks
            .iter()
            .map(|t| {
                format!(
                    "`{}` for {} about {} ({})",
                    t.task.title,
                    t.task.assignee.as_deref().unwrap_or("nobody"),
                    t.task.account_id,
                    t.task.priority
                )
            })
            .collect();
        let mut wanted = Vec::new();
        if let Some(csm) = &e.csm {
            wanted.push(format!("for {}", csm.value));
        }
        if let Some(account) = &e.account {
            wanted.push(format!("about {}", account.value));
        }
        if let Some(text) = &e.title_contains {
            wanted.push(format!("with a title containing \"{text}\""));
        }
        if let Some(journey) = &e.journey {
            wanted.push(format!("from journey {}", journey.value));
        }
        if let Some(step) = &e.step {
            wanted.push(format!("at step {}", step.value));
        }
        if let Some(priority) = e.priority {
            wanted.push(format!("with priority {}", priority.as_str()));
        }
        let actual = if described.is_empty() {
            "no tasks".to_string()
        } else {
            format!(
                "{}: {}",
                crate::text::count(described.len() as u64, "task", "tasks"),
                described.join("; ")
            )
        };
        Ok(verdict("task", &wanted, present, e.count, matching, actual))
    }

    async fn webhooks(
        &self,
        store: &SqliteStore,
        e: &WebhookExpectation,
        present: bool,
    ) -> Result<Verdict, crate::store::StoreError> {
        let rows = outbox(store).await?;
        let mut matching = 0u32;
        let mut described = Vec::new();
        for row in &rows {
            let Payload::Webhook(call) = &row.record.payload else {
                continue;
            };
            if !live(row.status, present) {
                continue;
            }
            let record = &row.record;
            let body = call.body.clone().unwrap_or_default();
            described.push(format!("{} {}", call.endpoint, body));
            let fits = e.endpoint.as_ref().is_none_or(|n| call.endpoint == n.value)
                && e.account
                    .as_ref()
                    .is_none_or(|a| record.account_id == a.value)
                && e.journey
                    .as_ref()
                    .is_none_or(|j| record.journey_id == j.value)
                && e.step.as_ref().is_none_or(|s| record.step_id == s.value)
                && e.body
                    .iter()
                    .all(|(key, want)| body.get(key).is_some_and(|got| same(got, want)));
            if fits {
                matching += 1;
            }
        }
        let mut wanted = Vec::new();
        if let Some(endpoint) = &e.endpoint {
            wanted.push(format!("to {}", endpoint.value));
        }
        if let Some(account) = &e.account {
            wanted.push(format!("about {}", account.value));
        }
        if let Some(journey) = &e.journey {
            wanted.push(format!("from journey {}", journey.value));
        }
        if let Some(step) = &e.step {
            wanted.push(format!("at step {}", step.value));
        }
        if !e.body.is_empty() {
            wanted.push(format!(
                "with body fields {}",
                serde_json::Value::Object(e.body.clone().into_iter().collect())
            ));
        }
        let actual = if described.is_empty() {
            "no webhooks".to_string()
        } else {
            format!(
                "{}: {}",
                crate::text::count(described.len() as u64, "webhook", "webhooks"),
                described.join("; ")
            )
        };
        Ok(verdict(
            "webhook", &wanted, present, e.count, matching, actual,
        ))
    }

    /// A time in the recipient's zone (the contact's, else the account's, else the
    /// project's), as delivery decides send windows.
    fn local_time(
        &self,
        record: &crate::store::OutboxRecord,
        t: DateTime<Utc>,
    ) -> chrono::DateTime<chrono_tz::Tz> {
        let contact_zone = self
            .timeline
            .contacts
            .get(&record.contact_id)
            .and_then(|(_, _, zone)| zone.clone());
        let zone = contact_zone
            .or_else(|| self.timeline.account_zones.get(&record.account_id).cloned())
            .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
            .unwrap_or(self.definitions.config.timezone.value.0);
        t.with_timezone(&zone)
    }

    fn local(&self, record: &crate::store::OutboxRecord, t: DateTime<Utc>) -> String {
        let local = self.local_time(record, t);
        format!(
            "{} ({} {})",
            t.format("%Y-%m-%d %H:%M UTC"),
            local.format("%a %H:%M"),
            local.timezone()
        )
    }
}

enum Enrolled {
    Entered,
    Never,
    Goal,
}

fn task_fits(t: &Task, e: &TaskExpectation) -> bool {
    e.csm
        .as_ref()
        .is_none_or(|c| t.task.assignee.as_deref() == Some(c.value.as_str()))
        && e.account
            .as_ref()
            .is_none_or(|a| t.task.account_id == a.value)
        && e.journey
            .as_ref()
            .is_none_or(|j| t.task.journey_id == j.value)
        && e.step.as_ref().is_none_or(|s| t.task.step_id == s.value)
        && e.title_contains
            .as_ref()
            .is_none_or(|text| t.task.title.contains(text.as_str()))
        && e.priority.is_none_or(|p| t.task.priority == p.as_str())
}

/// Whether a record counts: sent, for an expectation that something was sent; sent or
/// still on its way, for one that nothing was.
fn live(status: DeliveryStatus, sent_only: bool) -> bool {
    match status {
        DeliveryStatus::Sent => true,
        DeliveryStatus::Pending | DeliveryStatus::Sending | DeliveryStatus::Held => !sent_only,
        DeliveryStatus::Skipped
        | DeliveryStatus::Failed
        | DeliveryStatus::Dead
        | DeliveryStatus::HeldOut => false,
    }
}

/// A JSON value as expected: equal, or the same text (`42` written for `"42"`).
fn same(got: &serde_json::Value, want: &serde_json::Value) -> bool {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    got == want || text(got) == text(want)
}

fn verdict(
    what: &str,
    wanted: &[String],
    present: bool,
    count: Option<u32>,
    matching: u32,
    actual: String,
) -> Verdict {
    let described = if wanted.is_empty() {
        what.to_string()
    } else {
        format!("{what} {}", wanted.join(", "))
    };
    let (holds, expected) = match (present, count) {
        (true, Some(n)) => (matching == n, format!("{n} × {described}")),
        (true, None) => (matching >= 1, format!("a {described}")),
        (false, _) => (matching == 0, format!("no {described}")),
    };
    if holds {
        Ok(())
    } else {
        Err((expected, format!("{actual} ({matching} matching)")))
    }
}

fn when(at: Option<&Spanned<crate::definitions::values::TimeSpec>>) -> String {
    at.map(|t| format!(" at {}", t.value.0.to_rfc3339()))
        .unwrap_or_else(|| " by the end".into())
}

/// Every outbox record, oldest first.
async fn outbox(store: &SqliteStore) -> Result<Vec<DeliveryRow>, crate::store::StoreError> {
    let mut rows = store.deliveries(&DeliveryStatus::ALL, i64::MAX).await?;
    rows.reverse();
    Ok(rows)
}
