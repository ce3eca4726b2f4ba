//! Diagnostics: what went wrong, where, and what to do about it.
//!
//! Every error a user can cause in a definitions file becomes a [`Diagnostic`] that carries
//! the file, the 1-based line and column, and the length of the offending text, so it can be
//! printed as `path:line:col: error: …` with the source line and a caret, or as JSON for CI
//! and editors.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Stops the definitions from loading.
    Error,
    /// Worth fixing; fatal only with `--deny-warnings`.
    Warning,
}

/// A position in a source file: 1-based line and column (in characters), plus a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Number of characters the caret underlines (at least 1 when printed).
    #[serde(skip)]
    pub len: usize,
}

impl Location {
    /// A location of `len` characters starting at `line:column`.
    pub fn new(line: usize, column: usize, len: usize) -> Self {
        Self { line, column, len }
    }
}

/// One problem found in a definitions file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as the user named it (relative to the project root where possible).
    pub path: PathBuf,
    /// Where in the file; `None` for problems with the file as a whole.
    #[serde(flatten)]
    pub location: Option<Location>,
    /// What is wrong.
    pub message: String,
    /// A hint: a did-you-mean or what was expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `location` in `path`.
    pub fn error(
        path: impl Into<PathBuf>,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            path: path.into(),
            location,
            message: message.into(),
            help: None,
        }
    }

    /// A warning at `location` in `path`.
    pub fn warning(
        path: impl Into<PathBuf>,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(path, location, message)
        }
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `path:line:col` (or just `path`), the way editors and terminals link to a place.
    pub fn place(&self) -> String {
        match self.location {
            Some(loc) => format!("{}:{}:{}", self.path.display(), loc.line, loc.column),
            None => self.path.display().to_string(),
        }
    }

    /// Renders the diagnostic as text: the headline, then the source line with a caret under
    /// the offending text, then the hint.
    pub fn render(&self, sources: &SourceMap) -> String {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{}: {severity}: {}\n", self.place(), self.message);
        if let Some(loc) = self.location {
            out.push_str(&sources.quote(&self.path, loc));
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

/// The text of every file diagnostics may point into, so they can quote the offending line.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: HashMap<PathBuf, String>,
}

impl SourceMap {
    /// Remembers the text of `path`.
    pub fn insert(&mut self, path: impl Into<PathBuf>, text: impl Into<String>) {
        self.files.insert(path.into(), text.into());
    }

    /// The text of `path`, if it was read.
    pub fn get(&self, path: &Path) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// A hash of every file's path and text.
    pub fn fingerprint(&self) -> String {
        let mut files: Vec<_> = self.files.iter().collect();
        files.sort();
        let joined: String = files
            .iter()
            .map(|(p, t)| format!("{}\0{t}\0", p.display()))
            .collect();
        content_hash(&joined)
    }

    /// The paths of every file read.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    /// The source line at `location` with a caret under it (empty if the line is unknown),
    /// as diagnostics and journey-test failures print it.
    pub fn quote(&self, path: &Path, location: Location) -> String {
        let Some(line) = self.line(path, location.line) else {
            return String::new();
        };
        let gutter = location.line.to_string();
        let pad = " ".repeat(gutter.len());
        let indent: String = line
            .chars()
            .take(location.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let available = line
            .chars()
            .count()
            .saturating_sub(location.column - 1)
            .max(1);
        let carets = "^".repeat(location.len.clamp(1, available));
        format!(
            "{pad} |\n{gutter} | {}\n{pad} | {indent}{carets}\n",
            line.trim_end()
        )
    }

    /// Line `line` (1-based) of `path`.
    pub fn line(&self, path: &Path, line: usize) -> Option<&str> {
        self.get(path)?.lines().nth(line.checked_sub(1)?)
    }
}

/// Renders a list of diagnostics plus a summary line, as `touchline validate` prints them.
pub fn render_all(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&diagnostic.render(sources));
        out.push('\n');
    }
    out
}

/// Sorts diagnostics by file, then position, so output is stable and easy to scan.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (&a.path, a.location.map(|l| (l.line, l.column)), a.severity).cmp(&(
            &b.path,
            b.location.map(|l| (l.line, l.column)),
            b.severity,
        ))
    });
}

/// A short, stable hash of some text (journey versions, the definitions' fingerprint).
pub fn content_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
