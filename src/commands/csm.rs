//! `touchline csm link CSM`: a link that signs a CSM in to their inbox.

use std::io::Write;

use super::{Context, io};
use crate::delivery::signin::{self, PageKeys};
use crate::delivery::unsubscribe::{UnsubscribeKey, public_url};

/// Things about CSMs.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    action: Action,
}

/// `touchline csm` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Print a link that signs the CSM in to their inbox (valid for 7 days).
    Link {
        /// The CSM's id.
        csm: String,
    },
}

/// Runs `csm`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let Action::Link { csm } = args.action;
    let config = &ctx.definitions.config;
    if config.csm(&csm).is_none() {
        return Err(crate::definitions::config::no_such_csm(
            &csm,
            &config.csm_ids(),
        ));
    }
    let store = ctx.open_store().await?;
    let key = crate::with_store!(store, |s| UnsubscribeKey::load(config, &s).await)
        .map_err(|e| e.to_string())?;
    let link = signin::link(
        &public_url(config),
        &PageKeys::new(&key),
        &csm,
        ctx.clock.now().timestamp(),
    );
    writeln!(out, "{link}").map_err(io)?;
    Ok(0)
}
