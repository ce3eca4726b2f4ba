//! `touchline report`: does the programme work? Per journey the funnel (entered, reached
//! each step, what was sent, held or skipped), goal conversion and time to goal, broken
//! down by tier and adoption goal; time to value per adoption goal; tier flows; CSM
//! workload; delivery health. Built once as data, printed as text or JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::clock::{from_millis, to_millis};
use crate::definitions::Definitions;
use crate::definitions::compile::Action;
use crate::model::AccountState;
use crate::stats::{percent, quantile};
use crate::store::{DeliveryStatus, Enrollment, EnrollmentStatus, Store, StoreError, TaskStatus};
use crate::text::count;
use crate::views::score_validation::{self, ScoreValidation};
use crate::views::step_effects::{self, StepEffect, Verdict};

/// Days after its start within which an account should reach its onboarding goal, unless
/// the report is told otherwise.
pub const VALUE_LIMIT_DAYS: i64 = 60;

/// What the report covers.
#[derive(Debug, Clone, Serialize)]
pub struct Scope {
    /// Start of the period (inclusive).
    pub from: DateTime<Utc>,
    /// End of the period (exclusive).
    pub to: DateTime<Utc>,
    /// Only this journey.
    pub journey: Option<String>,
    /// Only accounts in this tier (now).
    pub tier: Option<String>,
    /// Only accounts holding this adoption goal.
    pub goal: Option<String>,
    /// Days within which an account should reach value.
    pub value_limit_days: i64,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    /// What it covers.
    pub scope: Scope,
    /// False when nothing happened in the period (the numbers below are then all empty).
    pub has_activity: bool,
    /// Per journey.
    pub journeys: Vec<JourneyReport>,
    /// Time to value per adoption goal.
    pub time_to_value: Vec<GoalValue>,
    /// Accounts moving between tiers in the period, and the rule that moved them.
    pub tier_flows: Vec<TierFlow>,
    /// CSM workload.
    pub csms: Vec<CsmLoad>,
    /// Delivery health per channel (and webhook endpoint).
    pub delivery: Vec<ChannelHealth>,
    /// Suppressed addresses per reason (all time).
    pub suppressions: BTreeMap<String, u64>,
    /// Whether each email and task step moves the scores (against the holdout where the
    /// journey has one); ineffective steps are flagged.
    pub step_effects: Vec<StepEffect>,
    /// Each health score against churn in the period.
    pub score_validation: Vec<ScoreValidation>,
}

/// One journey's funnel.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyReport {
    /// The journey.
    pub journey_id: String,
    /// Its name.
    pub name: String,
    /// Enrollments that entered in the period.
    pub entered: u64,
    /// Per step that delivers something (email, webhook, task), in the journey's order.
    pub steps: Vec<StepFunnel>,
    /// Of those that entered, reached the goal.
    pub goal_reached: u64,
    /// `goal_reached` of `entered`, in percent (`null` with no entries).
    pub conversion_percent: Option<f64>,
    /// Left by an exit step or condition.
    pub exited: u64,
    /// Ran out of steps without reaching the goal.
    pub completed: u64,
    /// Still walking the journey.
    pub active: u64,
    /// Days from entry to goal: median.
    pub median_days_to_goal: Option<f64>,
    /// Days from entry to goal: 90th percentile.
    pub p90_days_to_goal: Option<f64>,
    /// By the account's tier (now).
    pub by_tier: Vec<Breakdown>,
    /// By the account's adoption goal.
    pub by_goal: Vec<Breakdown>,
    /// Tasks the journey created in the period: created, done, open.
    pub tasks: TaskCounts,
}

/// One step's part of the funnel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepFunnel {
    /// The step.
    pub step_id: String,
    /// `email`, `webhook` or `task`.
    pub kind: String,
    /// Enrollments that reached it.
    pub reached: u64,
    /// Records delivered.
    pub sent: u64,
    /// Records held by the guard.
    pub held: u64,
    /// Records not sent on purpose (suppressed, over the cap, discarded).
    pub skipped: u64,
    /// Records not sent because the subject is in the journey's holdout.
    pub held_out: u64,
    /// Records failed or dead.
    pub failed: u64,
    /// Records still waiting (send window, retry).
    pub pending: u64,
}

