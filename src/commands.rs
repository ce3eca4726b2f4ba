//! The commands that work on a database: import, tick, status, explain, generate, demo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::cli::{Command, DeliveryAction, SuppressAction, TaskAction};
use crate::clock::{Clock, parse_time};
use crate::definitions::Definitions;
use crate::delivery::{self, Deliverer, DeliveryReport};
use crate::engine::{Engine, PassReport};
use crate::ingest::{self, Kind};
use crate::store::{self, AnyStore, Store};
use crate::{daemon, generate, report, with_store};

/// What every database command needs.
#[derive(Debug)]
pub struct Context {
    /// The project's definitions.
    pub definitions: Arc<Definitions>,
    /// The project's `touchline.yaml`.
    pub config_path: PathBuf,
    /// The project folder.
    pub root: PathBuf,
    /// `--database`, overriding `touchline.yaml`.
    pub database: Option<String>,
    /// Where "now" comes from when a command is not told a time.
    pub clock: Arc<dyn Clock>,
}

impl Context {
    fn database_url(&self) -> String {
        self.database
            .clone()
            .or_else(|| self.definitions.config.database.clone())
            .unwrap_or_else(|| store::DEFAULT_DATABASE_URL.to_string())
    }

    async fn open(&self, url: &str) -> Result<AnyStore, String> {
        store::open(url, &self.root)
            .await
            .map_err(|e| format!("cannot open {url}: {e}"))
    }
}

fn io(error: std::io::Error) -> String {
    error.to_string()
}

impl Context {
    /// `text` as a time, or the clock's now.
    fn time_or_now(&self, text: Option<&str>) -> Result<DateTime<Utc>, String> {
        text.map_or_else(|| Ok(self.clock.now()), parse_time)
    }
}

