//! The `touchline` command line. `main` is a thin wrapper around [`run`], so tests can drive
//! the whole program in-process.

use std::ffi::OsString;
use std::io::IsTerminal;
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
    /// Database URL (default: `database` in touchline.yaml, else sqlite://touchline.db).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "TOUCHLINE_DATABASE_URL"
    )]
    pub database: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
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
    /// Import accounts, contacts, metric values or events from a .csv or .jsonl file.
    Import {
        /// What the file holds.
        kind: crate::ingest::Kind,
        /// The file.
        file: PathBuf,
        /// Import the good rows and report the bad ones (default: reject the whole file).
        #[arg(long)]
        skip_bad_rows: bool,
    },
    /// Run one pass of the engine and exit.
    Tick {
        /// The time of the pass (default: now), e.g. 2026-11-23T09:00:00Z.
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        /// Re-evaluate every account, not only those whose data changed.
        #[arg(long)]
        full: bool,
    },
    /// Run the engine as a service: passes continuously, the HTTP API, reload on edits.
    Run {
        /// Longest time between passes (data arriving through the API starts one sooner).
        #[arg(long, default_value = "15s", value_parser = parse_duration)]
        interval: std::time::Duration,
        /// Address for the HTTP API (default: `http.listen` in touchline.yaml).
        #[arg(long, value_name = "ADDRESS")]
        listen: Option<String>,
    },
    /// Show accounts per tier, enrollments per journey and step, and the outbox.
    Status,
    /// List outbox deliveries by status, retry a failed one or replay a sent one.
    Deliveries {
        /// What to do (default: list pending, failed and dead records).
        #[command(subcommand)]
        action: Option<DeliveryAction>,
    },
    /// Render one step for one customer (mail subject, text and HTML; task; webhook body),
    /// strictly: a field the customer lacks is named. `--send-test` mails it once.
    Preview {
        /// The journey's id (its file name).
        journey: String,
        /// The step's id.
        step: String,
        /// The account to render for.
        #[arg(long)]
        account: String,
        /// The contact to render for (contact journeys; default for account mails: the
        /// first contact with an addressed role).
        #[arg(long)]
        contact: Option<String>,
        /// Write the preview to this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Send the rendered mail once to this address (over SMTP, or into the outbox folder).
        #[arg(long, value_name = "ADDRESS")]
        send_test: Option<String>,
    },
    /// The suppression list: addresses no step email goes to.
    Suppress {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<SuppressAction>,
    },
    /// List CSM tasks, mark them done, or reassign them.
    Tasks {
        /// What to do (default: list open tasks).
        #[command(subcommand)]
        action: Option<TaskAction>,
    },
    /// Explain an account: facts, scores and their inputs, tier, and every journey's verdict.
    Explain {
        /// The account's id.
        account: String,
        /// Evaluate as of this time (default: now).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Write realistic sample customers (CSV and JSONL) for trying touchline out.
    Generate {
        /// Number of accounts.
        #[arg(long, default_value_t = 1000)]
        accounts: usize,
        /// Folder to write into.
        #[arg(long, default_value = "sample")]
        out: PathBuf,
        /// Random seed (the same seed gives the same data).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Last day of data (default: today).
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Weekly metric snapshots per account.
        #[arg(long, default_value_t = 4)]
        snapshots: usize,
    },
    /// Run the bundled example end to end: import the sample customers into a fresh
    /// demo database, run the engine over simulated days, and show the result.
    Demo {
        /// Days to simulate after the sample's last day of data.
        #[arg(long, default_value_t = 14)]
        days: i64,
        /// Folder holding the sample customers.
        #[arg(long, default_value = "sample")]
        sample: PathBuf,
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

/// `touchline deliveries` actions.
#[derive(Debug, Subcommand)]
pub enum DeliveryAction {
    /// List records.
    List {
        /// Which records (default: the ones that need attention: pending, failed, dead).
        #[arg(long, value_enum)]
        status: Option<DeliveryStatusFilter>,
        /// Most records to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Try a failed or dead record again, now, with its attempts reset.
    Retry {
        /// The record's number.
        id: i64,
    },
    /// Deliver a sent record once more (its idempotency key stays the same).
    Replay {
        /// The record's number.
        id: i64,
    },
    /// Turn a webhook endpoint back on after it answered 410 Gone.
    Enable {
        /// The endpoint's name in touchline.yaml.
        endpoint: String,
    },
}

/// `touchline suppress` actions.
#[derive(Debug, Subcommand)]
pub enum SuppressAction {
    /// List suppressed addresses.
    List,
    /// Suppress an address.
    Add {
        /// The address.
        email: String,
        /// `manual` (default), `hard_bounced` or `unsubscribed`.
        #[arg(long, default_value = "manual")]
        reason: String,
        /// A note (who, why).
        #[arg(long, default_value = "added from the command line")]
        note: String,
    },
    /// Mail an address again.
    Remove {
        /// The address.
        email: String,
    },
}

/// `touchline tasks` actions.
#[derive(Debug, Subcommand)]
pub enum TaskAction {
    /// List tasks by CSM.
    List {
        /// Only this CSM's tasks.
        #[arg(long)]
        csm: Option<String>,
        /// Which tasks.
        #[arg(long, value_enum, default_value_t = TaskStatusFilter::Open)]
        status: TaskStatusFilter,
    },
    /// Mark a task done.
    Done {
        /// The task's number.
        id: i64,
    },
    /// Give a task to another CSM.
    Reassign {
        /// The task's number.
        id: i64,
        /// The CSM's id.
        csm: String,
    },
}

/// Which records `touchline deliveries list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliveryStatusFilter {
    /// Waiting for their time (a retry, a send window, the frequency cap).
    Pending,
    /// Being delivered now.
    Sending,
    /// Delivered.
    Sent,
    /// Not sent on purpose (suppressed, over the frequency cap).
    Skipped,
    /// Failed for good.
    Failed,
    /// Out of attempts.
    Dead,
    /// Every record.
    All,
}

impl DeliveryStatusFilter {
    /// The stored statuses it selects.
    pub fn stored(self) -> &'static [&'static str] {
        match self {
            Self::Pending => &["pending"],
            Self::Sending => &["sending"],
            Self::Sent => &["sent"],
            Self::Skipped => &["skipped"],
            Self::Failed => &["failed"],
            Self::Dead => &["dead"],
            Self::All => &["pending", "sending", "sent", "skipped", "failed", "dead"],
        }
    }
}

/// Which tasks `touchline tasks list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskStatusFilter {
    /// Open tasks.
    Open,
    /// Done tasks.
    Done,
    /// Every task.
    All,
}

