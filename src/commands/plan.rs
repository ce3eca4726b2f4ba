//! `touchline plan`: what the engine would do over the next days, and what an edit would
//! change — worked out on a copy of the database, so nothing is written or sent.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use chrono::Duration;
use clap::ValueEnum;

use super::{Context, io};
use crate::definitions::values::DurationSpec;
use crate::definitions::{self, CONFIG_FILE, Definitions};
use crate::diagnostic;
use crate::plan::{self, Outcome, Span};
use crate::store::{self, AnyStore};
use crate::views::plan as view;

/// Simulate the next days on a copy of the database (read-only: nothing is written to it or
/// sent) and show per journey and step what would happen; with `--against`, what an edited
/// set of definitions would do instead.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Days to simulate.
    #[arg(long, default_value_t = 14)]
    days: i64,
    /// Time between simulated passes (deliveries run at least hourly regardless).
    #[arg(long, default_value = "1d")]
    every: DurationSpec,
    /// Edited definitions to compare with: a project folder (another checkout) or a git
    /// revision of this project (a branch, tag or commit).
    #[arg(long, value_name = "REV|DIR")]
    against: Option<String>,
    /// When the plan starts (default: now).
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Output: text, json, or markdown (for a pull-request comment).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
}

/// How `touchline plan` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For people.
    Text,
    /// One JSON document.
    Json,
    /// A markdown table, for a pull-request comment.
    Markdown,
}

/// Runs `plan`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let started = Instant::now();
    let scratch = tempfile::tempdir().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let against = match &args.against {
        Some(spec) => match edited_definitions(ctx, spec, scratch.path(), out)? {
            Some(definitions) => Some((spec.as_str(), Arc::new(definitions))),
            None => return Ok(1),
        },
        None => None,
    };
    let url = ctx.database_url();
    if !url.starts_with("sqlite:") {
        return Err(format!(
            "touchline plan works on a copy of a SQLite database; {url} is not one (copy the data into SQLite with `touchline import`, or plan against a SQLite snapshot)"
        ));
    }
    let from = ctx.time_or_now(args.now.as_deref())?;
    let span = Span {
        from,
        to: from + Duration::days(args.days.max(0)),
        every: args.every.as_chrono(),
    };
    let live_copy = scratch.path().join("live.db");
    store::copy_sqlite(&url, &ctx.root, &live_copy)
        .await
        .map_err(|e| format!("cannot read {url}: {e}"))?;
    let bar = progress_bar(span.steps() * if against.is_some() { 2 } else { 1 });
    let live = spawn(ctx.definitions.clone(), &live_copy, span, bar.clone());
    let edited = match &against {
        Some((_, definitions)) => {
            let copy = scratch.path().join("edited.db");
            std::fs::copy(&live_copy, &copy).map_err(io)?;
            Some(spawn(definitions.clone(), &copy, span, bar.clone()))
        }
        None => None,
    };
    let live = join(live).await?;
    let edited = match edited {
        Some(task) => Some(join(task).await?),
        None => None,
    };
    bar.finish_and_clear();
    let plan = view::build(
        &ctx.definitions,
        span,
        &live,
        against
            .as_ref()
            .zip(edited.as_ref())
            .map(|((label, _), o)| (*label, o)),
        started.elapsed().as_secs_f64(),
    );
    match args.format {
        PlanFormat::Text => write!(out, "{}", view::text(&plan)).map_err(io)?,
        PlanFormat::Markdown => write!(out, "{}", view::markdown(&plan)).map_err(io)?,
        PlanFormat::Json => {
            let json = serde_json::to_string_pretty(&plan).map_err(|e| e.to_string())?;
            writeln!(out, "{json}").map_err(io)?;
        }
    }
    Ok(0)
}

type Simulated = tokio::task::JoinHandle<Result<Outcome, String>>;

/// Simulates `definitions` over the database copy at `path`, on a task of its own (the live
/// and the edited plan run side by side).
fn spawn(
    definitions: Arc<Definitions>,
    path: &Path,
    span: Span,
    bar: indicatif::ProgressBar,
) -> Simulated {
    let url = format!("sqlite://{}", path.display());
    tokio::spawn(async move {
        let AnyStore::Sqlite(store) = store::open(&url, Path::new("/"))
            .await
            .map_err(|e| format!("cannot open the plan's copy of the database: {e}"))?
        else {
            return Err("the plan's copy is not SQLite".into());
        };
        plan::simulate(definitions, store, span, &mut |_| bar.inc(1)).await
    })
}

async fn join(task: Simulated) -> Result<Outcome, String> {
    task.await
        .map_err(|e| format!("the simulation stopped: {e}"))?
}

/// A progress bar on a terminal's stderr; hidden otherwise.
fn progress_bar(steps: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(steps);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "simulating {bar:40} {percent:>3}% {elapsed} (eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Loads the edited definitions: a folder holding a project, or a git revision of this one
/// (read with `git archive` into `scratch`). Prints their problems and returns `None` when
/// they do not validate.
fn edited_definitions(
    ctx: &Context,
    spec: &str,
    scratch: &Path,
    out: &mut dyn Write,
) -> Result<Option<Definitions>, String> {
    let folder = Path::new(spec);
    let config = if folder.is_dir() {
        folder.join(CONFIG_FILE)
    } else if folder.is_file() {
        folder.to_path_buf()
    } else {
        checkout(&ctx.root, spec, &scratch.join("against"))?.join(CONFIG_FILE)
    };
    if !config.is_file() {
        return Err(format!(
            "{} has no {CONFIG_FILE}",
            config.parent().unwrap_or(folder).display()
        ));
    }
    // Loaded as the live ones are (paths relative to the project), so identical definitions
    // have the same fingerprint and do not cost a full re-evaluation; problems are shown
    // under the name of what was compared.
    if let Some(definitions) = definitions::load(&config, Path::new("")).definitions {
        return Ok(Some(definitions));
    }
    let loaded = definitions::load(&config, Path::new(spec));
    match loaded.definitions {
        Some(definitions) => Ok(Some(definitions)),
        None => {
            write!(
                out,
                "{}",
                diagnostic::render_all(&loaded.diagnostics, &loaded.sources)
            )
            .map_err(io)?;
            writeln!(
                out,
                "the definitions at {spec} have {}; a plan needs definitions that validate",
                crate::text::count(loaded.error_count() as u64, "error", "errors")
            )
            .map_err(io)?;
            Ok(None)
        }
    }
}

/// Writes the project as it is at git revision `rev` into `into`; the project folder there.
fn checkout(root: &Path, rev: &str, into: &Path) -> Result<PathBuf, String> {
    let git = |args: &[&str]| -> Result<String, String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .map_err(|e| format!("`--against {rev}` is not a folder, and git cannot run: {e}"))?;
        if !output.status.success() {
            let why = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(format!(
                "`--against {rev}` is neither a folder nor a git revision of this project{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{rev}^{{commit}}"),
    ])?;
    let prefix = git(&["rev-parse", "--show-prefix"])?;
    std::fs::create_dir_all(into).map_err(io)?;
    let mut archive = Command::new("git")
        .args(["archive", "--format=tar", rev, "--", "."])
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("git archive: {e}"))?;
    let stdout = archive.stdout.take().ok_or("git archive gave no output")?;
    let untar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(into)
        .stdin(stdout)
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    let archived = archive.wait().map_err(|e| format!("git archive: {e}"))?;
    if !archived.success() || !untar.success() {
        return Err(format!(
            "cannot read revision {rev} of the project with git archive"
        ));
    }
    Ok(into.join(prefix))
}