/// Runs a database command.
pub async fn execute(ctx: Context, command: Command, out: &mut dyn Write) -> Result<i32, String> {
    match command {
        Command::Generate {
            accounts,
            out: dir,
            seed,
            until,
            snapshots,
        } => {
            let until = ctx.time_or_now(until.as_deref())?;
            let dir = if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir().map_err(io)?.join(dir)
            };
            let options = generate::Options {
                accounts,
                seed,
                until,
                snapshots,
                csms: ctx.definitions.config.csm_ids(),
                goals: ctx
                    .definitions
                    .config
                    .adoption_goals
                    .keys()
                    .cloned()
                    .collect(),
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
        Command::Import {
            kind,
            file,
            skip_bad_rows,
        } => {
            let store = ctx.open(&ctx.database_url()).await?;
            with_store!(store, |s| import(&s, kind, &file, skip_bad_rows, out).await)
        }
        Command::Tick { now, full } => {
            let now = ctx.time_or_now(now.as_deref())?;
            let store = ctx.open(&ctx.database_url()).await?;
            with_store!(store, |s| {
                let engine = Engine::new(ctx.definitions.clone(), s);
                if full {
                    engine
                        .request_full_reevaluation()
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let report = engine.tick(now).await.map_err(|e| e.to_string())?;
                writeln!(out, "{}", describe_pass(now, &report)).map_err(io)?;
                let outbox_dir = delivery::outbox_dir(&ctx.definitions);
                let deliverer =
                    Deliverer::new(ctx.definitions.clone(), engine.store().clone(), outbox_dir);
                let delivered = deliverer
                    .deliver_due(now)
                    .await
                    .map_err(|e| e.to_string())?;
                writeln!(out, "{}", describe_delivery(&delivered)).map_err(io)?;
                Ok(0)
            })
        }
        Command::Status => {
            let store = ctx.open(&ctx.database_url()).await?;
            with_store!(store, |s| {
                let text = report::status(&s, &ctx.definitions, 3)
                    .await
                    .map_err(|e| e.to_string())?;
                write!(out, "{text}").map_err(io)?;
                Ok(0)
            })
        }
        Command::Explain { account, now } => {
            let now = ctx.time_or_now(now.as_deref())?;
            let store = ctx.open(&ctx.database_url()).await?;
            with_store!(store, |s| {
                match report::explain(&s, &ctx.definitions, &account, now)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(text) => {
                        write!(out, "{text}").map_err(io)?;
                        Ok(0)
                    }
                    None => Err(format!("no account `{account}`")),
                }
            })
        }
        Command::Demo { days, sample } => demo(&ctx, days, &sample, out).await,
        Command::Deliveries { action } => {
            let store = ctx.open(&ctx.database_url()).await?;
            with_store!(store, |s| deliveries(&s, action, ctx.clock.now(), out)
                .await)
        }
        Command::Tasks { action } => {
            let store = ctx.open(&ctx.database_url()).await?;
            with_store!(store, |s| tasks(&ctx, &s, action, out).await)
        }
        Command::Suppress { action } => {
            let store = ctx.open(&ctx.database_url()).await?;
            with_store!(store, |s| suppress(&s, action, ctx.clock.now(), out).await)
        }
        Command::Preview {
            journey,
            step,
            account,
            contact,
            out: file,
            send_test,
        } => {
            let store = ctx.open(&ctx.database_url()).await?;
            with_store!(store, |s| {
                let preview = crate::preview::preview(
                    &ctx.definitions,
                    &s,
                    &journey,
                    &step,
                    &account,
                    contact.as_deref(),
                )
                .await?;
                let text = preview.render();
                match &file {
                    Some(path) => {
                        std::fs::write(path, &text)
                            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                        writeln!(out, "wrote {}", path.display()).map_err(io)?;
                    }
                    None => write!(out, "{text}").map_err(io)?,
                }
                if let Some(address) = send_test {
                    if preview.kind != "email" {
                        return Err(format!(
                            "step `{step}` is a {} step: only mail can be sent as a test",
                            preview.kind
                        ));
                    }
                    let record = preview.test_mail(&journey, &step, &account, &address);
                    let deliverer = Deliverer::new(
                        ctx.definitions.clone(),
                        s.clone(),
                        crate::delivery::outbox_dir(&ctx.definitions),
                    );
                    let envelope = crate::delivery::email_file::Envelope {
                        from: ctx.definitions.config.email.from.as_deref(),
                        reply_to: ctx.definitions.config.email.reply_to.as_deref(),
                        ..Default::default()
                    };
                    match deliverer.send_email(&record, &envelope).await {
                        crate::delivery::Attempt::Sent(result) => {
                            writeln!(out, "test mail sent to {address}: {result}").map_err(io)?;
                        }
                        other => return Err(format!("the test mail was not sent: {other:?}")),
                    }
                }
                Ok(0)
            })
        }
        Command::Run { interval, listen } => {
            let store = ctx.open(&ctx.database_url()).await?;
            let options = daemon::Options {
                config_path: ctx.config_path.clone(),
                interval,
                listen,
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
        _ => Err("not a database command".into()),
    }
}

/// `touchline deliveries`: list, retry, replay.
async fn deliveries<S: Store>(
    store: &S,
    action: Option<DeliveryAction>,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let now = crate::clock::to_millis(now);
    let requeue = |id: i64, from: &'static [&'static str], verb: &'static str| async move {
        match store
            .requeue(id, from, now)
            .await
            .map_err(|e| e.to_string())?
        {
            true => Ok(format!(
                "delivery #{id} {verb}: it goes out in the next delivery round"
            )),
            false => Err(format!("no delivery #{id} that is {}", from.join(" or "))),
        }
    };
    match action.unwrap_or(DeliveryAction::List {
        status: None,
        limit: 50,
    }) {
        DeliveryAction::List { status, limit } => {
            let statuses: &[&str] = status.map_or(&["pending", "failed", "dead"], |s| s.stored());
            let rows = store
                .deliveries(statuses, limit)
                .await
                .map_err(|e| e.to_string())?;
            for row in &rows {
                let r = &row.record;
                let target = match r.kind.as_str() {
                    "email" => r.payload["to"].as_str().unwrap_or("?").to_string(),
                    "webhook" => {
                        format!("endpoint {}", r.payload["endpoint"].as_str().unwrap_or("?"))
                    }
                    _ => r.payload["title"].as_str().unwrap_or("?").to_string(),
                };
                let when = row
                    .next_attempt_at
                    .filter(|_| row.status == "pending")
                    .map_or(String::new(), |t| {
                        format!(
                            ", next attempt {}",
                            crate::clock::from_millis(t).format("%Y-%m-%d %H:%M UTC")
                        )
                    });
                let held = row
                    .held_reason
                    .as_deref()
                    .filter(|_| row.status == "pending")
                    .map_or(String::new(), |why| format!("\n         waiting: {why}"));
                let error = row
                    .last_error
                    .as_deref()
                    .map_or(String::new(), |e| format!("\n         last error: {e}"));
                let error = format!("{held}{error}");
                writeln!(
                    out,
                    "  #{:<6} {:<8} {:<7} {}/{} → {target} ({} attempts{when}){error}",
                    row.id, row.status, r.kind, r.journey_id, r.step_id, row.attempts
                )
                .map_err(io)?;
            }
            if rows.is_empty() {
                writeln!(out, "no deliveries with status {}", statuses.join(", ")).map_err(io)?;
            }
            Ok(0)
        }
        DeliveryAction::Retry { id } => {
            writeln!(
                out,
                "{}",
                requeue(id, &["failed", "dead"], "queued again").await?
            )
            .map_err(io)?;
            Ok(0)
        }
        DeliveryAction::Enable { endpoint } => {
            let enabled = crate::delivery::enable_endpoint(store, &endpoint)
                .await
                .map_err(|e| e.to_string())?;
            if enabled {
                writeln!(out, "endpoint `{endpoint}` is on again; retry its failed records with `touchline deliveries retry ID`").map_err(io)?;
                Ok(0)
            } else {
                Err(format!("endpoint `{endpoint}` is not disabled"))
            }
        }
        DeliveryAction::Replay { id } => {
            writeln!(
                out,
                "{}",
                requeue(id, &["sent"], "queued for replay").await?
            )
            .map_err(io)?;
            Ok(0)
        }
    }
}

/// `touchline suppress`: list, add, remove.
async fn suppress<S: Store>(
    store: &S,
    action: Option<SuppressAction>,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<i32, String> {
    match action.unwrap_or(SuppressAction::List) {
        SuppressAction::List => {
            let list = store.suppressions().await.map_err(|e| e.to_string())?;
            for s in &list {
                writeln!(
                    out,
                    "  {:<40} {:<13} {} ({})",
                    s.email,
                    s.reason,
                    crate::clock::from_millis(s.created_at).format("%Y-%m-%d"),
                    s.detail
                )
                .map_err(io)?;
            }
            if list.is_empty() {
                writeln!(out, "no suppressed addresses").map_err(io)?;
            }
            Ok(0)
        }
        SuppressAction::Add {
            email,
            reason,
            note,
        } => {
            crate::delivery::check_suppression_reason(&reason)?;
            let added = store
                .suppress(&crate::store::Suppression {
                    email: email.clone(),
                    reason,
                    detail: note,
                    created_at: crate::clock::to_millis(now),
                })
                .await
                .map_err(|e| e.to_string())?;
            let verb = if added {
                "is now suppressed"
            } else {
                "was already suppressed"
            };
            writeln!(out, "{email} {verb}").map_err(io)?;
            Ok(0)
        }
        SuppressAction::Remove { email } => {
            if store.unsuppress(&email).await.map_err(|e| e.to_string())? {
                writeln!(out, "{email} gets mail again").map_err(io)?;
                Ok(0)
            } else {
                Err(format!("{email} is not suppressed"))
            }
        }
    }
}

/// `touchline tasks`: list, complete, reassign.
async fn tasks<S: Store>(
    ctx: &Context,
    store: &S,
    action: Option<TaskAction>,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let now = crate::clock::to_millis(ctx.clock.now());
    match action.unwrap_or(TaskAction::List {
        csm: None,
        status: crate::cli::TaskStatusFilter::Open,
    }) {
        TaskAction::List { csm, status } => {
            let mut tasks = store
                .tasks(csm.as_deref(), status.stored())
                .await
                .map_err(|e| e.to_string())?;
            // Grouped by CSM (unassigned last), oldest first within each.
            tasks.sort_by(|a, b| {
                (a.task.assignee.is_none(), &a.task.assignee, a.id).cmp(&(
                    b.task.assignee.is_none(),
                    &b.task.assignee,
                    b.id,
                ))
            });
            let mut current: Option<Option<String>> = None;
            for task in &tasks {
                if current.as_ref() != Some(&task.task.assignee) {
                    let who = task
                        .task
                        .assignee
                        .as_deref()
                        .and_then(|id| ctx.definitions.config.csm(id));
                    let heading = who.map_or_else(
                        || "Unassigned".to_string(),
                        |c| format!("{} ({})", c.name, c.id.value),
                    );
                    writeln!(out, "{heading}").map_err(io)?;
                    current = Some(task.task.assignee.clone());
                }
                let due = task.task.due_at.map_or(String::new(), |d| {
                    format!(", due {}", crate::clock::from_millis(d).format("%Y-%m-%d"))
                });
                writeln!(
                    out,
                    "  #{:<5} [{}{}] {} — {} ({}{due})",
                    task.id,
                    task.task.priority,
                    if task.status == "done" { ", done" } else { "" },
                    task.task.title,
                    task.task.account_id,
                    task.task.journey_id
                )
                .map_err(io)?;
            }
            if tasks.is_empty() {
                writeln!(out, "no tasks").map_err(io)?;
            }
            Ok(0)
        }
        TaskAction::Done { id } => {
            if store
                .update_task(id, Some("done"), None, now)
                .await
                .map_err(|e| e.to_string())?
            {
                writeln!(out, "task #{id} done").map_err(io)?;
                Ok(0)
            } else {
                Err(format!("no task #{id}"))
            }
        }
        TaskAction::Reassign { id, csm } => {
            let config = &ctx.definitions.config;
            if config.csm(&csm).is_none() {
                return Err(crate::definitions::config::no_such_csm(
                    &csm,
                    &config.csm_ids(),
                ));
            }
            if store
                .update_task(id, None, Some(&csm), now)
                .await
                .map_err(|e| e.to_string())?
            {
                writeln!(out, "task #{id} reassigned to {csm}").map_err(io)?;
                Ok(0)
            } else {
                Err(format!("no task #{id}"))
            }
        }
    }
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

/// One line saying what a delivery round did.
pub fn describe_delivery(r: &DeliveryReport) -> String {
    use crate::text::count;
    format!(
        "delivered: {}, {}, {} created, {} updated, {} to retry, {} failed, {} held (send window or frequency cap), {} skipped (suppressed or over the cap)",
        count(r.emails, "email", "emails"),
        count(r.webhooks, "webhook", "webhooks"),
        count(r.tasks_created, "task", "tasks"),
        count(r.tasks_updated, "task", "tasks"),
        r.retried,
        r.failed,
        r.deferred,
        r.skipped
    )
}

/// One line saying what a pass did.
pub fn describe_pass(now: DateTime<Utc>, r: &PassReport) -> String {
    use crate::text::count;
    let mut text = format!(
        "pass at {}: {} evaluated ({}), {}, {}, {} enrolled, {}, {}",
        now.format("%Y-%m-%d %H:%M UTC"),
        count(r.evaluated, "account", "accounts"),
        count(r.tier_changes, "tier change", "tier changes"),
        count(r.events, "event", "events"),
        count(r.schedule_fires, "schedule run", "schedule runs"),
        r.enrolled,
        count(r.moved, "move", "moves"),
        count(r.outbox, "outbox record", "outbox records"),
    );
    if r.rule_errors > 0 {
        text.push_str(&format!(
            ", {} (see the log)",
            count(r.rule_errors, "rule error", "rule errors")
        ));
    }
    if r.full_reevaluation {
        text.push_str(" — definitions changed, every account re-evaluated");
    }
    text
}

/// Imports a file in two reads: the first finds every bad row (nothing is written if there
/// is one, unless skipping was asked for), the second streams the good rows into the store
/// in one transaction. Memory stays bounded whatever the file's size.
async fn import<S: Store>(
    store: &S,
    kind: Kind,
    file: &Path,
    skip_bad_rows: bool,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("checking {}", file.display()));
    let scan = ingest::FileReader::open(kind, file)
        .map_err(|e| e.to_string())?
        .scan(&mut |rows| {
            bar.set_message(format!("checking {}: {rows} rows", file.display()));
            bar.tick();
        });
    bar.finish_and_clear();
    let report_bad = |out: &mut dyn Write, prefix: &str| -> Result<(), String> {
        for bad in scan.bad.iter().take(20) {
            writeln!(out, "{prefix}{}: {bad}", file.display()).map_err(io)?;
        }
        if scan.bad_count > 20 {
            writeln!(out, "… and {} more bad rows", scan.bad_count - 20).map_err(io)?;
        }
        Ok(())
    };
    if scan.bad_count > 0 && !skip_bad_rows {
        report_bad(out, "")?;
        writeln!(
            out,
            "rejected {}: {} of {} rows are bad; nothing was imported (fix them, or pass --skip-bad-rows)",
            file.display(),
            scan.bad_count,
            scan.rows
        )
        .map_err(io)?;
        return Ok(1);
    }
    let bar = indicatif::ProgressBar::new(scan.rows as u64);
    if scan.rows >= 5000 {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} rows ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("importing {}", file.display()));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let reader = ingest::FileReader::open(kind, file).map_err(|e| e.to_string())?;
    let tracked = ProgressChunks {
        reader,
        bar: bar.clone(),
    };
    let outcome = store.import_all(tracked).await.map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    report_bad(out, "skipped ")?;
    writeln!(
        out,
        "imported {}: {} rows, {} new or changed, {} unchanged{}",
        file.display(),
        scan.rows,
        outcome.changed,
        outcome.unchanged,
        if scan.bad_count == 0 {
            String::new()
        } else {
            format!(", {} skipped", scan.bad_count)
        }
    )
    .map_err(io)?;
    Ok(0)
}

/// File chunks that move a progress bar as they are read.
struct ProgressChunks {
    reader: ingest::FileReader,
    bar: indicatif::ProgressBar,
}

impl Iterator for ProgressChunks {
    type Item = crate::store::Import;

    fn next(&mut self) -> Option<Self::Item> {
        let chunk = self.reader.next_chunk();
        self.bar.set_position(self.reader.rows_read as u64);
        chunk
    }
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
    let deliverer = Deliverer::new(Arc::new(local), store, outbox_dir.clone())
        .with_secrets(|_| Some("whsec_ZGVtby1zZWNyZXQtZm9yLXRoZS1leGFtcGxl".into()));
    writeln!(out).map_err(io)?;
    for day in 0..=days {
        let now = start + Duration::days(day);
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
            writeln!(out, "{}", describe_pass(now, &report)).map_err(io)?;
            writeln!(out, "  {}", describe_delivery(&delivered)).map_err(io)?;
        }
    }
    let text = report::status(engine.store(), &ctx.definitions, 3)
        .await
        .map_err(|e| e.to_string())?;
    writeln!(out, "\n{text}").map_err(io)?;
    writeln!(
        out,
        "Step emails are in {}/, webhooks as received in {}/; CSM tasks: touchline --database sqlite://demo.db tasks",
        outbox_dir.display(),
        webhooks_dir.display()
    )
    .map_err(io)?;
    writeln!(
        out,
        "Explore: touchline --database sqlite://demo.db explain acc-000001 --now {}",
        (start + Duration::days(days)).format("%Y-%m-%d")
    )
    .map_err(io)?;
    Ok(0)
}
