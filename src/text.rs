//! Wording shared by every message: counts with the right noun, durations as people say them.

use std::time::Duration;

/// `1 mail`, `2 mails`: `plural` is used for every count but one.
pub fn count(n: impl Into<u64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// A length of time in its largest whole units: `7 days`, `1 day 12 hours`, `30 minutes`.
pub fn duration(d: Duration) -> String {
    const UNITS: [(u64, &str, &str); 4] = [
        (86_400, "day", "days"),
        (3_600, "hour", "hours"),
        (60, "minute", "minutes"),
        (1, "second", "seconds"),
    ];
    let mut left = d.as_secs();
    let mut parts = Vec::new();
    for (size, singular, plural) in UNITS {
        if left >= size {
            parts.push(count(left / size, singular, plural));
            left %= size;
        }
    }
    if parts.is_empty() {
        return "0 seconds".into();
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_read_as_written_by_hand() {
        assert_eq!(count(1u64, "account", "accounts"), "1 account");
        assert_eq!(count(0u64, "account", "accounts"), "0 accounts");
        assert_eq!(count(3u64, "tier change", "tier changes"), "3 tier changes");
        assert_eq!(duration(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(
            duration(Duration::from_secs(86_400 + 3_600)),
            "1 day 1 hour"
        );
        assert_eq!(duration(Duration::from_secs(1_800)), "30 minutes");
        assert_eq!(duration(Duration::ZERO), "0 seconds");
    }
}
