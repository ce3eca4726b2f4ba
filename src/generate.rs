//! Realistic sample customers: accounts with plans, ARR and adoption goals, contacts with
//! roles and time zones, and usage metrics over time following healthy, stalled and
//! declining patterns. Deterministic for a given seed.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of accounts.
    pub accounts: usize,
    /// Random seed.
    pub seed: u64,
    /// The last day of data.
    pub until: DateTime<Utc>,
    /// Weekly metric snapshots per account, ending at `until`.
    pub snapshots: usize,
    /// CSM ids to own accounts.
    pub csms: Vec<String>,
    /// Adoption goals to draw from.
    pub goals: Vec<String>,
}

/// Counts of what was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Accounts.
    pub accounts: usize,
    /// Contacts.
    pub contacts: usize,
    /// Metric values.
    pub metrics: usize,
    /// Events.
    pub events: usize,
}

const PREFIXES: &[&str] = &[
    "North",
    "Blue",
    "Prairie",
    "Summit",
    "Harbor",
    "Iron",
    "Cedar",
    "Granite",
    "Lakeside",
    "Red River",
    "Silver",
    "Pioneer",
    "Coastal",
    "Canyon",
    "Frontier",
    "Maple",
    "Eagle",
    "Keystone",
    "Atlas",
    "Evergreen",
];
const SUFFIXES: &[&str] = &[
    "Logistics",
    "Freight",
    "Transport",
    "Haulage",
    "Utilities",
    "Construction",
    "Delivery",
    "Waste Services",
    "Field Services",
    "Distribution",
    "Courier",
    "Energy",
    "Movers",
    "Supply",
    "Fleet Services",
];
const INDUSTRIES: &[&str] = &[
    "trucking",
    "construction",
    "utilities",
    "last-mile delivery",
    "field services",
    "waste management",
    "public sector",
];
const FIRST_NAMES: &[&str] = &[
    "Maria", "James", "Aisha", "Tom", "Priya", "Luis", "Hannah", "Kenji", "Sofia", "Daniel",
    "Grace", "Omar", "Elena", "Marcus", "Chen", "Fatima", "Jack", "Nadia", "Ryan", "Ines",
];
const LAST_NAMES: &[&str] = &[
    "Johnson", "Garcia", "Okafor", "Miller", "Patel", "Nguyen", "Schmidt", "Rossi", "Kowalski",
    "Haddad", "Brown", "Silva", "Tanaka", "Dubois", "Murphy", "Larsen",
];
const ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Phoenix",
    "America/Toronto",
    "Europe/London",
    "Europe/Berlin",
];

