//! `touchline preview`: one step rendered for one customer, strictly; a test send.

use std::io::Write;
use std::path::PathBuf;

use super::{Context, io};
use crate::delivery::email_file::Envelope;
use crate::delivery::{self, Attempt, Deliverer};
use crate::preview::preview;
use crate::store::Store;
use crate::with_store;

/// Render one step for one customer (mail subject, text and HTML; task; webhook body),
/// strictly: a field the customer lacks is named. `--send-test` mails it once.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The journey's id (its file name).
    journey: String,
    /// The step's id.
    step: String,
    /// The account to render for.
    #[arg(long)]
    account: String,
    /// The contact to render for (contact journeys; default for account mails: the
    /// first contact with an addressed role).
    #[arg(long)]
    contact: Option<String>,
    /// Write the preview to this file instead of the terminal.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Send the rendered mail once to this address (over SMTP, or into the outbox folder).
    #[arg(long, value_name = "ADDRESS")]
    send_test: Option<String>,
}

/// Runs `preview`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let store = ctx.open_store().await?;
    with_store!(store, |s| show(&args, ctx, &s, out).await)
}

async fn show<S: Store>(
    args: &Args,
    ctx: &Context,
    store: &S,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let rendered = preview(
        &ctx.definitions,
        store,
        &args.journey,
        &args.step,
        &args.account,
        args.contact.as_deref(),
        ctx.clock.now(),
    )
    .await?;
    let text = rendered.render();
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            writeln!(out, "wrote {}", path.display()).map_err(io)?;
        }
        None => write!(out, "{text}").map_err(io)?,
    }
    let Some(address) = &args.send_test else {
        return Ok(0);
    };
    let Some(record) = rendered.test_mail(&args.journey, &args.step, &args.account, address) else {
        return Err(format!(
            "step `{}` is a {} step: only mail can be sent as a test",
            args.step, rendered.kind
        ));
    };
    let deliverer = Deliverer::new(
        ctx.definitions.clone(),
        store.clone(),
        delivery::outbox_dir(&ctx.definitions),
    );
    let envelope = Envelope::default();
    match deliverer.send_email(&record, &envelope).await {
        Attempt::Sent(result) => {
            writeln!(out, "test mail sent to {address}: {result}").map_err(io)?;
            Ok(0)
        }
        other => Err(format!("the test mail was not sent: {other:?}")),
    }
}
