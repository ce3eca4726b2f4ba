//! Plans: what the engine would do over the next days, worked out on a copy of the
//! database with a [`Simulation`], and counted the way a CS team reviews a change — entries
//! per journey, records per step (mails per template, webhooks per endpoint, tasks), tasks
//! per CSM per day, accounts changing tier, and holds the guard would raise.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::clock::{from_millis, to_millis};
use crate::definitions::Definitions;
use crate::definitions::compile::Action;
use crate::simulate::Simulation;
use crate::store::{DeliveryStatus, Store, TaskStatus};

/// What one set of definitions would do over the planned days.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// New enrollments per journey.
    pub entries: BTreeMap<String, u64>,
    /// Records per (journey, step).
    pub steps: BTreeMap<(String, String), StepCount>,
    /// New tasks per (CSM, day); `None` for tasks nobody could take.
    pub tasks: BTreeMap<(Option<String>, NaiveDate), u64>,
    /// Open tasks per CSM when the plan starts.
    pub open_before: BTreeMap<String, u64>,
    /// Accounts moving between tiers: (from, to) → how many (`None`: no tier yet).
    pub tier_flows: BTreeMap<(Option<String>, String), u64>,
    /// Journeys the guard would hold: journey → (why, records held).
    pub holds: BTreeMap<String, (String, i64)>,
    /// Journeys already on hold when the plan starts.
    pub held_before: std::collections::BTreeSet<String>,
    /// Passes run.
    pub passes: u64,
    /// Account evaluations in all.
    pub evaluated: u64,
    /// Rule errors in all.
    pub rule_errors: u64,
}

/// Records one step would produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepCount {
    /// `email`, `webhook` or `task`.
    pub kind: String,
    /// The template or endpoint it delivers to (empty for tasks).
    pub detail: String,
    /// Records written.
    pub records: u64,
    /// Of those, delivered within the plan.
    pub sent: u64,
    /// Held by the guard.
    pub held: u64,
    /// Not sent on purpose (suppressed, over the frequency cap).
    pub skipped: u64,
}

/// The moment a plan starts and how it steps.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// The first pass.
    pub from: DateTime<Utc>,
    /// The end.
    pub to: DateTime<Utc>,
    /// Time between passes.
    pub every: Duration,
}

impl Span {
    /// Delivery steps the simulation takes (for a progress bar).
    pub fn steps(&self) -> u64 {
        let step = self.every.min(Duration::hours(1));
        u64::try_from(((self.to - self.from).num_seconds() / step.num_seconds().max(1)) + 1)
            .unwrap_or(0)
    }
}

/// Runs `definitions` over `store` (a copy the plan may write) for `span`; `progress`
/// hears each step.
pub async fn simulate<S: Store>(
    definitions: Arc<Definitions>,
    store: S,
    span: Span,
    progress: &mut (dyn FnMut(DateTime<Utc>) + Send),
) -> Result<Outcome, String> {
    let store_error = |e: crate::store::StoreError| e.to_string();
    let tasks_before = store.tasks(None, None).await.map_err(store_error)?;
    let task_before = tasks_before.iter().map(|t| t.id).max().unwrap_or(0);
    let mut outcome = Outcome::default();
    for task in tasks_before.iter().filter(|t| t.status == TaskStatus::Open) {
        if let Some(csm) = &task.task.assignee {
            *outcome.open_before.entry(csm.clone()).or_default() += 1;
        }
    }
    outcome.held_before = store
        .holds()
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|h| h.journey_id)
        .collect();
    let mut simulation = Simulation::new(definitions.clone(), store.clone(), span.from, span.every);
    simulation.advance_to(span.to, progress).await?;
    for (_, pass) in &simulation.passes {
        outcome.passes += 1;
        outcome.evaluated += pass.evaluated;
        outcome.rule_errors += pass.rule_errors;
        for (journey, n) in &pass.enrolled_by_journey {
            *outcome.entries.entry(journey.clone()).or_default() += n;
        }
    }
    // Records the plan's passes wrote, counted per step by the database (not loaded: at
    // 100 000 accounts they would not fit in memory). A task step's notice mails to its
    // CSM share the step and are left out.
    for row in store
        .outbox_by_step(to_millis(span.from), i64::MAX)
        .await
        .map_err(store_error)?
    {
        let Some(action) = definitions_step(&definitions, &row.journey_id, &row.step_id) else {
            continue;
        };
        let (kind, detail) = match action {
            Action::Email(mail) => ("email", mail.template.value.clone()),
            Action::Webhook(call) => ("webhook", call.endpoint.value.clone()),
            Action::Task(_) => ("task", String::new()),
            _ => continue,
        };
        // Held-out records are never sent: a plan counts what customers and CSMs receive.
        if row.kind != kind || row.status == DeliveryStatus::HeldOut {
            continue;
        }
        let count = outcome
            .steps
            .entry((row.journey_id.clone(), row.step_id.clone()))
            .or_default();
        count.kind = kind.to_string();
        count.detail = detail;
        let n = u64::try_from(row.count).unwrap_or(0);
        count.records += n;
        match row.status {
            DeliveryStatus::Sent => count.sent += n,
            DeliveryStatus::Held => count.held += n,
            DeliveryStatus::Skipped => count.skipped += n,
            _ => {}
        }
    }
    for task in store
        .tasks(None, None)
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|t| t.id > task_before)
    {
        let day = from_millis(task.created_at).date_naive();
        *outcome
            .tasks
            .entry((task.task.assignee.clone(), day))
            .or_default() += 1;
    }
    for (change, n) in store
        .tier_flows(to_millis(span.from), i64::MAX)
        .await
        .map_err(store_error)?
    {
        *outcome
            .tier_flows
            .entry((change.from, change.to))
            .or_default() += u64::try_from(n).unwrap_or(0);
    }
    for hold in store.holds().await.map_err(store_error)? {
        outcome
            .holds
            .insert(hold.journey_id, (hold.reason, hold.records));
    }
    Ok(outcome)
}

/// The action of a journey's step, if the definitions have it.
fn definitions_step<'a>(
    definitions: &'a Definitions,
    journey: &str,
    step: &str,
) -> Option<&'a Action> {
    definitions
        .journeys
        .get(journey)?
        .steps
        .iter()
        .find(|s| s.id == step)
        .map(|s| &s.action)
}
