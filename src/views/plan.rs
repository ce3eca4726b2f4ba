//! What `touchline plan` shows: per journey and step, what the live definitions would do
//! over the planned days and, with `--against`, what the edited ones would do instead; tasks
//! per CSM per day with the days over capacity; tier flows; holds. As text, JSON, or
//! markdown for a pull-request comment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::definitions::Definitions;
use crate::plan::{Outcome, Span};

/// A count under the live definitions and, with `--against`, under the edited ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pair {
    /// With the definitions now live.
    pub live: u64,
    /// With the edited definitions (absent without `--against`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited: Option<u64>,
}

impl Pair {
    /// Whether the edit changes it.
    pub fn changed(&self) -> bool {
        self.edited.is_some_and(|e| e != self.live)
    }
}

/// The plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    /// The first simulated pass.
    pub from: DateTime<Utc>,
    /// The end of the plan.
    pub to: DateTime<Utc>,
    /// Time between simulated passes, in seconds.
    pub every_seconds: i64,
    /// What the live definitions were compared with (`--against`), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
    /// Per journey.
    pub journeys: Vec<JourneyPlan>,
    /// New tasks per CSM per day.
    pub csm_days: Vec<CsmDay>,
    /// Accounts moving between tiers.
    pub tier_flows: Vec<TierFlow>,
    /// Journeys the guard would hold.
    pub holds: Vec<PlanHold>,
    /// Simulated passes and account evaluations, and rule errors.
    pub passes: Pair,
    /// Account evaluations.
    pub evaluated: Pair,
    /// Rule errors.
    pub rule_errors: Pair,
    /// How long the plan took to work out, in seconds.
    pub seconds: f64,
}

/// One journey's plan.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyPlan {
    /// The journey.
    pub journey_id: String,
    /// New enrollments.
    pub entries: Pair,
    /// Per step that produces something.
    pub steps: Vec<StepPlan>,
}

/// One step's records.
#[derive(Debug, Clone, Serialize)]
pub struct StepPlan {
    /// The step.
    pub step_id: String,
    /// `email`, `webhook` or `task`.
    pub kind: String,
    /// The template or endpoint.
    pub detail: String,
    /// Records written.
    pub records: Pair,
    /// Of those, held by the guard.
    pub held: Pair,
}

/// New tasks for one CSM on one day.
#[derive(Debug, Clone, Serialize)]
pub struct CsmDay {
    /// The CSM (`null`: nobody could take them).
    pub csm: Option<String>,
    /// The day (UTC).
    pub day: NaiveDate,
    /// New tasks.
    pub tasks: Pair,
    /// Open tasks by the end of the day if none were closed, live and edited.
    pub open: Pair,
    /// The CSM's capacity (open tasks), if set.
    pub capacity: Option<u32>,
    /// Whether open tasks would pass the capacity that day.
    pub over_capacity: bool,
}

/// Accounts moving from one tier to another.
#[derive(Debug, Clone, Serialize)]
pub struct TierFlow {
    /// From (`null`: no tier yet).
    pub from: Option<String>,
    /// To.
    pub to: String,
    /// How many.
    pub accounts: Pair,
}

/// A hold the guard would raise.
#[derive(Debug, Clone, Serialize)]
pub struct PlanHold {
    /// The journey.
    pub journey_id: String,
    /// Why (live, else edited).
    pub reason: String,
    /// Records held.
    pub records: Pair,
    /// Whether the journey was on hold before the plan started (a person has yet to decide).
    pub held_before: bool,
}

