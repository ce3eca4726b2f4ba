//! The delivery benchmark: `cargo bench --bench delivery -- [--records N]` (release build).
//!
//! Walks N accounts (5 000 by default) through a mail step and, separately, a webhook step,
//! and measures how fast the outbox worker delivers them — mail over SMTP to a local sink,
//! webhooks signed to a local HTTP sink that verifies every signature — beside what the same
//! sinks accept, in the same run, from a bare client (lettre with the same pool, reqwest with
//! the same signing) at the same concurrency.

#[path = "../tests/support/smtp_sink.rs"]
mod smtp_sink;
#[path = "../tests/support/webhook_sink.rs"]
mod webhook_sink;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures_util::StreamExt;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use touchline::delivery::{CONCURRENCY, Deliverer, webhook};
use touchline::engine::Engine;
use touchline::model::{Account, Contact, Event};
use touchline::store::{AnyStore, Import, Store};

const SECRET: &str = "whsec_YmVuY2htYXJrLXNpZ25pbmctc2VjcmV0LWtleQ==";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn rate(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
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

/// A project with one journey whose only step is `step`, extra config `extra`.
fn project(dir: &Path, step: &str, extra: &str) {
    std::fs::create_dir_all(dir.join("journeys")).expect("mkdir");
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir");
    std::fs::write(dir.join("touchline.yaml"), format!("{CONFIG}{extra}")).expect("config");
    std::fs::write(
        dir.join("templates/welcome.yaml"),
        "subject: 'Welcome, {{ account.name }}'\ntext: |\n  Hi {{ contact.first_name | default('there') }},\n\n  Your account {{ account.name }} is ready. Connect your first vehicles today.\nhtml: '<p>Hi {{ contact.first_name | default(\"there\") }}, {{ account.name }} is ready.</p>'\n",
    )
    .expect("template");
    std::fs::write(
        dir.join("journeys/kickoff.yaml"),
        format!(
            "name: Kickoff\naudience: accounts\nentry: {{ event: account_created }}\nsteps:\n{step}"
        ),
    )
    .expect("journey");
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
    (store, definitions)
}

async fn touchline_rate(
    dir: &Path,
    definitions: Arc<touchline::definitions::Definitions>,
    store: touchline::store::SqliteStore,
    n: usize,
) -> f64 {
    let deliverer = Deliverer::new(definitions, store, dir.join("outbox"))
        .with_secrets(|_| Some(SECRET.into()));
    let start = Instant::now();
    let report = deliverer.deliver_due(Utc::now()).await.expect("deliver");
    let took = start.elapsed();
    let delivered = (report.emails + report.webhooks) as usize;
    assert_eq!(delivered, n, "{report:?}");
    rate(n, took)
}

async fn bare_smtp_rate(port: u16, n: usize) -> f64 {
    // The same pool as touchline's: one connection per delivery in flight.
    let pool = lettre::transport::smtp::PoolConfig::new().max_size(CONCURRENCY as u32);
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .pool_config(pool)
        .build();
    let start = Instant::now();
    let sent = futures_util::stream::iter(0..n)
        .map(|i| {
            let transport = transport.clone();
            async move {
                let message = lettre::Message::builder()
                    .from("Success <success@example.com>".parse().expect("from"))
                    .to(format!("bare{i}@example.com").parse().expect("to"))
                    .subject(format!("Welcome, Account {i}"))
                    .body(format!("Hi Pat{i},\n\nYour account is ready.\n"))
                    .expect("message");
                transport.send(message).await.is_ok()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    assert_eq!(sent, n);
    rate(n, start.elapsed())
}

async fn bare_http_rate(url: &str, n: usize) -> f64 {
    let client = reqwest::Client::new();
    let key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .expect("secret")
    };
    let start = Instant::now();
    let sent = futures_util::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let key = key.clone();
            async move {
                let id = format!("bare-{i}");
                let body = serde_json::to_vec(&serde_json::json!({ "account": format!("a{i}") }))
                    .expect("json");
                let timestamp = Utc::now().timestamp();
                let signature = webhook::signature(&[key], &id, timestamp, &body);
                client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    assert_eq!(sent, n);
    rate(n, start.elapsed())
}

#[tokio::main]
async fn main() {
    let n: usize = arg("--records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    println!("delivery benchmark: {n} records per channel, {CONCURRENCY} in flight\n");

    // Email over SMTP.
    let (port, _inbox) = smtp_sink::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    project(
        dir.path(),
        "  - id: mail\n    email: { template: welcome, to: [admin] }\n",
        &format!("  smtp: {{ host: 127.0.0.1, port: {port}, tls: none }}\n"),
    );
    let (store, definitions) = prepared(dir.path(), n).await;
    let bare = bare_smtp_rate(port, n).await;
    let ours = touchline_rate(dir.path(), definitions, store, n).await;
    println!(
        "email    touchline {ours:>9.0} mails/s   bare lettre client {bare:>9.0} mails/s   ({:.0}% of bare)",
        100.0 * ours / bare
    );

    // Webhooks.
    let sink = webhook_sink::WebhookSink::start(SECRET, Vec::new()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    project(
        dir.path(),
        "  - id: crm\n    webhook: { endpoint: crm, body: { account: '{{ account.id }}', name: '{{ account.name }}' } }\n",
        &format!(
            "webhooks:\n  crm: {{ url: \"{}\", allow_private: true, secret_env: [BENCH_SECRET] }}\n",
            sink.url
        ),
    );
    let (store, definitions) = prepared(dir.path(), n).await;
    let bare = bare_http_rate(&sink.url, n).await;
    let ours = touchline_rate(dir.path(), definitions, store, n).await;
    println!(
        "webhook  touchline {ours:>9.0} calls/s   bare reqwest client {bare:>8.0} calls/s   ({:.0}% of bare)",
        100.0 * ours / bare
    );
    let verified = sink.received().iter().filter(|r| r.verified).count();
    println!(
        "\nthe HTTP sink verified {verified} of {} signatures",
        sink.received().len()
    );
}
