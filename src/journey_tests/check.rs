//! Turning a test as written into a timeline the engine can run, and checking every name it
//! uses against the project, so a typo is an error at its place rather than a test that
//! can never pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Duration, Utc};

use super::{Expectation, Record, TestCase};
use crate::definitions::Definitions;
use crate::diagnostic::{Diagnostic, Location};
use crate::ingest::{self, Kind};
use crate::store::Import;
use crate::suggest;
use crate::yaml::Spanned;

/// How long a test runs unless it says `run_for`.
pub const DEFAULT_RUN_FOR: Duration = Duration::days(14);
/// Time between passes unless a test says `every`.
pub const DEFAULT_EVERY: Duration = Duration::hours(1);

/// A test ready to run: its times, its data by arrival time, and who is in it.
#[derive(Debug)]
pub struct Timeline {
    /// The first pass.
    pub start: DateTime<Utc>,
    /// The end of the run.
    pub end: DateTime<Utc>,
    /// Time between passes.
    pub every: Duration,
    /// Data by the time it arrives.
    pub arrivals: BTreeMap<DateTime<Utc>, Import>,
    /// Account ids.
    pub accounts: BTreeSet<String>,
    /// Contacts: id → (account id, address, time zone).
    pub contacts: BTreeMap<String, (String, String, Option<String>)>,
    /// Accounts' time zones, where given.
    pub account_zones: BTreeMap<String, String>,
}

/// Builds a test's timeline and checks its expectations' names; every problem is a
/// diagnostic in `path`.
pub fn prepare(
    case: &TestCase,
    definitions: &Definitions,
    path: &Path,
) -> Result<Timeline, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let start = case.start.value.0;
    let end = start
        + case
            .run_for
            .as_ref()
            .map_or(DEFAULT_RUN_FOR, |d| d.value.as_chrono());
    let every = case
        .every
        .as_ref()
        .map_or(DEFAULT_EVERY, |d| d.value.as_chrono());
    let mut timeline = Timeline {
        start,
        end,
        every,
        arrivals: BTreeMap::new(),
        accounts: BTreeSet::new(),
        contacts: BTreeMap::new(),
        account_zones: BTreeMap::new(),
    };
    // Names come from the records as written, so a record with a bad value elsewhere
    // does not also make every mention of it an error.
    let id = |r: &Record| {
        r.value
            .get("id")
            .and_then(|v| v.value.as_str().map(str::to_string))
    };
    timeline
        .accounts
        .extend(case.accounts.iter().filter_map(id));
    for contact in &case.contacts {
        if let Some(contact_id) = id(contact) {
            timeline.contacts.entry(contact_id).or_default();
        }
    }
    let kinds = [
        (Kind::Accounts, &case.accounts),
        (Kind::Contacts, &case.contacts),
        (Kind::Metrics, &case.metrics),
        (Kind::Events, &case.events),
    ];
    for (kind, records) in kinds {
        match parse_records(kind, records, start) {
            Ok(import) => timeline.add(import),
            Err(bad) => problems.extend(
                bad.into_iter()
                    .map(|(location, message)| Diagnostic::error(path, Some(location), message)),
            ),
        }
    }
    for contact in timeline.arrivals.values().flat_map(|i| &i.contacts) {
        if !timeline.accounts.contains(&contact.account_id) {
            let location = locate_record(&case.contacts, &contact.id, "account_id");
            problems.push(
                Diagnostic::error(
                    path,
                    location,
                    format!(
                        "contact `{}` belongs to account `{}`, which this test does not have",
                        contact.id, contact.account_id
                    ),
                )
                .with_help(suggest::hint(
                    &contact.account_id,
                    timeline.accounts.iter().map(String::as_str),
                )),
            );
        }
    }
    let names = Names {
        definitions,
        timeline: &timeline,
    };
    for expectation in &case.expect {
        names.check(expectation, path, &mut problems);
    }
    if problems.is_empty() {
        Ok(timeline)
    } else {
        Err(problems)
    }
}

