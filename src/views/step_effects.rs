//! Does a step move anything? For each email and task step, how the journey's measured
//! scores moved over a window after it, for those who got it against the journey's
//! holdout (who walked the same journey and got nothing), or — without a holdout — before
//! against after, with that caveat said. Steps where mail went out and nothing moved are
//! flagged: the classic failure of tech-touch is many mails and flat scores.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::definitions::compile::{Action, Journey};
use crate::stats::{Estimate, difference, mean};
use crate::store::{StepScoreChange, Store, StoreError};

/// Fewest subjects in a group before a verdict is given (the interval is Student's t, so
/// small groups already get wide intervals).
pub const MIN_GROUP: usize = 8;

/// One step's effect.
#[derive(Debug, Clone, Serialize)]
pub struct StepEffect {
    /// The journey.
    pub journey_id: String,
    /// The step.
    pub step_id: String,
    /// `email` or `task`.
    pub kind: String,
    /// Days after the step the scores are read again.
    pub window_days: f64,
    /// `holdout` (recipients against the holdout) or `before_after` (no holdout).
    pub method: Method,
    /// Per measured score.
    pub scores: Vec<ScoreEffect>,
    /// The finding.
    pub verdict: Verdict,
    /// The finding in a sentence, with its caveat.
    pub summary: String,
}

/// How an effect is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Recipients against the journey's holdout.
    Holdout,
    /// Recipients' scores before against after: other causes are not ruled out.
    BeforeAfter,
}

/// What the numbers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A measured score moved up, beyond chance at 95%.
    Moves,
    /// It went out and no measured score moved beyond chance.
    Ineffective,
    /// Too few subjects to tell yet.
    TooFew,
}

/// One score's movement after a step.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreEffect {
    /// The score.
    pub score: String,
    /// Subjects who got the step, with the score known before and after.
    pub recipients: u64,
    /// Subjects held out, likewise.
    pub held_out: u64,
    /// Subjects left out because the score was unknown before or after.
    pub unscored: u64,
    /// Mean change among recipients.
    pub recipients_change: Option<Estimate>,
    /// Mean change in the holdout.
    pub held_out_change: Option<Estimate>,
    /// Recipients' change minus the holdout's: the step's effect.
    pub lift: Option<Estimate>,
}

/// The effects of the email and task steps of `journey` that ran in `[from, until]` and
/// whose window has passed by `until`; `selected` filters accounts (tier, goal).
pub async fn for_journey<S: Store>(
    store: &S,
    journey: &Journey,
    from: i64,
    until: i64,
    selected: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<StepEffect>, StoreError> {
    let scores = journey.measured_scores();
    let holdout = journey.file.holdout.as_ref();
    let window = holdout.map_or(crate::definitions::journey::Holdout::WINDOW, |h| h.window());
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let method = if holdout.is_some() {
        Method::Holdout
    } else {
        Method::BeforeAfter
    };
    // Per step, per score, the changes.
    let mut by_step: BTreeMap<String, Vec<ScoreEffect>> = BTreeMap::new();
    for score in &scores {
        let changes = store
            .step_score_changes(&journey.id, score, from, until, window_ms)
            .await?;
        for step in journey.steps.iter().filter(|s| measured_step(&s.action)) {
            let mine: Vec<&StepScoreChange> = changes
                .iter()
                .filter(|c| c.step_id == step.id && c.kind == kind(&step.action))
                .filter(|c| selected(&c.account_id))
                .collect();
            if mine.is_empty() {
                continue;
            }
            by_step
                .entry(step.id.clone())
                .or_default()
                .push(score_effect(score, &mine));
        }
    }
    Ok(journey
        .steps
        .iter()
        .filter_map(|step| {
            let scores = by_step.remove(&step.id)?;
            let verdict = verdict(method, &scores);
            Some(StepEffect {
                journey_id: journey.id.clone(),
                step_id: step.id.clone(),
                kind: kind(&step.action).to_string(),
                window_days: window.as_secs_f64() / 86_400.0,
                summary: summary(method, verdict, &scores, window.as_secs_f64() / 86_400.0),
                method,
                scores,
                verdict,
            })
        })
        .collect())
}

fn measured_step(action: &Action) -> bool {
    matches!(action, Action::Email(_) | Action::Task(_))
}

fn kind(action: &Action) -> &'static str {
    match action {
        Action::Task(_) => "task",
        _ => "email",
    }
}

fn score_effect(score: &str, changes: &[&StepScoreChange]) -> ScoreEffect {
    let mut sent = Vec::new();
    let mut held = Vec::new();
    let mut unscored = 0;
    for change in changes {
        match (change.before, change.after) {
            (Some(before), Some(after)) if change.held_out => held.push(after - before),
            (Some(before), Some(after)) => sent.push(after - before),
            _ => unscored += 1,
        }
    }
    ScoreEffect {
        score: score.to_string(),
        recipients: sent.len() as u64,
        held_out: held.len() as u64,
        unscored,
        recipients_change: mean(&sent),
        held_out_change: mean(&held),
        lift: difference(&sent, &held),
    }
}

fn verdict(method: Method, scores: &[ScoreEffect]) -> Verdict {
    let enough = |s: &&ScoreEffect| match method {
        Method::Holdout => s.recipients as usize >= MIN_GROUP && s.held_out as usize >= MIN_GROUP,
        Method::BeforeAfter => s.recipients as usize >= MIN_GROUP,
    };
    let judged: Vec<&ScoreEffect> = scores.iter().filter(enough).collect();
    if judged.is_empty() {
        return Verdict::TooFew;
    }
    let moved = judged.iter().any(|s| match method {
        Method::Holdout => s.lift.is_some_and(|l| l.above_zero()),
        Method::BeforeAfter => s.recipients_change.is_some_and(|c| c.above_zero()),
    });
    if moved {
        Verdict::Moves
    } else {
        Verdict::Ineffective
    }
}

fn summary(method: Method, verdict: Verdict, scores: &[ScoreEffect], days: f64) -> String {
    let names: Vec<&str> = scores.iter().map(|s| s.score.as_str()).collect();
    let names = names.join(", ");
    match (verdict, method) {
        (Verdict::TooFew, Method::Holdout) => format!(
            "too few to tell yet: needs {MIN_GROUP} recipients and {MIN_GROUP} held out whose {names} is known {days:.0} days on"
        ),
        (Verdict::TooFew, Method::BeforeAfter) => format!(
            "too few to tell yet: needs {MIN_GROUP} recipients whose {names} is known {days:.0} days on"
        ),
        (Verdict::Moves, Method::Holdout) => {
            format!("works: {names} rose more for recipients than for the holdout")
        }
        (Verdict::Moves, Method::BeforeAfter) => format!(
            "{names} rose after it; without a holdout other causes are not ruled out (add `holdout: 10%`)"
        ),
        (Verdict::Ineffective, Method::Holdout) => format!(
            "ineffective: it went out, and {names} moved no more for recipients than for the holdout"
        ),
        (Verdict::Ineffective, Method::BeforeAfter) => format!(
            "ineffective: it went out and {names} did not rise in {days:.0} days (before against after, no holdout)"
        ),
    }
}
