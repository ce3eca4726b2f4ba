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

use chrono::{DateTime, Utc};

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
            Kind::Events => &["account_id", "name"],
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

/// Records parsed in memory (API requests): the good ones, and the bad rows.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The good records.
    pub import: Import,
    /// The bad rows.
    pub bad: Vec<BadRow>,
    /// Rows read.
    pub rows: usize,
}

/// Parses records that arrived as JSON objects (the HTTP API); rows are named `item N`
/// (0-based, as in the request's array).
/// Events without `at` happened at `received`.
pub fn parse_objects(
    kind: Kind,
    objects: Vec<serde_json::Map<String, serde_json::Value>>,
    received: DateTime<Utc>,
) -> Parsed {
    let mut parsed = Parsed::default();
    let mut seen = Duplicates::default();
    for (index, object) in objects.into_iter().enumerate() {
        parsed.rows += 1;
        match parse_row(
            kind,
            &Fields::from_json(object),
            &format!("item {index}"),
            &mut seen,
            Some(received),
        ) {
            Ok(record) => record.add_to(&mut parsed.import),
            Err(bad) => parsed.bad.push(bad),
        }
    }
    parsed
}

/// What a first read of a file found: how many rows, and which are bad.
#[derive(Debug, Default)]
pub struct Scan {
    /// Rows read.
    pub rows: usize,
    /// The first bad rows (at most [`MAX_REPORTED`]).
    pub bad: Vec<BadRow>,
    /// All bad rows, counted.
    pub bad_count: usize,
}

/// Bad rows kept for the report; the rest are counted.
pub const MAX_REPORTED: usize = 1000;

/// Records per chunk written while streaming a file into the store.
pub const CHUNK_ROWS: usize = 5000;

/// A file being read row by row, so files of any size import in bounded memory.
pub struct FileReader {
    kind: Kind,
    rows: Box<dyn Iterator<Item = (String, Result<Fields, BadRow>)> + Send>,
    seen: Duplicates,
    received: Option<DateTime<Utc>>,
    /// Rows read so far.
    pub rows_read: usize,
}

impl fmt::Debug for FileReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileReader")
            .field("kind", &self.kind)
            .field("rows_read", &self.rows_read)
            .finish()
    }
}

impl FileReader {
    /// Opens `path` (`.csv`, or `.jsonl` / `.ndjson`) and checks its header.
    pub fn open(kind: Kind, path: &Path) -> Result<Self, IngestError> {
        let shown = path.display().to_string();
        let read_error = |e: &dyn fmt::Display| IngestError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(|e| read_error(&e))?;
        let reader = std::io::BufReader::with_capacity(1 << 16, file);
        let rows: Box<dyn Iterator<Item = _> + Send> =
            match path.extension().and_then(|e| e.to_str()) {
                Some("csv") => Box::new(csv_rows(kind, reader, shown)?),
                Some("jsonl" | "ndjson") => Box::new(jsonl_rows(reader)),
                _ => return Err(IngestError::Format(shown)),
            };
        Ok(Self {
            kind,
            rows,
            seen: Duplicates::default(),
            received: None,
            rows_read: 0,
        })
    }

    /// Events without `at` happened at `at` (the time the file is imported).
    pub fn received_at(mut self, at: DateTime<Utc>) -> Self {
        self.received = Some(at);
        self
    }

    /// The next row: its label and the record, or why it is bad.
    pub fn next_record(&mut self) -> Option<Result<Record, BadRow>> {
        let (row, fields) = self.rows.next()?;
        self.rows_read += 1;
        Some(
            fields.and_then(|fields| {
                parse_row(self.kind, &fields, &row, &mut self.seen, self.received)
            }),
        )
    }

    /// Reads the whole file, keeping nothing but the count and the bad rows.
    pub fn scan(mut self, progress: &mut dyn FnMut(u64)) -> Scan {
        let mut scan = Scan::default();
        while let Some(record) = self.next_record() {
            if let Err(bad) = record {
                scan.bad_count += 1;
                if scan.bad.len() < MAX_REPORTED {
                    scan.bad.push(bad);
                }
            }
            if self.rows_read.is_multiple_of(CHUNK_ROWS) {
                progress(self.rows_read as u64);
            }
        }
        scan.rows = self.rows_read;
        scan
    }

