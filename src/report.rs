//! What users look at: `touchline status` (tiers, enrollments, outbox) and
//! `touchline explain` (why an account is where it is).

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use rhai::Dynamic;

use crate::clock::from_millis;
use crate::definitions::Definitions;
use crate::definitions::journey::Entry;
use crate::engine::{context, journeys, scoring};
use crate::rules::Bindings;
use crate::store::{Store, StoreError};

/// `touchline status`: accounts per tier, enrollments per journey and step, outbox records.
pub async fn status<S: Store>(
    store: &S,
    definitions: &Definitions,
    examples: i64,
) -> Result<String, StoreError> {
    let mut out = String::new();
    let tiers = store.tier_counts().await?;
    let total: i64 = tiers.iter().map(|c| c.count).sum();
    let _ = writeln!(out, "Accounts by tier ({total} accounts)");
    for count in &tiers {
        let share = if total > 0 {
            count.count as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "  {:<18} {:>7}  {:>5.1}%",
            count.label, count.count, share
        );
    }

    let _ = writeln!(out, "\nEnrollments by journey, status and step");
    let mut current_journey = String::new();
    for count in store.enrollment_counts().await? {
        let mut parts = count.label.splitn(3, ' ');
        let (journey, status, index) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if journey != current_journey {
            let _ = writeln!(out, "  {journey}");
            current_journey = journey.to_string();
        }
        let step = definitions
            .journeys
            .get(journey)
            .and_then(|j| index.parse::<usize>().ok().and_then(|i| j.steps.get(i)))
            .map_or_else(|| format!("step {index}"), |s| s.id.clone());
        let label = match status {
            "active" => format!("active at {step}"),
            other => other.to_string(),
        };
        let _ = writeln!(out, "    {label:<40} {:>7}", count.count);
    }

    let _ = writeln!(out, "\nOutbox");
    let outbox = store.outbox_counts().await?;
    if outbox.is_empty() {
        let _ = writeln!(out, "  (empty)");
    }
    for count in &outbox {
        let _ = writeln!(out, "  {:<30} {:>7}", count.label, count.count);
    }
    let open = store.open_task_counts().await?;
    if !open.is_empty() {
        let _ = writeln!(out, "\nOpen CSM tasks");
        for count in &open {
            let name = definitions
                .config
                .csm(&count.label)
                .map_or(count.label.as_str(), |c| c.name.as_str());
            let _ = writeln!(out, "  {name:<30} {:>7}", count.count);
        }
    }
    // The latest few of each kind, so mails, tasks and webhooks all show.
    let mut recent = store.recent_outbox(2000).await?;
    let mut shown: HashMap<String, i64> = HashMap::new();
    recent.retain(|r| {
        let n = shown.entry(r.kind.clone()).or_default();
        *n += 1;
        *n <= examples
    });
    if !recent.is_empty() {
        let _ = writeln!(out, "\nLatest outbox records");
        for record in recent {
            let summary = match record.kind.as_str() {
                "email" => format!(
                    "to {} — {}",
                    record.payload["to"].as_str().unwrap_or("?"),
                    record.payload["subject"].as_str().unwrap_or("(no subject)")
                ),
                "task" => format!(
                    "{} ({}, {})",
                    record.payload["title"].as_str().unwrap_or("?"),
                    record.payload["assign"]["strategy"].as_str().unwrap_or("?"),
                    record.payload["priority"].as_str().unwrap_or("normal")
                ),
                _ => format!(
                    "to endpoint `{}`",
                    record.payload["endpoint"].as_str().unwrap_or("?")
                ),
            };
            let _ = writeln!(
                out,
                "  {:<8} {:<28} {}",
                record.kind,
                format!("{}/{}", record.journey_id, record.step_id),
                summary
            );
        }
    }
    Ok(out)
}

fn date(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".to_string(), |t| t.format("%Y-%m-%d").to_string())
}

