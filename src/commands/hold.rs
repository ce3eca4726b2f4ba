//! `touchline hold`: journeys the blast-radius guard held; release or discard their records.

use std::io::Write;

use super::{Context, Format, io, print};
use crate::clock::to_millis;
use crate::store::Store;
use crate::views::holds;
use crate::with_store;

/// Journeys held by the blast-radius guard: list them, release or discard their records.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do (default: list).
    #[command(subcommand)]
    action: Option<Action>,
}

/// `touchline hold` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List the journeys on hold.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Send a held journey's records (once each) and end the hold.
    Release {
        /// The journey's id.
        journey: String,
    },
    /// Drop a held journey's records (kept as skipped, with why) and end the hold.
    Discard {
        /// The journey's id.
        journey: String,
    },
}

/// Runs `hold`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let store = ctx.open_store().await?;
    let action = args.action.unwrap_or(Action::List {
        format: Format::Text,
    });
    let now = to_millis(ctx.clock.now());
    with_store!(store, |s| act(&s, action, now, out).await)
}

async fn act<S: Store>(
    store: &S,
    action: Action,
    now: i64,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let (journey, release) = match action {
        Action::List { format } => {
            let view = holds::build(store).await.map_err(|e| e.to_string())?;
            print(out, format, &view, |v| holds::text(v))?;
            return Ok(0);
        }
        Action::Release { journey } => (journey, true),
        Action::Discard { journey } => (journey, false),
    };
    let records = store
        .end_hold(&journey, release, now)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("journey `{journey}` is not on hold"))?;
    let done = if release {
        "released: they go out in the next delivery round"
    } else {
        "discarded"
    };
    writeln!(
        out,
        "{journey}: {} {done}",
        crate::text::count(records, "record", "records")
    )
    .map_err(io)?;
    Ok(0)
}
