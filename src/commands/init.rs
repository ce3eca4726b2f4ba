//! `touchline init [DIR]`: a small, valid project to start from — settings with the usual
//! health scores and three tier rules, one onboarding journey and its mails, editor schemas,
//! and a `.gitignore` for the database and the outbox. It never overwrites a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::io;
use crate::schema::SchemaKind;

/// Start a new project: touchline.yaml, an onboarding journey, its templates and schemas.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The project folder (default: the current folder).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

const CONFIG: &str = r#"# yaml-language-server: $schema=schemas/touchline.schema.json
#
# touchline settings. Every account gets health scores (0–100), a touch tier decided by the
# rules below, and the journeys in journeys/ that fit its adoption goal.

timezone: UTC                       # when neither the contact nor the account has one
# database: postgres://touchline@db/touchline   # default: sqlite://touchline.db

# Why customers buy the product; journeys are segmented by these.
adoption_goals:
  onboarding:
    name: Get set up and running
    description: Admins invited, first workflow live.

# The usual views of customer health (account facts are read directly). Metrics come from
# `touchline import metrics` or POST /v1/metrics; get_or gives a stated default while a
# metric has not arrived yet.
scores:
  implementation:
    description: Is the customer set up to use the product?
    formula: 'clamp(get_or(account.metrics, "setup_steps_done", 0.0) * 25.0, 0.0, 100.0)'
  utilization:
    description: Do they keep using it?
    formula: 'clamp(get_or(account.metrics, "weekly_active_users", 0.0) * 10.0, 0.0, 100.0)'
  engagement:
    description: Do they trust us? Replies, event attendance, survey answers.
    formula: 'clamp(get_or(account.metrics, "replies_90d", 0.0) * 20.0, 0.0, 100.0)'
  outcome:
    description: Results achieved against the adoption goal (0–1 progress).
    formula: 'clamp(get_or(account.metrics, "goal_progress", 0.0) * 100.0, 0.0, 100.0)'

# First match wins.
tiers:
  - tier: high
    description: The largest accounts always get a named CSM.
    when: 'account.arr >= 100000'
  - tier: low
    description: Mid-sized accounts get a mix of people and automation.
    when: 'account.arr >= 20000'
  - tier: tech
    description: Everyone else is served by automation.

csms:
  - { id: csm, name: Your CSM, email: csm@example.com }

pools:
  onboarding: [csm]

send_window:
  days: [mon, tue, wed, thu, fri]
  hours: "09:00-17:00"

frequency_cap: { max_emails: 3, per: 7d, over_cap: wait }

email:
  from: Customer Success <success@example.com>
  outbox_dir: outbox                # no smtp: mails are written here as .eml files
"#;

const JOURNEY: &str = r#"# yaml-language-server: $schema=../schemas/journey.schema.json
name: Onboarding
audience: contacts                  # each matching contact walks the journey
segment:
  adoption_goal: onboarding
  tiers: [tech, low]
  when: 'contact.role == "admin"'
entry:
  event: account_created            # POST /v1/events or `touchline import events`
goal:
  when: 'account.scores.implementation >= 75'
exit:
  when: 'account.status == "churned"'
reentry: never
steps:
  - id: welcome
    email: { template: welcome }
  - wait: 3d
  - id: setup-check
    branch:
      - when: 'account.scores.implementation < 50'
        goto: setup-help
      - goto: first-win
  - id: setup-help
    tiers: [low]
    task:
      title: 'Help {{ account.name }} finish setup'
      assign: { round_robin: onboarding }
      due: 2d
  - id: first-win
    email: { template: first_win }
"#;

const WELCOME: &str = r#"# yaml-language-server: $schema=../schemas/template.schema.json
subject: "Welcome, {{ contact.first_name | default('there') }}"
text: |
  Hi {{ contact.first_name | default('there') }},

  Welcome aboard. The first step is to invite your team; it takes two minutes.

  The Customer Success team
"#;

const FIRST_WIN: &str = r#"# yaml-language-server: $schema=../schemas/template.schema.json
subject: "Your first win with us"
text: |
  Hi {{ contact.first_name | default('there') }},

  Teams like {{ account.name }} see their first results within a week. Here is how.

  The Customer Success team
"#;

const JOURNEY_TEST: &str = r#"# yaml-language-server: $schema=../schemas/journey-test.schema.json
#
# Journey tests: a small timeline played through the engine in memory by `touchline test`,
# and what should come of it. Nothing is sent.

tests:
  - name: a new admin is welcomed, and gets the first-win mail once half set up
    start: 2026-01-05 10:00            # a Monday, inside the send window (UTC)
    run_for: 5d
    accounts:
      - { id: acme, name: Acme, arr: 5000, goals: onboarding }
    contacts:
      - { id: ann, account_id: acme, email: ann@acme.example, first_name: Ann, role: admin }
    metrics:
      - { account_id: acme, at: 2026-01-05, setup_steps_done: 2 }
    events:
      - { account_id: acme, name: account_created, at: 2026-01-05 10:00 }
    expect:
      - tier: { is: tech }
      - mail: { to: ann, template: welcome, subject_contains: "Welcome, Ann" }
      - mail: { to: ann, template: first_win, sent_after: 2026-01-08 10:00 }
      - no_task: {}
"#;

const GITIGNORE: &str = "# touchline's embedded database and the mails written without an SMTP server\n\
touchline.db\ntouchline.db-*\noutbox/\n";

/// The files of a new project, by path.
fn files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = [
        ("touchline.yaml", CONFIG),
        ("journeys/onboarding.yaml", JOURNEY),
        ("templates/welcome.yaml", WELCOME),
        ("templates/first_win.yaml", FIRST_WIN),
        ("journey-tests/onboarding.yaml", JOURNEY_TEST),
        (".gitignore", GITIGNORE),
    ]
    .iter()
    .map(|(path, text)| (path.to_string(), text.to_string()))
    .collect();
    for kind in SchemaKind::ALL {
        files.push((format!("schemas/{}", kind.file_name()), kind.to_json()));
    }
    files
}

/// Runs `init`: refuses if any file it would write exists, so nothing is overwritten.
pub fn run(args: Args, out: &mut dyn Write) -> Result<i32, String> {
    let files = files();
    let existing: Vec<String> = files
        .iter()
        .map(|(path, _)| args.dir.join(path))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(format!(
            "not overwriting {}; run touchline init in an empty folder",
            existing.join(", ")
        ));
    }
    for (path, text) in &files {
        write_new(&args.dir.join(path), text)?;
    }
    writeln!(
        out,
        "created a touchline project in {}: touchline.yaml, journeys/onboarding.yaml, 2 templates, a journey test, schemas/\n\
         next: touchline validate and touchline test, then touchline import accounts FILE and touchline tick",
        args.dir.display()
    )
    .map_err(io)?;
    Ok(0)
}

fn write_new(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
