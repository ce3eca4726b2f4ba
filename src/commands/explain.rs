//! `touchline explain ACCOUNT`: why an account is where it is.

use std::io::Write;

use super::{Context, Format, print};
use crate::views::explain;
use crate::with_store;

/// Explain an account: facts, scores and their inputs, tier, and every journey's verdict.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The account's id.
    account: String,
    /// Evaluate as of this time (default: now).
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Runs `explain`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let now = ctx.time_or_now(args.now.as_deref())?;
    let store = ctx.open_store().await?;
    let view = with_store!(store, |s| {
        explain::build(&s, &ctx.definitions, &args.account, now).await
    })
    .map_err(|e| e.to_string())?
    .ok_or_else(|| format!("no account `{}`", args.account))?;
    print(out, args.format, &view, explain::text)?;
    Ok(0)
}
