//! `touchline status`: accounts per tier, enrollments, the outbox, open tasks.

use std::io::Write;

use super::{Context, Format, print};
use crate::views::status;
use crate::with_store;

/// Show accounts per tier, enrollments per journey and step, and the outbox.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Runs `status`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let store = ctx.open_store().await?;
    let view = with_store!(store, |s| status::build(&s, &ctx.definitions, 3).await)
        .map_err(|e| e.to_string())?;
    print(out, args.format, &view, status::text)?;
    Ok(0)
}