/// Entries and goals within one tier or adoption goal.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// The tier or goal (`(none)` when the account has none).
    pub key: String,
    /// Entered.
    pub entered: u64,
    /// Reached the goal.
    pub goal_reached: u64,
    /// In percent.
    pub conversion_percent: Option<f64>,
}

/// Tasks counted.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TaskCounts {
    /// Created in the period.
    pub created: u64,
    /// Of those, done.
    pub done: u64,
    /// Of those, still open.
    pub open: u64,
}

/// Time to value for one adoption goal.
#[derive(Debug, Clone, Serialize)]
pub struct GoalValue {
    /// The adoption goal.
    pub goal: String,
    /// Its name.
    pub name: String,
    /// Accounts with this goal that started in the period (contract start, else creation).
    pub accounts: u64,
    /// Of those, reached the goal of a journey for this adoption goal by the period's end.
    pub reached: u64,
    /// Days from start to value: median.
    pub median_days: Option<f64>,
    /// Days from start to value: 90th percentile.
    pub p90_days: Option<f64>,
    /// Accounts whose limit has passed without reaching value.
    pub not_within_limit: u64,
    /// Accounts whose limit has passed (the base of the share).
    pub limit_passed: u64,
    /// `not_within_limit` of `limit_passed`, in percent.
    pub not_within_limit_percent: Option<f64>,
}

/// Accounts moving between tiers.
#[derive(Debug, Clone, Serialize)]
pub struct TierFlow {
    /// From (`null`: first tier).
    pub from: Option<String>,
    /// To.
    pub to: String,
    /// The rule that moved them.
    pub rule: String,
    /// How many times.
    pub accounts: u64,
}

/// One CSM's workload.
#[derive(Debug, Clone, Serialize)]
pub struct CsmLoad {
    /// The CSM id (`null`: tasks nobody could take).
    pub csm: Option<String>,
    /// Name.
    pub name: String,
    /// Open tasks now.
    pub open: u64,
    /// Of those, past due at the period's end.
    pub overdue: u64,
    /// Done in the period.
    pub done: u64,
    /// Days from creation to done, median, for tasks done in the period.
    pub median_days_to_done: Option<f64>,
    /// Capacity (open tasks), if set.
    pub capacity: Option<u32>,
    /// Open tasks of capacity, in percent.
    pub capacity_use_percent: Option<f64>,
}

/// Delivery health of one channel or endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelHealth {
    /// `email`, `webhook` or `task`.
    pub kind: String,
    /// The webhook endpoint.
    pub endpoint: Option<String>,
    /// Delivered.
    pub sent: u64,
    /// Failed for good.
    pub failed: u64,
    /// Out of attempts.
    pub dead: u64,
    /// Waiting.
    pub pending: u64,
    /// Held by the guard.
    pub held: u64,
    /// Skipped on purpose.
    pub skipped: u64,
    /// Not sent: in a journey's holdout.
    pub held_out: u64,
}

