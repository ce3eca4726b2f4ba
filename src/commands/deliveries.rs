//! `touchline deliveries`: outbox records and why they failed; retry, replay, re-enable.

use std::io::Write;

use super::{Context, Format, io, print};
use crate::clock::to_millis;
use crate::store::{DeliveryStatus, Store};
use crate::views::deliveries;
use crate::with_store;

/// List outbox deliveries by status, retry a failed one or replay a sent one.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do (default: list pending, failed and dead records).
    #[command(subcommand)]
    action: Option<Action>,
}

/// `touchline deliveries` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List records.
    List {
        /// Which records (default: the ones that need attention: pending, failed, dead).
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        /// Most records to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Try a failed or dead record again, now, with its attempts reset.
    Retry {
        /// The record's number.
        id: i64,
    },
    /// Deliver a sent record once more (its idempotency key stays the same).
    Replay {
        /// The record's number.
        id: i64,
    },
    /// Turn a webhook endpoint back on after it answered 410 Gone.
    Enable {
        /// The endpoint's name in touchline.yaml.
        endpoint: String,
    },
}

/// Which records `touchline deliveries list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    /// Waiting for their time (a retry, a send window, the frequency cap).
    Pending,
    /// Being delivered now.
    Sending,
    /// Held by the blast-radius guard (see `touchline hold`).
    Held,
    /// Delivered.
    Sent,
    /// Not sent on purpose (suppressed, over the frequency cap).
    Skipped,
    /// Failed for good.
    Failed,
    /// Out of attempts.
    Dead,
    /// Never sent: the subject is in the journey's holdout.
    HeldOut,
    /// Every record.
    All,
}

impl StatusFilter {
    /// The stored statuses it selects.
    pub fn stored(self) -> Vec<DeliveryStatus> {
        let one = match self {
            Self::Pending => DeliveryStatus::Pending,
            Self::Sending => DeliveryStatus::Sending,
            Self::Held => DeliveryStatus::Held,
            Self::Sent => DeliveryStatus::Sent,
            Self::Skipped => DeliveryStatus::Skipped,
            Self::Failed => DeliveryStatus::Failed,
            Self::Dead => DeliveryStatus::Dead,
            Self::HeldOut => DeliveryStatus::HeldOut,
            Self::All => return DeliveryStatus::ALL.to_vec(),
        };
        vec![one]
    }
}

/// Runs `deliveries`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let store = ctx.open_store().await?;
    let now = to_millis(ctx.clock.now());
    let action = args.action.unwrap_or(Action::List {
        status: None,
        limit: 50,
        format: Format::Text,
    });
    with_store!(store, |s| act(&s, action, now, out).await)
}

async fn act<S: Store>(
    store: &S,
    action: Action,
    now: i64,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let requeue = |id: i64, from: &'static [DeliveryStatus], verb: &'static str| async move {
        match store
            .requeue(id, from, now)
            .await
            .map_err(|e| e.to_string())?
        {
            true => Ok(format!(
                "delivery #{id} {verb}: it goes out in the next delivery round"
            )),
            false => {
                let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
                Err(format!("no delivery #{id} that is {}", from.join(" or ")))
            }
        }
    };
    let said = match action {
        Action::List {
            status,
            limit,
            format,
        } => {
            use DeliveryStatus::*;
            let statuses = status.map_or(vec![Pending, Held, Failed, Dead], StatusFilter::stored);
            let view = deliveries::build(store, &statuses, limit)
                .await
                .map_err(|e| e.to_string())?;
            print(out, format, &view, |v| deliveries::text(v, &statuses))?;
            return Ok(0);
        }
        Action::Retry { id } => {
            let from = &[DeliveryStatus::Failed, DeliveryStatus::Dead];
            requeue(id, from, "queued again").await?
        }
        Action::Replay { id } => requeue(id, &[DeliveryStatus::Sent], "queued for replay").await?,
        Action::Enable { endpoint } => {
            let enabled = crate::delivery::enable_endpoint(store, &endpoint)
                .await
                .map_err(|e| e.to_string())?;
            if !enabled {
                return Err(format!("endpoint `{endpoint}` is not disabled"));
            }
            format!(
                "endpoint `{endpoint}` is on again; retry its failed records with `touchline deliveries retry ID`"
            )
        }
    };
    writeln!(out, "{said}").map_err(io)?;
    Ok(0)
}
