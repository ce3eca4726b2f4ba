//! The `touchline` command line. `main` is a thin wrapper around [`run`], so tests can drive
//! the whole program in-process.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::definitions::{self, CONFIG_FILE, Loaded};
use crate::diagnostic::{self, Diagnostic};
use crate::schema::SchemaKind;

/// touchline: rules-driven automation for customer-success tech-touch journeys.
#[derive(Debug, Parser)]
#[command(name = "touchline", version, about)]
pub struct Cli {
    /// Path of touchline.yaml (default: found in the current folder or the nearest parent).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check touchline.yaml, every journey, score script and template, and report every problem.
    Validate {
        /// Check only this file (the rest of the project is still read, for references).
        path: Option<PathBuf>,
        /// Fail on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of a definitions file, for editor completion.
    Schema {
        /// Which schema (default: all, as one JSON object keyed by file name).
        kind: Option<SchemaKind>,
        /// Write every schema into this folder instead of printing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Output format for `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `path:line:col: error: …` with the source line and a caret.
    Text,
    /// One JSON document, for CI and editors.
    Json,
}

/// Runs touchline with `args` (including the program name); returns the exit code.
pub fn run(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let text = error.render().ansi().to_string();
            let _ = if code == 0 {
                write!(out, "{text}")
            } else {
                write!(err, "{text}")
            };
            return code;
        }
    };
    match execute(cli, out) {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(err, "error: {message}");
            1
        }
    }
}

fn execute(cli: Cli, out: &mut dyn Write) -> Result<i32, String> {
    match cli.command {
        Command::Validate {
            path,
            deny_warnings,
            format,
        } => {
            let project = Project::locate(cli.config.as_deref())?;
            let loaded = match &path {
                Some(file) => {
                    definitions::load_file(&project.config_path, &project.display_root, file)
                }
                None => definitions::load(&project.config_path, &project.display_root),
            };
            validate_report(&loaded, path.is_some(), deny_warnings, format, out)
                .map_err(|e| e.to_string())
        }
        Command::Schema {
            kind,
            out: Some(dir),
        } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            for kind in kind.map_or(SchemaKind::ALL.to_vec(), |k| vec![k]) {
                let file = dir.join(kind.file_name());
                std::fs::write(&file, kind.to_json())
                    .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                writeln!(out, "wrote {}", file.display()).map_err(|e| e.to_string())?;
            }
            Ok(0)
        }
        Command::Schema {
            kind: Some(kind),
            out: None,
        } => {
            write!(out, "{}", kind.to_json()).map_err(|e| e.to_string())?;
            Ok(0)
        }
        Command::Schema {
            kind: None,
            out: None,
        } => {
            let all: serde_json::Map<String, serde_json::Value> = SchemaKind::ALL
                .iter()
                .map(|k| (k.file_name().to_string(), k.schema().to_value()))
                .collect();
            let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
            writeln!(out, "{text}").map_err(|e| e.to_string())?;
            Ok(0)
        }
    }
}

/// Where the project is, and how to show its paths to the user.
struct Project {
    config_path: PathBuf,
    display_root: PathBuf,
}

impl Project {
    fn locate(config: Option<&Path>) -> Result<Self, String> {
        let cwd =
            std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
        let config_path = match config {
            Some(path) if path.is_dir() => path.join(CONFIG_FILE),
            Some(path) => path.to_path_buf(),
            None => definitions::find_root(&cwd).map(|root| root.join(CONFIG_FILE)).ok_or_else(|| {
                format!("no {CONFIG_FILE} in {} or any folder above it; run touchline in a project folder or pass --config PATH", cwd.display())
            })?,
        };
        if !config_path.is_file() {
            return Err(format!("{} does not exist", config_path.display()));
        }
        let absolute = if config_path.is_absolute() {
            config_path.clone()
        } else {
            cwd.join(&config_path)
        };
        let root = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
        let display_root = relative_to(&root, &cwd);
        Ok(Self {
            config_path: absolute,
            display_root,
        })
    }
}

/// `path` as seen from `base` (`../x` when `path` is above), so printed paths open from
/// where the command ran.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let (path_parts, base_parts): (Vec<_>, Vec<_>) =
        (path.components().collect(), base.components().collect());
    let common = path_parts
        .iter()
        .zip(&base_parts)
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return path.to_path_buf();
    }
    let mut relative: PathBuf = base_parts[common..].iter().map(|_| "..").collect();
    relative.extend(&path_parts[common..]);
    relative
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
