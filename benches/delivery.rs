//! The delivery benchmark: `cargo bench --bench delivery -- [--records N] [--repeat R]`
//! (release build).
//!
//! Walks N accounts (20 000 by default) through a mail step and, separately, a webhook step,
//! and measures how fast the outbox worker delivers them beside an independent floor in the
//! same run, at the same concurrency. Floor and touchline take turns R times (3 by default)
//! and the medians are compared: on a 2-core machine either figure moves by a fifth from one
//! run to the next.
//!
//! - mail into Postfix's `smtp-sink`, beside Postfix's own `smtp-source` (reused
//!   connections, 2 KB mails) into the same sink. Without Postfix's tools (`apt-get install
//!   postfix`) the comparison is skipped and says so.
//! - webhooks signed to a local HTTP sink that verifies every signature, beside a bare
//!   reqwest client doing the same signing.
//!
//! To profile touchline's deliveries alone (not the filling of the outbox, nor the floors):
//! `mkfifo /tmp/ctl; TOUCHLINE_BENCH_PERF_CTL=/tmp/ctl perf record -D -1 --control
//! fifo:/tmp/ctl -g <bench binary> --only webhook`.

#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;
#[path = "../tests/support/webhook_sink.rs"]
mod webhook_sink;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures_util::StreamExt;
use touchline::delivery::email_file::Envelope;
use touchline::delivery::{Attempt, CONCURRENCY, Deliverer, unsubscribe, webhook};
use touchline::engine::Engine;
use touchline::model::{Account, Contact, Event};
use touchline::store::{AnyStore, Import, Payload, Store};

const SECRET: &str = "whsec_YmVuY2htYXJrLXNpZ25pbmctc2VjcmV0LWtleQ==";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The median of some figures, with their range, as the benchmark prints them.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut figures: Vec<f64>) -> Self {
        figures.sort_by(f64::total_cmp);
        Self {
            median: figures[figures.len() / 2],
            min: figures[0],
            max: figures[figures.len() - 1],
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>8.0} ({:.0}–{:.0})", self.median, self.min, self.max)
    }
}

fn rate(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
}

/// CPU time this process used per record since `before` (every thread: the client, and the
/// HTTP sink where it runs in this process too), in microseconds.
fn cpu_per_record(before: Duration, count: usize) -> f64 {
    (process::cpu_used() - before).as_secs_f64() * 1e6 / count.max(1) as f64
}

const CONFIG: &str = "timezone: UTC
adoption_goals:
  fleet: { name: Fleet }
scores:
  usage: { formula: '50.0' }
tiers:
  - { tier: tech }
email:
  from: Success <success@example.com>
";

/// The webhook step both webhook measurements use.
const WEBHOOK_STEP: &str = "  - id: crm\n    webhook: { endpoint: crm, body: { account: '{{ account.id }}', name: '{{ account.name }}' } }\n";

/// The `webhooks:` settings for an endpoint at `url`.
fn webhook_config(url: &str) -> String {
    format!(
        "webhooks:\n  crm: {{ url: \"{url}\", allow_private: true, secret_env: [BENCH_SECRET] }}\n"
    )
}

/// A welcome mail of about 2 KB as sent: a text and an HTML part.
const WELCOME: &str = "subject: 'Welcome, {{ account.name }}'
text: |
  Hi {{ contact.first_name | default('there') }},

  Your account {{ account.name }} is ready. Connect your first vehicles today: plug a
  tracker into each one, and they appear on the map within a minute. Invite your
  dispatchers from the Team page so they can plan routes.
html: |
  <p>Hi {{ contact.first_name | default('there') }},</p>
  <p>Your account {{ account.name }} is ready. Connect your first vehicles today: plug a
  tracker into each one, and they appear on the map within a minute.</p>
  <p>Invite your dispatchers from the <a href=\"https://app.example.com/team\">Team page</a>
  so they can plan routes.</p>
";

/// The mail benchmark's one step.
const MAIL_STEP: &str = "  - id: mail\n    email: { template: welcome, to: [admin] }\n";

/// Config sending mail to the SMTP server on `port` of this machine.
fn smtp_config(port: u16) -> String {
    format!("  smtp: {{ host: 127.0.0.1, port: {port}, tls: none }}\n")
}