/// A filter naming something the project does not have.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A bad filter.
    #[error("{0}")]
    Filter(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the filters against the project: an unknown journey, tier or goal gets a
/// did-you-mean.
pub fn check_scope(definitions: &Definitions, scope: &Scope) -> Result<(), ReportError> {
    let check = |value: &Option<String>, what: &str, known: Vec<&str>| match value {
        Some(v) if !known.contains(&v.as_str()) => Err(ReportError::Filter(format!(
            "unknown {what} `{v}`{}",
            crate::suggest::hint(v, known.iter().copied())
                .map(|h| format!("; {h}"))
                .unwrap_or_default()
        ))),
        _ => Ok(()),
    };
    check(
        &scope.journey,
        "journey",
        definitions.journeys.keys().map(String::as_str).collect(),
    )?;
    check(&scope.tier, "tier", vec!["high", "low", "tech"])?;
    check(
        &scope.goal,
        "adoption goal",
        definitions
            .config
            .adoption_goals
            .keys()
            .map(String::as_str)
            .collect(),
    )
}

/// Builds the report.
pub async fn build<S: Store>(
    store: &S,
    definitions: &Definitions,
    scope: Scope,
) -> Result<ReportView, ReportError> {
    check_scope(definitions, &scope)?;
    let (from, to) = (to_millis(scope.from), to_millis(scope.to));
    let accounts = all_accounts(store).await?;
    let selected = |account_id: &str| {
        let Some(state) = accounts.get(account_id) else {
            return scope.tier.is_none() && scope.goal.is_none();
        };
        scope
            .tier
            .as_ref()
            .is_none_or(|t| state.tier.as_ref() == Some(t))
            && scope
                .goal
                .as_ref()
                .is_none_or(|g| state.account.goals.contains(g))
    };
    let entered: Vec<Enrollment> = store
        .enrollments_entered(from, to)
        .await?
        .into_iter()
        .filter(|e| scope.journey.as_ref().is_none_or(|j| &e.journey_id == j))
        .filter(|e| selected(&e.account_id))
        .collect();
    let filtered = scope.tier.is_some() || scope.goal.is_some();
    let reached = store.steps_reached(from, to).await?;
    let outbox = store.outbox_by_step(from, to).await?;
    let tasks = store.tasks(None, None).await?;
    let mut journeys = Vec::new();
    for (id, journey) in &definitions.journeys {
        if scope.journey.as_ref().is_some_and(|j| j != id) {
            continue;
        }
        let mine: Vec<&Enrollment> = entered.iter().filter(|e| &e.journey_id == id).collect();
        let status_count =
            |status: EnrollmentStatus| mine.iter().filter(|e| e.status == status).count() as u64;
        let goal_reached = status_count(EnrollmentStatus::GoalReached);
        let days_to_goal: Vec<f64> = mine
            .iter()
            .filter(|e| e.status == EnrollmentStatus::GoalReached)
            .filter_map(|e| {
                e.ended_at
                    .map(|end| (end - e.entered_at) as f64 / 86_400_000.0)
            })
            .collect();
        // The steps that deliver something: the funnel's rungs.
        let steps = journey
            .steps
            .iter()
            .filter(|step| {
                matches!(
                    step.action,
                    Action::Email(_) | Action::Webhook(_) | Action::Task(_)
                )
            })
            .map(|step| {
                let mut funnel = StepFunnel {
                    step_id: step.id.clone(),
                    kind: step_kind(&step.action).to_string(),
                    ..StepFunnel::default()
                };
                // Step-level counts come from the whole journey; with a tier or goal filter
                // they are left out rather than shown for the wrong accounts.
                if !filtered {
                    funnel.reached = reached
                        .iter()
                        .find(|(j, s, _)| j == id && s == &step.id)
                        .map_or(0, |(_, _, n)| u64::try_from(*n).unwrap_or(0));
                    // A task step's notice mails to its CSM share the step; they are not
                    // what the step delivers.
                    let mine = |r: &&crate::store::StepOutboxCount| {
                        &r.journey_id == id && r.step_id == step.id && r.kind == funnel.kind
                    };
                    for row in outbox.iter().filter(mine) {
                        let n = u64::try_from(row.count).unwrap_or(0);
                        match row.status {
                            DeliveryStatus::Sent => funnel.sent += n,
                            DeliveryStatus::Held => funnel.held += n,
                            DeliveryStatus::Skipped => funnel.skipped += n,
                            DeliveryStatus::HeldOut => funnel.held_out += n,
                            DeliveryStatus::Failed | DeliveryStatus::Dead => funnel.failed += n,
                            DeliveryStatus::Pending | DeliveryStatus::Sending => {
                                funnel.pending += n
                            }
                        }
                    }
                }
                funnel
            })
            .collect();
        let created: Vec<_> = tasks
            .iter()
            .filter(|t| &t.task.journey_id == id && t.created_at >= from && t.created_at < to)
            .filter(|t| selected(&t.task.account_id))
            .collect();
        journeys.push(JourneyReport {
            journey_id: id.clone(),
            name: journey.file.name.clone(),
            entered: mine.len() as u64,
            steps,
            goal_reached,
            conversion_percent: percent(goal_reached, mine.len() as u64),
            exited: status_count(EnrollmentStatus::Exited),
            completed: status_count(EnrollmentStatus::Completed),
            active: status_count(EnrollmentStatus::Active),
            median_days_to_goal: quantile(&days_to_goal, 0.5),
            p90_days_to_goal: quantile(&days_to_goal, 0.9),
            by_tier: breakdown(&mine, |e| {
                vec![
                    accounts
                        .get(&e.account_id)
                        .and_then(|a| a.tier.clone())
                        .unwrap_or_else(|| "(none)".into()),
                ]
            }),
            by_goal: breakdown(&mine, |e| {
                let goals = accounts
                    .get(&e.account_id)
                    .map(|a| a.account.goals.clone())
                    .unwrap_or_default();
                if goals.is_empty() {
                    vec!["(none)".into()]
                } else {
                    goals
                }
            }),
            tasks: TaskCounts {
                created: created.len() as u64,
                done: created
                    .iter()
                    .filter(|t| t.status == TaskStatus::Done)
                    .count() as u64,
                open: created
                    .iter()
                    .filter(|t| t.status == TaskStatus::Open)
                    .count() as u64,
            },
        });
    }
    let time_to_value = time_to_value(store, definitions, &scope, &accounts, &selected).await?;
    let tier_flows = store
        .tier_flows(from, to)
        .await?
        .into_iter()
        .map(|(change, n)| TierFlow {
            from: change.from,
            to: change.to,
            rule: change.rule,
            accounts: u64::try_from(n).unwrap_or(0),
        })
        .collect();
    let has_activity = !entered.is_empty()
        || !outbox.is_empty()
        || tasks
            .iter()
            .any(|t| t.created_at >= from && t.created_at < to);
    let mut suppressions = BTreeMap::new();
    for suppression in store.suppressions().await? {
        *suppressions.entry(suppression.reason).or_insert(0) += 1;
    }
    let mut step_effects = Vec::new();
    for (id, journey) in &definitions.journeys {
        if scope.journey.as_ref().is_none_or(|j| j == id) {
            step_effects
                .extend(step_effects::for_journey(store, journey, from, to, &selected).await?);
        }
    }
    let churned = score_validation::churn_times(store, definitions, &accounts).await?;
    let score_validation =
        score_validation::build(store, definitions, &churned, (from, to), &selected).await?;
    Ok(ReportView {
        step_effects,
        score_validation,
        csms: csm_loads(definitions, &tasks, from, to),
        delivery: delivery_health(definitions, &outbox),
        scope,
        has_activity,
        journeys,
        time_to_value,
        tier_flows,
        suppressions,
    })
}

/// Every account, by id.
async fn all_accounts<S: Store>(store: &S) -> Result<BTreeMap<String, AccountState>, StoreError> {
    let mut accounts = BTreeMap::new();
    let mut after = String::new();
    loop {
        let ids = store.account_ids(&after, 5000).await?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        for state in store.load_accounts(&ids, false).await? {
            accounts.insert(state.account.id.clone(), state);
        }
        after = last;
    }
    Ok(accounts)
}

fn step_kind(action: &Action) -> &'static str {
    match action {
        Action::Email(_) => "email",
        Action::Webhook(_) => "webhook",
        Action::Task(_) => "task",
        Action::Wait(_) | Action::WaitUntil { .. } => "wait",
        Action::Branch(_) => "branch",
        Action::Exit(_) => "exit",
    }
}

