//! `touchline suppress`: the suppression list.

use std::io::Write;

use super::{Context, Format, io, print};
use crate::clock::to_millis;
use crate::store::{Store, Suppression};
use crate::views::suppressions;
use crate::with_store;

/// The suppression list: addresses no step email goes to.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do (default: list).
    #[command(subcommand)]
    action: Option<Action>,
}

/// `touchline suppress` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List suppressed addresses.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
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

/// Runs `suppress`.
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
    match action {
        Action::List { format } => {
            let view = suppressions::build(store)
                .await
                .map_err(|e| e.to_string())?;
            print(out, format, &view, |v| suppressions::text(v))?;
        }
        Action::Add {
            email,
            reason,
            note,
        } => {
            crate::delivery::check_suppression_reason(&reason)?;
            let added = store
                .suppress(&Suppression {
                    email: email.clone(),
                    reason,
                    detail: note,
                    created_at: now,
                })
                .await
                .map_err(|e| e.to_string())?;
            let verb = if added {
                "is now suppressed"
            } else {
                "was already suppressed"
            };
            writeln!(out, "{email} {verb}").map_err(io)?;
        }
        Action::Remove { email } => {
            if !store.unsuppress(&email).await.map_err(|e| e.to_string())? {
                return Err(format!("{email} is not suppressed"));
            }
            writeln!(out, "{email} gets mail again").map_err(io)?;
        }
    }
    Ok(0)
}