/// A project with one journey whose only step is `step`, extra config `extra`.
fn project(dir: &Path, step: &str, extra: &str) {
    std::fs::create_dir_all(dir.join("journeys")).expect("mkdir");
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir");
    std::fs::write(dir.join("touchline.yaml"), format!("{CONFIG}{extra}")).expect("config");
    std::fs::write(dir.join("templates/welcome.yaml"), WELCOME).expect("template");
    std::fs::write(
        dir.join("journeys/kickoff.yaml"),
        format!(
            "name: Kickoff\naudience: accounts\nentry: {{ event: account_created }}\nsteps:\n{step}"
        ),
    )
    .expect("journey");
}

/// A fresh project (one journey with `step`, extra config `extra`) and database in a
/// folder of its own, with `n` accounts waiting at the step.
async fn fresh(
    step: &str,
    extra: &str,
    n: usize,
) -> (
    tempfile::TempDir,
    touchline::store::SqliteStore,
    Arc<touchline::definitions::Definitions>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    project(dir.path(), step, extra);
    let (store, definitions) = prepared(dir.path(), n).await;
    (dir, store, definitions)
}

/// Opens a fresh SQLite store in `dir`, imports `n` accounts with an admin each, and runs
/// the engine once so every account has one outbox record waiting.
async fn prepared(
    dir: &Path,
    n: usize,
) -> (
    touchline::store::SqliteStore,
    Arc<touchline::definitions::Definitions>,
) {
    let store = match touchline::store::open("sqlite://touchline.db", dir)
        .await
        .expect("open")
    {
        AnyStore::Sqlite(store) => store,
        AnyStore::Postgres(_) => unreachable!("a sqlite URL"),
    };
    let definitions = fill(&store, dir, n).await;
    (store, definitions)
}

/// Imports `n` accounts with an admin each into `store` and runs the engine once, so every
/// account has one outbox record waiting.
async fn fill<S: Store>(
    store: &S,
    dir: &Path,
    n: usize,
) -> Arc<touchline::definitions::Definitions> {
    let at = Utc
        .with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
        .single()
        .expect("time");
    let mut import = Import::default();
    for i in 0..n {
        import.accounts.push(Account {
            id: format!("a{i}"),
            name: format!("Account {i}"),
            goals: vec!["fleet".into()],
            status: "active".into(),
            ..Account::default()
        });
        import.contacts.push(Contact {
            id: format!("c{i}"),
            account_id: format!("a{i}"),
            email: format!("admin{i}@example.com"),
            first_name: Some(format!("Pat{i}")),
            role: Some("admin".into()),
            subscribed: true,
            ..Contact::default()
        });
        import.events.push(Event {
            key: format!("a{i}-created"),
            account_id: format!("a{i}"),
            contact_id: None,
            name: "account_created".into(),
            at,
            properties: Default::default(),
        });
    }
    store.import(&import).await.expect("import");
    let loaded = touchline::definitions::load(&dir.join("touchline.yaml"), Path::new(""));
    let definitions = Arc::new(loaded.definitions.expect("valid project"));
    Engine::new(definitions.clone(), store.clone())
        .tick(at)
        .await
        .expect("tick");
    definitions
}

/// The size of one of the benchmark's mails as touchline writes it (into a file outbox),
/// so smtp-source sends mails of the same size.
async fn mail_size() -> usize {
    let dir = tempfile::tempdir().expect("temp dir");
    project(dir.path(), MAIL_STEP, "");
    let (store, definitions) = prepared(dir.path(), 1).await;
    let outbox = dir.path().join("outbox");
    Deliverer::new(definitions, store, outbox.clone())
        .deliver_due(Utc::now())
        .await
        .expect("deliver");
    let file = std::fs::read_dir(&outbox)
        .expect("outbox")
        .next()
        .expect("one mail")
        .expect("entry");
    file.metadata().expect("size").len() as usize
}