    /// The next chunk of good records (bad rows are skipped), or `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Import> {
        let mut chunk = Import::default();
        let mut count = 0;
        while count < CHUNK_ROWS {
            match self.next_record() {
                None => break,
                Some(Ok(record)) => {
                    record.add_to(&mut chunk);
                    count += 1;
                }
                Some(Err(_)) => {}
            }
        }
        (count > 0).then_some(chunk)
    }

    /// Reads the whole file into memory: the good records and the bad rows.
    pub fn read_all(mut self) -> Parsed {
        let mut parsed = Parsed::default();
        while let Some(record) = self.next_record() {
            match record {
                Ok(record) => record.add_to(&mut parsed.import),
                Err(bad) => parsed.bad.push(bad),
            }
        }
        parsed.rows = self.rows_read;
        parsed
    }
}

impl Iterator for FileReader {
    type Item = Import;

    fn next(&mut self) -> Option<Import> {
        self.next_chunk()
    }
}

fn csv_rows(
    kind: Kind,
    reader: impl std::io::Read + Send + 'static,
    shown: String,
) -> Result<impl Iterator<Item = (String, Result<Fields, BadRow>)> + Send, IngestError> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers: Vec<String> = csv
        .headers()
        .map_err(|e| IngestError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?
        .iter()
        .map(|h| h.to_string())
        .collect();
    for column in kind.required() {
        if !headers.iter().any(|h| h == column) {
            return Err(IngestError::MissingColumn {
                path: shown,
                column: column.to_string(),
                required: kind.required().join(", "),
            });
        }
    }
    Ok(csv.into_records().enumerate().map(move |(index, record)| {
        let row = format!("row {}", index + 2);
        let fields = match record {
            Ok(record) => Ok(Fields::from_csv(&headers, &record)),
            Err(error) => Err(BadRow {
                row: row.clone(),
                column: "(row)".into(),
                value: String::new(),
                problem: error.to_string(),
            }),
        };
        (row, fields)
    }))
}

fn jsonl_rows(
    reader: impl BufRead + Send + 'static,
) -> impl Iterator<Item = (String, Result<Fields, BadRow>)> + Send {
    reader.lines().enumerate().filter_map(|(index, line)| {
        let row = format!("line {}", index + 1);
        let fields = match line {
            Ok(line) if line.trim().is_empty() => return None,
            Ok(line) => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line)
                .map(Fields::from_json)
                .map_err(|e| format!("is not a JSON object: {e}")),
            Err(e) => Err(format!("cannot be read: {e}")),
        };
        let fields = fields.map_err(|problem| BadRow {
            row: row.clone(),
            column: "(line)".into(),
            value: String::new(),
            problem,
        });
        Some((row, fields))
    })
}

/// Ids seen so far in a file, so a second row with the same id is reported. Keeps 64-bit
/// hashes, not the ids, to stay small on files with millions of rows.
#[derive(Debug, Default)]
struct Duplicates(HashMap<u64, usize>);

impl Duplicates {
    fn check(&mut self, id: &str, row: &str) -> Result<(), BadRow> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        let number = row
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        match self.0.insert(hasher.finish(), number) {
            None => Ok(()),
            Some(first) => {
                let unit = row.split(' ').next().unwrap_or("row");
                Err(BadRow {
                    row: row.to_string(),
                    column: "id".into(),
                    value: id.to_string(),
                    problem: format!("appears twice (first on {unit} {first})"),
                })
            }
        }
    }
}

fn parse_row(
    kind: Kind,
    fields: &Fields,
    row: &str,
    seen: &mut Duplicates,
    received: Option<DateTime<Utc>>,
) -> Result<Record, BadRow> {
    let bad = |Problem {
                   column,
                   value,
                   problem,
               }| BadRow {
        row: row.to_string(),
        column,
        value,
        problem,
    };
    let record = match kind {
        Kind::Accounts => fields::account(fields).map(Record::Account),
        Kind::Contacts => fields::contact(fields).map(Record::Contact),
        Kind::Metrics => fields::metric(fields).map(Record::Metric),
        Kind::Events => fields::event(fields, received).map(Record::Event),
    }
    .map_err(bad)?;
    match &record {
        Record::Account(a) => seen.check(&a.id, row)?,
        Record::Contact(c) => seen.check(&c.id, row)?,
        Record::Event(e) => seen.check(&e.key, row)?,
        Record::Metric(_) => {}
    }
    Ok(record)
}

/// One parsed record.
#[derive(Debug, Clone)]
pub enum Record {
    /// An account.
    Account(Account),
    /// A contact.
    Contact(Contact),
    /// A metric value.
    Metric(MetricValue),
    /// An event.
    Event(Event),
}

impl Record {
    fn add_to(self, import: &mut Import) {
        match self {
            Record::Account(a) => import.accounts.push(a),
            Record::Contact(c) => import.contacts.push(c),
            Record::Metric(m) => import.metrics.push(m),
            Record::Event(e) => import.events.push(e),
        }
    }
}
