//! What people look at, built once as data: each view is a struct that the CLI prints as
//! text or JSON (`--format json`), the HTTP API serves as JSON, and pages can render. The
//! JSON shape of every view is part of touchline's interface: fields are added, never
//! renamed or removed.

pub mod account_story;
pub mod deliveries;
pub mod explain;
pub mod holds;
pub mod inbox;
pub mod journey_tests;
pub mod plan;
pub mod report;
pub mod score_validation;
pub mod status;
pub mod step_effects;
pub mod suppressions;
pub mod tasks;

use chrono::{DateTime, Utc};

use crate::clock::from_millis;

/// A stored time (ms) as a time, for views.
pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    from_millis(ms)
}

/// A date for text output; `—` when unknown.
pub(crate) fn date(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".to_string(), |t| t.format("%Y-%m-%d").to_string())
}

/// A number for text output: whole numbers without decimals, others with two.
pub(crate) fn number(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}