/// The report as one self-contained HTML page: inline SVG charts, no scripts, nothing
/// fetched from the network.
pub fn html(view: &ReportView) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", include_str!("report.html"))
        .map_err(|e| format!("the report page does not compile: {e}"))?;
    env.get_template("report.html")
        .and_then(|page| page.render(view))
        .map_err(|e| format!("cannot render the report page: {e}"))
}

fn breakdown(
    enrollments: &[&Enrollment],
    keys: impl Fn(&Enrollment) -> Vec<String>,
) -> Vec<Breakdown> {
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in enrollments {
        for key in keys(e) {
            let entry = counts.entry(key).or_default();
            entry.0 += 1;
            if e.status == EnrollmentStatus::GoalReached {
                entry.1 += 1;
            }
        }
    }
    counts
        .into_iter()
        .map(|(key, (entered, goal))| Breakdown {
            key,
            entered,
            goal_reached: goal,
            conversion_percent: percent(goal, entered),
        })
        .collect()
}

/// For each adoption goal: accounts that started in the period, and when they first reached
/// the goal of a journey for that adoption goal.
async fn time_to_value<S: Store>(
    store: &S,
    definitions: &Definitions,
    scope: &Scope,
    accounts: &BTreeMap<String, AccountState>,
    selected: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<GoalValue>, StoreError> {
    let to = to_millis(scope.to);
    let limit = Duration::days(scope.value_limit_days);
    // When each account first reached the goal of a journey, by journey.
    let mut first_goal: BTreeMap<(&str, String), i64> = BTreeMap::new();
    let all = store.enrollments_entered(i64::MIN, to).await?;
    for e in all
        .iter()
        .filter(|e| e.status == EnrollmentStatus::GoalReached)
    {
        if let Some(end) = e.ended_at.filter(|end| *end < to) {
            let key = (e.journey_id.as_str(), e.account_id.clone());
            let at = first_goal.entry(key).or_insert(end);
            *at = (*at).min(end);
        }
    }
    let mut values = Vec::new();
    for (goal, meta) in &definitions.config.adoption_goals {
        if scope.goal.as_ref().is_some_and(|g| g != goal) {
            continue;
        }
        let journeys: BTreeSet<&str> = definitions
            .journeys
            .iter()
            .filter(|(_, j)| {
                j.file
                    .segment
                    .adoption_goal
                    .as_ref()
                    .is_some_and(|g| &g.value == goal)
            })
            .map(|(id, _)| id.as_str())
            .collect();
        let mut days = Vec::new();
        let (mut cohort, mut passed, mut missed) = (0u64, 0u64, 0u64);
        for state in accounts
            .values()
            .filter(|s| s.account.goals.contains(goal) && selected(&s.account.id))
        {
            let Some(start) = state.account.contract_start.or(state.account.created_at) else {
                continue;
            };
            if start < scope.from || start >= scope.to {
                continue;
            }
            cohort += 1;
            let value_at = journeys
                .iter()
                .filter_map(|j| first_goal.get(&(*j, state.account.id.clone())).copied())
                .min()
                .map(from_millis);
            if let Some(at) = value_at {
                days.push((at - start).num_seconds() as f64 / 86_400.0);
            }
            if start + limit <= scope.to {
                passed += 1;
                if value_at.is_none_or(|at| at > start + limit) {
                    missed += 1;
                }
            }
        }
        values.push(GoalValue {
            goal: goal.clone(),
            name: meta.name.clone(),
            accounts: cohort,
            reached: days.len() as u64,
            median_days: quantile(&days, 0.5),
            p90_days: quantile(&days, 0.9),
            not_within_limit: missed,
            limit_passed: passed,
            not_within_limit_percent: percent(missed, passed),
        });
    }
    Ok(values)
}

fn csm_loads(
    definitions: &Definitions,
    tasks: &[crate::store::Task],
    from: i64,
    to: i64,
) -> Vec<CsmLoad> {
    let mut ids: BTreeSet<Option<String>> = definitions
        .config
        .csms
        .iter()
        .map(|c| Some(c.id.value.clone()))
        .collect();
    ids.extend(tasks.iter().map(|t| t.task.assignee.clone()));
    ids.into_iter()
        .map(|csm| {
            let mine: Vec<_> = tasks.iter().filter(|t| t.task.assignee == csm).collect();
            let open: Vec<_> = mine
                .iter()
                .filter(|t| t.status == TaskStatus::Open)
                .collect();
            let done: Vec<_> = mine
                .iter()
                .filter(|t| {
                    t.status == TaskStatus::Done && t.updated_at >= from && t.updated_at < to
                })
                .collect();
            let days: Vec<f64> = done
                .iter()
                .map(|t| (t.updated_at - t.created_at) as f64 / 86_400_000.0)
                .collect();
            let config = csm.as_deref().and_then(|id| definitions.config.csm(id));
            let capacity = config.and_then(|c| c.capacity);
            CsmLoad {
                name: config.map_or_else(|| "(nobody could take them)".into(), |c| c.name.clone()),
                open: open.len() as u64,
                overdue: open
                    .iter()
                    .filter(|t| t.task.due_at.is_some_and(|due| due < to))
                    .count() as u64,
                done: done.len() as u64,
                median_days_to_done: quantile(&days, 0.5),
                capacity,
                capacity_use_percent: capacity
                    .and_then(|c| percent(open.len() as u64, u64::from(c))),
                csm,
            }
        })
        .filter(|load| load.csm.is_some() || load.open > 0 || load.done > 0)
        .collect()
}

fn delivery_health(
    definitions: &Definitions,
    outbox: &[crate::store::StepOutboxCount],
) -> Vec<ChannelHealth> {
    let mut channels: BTreeMap<(String, Option<String>), ChannelHealth> = BTreeMap::new();
    for row in outbox {
        let endpoint = definitions
            .journeys
            .get(&row.journey_id)
            .and_then(|j| j.steps.iter().find(|s| s.id == row.step_id))
            .and_then(|s| match &s.action {
                Action::Webhook(call) => Some(call.endpoint.value.clone()),
                _ => None,
            });
        let health = channels
            .entry((row.kind.clone(), endpoint.clone()))
            .or_insert_with(|| ChannelHealth {
                kind: row.kind.clone(),
                endpoint,
                ..ChannelHealth::default()
            });
        let n = u64::try_from(row.count).unwrap_or(0);
        match row.status {
            DeliveryStatus::Sent => health.sent += n,
            DeliveryStatus::Failed => health.failed += n,
            DeliveryStatus::Dead => health.dead += n,
            DeliveryStatus::Pending | DeliveryStatus::Sending => health.pending += n,
            DeliveryStatus::Held => health.held += n,
            DeliveryStatus::Skipped => health.skipped += n,
            DeliveryStatus::HeldOut => health.held_out += n,
        }
    }
    channels.into_values().collect()
}

fn days(value: Option<f64>) -> String {
    value.map_or_else(|| "—".into(), |d| format!("{d:.1} d"))
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "—".into(), |p| format!("{p:.0}%"))
}

