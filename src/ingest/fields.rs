//! Typed, strict reading of one row's fields, from CSV text or JSON values.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::{
    ACCOUNT_FACTS, Account, Attributes, CONTACT_FACTS, Contact, Event, MetricValue,
};

/// One row: column names and values, in file order.
pub struct Fields {
    values: Vec<(String, Value)>,
}

/// What is wrong with one field.
pub struct Problem {
    pub column: String,
    pub value: String,
    pub problem: String,
}

type Checked<T> = Result<T, Problem>;

fn problem(column: &str, value: &Value, text: &str) -> Problem {
    let value = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    Problem {
        column: column.into(),
        value,
        problem: text.into(),
    }
}

impl Fields {
    pub fn from_csv(headers: &[String], record: &csv::StringRecord) -> Self {
        let values = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| {
                (
                    h.clone(),
                    if v.is_empty() {
                        Value::Null
                    } else {
                        Value::String(v.to_string())
                    },
                )
            })
            .collect();
        Self { values }
    }

    pub fn from_json(object: serde_json::Map<String, Value>) -> Self {
        Self {
            values: object.into_iter().collect(),
        }
    }

    fn get(&self, column: &str) -> &Value {
        self.values
            .iter()
            .find(|(k, _)| k == column)
            .map_or(&Value::Null, |(_, v)| v)
    }

    fn text(&self, column: &str) -> Checked<Option<String>> {
        match self.get(column) {
            Value::Null => Ok(None),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s.trim().to_string())),
            Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(problem(column, other, "is not text")),
        }
    }

    fn required(&self, column: &str) -> Checked<String> {
        self.text(column)?
            .ok_or_else(|| problem(column, &Value::Null, "is required but empty"))
    }

    fn number(&self, column: &str) -> Checked<Option<f64>> {
        match self.get(column) {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| problem(column, self.get(column), "is not a number")),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Some(n)),
                _ => Err(problem(column, self.get(column), "is not a number")),
            },
            other => Err(problem(column, other, "is not a number")),
        }
    }

    fn time(&self, column: &str) -> Checked<Option<DateTime<Utc>>> {
        match self.text(column)? {
            None => Ok(None),
            Some(text) => crate::clock::parse_time(&text).map(Some).map_err(|_| {
                problem(
                    column,
                    self.get(column),
                    "is not a date (write 2026-11-23 or 2026-11-23T09:00:00Z)",
                )
            }),
        }
    }

    fn boolean(&self, column: &str) -> Checked<Option<bool>> {
        match self.get(column) {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(Some(true)),
                "false" | "no" | "0" => Ok(Some(false)),
                _ => Err(problem(column, self.get(column), "is not true or false")),
            },
            other => Err(problem(column, other, "is not true or false")),
        }
    }

    fn timezone(&self, column: &str) -> Checked<Option<String>> {
        match self.text(column)? {
            Some(tz) if tz.parse::<chrono_tz::Tz>().is_err() => Err(problem(
                column,
                self.get(column),
                "is not an IANA time zone (e.g. America/Chicago)",
            )),
            other => Ok(other),
        }
    }

    fn list(&self, column: &str) -> Checked<Vec<String>> {
        match self.get(column) {
            Value::Null => Ok(Vec::new()),
            Value::String(s) => Ok(s
                .split([';', '|'])
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()),
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .ok_or_else(|| problem(column, v, "is not text"))
                })
                .collect(),
            other => Err(problem(column, other, "is not a list")),
        }
    }

    /// Every column not in `known`, as attributes.
    fn rest(&self, known: &[&str]) -> Attributes {
        self.values
            .iter()
            .filter(|(k, v)| !known.contains(&k.as_str()) && !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

pub fn account(f: &Fields) -> Checked<Account> {
    Ok(Account {
        id: f.required("id")?,
        name: f.required("name")?,
        plan: f.text("plan")?,
        arr: f.number("arr")?,
        mrr: f.number("mrr")?,
        industry: f.text("industry")?,
        owner: f.text("owner")?,
        timezone: f.timezone("timezone")?,
        goals: f.list("goals")?,
        status: f.text("status")?.unwrap_or_else(|| "active".into()),
        contract_start: f.time("contract_start")?,
        contract_end: f.time("contract_end")?,
        created_at: f.time("created_at")?,
        last_login_at: f.time("last_login_at")?,
        attributes: f.rest(ACCOUNT_FACTS),
    })
}

pub fn contact(f: &Fields) -> Checked<Contact> {
    let email = f.required("email")?;
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.contains('@')
    });
    if !valid {
        return Err(problem("email", f.get("email"), "is not an email address"));
    }
    Ok(Contact {
        id: f.required("id")?,
        account_id: f.required("account_id")?,
        email,
        name: f.text("name")?,
        first_name: f.text("first_name")?,
        role: f.text("role")?,
        locale: f.text("locale")?,
        timezone: f.timezone("timezone")?,
        subscribed: f.boolean("subscribed")?.unwrap_or(true),
        created_at: f.time("created_at")?,
        last_login_at: f.time("last_login_at")?,
        attributes: f.rest(CONTACT_FACTS),
    })
}

pub fn metric(f: &Fields) -> Checked<MetricValue> {
    Ok(MetricValue {
        account_id: f.required("account_id")?,
        name: f.required("name")?,
        value: f
            .number("value")?
            .ok_or_else(|| problem("value", &Value::Null, "is required but empty"))?,
        at: f
            .time("at")?
            .ok_or_else(|| problem("at", &Value::Null, "is required but empty"))?,
    })
}

/// An event; without `at` it happened when it was received (`received`), as event APIs
/// people know (Segment, Customer.io) take it.
pub fn event(f: &Fields, received: Option<DateTime<Utc>>) -> Checked<Event> {
    let account_id = f.required("account_id")?;
    let contact_id = f.text("contact_id")?;
    let name = f.required("name")?;
    let at = f
        .time("at")?
        .or(received)
        .ok_or_else(|| problem("at", &Value::Null, "is required but empty"))?;
    let mut properties = f.rest(&["id", "account_id", "contact_id", "name", "at", "properties"]);
    if let Value::Object(extra) = f.get("properties") {
        properties.extend(extra.clone());
    }
    // Without an id from the sender, the event's content is its identity.
    let key = match f.text("id")? {
        Some(id) => id,
        None => format!(
            "{account_id}/{}/{name}/{}",
            contact_id.as_deref().unwrap_or(""),
            at.timestamp_millis()
        ),
    };
    Ok(Event {
        key,
        account_id,
        contact_id,
        name,
        at,
        properties,
    })
}
