//! The engine benchmark: `cargo bench --bench engine -- [--project full|tiers] [--accounts N]
//! [--passes N]`
//! (release build).
//!
//! `--project full` (the default) runs the bundled project: it generates N sample accounts
//! (100 000 by default) and measures, on an SQLite file: importing them, a first pass, a full
//! re-evaluation (scores, tiers, segment and entry checks of every account), and an
//! incremental pass after 1% of the accounts changed; and, in the same run, the floors: the
//! same compiled rules evaluated over the same data with no storage, and a bare batched
//! insert of the same rows.
//!
//! `--project tiers` runs a tiers-only project (two scores read from metrics, three ordered
//! tier rules, no journeys): full re-evaluations (five, or `--passes N`), stored, beside
//! its native floor — the same scores and tiers written as plain Rust over the same data
//! held in memory, nothing stored.
//!
//! Peak RSS closes either report.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rand::{Rng, SeedableRng};
use sqlx::QueryBuilder;
use touchline::definitions;
use touchline::engine::{Engine, PassReport};
use touchline::ingest::{FileReader, Kind};
use touchline::model::MetricValue;
use touchline::store::{AnyStore, Import, SqliteStore, Store};

#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;
use process::{cpu_used, peak_rss_mib};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn rate(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
}

/// Imports the sample's files of these kinds; the rows read and how long it took.
async fn import_files(
    store: &SqliteStore,
    sample: &Path,
    files: &[(Kind, &str)],
) -> (u64, Duration) {
    let started = Instant::now();
    let mut rows = 0;
    for (kind, file) in files {
        let reader = FileReader::open(*kind, &sample.join(file)).expect("open");
        let outcome = store.import_all(reader).await.expect("import");
        rows += outcome.changed + outcome.unchanged;
    }
    (rows, started.elapsed())
}

/// The floor for import: the same rows, parsed the same way, inserted with plain multi-row
/// INSERTs into tables without keys, hashes or upserts.
async fn bare_insert(store: &SqliteStore, sample: &Path) -> u64 {
    let pool = store.pool();
    sqlx::query("CREATE TABLE bare_accounts (id TEXT, name TEXT, plan TEXT, arr REAL, owner TEXT, goals TEXT, attributes TEXT)").execute(pool).await.expect("create");
    sqlx::query("CREATE TABLE bare_contacts (id TEXT, account_id TEXT, email TEXT, role TEXT, attributes TEXT)").execute(pool).await.expect("create");
    sqlx::query("CREATE TABLE bare_metrics (account_id TEXT, name TEXT, value REAL, at INTEGER)")
        .execute(pool)
        .await
        .expect("create");
    let mut rows = 0u64;
    let mut tx = pool.begin().await.expect("begin");
    for (kind, file) in [
        (Kind::Accounts, "accounts.csv"),
        (Kind::Contacts, "contacts.csv"),
        (Kind::Metrics, "metrics.csv"),
    ] {
        for chunk in FileReader::open(kind, &sample.join(file)).expect("open") {
            for accounts in chunk.accounts.chunks(500) {
                let mut q = QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO bare_accounts ");
                q.push_values(accounts, |mut b, a| {
                    b.push_bind(&a.id)
                        .push_bind(&a.name)
                        .push_bind(&a.plan)
                        .push_bind(a.arr)
                        .push_bind(&a.owner)
                        .push_bind(serde_json::to_string(&a.goals).unwrap_or_default())
                        .push_bind(serde_json::to_string(&a.attributes).unwrap_or_default());
                });
                rows += q
                    .build()
                    .execute(&mut *tx)
                    .await
                    .expect("insert")
                    .rows_affected();
            }
            for contacts in chunk.contacts.chunks(500) {
                let mut q = QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO bare_contacts ");
                q.push_values(contacts, |mut b, c| {
                    b.push_bind(&c.id)
                        .push_bind(&c.account_id)
                        .push_bind(&c.email)
                        .push_bind(&c.role)
                        .push_bind(serde_json::to_string(&c.attributes).unwrap_or_default());
                });
                rows += q
                    .build()
                    .execute(&mut *tx)
                    .await
                    .expect("insert")
                    .rows_affected();
            }
            for metrics in chunk.metrics.chunks(500) {
                let mut q = QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO bare_metrics ");
                q.push_values(metrics, |mut b, m| {
                    b.push_bind(&m.account_id)
                        .push_bind(&m.name)
                        .push_bind(m.value)
                        .push_bind(m.at.timestamp_millis());
                });
                rows += q
                    .build()
                    .execute(&mut *tx)
                    .await
                    .expect("insert")
                    .rows_affected();
            }
        }
    }
    tx.commit().await.expect("commit");
    rows
}