/// `touchline explain ACCOUNT`: facts, scores and their inputs, the tier and the rule that
/// decided it (and why earlier rules did not), and every journey's verdict.
pub async fn explain<S: Store>(
    store: &S,
    definitions: &Definitions,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let Some(mut state) =
        crate::engine::as_of::load_accounts(store, &[account_id.to_string()], true, now)
            .await?
            .pop()
    else {
        return Ok(None);
    };
    let a = &state.account;
    let mut out = String::new();
    let _ = writeln!(out, "Account {} — {}", a.id, a.name);
    let _ = writeln!(
        out,
        "  plan {}, ARR {}, owner {}, goals {}, status {}",
        a.plan.as_deref().unwrap_or("—"),
        a.arr.map_or("—".into(), |v| format!("{v:.0}")),
        a.owner.as_deref().unwrap_or("—"),
        if a.goals.is_empty() {
            "—".to_string()
        } else {
            a.goals.join(", ")
        },
        a.status
    );
    let _ = writeln!(
        out,
        "  contract {} → {}, customer since {}, last login {}",
        date(a.contract_start),
        date(a.contract_end),
        date(a.created_at),
        date(a.last_login_at)
    );
    if !state.metrics.is_empty() {
        let metrics: Vec<String> = state
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {}", trim(*v)))
            .collect();
        let _ = writeln!(out, "  metrics: {}", metrics.join(", "));
    }

    let score_names: Vec<&str> = definitions.scores.iter().map(|s| s.name.as_str()).collect();
    let account_map = context::account_map(&state, &score_names);
    let mut bindings = Bindings::new(account_map.clone(), now);
    let scored = scoring::score(definitions, &state.scores, &mut bindings);
    let _ = writeln!(out, "\nScores (as of {})", now.format("%Y-%m-%d %H:%M UTC"));
    for score in &definitions.scores {
        let value = scored.scores.get(&score.name).copied().unwrap_or(0.0);
        let inputs: Vec<String> = score
            .rule
            .reads()
            .iter()
            .map(|path| format!("{path} = {}", lookup(&account_map, path)))
            .collect();
        let _ = writeln!(
            out,
            "  {:<16} {:>6}   from {}",
            score.name,
            trim(value),
            inputs.join(", ")
        );
    }
    for error in &scored.errors {
        let _ = writeln!(out, "  ! {error}");
    }

    let _ = writeln!(out, "\nTier");
    for check in &scored.tier_checks {
        let condition = check
            .condition
            .as_deref()
            .map_or("(everyone else)".to_string(), |c| c.trim().to_string());
        let verdict = match &check.outcome {
            Ok(true) => "matched".to_string(),
            Ok(false) => "did not match".to_string(),
            Err(error) => format!("failed: {}", error.reason),
        };
        let _ = writeln!(
            out,
            "  rule {} → {:<5} {verdict}: {condition}",
            check.position, check.tier
        );
    }
    match &scored.tier {
        Some((tier, _)) => {
            let _ = writeln!(out, "  tier: {tier}");
        }
        None => {
            let _ = writeln!(out, "  tier: none (no rule matched)");
        }
    }
    for change in store.tier_history(account_id).await? {
        let _ = writeln!(
            out,
            "  {}: {} → {} ({})",
            from_millis(change.at).format("%Y-%m-%d"),
            change.from.as_deref().unwrap_or("(none)"),
            change.to,
            change.rule
        );
    }
    state.scores = scored.scores.clone();
    state.tier = scored.tier.as_ref().map(|(t, _)| t.clone());

    let _ = writeln!(out, "\nJourneys");
    let enrollments = store.enrollments_of(&[account_id.to_string()]).await?;
    let edges = store.edges_of(&[account_id.to_string()]).await?;
    for journey in definitions.journeys.values() {
        let _ = writeln!(out, "  {} — {}", journey.id, journey.file.name);
        let subjects: Vec<Option<&crate::model::Contact>> = match journey.file.audience {
            crate::definitions::journey::Audience::Accounts => vec![None],
            crate::definitions::journey::Audience::Contacts => {
                state.contacts.iter().map(Some).collect()
            }
        };
        if subjects.is_empty() {
            let _ = writeln!(out, "      no contacts");
        }
        for contact in subjects {
            let who = contact.map_or(String::new(), |c| {
                format!("{} ({}): ", c.email, c.role.as_deref().unwrap_or("no role"))
            });
            bindings.set_contact(contact.map_or(Dynamic::UNIT, context::contact_map));
            let contact_id = contact.map(|c| c.id.as_str()).unwrap_or("");
            let mine: Vec<_> = enrollments
                .iter()
                .filter(|e| e.journey_id == journey.id && e.contact_id == contact_id)
                .collect();
            let verdict = if let Some(active) = mine.iter().find(|e| e.status == "active") {
                let step = journey
                    .steps
                    .get(active.step_index as usize)
                    .map_or("(end)", |s| s.id.as_str());
                let due = active.next_due_at.map_or(String::new(), |d| {
                    format!(", next due {}", from_millis(d).format("%Y-%m-%d %H:%M UTC"))
                });
                format!(
                    "enrolled since {}, at step `{step}`{due}",
                    from_millis(active.entered_at).format("%Y-%m-%d")
                )
            } else {
                let held = edges
                    .iter()
                    .any(|edge| edge.journey_id == journey.id && edge.contact_id == contact_id);
                let verdict = journeys::entry_verdict(
                    &definitions.engine,
                    journey,
                    &state,
                    &mut bindings,
                    &mine,
                    held,
                    now,
                );
                entry_text(journey, &verdict, &mine)
            };
            let _ = writeln!(out, "      {who}{verdict}");
        }
    }
    Ok(Some(out))
}

