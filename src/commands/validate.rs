//! `touchline validate [PATH]`: check every definition and report every problem.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{Format, Project};
use crate::definitions::{self, Loaded};
use crate::diagnostic::{self, Diagnostic};

/// Check touchline.yaml, every journey, score script and template, and report every problem.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check only this file (the rest of the project is still read, for references).
    path: Option<PathBuf>,
    /// Fail on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Runs `validate`; the exit code is 1 when the definitions are invalid.
pub fn run(args: Args, project: &Project, out: &mut dyn Write) -> Result<i32, String> {
    let loaded = match &args.path {
        Some(file) => definitions::load_file(&project.config_path, &project.display_root, file),
        None => definitions::load(&project.config_path, &project.display_root),
    };
    validate_report(
        &loaded,
        args.path.is_some(),
        args.deny_warnings,
        args.format,
        out,
    )
    .map_err(|e| e.to_string())
}

#[derive(Serialize)]
struct JsonReport<'a> {
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [Diagnostic],
}

fn validate_report(
    loaded: &Loaded,
    single_file: bool,
    deny_warnings: bool,
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<i32> {
    let (errors, warnings) = (loaded.error_count(), loaded.warning_count());
    let valid = errors == 0 && !(deny_warnings && warnings > 0);
    match format {
        Format::Json => {
            let report = JsonReport {
                valid,
                errors,
                warnings,
                diagnostics: &loaded.diagnostics,
            };
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            )?;
        }
        Format::Text => {
            write!(
                out,
                "{}",
                diagnostic::render_all(&loaded.diagnostics, &loaded.sources)
            )?;
            writeln!(out, "{}", summary(loaded, single_file, valid))?;
        }
    }
    Ok(if valid { 0 } else { 1 })
}

fn summary(loaded: &Loaded, single_file: bool, valid: bool) -> String {
    let (errors, warnings) = (loaded.error_count(), loaded.warning_count());
    let counts = format!(
        "{} {}, {} {}",
        errors,
        plural(errors, "error"),
        warnings,
        plural(warnings, "warning")
    );
    match (&loaded.definitions, valid) {
        (Some(defs), true) if !single_file => format!(
            "valid: {} {}, {} {}, {} tier {}, {} {} ({counts})",
            defs.journeys.len(),
            plural(defs.journeys.len(), "journey"),
            defs.scores.len(),
            plural(defs.scores.len(), "score"),
            defs.tiers.len(),
            plural(defs.tiers.len(), "rule"),
            defs.templates.len(),
            plural(defs.templates.len(), "template"),
        ),
        (_, true) => format!("valid ({counts})"),
        (_, false) => format!("invalid: {counts}"),
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}