/// Builds the plan view from the live outcome and, with `--against`, the edited one.
pub fn build(
    definitions: &Definitions,
    span: Span,
    live: &Outcome,
    edited: Option<(&str, &Outcome)>,
    seconds: f64,
) -> PlanView {
    let other = edited.map(|(_, o)| o);
    let pair = |get: &dyn Fn(&Outcome) -> u64| Pair {
        live: get(live),
        edited: other.map(get),
    };
    let journey_ids: BTreeSet<&String> = live
        .entries
        .keys()
        .chain(other.iter().flat_map(|o| o.entries.keys()))
        .chain(live.steps.keys().map(|(j, _)| j))
        .chain(other.iter().flat_map(|o| o.steps.keys().map(|(j, _)| j)))
        .collect();
    let journeys = journey_ids
        .into_iter()
        .map(|journey| {
            let step_keys: BTreeSet<&(String, String)> = live
                .steps
                .keys()
                .chain(other.iter().flat_map(|o| o.steps.keys()))
                .filter(|(j, _)| j == journey)
                .collect();
            let mut steps: Vec<StepPlan> = step_keys
                .into_iter()
                .map(|key| {
                    let found = live
                        .steps
                        .get(key)
                        .or_else(|| other.and_then(|o| o.steps.get(key)));
                    StepPlan {
                        step_id: key.1.clone(),
                        kind: found.map(|c| c.kind.clone()).unwrap_or_default(),
                        detail: found.map(|c| c.detail.clone()).unwrap_or_default(),
                        records: pair(&|o| o.steps.get(key).map_or(0, |c| c.records)),
                        held: pair(&|o| o.steps.get(key).map_or(0, |c| c.held)),
                    }
                })
                .collect();
            // Steps in the journey's own order.
            let order: Vec<&str> = definitions
                .journeys
                .get(journey.as_str())
                .map(|j| j.steps.iter().map(|s| s.id.as_str()).collect())
                .unwrap_or_default();
            steps.sort_by_key(|s| {
                order
                    .iter()
                    .position(|id| *id == s.step_id)
                    .unwrap_or(usize::MAX)
            });
            JourneyPlan {
                journey_id: journey.clone(),
                entries: pair(&|o| o.entries.get(journey.as_str()).copied().unwrap_or(0)),
                steps,
            }
        })
        .collect();
    PlanView {
        from: span.from,
        to: span.to,
        every_seconds: span.every.num_seconds(),
        against: edited.map(|(label, _)| label.to_string()),
        journeys,
        csm_days: csm_days(definitions, live, other),
        tier_flows: tier_flows(live, other),
        holds: holds(live, other),
        passes: pair(&|o| o.passes),
        evaluated: pair(&|o| o.evaluated),
        rule_errors: pair(&|o| o.rule_errors),
        seconds,
    }
}

fn csm_days(definitions: &Definitions, live: &Outcome, other: Option<&Outcome>) -> Vec<CsmDay> {
    let keys: BTreeSet<&(Option<String>, NaiveDate)> = live
        .tasks
        .keys()
        .chain(other.iter().flat_map(|o| o.tasks.keys()))
        .collect();
    // Open tasks by the end of each day: those open at the start plus every new one so far.
    let mut running: BTreeMap<(Option<String>, bool), u64> = BTreeMap::new();
    let mut days: Vec<CsmDay> = keys
        .into_iter()
        .map(|key| {
            let (csm, day) = key;
            let capacity = csm
                .as_deref()
                .and_then(|id| definitions.config.csm(id))
                .and_then(|c| c.capacity);
            let mut open = |outcome: &Outcome, edited: bool| {
                let start = csm
                    .as_ref()
                    .and_then(|c| outcome.open_before.get(c))
                    .copied()
                    .unwrap_or(0);
                let total = running.entry((csm.clone(), edited)).or_insert(start);
                *total += outcome.tasks.get(key).copied().unwrap_or(0);
                *total
            };
            let open = Pair {
                live: open(live, false),
                edited: other.map(|o| open(o, true)),
            };
            let over = capacity.is_some_and(|cap| {
                open.live > u64::from(cap) || open.edited.is_some_and(|e| e > u64::from(cap))
            });
            CsmDay {
                csm: csm.clone(),
                day: *day,
                tasks: Pair {
                    live: live.tasks.get(key).copied().unwrap_or(0),
                    edited: other.map(|o| o.tasks.get(key).copied().unwrap_or(0)),
                },
                open,
                capacity,
                over_capacity: over,
            }
        })
        .collect();
    days.sort_by(|a, b| (a.day, &a.csm).cmp(&(b.day, &b.csm)));
    days
}

