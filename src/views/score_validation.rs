//! Is a health score worth steering by? For each score, accounts banded by their score at
//! the start of the period (or when first scored in it), and how many of each band churned
//! before the period ended, with the separation the score shows (the area under the ROC
//! curve: 0.5 is chance, 1.0 perfect).

use std::collections::HashMap;

use serde::Serialize;

use crate::definitions::Definitions;
use crate::model::AccountState;
use crate::stats::{auc_low_predicts, percent, quantile};
use crate::store::{Store, StoreError};

/// One score checked against churn.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreValidation {
    /// The score.
    pub score: String,
    /// Accounts scored and still customers when scored.
    pub accounts: u64,
    /// Of those, churned before the period ended.
    pub churned: u64,
    /// Churned accounts left out because when they churned is not known.
    pub churn_time_unknown: u64,
    /// Churn per band of the score, lowest band first.
    pub bands: Vec<ScoreBand>,
    /// Area under the ROC curve with a low score predicting churn (`null`: nobody churned,
    /// or nobody stayed).
    pub auc: Option<f64>,
    /// What that means, in words.
    pub verdict: String,
}

/// Churn within one band of a score.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreBand {
    /// Lower edge (exclusive; `null` for the lowest band).
    pub above: Option<f64>,
    /// Upper edge (inclusive; `null` for the highest band).
    pub up_to: Option<f64>,
    /// Accounts in the band.
    pub accounts: u64,
    /// Of those, churned.
    pub churned: u64,
    /// In percent.
    pub churn_percent: Option<f64>,
}

/// When each account churned: its first churn event (`report.churn_event`), else, for an
/// account whose status is `churned`, its contract end; `None` inside when the status says
/// churned and nothing says when.
pub async fn churn_times<S: Store>(
    store: &S,
    definitions: &Definitions,
    accounts: &std::collections::BTreeMap<String, AccountState>,
) -> Result<HashMap<String, Option<i64>>, StoreError> {
    let mut churned: HashMap<String, Option<i64>> = HashMap::new();
    for (id, state) in accounts {
        if state.account.status == "churned" {
            let end = state.account.contract_end.map(crate::clock::to_millis);
            churned.insert(id.clone(), end);
        }
    }
    if let Some(event) = &definitions.config.report.churn_event {
        for (account, at) in store.first_events(event).await? {
            churned.insert(account, Some(at));
        }
    }
    Ok(churned)
}

/// Checks every score of the project over `[from, to)`; `selected` filters accounts.
pub async fn build<S: Store>(
    store: &S,
    definitions: &Definitions,
    churned: &HashMap<String, Option<i64>>,
    (from, to): (i64, i64),
    selected: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<ScoreValidation>, StoreError> {
    let mut out = Vec::new();
    for score in definitions.config.scores.keys() {
        let mut scored: Vec<(f64, bool)> = Vec::new();
        let mut churn_time_unknown = 0;
        for at in store.scores_at(score, from, to).await? {
            if !selected(&at.account_id) {
                continue;
            }
            match churned.get(&at.account_id) {
                None => scored.push((at.value, false)),
                Some(None) => churn_time_unknown += 1,
                // Already gone when scored: the score cannot have predicted it.
                Some(Some(when)) if *when <= at.at => {}
                Some(Some(when)) => scored.push((at.value, *when < to)),
            }
        }
        let edges = match &definitions.config.report.score_bands {
            Some(edges) => edges.clone(),
            None => deciles(&scored),
        };
        let churn_count = scored.iter().filter(|(_, c)| *c).count() as u64;
        let auc = auc_low_predicts(&scored);
        out.push(ScoreValidation {
            score: score.clone(),
            accounts: scored.len() as u64,
            churned: churn_count,
            churn_time_unknown,
            bands: bands(&scored, &edges),
            verdict: verdict(auc, churn_count),
            auc,
        });
    }
    Ok(out)
}

/// The edges of the deciles of the scores seen (fewer when values repeat).
fn deciles(scored: &[(f64, bool)]) -> Vec<f64> {
    let values: Vec<f64> = scored.iter().map(|(v, _)| *v).collect();
    let mut edges: Vec<f64> = (1..10)
        .filter_map(|d| quantile(&values, f64::from(d) / 10.0))
        .collect();
    edges.dedup();
    if edges.last() == values.iter().copied().reduce(f64::max).as_ref() {
        edges.pop();
    }
    edges
}

fn bands(scored: &[(f64, bool)], edges: &[f64]) -> Vec<ScoreBand> {
    let mut bands: Vec<ScoreBand> = (0..=edges.len())
        .map(|i| ScoreBand {
            above: i.checked_sub(1).map(|j| edges[j]),
            up_to: edges.get(i).copied(),
            accounts: 0,
            churned: 0,
            churn_percent: None,
        })
        .collect();
    for (value, churned) in scored {
        let index = edges
            .iter()
            .position(|edge| value <= edge)
            .unwrap_or(edges.len());
        bands[index].accounts += 1;
        bands[index].churned += u64::from(*churned);
    }
    for band in &mut bands {
        band.churn_percent = percent(band.churned, band.accounts);
    }
    bands.retain(|b| b.accounts > 0);
    bands
}

fn verdict(auc: Option<f64>, churned: u64) -> String {
    match auc {
        None if churned == 0 => "no account churned in the period: nothing to check against".into(),
        None => "every scored account churned: nothing to compare".into(),
        Some(auc) if auc >= 0.7 => format!("predicts churn (AUC {auc:.2}): worth steering by"),
        Some(auc) if auc >= 0.6 => format!("predicts churn weakly (AUC {auc:.2})"),
        Some(auc) if auc > 0.4 => {
            format!("no better than chance (AUC {auc:.2}): not worth steering by as it is")
        }
        Some(auc) => {
            format!("points the wrong way (AUC {auc:.2}): low scores churn less than high ones")
        }
    }
}