impl TaskStatusFilter {
    /// The stored status to filter on (`None`: all).
    pub fn stored(self) -> Option<&'static str> {
        match self {
            Self::Open => Some("open"),
            Self::Done => Some("done"),
            Self::All => None,
        }
    }
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
            let terminal = if code == 0 {
                std::io::stdout().is_terminal()
            } else {
                std::io::stderr().is_terminal()
            };
            let rendered = error.render();
            let text = if colour(terminal) {
                rendered.ansi().to_string()
            } else {
                rendered.to_string()
            };
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
        Command::Import { .. }
        | Command::Run { .. }
        | Command::Tick { .. }
        | Command::Status
        | Command::Tasks { .. }
        | Command::Preview { .. }
        | Command::Suppress { .. }
        | Command::Deliveries { .. }
        | Command::Explain { .. }
        | Command::Generate { .. }
        | Command::Demo { .. } => {
            let project = Project::locate(cli.config.as_deref())?;
            let loaded = definitions::load(&project.config_path, &project.display_root);
            let Some(definitions) = loaded.definitions else {
                write!(
                    out,
                    "{}",
                    diagnostic::render_all(&loaded.diagnostics, &loaded.sources)
                )
                .map_err(|e| e.to_string())?;
                return Err(format!(
                    "the definitions have {} errors; fix them first (see `touchline validate`)",
                    loaded.error_count()
                ));
            };
            let root = project
                .config_path
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            init_logging(matches!(cli.command, Command::Run { .. }));
            let context = crate::commands::Context {
                definitions: std::sync::Arc::new(definitions),
                config_path: project.config_path.clone(),
                root,
                database: cli.database.clone(),
                clock: std::sync::Arc::new(crate::clock::SystemClock),
            };
            runtime.block_on(crate::commands::execute(context, cli.command, out))
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

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// Logs go to stderr; `RUST_LOG` overrides the level (info for `run`, warnings otherwise).
/// Whether to colour output going to a terminal (`terminal`) or elsewhere: `NO_COLOR` turns
/// colour off, `CLICOLOR_FORCE` on even into a pipe or file (<https://no-color.org>,
/// <https://bixense.com/clicolors/>).
pub fn colour(terminal: bool) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    if set("CLICOLOR_FORCE") {
        return true;
    }
    terminal && !set("NO_COLOR")
}

fn init_logging(service: bool) {
    let default = if service { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(std::io::stderr().is_terminal()))
        .with_writer(std::io::stderr)
        .try_init();
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
