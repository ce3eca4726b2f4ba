//! `touchline.yaml`: engine settings, tier rules, score formulas, adoption goals and CSMs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::values::{DurationSpec, SendWindow, Tier, TimeZone};
use crate::yaml::Spanned;

/// The contents of `touchline.yaml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "touchline.yaml")]
pub struct Config {
    /// Database URL: `sqlite://FILE` (the default, `sqlite://touchline.db`) or
    /// `postgres://…` when several engine processes share the work.
    #[serde(default)]
    pub database: Option<String>,
    /// Time zone used when neither the contact nor the account has one.
    pub timezone: Spanned<TimeZone>,
    /// The adoption goals customers buy the product for, by id.
    pub adoption_goals: BTreeMap<String, AdoptionGoal>,
    /// Contact roles journeys may address mail to.
    #[serde(default = "default_roles")]
    pub contact_roles: Vec<String>,
    /// Health scores (0–100) by name, each from an inline formula or a script in `scripts/`.
    pub scores: BTreeMap<String, ScoreFormula>,
    /// Tier rules, in order; the first whose condition holds decides the account's tier.
    pub tiers: Vec<TierRule>,
    /// Customer success managers.
    #[serde(default)]
    pub csms: Vec<Csm>,
    /// Named groups of CSMs that tasks can be assigned across.
    #[serde(default)]
    pub pools: BTreeMap<String, Vec<Spanned<String>>>,
    /// When mail may go out, in the recipient's time zone (journeys may narrow it).
    #[serde(default)]
    pub send_window: Option<SendWindow>,
    /// Most mails one contact receives across all journeys in a rolling period.
    #[serde(default)]
    pub frequency_cap: Option<FrequencyCap>,
    /// Mail settings.
    #[serde(default)]
    pub email: EmailSettings,
    /// Webhook endpoints by name.
    #[serde(default)]
    pub webhooks: BTreeMap<String, WebhookEndpoint>,
    /// The HTTP API.
    #[serde(default)]
    pub http: HttpSettings,
    /// The outbox worker.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// The blast-radius guard (journeys may override it).
    #[serde(default)]
    pub guard: GuardSettings,
    /// How often an account is evaluated again while nothing about it changes, when rules
    /// read the time (`now`, `days_since`, `days_until`): the longest a time-based condition
    /// lags (default 1h).
    #[serde(default)]
    pub recheck_interval: Option<Spanned<DurationSpec>>,
    /// What `touchline report` counts as churn and how it bands scores.
    #[serde(default)]
    pub report: ReportSettings,
}

/// Settings of `touchline report`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// An event that marks an account as churned, at the event's time (besides the
    /// account's `status` turning `churned`, dated by its contract end).
    #[serde(default)]
    pub churn_event: Option<String>,
    /// Upper edges of the score bands churn is counted in, ascending, e.g.
    /// `[20, 40, 60, 80]` (default: deciles of the scores seen).
    #[serde(default)]
    pub score_bands: Option<Vec<f64>>,
}

/// The blast-radius guard: when one pass enrolls far more of a journey than usual, that
/// journey's new outbox records are held for a person to release or discard.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardSettings {
    /// Hold when one pass enrolls more than this share of all accounts, in percent
    /// (default 10).
    #[serde(default)]
    pub max_share_percent: Option<f64>,
    /// ... but never for fewer new enrollments than this (default 25).
    #[serde(default)]
    pub min_enrollments: Option<u64>,
    /// Hold every journey that wrote records in a pass whose rule errors exceed this share of
    /// the accounts it evaluated, in percent (default 10; at least `min_enrollments` errors).
    #[serde(default)]
    pub max_rule_errors_percent: Option<f64>,
    /// Turn the guard off (for this journey, or everywhere).
    #[serde(default)]
    pub off: bool,
}

impl GuardSettings {
    /// The default share, in percent, of accounts (or of evaluated accounts, for rule errors).
    pub const SHARE_PERCENT: f64 = 10.0;
    /// The default floor below which the guard never holds.
    pub const MIN_ENROLLMENTS: u64 = 25;

    /// The floor these settings give.
    pub fn min_enrollments(&self) -> u64 {
        self.min_enrollments.unwrap_or(Self::MIN_ENROLLMENTS)
    }

    /// The largest number of new enrollments one pass may make among `accounts` accounts
    /// before the journey is held (`None`: never held). `journey` overrides `self`.
    pub fn limit(&self, journey: Option<&GuardSettings>, accounts: u64) -> Option<u64> {
        if self.off || journey.is_some_and(|j| j.off) {
            return None;
        }
        let share = journey
            .and_then(|j| j.max_share_percent)
            .or(self.max_share_percent);
        let floor = journey.and_then(|j| j.min_enrollments);
        Some(share_of(
            accounts,
            share,
            floor.unwrap_or(self.min_enrollments()),
        ))
    }

    /// The most rule errors one pass that evaluated `evaluated` accounts may have before
    /// every journey that wrote records in it is held (`None`: never).
    pub fn rule_error_limit(&self, evaluated: u64) -> Option<u64> {
        (!self.off).then(|| {
            share_of(
                evaluated,
                self.max_rule_errors_percent,
                self.min_enrollments(),
            )
        })
    }
}

/// `percent` (default [`GuardSettings::SHARE_PERCENT`]) of `count`, but at least `floor`.
fn share_of(count: u64, percent: Option<f64>, floor: u64) -> u64 {
    let percent = percent.unwrap_or(GuardSettings::SHARE_PERCENT);
    ((count as f64 * percent / 100.0).floor() as u64).max(floor)
}

