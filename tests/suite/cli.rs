//! The `touchline` binary as a user runs it.

use std::process::Command;

use crate::common::{Project, journey_with_steps};

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn touchline(project: &Project, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args(args)
        .current_dir(project.root())
        .output()
        .expect("touchline runs");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn broken_project() -> Project {
    Project::new()
        .journey(
            "onboarding",
            "name: Onboarding\naudience: contacts\nsegment:\n  tiers: [tech, lwo]\nentry: { event: account_created }\nsteps:\n  - id: welcome\n    email: { template: welcom }\n  - wait: 2d\n  - id: check\n    branch:\n      - when: 'account.scores.implementaton < 40'\n        goto: stalled\n      - goto: done\n  - id: done\n    exit: finished\n",
        )
        .journey("rescue", "name: Rescue\naudience: accounts\nentry:\n  schedule: '0 9 * * FUNDAY'\nsteps:\n  - webhook: { endpoint: crm }\n")
        .journey("syntax", "name: Syntax\naudience: accounts\n  entry: x\n")
}

#[test]
fn validate_reports_every_broken_file_in_one_run() {
    let output = touchline(&broken_project(), &["validate"]);
    let expected = r"journeys/onboarding.yaml:4:17: error: unknown value `lwo`
  |
4 |   tiers: [tech, lwo]
  |                 ^^^
  = help: did you mean `low`?

journeys/onboarding.yaml:8:24: error: unknown template `welcom` (no file `templates/welcom.yaml`)
  |
8 |     email: { template: welcom }
  |                        ^^^^^^
  = help: did you mean `welcome`?

journeys/onboarding.yaml:12:31: error: unknown score `implementaton`
   |
12 |       - when: 'account.scores.implementaton < 40'
   |                               ^^^^^^^^^^^^^
  = help: did you mean `implementation`?

journeys/onboarding.yaml:13:15: error: `goto` names a step that does not exist: `stalled`
   |
13 |         goto: stalled
   |               ^^^^^^^
  = help: expected one of `welcome`, `step-2`, `check`, `done`

journeys/rescue.yaml:4:13: error: invalid cron schedule `0 9 * * FUNDAY`: day-of-week `FUNDAY` is not valid; use 0–7 (0 and 7 are Sunday) or SUN–SAT
  |
4 |   schedule: '0 9 * * FUNDAY'
  |             ^^^^^^^^^^^^^^^^

journeys/syntax.yaml:3:8: error: invalid YAML: mapping values are not allowed in this context
  |
3 |   entry: x
  |        ^

invalid: 6 errors, 0 warnings
";
    assert_eq!(output.stdout, expected, "\nactual:\n{}", output.stdout);
    assert_eq!(output.code, 1);
    assert_eq!(output.stderr, "");
}

#[test]
fn validate_passes_a_clean_project() {
    let project = Project::new().journey(
        "hello",
        &journey_with_steps("  - email: { template: welcome }\n"),
    );
    let output = touchline(&project, &["validate"]);
    assert_eq!(
        output.stdout,
        "valid: 1 journey, 2 scores, 2 tier rules, 1 template (0 errors, 0 warnings)\n"
    );
    assert_eq!(output.code, 0);
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let steps = "  - exit: early\n  - id: never\n    email: { template: welcome }\n";
    let project = Project::new().journey("orphan", &journey_with_steps(steps));
    let relaxed = touchline(&project, &["validate"]);
    assert_eq!(relaxed.code, 0, "{}", relaxed.stdout);
    assert!(
        relaxed
            .stdout
            .starts_with("journeys/orphan.yaml:6:9: warning: step `never` is never reached\n"),
        "{}",
        relaxed.stdout
    );
    let strict = touchline(&project, &["validate", "--deny-warnings"]);
    assert_eq!(strict.code, 1);
    assert!(
        strict.stdout.ends_with("invalid: 0 errors, 1 warning\n"),
        "{}",
        strict.stdout
    );
}

#[test]
fn validate_json_output_for_ci_and_editors() {
    let output = touchline(&broken_project(), &["validate", "--format", "json"]);
    assert_eq!(output.code, 1);
    let report: serde_json::Value = serde_json::from_str(&output.stdout).expect("json");
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"], 6);
    assert_eq!(report["warnings"], 0);
    assert_eq!(
        report["diagnostics"][0],
        serde_json::json!({
            "severity": "error",
            "path": "journeys/onboarding.yaml",
            "line": 4,
            "column": 17,
            "message": "unknown value `lwo`",
            "help": "did you mean `low`?"
        })
    );
}

#[test]
fn validate_a_single_file() {
    let project = broken_project();
    let output = touchline(&project, &["validate", "journeys/rescue.yaml"]);
    assert_eq!(output.code, 1);
    assert!(
        output
            .stdout
            .starts_with("journeys/rescue.yaml:4:13: error: invalid cron schedule"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.ends_with("invalid: 1 error, 0 warnings\n"),
        "{}",
        output.stdout
    );
}

#[test]
fn validate_a_draft_outside_the_journeys_folder() {
    let project = Project::new().file(
        "drafts/new.yaml",
        &journey_with_steps("  - webhook: { endpoint: crn }\n"),
    );
    let output = touchline(&project, &["validate", "drafts/new.yaml"]);
    assert_eq!(output.code, 1);
    assert!(
        output
            .stdout
            .starts_with("drafts/new.yaml:5:26: error: unknown webhook endpoint `crn`"),
        "{}",
        output.stdout
    );
}

#[test]
fn commands_find_touchline_yaml_in_a_parent_folder() {
    let project = Project::new().journey("hello", &journey_with_steps("  - wait: 1x\n"));
    let output = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .arg("validate")
        .current_dir(project.path("journeys"))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Paths stay clickable from where the command ran.
    assert!(
        stdout.starts_with("../journeys/hello.yaml:5:11: error: invalid duration `1x`"),
        "{stdout}"
    );
}

#[test]
fn config_flag_points_at_another_project() {
    let project = Project::new();
    let elsewhere = tempfile::tempdir().expect("dir");
    let output = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args([
            "--config",
            project.path("touchline.yaml").to_str().expect("utf-8"),
            "validate",
        ])
        .current_dir(elsewhere.path())
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn outside_a_project_the_error_says_what_to_do() {
    let project = Project::new();
    std::fs::remove_file(project.path("touchline.yaml")).expect("rm");
    let output = touchline(&project, &["validate"]);
    assert_eq!(output.code, 1);
    assert!(
        output.stderr.starts_with("error: no touchline.yaml in "),
        "{}",
        output.stderr
    );
    assert!(output.stderr.ends_with(
        "or any folder above it; run touchline in a project folder or pass --config PATH\n"
    ));
}

#[test]
fn schema_prints_the_journey_schema() {
    let output = touchline(&Project::new(), &["schema", "journey"]);
    assert_eq!(output.code, 0);
    let schema: serde_json::Value = serde_json::from_str(&output.stdout).expect("json");
    assert_eq!(schema["title"], "touchline journey");
    assert!(schema["properties"]["steps"].is_object());
}

#[test]
fn a_bad_import_row_rejects_the_whole_file() {
    let project = Project::new().file(
        "accounts.csv",
        "id,name,arr,contract_end,region\na1,Acme,12000,2027-01-01,emea\na2,Beta,12k,2027-01-01,amer\na3,Gamma,5000,next year,amer\n",
    );
    let output = touchline(&project, &["import", "accounts", "accounts.csv"]);
    assert_eq!(
        output.stdout,
        "accounts.csv: row 3, column `arr`: `12k` is not a number\n\
         accounts.csv: row 4, column `contract_end`: `next year` is not a date (write 2026-11-23 or 2026-11-23T09:00:00Z)\n\
         rejected accounts.csv: 2 of 3 rows are bad; nothing was imported (fix them, or pass --skip-bad-rows)\n"
    );
    assert_eq!(output.code, 1);
    let status = touchline(&project, &["status"]);
    assert!(
        status.stdout.starts_with("Accounts by tier (0 accounts)\n"),
        "{}",
        status.stdout
    );

    let output = touchline(
        &project,
        &["import", "accounts", "accounts.csv", "--skip-bad-rows"],
    );
    assert_eq!(output.code, 0);
    assert!(
        output
            .stdout
            .ends_with("imported accounts.csv: 3 rows, 1 new or changed, 0 unchanged, 2 skipped\n"),
        "{}",
        output.stdout
    );
    let again = touchline(
        &project,
        &["import", "accounts", "accounts.csv", "--skip-bad-rows"],
    );
    assert!(
        again
            .stdout
            .ends_with("imported accounts.csv: 3 rows, 0 new or changed, 1 unchanged, 2 skipped\n"),
        "{}",
        again.stdout
    );
    let tick = touchline(&project, &["tick", "--now", "2026-11-23T09:00:00Z"]);
    assert!(
        tick.stdout
            .starts_with("pass at 2026-11-23 09:00 UTC: 1 account evaluated"),
        "{}",
        tick.stdout
    );
    let explain = touchline(&project, &["explain", "a1", "--now", "2026-11-23"]);
    assert!(
        explain.stdout.starts_with("Account a1 — Acme\n"),
        "{}",
        explain.stdout
    );
    assert!(
        explain
            .stdout
            .contains("  rule 2 → tech  matched: (everyone else)\n"),
        "{}",
        explain.stdout
    );
}

#[test]
fn a_bad_jsonl_line_names_its_line_and_field() {
    let project = Project::new().file(
        "events.jsonl",
        "{\"account_id\": \"a1\", \"name\": \"login\", \"at\": \"2026-11-20T10:00:00Z\"}\n\n{\"account_id\": \"a1\", \"name\": \"login\", \"at\": \"soon\"}\nnot json\n",
    );
    let output = touchline(&project, &["import", "events", "events.jsonl"]);
    assert_eq!(output.code, 1);
    let lines: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "events.jsonl: line 3, column `at`: `soon` is not a date (write 2026-11-23 or 2026-11-23T09:00:00Z)"
    );
    assert!(
        lines[1].starts_with("events.jsonl: line 4, column `(line)`: is not a JSON object: "),
        "{}",
        lines[1]
    );
}

#[test]
fn preview_renders_a_step_strictly_and_sends_a_test_once() {
    let project = Project::new()
        .file(
            "templates/welcome.yaml",
            "subject: 'Welcome to {{ account.name }}'\ntext: |\n  Hi {{ contact.first_name | default('there') }}, your plan is {{ account.plan }}.\nhtml: '<p>Hi {{ contact.name }}</p>'\n",
        )
        .journey(
            "hello",
            &journey_with_steps(
                "  - id: mail\n    email: { template: welcome }\n  - id: call\n    task: { title: 'Call {{ contact.email }}', assign: owner }\n",
            ),
        )
        .file(
            "accounts.csv",
            "id,name,plan,owner\na1,Acme & Sons,pro,ana\na2,Beta,,ana\n",
        )
        .file(
            "contacts.csv",
            "id,account_id,email,name\nc1,a1,pat@example.com,<Pat>\nc2,a2,kim@example.com,Kim\n",
        );
    for kind in ["accounts", "contacts"] {
        let import = touchline(&project, &["import", kind, &format!("{kind}.csv")]);
        assert_eq!(import.code, 0, "{}", import.stderr);
    }

    let shown = touchline(
        &project,
        &[
            "preview",
            "hello",
            "mail",
            "--account",
            "a1",
            "--contact",
            "c1",
        ],
    );
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert_eq!(
        shown.stdout,
        "email: pat@example.com\nsubject: Welcome to Acme & Sons\ntext: Hi there, your plan is pro.\nhtml: <p>Hi &lt;Pat&gt;</p>\n"
    );
    let task = touchline(
        &project,
        &[
            "preview",
            "hello",
            "call",
            "--account",
            "a1",
            "--contact",
            "c1",
        ],
    );
    assert_eq!(
        task.stdout,
        "task: the account's owner (ana)\ntitle: Call pat@example.com\n"
    );

    // A field this customer lacks is named, with the way out.
    let missing = touchline(
        &project,
        &[
            "preview",
            "hello",
            "mail",
            "--account",
            "a2",
            "--contact",
            "c2",
        ],
    );
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr,
        "error: text: `account.plan` is not set for this customer; add a fallback with `{{ account.plan | default('…') }}` or fill in the data\n"
    );
    let no_contact = touchline(&project, &["preview", "hello", "mail", "--account", "a1"]);
    assert_eq!(
        no_contact.stderr,
        "error: this journey follows contacts: pass --contact ID; its contacts are `c1`\n"
    );
    let no_step = touchline(&project, &["preview", "hello", "mial", "--account", "a1"]);
    assert_eq!(
        no_step.stderr,
        "error: journey `hello` has no step `mial`; its steps are `mail`, `call`\n"
    );

    // --out writes the preview to a file; --send-test mails it once (here, into the outbox).
    let sent = touchline(
        &project,
        &[
            "preview",
            "hello",
            "mail",
            "--account",
            "a1",
            "--contact",
            "c1",
            "--out",
            "preview.txt",
            "--send-test",
            "me@example.com",
        ],
    );
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let written = std::fs::read_to_string(project.path("preview.txt")).expect("preview file");
    assert!(written.starts_with("email: pat@example.com\n"), "{written}");
    assert!(
        sent.stdout.contains("test mail sent to me@example.com"),
        "{}",
        sent.stdout
    );
    let mails: Vec<String> = std::fs::read_dir(project.path("outbox"))
        .expect("outbox")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("mail"))
        .collect();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: me@example.com\r\n"), "{}", mails[0]);
    assert!(
        mails[0].contains("Subject: [test] Welcome to Acme & Sons\r\n"),
        "{}",
        mails[0]
    );
}

