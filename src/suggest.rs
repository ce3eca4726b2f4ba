//! "Did you mean …?" for misspelt names.

/// The candidate closest to `name`, if it is close enough to be a plausible typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let threshold = (name.chars().count() / 3).max(1);
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let by_distance = candidates
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), *candidate))
        .filter(|(distance, _)| *distance <= threshold)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate);
    // `password` for `password_env`: a name that is the start of exactly one candidate.
    by_distance.or_else(|| {
        let mut prefixed = candidates
            .iter()
            .filter(|c| name.len() >= 3 && c.starts_with(name));
        match (prefixed.next(), prefixed.next()) {
            (Some(only), None) => Some(*only),
            _ => None,
        }
    })
}

/// A hint for a name that is not one of `candidates`: a did-you-mean where one is close,
/// otherwise the full list when it is short enough to read.
pub fn hint<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<String> {
    if let Some(best) = closest(name, candidates.clone()) {
        return Some(format!("did you mean `{best}`?"));
    }
    let all: Vec<&str> = candidates.into_iter().collect();
    match all.len() {
        0 => None,
        1..=12 => Some(format!("expected one of {}", backticked(&all))),
        _ => None,
    }
}

/// `a`, `b`, `c`
pub fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_name() {
        let names = ["implementation", "utilization", "engagement", "outcome"];
        assert_eq!(closest("implementaton", names), Some("implementation"));
        assert_eq!(closest("utilisation", names), Some("utilization"));
        assert_eq!(closest("xyz", names), None);
        assert_eq!(
            closest("password", ["password_env", "host"]),
            Some("password_env")
        );
    }

    #[test]
    fn lists_short_candidate_sets_when_nothing_is_close() {
        assert_eq!(
            hint("zzz", ["a1", "b2"]).as_deref(),
            Some("expected one of `a1`, `b2`")
        );
    }
}
