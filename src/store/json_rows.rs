//! Batch reads returned as one JSON text instead of one row per account.
//!
//! A full pass reads every account. Row by row, the database driver hands each row from its
//! worker thread and copies each value on its own, which cost 15–25 µs per account, far
//! more than the database's own work. Here the database builds the whole batch as one JSON
//! array (each account an array of its columns) and touchline parses it in one go.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Result, StoreError};
use crate::clock::from_millis;
use crate::model::{Account, AccountState, Attributes};

/// How a database spells the JSON a batch read is built with.
pub(super) struct JsonSql {
    /// `value` of every row aggregated into one JSON array text, ordered by `order`; `[]`
    /// when there are no rows.
    pub rows: fn(value: &str, order: &str) -> String,
    /// The function making a JSON array of SQL values.
    pub array: &'static str,
    /// A text column holding JSON, embedded as JSON rather than as a string.
    pub embed: fn(column: &str) -> String,
    /// A REAL column as a JSON value that keeps every bit of the double.
    pub real: fn(column: &str) -> String,
}

pub(super) const SQLITE: JsonSql = JsonSql {
    rows: |value, order| format!("COALESCE(json_group_array({value} ORDER BY {order}), '[]')"),
    array: "json_array",
    embed: |column| format!("json({column})"),
    // SQLite's JSON writes doubles with 15 significant digits; 17 are needed to read back
    // the same double, so they travel as text.
    real: |column| {
        format!("CASE WHEN {column} IS NULL THEN NULL ELSE printf('%!.17g', {column}) END")
    },
};

pub(super) const POSTGRES: JsonSql = JsonSql {
    rows: |value, order| format!("COALESCE(json_agg({value} ORDER BY {order})::text, '[]')"),
    array: "json_build_array",
    embed: |column| format!("({column})::json"),
    // PostgreSQL writes the shortest text that reads back as the same double.
    real: |column| column.to_string(),
};

/// The last columns of a rule-input read: where the account's evaluation stands.
pub(super) const EVALUATION_COLUMNS: [&str; 6] = [
    "tier",
    "tier_rule",
    "data_version",
    "evaluated_version",
    "metrics_latest_at",
    "recheck_at",
];

/// Which columns a rule-input read fills: the rest are read as empty (see
/// [`super::RuleFields`]).
pub(super) fn rule_input_columns(json: &JsonSql, fields: &super::RuleFields) -> String {
    let fact = |name: &str, empty: &str| {
        if fields.facts.contains(name) {
            name.to_string()
        } else {
            empty.to_string()
        }
    };
    let mut columns = vec!["id".to_string(), fact("name", "''")];
    columns.push(fact("plan", "NULL"));
    for name in ["arr", "mrr"] {
        columns.push((json.real)(&fact(name, "NULL")));
    }
    for name in ["industry", "owner", "timezone"] {
        columns.push(fact(name, "NULL"));
    }
    columns.push((json.embed)(&fact("goals", "'[]'")));
    columns.push(fact("status", "''"));
    for name in ["contract_start", "contract_end", "created_at"] {
        columns.push(fact(name, "NULL"));
    }
    // The last login stays: it decides which logins a pass may see.
    columns.push("last_login_at".into());
    columns.push((json.embed)(if fields.attributes {
        "attributes"
    } else {
        "'{}'"
    }));
    let no_metrics = fields.metrics.as_ref().is_some_and(BTreeSet::is_empty);
    columns.push((json.embed)(if no_metrics { "'{}'" } else { "metrics" }));
    columns.push((json.embed)("scores"));
    columns.push((json.embed)("unknown_scores"));
    for name in EVALUATION_COLUMNS {
        columns.push(name.into());
    }
    format!("{}({})", json.array, columns.join(", "))
}

/// A double written as a JSON number or, from SQLite, as text.
fn real<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Real<'a> {
        Number(f64),
        #[serde(borrow)]
        Text(std::borrow::Cow<'a, str>),
    }
    match Option::<Real>::deserialize(d)? {
        None => Ok(None),
        Some(Real::Number(n)) => Ok(Some(n)),
        Some(Real::Text(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a number"))),
    }
}

/// One account of a rule-input read, in [`rule_input_columns`] order.
#[derive(Deserialize)]
struct RuleInputRow<'a>(
    String,
    String,
    Option<String>,
    #[serde(deserialize_with = "real")] Option<f64>,
    #[serde(deserialize_with = "real")] Option<f64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<String>,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Attributes,
    #[serde(borrow)] &'a RawValue,
    BTreeMap<String, f64>,
    BTreeMap<String, String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
);

/// The accounts in a rule-input read's JSON, keeping the metrics `metrics` names (`None`:
/// all).
pub(super) fn rule_inputs(
    text: &str,
    metrics: Option<&BTreeSet<String>>,
) -> Result<Vec<AccountState>> {
    let rows: Vec<RuleInputRow> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("a batch of accounts: {e}")))?;
    rows.into_iter()
        .map(|row| {
            let metrics = match metrics {
                None => super::sql::from_json(row.15.get())?,
                Some(names) => super::sql::metrics_named(row.15.get(), names)?,
            };
            Ok(AccountState {
                account: Account {
                    id: row.0,
                    name: row.1,
                    plan: row.2,
                    arr: row.3,
                    mrr: row.4,
                    industry: row.5,
                    owner: row.6,
                    timezone: row.7,
                    goals: row.8,
                    status: row.9,
                    contract_start: row.10.map(from_millis),
                    contract_end: row.11.map(from_millis),
                    created_at: row.12.map(from_millis),
                    last_login_at: row.13.map(from_millis),
                    attributes: row.14,
                },
                metrics,
                scores: row.16,
                unknown_scores: row.17,
                tier: row.18,
                tier_rule: row.19,
                data_version: row.20,
                evaluated_version: row.21,
                metrics_latest_at: row.22,
                recheck_at: row.23,
                next_change_at: None,
                contacts: Vec::new(),
            })
        })
        .collect()
}

/// The recipients in a recipient read's JSON: `[account, contact, subscribed, contact
/// time zone, account time zone]` each.
pub(super) fn recipient_facts(text: &str) -> Result<Vec<super::RecipientFacts>> {
    type Row = (
        String,
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("a batch of recipients: {e}")))?;
    Ok(rows
        .into_iter()
        .map(
            |(account_id, contact_id, subscribed, timezone, account_timezone)| {
                super::RecipientFacts {
                    account_id,
                    contact_id,
                    subscribed: subscribed.is_some_and(|s| s != 0),
                    timezone,
                    account_timezone,
                }
            },
        )
        .collect())
}

/// The ids in an id read's JSON.
pub(super) fn ids(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("a batch of ids: {e}")))
}