/// How an account's usage develops over the snapshots.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Healthy,
    Stalled,
    Declining,
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Writes `accounts.csv`, `contacts.csv`, `metrics.csv` and `events.jsonl` into `dir`.
pub fn generate(options: &Options, dir: &Path) -> std::io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let file = |name: &str| -> std::io::Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::new(std::fs::File::create(
            dir.join(name),
        )?))
    };
    let mut accounts = file("accounts.csv")?;
    let mut contacts = file("contacts.csv")?;
    let mut metrics = file("metrics.csv")?;
    let mut events = file("events.jsonl")?;
    writeln!(
        accounts,
        "id,name,plan,arr,mrr,industry,owner,timezone,goals,status,contract_start,contract_end,created_at,last_login_at,fleet_size"
    )?;
    writeln!(
        contacts,
        "id,account_id,email,name,first_name,role,locale,timezone,subscribed,created_at"
    )?;
    writeln!(metrics, "account_id,name,value,at")?;
    let mut written = Written::default();
    let until = options.until;
    let snapshots = options.snapshots.max(1);
    for n in 1..=options.accounts {
        let id = format!("acc-{n:06}");
        let name = format!("{} {}", pick(&mut rng, PREFIXES), pick(&mut rng, SUFFIXES));
        let roll: f64 = rng.random();
        let (plan, arr) = if roll < 0.62 {
            ("starter", rng.random_range(3_000.0..20_000.0_f64))
        } else if roll < 0.92 {
            ("growth", rng.random_range(20_000.0..95_000.0))
        } else {
            ("enterprise", rng.random_range(95_000.0..450_000.0))
        };
        let arr = (arr / 100.0).round() * 100.0;
        let fleet_size = (arr / 400.0).round().max(5.0) as i64;
        let owner = if options.csms.is_empty() {
            String::new()
        } else {
            options.csms[rng.random_range(0..options.csms.len())].clone()
        };
        let zone = pick(&mut rng, ZONES);
        let mut goals: Vec<&str> = Vec::new();
        if !options.goals.is_empty() {
            goals.push(&options.goals[rng.random_range(0..options.goals.len())]);
            if rng.random_bool(0.2) {
                let second = &options.goals[rng.random_range(0..options.goals.len())];
                if !goals.contains(&second.as_str()) {
                    goals.push(second);
                }
            }
        }
        // A quarter of the accounts are new: they sign up during the last snapshot weeks.
        let is_new = rng.random_bool(0.25);
        let age_days = if is_new {
            rng.random_range(0..(snapshots as i64 * 7).max(7))
        } else {
            rng.random_range(60..700)
        };
        let created = until - Duration::days(age_days);
        let contract_start = created;
        let mut contract_end = contract_start + Duration::days(365);
        while contract_end < until {
            contract_end += Duration::days(365);
        }
        let status = if rng.random_bool(0.02) {
            "churned"
        } else {
            "active"
        };
        let pattern = match rng.random_range(0..100) {
            0..62 => Pattern::Healthy,
            62..82 => Pattern::Stalled,
            _ => Pattern::Declining,
        };
        let last_login_days = match pattern {
            Pattern::Healthy => rng.random_range(0..3),
            Pattern::Stalled => rng.random_range(2..12),
            Pattern::Declining => rng.random_range(10..40),
        };
        let last_login = (until - Duration::days(last_login_days)).max(created);
        writeln!(
            accounts,
            "{id},{name},{plan},{arr},{:.0},{},{owner},{zone},{},{status},{},{},{},{},{fleet_size}",
            arr / 12.0,
            pick(&mut rng, INDUSTRIES),
            goals.join(";"),
            day(contract_start),
            day(contract_end),
            day(created),
            day(last_login),
        )?;
        written.accounts += 1;

        let domain = format!("{}.example", name.to_lowercase().replace(' ', ""));
        let roles: &[&str] = match plan {
            "enterprise" => &[
                "decision_maker",
                "admin",
                "admin",
                "champion",
                "end_user",
                "end_user",
            ],
            "growth" => &["decision_maker", "admin", "champion", "end_user"],
            _ => &["decision_maker", "admin", "end_user"],
        };
        for (i, role) in roles.iter().enumerate() {
            let first = pick(&mut rng, FIRST_NAMES);
            let last = pick(&mut rng, LAST_NAMES);
            let contact_zone = if rng.random_bool(0.85) {
                zone
            } else {
                pick(&mut rng, ZONES)
            };
            let subscribed = !rng.random_bool(0.03);
            writeln!(
                contacts,
                "{id}-c{},{id},{}.{}@{domain},{first} {last},{first},{role},en-US,{contact_zone},{subscribed},{}",
                i + 1,
                first.to_lowercase(),
                last.to_lowercase(),
                day(created),
            )?;
            written.contacts += 1;
        }

        let licensed = (fleet_size as f64 * 0.6).round().max(3.0);
        for s in 0..snapshots {
            let at = until - Duration::days(7 * (snapshots - 1 - s) as i64);
            if at < created {
                continue;
            }
            // Progress through onboarding and usage, shaped by the pattern.
            let weeks_in = ((at - created).num_days() as f64 / 7.0).max(0.0);
            let progress = match pattern {
                Pattern::Healthy => (weeks_in / 6.0).min(1.0),
                Pattern::Stalled => (weeks_in / 6.0).min(0.45),
                Pattern::Declining => {
                    let late = (s as f64 + 1.0) / snapshots as f64;
                    ((weeks_in / 6.0).min(1.0) * (1.1 - late * 0.8)).max(0.05)
                }
            };
            let jitter = |rng: &mut StdRng| rng.random_range(0.85..1.15);
            let values: [(&str, f64); 16] = [
                (
                    "admins_registered",
                    (progress * 2.5).round().clamp(0.0, 3.0),
                ),
                (
                    "training_sessions_attended",
                    (progress * 2.2).floor().clamp(0.0, 2.0),
                ),
                ("setup_steps_done", (progress * 5.0).round().clamp(0.0, 5.0)),
                ("setup_steps_total", 5.0),
                ("licensed_users", licensed),
                (
                    "active_users_30d",
                    (licensed * progress * 0.9 * jitter(&mut rng))
                        .round()
                        .clamp(0.0, licensed),
                ),
                (
                    "logins_30d",
                    (licensed * 4.0 * progress * jitter(&mut rng)).round(),
                ),
                (
                    "key_feature_rate",
                    (progress * 0.8 * jitter(&mut rng)).clamp(0.0, 1.0),
                ),
                (
                    "email_replies_90d",
                    (progress * 3.0 * jitter(&mut rng)).round(),
                ),
                ("events_attended_90d", (progress * 2.0).round()),
                ("nps", (progress * 80.0 - 20.0).round()),
                (
                    "goal_progress",
                    (progress * 0.9 * jitter(&mut rng)).clamp(0.0, 1.0),
                ),
                ("fuel_reports_viewed", (progress * 4.0).floor()),
                ("coaching_sessions_30d", (progress * 6.0).floor()),
                ("drivers_scored", (fleet_size as f64 * progress).floor()),
                ("log_coverage", (progress * 1.05).clamp(0.0, 1.0)),
            ];
            for (metric, value) in values {
                let value = (value * 1000.0).round() / 1000.0;
                writeln!(
                    metrics,
                    "{id},{metric},{value},{}",
                    at.format("%Y-%m-%dT%H:%M:%SZ")
                )?;
                written.metrics += 1;
            }
        }
        if is_new {
            let event = serde_json::json!({ "id": format!("{id}-created"), "account_id": id, "name": "account_created", "at": created.to_rfc3339(), "plan": plan });
            writeln!(events, "{event}")?;
            written.events += 1;
        }
        if !matches!(pattern, Pattern::Declining) {
            let contact = format!("{id}-c2");
            let event = serde_json::json!({ "account_id": id, "contact_id": contact, "name": "login", "at": last_login.to_rfc3339() });
            writeln!(events, "{event}")?;
            written.events += 1;
        }
    }
    for mut w in [accounts, contacts, metrics, events] {
        w.flush()?;
    }
    Ok(written)
}
