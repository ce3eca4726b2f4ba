//! Scores and tiers: the score formulas in order, then the tier rules, first match wins.

use std::collections::BTreeMap;

use crate::definitions::Definitions;
use crate::rules::{Bindings, EvalError};
use crate::store::Evaluation;

/// How one tier rule fared, for `explain`.
#[derive(Debug, Clone)]
pub struct TierCheck {
    /// 1-based position of the rule in [`Definitions::tiers`].
    pub position: usize,
    /// Whether it matched, or why it could not be evaluated.
    pub outcome: Result<bool, EvalError>,
}

/// Everything evaluating one account found.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The scores that are known (a failed formula with a `default:` gives that default).
    pub scores: BTreeMap<String, f64>,
    /// Scores whose formula failed (and that have no default), with why: unknown, never a
    /// number.
    pub unknown: BTreeMap<String, String>,
    /// Formulas that failed.
    pub errors: Vec<EvalError>,
    /// The tier rules up to the one that matched, or that failed.
    pub tier_checks: Vec<TierCheck>,
    /// The index in [`Definitions::tiers`] of the rule that decided the tier; `None` when no
    /// rule decided (a rule failed, or none matched): the account keeps the tier it had.
    pub tier: Option<usize>,
    /// Why the tier could not be decided: a rule failed (e.g. it read an unknown score).
    pub tier_blocked: Option<String>,
}

/// Computes an account's scores and tier. `bindings` hold its data and are updated with the
/// new scores and tier.
pub fn score(definitions: &Definitions, bindings: &mut Bindings) -> Scored {
    let engine = &definitions.engine;
    let mut scores = BTreeMap::new();
    let mut unknown = BTreeMap::new();
    let mut errors = Vec::new();
    for score in &definitions.scores {
        let failure = match engine.run_number(&score.rule, bindings) {
            Ok(value) if value.is_finite() => {
                let value = round(value.clamp(0.0, 100.0));
                bindings.set_score(&score.name, value);
                scores.insert(score.name.clone(), value);
                continue;
            }
            Ok(value) => EvalError {
                rule: score.rule.name.clone(),
                reason: format!("gave {value}, not a number"),
            },
            Err(error) => error,
        };
        match score.default {
            Some(value) => {
                bindings.set_score(&score.name, value);
                scores.insert(score.name.clone(), value);
            }
            None => {
                bindings.set_unknown_score(&score.name, &failure.reason);
                unknown.insert(score.name.clone(), failure.reason.clone());
            }
        }
        errors.push(failure);
    }
    let mut tier_checks = Vec::new();
    let mut tier = None;
    let mut tier_blocked = None;
    for (index, rule) in definitions.tiers.iter().enumerate() {
        let outcome = match &rule.rule {
            Some(condition) => engine.run_bool(condition, bindings),
            None => Ok(true),
        };
        let decided = match &outcome {
            Ok(matched) => *matched,
            Err(error) => {
                // A rule that cannot be evaluated decides nothing: falling through to the
                // next rule would move the account on missing data.
                tier_blocked = Some(format!("tier rule {} failed: {}", index + 1, error.reason));
                true
            }
        };
        tier_checks.push(TierCheck {
            position: index + 1,
            outcome,
        });
        if !decided {
            continue;
        }
        if tier_blocked.is_none() {
            tier = Some(index);
            bindings.set_tier(rule.tier.as_str());
        }
        break;
    }
    Scored {
        scores,
        unknown,
        errors,
        tier_checks,
        tier,
        tier_blocked,
    }
}

impl Scored {
    /// The tier decided and the description of the rule that decided it.
    pub fn tier<'d>(&self, definitions: &'d Definitions) -> Option<(&'d str, &'d str)> {
        let rule = definitions.tiers.get(self.tier?)?;
        Some((rule.tier.as_str(), rule.decided_by.as_str()))
    }
}

/// Scores are kept to two decimals, so noise does not count as a change.
fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The stored form of a scoring result.
pub fn evaluation(
    definitions: &Definitions,
    account_id: &str,
    data_version: i64,
    previous_scores: &BTreeMap<String, f64>,
    previous_tier: Option<&str>,
    scored: &Scored,
) -> Evaluation {
    let changed_scores = scored
        .scores
        .iter()
        .filter(|(name, value)| previous_scores.get(*name) != Some(value))
        .map(|(name, value)| (name.clone(), *value))
        .collect();
    let tier = scored.tier(definitions);
    let new_tier = tier.map(|(t, _)| t);
    let tier_changed_from = (new_tier.is_some() && new_tier != previous_tier)
        .then(|| previous_tier.map(str::to_string));
    Evaluation {
        account_id: account_id.to_string(),
        data_version,
        scores: scored.scores.clone(),
        unknown_scores: scored.unknown.clone(),
        changed_scores,
        tier: tier.map(|(t, rule)| (t.to_string(), rule.to_string())),
        tier_changed_from,
        recheck_at: None,
    }
}
