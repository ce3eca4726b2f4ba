//! The data rules and templates see: an account (or contact) as a Rhai map, or as JSON.
//!
//! Missing text facts are empty strings and missing numbers are 0, so `account.arr >= 1000`
//! works for an account without ARR; missing dates are unit, which `days_since` reads as
//! "infinitely long ago".

use chrono::{DateTime, Utc};
use rhai::{Array, Dynamic, Map};

use crate::definitions::config::Csm;
use crate::model::{ACCOUNT_FACTS, AccountState, Attributes, CONTACT_FACTS, Contact, Fact};
use crate::rules::{Bindings, Timestamp};
use crate::store::RuleFields;

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

/// A fact as rules see it: unknown text is empty and unknown numbers 0 (so
/// `account.arr >= 1000` works for an account without ARR), unknown times are unit.
fn rule_value(fact: Fact<'_>) -> Dynamic {
    match fact {
        Fact::Text(text) => Dynamic::from(text.unwrap_or_default().to_string()),
        Fact::Number(n) => Dynamic::from_float(n.unwrap_or(0.0)),
        Fact::Time(t) => time(t),
        Fact::List(items) => {
            let items: Array = items.iter().map(|i| Dynamic::from(i.clone())).collect();
            Dynamic::from_array(items)
        }
        Fact::Flag(flag) => Dynamic::from_bool(flag),
    }
}

/// A fact as templates see it: unknown facts are null (and left out), dates are dates,
/// whole numbers have no decimals.
fn template_value(fact: Fact<'_>) -> serde_json::Value {
    match fact {
        Fact::Text(text) => serde_json::json!(text),
        Fact::Number(n) => n.map_or(serde_json::Value::Null, number),
        Fact::Time(t) => serde_json::json!(t.map(|t| t.format("%Y-%m-%d").to_string())),
        Fact::List(items) => serde_json::json!(items),
        Fact::Flag(flag) => serde_json::json!(flag),
    }
}

/// The account as rules see it. `scores` holds the declared scores that are known: reading
/// one that is unknown (or not computed yet) is an error, never a 0.
pub fn account_map(state: &AccountState, score_names: &[&str]) -> Dynamic {
    account_map_with(state, score_names, None)
}

/// The account as rules see it, holding only the facts and attributes in `fields` when
/// given (rules that read nothing else see the same values; metrics are the state's own).
fn account_map_with(
    state: &AccountState,
    score_names: &[&str],
    fields: Option<&RuleFields>,
) -> Dynamic {
    let a = &state.account;
    let fact = |name: &str| Some((name.into(), rule_value(a.fact(name)?)));
    let mut map: Map = match fields {
        Some(fields) => fields.facts.iter().filter_map(|name| fact(name)).collect(),
        None => ACCOUNT_FACTS.iter().filter_map(|name| fact(name)).collect(),
    };
    map.insert("tier".into(), text(&state.tier));
    let scores: Map = score_names
        .iter()
        .filter_map(|name| {
            Some((
                (*name).into(),
                Dynamic::from_float(*state.scores.get(*name)?),
            ))
        })
        .collect();
    map.insert("scores".into(), Dynamic::from_map(scores));
    map.insert(
        "metrics".into(),
        numbers(state.metrics.iter().map(|(k, v)| (k, *v))),
    );
    if fields.is_none_or(|f| f.attributes) {
        map.insert("attributes".into(), attributes(&a.attributes));
    }
    Dynamic::from_map(map)
}

/// What rules about this account see at `now`: the account map, with its unknown scores
/// marked so a rule that reads one says why it failed.
pub fn bindings(state: &AccountState, score_names: &[&str], now: DateTime<Utc>) -> Bindings {
    bindings_with(state, score_names, now, None)
}

/// [`bindings`] holding only the facts and attributes in `fields` (`None`: all of them), for
/// rules that read only those.
pub fn bindings_with(
    state: &AccountState,
    score_names: &[&str],
    now: DateTime<Utc>,
    fields: Option<&RuleFields>,
) -> Bindings {
    let mut bindings = Bindings::new(account_map_with(state, score_names, fields), now);
    for (name, why) in &state.unknown_scores {
        bindings.set_unknown_score(name, why);
    }
    bindings
}

/// Bindings for the next account of a batch read for its rules alone (`fields`), reusing the
/// ones the previous account had: the account map keeps its keys and only the values are
/// replaced, so an account costs no map building. Rules see exactly what [`bindings_with`]
/// would give them.
pub fn rebind<'a>(
    slot: &'a mut Option<Bindings>,
    state: &AccountState,
    score_names: &[&str],
    now: DateTime<Utc>,
    fields: &RuleFields,
) -> &'a mut Bindings {
    let reused = slot.take().and_then(|mut bindings| {
        if !refill(&mut bindings, state, score_names, fields) {
            return None;
        }
        for (name, why) in &state.unknown_scores {
            bindings.set_unknown_score(name, why);
        }
        Some(bindings)
    });
    slot.insert(reused.unwrap_or_else(|| bindings_with(state, score_names, now, Some(fields))))
}

