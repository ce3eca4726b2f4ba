//! Customer data: accounts, contacts, metric values and events, as touchline stores them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Free-form attributes (unknown import columns land here).
pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// A customer company.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Account {
    /// External id (from the CRM or billing system).
    pub id: String,
    /// Company name.
    pub name: String,
    /// Plan name.
    pub plan: Option<String>,
    /// Annual recurring revenue.
    pub arr: Option<f64>,
    /// Monthly recurring revenue.
    pub mrr: Option<f64>,
    /// Industry.
    pub industry: Option<String>,
    /// Owner CSM id.
    pub owner: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Adoption goals.
    pub goals: Vec<String>,
    /// `active`, `churned`, … (default `active`).
    pub status: String,
    /// Contract start.
    pub contract_start: Option<DateTime<Utc>>,
    /// Contract end (renewal date).
    pub contract_end: Option<DateTime<Utc>>,
    /// When the account became a customer.
    pub created_at: Option<DateTime<Utc>>,
    /// Most recent login by anyone at the account.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Everything else.
    pub attributes: Attributes,
}

/// A person at an account.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Contact {
    /// External id.
    pub id: String,
    /// The account's id.
    pub account_id: String,
    /// Email address.
    pub email: String,
    /// Full name.
    pub name: Option<String>,
    /// First name, for greetings.
    pub first_name: Option<String>,
    /// Role: `decision_maker`, `admin`, `end_user`, …
    pub role: Option<String>,
    /// Locale, e.g. `en-US`.
    pub locale: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Whether the contact receives mail.
    pub subscribed: bool,
    /// When the contact was added.
    pub created_at: Option<DateTime<Utc>>,
    /// Most recent login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Everything else.
    pub attributes: Attributes,
}

/// One value of a usage metric at a point in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// The account's id.
    pub account_id: String,
    /// Metric name, e.g. `logins_30d`.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// When it was measured.
    pub at: DateTime<Utc>,
}

/// A usage or lifecycle event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Idempotency key: the sender's event id, or one derived from the content.
    pub key: String,
    /// The account's id.
    pub account_id: String,
    /// The contact's id, if a person did it.
    pub contact_id: Option<String>,
    /// Event name, e.g. `account_created`, `login`.
    pub name: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Anything else the sender attached.
    pub properties: Attributes,
}

impl Event {
    /// Event names that move `last_login_at`.
    pub fn is_login(&self) -> bool {
        self.name == "login"
    }
}

/// An account with everything the engine knows about it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountState {
    /// Facts and attributes.
    pub account: Account,
    /// Latest value of each metric.
    pub metrics: BTreeMap<String, f64>,
    /// Current scores that are known.
    pub scores: BTreeMap<String, f64>,
    /// Scores whose formula failed for this account, with why: unknown, never a number.
    pub unknown_scores: BTreeMap<String, String>,
    /// Current tier.
    pub tier: Option<String>,
    /// The rule that decided the current tier, as stored with it.
    pub tier_rule: Option<String>,
    /// Bumped on every change to the account's inputs.
    pub data_version: i64,
    /// The `data_version` last evaluated: the account is waiting for evaluation while it is
    /// behind `data_version`.
    pub evaluated_version: i64,
    /// When the account is due to be evaluated again while nothing changes (ms), if ever.
    pub recheck_at: Option<i64>,
    /// When its latest metric value is dated (ms); later than a pass means the pass must
    /// read the values as they were at its time.
    pub metrics_latest_at: i64,
    /// When data dated after the pass that read this state comes due (ms), if any.
    pub next_change_at: Option<i64>,
    /// The account's contacts.
    pub contacts: Vec<Contact>,
}

