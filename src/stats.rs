//! Small statistics for reports: quantiles of durations and shares.

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

#[cfg(test)]
mod tests {
    use super::*;

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