#[test]
fn a_misspelt_status_is_refused_with_the_choices() {
    let project = Project::new();
    for args in [
        &["tasks", "list", "--status", "opne"][..],
        &["deliveries", "list", "--status", "faild"][..],
    ] {
        let output = touchline(&project, args);
        assert_eq!(output.code, 2, "{args:?}: {}", output.stderr);
        assert!(output.stdout.is_empty(), "{}", output.stdout);
        assert!(
            output
                .stderr
                .contains(&format!("invalid value '{}'", args[3])),
            "{}",
            output.stderr
        );
        assert!(
            output.stderr.contains("a similar value exists"),
            "{}",
            output.stderr
        );
    }
}

#[test]
fn help_and_errors_into_a_pipe_have_no_colour_codes_unless_forced() {
    let project = Project::new();
    let run = |args: &[&str], force: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_touchline"));
        command.args(args).current_dir(project.root());
        command.env_remove("CLICOLOR_FORCE").env_remove("NO_COLOR");
        if force {
            command.env("CLICOLOR_FORCE", "1");
        }
        let output = command.output().expect("touchline runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    for args in [&["--help"][..], &["tasks", "list", "--status", "opne"][..]] {
        let plain = run(args, false);
        assert!(plain.contains("tasks") || plain.contains("opne"), "{plain}");
        assert!(!plain.contains('\u{1b}'), "{args:?}: {plain:?}");
        assert!(
            run(args, true).contains('\u{1b}'),
            "{args:?} with CLICOLOR_FORCE"
        );
    }
}

