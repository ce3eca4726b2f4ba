//! The data rules and templates see: an account (or contact) as a Rhai map, or as JSON.
//!
//! Missing text facts are empty strings and missing numbers are 0, so `account.arr >= 1000`
//! works for an account without ARR; missing dates are unit, which `days_since` reads as
//! "infinitely long ago".

use chrono::{DateTime, Utc};
use rhai::{Array, Dynamic, Map};

use crate::definitions::config::Csm;
use crate::model::{AccountState, Attributes, Contact};
use crate::rules::Timestamp;

fn text(value: &Option<String>) -> Dynamic {
    Dynamic::from(value.clone().unwrap_or_default())
}

fn time(value: Option<DateTime<Utc>>) -> Dynamic {
    value.map_or(Dynamic::UNIT, |t| Dynamic::from(Timestamp(t)))
}

fn attributes(attributes: &Attributes) -> Dynamic {
    rhai::serde::to_dynamic(attributes).unwrap_or_else(|_| Dynamic::from_map(Map::new()))
}

fn numbers<'a>(values: impl Iterator<Item = (&'a String, f64)>) -> Dynamic {
    Dynamic::from_map(
        values
            .map(|(k, v)| (k.as_str().into(), Dynamic::from_float(v)))
            .collect(),
    )
}

/// The account as rules see it. `scores` holds every declared score (0 until computed).
pub fn account_map(state: &AccountState, score_names: &[&str]) -> Dynamic {
    let a = &state.account;
    let mut map = Map::new();
    map.insert("id".into(), Dynamic::from(a.id.clone()));
    map.insert("name".into(), Dynamic::from(a.name.clone()));
    map.insert("plan".into(), text(&a.plan));
    map.insert("arr".into(), Dynamic::from_float(a.arr.unwrap_or(0.0)));
    map.insert("mrr".into(), Dynamic::from_float(a.mrr.unwrap_or(0.0)));
    map.insert("industry".into(), text(&a.industry));
    map.insert("owner".into(), text(&a.owner));
    map.insert("timezone".into(), text(&a.timezone));
    let goals: Array = a.goals.iter().map(|g| Dynamic::from(g.clone())).collect();
    map.insert("goals".into(), Dynamic::from_array(goals));
    map.insert("status".into(), Dynamic::from(a.status.clone()));
    map.insert("contract_start".into(), time(a.contract_start));
    map.insert("contract_end".into(), time(a.contract_end));
    map.insert("created_at".into(), time(a.created_at));
    map.insert("last_login_at".into(), time(a.last_login_at));
    map.insert("tier".into(), text(&state.tier));
    let scores = score_names
        .iter()
        .map(|name| (*name, state.scores.get(*name).copied().unwrap_or(0.0)));
    let scores: Map = scores
        .map(|(k, v)| (k.into(), Dynamic::from_float(v)))
        .collect();
    map.insert("scores".into(), Dynamic::from_map(scores));
    map.insert(
        "metrics".into(),
        numbers(state.metrics.iter().map(|(k, v)| (k, *v))),
    );
    map.insert("attributes".into(), attributes(&a.attributes));
    Dynamic::from_map(map)
}

/// A contact as rules see it.
pub fn contact_map(c: &Contact) -> Dynamic {
    let mut map = Map::new();
    map.insert("id".into(), Dynamic::from(c.id.clone()));
    map.insert("account_id".into(), Dynamic::from(c.account_id.clone()));
    map.insert("email".into(), Dynamic::from(c.email.clone()));
    map.insert("name".into(), text(&c.name));
    map.insert("first_name".into(), text(&c.first_name));
    map.insert("role".into(), text(&c.role));
    map.insert("locale".into(), text(&c.locale));
    map.insert("timezone".into(), text(&c.timezone));
    map.insert("subscribed".into(), Dynamic::from_bool(c.subscribed));
    map.insert("created_at".into(), time(c.created_at));
    map.insert("last_login_at".into(), time(c.last_login_at));
    map.insert("attributes".into(), attributes(&c.attributes));
    Dynamic::from_map(map)
}

/// The data templates see: `account`, `contact` and `owner` (the account's CSM). Facts the
/// customer data lacks are left out (not null), so `default(...)` supplies the fallback.
pub fn template_data(
    state: &AccountState,
    contact: Option<&Contact>,
    owner: Option<&Csm>,
) -> serde_json::Value {
    let mut data = template_data_with_nulls(state, contact, owner);
    strip_nulls(&mut data);
    data
}

/// A number as templates print it: whole numbers without a decimal point (`1400`, not
/// `1400.0`), others as they are. Scores are rounded before they get here.
fn number(value: f64) -> serde_json::Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        serde_json::json!(value as i64)
    } else {
        serde_json::json!(value)
    }
}

fn strip_nulls(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(strip_nulls);
    }
}

fn template_data_with_nulls(
    state: &AccountState,
    contact: Option<&Contact>,
    owner: Option<&Csm>,
) -> serde_json::Value {
    let a = &state.account;
    let date = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d").to_string());
    serde_json::json!({
        "account": {
            "id": a.id, "name": a.name, "plan": a.plan, "arr": a.arr.map(number), "mrr": a.mrr.map(number),
            "industry": a.industry, "owner": a.owner, "timezone": a.timezone, "goals": a.goals,
            "status": a.status, "contract_start": date(a.contract_start), "contract_end": date(a.contract_end),
            "created_at": date(a.created_at), "last_login_at": date(a.last_login_at),
            "tier": state.tier,
            "scores": state.scores.iter().map(|(k, v)| (k.clone(), number(v.round()))).collect::<serde_json::Map<_, _>>(),
            "metrics": state.metrics.iter().map(|(k, v)| (k.clone(), number(*v))).collect::<serde_json::Map<_, _>>(),
            "attributes": a.attributes,
        },
        "contact": contact.map(|c| serde_json::json!({
            "id": c.id, "email": c.email, "name": c.name, "first_name": c.first_name, "role": c.role,
            "locale": c.locale, "timezone": c.timezone, "attributes": c.attributes,
        })),
        "owner": owner.map(|o| serde_json::json!({ "id": o.id.value, "name": o.name, "email": o.email })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Account;

    #[test]
    fn templates_print_whole_numbers_without_decimals() {
        let state = AccountState {
            account: Account {
                arr: Some(12000.0),
                mrr: Some(1000.5),
                ..Account::default()
            },
            scores: [("utilization".to_string(), 23.4)].into(),
            metrics: [("logins".to_string(), 1400.0), ("ratio".to_string(), 0.25)].into(),
            ..AccountState::default()
        };
        let data = template_data(&state, None, None);
        let mut env = minijinja::Environment::new();
        env.add_template(
            "t",
            "{{ account.scores.utilization }} {{ account.metrics.logins }} {{ account.metrics.ratio }} {{ account.arr }} {{ account.mrr }}",
        )
        .expect("template");
        let text = env
            .get_template("t")
            .and_then(|t| t.render(&data))
            .expect("render");
        assert_eq!(text, "23 1400 0.25 12000 1000.5");
    }
}
