//! `touchline tasks`: CSM tasks by CSM; done, snooze, reassign.

use std::io::Write;

use super::{Context, Format, io, print};
use crate::store::{Store, TaskStatus};
use crate::task_desk;
use crate::views::tasks;
use crate::with_store;

/// List CSM tasks, mark them done, snooze or reassign them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do (default: list open tasks).
    #[command(subcommand)]
    action: Option<Action>,
}

/// `touchline tasks` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List tasks by CSM.
    List {
        /// Only this CSM's tasks.
        #[arg(long)]
        csm: Option<String>,
        /// Which tasks.
        #[arg(long, value_enum, default_value_t = StatusFilter::Open)]
        status: StatusFilter,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Mark a task done.
    Done {
        /// The task's number.
        id: i64,
        /// What was done, kept with the task.
        #[arg(long)]
        note: Option<String>,
    },
    /// Put a task out of the way until a time.
    Snooze {
        /// The task's number.
        id: i64,
        /// Until when, e.g. `2026-12-07` or `2026-12-07T09:00:00-06:00`.
        until: String,
    },
    /// Give a task to another CSM.
    Reassign {
        /// The task's number.
        id: i64,
        /// The CSM's id.
        csm: String,
    },
}

/// Which tasks `touchline tasks list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    /// Open tasks.
    Open,
    /// Done tasks.
    Done,
    /// Every task.
    All,
}

impl StatusFilter {
    /// The stored status to filter on (`None`: all).
    pub fn stored(self) -> Option<TaskStatus> {
        match self {
            Self::Open => Some(TaskStatus::Open),
            Self::Done => Some(TaskStatus::Done),
            Self::All => None,
        }
    }
}

/// Runs `tasks`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let store = ctx.open_store().await?;
    let action = args.action.unwrap_or(Action::List {
        csm: None,
        status: StatusFilter::Open,
        format: Format::Text,
    });
    with_store!(store, |s| act(ctx, &s, action, out).await)
}

async fn act<S: Store>(
    ctx: &Context,
    store: &S,
    action: Action,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let now = ctx.clock.now();
    let result = match action {
        Action::List {
            csm,
            status,
            format,
        } => {
            let view = tasks::build(
                store,
                &ctx.definitions.config,
                csm.as_deref(),
                status.stored(),
            )
            .await
            .map_err(|e| e.to_string())?;
            print(out, format, &view, |v| tasks::text(v))?;
            return Ok(0);
        }
        Action::Done { id, note } => task_desk::done(store, id, note, ACTOR, now).await,
        Action::Snooze { id, until } => {
            let until = crate::clock::parse_time(&until)?;
            task_desk::snooze(store, id, until, ACTOR, now).await
        }
        Action::Reassign { id, csm } => {
            task_desk::reassign(store, &ctx.definitions, id, &csm, ACTOR, now).await
        }
    };
    let done = result.map_err(|e| e.to_string())?;
    writeln!(out, "{}", done.message).map_err(io)?;
    Ok(0)
}

/// Who changes tasks from the command line, in a task's history.
const ACTOR: &str = "cli";
