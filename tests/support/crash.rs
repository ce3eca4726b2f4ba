//! The crash test: `touchline run` engines are killed with SIGKILL at random moments while
//! they walk two thousand accounts through a mail, a task and a webhook step, restarted each
//! time, and finally left to finish. Every step must have produced exactly one task, one
//! webhook (the receiver dedupes on `webhook-id`, as Standard Webhooks receivers do) and its
//! mail, received by an SMTP server the test runs; mails received twice (a kill between the
//! server's answer and the mark) are counted by Message-ID and reported per kill. Run on
//! SQLite with one engine, and on PostgreSQL with two engines side by side.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use touchline::store::Store;

use crate::smtp_sink;
use crate::webhook_sink::WebhookSink;

/// Prints a line of the test's report where `cargo test` shows it, also when the test
/// passes: straight to stderr, past the harness's capture of `println!`.
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

const ACCOUNTS: usize = 2000;
/// Outbox records the steps make: per account a step mail, a task, its notice to the CSM and
/// a webhook.
const RECORDS: i64 = 4 * ACCOUNTS as i64;
/// Kills that must land while outbox records wait.
const KILLS: usize = 25;
const SECRET: &str = "whsec_Y3Jhc2gtdGVzdC1zaWduaW5nLXNlY3JldA==";

const JOURNEY: &str = r#"name: Kickoff
audience: accounts
entry: { event: account_created }
steps:
  - id: mail
    email: { template: welcome, to: [admin] }
  - id: call
    task: { title: 'Kickoff call with {{ account.name }}', assign: owner }
  - id: crm
    webhook: { endpoint: crm, body: { account: '{{ account.id }}' } }
"#;

