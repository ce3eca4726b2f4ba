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

/// A cron schedule. Ordinary 5-field crontab (`min hour day month weekday`) or 6 fields
/// with seconds first.
#[derive(Debug, Clone, PartialEq)]
pub struct CronSpec {
    /// The expression as written.
    pub text: String,
    /// The parsed schedule.
    pub schedule: cron::Schedule,
}

impl FromStr for CronSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let fields = text.split_whitespace().count();
        let normalized = match fields {
            5 => format!("0 {text}"),
            6 | 7 => text.to_string(),
            _ => {
                return Err(format!(
                    "invalid cron schedule `{text}`: expected 5 fields (minute hour day-of-month month day-of-week), found {fields}"
                ));
            }
        };
        let schedule = cron::Schedule::from_str(&normalized).map_err(|e| {
            // The parser quotes the expression with a caret on lines of their own; the last
            // line says what is wrong.
            let message = e.to_string();
            let reason = message
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("not a valid schedule");
            format!("invalid cron schedule `{text}`: {}", reason.trim())
        })?;
        Ok(Self {
            text: text.to_string(),
            schedule,
        })
    }
}
from_str_deserialize!(CronSpec);

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
    /// Closing time (exclusive).
    pub end: NaiveTime,
}

impl FromStr for HourRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid hours `{text}`: write them like `09:00-17:00`");
        let (start, end) = text.split_once('-').ok_or_else(invalid)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| invalid());
        let (start, end) = (time(start)?, time(end)?);
        if start >= end {
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
            "description": "Local opening hours, e.g. `09:00-17:00`.",
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
