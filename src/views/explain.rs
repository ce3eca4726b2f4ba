//! `touchline explain ACCOUNT`: facts, scores and their inputs, the tier and the rule that
//! decided it (and why earlier rules did not), and every journey's verdict — the engine's
//! own verdict, so what explain says is what the engine does.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use rhai::Dynamic;
use serde::Serialize;

use crate::clock::from_millis;
use crate::definitions::journey::{Audience, Entry};
use crate::definitions::{Definitions, Journey};
use crate::engine::journeys::{self, EntryVerdict};
use crate::engine::{as_of, context, scoring};
use crate::model::{Account, Contact};
use crate::rules::Bindings;
use crate::store::{Enrollment, EnrollmentStatus, Store, StoreError};

use super::{date, number};

/// Everything explain shows about one account, as of one time.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainView {
    /// The time the account was evaluated at.
    pub as_of: DateTime<Utc>,
    /// Facts and attributes.
    pub account: Account,
    /// Metric values as of that time.
    pub metrics: BTreeMap<String, f64>,
    /// Each score, with the inputs its formula read.
    pub scores: Vec<ScoreLine>,
    /// Rules that failed while scoring.
    pub rule_errors: Vec<String>,
    /// Each tier rule in order, and what it decided.
    pub tier_rules: Vec<TierRuleLine>,
    /// The tier (`null`: none yet).
    pub tier: Option<String>,
    /// Why the tier rules decided nothing and the tier stayed as it was.
    pub tier_kept: Option<String>,
    /// Tier changes so far.
    pub tier_history: Vec<TierChangeLine>,
    /// Every journey, and the account's (or each contact's) place in it.
    pub journeys: Vec<JourneyLine>,
}

/// One score.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreLine {
    /// The score's name.
    pub name: String,
    /// Its value (`null`: unknown for this account).
    pub value: Option<f64>,
    /// Why it is unknown: its formula failed (a metric not imported yet, …).
    pub unknown: Option<String>,
    /// What its formula read: path and value as rules see it.
    pub inputs: Vec<(String, String)>,
}

/// One tier rule.
#[derive(Debug, Clone, Serialize)]
pub struct TierRuleLine {
    /// 1-based position.
    pub position: usize,
    /// The tier it assigns.
    pub tier: String,
    /// Its condition (`null`: everyone else).
    pub condition: Option<String>,
    /// `matched`, `did not match`, or `failed: …`.
    pub verdict: String,
}

/// One change of tier.
#[derive(Debug, Clone, Serialize)]
pub struct TierChangeLine {
    /// When.
    pub at: DateTime<Utc>,
    /// From (`null`: the first tier).
    pub from: Option<String>,
    /// To.
    pub to: String,
    /// The rule that decided it.
    pub rule: String,
}

/// One journey.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyLine {
    /// The journey's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The account, or each contact (contact journeys), with its verdict.
    pub subjects: Vec<SubjectLine>,
}

/// The account or a contact in one journey.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectLine {
    /// The contact's id (`null`: the account).
    pub contact_id: Option<String>,
    /// The contact's address and role, as shown.
    pub contact: Option<String>,
    /// Where it stands, in words.
    pub verdict: String,
}

