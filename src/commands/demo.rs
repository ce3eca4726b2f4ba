//! `touchline demo`: the bundled example, end to end, in a fresh demo database.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Duration;

use super::{Context, io};
use crate::delivery::{self, Deliverer, DeliveryReport};
use crate::engine::Engine;
use crate::ingest::{self, Kind};
use crate::store::{AnyStore, Store};
use crate::views::status;

/// Run the bundled example end to end: import the sample customers into a fresh
/// demo database, run the engine over simulated days, and show the result.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Days to simulate after the sample's last day of data.
    #[arg(long, default_value_t = 14)]
    days: i64,
    /// Folder holding the sample customers.
    #[arg(long, default_value = "sample")]
    sample: PathBuf,
}

/// Runs `demo`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    demo(ctx, args.days, &args.sample, out).await
}

/// The README's first command: the bundled example, end to end, in a fresh demo database.
async fn demo(ctx: &Context, days: i64, sample: &Path, out: &mut dyn Write) -> Result<i32, String> {
    let sample = if sample.is_absolute() {
        sample.to_path_buf()
    } else {
        ctx.root.join(sample)
    };
    let db = ctx.root.join("demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let url = format!("sqlite://{}", db.display());
    let AnyStore::Sqlite(store) = ctx.open(&url).await? else {
        return Err("the demo runs on SQLite".into());
    };
    writeln!(
        out,
        "touchline demo: bundled journeys, sample customers from {}, database {}\n",
        sample.display(),
        db.display()
    )
    .map_err(io)?;
    let mut last_day = None;
    for (kind, name) in [
        (Kind::Accounts, "accounts.csv"),
        (Kind::Contacts, "contacts.csv"),
        (Kind::Metrics, "metrics.csv"),
        (Kind::Events, "events.jsonl"),
    ] {
        let file = sample.join(name);
        let parsed = ingest::FileReader::open(kind, &file)
            .map_err(|e| e.to_string())?
            .read_all();
        if let Some(bad) = parsed.bad.first() {
            return Err(format!("{}: {bad}", file.display()));
        }
        if kind == Kind::Metrics {
            last_day = parsed.import.metrics.iter().map(|m| m.at).max();
        }
        let outcome = store
            .import(&parsed.import)
            .await
            .map_err(|e| e.to_string())?;
        writeln!(out, "imported {name}: {} rows", outcome.changed).map_err(io)?;
    }
    let start = last_day
        .unwrap_or_else(|| ctx.clock.now())
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(|| ctx.clock.now());
    let outbox_dir = ctx.root.join("demo-outbox");
    let _ = std::fs::remove_dir_all(&outbox_dir);
    let engine = Engine::new(ctx.definitions.clone(), store.clone());
    // Webhooks go to a receiver of the demo's own, so the example needs no network; it
    // signs with a demo secret wherever the project names one.
    let webhooks_dir = outbox_dir.join("webhooks");
    let receiver = delivery::receiver::start(webhooks_dir.clone())
        .await
        .map_err(|e| format!("cannot start the demo's webhook receiver: {e}"))?;
    let local = delivery::receiver::redirect_endpoints(&ctx.definitions, receiver);
    let deliverer = Deliverer::new(Arc::new(local), store.clone(), outbox_dir.clone())
        .with_secrets(|_| Some("whsec_ZGVtby1zZWNyZXQtZm9yLXRoZS1leGFtcGxl".into()));
    writeln!(out).map_err(io)?;
    let mut customers = crate::customer_model::CustomerModel::new(7);
    for day in 0..=days {
        let now = start + Duration::days(day);
        if day > 0 {
            // The sample customers live on: usage moves, mails have (or lack) effects,
            // some accounts leave.
            let lived = customers
                .day(&store, now)
                .await
                .map_err(|e| e.to_string())?;
            store.import(&lived).await.map_err(|e| e.to_string())?;
        }
        let report = engine.tick(now).await.map_err(|e| e.to_string())?;
        // Deliver through the day, as the service does: mail waits for each recipient's
        // send window in their own time zone.
        let mut delivered = DeliveryReport::default();
        for hour in 0..24 {
            let round = deliverer
                .deliver_due(now + Duration::hours(hour))
                .await
                .map_err(|e| e.to_string())?;
            delivered.add(&round);
        }
        if !report.is_idle() || day == 0 {
            writeln!(out, "{}", report.describe(now)).map_err(io)?;
            writeln!(out, "  {}", delivered.describe()).map_err(io)?;
        }
    }
    let view = status::build(engine.store(), &ctx.definitions, 3)
        .await
        .map_err(|e| e.to_string())?;
    writeln!(out, "\n{}", status::text(&view)).map_err(io)?;
    writeln!(
        out,
        "Step emails are in {}/, webhooks as received in {}/; CSM tasks: touchline --database sqlite://demo.db tasks",
        outbox_dir.display(),
        webhooks_dir.display()
    )
    .map_err(io)?;
    if !view.holds.is_empty() {
        writeln!(
            out,
            "Journeys held by the blast-radius guard: touchline --database sqlite://demo.db hold list (then hold release or hold discard)"
        )
        .map_err(io)?;
    }
    let report_path = ctx.root.join("demo-report.html");
    let scope = crate::views::report::Scope {
        from: start - Duration::days(30),
        to: start + Duration::days(days + 1),
        journey: None,
        tier: None,
        goal: None,
        value_limit_days: crate::views::report::VALUE_LIMIT_DAYS,
    };
    let report = crate::views::report::build(engine.store(), &ctx.definitions, scope)
        .await
        .map_err(|e| e.to_string())?;
    std::fs::write(&report_path, crate::views::report::html(&report)?)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    writeln!(
        out,
        "The report (funnels, conversion, time to value, tier flows, CSM workload, which steps work, whether the scores predict churn): {} (touchline report for text)",
        report_path.display()
    )
    .map_err(io)?;
    writeln!(
        out,
        "CSM inbox: touchline --database sqlite://demo.db run, then open the sign-in link in a notice mail in {}/ (or: touchline --database sqlite://demo.db csm link ana)",
        outbox_dir.display()
    )
    .map_err(io)?;
    let end = (start + Duration::days(days)).format("%Y-%m-%d");
    writeln!(
        out,
        "Explore: touchline --database sqlite://demo.db explain acc-000001 --now {end}"
    )
    .map_err(io)?;
    writeln!(
        out,
        "\nBefore changing a journey:\n  touchline test                     run the journey tests in journey-tests/ (one per bundled journey)\n  touchline --database sqlite://demo.db plan --now {end} [--against BRANCH|FOLDER]\n                                     what the next two weeks would bring, and what your edit would change"
    )
    .map_err(io)?;
    Ok(0)
}