impl Timeline {
    fn add(&mut self, import: Import) {
        for account in import.accounts {
            self.accounts.insert(account.id.clone());
            if let Some(zone) = &account.timezone {
                self.account_zones.insert(account.id.clone(), zone.clone());
            }
            self.arrivals
                .entry(self.start)
                .or_default()
                .accounts
                .push(account);
        }
        for contact in import.contacts {
            self.contacts.insert(
                contact.id.clone(),
                (
                    contact.account_id.clone(),
                    contact.email.clone(),
                    contact.timezone.clone(),
                ),
            );
            self.arrivals
                .entry(self.start)
                .or_default()
                .contacts
                .push(contact);
        }
        for metric in import.metrics {
            let at = metric.at.max(self.start);
            self.arrivals.entry(at).or_default().metrics.push(metric);
        }
        for event in import.events {
            let at = event.at.max(self.start);
            self.arrivals.entry(at).or_default().events.push(event);
        }
    }

    /// The account an expectation is about: the one named, else the test's only account.
    pub fn account(&self, named: Option<&Spanned<String>>) -> Option<String> {
        match named {
            Some(name) => Some(name.value.clone()),
            None if self.accounts.len() == 1 => self.accounts.iter().next().cloned(),
            None => None,
        }
    }
}

/// Parses one kind of records with `touchline import`'s own rules; a bad one is reported
/// at the value (or record) it is about.
fn parse_records(
    kind: Kind,
    records: &[Record],
    received: DateTime<Utc>,
) -> Result<Import, Vec<(Location, String)>> {
    // Each object parsed, with the record it came from and, for a metric written several
    // to a line, the metric's name.
    let mut objects = Vec::new();
    let mut origin: Vec<(usize, Option<&str>)> = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let plain: serde_json::Map<String, serde_json::Value> = record
            .value
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        if kind == Kind::Metrics && !plain.contains_key("name") {
            for name in record
                .value
                .keys()
                .filter(|k| *k != "account_id" && *k != "at")
            {
                let mut object = plain.clone();
                object.retain(|k, _| k == "account_id" || k == "at");
                object.insert("name".into(), name.clone().into());
                object.insert("value".into(), plain[name].clone());
                objects.push(object);
                origin.push((index, Some(name.as_str())));
            }
            continue;
        }
        objects.push(plain);
        origin.push((index, None));
    }
    let parsed = ingest::parse_objects(kind, objects, received);
    if parsed.bad.is_empty() {
        return Ok(parsed.import);
    }
    Err(parsed
        .bad
        .iter()
        .map(|bad| {
            let item = bad
                .row
                .strip_prefix("item ")
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| origin.get(n).copied());
            let Some((index, metric)) = item else {
                return (Location::new(1, 1, 1), format!("{} {bad}", kind_name(kind)));
            };
            let record = &records[index];
            let column = match (metric, bad.column.as_str()) {
                (Some(name), "value") => name,
                _ => bad.column.as_str(),
            };
            let location = record
                .value
                .get(column)
                .map_or(record.span.location(), |v| v.span.location());
            let value = if bad.value.is_empty() {
                String::new()
            } else {
                format!("`{}` ", bad.value)
            };
            (
                location,
                format!(
                    "{} record, `{column}`: {value}{}",
                    singular(kind),
                    bad.problem
                ),
            )
        })
        .collect())
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Accounts => "accounts:",
        Kind::Contacts => "contacts:",
        Kind::Metrics => "metrics:",
        Kind::Events => "events:",
    }
}

fn singular(kind: Kind) -> &'static str {
    match kind {
        Kind::Accounts => "account",
        Kind::Contacts => "contact",
        Kind::Metrics => "metric",
        Kind::Events => "event",
    }
}

/// Where record `id`'s `field` is written.
fn locate_record(records: &[Record], id: &str, field: &str) -> Option<Location> {
    let record = records.iter().find(|r| {
        r.value
            .get("id")
            .is_some_and(|v| v.value.as_str() == Some(id))
    })?;
    Some(
        record
            .value
            .get(field)
            .map_or(record.span.location(), |v| v.span.location()),
    )
}

/// Checks the names an expectation uses.
struct Names<'a> {
    definitions: &'a Definitions,
    timeline: &'a Timeline,
}