/// Builds the view of `account_id` as of `now`; `None` if there is no such account.
pub async fn build<S: Store>(
    store: &S,
    definitions: &Definitions,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<ExplainView>, StoreError> {
    let ids = [account_id.to_string()];
    let Some(mut state) = as_of::load_accounts(store, &ids, true, now).await?.pop() else {
        return Ok(None);
    };
    let score_names: Vec<&str> = definitions.scores.iter().map(|s| s.name.as_str()).collect();
    let account_map = context::account_map(&state, &score_names);
    let mut bindings = Bindings::new(account_map.clone(), now);
    let scored = scoring::score(definitions, &mut bindings);
    let scores = definitions
        .scores
        .iter()
        .map(|score| ScoreLine {
            name: score.name.clone(),
            value: scored.scores.get(&score.name).copied(),
            unknown: scored.unknown.get(&score.name).cloned(),
            inputs: score
                .rule
                .reads()
                .into_iter()
                .map(|path| {
                    let value = lookup(&account_map, &path);
                    (path, value)
                })
                .collect(),
        })
        .collect();
    let tier_rules = scored
        .tier_checks
        .iter()
        .filter_map(|check| Some((check, definitions.tiers.get(check.position - 1)?)))
        .map(|(check, rule)| TierRuleLine {
            position: check.position,
            tier: rule.tier.to_string(),
            condition: rule.rule.as_ref().map(|c| c.source.trim().to_string()),
            verdict: match &check.outcome {
                Ok(true) => "matched".to_string(),
                Ok(false) => "did not match".to_string(),
                Err(error) => format!("failed: {}", error.reason),
            },
        })
        .collect();
    let tier_history = store
        .tier_history(account_id)
        .await?
        .into_iter()
        .map(|change| TierChangeLine {
            at: from_millis(change.at),
            from: change.from,
            to: change.to,
            rule: change.rule,
        })
        .collect();
    state.scores = scored.scores.clone();
    state.unknown_scores = scored.unknown.clone();
    if let Some((tier, _)) = scored.tier(definitions) {
        state.tier = Some(tier.to_string());
    }

    let enrollments = store.enrollments_of(&ids).await?;
    let edges = store.edges_of(&ids).await?;
    let mut journey_lines = Vec::new();
    for journey in definitions.journeys.values() {
        let subjects: Vec<Option<&Contact>> = match journey.file.audience {
            Audience::Accounts => vec![None],
            Audience::Contacts => state.contacts.iter().map(Some).collect(),
        };
        let mut lines = Vec::new();
        for contact in subjects {
            bindings.set_contact(contact.map_or(Dynamic::UNIT, context::contact_map));
            let contact_id = contact.map(|c| c.id.as_str()).unwrap_or("");
            let mine = journeys::subject_enrollments(&enrollments, &journey.id, contact_id);
            let verdict = match mine.iter().find(|e| e.status == EnrollmentStatus::Active) {
                Some(active) => enrolled_text(journey, active),
                None => {
                    let held = edges
                        .iter()
                        .any(|e| e.journey_id == journey.id && e.contact_id == contact_id);
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
                }
            };
            lines.push(SubjectLine {
                contact_id: contact.map(|c| c.id.clone()),
                contact: contact
                    .map(|c| format!("{} ({})", c.email, c.role.as_deref().unwrap_or("no role"))),
                verdict,
            });
        }
        journey_lines.push(JourneyLine {
            id: journey.id.clone(),
            name: journey.file.name.clone(),
            subjects: lines,
        });
    }
    Ok(Some(ExplainView {
        as_of: now,
        metrics: state.metrics.clone(),
        tier: state.tier.clone(),
        tier_kept: scored.tier_blocked.clone(),
        account: state.account,
        scores,
        rule_errors: scored.errors.iter().map(ToString::to_string).collect(),
        tier_rules,
        tier_history,
        journeys: journey_lines,
    }))
}

fn enrolled_text(journey: &Journey, active: &Enrollment) -> String {
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
}

/// What the engine's entry verdict means for this subject, in words.
fn entry_text(journey: &Journey, verdict: &EntryVerdict, earlier: &[&Enrollment]) -> String {
    use EntryVerdict::*;
    match verdict {
        NotInSegment(why) => format!("not in segment: {why}"),
        RuleFailed(why) => format!("undecided: a rule failed, so nothing is done: {why}"),
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

/// The view as text.
pub fn text(view: &ExplainView) -> String {
    let a = &view.account;
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
    if !view.metrics.is_empty() {
        let metrics: Vec<String> = view
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {}", number(*v)))
            .collect();
        let _ = writeln!(out, "  metrics: {}", metrics.join(", "));
    }
    let _ = writeln!(
        out,
        "\nScores (as of {})",
        view.as_of.format("%Y-%m-%d %H:%M UTC")
    );
    for score in &view.scores {
        let inputs: Vec<String> = score
            .inputs
            .iter()
            .map(|(path, value)| format!("{path} = {value}"))
            .collect();
        let value = score.value.map_or("unknown".to_string(), number);
        let _ = writeln!(
            out,
            "  {:<16} {:>7}   from {}",
            score.name,
            value,
            inputs.join(", ")
        );
        if let Some(why) = &score.unknown {
            let _ = writeln!(out, "      unknown: {why}");
        }
    }
    for error in &view.rule_errors {
        let _ = writeln!(out, "  ! {error}");
    }
    let _ = writeln!(out, "\nTier");
    for rule in &view.tier_rules {
        let condition = rule.condition.as_deref().unwrap_or("(everyone else)");
        let _ = writeln!(
            out,
            "  rule {} → {:<5} {}: {condition}",
            rule.position, rule.tier, rule.verdict
        );
    }
    match (&view.tier_kept, &view.tier) {
        (Some(why), Some(tier)) => {
            let _ = writeln!(out, "  tier: {tier}, kept: {why}");
        }
        (Some(why), None) => {
            let _ = writeln!(out, "  tier: none yet: {why}");
        }
        (None, tier) => {
            let _ = writeln!(
                out,
                "  tier: {}",
                tier.as_deref().unwrap_or("none (no rule matched)")
            );
        }
    }
    for change in &view.tier_history {
        let _ = writeln!(
            out,
            "  {}: {} → {} ({})",
            change.at.format("%Y-%m-%d"),
            change.from.as_deref().unwrap_or("(none)"),
            change.to,
            change.rule
        );
    }
    let _ = writeln!(out, "\nJourneys");
    for journey in &view.journeys {
        let _ = writeln!(out, "  {} — {}", journey.id, journey.name);
        if journey.subjects.is_empty() {
            let _ = writeln!(out, "      no contacts");
        }
        for subject in &journey.subjects {
            let who = subject
                .contact
                .as_ref()
                .map_or(String::new(), |c| format!("{c}: "));
            let _ = writeln!(out, "      {who}{}", subject.verdict);
        }
    }
    out
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
        return number(n);
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
                "scores.utilization = (missing)",
            ]
        );
    }
}
