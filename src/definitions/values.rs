//! Small value types that parse themselves from YAML strings, so a bad duration, cron
//! expression, time zone or hour range is reported at its exact position.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveTime;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

use crate::suggest;

/// Deserializes a type from a string through `FromStr`, keeping the parse error's text.
macro_rules! from_str_deserialize {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A touch tier.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// A CSM owns the relationship.
    High,
    /// A mix of CSM and automation.
    Low,
    /// Automation only.
    Tech,
}

impl Tier {
    /// All tiers.
    pub const ALL: [Tier; 3] = [Tier::High, Tier::Low, Tier::Tech];

    /// The tier's name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::High => "high",
            Tier::Low => "low",
            Tier::Tech => "tech",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A length of time such as `3d`, `12h` or `90 days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub std::time::Duration);

impl DurationSpec {
    /// As a chrono duration, for date arithmetic.
    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl FromStr for DurationSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let duration = humantime::parse_duration(text.trim()).map_err(|e| {
            format!("invalid duration `{text}`: {e}; write it like `30m`, `12h`, `3d` or `2w`")
        })?;
        if duration.is_zero() {
            return Err(format!(
                "invalid duration `{text}`: must be longer than zero"
            ));
        }
        Ok(Self(duration))
    }
}
from_str_deserialize!(DurationSpec);

impl JsonSchema for DurationSpec {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A length of time: a number and a unit, e.g. `30m`, `12h`, `3d`, `2w`.",
            "pattern": "^\\s*([0-9]+\\s*[a-zA-Z]+\\s*)+$"
        })
    }
}

/// A holdout's share of a journey's entrants, written `10%`: from 0 up to 50%, in steps of
/// 0.01% (a larger holdout would withhold the journey from most of its audience).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldoutShare {
    /// In hundredths of a percent (`10%` is 1000).
    pub basis_points: u32,
}

impl HoldoutShare {
    /// The largest holdout.
    pub const MAX_PERCENT: f64 = 50.0;

    /// In percent.
    pub fn percent(self) -> f64 {
        f64::from(self.basis_points) / 100.0
    }
}

impl FromStr for HoldoutShare {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected =
            || format!("invalid holdout `{text}`: write a share like `10%`, from 0% to 50%");
        let number = text.trim().strip_suffix('%').ok_or_else(expected)?;
        let percent: f64 = number.trim().parse().map_err(|_| expected())?;
        if !(0.0..=Self::MAX_PERCENT).contains(&percent) {
            return Err(format!(
                "invalid holdout `{text}`: must be from 0% to 50%, so that most of the journey's audience gets it"
            ));
        }
        Ok(Self {
            basis_points: (percent * 100.0).round() as u32,
        })
    }
}
from_str_deserialize!(HoldoutShare);

impl JsonSchema for HoldoutShare {
    fn schema_name() -> Cow<'static, str> {
        "HoldoutShare".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A share of the journey's entrants, from `0%` to `50%`, e.g. `10%`.",
            "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*%\\s*$"
        })
    }
}

/// A point in time: RFC 3339 (`2026-11-02T09:00:00-06:00`), or `2026-11-02 09:00` /
/// `2026-11-02` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeSpec(pub chrono::DateTime<chrono::Utc>);

impl FromStr for TimeSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        crate::clock::parse_time(text).map(Self)
    }
}
from_str_deserialize!(TimeSpec);

impl JsonSchema for TimeSpec {
    fn schema_name() -> Cow<'static, str> {
        "Time".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A time: RFC 3339 (`2026-11-02T09:00:00-06:00`), or `2026-11-02 09:00` or `2026-11-02` in UTC."
        })
    }
}

/// A cron schedule with crontab's meaning: 5 fields (`min hour day month weekday`), weekdays
/// 0–7 with 0 and 7 both Sunday and 1 Monday, or names (`MON-FRI`); a day-of-month and a
/// weekday both restricted match either (as Vixie cron does). 6 fields put seconds first.
#[derive(Debug, Clone, PartialEq)]
pub struct CronSpec {
    /// The expression as written.
    pub text: String,
    /// The parsed schedule.
    pub schedule: croner::Cron,
}

impl CronSpec {
    /// The latest firing at or before `now`, in the zone the schedule is read in.
    pub fn latest_at_or_before<Tz: chrono::TimeZone>(
        &self,
        now: &chrono::DateTime<Tz>,
    ) -> Option<chrono::DateTime<Tz>> {
        self.schedule.find_previous_occurrence(now, true).ok()
    }
}

impl FromStr for CronSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let fields = text.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "invalid cron schedule `{text}`: expected 5 fields (minute hour day-of-month month day-of-week), found {fields}"
            ));
        }
        check_cron_fields(text)?;
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        let schedule = parser
            .parse(text)
            .map_err(|e| format!("invalid cron schedule `{text}`: {e}"))?;
        Ok(Self {
            text: text.to_string(),
            schedule,
        })
    }
}
from_str_deserialize!(CronSpec);

/// The crontab fields: name, range, and the names a field may use instead of numbers.
const CRON_FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day-of-month", 1, 31, &[]),
    (
        "month",
        1,
        12,
        &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    ),
    (
        "day-of-week",
        0,
        7,
        &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    ),
];

/// Names the field and the value a schedule gets wrong, in crontab's terms (the parser's
/// own messages name neither). Extensions the parser knows (`L`, `W`, `#`) are left to it.
fn check_cron_fields(text: &str) -> Result<(), String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let (seconds, rest) = fields.split_at(fields.len() - 5);
    let named = seconds
        .iter()
        .map(|f| (*f, ("second", 0, 59, &[][..])))
        .chain(rest.iter().copied().zip(CRON_FIELDS));
    for (field, (name, low, high, names)) in named {
        for part in field.split(',') {
            let range = part.split_once('/').map_or(part, |(range, _)| range);
            if range == "*" || range == "?" || range.contains(['L', 'W', '#', 'l', 'w']) {
                continue;
            }
            for value in range.split('-') {
                let known = match value.parse::<u32>() {
                    Ok(n) => (low..=high).contains(&n),
                    Err(_) => names.iter().any(|n| n.eq_ignore_ascii_case(value)),
                };
                if !known {
                    let names = match names.first().zip(names.last()) {
                        Some((first, last)) => format!(" or {first}–{last}"),
                        None => String::new(),
                    };
                    let sunday = if name == "day-of-week" {
                        " (0 and 7 are Sunday)"
                    } else {
                        ""
                    };
                    return Err(format!(
                        "invalid cron schedule `{text}`: {name} `{value}` is not valid; use {low}–{high}{sunday}{names}"
                    ));
                }
            }
        }
    }
    Ok(())
}

