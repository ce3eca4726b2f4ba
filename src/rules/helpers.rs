//! Functions rules can call, written in Rust.
//!
//! Dates in rule data are [`Timestamp`]s; `now` is the injected clock's time for the
//! evaluation, so a pass at a given time always gives the same answers.

use std::cell::Cell;

use chrono::{DateTime, Utc};
use rhai::{Array, Dynamic, Engine, FLOAT, INT, ImmutableString, Map};

/// A point in time as rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

thread_local! {
    static NOW: Cell<Option<DateTime<Utc>>> = const { Cell::new(None) };
}

/// Sets the time `days_since` and `days_until` measure from, for this thread's evaluations.
pub fn set_now(now: DateTime<Utc>) {
    NOW.with(|n| n.set(Some(now)));
}

fn now() -> DateTime<Utc> {
    NOW.with(|n| n.get()).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Days from `from` to `to` (what `days_since` and `days_until` give; shared with the native
/// rules in [`super::native`] so both paths compute the same value).
pub(super) fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> FLOAT {
    (to - from).num_seconds() as FLOAT / 86_400.0
}

/// The names rules can call, for error messages and docs.
pub const HELPERS: &[(&str, &str)] = &[
    (
        "days_since(t)",
        "days from `t` to now (infinite when `t` is unset)",
    ),
    (
        "days_until(t)",
        "days from now to `t` (infinite when `t` is unset)",
    ),
    (
        "has_goal(account, goal)",
        "true when the account holds that adoption goal",
    ),
    ("ratio(a, b)", "a / b as a decimal, 0 when b is 0"),
    ("clamp(x, lo, hi)", "x limited to the range lo..hi"),
    (
        "get_or(map, key, default)",
        "map[key], or default when the key is missing",
    ),
];

/// Registers the helpers and the `Timestamp` type.
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<Timestamp>("Timestamp")
        .register_fn("to_string", |t: &mut Timestamp| t.0.to_rfc3339())
        .register_fn("==", |a: Timestamp, b: Timestamp| a == b)
        .register_fn("!=", |a: Timestamp, b: Timestamp| a != b)
        .register_fn("<", |a: Timestamp, b: Timestamp| a < b)
        .register_fn("<=", |a: Timestamp, b: Timestamp| a <= b)
        .register_fn(">", |a: Timestamp, b: Timestamp| a > b)
        .register_fn(">=", |a: Timestamp, b: Timestamp| a >= b)
        .register_fn("days_since", |t: Timestamp| days_between(t.0, now()))
        .register_fn("days_since", |_: ()| FLOAT::INFINITY)
        .register_fn("days_until", |t: Timestamp| days_between(now(), t.0))
        .register_fn("days_until", |_: ()| FLOAT::INFINITY)
        .register_fn("has_goal", |account: &mut Map, goal: ImmutableString| {
            has_goal(account, &goal)
        })
        // An integer is 0 exactly when it is 0.0 as a float, so every mix is the float ratio.
        .register_fn("ratio", ratio)
        .register_fn("ratio", |a: INT, b: INT| ratio(a as FLOAT, b as FLOAT))
        .register_fn("ratio", |a: INT, b: FLOAT| ratio(a as FLOAT, b))
        .register_fn("ratio", |a: FLOAT, b: INT| ratio(a, b as FLOAT))
        .register_fn("clamp", clamp_float)
        .register_fn("clamp", clamp_int)
        .register_fn(
            "get_or",
            |map: &mut Map, key: ImmutableString, default: Dynamic| {
                map.get(key.as_str()).cloned().unwrap_or(default)
            },
        );
}

/// `a / b`, 0 when `b` is 0.
pub(super) fn ratio(a: FLOAT, b: FLOAT) -> FLOAT {
    if b == 0.0 { 0.0 } else { a / b }
}

/// `x` limited to `lo..hi` (NaN and crossed bounds as `f64::max` and `f64::min` treat them).
pub(super) fn clamp_float(x: FLOAT, lo: FLOAT, hi: FLOAT) -> FLOAT {
    x.max(lo).min(hi)
}

/// `x` limited to `lo..hi` (`hi` wins when the bounds cross).
pub(super) fn clamp_int(x: INT, lo: INT, hi: INT) -> INT {
    x.max(lo).min(hi)
}

/// Whether the account's `goals` list holds `goal`.
pub(super) fn has_goal(account: &Map, goal: &str) -> bool {
    account
        .get("goals")
        .and_then(|goals| {
            goals
                .read_lock::<Array>()
                .map(|g| g.iter().any(|x| x.to_string() == goal))
        })
        .unwrap_or(false)
}