impl Names<'_> {
    fn check(
        &self,
        expectation: &Spanned<Expectation>,
        path: &Path,
        problems: &mut Vec<Diagnostic>,
    ) {
        let mut own = Vec::new();
        let mut unknown = |name: &Spanned<String>, what: &str, known: Vec<&str>| {
            if !known.contains(&name.value.as_str()) {
                problems.push(
                    Diagnostic::error(
                        path,
                        Some(name.span.location()),
                        format!("unknown {what} `{}`", name.value),
                    )
                    .with_help(suggest::hint(&name.value, known.iter().copied())),
                );
            }
        };
        let accounts: Vec<&str> = self.timeline.accounts.iter().map(String::as_str).collect();
        let contacts: Vec<&str> = self.timeline.contacts.keys().map(String::as_str).collect();
        let journeys: Vec<&str> = self
            .definitions
            .journeys
            .keys()
            .map(String::as_str)
            .collect();
        let steps = |journey: Option<&Spanned<String>>| -> Vec<&str> {
            self.definitions
                .journeys
                .iter()
                .filter(|(id, _)| journey.is_none_or(|j| j.value == **id))
                .flat_map(|(_, j)| j.steps.iter().map(|s| s.id.as_str()))
                .collect()
        };
        let mut account_needed = None;
        match &expectation.value {
            Expectation::Tier(e) => account_needed = Some(e.account.as_ref()),
            Expectation::Score(e) => {
                account_needed = Some(e.account.as_ref());
                let scores = self
                    .definitions
                    .scores
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                unknown(&e.name, "score", scores);
                let given = [
                    e.equals.is_some(),
                    e.at_least.is_some(),
                    e.at_most.is_some(),
                    e.unknown.is_some(),
                ];
                if !given.contains(&true) {
                    own.push(Diagnostic::error(
                        path,
                        Some(expectation.span.location()),
                        "a score expectation needs `equals`, `at_least`, `at_most` or `unknown: true`",
                    ));
                }
            }
            Expectation::Enrolled(e)
            | Expectation::NotEnrolled(e)
            | Expectation::GoalReached(e) => {
                account_needed = Some(e.account.as_ref());
                unknown(&e.journey, "journey", journeys.clone());
                if let Some(contact) = &e.contact {
                    unknown(contact, "contact", contacts.clone());
                }
                if let Some(step) = &e.step {
                    unknown(step, "step", steps(Some(&e.journey)));
                }
            }
            Expectation::Mail(e) | Expectation::NoMail(e) => {
                if let Some(to) = &e.to
                    && !to.value.contains('@')
                {
                    unknown(to, "contact", contacts.clone());
                }
                if let Some(template) = &e.template {
                    unknown(
                        template,
                        "template",
                        self.definitions
                            .templates
                            .iter()
                            .map(String::as_str)
                            .collect(),
                    );
                }
            }
            Expectation::Task(e) | Expectation::NoTask(e) => {
                if let Some(csm) = &e.csm {
                    unknown(
                        csm,
                        "CSM",
                        self.definitions
                            .config
                            .csms
                            .iter()
                            .map(|c| c.id.as_str())
                            .collect(),
                    );
                }
            }
            Expectation::Webhook(e) | Expectation::NoWebhook(e) => {
                if let Some(endpoint) = &e.endpoint {
                    unknown(
                        endpoint,
                        "webhook endpoint",
                        self.definitions
                            .config
                            .webhooks
                            .keys()
                            .map(String::as_str)
                            .collect(),
                    );
                }
            }
        }
        // Who and what a delivered record is about, where the expectation names it.
        let (account, journey, step) = match &expectation.value {
            Expectation::Mail(e) | Expectation::NoMail(e) => {
                (None, e.journey.as_ref(), e.step.as_ref())
            }
            Expectation::Task(e) | Expectation::NoTask(e) => {
                (e.account.as_ref(), e.journey.as_ref(), e.step.as_ref())
            }
            Expectation::Webhook(e) | Expectation::NoWebhook(e) => {
                (e.account.as_ref(), e.journey.as_ref(), e.step.as_ref())
            }
            _ => (None, None, None),
        };
        if let Some(account) = account {
            unknown(account, "account", accounts.clone());
        }
        if let Some(journey) = journey {
            unknown(journey, "journey", journeys.clone());
        }
        if let Some(step) = step {
            unknown(step, "step", steps(journey));
        }
        match account_needed {
            Some(Some(account)) => unknown(account, "account", accounts),
            Some(None) if self.timeline.accounts.len() != 1 => own.push(Diagnostic::error(
                path,
                Some(expectation.span.location()),
                "say which `account:` this is about (the test has more than one account)",
            )),
            _ => {}
        }
        problems.extend(own);
    }
}