/// A project with one account that a journey gave a mail and a task, and a suppressed address.
fn project_with_work() -> Project {
    let journey = "name: Hello\naudience: accounts\nentry: { event: account_created }\nsteps:\n  \
                   - id: mail\n    email: { template: welcome, to: [admin] }\n  \
                   - id: call\n    task: { title: 'Call {{ account.name }}', assign: owner, due: 2d }\n";
    let project = Project::new()
        .journey("hello", journey)
        .file(
            "accounts.csv",
            "id,name,arr,owner,goals\na1,Acme,12000,ana,cost_reduction\n",
        )
        .file(
            "contacts.csv",
            "id,account_id,email,role\nc1,a1,pat@example.com,admin\n",
        )
        .file(
            "events.csv",
            "account_id,name,at\na1,account_created,2026-11-23T08:00:00Z\n",
        );
    for (kind, file) in [
        ("accounts", "accounts.csv"),
        ("contacts", "contacts.csv"),
        ("events", "events.csv"),
    ] {
        assert_eq!(
            touchline(&project, &["import", kind, file]).code,
            0,
            "{kind}"
        );
    }
    let tick = touchline(&project, &["tick", "--now", "2026-11-23T09:00:00Z"]);
    assert_eq!(tick.code, 0, "{}", tick.stderr);
    let suppress = touchline(&project, &["suppress", "add", "gone@example.com"]);
    assert_eq!(suppress.code, 0, "{}", suppress.stderr);
    project
}