fn write(dir: &Path, relative: &str, text: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A project folder for `database`, with the customers to import.
fn project(dir: &Path, sink: &WebhookSink, smtp_port: u16, database: &str) {
    write(
        dir,
        "touchline.yaml",
        &format!(
            "database: {database}
timezone: UTC
adoption_goals:
  fleet: {{ name: Fleet }}
scores:
  usage: {{ formula: '50.0' }}
tiers:
  - {{ tier: tech }}
csms:
  - {{ id: ana, name: Ana, email: ana@example.com }}
  - {{ id: ben, name: Ben, email: ben@example.com }}
webhooks:
  crm: {{ url: \"{}\", allow_private: true, secret_env: [CRASH_SECRET] }}
delivery: {{ lease: 2s }}
email:
  smtp: {{ host: 127.0.0.1, port: {smtp_port}, tls: none }}
",
            sink.url
        ),
    );
    write(dir, "templates/welcome.yaml", "subject: Hi\ntext: Hello\n");
    write(dir, "journeys/kickoff.yaml", JOURNEY);
    let mut accounts = String::from("id,name,owner\n");
    let mut contacts = String::from("id,account_id,email,role\n");
    let mut events = String::from("account_id,name,at\n");
    for i in 0..ACCOUNTS {
        let owner = if i % 2 == 0 { "ana" } else { "ben" };
        writeln!(accounts, "a{i},Account {i},{owner}").expect("write");
        writeln!(contacts, "c{i},a{i},admin{i}@example.com,admin").expect("write");
        writeln!(events, "a{i},account_created,2026-01-05T10:00:00Z").expect("write");
    }
    write(dir, "data/accounts.csv", &accounts);
    write(dir, "data/contacts.csv", &contacts);
    write(dir, "data/events.csv", &events);
}

/// A running engine, killed when dropped (also when the test fails).
struct Engine(Child);

impl Engine {
    fn start(dir: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_touchline"))
            .args(["run", "--interval", "50ms", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("CRASH_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("touchline run starts");
        Self(child)
    }

    fn sigkill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (outbox records not yet sent, total records).
async fn progress(database: &str, dir: &Path) -> (i64, i64) {
    let store = touchline::store::open(database, dir).await.expect("open");
    touchline::with_store!(store, |s| {
        let counts = s.outbox_counts().await.expect("counts");
        let total: i64 = counts.iter().map(|c| c.count).sum();
        let sent: i64 = counts
            .iter()
            .filter(|c| c.label.ends_with(" sent"))
            .map(|c| c.count)
            .sum();
        (total - sent, total)
    })
}

/// The wait before the next kill: 50–600 ms, or down to a few ms when the records left, at
/// the pace seen so far (`done` records sent in `elapsed`), would not last for the kills
/// still to land. A faster engine finishes sooner; the kills must still find it at work.
fn next_gap(
    rng: &mut impl Rng,
    (done, elapsed): (i64, Duration),
    left: i64,
    kills_to_go: usize,
) -> Duration {
    let usual = 600;
    let longest = if done > 0 {
        let time_left = elapsed.mul_f64(left.max(0) as f64 / done as f64);
        let per_kill = time_left / (kills_to_go as u32 + 1);
        (per_kill.as_millis() as u64).clamp(20, usual)
    } else {
        usual
    };
    Duration::from_millis(rng.random_range((longest / 10).min(50)..=longest))
}

/// Runs the crash test against `database` with `engines` engine processes side by side.
pub fn run(database: &str, engines: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sink = runtime.block_on(WebhookSink::start(SECRET, Vec::new()));
    let (smtp_port, inbox) = runtime.block_on(smtp_sink::start());
    let folder = tempfile::tempdir().expect("temp dir");
    let dir = folder.path();
    project(dir, &sink, smtp_port, database);
    for kind in ["accounts", "contacts", "events"] {
        let status = Command::new(env!("CARGO_BIN_EXE_touchline"))
            .args(["import", kind, &format!("data/{kind}.csv")])
            .current_dir(dir)
            .stdout(Stdio::null())
            .status()
            .expect("import");
        assert!(status.success(), "import {kind}");
    }

    let seed: u64 = rand::random();
    report!("crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut running: Vec<Engine> = (0..engines).map(|_| Engine::start(dir)).collect();
    // Kills start once the first pass has stored its steps. On a slow or busy machine that
    // pass can outlast every gap, and a kill before it commits only starts it over: kill
    // after kill would land before there was any work to cut.
    let deadline = Instant::now() + Duration::from_secs(180);
    while runtime.block_on(progress(database, dir)).1 == 0 {
        assert!(
            Instant::now() < deadline,
            "no step stored after 3 minutes (seed {seed})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // When records were first seen sent, and how many: the pace counts from there, not from
    // the engines' start-up.
    let mut first_sent: Option<(Instant, i64)> = None;
    let (mut kills, mut kills_during_work, mut sent) = (0, 0, 0);
    while kills_during_work < KILLS && kills < 4 * KILLS {
        let pace = first_sent.map_or((0, Duration::ZERO), |(at, then)| {
            (sent - then, at.elapsed())
        });
        let gap = next_gap(&mut rng, pace, RECORDS - sent, KILLS - kills_during_work);
        std::thread::sleep(gap);
        let (before, _) = runtime.block_on(progress(database, dir));
        // One engine dies; the others go on; it is restarted.
        let victim = rng.random_range(0..running.len());
        running.swap_remove(victim).sigkill();
        kills += 1;
        let (left, total) = runtime.block_on(progress(database, dir));
        if total > 0 && before > 0 && left > 0 {
            kills_during_work += 1;
        }
        sent = total - left;
        if sent > 0 {
            first_sent.get_or_insert((Instant::now(), sent));
        }
        if total > 0 && left == 0 {
            break;
        }
        running.push(Engine::start(dir));
    }
    while running.len() < engines {
        running.push(Engine::start(dir));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (left, total) = runtime.block_on(progress(database, dir));
        if total > 0 && left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not finished after 3 minutes: {left} of {total} records left (seed {seed})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    running.into_iter().for_each(Engine::sigkill);
    assert!(
        kills_during_work >= 20,
        "only {kills_during_work} of {kills} kills landed while work was left (seed {seed})"
    );

    // One webhook per step: the receiver saw every step's id, each signed.
    let received = sink.received();
    assert!(received.iter().all(|r| r.verified), "unsigned webhook");
    let ids: BTreeSet<String> = received.iter().map(|r| r.id.clone()).collect();
    assert_eq!(sink.accepted_ids().len(), ACCOUNTS);
    assert_eq!(ids.len(), ACCOUNTS);
    report!(
        "{engines} engine(s), {kills} kills, {kills_during_work} during delivery; {} webhook requests for {ACCOUNTS} steps ({} repeats dropped by webhook-id)",
        received.len(),
        received.len() - ACCOUNTS
    );

    // One task per step; every record sent; every mail there.
    runtime.block_on(async {
        let store = touchline::store::open(database, dir).await.expect("open");
        touchline::with_store!(store, |s| {
            let tasks = s.tasks(None, None).await.expect("tasks");
            assert_eq!(tasks.len(), ACCOUNTS, "one task per step");
            let keys: BTreeSet<&str> = tasks.iter().map(|t| t.task.dedupe_key.as_str()).collect();
            assert_eq!(keys.len(), ACCOUNTS);
            let counts = s.outbox_counts().await.expect("counts");
            let counts: Vec<(&str, i64)> =
                counts.iter().map(|c| (c.label.as_str(), c.count)).collect();
            let n = ACCOUNTS as i64;
            // Step mails plus a notice to the CSM of each task.
            assert_eq!(
                counts,
                [("email sent", 2 * n), ("task sent", n), ("webhook sent", n)]
            );
        });
    });
    // Every mail received, told apart by Message-ID; repeats are counted, not hidden.
    let received = inbox.lock().expect("inbox").clone();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &received {
        let id = mail
            .lines()
            .find_map(|line| line.strip_prefix("Message-ID: "))
            .expect("every mail has a Message-ID")
            .to_string();
        *by_id.entry(id).or_default() += 1;
    }
    let step_mails = by_id.keys().filter(|id| id.contains(".mail.")).count();
    let notices = by_id.keys().filter(|id| id.contains(".notice.")).count();
    assert_eq!(
        (step_mails, notices, by_id.len()),
        (ACCOUNTS, ACCOUNTS, 2 * ACCOUNTS),
        "every step mail and every notice received (seed {seed})"
    );
    let repeats = received.len() - by_id.len();
    report!(
        "{} mails received for {} Message-IDs: {repeats} repeats, {:.2} per kill ({kills} kills)",
        received.len(),
        by_id.len(),
        repeats as f64 / kills as f64
    );
}