/// Outbox worker settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Deliveries in flight at once per engine process (default 16).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// How long a worker holds a record it is delivering before another engine process may
    /// take it over (default 5m). Keep it well above the slowest SMTP or webhook call.
    #[serde(default)]
    pub lease: Option<Spanned<DurationSpec>>,
}

impl Config {
    /// The CSM with this id.
    pub fn csm(&self, id: &str) -> Option<&Csm> {
        self.csms.iter().find(|c| c.id.value == id)
    }

    /// Ids of every CSM.
    pub fn csm_ids(&self) -> Vec<String> {
        self.csms.iter().map(|c| c.id.value.clone()).collect()
    }
}

/// Why `id` names no CSM, with a did-you-mean from `ids`.
pub fn no_such_csm(id: &str, ids: &[String]) -> String {
    let hint = crate::suggest::hint(id, ids.iter().map(String::as_str))
        .map_or(String::new(), |h| format!(" ({h})"));
    format!("no CSM `{id}` in touchline.yaml{hint}")
}

fn default_roles() -> Vec<String> {
    ["decision_maker", "admin", "end_user", "champion"]
        .map(String::from)
        .to_vec()
}

/// An adoption goal.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptionGoal {
    /// Human name.
    pub name: String,
    /// What success looks like for customers with this goal.
    #[serde(default)]
    pub description: Option<String>,
}

/// A score formula: exactly one of `formula` (an inline Rhai expression) or `script` (a
/// file under `scripts/`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreFormula {
    /// Inline Rhai expression giving 0–100.
    #[serde(default)]
    pub formula: Option<Spanned<String>>,
    /// Path of a Rhai script, relative to the project root (e.g. `scripts/utilization.rhai`).
    #[serde(default)]
    pub script: Option<Spanned<String>>,
    /// What the score measures.
    #[serde(default)]
    pub description: Option<String>,
    /// The value to use when the formula fails for an account (a metric not imported yet).
    /// Without it the score is *unknown* for that account: never a number, and rules that
    /// read it decide nothing.
    #[serde(default)]
    pub default: Option<f64>,
}

/// One tier rule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    /// The tier this rule assigns.
    pub tier: Spanned<Tier>,
    /// Rhai condition; omit it for a catch-all final rule.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// Why the rule exists, shown by `touchline explain`.
    #[serde(default)]
    pub description: Option<String>,
}

/// A customer success manager.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Csm {
    /// Short id used in pools and as account owner.
    pub id: Spanned<String>,
    /// Full name.
    pub name: String,
    /// Where task notices go.
    pub email: String,
    /// Most open tasks this CSM should hold.
    #[serde(default)]
    pub capacity: Option<u32>,
    /// The CSM's time zone, for working-day due dates.
    #[serde(default)]
    pub timezone: Option<Spanned<TimeZone>>,
    /// Webhook endpoint (e.g. Slack) for task notices.
    #[serde(default)]
    pub notify_webhook: Option<Spanned<String>>,
    /// Mail a notice of each new task to `email` (default true).
    #[serde(default = "yes")]
    pub notify_email: bool,
}

fn yes() -> bool {
    true
}

/// Frequency cap across all journeys.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    /// Most mails per contact in the period.
    pub max_emails: u32,
    /// Rolling period, e.g. `7d`.
    pub per: Spanned<DurationSpec>,
    /// What happens to a mail over the cap.
    #[serde(default)]
    pub over_cap: OverCap,
}

/// What happens to a mail over the frequency cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverCap {
    /// Hold it until the cap allows it.
    #[default]
    Wait,
    /// Skip it (recorded on the enrollment).
    Skip,
}

/// Mail settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Sender, e.g. `Acme Success <success@acme.example>`.
    #[serde(default)]
    pub from: Option<String>,
    /// Reply-To address.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// SMTP server; without one, mails are written as `.eml` files to `outbox_dir`.
    #[serde(default)]
    pub smtp: Option<Smtp>,
    /// Folder for `.eml` files when no SMTP server is set (default `outbox`).
    #[serde(default)]
    pub outbox_dir: Option<String>,
    /// Folder of mail templates (default `templates`).
    #[serde(default)]
    pub templates: Option<String>,
    /// Name of the environment variable holding the key that signs unsubscribe links
    /// (default: a random key touchline keeps in its database).
    #[serde(default)]
    pub unsubscribe_secret_env: Option<String>,
}

/// An SMTP server.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// Host name.
    pub host: String,
    /// Port (default 587).
    #[serde(default)]
    pub port: Option<u16>,
    /// Login name.
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Transport security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// A PEM file of CA certificates to trust besides the system's (a relay with a private
    /// CA), relative to the project folder.
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Upgrade with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain text (only for a local relay).
    None,
}

/// A webhook endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// URL to POST to.
    pub url: String,
    /// Names of environment variables holding `whsec_` signing secrets (several during rotation).
    #[serde(default)]
    pub secret_env: Vec<String>,
    /// Request timeout (default 15s).
    #[serde(default)]
    pub timeout: Option<Spanned<DurationSpec>>,
    /// Allow this endpoint to resolve to loopback or private addresses.
    #[serde(default)]
    pub allow_private: bool,
    /// Extra request headers, each read from an environment variable: header name →
    /// variable name (e.g. `Authorization: CRM_AUTHORIZATION` for a CRM's API token).
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
}

/// HTTP API settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default)]
    pub listen: Option<String>,
    /// Name of the environment variable holding the API bearer token
    /// (default `TOUCHLINE_API_TOKEN`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Public base URL, used in unsubscribe links.
    #[serde(default)]
    pub public_url: Option<String>,
}