fn json(project: &Project, args: &[&str]) -> serde_json::Value {
    let output = touchline(project, args);
    assert_eq!(output.code, 0, "{args:?}: {}", output.stderr);
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("{args:?} did not print JSON ({e}): {}", output.stdout))
}

#[test]
fn every_listing_command_prints_json_on_request() {
    let project = project_with_work();

    let status = json(&project, &["status", "--format", "json"]);
    assert_eq!(status["accounts"], 1);
    assert_eq!(status["tiers"][0]["tier"], "tech");
    assert_eq!(status["enrollments"][0]["journey_id"], "hello");
    let outbox: Vec<(String, i64)> = status["outbox"]
        .as_array()
        .expect("outbox")
        .iter()
        .map(|c| {
            (
                format!(
                    "{} {}",
                    c["kind"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or("")
                ),
                c["count"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        outbox,
        [("email sent".to_string(), 2), ("task sent".to_string(), 1)],
        "the step mail, the CSM's notice, the task"
    );
    assert_eq!(status["open_tasks"][0]["csm"], "ana");

    let tasks = json(&project, &["tasks", "list", "--format", "json"]);
    assert_eq!(tasks[0]["title"], "Call Acme");
    assert_eq!(tasks[0]["assignee"], "ana");
    assert_eq!(tasks[0]["assignee_name"], "Ana");
    assert_eq!(tasks[0]["status"], "open");
    assert!(tasks[0]["due_at"].is_string());

    let sent = json(
        &project,
        &["deliveries", "list", "--status", "sent", "--format", "json"],
    );
    let targets: Vec<&str> = sent
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["target"].as_str())
        .collect();
    assert!(targets.contains(&"pat@example.com"), "{sent}");
    assert!(sent[0]["delivered_at"].is_string(), "{sent}");

    let explain = json(
        &project,
        &[
            "explain",
            "a1",
            "--now",
            "2026-11-23T10:00:00Z",
            "--format",
            "json",
        ],
    );
    assert_eq!(explain["account"]["id"], "a1");
    assert_eq!(explain["tier"], "tech");
    assert_eq!(explain["journeys"][0]["id"], "hello");
    assert_eq!(
        explain["journeys"][0]["subjects"][0]["verdict"],
        "in segment, but was enrolled before and re-entry is `never` (last: completed 2026-11-23)"
    );

    let suppressed = json(&project, &["suppress", "list", "--format", "json"]);
    assert_eq!(suppressed[0]["email"], "gone@example.com");
    assert_eq!(suppressed[0]["reason"], "manual");
}

#[test]
fn init_makes_a_project_that_validates_and_runs_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_touchline"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("touchline runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["init"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run(&["validate", "--deny-warnings"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("valid: 1 journey, 4 scores, 3 tier rules, 2 templates"),
        "{out}"
    );
    let (code, out, err) = run(&["test"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 test passed, 0 failed"), "{out}");
    let (code, out, err) = run(&["tick", "--now", "2026-11-23T09:00:00Z"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("pass at 2026-11-23 09:00 UTC"), "{out}");
    let ignored = std::fs::read_to_string(dir.path().join(".gitignore")).expect("gitignore");
    assert!(
        ignored.contains("touchline.db") && ignored.contains("outbox/"),
        "{ignored}"
    );

    std::fs::write(dir.path().join("touchline.yaml"), "# mine\n").expect("write");
    let (code, _, err) = run(&["init"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not overwriting") && err.contains("touchline.yaml"),
        "{err}"
    );
    let kept = std::fs::read_to_string(dir.path().join("touchline.yaml")).expect("read");
    assert_eq!(kept, "# mine\n", "an existing file is left as it was");
}
