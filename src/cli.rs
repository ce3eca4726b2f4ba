//! The `touchline` command line: parses arguments and hands each command to its module in
//! [`crate::commands`]. `main` is a thin wrapper around [`run`], so tests can drive the
//! whole program in-process.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::commands::{
    self, Context, Project, csm, deliveries, demo, explain, generate, hold, import, init, plan,
    preview, report, run, schema, status, suppress, tasks, test, tick, validate,
};
use crate::definitions;
use crate::diagnostic;

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

/// Commands; each is defined by its module in `commands/`.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Start a new project: touchline.yaml, an onboarding journey, its templates and schemas.
    Init(init::Args),
    /// Check touchline.yaml, every journey, score script and template, and report every problem.
    Validate(validate::Args),
    /// Import accounts, contacts, metric values or events from a .csv or .jsonl file.
    Import(import::Args),
    /// Run one pass of the engine and exit.
    Tick(tick::Args),
    /// Run the engine as a service: passes continuously, the HTTP API, reload on edits.
    Run(run::Args),
    /// Show accounts per tier, enrollments per journey and step, and the outbox.
    Status(status::Args),
    /// List outbox deliveries by status, retry a failed one or replay a sent one.
    Deliveries(deliveries::Args),
    /// Render one step for one customer (mail subject, text and HTML; task; webhook body),
    /// strictly: a field the customer lacks is named. `--send-test` mails it once.
    Preview(preview::Args),
    /// The suppression list: addresses no step email goes to.
    Suppress(suppress::Args),
    /// List CSM tasks, mark them done, snooze or reassign them.
    Tasks(tasks::Args),
    /// CSMs: a link that signs one in to their inbox.
    Csm(csm::Args),
    /// Journeys held by the blast-radius guard: list them, release or discard their records.
    Hold(hold::Args),
    /// Run the journey tests: small timelines played through the engine in memory, with
    /// what should come of them.
    Test(test::Args),
    /// Simulate the next days on a copy of the database and show what would happen; with
    /// `--against`, what an edited set of definitions would change.
    Plan(plan::Args),
    /// Show whether the journeys work: funnels, conversion, time to value, tier flows, CSM
    /// workload and delivery health over a period.
    Report(report::Args),
    /// Explain an account: facts, scores and their inputs, tier, and every journey's verdict.
    Explain(explain::Args),
    /// Write realistic sample customers (CSV and JSONL) for trying touchline out.
    Generate(generate::Args),
    /// Run the bundled example end to end: import the sample customers into a fresh
    /// demo database, run the engine over simulated days, and show the result.
    Demo(demo::Args),
    /// Print the JSON Schema of a definitions file, for editor completion.
    Schema(schema::Args),
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
        Command::Init(args) => init::run(args, out),
        Command::Schema(args) => schema::run(args, out),
        Command::Validate(args) => {
            let project = Project::locate(cli.config.as_deref())?;
            validate::run(args, &project, out)
        }
        command => {
            let ctx = context(cli.config.as_deref(), cli.database, out)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            let log_format = match &command {
                Command::Run(args) => Some(args.log_format),
                _ => None,
            };
            // A journey test's rule errors are part of what it checks (an unknown score, a
            // tier kept), not news for the log.
            let quiet = matches!(command, Command::Test(_) | Command::Plan(_));
            init_logging(log_format, quiet);
            runtime.block_on(dispatch(command, &ctx, out))
        }
    }
}

/// Runs a command on a loaded project.
async fn dispatch(command: Command, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    match command {
        Command::Import(args) => import::run(args, ctx, out).await,
        Command::Tick(args) => tick::run(args, ctx, out).await,
        Command::Run(args) => run::run(args, ctx).await,
        Command::Status(args) => status::run(args, ctx, out).await,
        Command::Deliveries(args) => deliveries::run(args, ctx, out).await,
        Command::Preview(args) => preview::run(args, ctx, out).await,
        Command::Suppress(args) => suppress::run(args, ctx, out).await,
        Command::Tasks(args) => tasks::run(args, ctx, out).await,
        Command::Csm(args) => csm::run(args, ctx, out).await,
        Command::Hold(args) => hold::run(args, ctx, out).await,
        Command::Explain(args) => explain::run(args, ctx, out).await,
        Command::Test(args) => test::run(args, ctx, out).await,
        Command::Plan(args) => plan::run(args, ctx, out).await,
        Command::Report(args) => report::run(args, ctx, out).await,
        Command::Generate(args) => generate::run(args, ctx, out),
        Command::Demo(args) => demo::run(args, ctx, out).await,
        Command::Init(_) | Command::Schema(_) | Command::Validate(_) => {
            Err("not a project command".into())
        }
    }
}

/// Finds and loads the project; on invalid definitions prints them and fails.
fn context(
    config: Option<&Path>,
    database: Option<String>,
    out: &mut dyn Write,
) -> Result<Context, String> {
    let project = Project::locate(config)?;
    let loaded = definitions::load(&project.config_path, &project.display_root);
    let Some(definitions) = loaded.definitions else {
        write!(
            out,
            "{}",
            diagnostic::render_all(&loaded.diagnostics, &loaded.sources)
        )
        .map_err(commands::io)?;
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
    Ok(Context {
        definitions: Arc::new(definitions),
        config_path: project.config_path,
        root,
        database,
        clock: Arc::new(crate::clock::SystemClock),
    })
}

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

/// Logs go to stderr; `RUST_LOG` overrides the level (info for `run`, warnings otherwise).
/// `run` can log one JSON object per line for log shippers.
fn init_logging(service: Option<run::LogFormat>, quiet: bool) {
    let default = match (service, quiet) {
        (Some(_), _) => "info",
        (None, true) => "error",
        (None, false) => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match service {
        Some(run::LogFormat::Json) => logs.json().try_init(),
        _ => logs
            .with_ansi(colour(std::io::stderr().is_terminal()))
            .try_init(),
    };
}
