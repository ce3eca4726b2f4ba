//! Test data: a small project with journeys, and customers to import.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use touchline::definitions::{self, Definitions};
use touchline::model::{Account, Contact, Event, MetricValue};
use touchline::store::{Import, Store};

pub const CONFIG: &str = r#"timezone: UTC
adoption_goals:
  fleet: { name: Fleet }
scores:
  utilization: { formula: 'clamp(account.metrics.usage * 1.0, 0.0, 100.0)' }
tiers:
  - { tier: high, when: 'account.arr >= 100000' }
  - { tier: low, when: 'account.arr >= 10000 || account.scores.utilization < 30' }
  - { tier: tech }
csms:
  - { id: ana, name: Ana Ortiz, email: ana@example.com, capacity: 1 }
  - { id: ben, name: Ben Okafor, email: ben@example.com }
pools:
  team: [ana, ben]
webhooks:
  # Nothing listens on port 9: webhook records fail for now and are retried.
  crm: { url: "http://127.0.0.1:9/hook", allow_private: true }
report:
  churn_event: account_churned
"#;

/// Contact journey started by `account_created`: mail, wait two days, mail; goal usage ≥ 90.
pub const WELCOME: &str = r#"name: Welcome
audience: contacts
segment:
  when: 'contact.role == "admin"'
entry: { event: account_created }
goal: { when: 'account.metrics.usage >= 90' }
steps:
  - id: hello
    email: { template: welcome }
  - wait: 2d
  - id: tips
    email: { template: tips }
"#;

/// Account journey entered when utilization drops below 40.
pub const RESCUE: &str = r#"name: Rescue
audience: accounts
entry: { condition: 'account.scores.utilization < 40' }
reentry: { after: 30d }
steps:
  - id: nudge
    tiers: [tech]
    email: { template: tips, to: [admin] }
  - id: call
    tiers: [low, high]
    task: { title: 'Call {{ account.name }}', assign: owner, due: 2d }
  - id: recovered
    wait: { until: 'account.scores.utilization >= 60', timeout: 7d }
  - id: done
    exit: finished
"#;

/// Weekly sweep, Mondays 09:00 UTC.
pub const SWEEP: &str = r#"name: Weekly sweep
audience: accounts
segment: { when: 'account.arr > 0' }
entry: { schedule: "0 9 * * MON" }
steps:
  - id: ping
    webhook: { endpoint: crm, body: { account: '{{ account.id }}' } }
"#;

/// A project folder with `touchline.yaml`, two templates and the given journeys.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(journeys: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |relative: &str, text: &str| {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write("touchline.yaml", CONFIG);
        write(
            "templates/welcome.yaml",
            "subject: 'Welcome, {{ contact.first_name }}'\ntext: Hello\n",
        );
        write(
            "templates/tips.yaml",
            "subject: Tips for {{ account.name }}\ntext: Tips\n",
        );
        for (id, text) in journeys {
            write(&format!("journeys/{id}.yaml"), text);
        }
        Self { dir }
    }

    pub fn write_journey(&self, id: &str, text: &str) {
        std::fs::write(self.dir.path().join(format!("journeys/{id}.yaml")), text).expect("write");
    }

    pub fn remove_journey(&self, id: &str) {
        std::fs::remove_file(self.dir.path().join(format!("journeys/{id}.yaml"))).expect("rm");
    }

    pub fn definitions(&self) -> Arc<Definitions> {
        let loaded = definitions::load(&self.dir.path().join("touchline.yaml"), Path::new(""));
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        Arc::new(loaded.definitions.expect("definitions"))
    }
}

/// Monday 2026-11-02 09:00 UTC, the start of every scenario.
/// A time from milliseconds.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    touchline::clock::from_millis(ms)
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .expect("valid time")
}

pub fn days(n: i64) -> Duration {
    Duration::days(n)
}

pub fn account(id: &str, arr: f64) -> Account {
    Account {
        id: id.into(),
        name: format!("{id} Inc"),
        arr: Some(arr),
        owner: Some("ana".into()),
        goals: vec!["fleet".into()],
        status: "active".into(),
        ..Account::default()
    }
}

pub fn contact(account: &str, id: &str, role: &str) -> Contact {
    Contact {
        id: id.into(),
        account_id: account.into(),
        email: format!("{id}@example.com"),
        first_name: Some(id.to_uppercase()),
        role: Some(role.into()),
        subscribed: true,
        ..Contact::default()
    }
}

pub fn usage(account: &str, value: f64, at: DateTime<Utc>) -> MetricValue {
    MetricValue {
        account_id: account.into(),
        name: "usage".into(),
        value,
        at,
    }
}

pub fn event(account: &str, name: &str, at: DateTime<Utc>) -> Event {
    Event {
        key: format!("{account}-{name}-{}", at.timestamp()),
        account_id: account.into(),
        contact_id: None,
        name: name.into(),
        at,
        properties: Default::default(),
    }
}

/// An account with an admin and an end user, usage at `usage_value`.
pub async fn customer<S: Store>(
    store: &S,
    id: &str,
    arr: f64,
    usage_value: f64,
    at: DateTime<Utc>,
) {
    let import = Import {
        accounts: vec![account(id, arr)],
        contacts: vec![
            contact(id, &format!("{id}-admin"), "admin"),
            contact(id, &format!("{id}-user"), "end_user"),
        ],
        metrics: vec![usage(id, usage_value, at)],
        events: Vec::new(),
    };
    store.import(&import).await.expect("import");
}

pub async fn set_usage<S: Store>(store: &S, id: &str, value: f64, at: DateTime<Utc>) {
    let import = Import {
        metrics: vec![usage(id, value, at)],
        ..Import::default()
    };
    store.import(&import).await.expect("import");
}

pub async fn send_event<S: Store>(store: &S, id: &str, name: &str, at: DateTime<Utc>) {
    let import = Import {
        events: vec![event(id, name, at)],
        ..Import::default()
    };
    store.import(&import).await.expect("import");
}

/// Account journey on `account_created`: a round-robin task, then a mail to admins.
pub const HANDOFF: &str = r#"name: Handoff
audience: accounts
entry: { event: account_created }
steps:
  - id: kickoff
    task: { title: 'Kickoff call with {{ account.name }}', assign: { round_robin: team }, due: 2d, priority: high }
  - id: mail
    email: { template: welcome, to: [admin] }
  - id: crm
    webhook: { endpoint: crm }
"#;
