//! `touchline report`: does the programme work? Funnels, conversion, time to value, tier
//! flows, CSM workload and delivery health over a period.

use std::io::Write;

use chrono::Duration;

use clap::ValueEnum;

use super::{Context, io};
use crate::views::report::{self, Scope, VALUE_LIMIT_DAYS};

/// Show whether the journeys work over a period: per journey the funnel and goal
/// conversion (by tier and adoption goal), time to value per adoption goal, tier flows, CSM
/// workload and delivery health.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Start of the period (default: 30 days before --to).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the period (default: now).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Only this journey.
    #[arg(long)]
    journey: Option<String>,
    /// Only accounts in this tier (now).
    #[arg(long)]
    tier: Option<String>,
    /// Only accounts holding this adoption goal.
    #[arg(long)]
    goal: Option<String>,
    /// Days after its start within which an account should reach value.
    #[arg(long, default_value_t = VALUE_LIMIT_DAYS)]
    value_within: i64,
    /// Output: text, json, or html (one self-contained page).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    /// Write the report to this file instead of printing it (for `--format html`).
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
}

/// How `touchline report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// For people, in a terminal.
    Text,
    /// One JSON document.
    Json,
    /// One self-contained HTML page with charts.
    Html,
}

/// Runs `report`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let to = ctx.time_or_now(args.to.as_deref())?;
    let from = match &args.from {
        Some(text) => crate::clock::parse_time(text)?,
        None => to - Duration::days(30),
    };
    if from >= to {
        return Err(format!(
            "the period is empty: --from {} is not before --to {}",
            from.to_rfc3339(),
            to.to_rfc3339()
        ));
    }
    let scope = Scope {
        from,
        to,
        journey: args.journey,
        tier: args.tier,
        goal: args.goal,
        value_limit_days: args.value_within.max(1),
    };
    report::check_scope(&ctx.definitions, &scope).map_err(|e| e.to_string())?;
    let store = ctx.open_store().await?;
    let view = crate::with_store!(&store, |s| report::build(s, &ctx.definitions, scope).await)
        .map_err(|e| e.to_string())?;
    let rendered = match args.format {
        ReportFormat::Text => report::text(&view),
        ReportFormat::Json => {
            serde_json::to_string_pretty(&view).map_err(|e| e.to_string())? + "\n"
        }
        ReportFormat::Html => report::html(&view)?,
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, rendered)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            writeln!(out, "wrote the report to {}", path.display()).map_err(io)?;
        }
        None => write!(out, "{rendered}").map_err(io)?,
    }
    Ok(0)
}