/// A database of its own on the PostgreSQL server at `admin_url`, dropped with the value.
struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    async fn create(admin_url: &str) -> Self {
        use sqlx::Connection as _;
        let name = format!(
            "touchline_bench_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("PostgreSQL reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        let base = admin_url
            .split('?')
            .next()
            .and_then(|u| u.rsplit_once('/'))
            .map_or(admin_url, |(base, _)| base);
        Self {
            admin_url: admin_url.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    async fn drop_now(self) {
        use sqlx::Connection as _;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

/// Webhooks per second that `engines` `touchline tick` processes deliver side by side from
/// one PostgreSQL database holding `n` waiting records.
async fn engines_rate(
    admin_url: &str,
    sink: &webhook_sink::WebhookSink,
    engines: usize,
    n: usize,
) -> (f64, f64) {
    let database = ScratchDatabase::create(admin_url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    project(dir.path(), WEBHOOK_STEP, &webhook_config(&sink.url));
    match touchline::store::open(&database.url, dir.path())
        .await
        .expect("open")
    {
        AnyStore::Postgres(store) => fill(&store, dir.path(), n).await,
        AnyStore::Sqlite(_) => unreachable!("a PostgreSQL URL"),
    };
    let before = sink.received().len();
    let (start, machine) = (Instant::now(), process::MachineCpu::now());
    let children: Vec<std::process::Child> = (0..engines)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_touchline"))
                .args(["--database", &database.url, "tick"])
                .current_dir(dir.path())
                .env("BENCH_SECRET", SECRET)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("touchline tick")
        })
        .collect();
    for mut child in children {
        assert!(
            child.wait().expect("wait").success(),
            "touchline tick failed"
        );
    }
    let (took, busy) = (
        start.elapsed(),
        process::MachineCpu::now().busy_since(machine),
    );
    assert_eq!(
        sink.received().len() - before,
        n,
        "every record delivered once"
    );
    database.drop_now().await;
    (rate(n, took), busy)
}

async fn touchline_rate(
    dir: &Path,
    definitions: Arc<touchline::definitions::Definitions>,
    store: touchline::store::SqliteStore,
    n: usize,
) -> (f64, f64) {
    let deliverer = Deliverer::new(definitions, store, dir.join("outbox"))
        .with_secrets(|_| Some(SECRET.into()));
    let (start, cpu) = (Instant::now(), process::cpu_used());
    profiler("enable");
    let report = deliverer.deliver_due(Utc::now()).await.expect("deliver");
    profiler("disable");
    let took = start.elapsed();
    let delivered = (report.emails + report.webhooks) as usize;
    assert_eq!(delivered, n, "{report:?}");
    (rate(n, took), cpu_per_record(cpu, n))
}

/// Tells `perf record --control fifo:CTL -D -1` to sample only touchline's deliveries, when
/// `TOUCHLINE_BENCH_PERF_CTL` names that control FIFO: a profile of a whole turn is mostly
/// filling the outbox and the floors.
fn profiler(command: &str) {
    if let Ok(path) = std::env::var("TOUCHLINE_BENCH_PERF_CTL") {
        use std::io::Write as _;
        let sent = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut fifo| fifo.write_all(format!("{command}\n").as_bytes()));
        if let Err(error) = sent {
            eprintln!("could not tell perf to {command} through {path}: {error}");
        }
    }
}

/// touchline's mail path without the store: the records claimed beforehand, then each
/// built and sent over touchline's SMTP connections (with its unsubscribe link, as
/// delivered), none read for its recipient or marked. Beside the full delivery it shows
/// what the store's work per mail costs.
async fn transport_rate(
    dir: &Path,
    definitions: Arc<touchline::definitions::Definitions>,
    store: touchline::store::SqliteStore,
    n: usize,
) -> (f64, f64) {
    let now = Utc::now();
    let items = store
        .claim_outbox(
            &["email"],
            now.timestamp_millis(),
            "bench",
            3_600_000,
            n as i64,
        )
        .await
        .expect("claim");
    assert_eq!(items.len(), n, "every record claimed");
    let deliverer = Deliverer::new(definitions.clone(), store, dir.join("outbox"));
    let key = deliverer
        .unsubscribe_key()
        .await
        .expect("unsubscribe key")
        .clone();
    let (start, cpu) = (Instant::now(), process::cpu_used());
    let sent = successes(items.into_iter().map(move |item| {
        let (deliverer, definitions, key) = (deliverer.clone(), definitions.clone(), key.clone());
        async move {
            let Payload::Email(mail) = &item.record.payload else {
                return false;
            };
            let config = &definitions.config;
            let envelope = Envelope {
                unsubscribe: Some(unsubscribe::link(config, &key, &mail.to, now.timestamp())),
                ..Envelope::default()
            };
            matches!(
                deliverer.send_email(&item.record, &envelope).await,
                Attempt::Sent(_)
            )
        }
    }))
    .await;
    assert_eq!(sent, n, "every mail sent");
    (rate(n, start.elapsed()), cpu_per_record(cpu, n))
}

/// The floor of the store's own work: SQLite claiming and marking the `n` records waiting
/// in `dir`'s database, with the statements touchline runs on an SQLite file (`store/
/// sqlite_outbox.rs`), 200 claimed and 100 marked at a time, in plain rusqlite on one thread
/// (no network, no async). Microseconds per record.
fn sqlite_claim_and_mark_us(dir: &Path, n: usize) -> f64 {
    let db = rusqlite::Connection::open(dir.join("touchline.db")).expect("open");
    db.pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
    let (start, mut records) = (Instant::now(), 0);
    loop {
        db.execute(
            "UPDATE outbox SET status = 'pending', claimed_by = NULL WHERE status = 'sending' AND lease_until < ?1",
            [2_000_000_000_000_i64],
        )
        .expect("expire leases");
        let mut claim = db
            .prepare_cached(
                "UPDATE outbox SET status = 'sending', claimed_by = 'floor', lease_until = ?1, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 \
                 AND kind IN ('task', 'email', 'webhook') ORDER BY next_attempt_at, id LIMIT 200) \
                 RETURNING id, idempotency_key, enrollment_id, journey_id, step_id, kind, account_id, contact_id, attempts",
            )
            .expect("claim");
        let claimed: Vec<i64> = claim
            .query_map([2_000_000_000_000_i64], |row| {
                let _: (String, i64, String, String, String, String, String, i64) = (
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                );
                row.get(0)
            })
            .expect("claim")
            .collect::<Result<_, _>>()
            .expect("claimed rows");
        if claimed.is_empty() {
            break;
        }
        let mut payload = db
            .prepare_cached("SELECT payload FROM outbox_payloads WHERE id = ?1")
            .expect("payloads");
        for id in &claimed {
            let _: String = payload.query_row([id], |row| row.get(0)).expect("payload");
        }
        for batch in claimed.chunks(100) {
            let tx =
                rusqlite::Transaction::new_unchecked(&db, rusqlite::TransactionBehavior::Immediate)
                    .expect("begin");
            let mut mark = tx
                .prepare_cached(
                    "UPDATE outbox SET status = 'sent', result = ?3, held_reason = NULL, delivered_at = ?4, \
                     claimed_by = NULL, lease_until = NULL \
                     WHERE id = ?1 AND claimed_by = ?2 AND status = 'sending'",
                )
                .expect("mark");
            for id in batch {
                records += mark
                    .execute(rusqlite::params![id, "floor", "200 OK", 1])
                    .expect("mark");
            }
            drop(mark);
            tx.commit().expect("commit");
        }
    }
    assert_eq!(records, n, "every record claimed and marked");
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Runs `calls`, [`CONCURRENCY`] at a time, on a runtime worker (as touchline's deliveries
/// run); how many succeeded.
async fn successes<F>(calls: impl Iterator<Item = F> + Send + 'static) -> usize
where
    F: Future<Output = bool> + Send + 'static,
{
    tokio::spawn(
        futures_util::stream::iter(calls)
            .buffer_unordered(CONCURRENCY)
            .filter(|ok| std::future::ready(*ok))
            .count(),
    )
    .await
    .expect("the calls' task")
}

/// Postfix's `smtp-sink`, listening on a free port until dropped.
struct PostfixSink {
    child: std::process::Child,
    port: u16,
}

impl PostfixSink {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = std::process::Command::new(postfix_tool("smtp-sink")?)
            .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "512"])
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self { child, port });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The CPU time the sink has used so far.
    fn cpu_used(&self) -> Duration {
        process::cpu_used_by(&self.child.id().to_string())
    }
}

impl Drop for PostfixSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Postfix keeps a tool, if it is installed.
fn postfix_tool(name: &str) -> Option<std::path::PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
}

/// The floor: Postfix's `smtp-source` sending `n` mails of `size` bytes over `sessions`
/// reused connections.
fn smtp_source_rate(port: u16, n: usize, sessions: usize, size: usize) -> Option<f64> {
    let start = Instant::now();
    let status = std::process::Command::new(postfix_tool("smtp-source")?)
        .args(["-d", "-s", &sessions.to_string(), "-l", &size.to_string()])
        .args(["-m", &n.to_string(), "-f", "success@example.com"])
        .args(["-t", "bench@example.com", &format!("127.0.0.1:{port}")])
        .status()
        .ok()?;
    status.success().then(|| rate(n, start.elapsed()))
}

async fn bare_http_rate(url: &str, n: usize) -> (f64, f64) {
    let client = reqwest::Client::new();
    let key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .expect("secret")
    };
    let (start, cpu) = (Instant::now(), process::cpu_used());
    let url = url.to_string();
    let sent = successes((0..n).map(move |i| {
        let (client, key, url) = (client.clone(), key.clone(), url.clone());
        async move {
            let id = format!("bare-{i}");
            // The body touchline's webhook step sends for the same account (`fill`).
            let body = serde_json::to_vec(
                &serde_json::json!({ "account": format!("a{i}"), "name": format!("Account {i}") }),
            )
            .expect("json");
            let timestamp = Utc::now().timestamp();
            let signature = webhook::signature(&[key], &id, timestamp, &body);
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    }))
    .await;
    assert_eq!(sent, n);
    (rate(n, start.elapsed()), cpu_per_record(cpu, n))
}

#[tokio::main]
async fn main() {
    let n: usize = arg("--records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let repeat: usize = arg("--repeat")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    println!(
        "delivery benchmark: {n} records per channel, {CONCURRENCY} in flight, {repeat} turns each, medians (min–max) (--records N, --repeat R, --only email|webhook|scale-out)\n"
    );

    let only = arg("--only");
    let runs = |channel: &str| only.as_deref().is_none_or(|o| o == channel);

    // Email over SMTP, into Postfix's smtp-sink beside Postfix's smtp-source.
    match PostfixSink::start().filter(|_| runs("email")) {
        Some(sink) => {
            let size = mail_size().await;
            let (mut floors, mut ours, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
            let mut sink_cpu = Vec::new();
            let (mut transports, mut transport_cpu) = (Vec::new(), Vec::new());
            for _ in 0..repeat {
                // Each turn on a fresh project and database.
                let (dir, store, definitions) = fresh(MAIL_STEP, &smtp_config(sink.port), n).await;
                floors
                    .push(smtp_source_rate(sink.port, n, CONCURRENCY, size).expect("smtp-source"));
                let sink_before = sink.cpu_used();
                let (rate, cpu_us) = touchline_rate(dir.path(), definitions, store, n).await;
                ours.push(rate);
                cpu.push(cpu_us);
                sink_cpu.push((sink.cpu_used() - sink_before).as_secs_f64() * 1e6 / n as f64);
                let (dir, store, definitions) = fresh(MAIL_STEP, &smtp_config(sink.port), n).await;
                let (rate, cpu_us) = transport_rate(dir.path(), definitions, store, n).await;
                transports.push(rate);
                transport_cpu.push(cpu_us);
            }
            let (floor, ours) = (Spread::of(floors), Spread::of(ours));
            println!(
                "email    touchline {ours} mails/s   Postfix smtp-source {floor} mails/s   ({:.0}% of smtp-source, medians of {repeat}; {size}-byte mails, {CONCURRENCY} connections each)",
                100.0 * ours.median / floor.median
            );
            let (cpu, sink_cpu) = (Spread::of(cpu).median, Spread::of(sink_cpu).median);
            println!(
                "         touchline's CPU per mail {cpu:.1} µs, smtp-sink's {sink_cpu:.1} µs (medians): at 80% of smtp-source's rate they would keep {:.2} of the machine's {} cores busy",
                (cpu + sink_cpu) * 1e-6 * 0.8 * floor.median,
                std::thread::available_parallelism().map_or(1, |n| n.get())
            );
            let transport = Spread::of(transports);
            println!(
                "         touchline's SMTP connections alone {transport} mails/s ({:.0}% of smtp-source), CPU per mail {:.1} µs: the same mails built and sent, none claimed, read for or marked in the store",
                100.0 * transport.median / floor.median,
                Spread::of(transport_cpu).median
            );
        }
        None if !runs("email") => {}
        None => println!(
            "email    skipped: Postfix's smtp-sink and smtp-source are not installed (apt-get install postfix)"
        ),
    }

    if runs("webhook") {
        // Webhooks.
        let sink = webhook_sink::WebhookSink::start(SECRET, Vec::new()).await;
        let (mut bares, mut ours) = (Vec::new(), Vec::new());
        let (mut bare_cpu, mut our_cpu) = (Vec::new(), Vec::new());
        let mut store_floor = Vec::new();
        for _ in 0..repeat {
            // Each turn on a fresh project and database.
            let (dir, store, definitions) =
                fresh(WEBHOOK_STEP, &webhook_config(&sink.url), n).await;
            let (rate, cpu) = bare_http_rate(&sink.url, n).await;
            bares.push(rate);
            bare_cpu.push(cpu);
            let (rate, cpu) = touchline_rate(dir.path(), definitions, store, n).await;
            ours.push(rate);
            our_cpu.push(cpu);
            let (dir, store, _) = fresh(WEBHOOK_STEP, &webhook_config(&sink.url), n).await;
            drop(store);
            store_floor.push(sqlite_claim_and_mark_us(dir.path(), n));
        }
        let (bare, ours) = (Spread::of(bares), Spread::of(ours));
        println!(
            "webhook  touchline {ours} calls/s   bare reqwest client {bare} calls/s   ({:.0}% of bare, medians of {repeat})",
            100.0 * ours.median / bare.median
        );
        let bare_us = Spread::of(bare_cpu).median;
        println!(
            "         CPU per call, the HTTP sink's included: touchline {:.1} µs, bare {bare_us:.1} µs (medians)",
            Spread::of(our_cpu).median,
        );
        // The bare client keeps no state; touchline claims and marks each record in its
        // database. On a machine the two keep busy, that work alone caps touchline below
        // the bare client.
        let floor_us = Spread::of(store_floor).median;
        println!(
            "         SQLite's own work to claim and mark a record {floor_us:.1} µs (the same statements in plain rusqlite, one thread): bare plus that is {:.0}% of bare's rate at the same CPU",
            100.0 * bare_us / (bare_us + floor_us)
        );
        let verified = sink.received().iter().filter(|r| r.verified).count();
        println!(
            "         the HTTP sink verified {verified} of {} signatures",
            sink.received().len()
        );
    }

    if runs("scale-out") {
        // Scale-out: one engine process against two, on one PostgreSQL database.
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) => {
                let sink = webhook_sink::WebhookSink::start(SECRET, Vec::new()).await;
                let (one, one_busy) = engines_rate(&admin_url, &sink, 1, n).await;
                let (two, two_busy) = engines_rate(&admin_url, &sink, 2, n).await;
                println!(
                    "scale-out (PostgreSQL, webhooks)  1 engine {one:>8.0} calls/s   2 engines {two:>8.0} calls/s   ({:.2}×)",
                    two / one
                );
                // Engines, PostgreSQL and the sink share this machine: once one engine keeps
                // it busy, a second can only take a share of the same cores.
                println!(
                    "         the machine's CPU was {:.0}% busy with 1 engine, {:.0}% with 2 ({} cores, PostgreSQL and the sink included)",
                    100.0 * one_busy,
                    100.0 * two_busy,
                    std::thread::available_parallelism().map_or(0, |n| n.get())
                );
            }
            Err(_) => println!(
                "scale-out skipped: set TEST_DATABASE_URL to a PostgreSQL server to compare 1 and 2 engines"
            ),
        }
    }
}