/// The floor for evaluation: the engine's own evaluation of every account, with the data
/// already in memory and nothing written. Only the evaluation is timed.
async fn bare_evaluation(
    engine: &Engine<SqliteStore>,
    now: chrono::DateTime<Utc>,
) -> (u64, Duration) {
    let mut after = String::new();
    let mut took = Duration::ZERO;
    let mut report = PassReport::default();
    loop {
        let ids = engine.store().account_ids(&after, 500).await.expect("ids");
        let Some(last) = ids.last() else { break };
        after = last.clone();
        let batch = engine.load_batch(&ids, now).await.expect("load");
        let started = Instant::now();
        let changes = engine
            .evaluate_loaded(batch, now, &mut report)
            .await
            .expect("evaluate");
        took += started.elapsed();
        std::hint::black_box(changes);
    }
    (report.evaluated, took)
}

fn main() {
    let accounts: usize = arg("--accounts")
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let project = arg("--project").unwrap_or_else(|| "full".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match project.as_str() {
        "full" => runtime.block_on(run_full(accounts)),
        "tiers" => runtime.block_on(run_tiers(accounts)),
        other => panic!("unknown --project {other}: full or tiers"),
    }
}

/// The last day of the generated data.
fn until() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0)
        .single()
        .expect("date")
}

/// Loads the project whose `touchline.yaml` is at `config`.
fn load_definitions(config: &Path) -> Arc<definitions::Definitions> {
    let loaded = definitions::load(config, Path::new(""));
    match loaded.definitions {
        Some(definitions) => Arc::new(definitions),
        None => panic!("the definitions are not valid: {:?}", loaded.diagnostics),
    }
}

/// Generates `accounts` sample customers into `sample`.
fn generate(
    accounts: usize,
    definitions: &definitions::Definitions,
    sample: &Path,
) -> touchline::generate::Written {
    let options = touchline::generate::Options {
        accounts,
        seed: 7,
        until: until(),
        snapshots: 1,
        csms: definitions
            .config
            .csms
            .iter()
            .map(|c| c.id.value.clone())
            .collect(),
        goals: definitions.config.adoption_goals.keys().cloned().collect(),
    };
    touchline::generate::generate(&options, sample).expect("generate")
}

/// Opens (creating it) the SQLite store `name` in `dir`.
async fn open_store(dir: &Path, name: &str) -> SqliteStore {
    let url = format!("sqlite://{}", dir.join(name).display());
    match touchline::store::open(&url, Path::new("/"))
        .await
        .expect("open")
    {
        AnyStore::Sqlite(store) => store,
        AnyStore::Postgres(_) => unreachable!("sqlite URL"),
    }
}

