//! The latency benchmark: `cargo bench --bench latency -- [--seconds S] [--rates 200,1000]`
//! (release build).
//!
//! Starts `touchline run` on a fresh SQLite project whose one journey answers a `ping`
//! event with a signed webhook to a receiver this benchmark runs on loopback. Posts events to
//! `/v1/events` at each rate (200 and 1 000 events/s by default) for S seconds (10), one
//! event per request, each for an account of its own, and measures each event from the API's
//! answer to its webhook reaching the receiver. The floor, in the same run: the same client
//! posting straight to the receiver, from sending to arrival: one HTTP hop.

#[path = "../tests/support/service.rs"]
mod service;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;

const SECRET: &str = "whsec_bGF0ZW5jeS1iZW5jaG1hcmstc2lnbmluZy1rZXk=";
const TOKEN: &str = "latency-bench";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// When each account's webhook arrived.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, body: Bytes) -> &'static str {
    let at = Instant::now();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(account) = value["account"]
            .as_str()
            .or_else(|| value["account_id"].as_str())
    {
        arrivals
            .lock()
            .expect("arrivals")
            .entry(account.to_string())
            .or_insert(at);
    }
    "ok"
}

/// The receiver on a free loopback port: its URL.
async fn receiver(arrivals: Arrivals) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(arrivals);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn write(dir: &std::path::Path, relative: &str, text: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// The project, with `accounts` accounts imported.
fn project(dir: &std::path::Path, hook: &str, accounts: usize) {
    write(
        dir,
        "touchline.yaml",
        &format!(
            "database: sqlite://touchline.db
timezone: UTC
adoption_goals:
  fleet: {{ name: Fleet }}
scores:
  usage: {{ formula: '50.0' }}
tiers:
  - {{ tier: tech }}
webhooks:
  crm: {{ url: \"{hook}\", allow_private: true, secret_env: [LATENCY_SECRET] }}
"
        ),
    );
    write(
        dir,
        "journeys/ping.yaml",
        "name: Ping\naudience: accounts\nentry: { event: ping }\nsteps:\n  - id: crm\n    webhook: { endpoint: crm, body: { account: '{{ account.id }}' } }\n",
    );
    let mut csv = String::from("id,name\n");
    for i in 0..accounts {
        csv.push_str(&format!("a{i},Account {i}\n"));
    }
    write(dir, "data/accounts.csv", &csv);
    let status = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args(["import", "accounts", "data/accounts.csv"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("import");
    assert!(status.success(), "import");
}

/// Posts one request per account in `accounts` at `rate` per second; when each was sent
/// and when it was answered.
async fn post_at_rate(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    accounts: std::ops::Range<usize>,
    rate: u32,
) -> HashMap<String, (Instant, Instant)> {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::new();
    for i in accounts {
        ticks.tick().await;
        let client = client.clone();
        let url = url.to_string();
        let token = token.map(str::to_string);
        sent.push(tokio::spawn(async move {
            let account = format!("a{i}");
            let start = Instant::now();
            let body = serde_json::json!({ "account_id": account, "name": "ping" });
            let mut request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("post");
            assert!(response.status().is_success(), "{}", response.status());
            (account, (start, Instant::now()))
        }));
    }
    let mut answered = HashMap::new();
    for task in sent {
        let (account, times) = task.await.expect("request");
        answered.insert(account, times);
    }
    answered
}

/// Waits until every account's webhook arrived (or 30 s passed); the latencies from each
/// account's instant in `since`, in milliseconds, sorted, and how many never arrived.
async fn latencies(since: &HashMap<String, Instant>, arrivals: &Arrivals) -> (Vec<f64>, usize) {
    let answered = since;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = {
            let arrived = arrivals.lock().expect("arrivals");
            answered.keys().all(|a| arrived.contains_key(a))
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrived = arrivals.lock().expect("arrivals");
    let mut out: Vec<f64> = answered
        .iter()
        .filter_map(|(account, at)| {
            let arrival = arrived.get(account)?;
            // The webhook may land before the client has read the API's answer.
            Some(arrival.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    out.sort_by(f64::total_cmp);
    let missing = answered.len() - out.len();
    (out, missing)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn describe(sorted: &[f64]) -> String {
    format!(
        "p50 {:>7.1} ms   p90 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
        percentile(sorted, 50.0),
        percentile(sorted, 90.0),
        percentile(sorted, 99.0),
        sorted.last().copied().unwrap_or(f64::NAN)
    )
}

#[tokio::main]
async fn main() {
    let seconds: usize = arg("--seconds").and_then(|v| v.parse().ok()).unwrap_or(10);
    let rates: Vec<u32> = arg("--rates")
        .unwrap_or_else(|| "200,1000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let total: usize = rates.iter().map(|r| *r as usize * seconds).sum();
    println!(
        "latency benchmark: event posted to /v1/events → webhook received, through `touchline run` (SQLite), {seconds} s per rate\n"
    );
    let arrivals: Arrivals = Arc::default();
    let hook = receiver(arrivals.clone()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    project(dir.path(), &hook, total);
    let service = service::Service::start_with(
        dir.path(),
        "sqlite://touchline.db",
        &[("TOUCHLINE_API_TOKEN", TOKEN), ("LATENCY_SECRET", SECRET)],
    );
    let events = format!("http://{}/v1/events", service.address);
    let client = reqwest::Client::new();

    let mut next = 0;
    for rate in rates {
        let accounts = next..next + rate as usize * seconds;
        next = accounts.end;
        // The floor: the same client, straight to the receiver.
        let floor_accounts = accounts.start + total..accounts.end + total;
        let posted = post_at_rate(&client, &hook, None, floor_accounts, rate).await;
        let sent = posted.into_iter().map(|(a, (sent, _))| (a, sent)).collect();
        let (floor, _) = latencies(&sent, &arrivals).await;

        let posted = post_at_rate(&client, &events, Some(TOKEN), accounts, rate).await;
        let answered = posted
            .into_iter()
            .map(|(a, (_, answered))| (a, answered))
            .collect();
        let (ours, missing) = latencies(&answered, &arrivals).await;
        println!("{rate:>5} events/s  touchline  {}", describe(&ours));
        println!(
            "{rate:>5} events/s  floor      {}   (a direct POST to the receiver, sent to received)",
            describe(&floor)
        );
        if missing > 0 {
            println!("             {missing} webhooks did not arrive within 30 s");
        }
    }
}