fn tier_flows(live: &Outcome, other: Option<&Outcome>) -> Vec<TierFlow> {
    let keys: BTreeSet<&(Option<String>, String)> = live
        .tier_flows
        .keys()
        .chain(other.iter().flat_map(|o| o.tier_flows.keys()))
        .collect();
    keys.into_iter()
        .map(|key| TierFlow {
            from: key.0.clone(),
            to: key.1.clone(),
            accounts: Pair {
                live: live.tier_flows.get(key).copied().unwrap_or(0),
                edited: other.map(|o| o.tier_flows.get(key).copied().unwrap_or(0)),
            },
        })
        .collect()
}

fn holds(live: &Outcome, other: Option<&Outcome>) -> Vec<PlanHold> {
    let keys: BTreeSet<&String> = live
        .holds
        .keys()
        .chain(other.iter().flat_map(|o| o.holds.keys()))
        .collect();
    let records = |o: &Outcome, k: &String| {
        o.holds
            .get(k)
            .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
    };
    keys.into_iter()
        .map(|key| PlanHold {
            journey_id: key.clone(),
            reason: live
                .holds
                .get(key)
                .or_else(|| other.and_then(|o| o.holds.get(key)))
                .map(|(r, _)| r.clone())
                .unwrap_or_default(),
            records: Pair {
                live: records(live, key),
                edited: other.map(|o| records(o, key)),
            },
            held_before: live.held_before.contains(key.as_str()),
        })
        .collect()
}

/// A count for text and markdown: `12`, or `12 → 30 (+18)` when the edit changes it.
fn cell(pair: Pair) -> String {
    match pair.edited {
        Some(edited) if edited != pair.live => {
            let delta = edited as i64 - pair.live as i64;
            format!("{} → {edited} ({delta:+})", pair.live)
        }
        _ => pair.live.to_string(),
    }
}

fn step_label(step: &StepPlan) -> String {
    if step.detail.is_empty() {
        format!("{} ({})", step.step_id, step.kind)
    } else {
        format!("{} ({} {})", step.step_id, step.kind, step.detail)
    }
}

fn heading(view: &PlanView) -> String {
    let mut text = format!(
        "Plan from {} to {} (a pass every {})",
        view.from.format("%Y-%m-%d %H:%M UTC"),
        view.to.format("%Y-%m-%d %H:%M UTC"),
        crate::text::duration(std::time::Duration::from_secs(
            u64::try_from(view.every_seconds).unwrap_or(0)
        ))
    );
    if let Some(against) = &view.against {
        let _ = write!(text, ": live definitions → {against}");
    }
    text
}

