//! `touchline run`: the service — passes, delivery, the HTTP API, reload on edits.

use super::Context;
use crate::daemon;
use crate::with_store;

/// Run the engine as a service: passes continuously, the HTTP API, reload on edits.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Longest time between passes (data arriving through the API starts one sooner).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    interval: std::time::Duration,
    /// Address for the HTTP API (default: `http.listen` in touchline.yaml).
    #[arg(long, value_name = "ADDRESS")]
    listen: Option<String>,
    /// Log format: `text` for people, `json` (one object per line) for log shippers.
    #[arg(long, value_enum, env = "TOUCHLINE_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How `touchline run` writes its log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// Runs the service until Ctrl-C or SIGTERM.
pub async fn run(args: Args, ctx: &Context) -> Result<i32, String> {
    let store = ctx.open_store().await?;
    let options = daemon::Options {
        config_path: ctx.config_path.clone(),
        interval: args.interval,
        listen: args.listen,
        token: None,
    };
    let clock = ctx.clock.clone();
    with_store!(store, |s| daemon::run(
        ctx.definitions.clone(),
        s,
        clock,
        options,
        shutdown_signal(),
        None
    )
    .await)?;
    Ok(0)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
