//! The crash test: `touchline run` is killed with SIGKILL at random moments while it walks a
//! couple of thousand accounts through a mail, a task and a webhook step, restarted each time, and
//! finally left to finish. Every step must have produced exactly one task, one webhook (the
//! receiver dedupes on `webhook-id`, as Standard Webhooks receivers do) and its mail.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use touchline::store::Store;

use crate::common::{CONFIG, Project};
use crate::webhook_sink::WebhookSink;

const ACCOUNTS: usize = 2000;
/// Kills that land while outbox records wait (the test fails below 20).
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

fn project(sink: &WebhookSink) -> Project {
    let config = CONFIG.replace(
        r#"crm: { url: "https://crm.example.com/hook" }"#,
        &format!("crm: {{ url: \"{}\", allow_private: true, secret_env: [CRASH_SECRET] }}\ndelivery: {{ lease: 2s }}", sink.url),
    );
    let mut accounts = String::from("id,name,owner\n");
    let mut contacts = String::from("id,account_id,email,role\n");
    let mut events = String::from("account_id,name,at\n");
    for i in 0..ACCOUNTS {
        let owner = if i % 2 == 0 { "ana" } else { "ben" };
        writeln!(accounts, "a{i},Account {i},{owner}").expect("write");
        writeln!(contacts, "c{i},a{i},admin{i}@example.com,admin").expect("write");
        writeln!(events, "a{i},account_created,2026-01-05T10:00:00Z").expect("write");
    }
    Project::new()
        .file("touchline.yaml", &config)
        .journey("kickoff", JOURNEY)
        .file("data/accounts.csv", &accounts)
        .file("data/contacts.csv", &contacts)
        .file("data/events.csv", &events)
}

/// A running engine, killed when dropped (also when the test fails).
struct Engine(Child);

impl Engine {
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

fn start(project: &Project) -> Engine {
    let child = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args(["run", "--interval", "50ms", "--listen", "127.0.0.1:0"])
        .current_dir(project.root())
        .env("CRASH_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("touchline run starts");
    Engine(child)
}

/// (outbox records not yet sent, total records) — read while no engine runs or beside one.
async fn progress(project: &Project) -> (i64, i64) {
    let store = touchline::store::open("sqlite://touchline.db", project.root())
        .await
        .expect("open");
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

#[test]
fn sigkill_during_delivery_loses_nothing_and_doubles_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sink = runtime.block_on(WebhookSink::start(SECRET, Vec::new()));
    let project = project(&sink);
    for kind in ["accounts", "contacts", "events"] {
        let status = Command::new(env!("CARGO_BIN_EXE_touchline"))
            .args(["import", kind, &format!("data/{kind}.csv")])
            .current_dir(project.root())
            .stdout(Stdio::null())
            .status()
            .expect("import");
        assert!(status.success(), "import {kind}");
    }

    let seed: u64 = rand::random();
    println!("crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills_during_work = 0;
    let mut kills = 0;
    while kills_during_work < KILLS && kills < 4 * KILLS {
        let engine = start(&project);
        std::thread::sleep(Duration::from_millis(rng.random_range(50..600)));
        let (before, _) = runtime.block_on(progress(&project));
        engine.sigkill();
        kills += 1;
        let (left, total) = runtime.block_on(progress(&project));
        if total > 0 && before > 0 && left > 0 {
            kills_during_work += 1;
        }
        if total > 0 && left == 0 {
            break;
        }
    }

    // The last run finishes the work.
    let engine = start(&project);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (left, total) = runtime.block_on(progress(&project));
        if total > 0 && left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not finished after 3 minutes: {left} of {total} records left"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    engine.sigkill();
    assert!(
        kills_during_work >= 20,
        "only {kills_during_work} of {KILLS} kills landed while work was left (seed {seed})"
    );

    // One webhook per step: the receiver saw every step's id, each signed.
    let received = sink.received();
    assert!(received.iter().all(|r| r.verified), "unsigned webhook");
    let ids: BTreeSet<String> = received.iter().map(|r| r.id.clone()).collect();
    assert_eq!(sink.accepted_ids().len(), ACCOUNTS);
    assert_eq!(ids.len(), ACCOUNTS);
    println!(
        "{kills} kills, {kills_during_work} during delivery; {} webhook requests for {ACCOUNTS} steps ({} repeats dropped by webhook-id)",
        received.len(),
        received.len() - ACCOUNTS
    );

    // One task per step; every record sent; every mail there.
    runtime.block_on(async {
        let store = touchline::store::open("sqlite://touchline.db", project.root())
            .await
            .expect("open");
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
    let mails: Vec<String> = std::fs::read_dir(project.path("outbox"))
        .expect("outbox")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml") && !name.starts_with('.'))
        .collect();
    let step_mails = mails.iter().filter(|m| m.contains("_mail_")).count();
    let notices = mails.iter().filter(|m| m.ends_with("_notice.eml")).count();
    assert_eq!((step_mails, notices), (ACCOUNTS, ACCOUNTS));
}