impl JsonSchema for CronSpec {
    fn schema_name() -> Cow<'static, str> {
        "CronSchedule".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A cron schedule: `minute hour day-of-month month day-of-week`, e.g. `0 9 * * MON`."
        })
    }
}

/// An IANA time zone name such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl FromStr for TimeZone {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.parse::<chrono_tz::Tz>().map(TimeZone).map_err(|_| {
            let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
            match suggest::closest(text, names) {
                Some(best) => format!("unknown time zone `{text}`; did you mean `{best}`?"),
                None => {
                    format!("unknown time zone `{text}`; use an IANA name such as `Europe/Berlin`")
                }
            }
        })
    }
}
from_str_deserialize!(TimeZone);

impl JsonSchema for TimeZone {
    fn schema_name() -> Cow<'static, str> {
        "TimeZone".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An IANA time zone name, e.g. `America/New_York`."
        })
    }
}

/// A daily range of local hours such as `09:00-17:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourRange {
    /// Opening time (inclusive).
    pub start: NaiveTime,
    /// Closing time (exclusive); `None` for `24:00`, the end of the day.
    pub end: Option<NaiveTime>,
}

impl HourRange {
    /// Whether a local time of day is inside the range.
    pub fn contains(&self, time: NaiveTime) -> bool {
        time >= self.start && self.end.is_none_or(|end| time < end)
    }
}

impl FromStr for HourRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid hours `{text}`: write them like `09:00-17:00`");
        let (start, end) = text.split_once('-').ok_or_else(invalid)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| invalid());
        let start = time(start)?;
        let end = match end.trim() {
            "24:00" => None,
            end => Some(time(end)?),
        };
        if end.is_some_and(|end| start >= end) {
            return Err(format!(
                "invalid hours `{text}`: the window must open before it closes"
            ));
        }
        Ok(Self { start, end })
    }
}
from_str_deserialize!(HourRange);

