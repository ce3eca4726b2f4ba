//! `touchline test`: the bundled example's journey tests pass, a journey broken on purpose
//! fails at the expectation it breaks, and a bad test file is reported like `validate`.

use std::path::Path;
use std::process::Command;

use crate::bundled::bundled_example;
use crate::common::Project;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn touchline(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("touchline runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The 1-based line of the first line of `file` containing `text`, and its column.
fn place_of(file: &Path, text: &str) -> (usize, usize) {
    let source = std::fs::read_to_string(file).expect("read");
    source
        .lines()
        .enumerate()
        .find_map(|(n, line)| line.find(text).map(|c| (n + 1, c + 1)))
        .unwrap_or_else(|| panic!("`{text}` not in {}", file.display()))
}

#[test]
fn the_bundled_journey_tests_pass_and_cover_every_journey() {
    let dir = bundled_example();
    let run = touchline(
        dir.path(),
        &["test", "--format", "json", "--junit", "results.xml"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(report["failed"], 0, "{report}");
    let passed = report["passed"].as_u64().expect("passed");
    assert!(passed >= 7, "{report}");
    // Every bundled journey has a test file of its own.
    for entry in std::fs::read_dir(dir.path().join("journeys")).expect("journeys") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let tests = dir.path().join("journey-tests").join(&name);
        let text = std::fs::read_to_string(&tests)
            .unwrap_or_else(|_| panic!("no journey-tests/{name} for journeys/{name}"));
        let id = name.trim_end_matches(".yaml");
        assert!(
            text.contains(&format!("journey: {id}")),
            "{name} never names its journey"
        );
    }
    let junit = std::fs::read_to_string(dir.path().join("results.xml")).expect("junit");
    assert!(
        junit.contains(&format!(
            "<testsuites name=\"touchline\" tests=\"{passed}\" failures=\"0\""
        )),
        "{junit}"
    );
    assert_eq!(
        junit.matches("<testcase ").count() as u64,
        passed,
        "{junit}"
    );
}

#[test]
fn a_journey_broken_on_purpose_fails_at_the_expectation_it_breaks() {
    let dir = bundled_example();
    let journey = dir.path().join("journeys/utilization-rescue.yaml");
    let text = std::fs::read_to_string(&journey).expect("read");
    // A one-character slip: the rescue now starts below 4 instead of below 40.
    let broken = text.replace(
        "condition: 'account.scores.utilization < 40'",
        "condition: 'account.scores.utilization < 4'",
    );
    assert_ne!(broken, text, "the entry condition moved; update this test");
    std::fs::write(&journey, broken).expect("write");
    let tests = dir.path().join("journey-tests/utilization-rescue.yaml");
    let run = touchline(
        dir.path(),
        &[
            "test",
            "journey-tests/utilization-rescue.yaml",
            "--junit",
            "results.xml",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let (line, column) = place_of(&tests, "- mail: { to: ann, template: utilization_nudge");
    let place = format!(
        "journey-tests/utilization-rescue.yaml:{line}:{}: expected 1 × mail from template utilization_nudge",
        column + 2
    );
    assert!(
        run.stdout.contains(&place),
        "no `{place}` in:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("= found: no mails"), "{}", run.stdout);
    let junit = std::fs::read_to_string(dir.path().join("results.xml")).expect("junit");
    assert!(junit.contains("<failure message=\"expected "), "{junit}");
    assert!(
        junit.contains("expected 1 × mail from template utilization_nudge"),
        "{junit}"
    );

    // A journey that does not load at all fails like validate, at its own file:line:col.
    std::fs::write(
        &journey,
        text.replace("steps:", "steps:\n  - id: nudge\n    email: {"),
    )
    .expect("write");
    let run = touchline(dir.path(), &["test"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("journeys/utilization-rescue.yaml:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("the definitions have"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bad_test_file_is_reported_at_its_place_with_a_hint() {
    let project = Project::new()
        .journey(
            "onboarding",
            "name: Onboarding\naudience: contacts\nentry: { event: account_created }\nsteps:\n  - id: welcome\n    email: { template: welcome }\n",
        )
        .file(
            "journey-tests/onboarding.yaml",
            r#"tests:
  - name: typos everywhere
    start: 2026-11-02 09:00
    accounts:
      - { id: acme, name: Acme, arr: lots }
      - { id: beta, name: Beta }
    contacts:
      - { id: ann, account_id: acme, email: ann@acme.example }
    expect:
      - enrolled: { journey: onbording, account: acme }
      - mail: { to: anne, template: welcom }
      - task: { csm: cara }
      - tier: { is: tech }
"#,
        )
        .file(
            "journey-tests/typo.yaml",
            "tests:\n  - name: an unknown field\n    start: 2026-11-02 09:00\n    expcet: []\n",
        );
    let run = touchline(project.root(), &["test"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    for expected in [
        "journey-tests/onboarding.yaml:5:38: error: account record, `arr`: `lots` is not a number",
        "journey-tests/onboarding.yaml:10:30: error: unknown journey `onbording`",
        "did you mean `onboarding`?",
        "journey-tests/onboarding.yaml:11:21: error: unknown contact `anne`",
        "journey-tests/onboarding.yaml:11:37: error: unknown template `welcom`",
        "journey-tests/onboarding.yaml:12:22: error: unknown CSM `cara`",
        "journey-tests/onboarding.yaml:13:9: error: say which `account:`",
        "journey-tests/typo.yaml:4:5: error: unknown field `expcet`",
        "did you mean `expect`?",
    ] {
        assert!(
            run.stdout.contains(expected),
            "no `{expected}` in:\n{}",
            run.stdout
        );
    }
}
