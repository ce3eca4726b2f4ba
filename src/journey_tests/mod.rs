//! Journey tests: small timelines that run through the engine with the project's own
//! definitions and check what a CS ops person cares about.
//!
//! Test files live in `journey-tests/` beside `journeys/` (a folder of its own, so a
//! project kept in a Rust or Node repository never mixes them with the code's `tests/`).
//! Each file holds a list of tests; a test names a start time, gives its customers inline
//! (accounts, contacts, metric values and events, with the columns `touchline import`
//! reads), runs the engine from `start` for `run_for` (default 14 days) with a pass every
//! `every` (default 1h), and expects things:
//!
//! ```yaml
//! tests:
//!   - name: a new safe-driving fleet is welcomed in its morning
//!     start: 2026-11-02 12:00
//!     accounts:
//!       - { id: acme, name: Acme Fleet, arr: 6000, goals: safe_driving, timezone: America/Chicago }
//!     contacts:
//!       - { id: ann, account_id: acme, email: ann@acme.example, role: admin }
//!     metrics:
//!       - { account_id: acme, at: 2026-11-02, admins_registered: 1, drivers_scored: 0 }
//!     events:
//!       - { account_id: acme, name: account_created, at: 2026-11-02 12:00 }
//!     expect:
//!       - tier: { account: acme, is: tech, at: 2026-11-02 13:00 }
//!       - mail: { to: ann, template: welcome_safe_driving, subject_contains: Welcome, local_hours: "09:00-17:00" }
//!       - no_task: { account: acme }
//! ```
//!
//! Everything runs in an in-memory database with the injected clock; nothing is sent. A
//! file is checked like a definitions file: unknown fields, bad records and references to
//! journeys, steps, templates, CSMs, endpoints or scores the project does not have are
//! reported at `file:line:col` with a did-you-mean.

pub mod check;
pub mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::definitions::values::{DurationSpec, HourRange, Tier, TimeSpec};
use crate::diagnostic::{Diagnostic, SourceMap};
use crate::model::Priority;
use crate::yaml::{self, Spanned};

/// The folder journey tests live in, under the project.
pub const TESTS_DIR: &str = "journey-tests";

/// A journey test file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The tests in this file.
    pub tests: Vec<Spanned<TestCase>>,
}

/// A record as written: column name → value (the columns `touchline import` reads).
pub type Record = Spanned<BTreeMap<String, Spanned<serde_json::Value>>>;

/// One test: a timeline and what should come of it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the test shows, in a sentence.
    pub name: Spanned<String>,
    /// The time of the first pass (`2026-11-02 09:00` is UTC; RFC 3339 with an offset works).
    pub start: Spanned<TimeSpec>,
    /// How long the engine runs from `start` (default `14d`).
    #[serde(default)]
    pub run_for: Option<Spanned<DurationSpec>>,
    /// Time between passes (default `1h`); deliveries run at least every hour.
    #[serde(default)]
    pub every: Option<Spanned<DurationSpec>>,
    /// Accounts, present from `start` (columns as in accounts.csv).
    #[serde(default)]
    pub accounts: Vec<Record>,
    /// Contacts, present from `start` (columns as in contacts.csv).
    #[serde(default)]
    pub contacts: Vec<Record>,
    /// Metric values, each arriving at its `at`: `{account_id, name, value, at}` as in
    /// metrics.csv, or several at once: `{account_id, at, licensed_users: 20, logins_30d: 3}`.
    #[serde(default)]
    pub metrics: Vec<Record>,
    /// Events, each arriving at its `at` (fields as in events.jsonl).
    #[serde(default)]
    pub events: Vec<Record>,
    /// What should be true.
    pub expect: Vec<Spanned<Expectation>>,
}

/// One thing a test expects.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    /// The account's tier at a time (default: the end).
    Tier(TierExpectation),
    /// One of the account's scores at a time (default: the end).
    Score(ScoreExpectation),
    /// The account (or contact) entered the journey by a time; with `step`, it is at that step then.
    Enrolled(EnrollmentExpectation),
    /// The account (or contact) never entered the journey by a time.
    NotEnrolled(EnrollmentExpectation),
    /// The account (or contact) reached the journey's goal by a time.
    GoalReached(EnrollmentExpectation),
    /// A mail was sent (to a contact, from a template, with a subject, at a time).
    Mail(MailExpectation),
    /// No mail was sent or is waiting to be (for those that match).
    NoMail(MailExpectation),
    /// A CSM task was created.
    Task(TaskExpectation),
    /// No CSM task was created (for those that match).
    NoTask(TaskExpectation),
    /// A webhook was delivered.
    Webhook(WebhookExpectation),
    /// No webhook was delivered or is waiting to be (for those that match).
    NoWebhook(WebhookExpectation),
}

/// `tier: { account, is, at }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TierExpectation {
    /// The account (may be left out when the test has one account).
    #[serde(default)]
    pub account: Option<Spanned<String>>,
    /// The tier expected.
    pub is: Spanned<Tier>,
    /// When (default: the end of the test).
    #[serde(default)]
    pub at: Option<Spanned<TimeSpec>>,
}

