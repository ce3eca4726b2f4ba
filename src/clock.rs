//! Time, injected: the engine asks a [`Clock`], so a pass at a given time is reproducible and
//! simulations move time instead of waiting for it.

use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Where the engine gets "now" from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says what it is told (tests, `--now`, simulations).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self(Mutex::new(now))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Parses a time as users write it: RFC 3339 (`2026-11-23T09:00:00Z`), a date and time
/// without zone (taken as UTC), or a date (midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or_default());
    }
    Err(format!(
        "`{text}` is not a date or time; write `2026-11-23` or `2026-11-23T09:00:00Z`"
    ))
}

/// Milliseconds since the Unix epoch, as stored.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The time for stored milliseconds.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        let expected = "2026-11-23T09:00:00Z";
        assert_eq!(
            parse_time("2026-11-23T09:00:00Z").map(|t| t.to_rfc3339()),
            parse_time(expected).map(|t| t.to_rfc3339())
        );
        assert_eq!(
            parse_time("2026-11-23T10:00:00+01:00"),
            parse_time(expected)
        );
        assert_eq!(parse_time("2026-11-23 09:00:00"), parse_time(expected));
        assert_eq!(
            parse_time("2026-11-23").map(|t| t.to_rfc3339()),
            Ok("2026-11-23T00:00:00+00:00".into())
        );
        assert!(parse_time("23/11/2026").is_err());
    }
}