async fn run_full(accounts: usize) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let definitions = load_definitions(&repo.join("touchline.yaml"));
    let work = tempfile::tempdir().expect("temp dir");
    let sample = work.path().join("sample");
    let until = until();
    let started = Instant::now();
    let written = generate(accounts, &definitions, &sample);
    println!(
        "touchline engine benchmark: {accounts} accounts ({} contacts, {} metric values), SQLite, release build",
        written.contacts, written.metrics
    );
    println!(
        "  generated sample data in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let store = open_store(work.path(), "touchline.db").await;

    // Import.
    let (rows, import_took) = import_files(
        &store,
        &sample,
        &[
            (Kind::Accounts, "accounts.csv"),
            (Kind::Contacts, "contacts.csv"),
            (Kind::Metrics, "metrics.csv"),
        ],
    )
    .await;
    let scratch = open_store(work.path(), "bare.db").await;
    let started = Instant::now();
    let bare_rows = bare_insert(&scratch, &sample).await;
    let bare_took = started.elapsed();
    assert_eq!(rows, bare_rows, "the floor inserts the same rows");
    println!("\nimport");
    println!(
        "  touchline import        {rows:>10} rows  {:>8.1}s  {:>10.0} rows/s",
        import_took.as_secs_f64(),
        rate(rows, import_took)
    );
    println!(
        "  floor: bare insert      {bare_rows:>10} rows  {:>8.1}s  {:>10.0} rows/s   (touchline takes {:.2}× the floor)",
        bare_took.as_secs_f64(),
        rate(bare_rows, bare_took),
        import_took.as_secs_f64() / bare_took.as_secs_f64()
    );

    // Passes.
    let engine = Engine::new(definitions.clone(), store.clone());
    let now = until + chrono::Duration::hours(9);
    let started = Instant::now();
    let first = engine.tick(now).await.expect("tick");
    let first_took = started.elapsed();
    engine.request_full_reevaluation().await.expect("mark");
    let started = Instant::now();
    let full = engine.tick(now).await.expect("tick");
    let full_took = started.elapsed();
    let (floor_accounts, floor_took) = bare_evaluation(&engine, now).await;

    // 1% of the accounts get new usage numbers.
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // Inside the recheck interval, as passes of `touchline run` are (every 15 s by default).
    let later = now + chrono::Duration::minutes(10);
    let changed: Vec<MetricValue> = (0..accounts / 100)
        .map(|_| MetricValue {
            account_id: format!("acc-{:06}", rng.random_range(1..=accounts)),
            name: "logins_30d".into(),
            value: rng.random_range(0.0..200.0_f64).round(),
            at: later,
        })
        .collect();
    store
        .import(&Import {
            metrics: changed,
            ..Import::default()
        })
        .await
        .expect("import");
    let started = Instant::now();
    let incremental = engine.tick(later).await.expect("tick");
    let incremental_took = started.elapsed();

    println!("\npasses");
    println!(
        "  first pass              {:>10} accounts {:>7.1}s  {:>10.0} accounts/s  ({} enrolled, {} outbox records)",
        first.evaluated,
        first_took.as_secs_f64(),
        rate(first.evaluated, first_took),
        first.enrolled,
        first.outbox
    );
    println!(
        "  full re-evaluation      {:>10} accounts {:>7.1}s  {:>10.0} accounts/s",
        full.evaluated,
        full_took.as_secs_f64(),
        rate(full.evaluated, full_took)
    );
    println!(
        "  floor: bare evaluation  {:>10} accounts {:>7.1}s  {:>10.0} accounts/s   (full pass takes {:.2}× the floor; target ≤ 2×)",
        floor_accounts,
        floor_took.as_secs_f64(),
        rate(floor_accounts, floor_took),
        full_took.as_secs_f64() / floor_took.as_secs_f64()
    );
    println!(
        "  incremental, 1% changed {:>10} accounts {:>7.3}s  {:>10.0} accounts/s   ({:.2}% of the full pass; target ≤ 3%)",
        incremental.evaluated,
        incremental_took.as_secs_f64(),
        rate(incremental.evaluated, incremental_took),
        incremental_took.as_secs_f64() * 100.0 / full_took.as_secs_f64()
    );
    println!(
        "  phases (ms: changed accounts, events, schedules, due enrollments): first {:?}, full {:?}, incremental {:?}",
        first.phase_ms, full.phase_ms, incremental.phase_ms
    );
    println!(
        "\npeak RSS {:.0} MiB (target for 1M accounts: < 1024 MiB)",
        peak_rss_mib()
    );
}

/// Full passes the tiers-only benchmark times, unless `--passes N` says otherwise.
const FULL_PASSES: usize = 5;

/// The tiers-only project: two scores read from metrics and three ordered tier rules.
const TIERS_PROJECT: &str = r#"timezone: UTC
adoption_goals: {}
scores:
  usage:
    description: Logins in the last 30 days, scaled.
    formula: 'clamp(account.metrics.logins_30d / 2.0, 0.0, 100.0)'
  adoption:
    description: Share of users on the key feature.
    formula: 'clamp(account.metrics.key_feature_rate * 100.0, 0.0, 100.0)'