/// Replaces the account values of `bindings` by `state`'s; false when the map is not the
/// shape [`account_map_with`] builds (the caller builds it anew).
fn refill(
    bindings: &mut Bindings,
    state: &AccountState,
    score_names: &[&str],
    fields: &RuleFields,
) -> bool {
    bindings.clear_account_marks();
    let Some(mut map) = bindings.account_mut() else {
        return false;
    };
    let a = &state.account;
    for name in &fields.facts {
        if let (Some(fact), Some(slot)) = (a.fact(name), map.get_mut(name.as_str())) {
            *slot = rule_value(fact);
        }
    }
    crate::rules::put_text(&mut map, "tier", state.tier.as_deref().unwrap_or_default());
    if fields.attributes {
        map.insert("attributes".into(), attributes(&a.attributes));
    }
    let scores = score_names
        .iter()
        .map(|name| (*name, state.scores.get(*name).copied()));
    if !refill_numbers(&mut map, "scores", scores) {
        return false;
    }
    match &fields.metrics {
        // The named metrics: the same keys for every account, present or not.
        Some(names) => {
            let metrics = names
                .iter()
                .map(|name| (name.as_str(), state.metrics.get(name).copied()));
            refill_numbers(&mut map, "metrics", metrics)
        }
        None => {
            map.insert(
                "metrics".into(),
                numbers(state.metrics.iter().map(|(k, v)| (k, *v))),
            );
            true
        }
    }
}

/// Sets each of `values` in the inner map `key`, or removes it where it is unknown; false
/// when `key` is not a map.
fn refill_numbers<'a>(
    map: &mut Map,
    key: &str,
    values: impl Iterator<Item = (&'a str, Option<f64>)>,
) -> bool {
    let Some(mut inner) = map.get_mut(key).and_then(|m| m.write_lock::<Map>()) else {
        return false;
    };
    for (name, value) in values {
        match value {
            Some(value) => crate::rules::put(&mut inner, name, Dynamic::from_float(value)),
            None => {
                inner.remove(name);
            }
        }
    }
    true
}

/// A contact as rules see it.
pub fn contact_map(c: &Contact) -> Dynamic {
    let mut map: Map = CONTACT_FACTS
        .iter()
        .filter_map(|name| Some(((*name).into(), rule_value(c.fact(name)?))))
        .collect();
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
    let mut account: serde_json::Map<String, serde_json::Value> = ACCOUNT_FACTS
        .iter()
        .filter_map(|name| Some(((*name).to_string(), template_value(a.fact(name)?))))
        .collect();
    account.insert("tier".into(), serde_json::json!(state.tier));
    let scores = state
        .scores
        .iter()
        .map(|(k, v)| (k.clone(), number(v.round())));
    account.insert("scores".into(), scores.collect());
    let metrics = state.metrics.iter().map(|(k, v)| (k.clone(), number(*v)));
    account.insert("metrics".into(), metrics.collect());
    account.insert("attributes".into(), serde_json::json!(a.attributes));
    let contact = contact.map(|c| {
        let mut map: serde_json::Map<String, serde_json::Value> = CONTACT_FACTS
            .iter()
            .filter_map(|name| Some(((*name).to_string(), template_value(c.fact(name)?))))
            .collect();
        map.insert("attributes".into(), serde_json::json!(c.attributes));
        map
    });
    serde_json::json!({
        "account": account,
        "contact": contact,
        "owner": owner.map(|o| serde_json::json!({ "id": o.id.value, "name": o.name, "email": o.email })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Account;
    use crate::store::RuleFields;

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

    /// The account map as rules see it, printed (maps print in key order).
    fn shown(bindings: &mut Bindings) -> String {
        format!("{:?}", *bindings.account_mut().expect("account map"))
    }

    #[test]
    fn reused_bindings_show_each_account_as_fresh_ones_do() {
        let fields = RuleFields {
            facts: ["arr".to_string(), "plan".to_string()].into(),
            metrics: Some(["logins".to_string(), "seats".to_string()].into()),
            attributes: true,
        };
        let first = AccountState {
            account: Account {
                id: "a".into(),
                arr: Some(12000.0),
                plan: Some("pro".into()),
                attributes: [("region".to_string(), serde_json::json!("emea"))]
                    .into_iter()
                    .collect(),
                ..Account::default()
            },
            scores: [("usage".to_string(), 40.0), ("fit".to_string(), 7.5)].into(),
            metrics: [("logins".to_string(), 14.0), ("seats".to_string(), 3.0)].into(),
            tier: Some("low".into()),
            ..AccountState::default()
        };
        // Less known than the first: no plan, a metric missing, a score unknown.
        let second = AccountState {
            account: Account {
                id: "b".into(),
                arr: Some(900.0),
                ..Account::default()
            },
            scores: [("fit".to_string(), 1.0)].into(),
            unknown_scores: [("usage".to_string(), "no logins".to_string())].into(),
            metrics: [("seats".to_string(), 9.0)].into(),
            ..AccountState::default()
        };
        let now = Utc::now();
        let names = ["usage", "fit"];
        let mut slot = None;
        for state in [&first, &second, &first] {
            let reused = shown(rebind(&mut slot, state, &names, now, &fields));
            let mut fresh = bindings_with(state, &names, now, Some(&fields));
            assert_eq!(reused, shown(&mut fresh), "account {}", state.account.id);
        }
    }
}