impl JsonSchema for HourRange {
    fn schema_name() -> Cow<'static, str> {
        "HourRange".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "Local opening hours, e.g. `09:00-17:00`; `00:00-24:00` is the whole day.",
            "pattern": "^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$"
        })
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// As chrono's weekday.
    pub fn to_chrono(self) -> chrono::Weekday {
        match self {
            Weekday::Mon => chrono::Weekday::Mon,
            Weekday::Tue => chrono::Weekday::Tue,
            Weekday::Wed => chrono::Weekday::Wed,
            Weekday::Thu => chrono::Weekday::Thu,
            Weekday::Fri => chrono::Weekday::Fri,
            Weekday::Sat => chrono::Weekday::Sat,
            Weekday::Sun => chrono::Weekday::Sun,
        }
    }
}

/// When mail may go out, in the recipient's time zone.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendWindow {
    /// Days mail may be sent on (default: Monday to Friday).
    #[serde(default = "weekdays")]
    pub days: Vec<Weekday>,
    /// Local hours mail may be sent in, e.g. `09:00-17:00`.
    pub hours: HourRange,
}

fn weekdays() -> Vec<Weekday> {
    vec![
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Datelike, Utc, Weekday};

    fn fires(spec: &str, days: &[&str]) -> Vec<Weekday> {
        let spec: CronSpec = spec.parse().expect("valid schedule");
        days.iter()
            .filter_map(|day| {
                let at: DateTime<Utc> = format!("{day}T09:30:00Z").parse().expect("time");
                spec.latest_at_or_before(&at)
                    .filter(|t| t.date_naive() == at.date_naive())
                    .map(|t| t.weekday())
            })
            .collect()
    }

    /// 2027-03-07 is a Sunday; the week runs to Saturday 03-13.
    const WEEK: [&str; 7] = [
        "2027-03-07",
        "2027-03-08",
        "2027-03-09",
        "2027-03-10",
        "2027-03-11",
        "2027-03-12",
        "2027-03-13",
    ];

    #[test]
    fn crontab_weekday_numbers_mean_what_crontab_says() {
        use Weekday::*;
        assert_eq!(fires("0 9 * * 1", &WEEK), vec![Mon]);
        assert_eq!(fires("0 9 * * 0", &WEEK), vec![Sun]);
        assert_eq!(fires("0 9 * * 7", &WEEK), vec![Sun]);
        assert_eq!(fires("0 9 * * 1-5", &WEEK), vec![Mon, Tue, Wed, Thu, Fri]);
        assert_eq!(
            fires("0 9 * * MON-FRI", &WEEK),
            vec![Mon, Tue, Wed, Thu, Fri]
        );
        assert_eq!(fires("0 9 * * 5-7", &WEEK), vec![Sun, Fri, Sat]);
        assert_eq!(fires("0 9 * * sat,sun", &WEEK), vec![Sun, Sat]);
        assert_eq!(fires("0 9 * * */2", &WEEK), vec![Sun, Tue, Thu, Sat]);
        assert_eq!(
            fires("0 0 9 * * 1", &WEEK),
            vec![Mon],
            "six fields, seconds first"
        );
    }

    #[test]
    fn a_restricted_day_of_month_and_weekday_match_either() {
        // Vixie cron: `1 * MON` means the 1st of the month or any Monday.
        let spec: CronSpec = "0 9 10 * 1".parse().expect("valid");
        let monday: DateTime<Utc> = "2027-03-08T10:00:00Z".parse().expect("time");
        let wednesday_10th: DateTime<Utc> = "2027-03-10T10:00:00Z".parse().expect("time");
        for at in [monday, wednesday_10th] {
            let fired = spec.latest_at_or_before(&at).expect("a firing");
            assert_eq!(fired.date_naive(), at.date_naive());
        }
    }

    #[test]
    fn bad_schedules_say_why() {
        let cases = [
            ("0 25 * * MON", "hour `25` is not valid; use 0–23"),
            (
                "0 9 * * FUNDAY",
                "day-of-week `FUNDAY` is not valid; use 0–7 (0 and 7 are Sunday) or SUN–SAT",
            ),
            (
                "0 9 * * 1-8",
                "day-of-week `8` is not valid; use 0–7 (0 and 7 are Sunday) or SUN–SAT",
            ),
            (
                "0 9 * JANX *",
                "month `JANX` is not valid; use 1–12 or JAN–DEC",
            ),
            (
                "0 9 * *",
                "expected 5 fields (minute hour day-of-month month day-of-week), found 4",
            ),
        ];
        for (bad, reason) in cases {
            let error = bad.parse::<CronSpec>().expect_err(bad);
            assert_eq!(error, format!("invalid cron schedule `{bad}`: {reason}"));
        }
    }
}