tiers:
  - tier: high
    when: 'account.arr >= 100000'
  - tier: low
    when: 'account.scores.usage >= 50'
  - tier: tech
"#;

/// What the native floor reads of one account.
struct TierInputs {
    arr: Option<f64>,
    logins_30d: Option<f64>,
    key_feature_rate: Option<f64>,
}

/// What the native floor computes for one account: the scores (`None`: unknown) and the
/// tier (`None`: kept, a tier rule read an unknown score).
type TierOutputs = (Option<f64>, Option<f64>, Option<&'static str>);

/// The tiers-only project's scores and tiers as plain Rust over data in memory, with the
/// engine's rounding and clamping; only the evaluation is timed.
fn native_tiers(inputs: &[TierInputs]) -> (Vec<TierOutputs>, Duration) {
    let round = |v: f64| (v.clamp(0.0, 100.0) * 100.0).round() / 100.0;
    let usage = |i: &TierInputs| i.logins_30d.map(|v| round(v / 2.0));
    let adoption = |i: &TierInputs| i.key_feature_rate.map(|v| round(v * 100.0));
    let tier = |i: &TierInputs, usage: Option<f64>| {
        if i.arr.unwrap_or(0.0) >= 100_000.0 {
            Some("high")
        } else {
            match usage {
                Some(u) if u >= 50.0 => Some("low"),
                Some(_) => Some("tech"),
                None => None,
            }
        }
    };
    let started = Instant::now();
    let outputs: Vec<TierOutputs> = inputs
        .iter()
        .map(|i| {
            let u = usage(i);
            (u, adoption(i), tier(i, u))
        })
        .collect();
    let took = started.elapsed();
    (std::hint::black_box(outputs), took)
}

/// A full pass's stages timed one after another (a pass overlaps them): requesting it,
/// reading every account, evaluating, writing.
async fn stages(engine: &Engine<SqliteStore>, now: chrono::DateTime<Utc>) -> [Duration; 4] {
    let mut took = [Duration::ZERO; 4];
    let started = Instant::now();
    engine.request_full_reevaluation().await.expect("mark");
    took[0] = started.elapsed();
    let mut after = String::new();
    let mut report = PassReport::default();
    loop {
        let started = Instant::now();
        let store = engine.store();
        let Some(through) = store
            .sweep_bound(&after, touchline::engine::RANGE_BATCH as i64)
            .await
            .expect("bound")
        else {
            break;
        };
        let batch = engine
            .load_range(&after, &through, now)
            .await
            .expect("load")
            .expect("the tiers project reads batches by range");
        after = through;
        took[1] += started.elapsed();
        let started = Instant::now();
        let changes = engine
            .evaluate_loaded(batch, now, &mut report)
            .await
            .expect("evaluate");
        took[2] += started.elapsed();
        let started = Instant::now();
        engine.store().apply(&changes).await.expect("apply");
        took[3] += started.elapsed();
    }
    took
}

async fn run_tiers(accounts: usize) {
    let work = tempfile::tempdir().expect("temp dir");
    let project = work.path().join("project");
    std::fs::create_dir_all(&project).expect("project dir");
    std::fs::write(project.join("touchline.yaml"), TIERS_PROJECT).expect("write project");
    let definitions = load_definitions(&project.join("touchline.yaml"));
    assert!(
        definitions.rules().all(|r| r.is_native()),
        "every rule of the tiers project runs natively"
    );
    let sample = work.path().join("sample");
    let started = Instant::now();
    let written = generate(accounts, &definitions, &sample);
    println!(
        "touchline engine benchmark, tiers-only project: {accounts} accounts ({} metric values), SQLite, release build",
        written.metrics
    );
    println!(
        "  generated sample data in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let store = open_store(work.path(), "touchline.db").await;
    let (rows, import_took) = import_files(
        &store,
        &sample,
        &[
            (Kind::Accounts, "accounts.csv"),
            (Kind::Metrics, "metrics.csv"),
        ],
    )
    .await;
    println!(
        "  imported {rows} rows in {:.1}s",
        import_took.as_secs_f64()
    );

    let engine = Engine::new(definitions.clone(), store.clone());
    let now = until() + chrono::Duration::hours(9);
    let started = Instant::now();
    let first = engine.tick(now).await.expect("tick");
    let first_took = started.elapsed();
    // Full passes (marking every account, then the pass; five, or `--passes N`), reported as
    // their median with the fastest and slowest: single passes move by a fifth on a busy
    // 2-core machine.
    let full_passes: usize = arg("--passes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(FULL_PASSES)
        .max(1);
    let mut passes = Vec::new();
    let mut full = PassReport::default();
    let cpu_before = cpu_used();
    for _ in 0..full_passes {
        let started = Instant::now();
        engine.request_full_reevaluation().await.expect("mark");
        full = engine.tick(now).await.expect("tick");
        passes.push(started.elapsed());
    }
    let cpu_per_account = (cpu_used() - cpu_before).as_secs_f64() * 1e6
        / (full_passes as f64 * full.evaluated.max(1) as f64);
    let cores_busy = (cpu_used() - cpu_before).as_secs_f64()
        / passes.iter().map(Duration::as_secs_f64).sum::<f64>();
    passes.sort();
    let full_took = passes[passes.len() / 2];
    let (fastest, slowest) = (passes[0], passes[passes.len() - 1]);
    let stages = stages(&engine, now).await;

    // The native floor's data, read once into memory.
    let mut inputs = Vec::with_capacity(accounts);
    let mut after = String::new();
    loop {
        let ids = store.account_ids(&after, 5000).await.expect("ids");
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for state in store.load_accounts(&ids, false).await.expect("load") {
            inputs.push(TierInputs {
                arr: state.account.arr,
                logins_30d: state.metrics.get("logins_30d").copied(),
                key_feature_rate: state.metrics.get("key_feature_rate").copied(),
            });
        }
    }
    let mut floor_took = Duration::MAX;
    let mut outputs = Vec::new();
    for _ in 0..5 {
        let (o, took) = native_tiers(&inputs);
        outputs = o;
        floor_took = floor_took.min(took);
    }
    let mut floor_tiers: std::collections::BTreeMap<&str, i64> = Default::default();
    for (_, _, tier) in &outputs {
        *floor_tiers.entry(tier.unwrap_or("(kept)")).or_default() += 1;
    }
    let stored: std::collections::BTreeMap<String, i64> = store
        .tier_counts()
        .await
        .expect("tiers")
        .into_iter()
        .map(|c| (c.label, c.count))
        .collect();
    let floor_tiers: std::collections::BTreeMap<String, i64> = floor_tiers
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(
        stored, floor_tiers,
        "the engine and the floor agree on tiers"
    );

    println!("\npasses");
    println!(
        "  first pass              {:>10} accounts {:>7.2}s  {:>10.0} accounts/s",
        first.evaluated,
        first_took.as_secs_f64(),
        rate(first.evaluated, first_took),
    );
    println!(
        "  full re-evaluation      {:>10} accounts {:>7.2}s  {:>10.0} accounts/s   (median of {}, {:.0}–{:.0}/s; target ≥ 400 000/s)",
        full.evaluated,
        full_took.as_secs_f64(),
        rate(full.evaluated, full_took),
        passes.len(),
        rate(full.evaluated, slowest),
        rate(full.evaluated, fastest),
    );
    println!(
        "  CPU per account         {cpu_per_account:>10.2} µs (all threads, user and system; {cores_busy:.2} cores busy on average)"
    );
    println!(
        "  floor: native Rust      {:>10} accounts {:>7.3}s  {:>10.0} accounts/s   (full pass takes {:.0}× the floor)",
        inputs.len(),
        floor_took.as_secs_f64(),
        rate(inputs.len() as u64, floor_took),
        full_took.as_secs_f64() / floor_took.as_secs_f64()
    );
    println!(
        "  stages one after another (s): mark {:.2}, read {:.2}, evaluate {:.2}, write {:.2}",
        stages[0].as_secs_f64(),
        stages[1].as_secs_f64(),
        stages[2].as_secs_f64(),
        stages[3].as_secs_f64()
    );
    println!("  tiers: {stored:?}");
    println!(
        "\npeak RSS {:.0} MiB (target for 1M accounts: ≤ 1024 MiB)",
        peak_rss_mib()
    );
}