/// The report as text.
pub fn text(view: &ReportView) -> String {
    let scope = &view.scope;
    let mut out = format!(
        "Report for {} to {}",
        scope.from.format("%Y-%m-%d"),
        scope.to.format("%Y-%m-%d")
    );
    for (what, value) in [
        ("journey", &scope.journey),
        ("tier", &scope.tier),
        ("goal", &scope.goal),
    ] {
        if let Some(value) = value {
            let _ = write!(out, ", {what} {value}");
        }
    }
    out.push('\n');
    if !view.has_activity {
        out.push_str("\nNothing happened in this period: no enrollments, outbox records or tasks. Choose another with --from and --to.\n");
        return out;
    }
    for journey in view
        .journeys
        .iter()
        .filter(|j| j.entered > 0 || j.steps.iter().any(|s| s.reached > 0))
    {
        let _ = writeln!(
            out,
            "\n{} ({}): {} entered, {} reached the goal ({}), {} exited, {} completed, {} active; days to goal: median {}, p90 {}",
            journey.journey_id,
            journey.name,
            journey.entered,
            journey.goal_reached,
            pct(journey.conversion_percent),
            journey.exited,
            journey.completed,
            journey.active,
            days(journey.median_days_to_goal),
            days(journey.p90_days_to_goal)
        );
        for step in journey
            .steps
            .iter()
            .filter(|s| matches!(s.kind.as_str(), "email" | "webhook" | "task"))
        {
            let _ = writeln!(
                out,
                "  {:<22} {:<8} reached {:>6}  sent {:>6}  held {:>5}  skipped {:>5}  held out {:>5}  failed {:>4}  waiting {:>5}",
                step.step_id,
                step.kind,
                step.reached,
                step.sent,
                step.held,
                step.skipped,
                step.held_out,
                step.failed,
                step.pending
            );
        }
        let split = |parts: &[Breakdown]| {
            parts
                .iter()
                .map(|b| {
                    format!(
                        "{} {}/{} ({})",
                        b.key,
                        b.goal_reached,
                        b.entered,
                        pct(b.conversion_percent)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "  by tier: {}", split(&journey.by_tier));
        let _ = writeln!(out, "  by adoption goal: {}", split(&journey.by_goal));
        if journey.tasks.created > 0 {
            let _ = writeln!(
                out,
                "  tasks: {} created, {} done, {} open",
                journey.tasks.created, journey.tasks.done, journey.tasks.open
            );
        }
    }
    out.push_str("\nTime to value (start to the goal of a journey for the adoption goal):\n");
    for value in &view.time_to_value {
        let _ = writeln!(
            out,
            "  {:<16} {} started, {} reached value: median {}, p90 {}; not within {} days: {} of {} ({})",
            value.goal,
            value.accounts,
            value.reached,
            days(value.median_days),
            days(value.p90_days),
            scope.value_limit_days,
            value.not_within_limit,
            value.limit_passed,
            pct(value.not_within_limit_percent)
        );
    }
    if !view.tier_flows.is_empty() {
        out.push_str("\nTier changes:\n");
        for flow in &view.tier_flows {
            let _ = writeln!(
                out,
                "  {} → {}: {} ({})",
                flow.from.as_deref().unwrap_or("(none)"),
                flow.to,
                count(flow.accounts, "account", "accounts"),
                flow.rule
            );
        }
    }
    out.push_str("\nCSM workload:\n");
    for load in &view.csms {
        let _ = writeln!(
            out,
            "  {:<24} {:>4} open ({} overdue), {:>4} done in the period (median {}), capacity {}",
            load.name,
            load.open,
            load.overdue,
            load.done,
            days(load.median_days_to_done),
            match (load.capacity, load.capacity_use_percent) {
                (Some(c), Some(p)) => format!("{c} ({p:.0}% used)"),
                _ => "not set".into(),
            }
        );
    }
    out.push_str("\nDelivery health:\n");
    for channel in &view.delivery {
        let name = match &channel.endpoint {
            Some(endpoint) => format!("{} {endpoint}", channel.kind),
            None => channel.kind.clone(),
        };
        let _ = writeln!(
            out,
            "  {:<16} {} sent, {} failed, {} dead, {} waiting, {} held, {} skipped",
            name,
            channel.sent,
            channel.failed,
            channel.dead,
            channel.pending,
            channel.held,
            channel.skipped
        );
    }
    if !view.suppressions.is_empty() {
        let list: Vec<String> = view
            .suppressions
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = writeln!(out, "  suppressed addresses: {}", list.join(", "));
    }
    step_effects_text(&mut out, &view.step_effects);
    score_validation_text(&mut out, &view.score_validation);
    out
}

fn estimate(e: Option<crate::stats::Estimate>) -> String {
    e.map_or_else(
        || "—".into(),
        |e| format!("{:+.1} [{:+.1}, {:+.1}]", e.value, e.low, e.high),
    )
}

fn step_effects_text(out: &mut String, effects: &[StepEffect]) {
    if effects.is_empty() {
        return;
    }
    out.push_str(
        "
Do the steps work? (score change in the window after the step, 95% interval)
",
    );
    for effect in effects {
        let flag = if effect.verdict == Verdict::Ineffective {
            "!!"
        } else {
            "  "
        };
        let _ = writeln!(
            out,
            "{flag}{}/{} ({}, {:.0} days): {}",
            effect.journey_id, effect.step_id, effect.kind, effect.window_days, effect.summary
        );
        for score in &effect.scores {
            let _ = writeln!(
                out,
                "      {:<16} recipients {} ({})   holdout {} ({})   lift {}",
                score.score,
                estimate(score.recipients_change),
                score.recipients,
                estimate(score.held_out_change),
                score.held_out,
                estimate(score.lift)
            );
        }
    }
}

fn score_validation_text(out: &mut String, scores: &[ScoreValidation]) {
    if scores.is_empty() {
        return;
    }
    out.push_str(
        "
Do the scores predict churn? (score at the period's start, churn by its end)
",
    );
    for score in scores {
        let _ = writeln!(
            out,
            "  {:<16} {} accounts, {} churned: {}",
            score.score, score.accounts, score.churned, score.verdict
        );
        let bands: Vec<String> = score
            .bands
            .iter()
            .map(|b| {
                let range = match (b.above, b.up_to) {
                    (None, Some(high)) => format!("≤{}", super::number(high)),
                    (Some(low), Some(high)) => {
                        format!("{}–{}", super::number(low), super::number(high))
                    }
                    (Some(low), None) => format!(">{}", super::number(low)),
                    (None, None) => "all".into(),
                };
                format!(
                    "{range}: {}/{} ({})",
                    b.churned,
                    b.accounts,
                    pct(b.churn_percent)
                )
            })
            .collect();
        if !bands.is_empty() {
            let _ = writeln!(out, "      churn by band: {}", bands.join(", "));
        }
        if score.churn_time_unknown > 0 {
            let _ = writeln!(
                out,
                "      {} churned accounts left out: no churn event or contract end says when",
                score.churn_time_unknown
            );
        }
    }
}
