//! `touchline tick`: one pass of the engine at a time, then delivery.

use std::io::Write;

use super::{Context, io};
use crate::delivery::{self, Deliverer};
use crate::engine::Engine;
use crate::with_store;

/// Run one pass of the engine and exit.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The time of the pass (default: now), e.g. 2026-11-23T09:00:00Z.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Re-evaluate every account, not only those whose data changed.
    #[arg(long)]
    full: bool,
}

/// Runs `tick`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let now = ctx.time_or_now(args.now.as_deref())?;
    let store = ctx.open_store().await?;
    with_store!(store, |s| {
        let engine = Engine::new(ctx.definitions.clone(), s);
        if args.full {
            engine
                .request_full_reevaluation()
                .await
                .map_err(|e| e.to_string())?;
        }
        let report = engine.tick(now).await.map_err(|e| e.to_string())?;
        writeln!(out, "{}", report.describe(now)).map_err(io)?;
        let outbox_dir = delivery::outbox_dir(&ctx.definitions);
        let deliverer = Deliverer::new(ctx.definitions.clone(), engine.store().clone(), outbox_dir);
        let delivered = deliverer
            .deliver_due(now)
            .await
            .map_err(|e| e.to_string())?;
        writeln!(out, "{}", delivered.describe()).map_err(io)?;
        Ok(0)
    })
}