/// `score: { account, name, equals | at_least | at_most | unknown, at }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreExpectation {
    /// The account (may be left out when the test has one account).
    #[serde(default)]
    pub account: Option<Spanned<String>>,
    /// The score's name in touchline.yaml.
    pub name: Spanned<String>,
    /// The value expected (within 0.01).
    #[serde(default)]
    pub equals: Option<f64>,
    /// The least value expected.
    #[serde(default)]
    pub at_least: Option<f64>,
    /// The greatest value expected.
    #[serde(default)]
    pub at_most: Option<f64>,
    /// `true`: the score is expected to be unknown (its formula cannot be computed).
    #[serde(default)]
    pub unknown: Option<bool>,
    /// When (default: the end of the test).
    #[serde(default)]
    pub at: Option<Spanned<TimeSpec>>,
}

/// `enrolled` / `not_enrolled` / `goal_reached: { journey, account, contact, step, at }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentExpectation {
    /// The journey.
    pub journey: Spanned<String>,
    /// The account (may be left out when the test has one account).
    #[serde(default)]
    pub account: Option<Spanned<String>>,
    /// The contact, for journeys whose audience is contacts (default: any of the account's).
    #[serde(default)]
    pub contact: Option<Spanned<String>>,
    /// The step it is at (`enrolled` only).
    #[serde(default)]
    pub step: Option<Spanned<String>>,
    /// When (default: the end of the test).
    #[serde(default)]
    pub at: Option<Spanned<TimeSpec>>,
}

/// `mail` / `no_mail: { to, template, journey, step, subject_contains, sent_after,
/// sent_before, local_hours, count }`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MailExpectation {
    /// The recipient: a contact id, or an address.
    #[serde(default)]
    pub to: Option<Spanned<String>>,
    /// The template it was rendered from.
    #[serde(default)]
    pub template: Option<Spanned<String>>,
    /// The journey that sent it.
    #[serde(default)]
    pub journey: Option<Spanned<String>>,
    /// The step that sent it.
    #[serde(default)]
    pub step: Option<Spanned<String>>,
    /// Text the subject contains.
    #[serde(default)]
    pub subject_contains: Option<String>,
    /// Sent at or after this time.
    #[serde(default)]
    pub sent_after: Option<Spanned<TimeSpec>>,
    /// Sent before this time.
    #[serde(default)]
    pub sent_before: Option<Spanned<TimeSpec>>,
    /// Sent between these local hours in the recipient's time zone, e.g. `09:00-17:00`.
    #[serde(default)]
    pub local_hours: Option<Spanned<HourRange>>,
    /// Exactly this many such mails (default: at least one).
    #[serde(default)]
    pub count: Option<u32>,
}

/// `task` / `no_task: { csm, account, journey, step, title_contains, priority, count }`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskExpectation {
    /// The CSM it is assigned to.
    #[serde(default)]
    pub csm: Option<Spanned<String>>,
    /// The account it is about.
    #[serde(default)]
    pub account: Option<Spanned<String>>,
    /// The journey that made it.
    #[serde(default)]
    pub journey: Option<Spanned<String>>,
    /// The step that made it.
    #[serde(default)]
    pub step: Option<Spanned<String>>,
    /// Text the title contains.
    #[serde(default)]
    pub title_contains: Option<String>,
    /// Its priority.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Exactly this many such tasks (default: at least one).
    #[serde(default)]
    pub count: Option<u32>,
}

/// `webhook` / `no_webhook: { endpoint, account, journey, step, body, count }`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookExpectation {
    /// The endpoint's name in touchline.yaml.
    #[serde(default)]
    pub endpoint: Option<Spanned<String>>,
    /// The account it is about.
    #[serde(default)]
    pub account: Option<Spanned<String>>,
    /// The journey that made it.
    #[serde(default)]
    pub journey: Option<Spanned<String>>,
    /// The step that made it.
    #[serde(default)]
    pub step: Option<Spanned<String>>,
    /// Fields the JSON body has, with these values (others may be there too).
    #[serde(default)]
    pub body: BTreeMap<String, serde_json::Value>,
    /// Exactly this many such webhooks (default: at least one).
    #[serde(default)]
    pub count: Option<u32>,
}

/// A test file, read and parsed.
#[derive(Debug)]
pub struct LoadedFile {
    /// As shown to the user.
    pub path: PathBuf,
    /// Its tests (none if it did not parse).
    pub tests: Vec<Spanned<TestCase>>,
}

/// Test files found at `path` (a file, or a folder searched for `*.yaml` / `*.yml`),
/// sorted; `display_root` shortens printed paths.
pub fn find_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| {
        format!(
            "cannot read {}: {e}; journey tests live in {TESTS_DIR}/ beside journeys/",
            path.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and parses test files; every problem becomes a diagnostic, and the text of each
/// file is kept to quote lines in messages.
pub fn load(files: &[(PathBuf, PathBuf)]) -> (Vec<LoadedFile>, Vec<Diagnostic>, SourceMap) {
    let mut loaded = Vec::new();
    let mut diagnostics = Vec::new();
    let mut sources = SourceMap::default();
    for (path, shown) in files {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                diagnostics.push(Diagnostic::error(
                    shown,
                    None,
                    format!("cannot read file: {error}"),
                ));
                continue;
            }
        };
        sources.insert(shown, text.clone());
        let (file, errors) = yaml::from_str::<TestFile>(&text);
        let ok = errors.is_empty();
        for error in errors {
            diagnostics.push(
                Diagnostic::error(shown, error.location, error.message).with_help(error.help),
            );
        }
        loaded.push(LoadedFile {
            path: shown.clone(),
            tests: file.filter(|_| ok).map(|f| f.tests).unwrap_or_default(),
        });
    }
    (loaded, diagnostics, sources)
}
