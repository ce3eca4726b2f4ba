//! Small statistics for reports: quantiles of durations and shares, means with confidence
//! intervals, and how well a score separates two groups.

use serde::Serialize;

/// Student's t for a two-sided 95% interval, by degrees of freedom 1–30.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The t value of a two-sided 95% interval with `df` degrees of freedom: small groups get
/// the wider interval they deserve; beyond 30 it closes in on the normal 1.96.
fn t95(df: f64) -> f64 {
    if df >= 30.0 {
        return 1.96 + 2.4 / df;
    }
    T95[(df.floor().max(1.0) as usize) - 1]
}

/// The `q` quantile (0–1) of `values` by the nearest-rank method; `None` for no values.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

/// `part` of `whole` in percent; `None` when there is no whole to speak of.
pub fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// A mean, or a difference of means, with its 95% confidence interval (Student's t; Welch's
/// standard error and degrees of freedom for a difference).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The mean or difference.
    pub value: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
}

impl Estimate {
    /// Whether the whole interval lies above zero: the change is real at 95%.
    pub fn above_zero(&self) -> bool {
        self.low > 0.0
    }
}

/// Mean and sample variance; `None` for fewer than two values.
fn mean_variance(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, variance))
}

/// The mean of `values` with its 95% interval.
pub fn mean(values: &[f64]) -> Option<Estimate> {
    let (mean, variance) = mean_variance(values)?;
    let n = values.len() as f64;
    let margin = t95(n - 1.0) * (variance / n).sqrt();
    Some(Estimate {
        value: mean,
        low: mean - margin,
        high: mean + margin,
    })
}

/// The mean of `a` minus the mean of `b`, with its 95% interval.
pub fn difference(a: &[f64], b: &[f64]) -> Option<Estimate> {
    let (mean_a, var_a) = mean_variance(a)?;
    let (mean_b, var_b) = mean_variance(b)?;
    let value = mean_a - mean_b;
    let (n_a, n_b) = (a.len() as f64, b.len() as f64);
    let (share_a, share_b) = (var_a / n_a, var_b / n_b);
    // Welch–Satterthwaite; with no spread in either group, the pooled count.
    let df = if share_a + share_b > 0.0 {
        (share_a + share_b).powi(2)
            / (share_a.powi(2) / (n_a - 1.0) + share_b.powi(2) / (n_b - 1.0))
    } else {
        n_a + n_b - 2.0
    };
    let margin = t95(df) * (share_a + share_b).sqrt();
    Some(Estimate {
        value,
        low: value - margin,
        high: value + margin,
    })
}

/// The area under the ROC curve of a score as a predictor of `churned` where a *low*
/// score means risk: the chance that a random account that stayed scored higher than a
/// random one that churned (ties count half). 0.5 is no better than chance, 1.0 perfect.
/// `None` unless both groups have members.
pub fn auc_low_predicts(scored: &[(f64, bool)]) -> Option<f64> {
    let churned = scored.iter().filter(|(_, c)| *c).count();
    let stayed = scored.len() - churned;
    if churned == 0 || stayed == 0 {
        return None;
    }
    // Mann–Whitney: rank all scores (ties get their average rank), sum the stayers' ranks.
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start;
        while end + 1 < sorted.len() && sorted[end + 1].0 == sorted[start].0 {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        rank_sum += sorted[start..=end].iter().filter(|(_, c)| !c).count() as f64 * average_rank;
        start = end + 1;
    }
    let stayed = stayed as f64;
    let u = rank_sum - stayed * (stayed + 1.0) / 2.0;
    Some(u / (stayed * churned as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_and_differences_with_intervals() {
        let a = [10.0, 12.0, 14.0, 16.0];
        let m = mean(&a).expect("mean");
        assert_eq!(m.value, 13.0);
        // s = 2.582, se = 1.291, t(3 df) = 3.182, margin = 4.108
        assert!((m.high - 17.108).abs() < 0.001, "{m:?}");
        // Large groups close in on the normal interval.
        let many: Vec<f64> = (0..1000).map(|i| f64::from(i % 2)).collect();
        let wide = mean(&many).expect("mean");
        assert!((wide.high - wide.value - 1.9624 * (0.25025_f64 / 1000.0).sqrt()).abs() < 1e-3);
        let d = difference(&a, &[0.0, 1.0, 2.0, 3.0]).expect("difference");
        assert_eq!(d.value, 11.5);
        assert!(d.above_zero());
        let none =
            difference(&[1.0, -1.0, 2.0, -2.0], &[1.0, -1.0, 2.0, -2.0]).expect("difference");
        assert_eq!(none.value, 0.0);
        assert!(!none.above_zero());
        assert_eq!(mean(&[1.0]), None);
    }

    #[test]
    fn auc_of_a_score_against_churn() {
        // Every churner scored below every stayer: perfect separation.
        let perfect = [(10.0, true), (20.0, true), (70.0, false), (90.0, false)];
        assert_eq!(auc_low_predicts(&perfect), Some(1.0));
        // Reversed: the score points the wrong way.
        let reversed = [(90.0, true), (70.0, true), (20.0, false), (10.0, false)];
        assert_eq!(auc_low_predicts(&reversed), Some(0.0));
        // All tied: chance.
        let tied = [(50.0, true), (50.0, false), (50.0, false)];
        assert_eq!(auc_low_predicts(&tied), Some(0.5));
        // One pair out of order of four: 3/4.
        let mixed = [(10.0, true), (30.0, true), (20.0, false), (40.0, false)];
        assert_eq!(auc_low_predicts(&mixed), Some(0.75));
        assert_eq!(auc_low_predicts(&[(1.0, false)]), None);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let days = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(quantile(&days, 0.5), Some(5.0));
        assert_eq!(quantile(&days, 0.9), Some(9.0));
        assert_eq!(quantile(&[4.0], 0.9), Some(4.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(percent(1, 4), Some(25.0));
        assert_eq!(percent(0, 0), None);
    }
}
