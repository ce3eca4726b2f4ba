//! `touchline generate`: realistic sample customers for trying touchline out.

use std::io::Write;
use std::path::PathBuf;

use super::{Context, io};
use crate::generate;

/// Write realistic sample customers (CSV and JSONL) for trying touchline out.
#[derive(Debug, clap::Args)]
pub struct Args {
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
}

/// Runs `generate`.
pub fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let until = ctx.time_or_now(args.until.as_deref())?;
    let dir = if args.out.is_absolute() {
        args.out
    } else {
        std::env::current_dir().map_err(io)?.join(args.out)
    };
    let config = &ctx.definitions.config;
    let options = generate::Options {
        accounts: args.accounts,
        seed: args.seed,
        until,
        snapshots: args.snapshots,
        csms: config.csm_ids(),
        goals: config.adoption_goals.keys().cloned().collect(),
    };
    let written = generate::generate(&options, &dir).map_err(io)?;
    writeln!(
        out,
        "wrote {} accounts, {} contacts, {} metric values and {} events to {}",
        written.accounts,
        written.contacts,
        written.metrics,
        written.events,
        dir.display()
    )
    .map_err(io)?;
    Ok(0)
}
