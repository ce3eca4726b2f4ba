//! `touchline tasks`: CSM tasks by CSM; done, reassign.

use std::io::Write;

use super::{Context, Format, io, print};
use crate::clock::to_millis;
use crate::store::{Store, TaskStatus};
use crate::views::tasks;
use crate::with_store;

/// List CSM tasks, mark them done, or reassign them.
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
    let now = to_millis(ctx.clock.now());
    let (id, csm) = match action {
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
        Action::Done { id } => (id, None),
        Action::Reassign { id, csm } => {
            let config = &ctx.definitions.config;
            if config.csm(&csm).is_none() {
                return Err(crate::definitions::config::no_such_csm(
                    &csm,
                    &config.csm_ids(),
                ));
            }
            (id, Some(csm))
        }
    };
    let status = csm.is_none().then_some(TaskStatus::Done);
    let updated = store
        .update_task(id, status, csm.as_deref(), now)
        .await
        .map_err(|e| e.to_string())?;
    if !updated {
        return Err(format!("no task #{id}"));
    }
    match csm {
        Some(csm) => writeln!(out, "task #{id} reassigned to {csm}"),
        None => writeln!(out, "task #{id} done"),
    }
    .map_err(io)?;
    Ok(0)
}