/// What the engine's entry verdict means for this subject, in words.
fn entry_text(
    journey: &crate::definitions::Journey,
    verdict: &journeys::EntryVerdict,
    earlier: &[&crate::store::Enrollment],
) -> String {
    use journeys::EntryVerdict::*;
    match verdict {
        NotInSegment(why) => format!("not in segment: {why}"),
        ConditionFailed(why) => format!("in segment; entry condition failed: {why}"),
        ConditionFalse => "in segment; entry condition is false".into(),
        ConditionStillTrue => "in segment and the entry condition holds, but it already held at \
             the last evaluation: enters only when it turns false, then true again"
            .into(),
        ReentryBlocked(why) => {
            let last = earlier.iter().max_by_key(|e| e.entered_at);
            let ended = last.map_or(String::new(), |e| {
                let at = e
                    .ended_at
                    .map(|t| from_millis(t).format(" %Y-%m-%d").to_string());
                format!(" (last: {}{})", e.status, at.unwrap_or_default())
            });
            format!("in segment, but {why}{ended}")
        }
        Enters => match &journey.file.entry {
            Entry::Event(name) => format!("in segment; enters on event `{}`", name.value),
            Entry::Schedule(s) => format!("in segment; enters at the next `{}` run", s.value.text),
            Entry::Condition(_) => {
                "in segment and the entry condition became true; enters on the next pass".into()
            }
        },
    }
}

fn trim(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The value of a dotted path as rules see it (the same map the engine evaluates), for
/// showing a rule's inputs.
fn lookup(account: &Dynamic, path: &str) -> String {
    let mut value = account.clone();
    for part in path.split('.') {
        let next = value
            .read_lock::<rhai::Map>()
            .and_then(|map| map.get(part).cloned());
        match next {
            Some(found) => value = found,
            None => return "(missing)".into(),
        }
    }
    show(&value)
}

/// A rule value as people read it: dates as dates, whole numbers without decimals.
fn show(value: &Dynamic) -> String {
    if value.is_unit() {
        return "(not set)".into();
    }
    if let Some(t) = value.read_lock::<crate::rules::Timestamp>() {
        return t.0.format("%Y-%m-%d").to_string();
    }
    if let Ok(n) = value.as_float() {
        return trim(n);
    }
    if let Some(items) = value.read_lock::<rhai::Array>() {
        let items: Vec<String> = items.iter().map(show).collect();
        return format!("[{}]", items.join(", "));
    }
    if let Ok(text) = value.clone().into_string() {
        return if text.is_empty() {
            "(empty)".into()
        } else {
            text
        };
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, AccountState};

    #[test]
    fn rule_inputs_show_dates_lists_and_text_as_values() {
        let at = |text: &str| crate::clock::parse_time(text).ok();
        let state = AccountState {
            account: Account {
                id: "a1".into(),
                owner: Some("ana".into()),
                goals: vec!["fleet".into(), "safety".into()],
                contract_start: at("2026-01-15"),
                created_at: at("2025-12-01"),
                arr: Some(12000.0),
                ..Account::default()
            },
            tier: Some("low".into()),
            metrics: [("logins".to_string(), 1400.0)].into(),
            ..AccountState::default()
        };
        let map = context::account_map(&state, &["utilization"]);
        let shown: Vec<String> = [
            "contract_start",
            "created_at",
            "contract_end",
            "owner",
            "industry",
            "goals",
            "tier",
            "arr",
            "metrics.logins",
            "metrics.seats",
            "scores.utilization",
        ]
        .iter()
        .map(|path| format!("{path} = {}", lookup(&map, path)))
        .collect();
        assert_eq!(
            shown,
            [
                "contract_start = 2026-01-15",
                "created_at = 2025-12-01",
                "contract_end = (not set)",
                "owner = ana",
                "industry = (empty)",
                "goals = [fleet, safety]",
                "tier = low",
                "arr = 12000",
                "metrics.logins = 1400",
                "metrics.seats = (missing)",
                "scores.utilization = 0",
            ]
        );
    }
}
