//! The result of `touchline test`: per file, per test, what passed and what failed (with
//! the place of the failed expectation, what was expected and what happened), as text, JSON
//! or JUnit XML for CI.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::diagnostic::SourceMap;
use crate::journey_tests::run::Failure;
use crate::text::count;

/// Every test run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TestReport {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed (an expectation did not hold, or the test could not run).
    pub failed: usize,
    /// Tests left out by `--filter`.
    pub filtered_out: usize,
    /// Wall time of the whole run, in seconds.
    pub seconds: f64,
    /// Per file.
    pub files: Vec<FileReport>,
}

/// One test file's results.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file, as shown.
    pub path: PathBuf,
    /// Its tests.
    pub tests: Vec<CaseReport>,
}

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// Its name.
    pub name: String,
    /// The line it starts at.
    pub line: usize,
    /// Whether every expectation held.
    pub passed: bool,
    /// Its run time, in seconds.
    pub seconds: f64,
    /// The expectations that did not hold.
    pub failures: Vec<Failure>,
    /// Why it could not run, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TestReport {
    /// Counts the passed and failed tests.
    pub fn count(&mut self) {
        let tests = self.files.iter().flat_map(|f| &f.tests);
        self.passed = tests.clone().filter(|c| c.passed).count();
        self.failed = tests.filter(|c| !c.passed).count();
    }
}

/// The report as text: one line per test, each failure at its `file:line:col` with the
/// expectation quoted, then a summary.
pub fn text(report: &TestReport, sources: &SourceMap) -> String {
    let mut out = String::new();
    for file in report.files.iter().filter(|f| !f.tests.is_empty()) {
        let _ = writeln!(out, "{}", file.path.display());
        for case in &file.tests {
            let mark = if case.passed { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  {mark} {} ({:.2} s)", case.name, case.seconds);
        }
    }
    for file in &report.files {
        for case in file.tests.iter().filter(|c| !c.passed) {
            let _ = writeln!(
                out,
                "\n--- {} ({}:{})",
                case.name,
                file.path.display(),
                case.line
            );
            if let Some(error) = &case.error {
                let _ = writeln!(out, "{}:{}: error: {error}", file.path.display(), case.line);
            }
            for failure in &case.failures {
                let place = format!(
                    "{}:{}:{}",
                    file.path.display(),
                    failure.location.line,
                    failure.location.column
                );
                let _ = writeln!(out, "{place}: expected {}", failure.expected);
                // The caret marks where the expectation starts.
                let at = crate::diagnostic::Location {
                    len: 1,
                    ..failure.location
                };
                out.push_str(&sources.quote(&file.path, at));
                let _ = writeln!(out, "  = found: {}\n", failure.actual);
            }
        }
    }
    let _ = write!(
        out,
        "\n{}, {} in {:.2} s",
        count(report.passed as u64, "test passed", "tests passed"),
        count(report.failed as u64, "failed", "failed"),
        report.seconds
    );
    if report.filtered_out > 0 {
        let _ = write!(out, " ({} filtered out)", report.filtered_out);
    }
    out.push('\n');
    out
}

/// The report as JUnit XML, the format CI systems read test results in.
pub fn junit(report: &TestReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"touchline\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
        report.passed + report.failed,
        report.failed,
        report.seconds
    );
    for file in &report.files {
        let path = file.path.display().to_string();
        let failures = file.tests.iter().filter(|c| !c.passed).count();
        let seconds: f64 = file.tests.iter().map(|c| c.seconds).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{seconds:.3}\">",
            escape(&path),
            file.tests.len()
        );
        for case in &file.tests {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\" time=\"{:.3}\"",
                escape(&case.name),
                escape(&path),
                escape(&path),
                case.line,
                case.seconds
            );
            if case.passed {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            let mut body = String::new();
            if let Some(error) = &case.error {
                let _ = writeln!(body, "{path}:{}: error: {error}", case.line);
            }
            for f in &case.failures {
                let _ = writeln!(
                    body,
                    "{path}:{}:{}: expected {}; found: {}",
                    f.location.line, f.location.column, f.expected, f.actual
                );
            }
            let message = case
                .failures
                .first()
                .map(|f| format!("expected {}", f.expected))
                .or_else(|| case.error.clone())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "      <failure message=\"{}\">{}</failure>",
                escape(&message),
                escape(&body)
            );
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text made safe inside an XML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}