/// The plan as text.
pub fn text(view: &PlanView) -> String {
    let mut out = format!("{}\n", heading(view));
    let only_changes = view.against.is_some();
    for journey in &view.journeys {
        let changed =
            journey.entries.changed() || journey.steps.iter().any(|s| s.records.changed());
        let marker = if changed { "  ← changed" } else { "" };
        let _ = writeln!(
            out,
            "\n{}: {} entered{marker}",
            journey.journey_id,
            cell(journey.entries)
        );
        for step in &journey.steps {
            if only_changes && !step.records.changed() && !changed {
                continue;
            }
            let held = if step.held.live > 0 || step.held.edited.unwrap_or(0) > 0 {
                format!(", held {}", cell(step.held))
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:<46} {}{held}",
                step_label(step),
                cell(step.records)
            );
        }
    }
    if view.journeys.is_empty() {
        out.push_str("\nNo journey would enroll anyone or send anything.\n");
    }
    let busy: Vec<&CsmDay> = view
        .csm_days
        .iter()
        .filter(|d| d.tasks.live > 0 || d.tasks.edited.unwrap_or(0) > 0)
        .collect();
    if !busy.is_empty() {
        out.push_str("\nNew tasks per CSM and day:\n");
        for day in busy {
            let over = if day.over_capacity {
                format!(
                    "  OVER CAPACITY ({} open, capacity {})",
                    cell(day.open),
                    day.capacity.unwrap_or(0)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {} {:<12} {}{over}",
                day.day,
                day.csm.as_deref().unwrap_or("(nobody)"),
                cell(day.tasks)
            );
        }
    }
    if !view.tier_flows.is_empty() {
        out.push_str("\nTier changes:\n");
        for flow in &view.tier_flows {
            let _ = writeln!(
                out,
                "  {} → {}: {}",
                flow.from.as_deref().unwrap_or("(none)"),
                flow.to,
                cell(flow.accounts)
            );
        }
    }
    for hold in &view.holds {
        let before = if hold.held_before {
            "; on hold before the plan, waiting for `touchline hold release` or `discard`"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "\nHELD {}: {} records ({}{before})",
            hold.journey_id,
            cell(hold.records),
            hold.reason
        );
    }
    let _ = writeln!(
        out,
        "\n{} passes, {} account evaluations, {} rule errors; worked out in {:.1} s on a copy of the database (nothing was written to it or sent).",
        cell(view.passes),
        cell(view.evaluated),
        cell(view.rule_errors),
        view.seconds
    );
    out
}

/// The plan as markdown, for a pull-request comment.
pub fn markdown(view: &PlanView) -> String {
    let mut out = format!("### touchline plan\n\n{}\n\n", heading(view));
    let edited = view.against.is_some();
    if edited {
        out.push_str("| journey | step | live | edited | change |\n|---|---|---:|---:|---:|\n");
    } else {
        out.push_str("| journey | step | records |\n|---|---|---:|\n");
    }
    let mut row = |journey: &str, step: &str, pair: Pair| {
        if edited {
            let after = pair.edited.unwrap_or(0);
            let delta = after as i64 - pair.live as i64;
            let change = if delta == 0 {
                String::new()
            } else {
                format!("**{delta:+}**")
            };
            let _ = writeln!(
                out,
                "| {journey} | {step} | {} | {after} | {change} |",
                pair.live
            );
        } else {
            let _ = writeln!(out, "| {journey} | {step} | {} |", pair.live);
        }
    };
    for journey in &view.journeys {
        row(&journey.journey_id, "*entered*", journey.entries);
        for step in &journey.steps {
            row("", &step_label(step).replace('|', "\\|"), step.records);
        }
    }
    let over: Vec<&CsmDay> = view.csm_days.iter().filter(|d| d.over_capacity).collect();
    if !over.is_empty() {
        out.push_str("\n**Over capacity:** ");
        let days: Vec<String> = over
            .iter()
            .map(|d| {
                format!(
                    "{} on {} ({} open, capacity {})",
                    d.csm.as_deref().unwrap_or("(nobody)"),
                    d.day,
                    cell(d.open),
                    d.capacity.unwrap_or(0)
                )
            })
            .collect();
        out.push_str(&days.join("; "));
        out.push('\n');
    }
    if !view.tier_flows.is_empty() {
        out.push_str("\n**Tier changes:** ");
        let flows: Vec<String> = view
            .tier_flows
            .iter()
            .map(|f| {
                format!(
                    "{} → {}: {}",
                    f.from.as_deref().unwrap_or("(none)"),
                    f.to,
                    cell(f.accounts)
                )
            })
            .collect();
        out.push_str(&flows.join("; "));
        out.push('\n');
    }
    for hold in &view.holds {
        let _ = writeln!(
            out,
            "\n**Held by the guard:** {} — {} records ({})",
            hold.journey_id,
            cell(hold.records),
            hold.reason
        );
    }
    out
}
