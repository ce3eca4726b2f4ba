//! Data in: accounts, contacts, metric values and events from CSV or JSONL files.
//!
//! Parsing is strict (numbers are numbers, dates are dates, emails have an `@`), and every
//! bad row is reported with its row, column and value. By default one bad row rejects the
//! whole file and nothing is written; `--skip-bad-rows` imports the rest. Unknown columns
//! are kept as attributes. Rows are upserted by external id, so importing the same file
//! twice changes nothing.

mod fields;

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::path::Path;

use crate::model::{Account, Contact, Event, MetricValue};
use crate::store::Import;

use fields::{Fields, Problem};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Accounts (customer companies).
    Accounts,
    /// Contacts (people at accounts).
    Contacts,
    /// Metric values over time.
    Metrics,
    /// Usage and lifecycle events.
    Events,
}

impl Kind {
    fn required(self) -> &'static [&'static str] {
        match self {
            Kind::Accounts => &["id", "name"],
            Kind::Contacts => &["id", "account_id", "email"],
            Kind::Metrics => &["account_id", "name", "value", "at"],
            Kind::Events => &["account_id", "name", "at"],
        }
    }
}

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// `row 7` (CSV, counting the header as row 1) or `line 7` (JSONL).
    pub row: String,
    /// The column.
    pub column: String,
    /// The value as written.
    pub value: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(
                f,
                "{}, column `{}`: {}",
                self.row, self.column, self.problem
            )
        } else {
            write!(
                f,
                "{}, column `{}`: `{}` {}",
                self.row, self.column, self.value, self.problem
            )
        }
    }
}

/// A file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Reading failed.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Neither `.csv` nor `.jsonl`.
    #[error("{0}: use a .csv or .jsonl file")]
    Format(String),
    /// A required column is missing from the header.
    #[error("{path}: missing column `{column}` (required: {required})")]
    MissingColumn {
        /// The file.
        path: String,
        /// The column.
        column: String,
        /// All required columns.
        required: String,
    },
}

/// A parsed file: the records that are good, and the rows that are not.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The good records.
    pub import: Import,
    /// The bad rows.
    pub bad: Vec<BadRow>,
    /// Rows read.
    pub rows: usize,
}

/// Reads and parses `path` (`.csv` or `.jsonl`); `progress` is called every few thousand rows.
pub fn parse_file(
    kind: Kind,
    path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Parsed, IngestError> {
    let shown = path.display().to_string();
    let read_error = |e: &dyn fmt::Display| IngestError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| read_error(&e))?;
    let reader = std::io::BufReader::new(file);
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => parse_csv(kind, reader, &shown, progress),
        Some("jsonl" | "ndjson") => parse_jsonl(kind, reader, &shown, progress),
        _ => Err(IngestError::Format(shown)),
    }
}

/// Parses CSV text.
pub fn parse_csv(
    kind: Kind,
    reader: impl std::io::Read,
    shown: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Parsed, IngestError> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers: Vec<String> = csv
        .headers()
        .map_err(|e| IngestError::Read {
            path: shown.into(),
            reason: e.to_string(),
        })?
        .iter()
        .map(|h| h.to_string())
        .collect();
    for column in kind.required() {
        if !headers.iter().any(|h| h == column) {
            return Err(IngestError::MissingColumn {
                path: shown.into(),
                column: column.to_string(),
                required: kind.required().join(", "),
            });
        }
    }
    let mut parsed = Parsed::default();
    let mut seen = HashMap::new();
    for (index, record) in csv.records().enumerate() {
        let row = format!("row {}", index + 2);
        parsed.rows += 1;
        if parsed.rows % 5000 == 0 {
            progress(parsed.rows as u64);
        }
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                parsed.bad.push(BadRow {
                    row,
                    column: "(row)".into(),
                    value: String::new(),
                    problem: error.to_string(),
                });
                continue;
            }
        };
        let fields = Fields::from_csv(&headers, &record);
        add_row(kind, &fields, &row, &mut parsed, &mut seen);
    }
    Ok(parsed)
}

/// Parses JSON Lines text (one object per line; blank lines are skipped).
pub fn parse_jsonl(
    kind: Kind,
    reader: impl BufRead,
    shown: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Parsed, IngestError> {
    let mut parsed = Parsed::default();
    let mut seen = HashMap::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| IngestError::Read {
            path: shown.into(),
            reason: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let row = format!("line {}", index + 1);
        parsed.rows += 1;
        if parsed.rows % 5000 == 0 {
            progress(parsed.rows as u64);
        }
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line) {
            Ok(object) => add_row(
                kind,
                &Fields::from_json(object),
                &row,
                &mut parsed,
                &mut seen,
            ),
            Err(error) => parsed.bad.push(BadRow {
                row,
                column: "(line)".into(),
                value: String::new(),
                problem: format!("is not a JSON object: {error}"),
            }),
        }
    }
    Ok(parsed)
}

/// Parses records that arrived as JSON objects (the HTTP API); rows are named `item N`
/// (0-based, as in the request's array).
pub fn parse_objects(
    kind: Kind,
    objects: Vec<serde_json::Map<String, serde_json::Value>>,
) -> Parsed {
    let mut parsed = Parsed::default();
    let mut seen = HashMap::new();
    for (index, object) in objects.into_iter().enumerate() {
        parsed.rows += 1;
        add_row(
            kind,
            &Fields::from_json(object),
            &format!("item {index}"),
            &mut parsed,
            &mut seen,
        );
    }
    parsed
}

fn add_row(
    kind: Kind,
    fields: &Fields,
    row: &str,
    parsed: &mut Parsed,
    seen: &mut HashMap<String, String>,
) {
    let result = match kind {
        Kind::Accounts => fields::account(fields).map(|a| (Some(a.id.clone()), Record::Account(a))),
        Kind::Contacts => fields::contact(fields).map(|c| (Some(c.id.clone()), Record::Contact(c))),
        Kind::Metrics => fields::metric(fields).map(|m| (None, Record::Metric(m))),
        Kind::Events => fields::event(fields).map(|e| (Some(e.key.clone()), Record::Event(e))),
    };
    let (id, record) = match result {
        Ok(ok) => ok,
        Err(Problem {
            column,
            value,
            problem,
        }) => {
            parsed.bad.push(BadRow {
                row: row.to_string(),
                column,
                value,
                problem,
            });
            return;
        }
    };
    if let Some(id) = id {
        if let Some(first) = seen.get(&id) {
            parsed.bad.push(BadRow {
                row: row.to_string(),
                column: "id".into(),
                value: id,
                problem: format!("appears twice (first on {first})"),
            });
            return;
        }
        seen.insert(id, row.to_string());
    }
    match record {
        Record::Account(a) => parsed.import.accounts.push(a),
        Record::Contact(c) => parsed.import.contacts.push(c),
        Record::Metric(m) => parsed.import.metrics.push(m),
        Record::Event(e) => parsed.import.events.push(e),
    }
}

enum Record {
    Account(Account),
    Contact(Contact),
    Metric(MetricValue),
    Event(Event),
}