/// One fact about an account or contact, as rules and templates see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact<'a> {
    /// Text (`None`: not known).
    Text(Option<&'a str>),
    /// A number (`None`: not known).
    Number(Option<f64>),
    /// A time (`None`: not known).
    Time(Option<DateTime<Utc>>),
    /// A list of names.
    List(&'a [String]),
    /// Yes or no.
    Flag(bool),
}

/// The facts of an account, by name: the one list that imports read (other columns become
/// attributes), and that rules and templates see under `account`.
pub const ACCOUNT_FACTS: &[&str] = &[
    "id",
    "name",
    "plan",
    "arr",
    "mrr",
    "industry",
    "owner",
    "timezone",
    "goals",
    "status",
    "contract_start",
    "contract_end",
    "created_at",
    "last_login_at",
];

/// What rules and templates see of an account besides its facts.
pub const ACCOUNT_DERIVED: &[&str] = &["tier", "scores", "metrics", "attributes"];

/// The facts of a contact, by name (see [`ACCOUNT_FACTS`]).
pub const CONTACT_FACTS: &[&str] = &[
    "id",
    "account_id",
    "email",
    "name",
    "first_name",
    "role",
    "locale",
    "timezone",
    "subscribed",
    "created_at",
    "last_login_at",
];

/// What rules and templates see of a contact besides its facts.
pub const CONTACT_DERIVED: &[&str] = &["attributes"];

/// Every name rules and templates see under `account`.
pub fn account_fields() -> impl Iterator<Item = &'static str> + Clone {
    ACCOUNT_FACTS.iter().chain(ACCOUNT_DERIVED).copied()
}

/// Every name rules and templates see under `contact`.
pub fn contact_fields() -> impl Iterator<Item = &'static str> + Clone {
    CONTACT_FACTS.iter().chain(CONTACT_DERIVED).copied()
}

impl Account {
    /// The fact called `name` (one of [`ACCOUNT_FACTS`]).
    pub fn fact(&self, name: &str) -> Option<Fact<'_>> {
        Some(match name {
            "id" => Fact::Text(Some(&self.id)),
            "name" => Fact::Text(Some(&self.name)),
            "plan" => Fact::Text(self.plan.as_deref()),
            "arr" => Fact::Number(self.arr),
            "mrr" => Fact::Number(self.mrr),
            "industry" => Fact::Text(self.industry.as_deref()),
            "owner" => Fact::Text(self.owner.as_deref()),
            "timezone" => Fact::Text(self.timezone.as_deref()),
            "goals" => Fact::List(&self.goals),
            "status" => Fact::Text(Some(&self.status)),
            "contract_start" => Fact::Time(self.contract_start),
            "contract_end" => Fact::Time(self.contract_end),
            "created_at" => Fact::Time(self.created_at),
            "last_login_at" => Fact::Time(self.last_login_at),
            _ => return None,
        })
    }
}

impl Contact {
    /// The fact called `name` (one of [`CONTACT_FACTS`]).
    pub fn fact(&self, name: &str) -> Option<Fact<'_>> {
        Some(match name {
            "id" => Fact::Text(Some(&self.id)),
            "account_id" => Fact::Text(Some(&self.account_id)),
            "email" => Fact::Text(Some(&self.email)),
            "name" => Fact::Text(self.name.as_deref()),
            "first_name" => Fact::Text(self.first_name.as_deref()),
            "role" => Fact::Text(self.role.as_deref()),
            "locale" => Fact::Text(self.locale.as_deref()),
            "timezone" => Fact::Text(self.timezone.as_deref()),
            "subscribed" => Fact::Flag(self.subscribed),
            "created_at" => Fact::Time(self.created_at),
            "last_login_at" => Fact::Time(self.last_login_at),
            _ => return None,
        })
    }
}

/// A task's priority.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// When there is time.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Soon.
    High,
    /// First.
    Urgent,
}

impl Priority {
    /// The name as written in journeys and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_fact_is_there_and_nothing_else() {
        let account = Account::default();
        assert!(
            ACCOUNT_FACTS
                .iter()
                .all(|name| account.fact(name).is_some())
        );
        assert!(account.fact("arrr").is_none());
        let contact = Contact::default();
        assert!(
            CONTACT_FACTS
                .iter()
                .all(|name| contact.fact(name).is_some())
        );
        assert!(contact.fact("tier").is_none());
    }
}
