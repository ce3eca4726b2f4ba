//! `touchline test`: runs the project's journey tests (see [`crate::journey_tests`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::ValueEnum;

use super::{Context, io};
use crate::diagnostic::{self, Diagnostic};
use crate::journey_tests::{self, TESTS_DIR, check, run};
use crate::views::journey_tests::{self as view, CaseReport, FileReport, TestReport};

/// Run the journey tests in journey-tests/ (or PATH): small timelines played through the
/// engine in memory, with what should come of them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Test files or folders (default: journey-tests/ in the project).
    paths: Vec<PathBuf>,
    /// Run only tests whose name (or file name) contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Output: text for people, json, or junit (JUnit XML for CI).
    #[arg(long, value_enum, default_value_t = TestFormat::Text)]
    format: TestFormat,
    /// Also write JUnit XML to this file (for CI), whatever `--format` prints.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

/// How `touchline test` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    /// For people.
    Text,
    /// One JSON document.
    Json,
    /// JUnit XML.
    Junit,
}

/// Runs `test`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let started = Instant::now();
    let targets = if args.paths.is_empty() {
        vec![ctx.root.join(TESTS_DIR)]
    } else {
        let cwd = std::env::current_dir().map_err(io)?;
        args.paths.iter().map(|p| cwd.join(p)).collect()
    };
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
    for target in &targets {
        let found = journey_tests::find_files(target)?;
        if found.is_empty() {
            return Err(format!(
                "no test files (*.yaml) in {}; see the README's \"Journey tests\"",
                shown(target).display()
            ));
        }
        files.extend(found.into_iter().map(|file| {
            let shown = shown(&file);
            (file, shown)
        }));
    }
    let (loaded, mut problems, sources) = journey_tests::load(&files);
    let without_holdouts = Arc::new(ctx.definitions.without_holdouts());
    let mut report = TestReport::default();
    // Every selected test, checked; those that check out run side by side, one per core.
    let mut runs = tokio::task::JoinSet::new();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slots = Arc::new(tokio::sync::Semaphore::new(cores));
    for (file_index, file) in loaded.iter().enumerate() {
        let mut tests = Vec::new();
        for case in &file.tests {
            let name = case.value.name.value.clone();
            let selected = args.filter.as_ref().is_none_or(|text| {
                name.contains(text.as_str()) || file.path.to_string_lossy().contains(text.as_str())
            });
            if !selected {
                report.filtered_out += 1;
                continue;
            }
            let mut result = CaseReport {
                name,
                line: case.span.line,
                passed: false,
                seconds: 0.0,
                failures: Vec::new(),
                error: None,
            };
            match check::prepare(&case.value, &ctx.definitions, &file.path) {
                Err(found) => {
                    result.error = Some(format!(
                        "the test has {} (shown above)",
                        crate::text::count(found.len() as u64, "problem", "problems")
                    ));
                    problems.extend(found);
                }
                Ok(timeline) => {
                    let definitions = Arc::clone(&without_holdouts);
                    let expectations = case.value.expect.clone();
                    let place = (file_index, tests.len());
                    let slots = Arc::clone(&slots);
                    runs.spawn(async move {
                        let _slot = slots.acquire_owned().await;
                        let began = Instant::now();
                        let outcome = run::run(definitions, timeline, &expectations).await;
                        (place, began.elapsed().as_secs_f64(), outcome)
                    });
                }
            }
            tests.push(result);
        }
        report.files.push(FileReport {
            path: file.path.clone(),
            tests,
        });
    }
    while let Some(done) = runs.join_next().await {
        let ((file, test), seconds, outcome) = done.map_err(|e| e.to_string())?;
        let result = &mut report.files[file].tests[test];
        result.seconds = seconds;
        match outcome {
            Ok(failures) => {
                result.passed = failures.is_empty();
                result.failures = failures;
            }
            Err(error) => result.error = Some(error),
        }
    }
    report.count();
    report.seconds = started.elapsed().as_secs_f64();
    diagnostic::sort(&mut problems);
    print_report(&args, &report, &problems, &sources, out)?;
    let broken = problems.iter().any(Diagnostic::is_error);
    Ok(if report.failed == 0 && !broken { 0 } else { 1 })
}

fn print_report(
    args: &Args,
    report: &TestReport,
    problems: &[Diagnostic],
    sources: &diagnostic::SourceMap,
    out: &mut dyn Write,
) -> Result<(), String> {
    if let Some(path) = &args.junit {
        std::fs::write(path, view::junit(report))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    match args.format {
        TestFormat::Text => {
            write!(out, "{}", diagnostic::render_all(problems, sources)).map_err(io)?;
            write!(out, "{}", view::text(report, sources)).map_err(io)
        }
        TestFormat::Json => {
            #[derive(serde::Serialize)]
            struct Json<'a> {
                #[serde(flatten)]
                report: &'a TestReport,
                problems: &'a [Diagnostic],
            }
            let json = serde_json::to_string_pretty(&Json { report, problems })
                .map_err(|e| e.to_string())?;
            writeln!(out, "{json}").map_err(io)
        }
        TestFormat::Junit => write!(out, "{}", view::junit(report)).map_err(io),
    }
}

/// A path as seen from the current folder, for printed places.
fn shown(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}
