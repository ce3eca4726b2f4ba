//! `touchline plan`: the difference an edit makes, worked out on a copy of the database that
//! is left byte for byte as it was.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::bundled::bundled_example;

/// Runs touchline; its exit code and what it printed (stdout, then stderr when it failed).
fn touchline(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("touchline runs");
    let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        printed.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    (output.status.code().unwrap_or(-1), printed)
}

/// The files holding the database's data (`demo.db` and its write-ahead log, unless that
/// is empty) and a hash of their bytes. The `-shm` file is left out: it is SQLite's shared
/// index of the log, holds no data, and every reader (a read-only one too) writes to it.
fn database_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == "demo.db" || (name == "demo.db-wal" && e.metadata().is_ok_and(|m| m.len() > 0))
        })
        .map(|e| {
            let bytes = std::fs::read(e.path()).expect("read");
            let hash: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            (e.file_name().to_string_lossy().into_owned(), hash)
        })
        .collect();
    files.sort();
    files
}

fn copy_definitions(from: &Path, to: &Path) {
    for folder in ["journeys", "scripts", "templates"] {
        std::fs::create_dir_all(to.join(folder)).expect("mkdir");
        for entry in std::fs::read_dir(from.join(folder)).expect("folder") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, to.join(folder).join(path.file_name().expect("name")))
                .expect("copy");
        }
    }
    std::fs::copy(from.join("touchline.yaml"), to.join("touchline.yaml")).expect("copy");
}

const LIVE: &str = "condition: 'account.scores.utilization < 40'";
const EDITED: &str = "condition: 'account.scores.utilization < 60'";

fn edit_threshold(project: &Path) {
    let journey = project.join("journeys/utilization-rescue.yaml");
    let text = std::fs::read_to_string(&journey).expect("read");
    assert!(
        text.contains(LIVE),
        "the rescue's entry condition moved; update this test"
    );
    std::fs::write(&journey, text.replace(LIVE, EDITED)).expect("write");
}

fn rescue_entries(plan: &serde_json::Value) -> (u64, u64) {
    let rescue = plan["journeys"]
        .as_array()
        .expect("journeys")
        .iter()
        .find(|j| j["journey_id"] == "utilization-rescue")
        .unwrap_or_else(|| panic!("no utilization-rescue in {plan}"));
    (
        rescue["entries"]["live"].as_u64().expect("live"),
        rescue["entries"]["edited"].as_u64().expect("edited"),
    )
}

#[test]
fn a_plan_shows_what_a_one_line_edit_changes_and_leaves_the_database_as_it_was() {
    let dir = bundled_example();
    let root = dir.path();
    let (code, output) = touchline(root, &["demo", "--days", "3"]);
    assert_eq!(code, 0, "{output}");
    let before = database_files(root);
    let edited = root.join("edited");
    copy_definitions(root, &edited);
    edit_threshold(&edited);
    let plan = [
        "--database",
        "sqlite://demo.db",
        "plan",
        "--now",
        "2026-11-20T09:00:00Z",
        "--days",
        "7",
        "--against",
        "edited",
    ];
    let (code, json) = touchline(root, &[&plan[..], &["--format", "json"]].concat());
    assert_eq!(code, 0, "{json}");
    let view: serde_json::Value = serde_json::from_str(&json).expect("json");
    let (live, with_edit) = rescue_entries(&view);
    assert!(
        with_edit > live,
        "raising the rescue's threshold should enroll more: {live} → {with_edit}"
    );
    let (code, markdown) = touchline(root, &[&plan[..], &["--format", "markdown"]].concat());
    assert_eq!(code, 0, "{markdown}");
    let row = format!(
        "| utilization-rescue | *entered* | {live} | {with_edit} | **+{}** |",
        with_edit - live
    );
    assert!(markdown.contains(&row), "no `{row}` in:\n{markdown}");
    let (code, text) = touchline(root, &plan);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "utilization-rescue: {live} → {with_edit} (+{})",
            with_edit - live
        )),
        "{text}"
    );
    assert_eq!(
        database_files(root),
        before,
        "the plan changed the database"
    );

    // The same edit as a git revision of the project.
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args([
                "-c",
                "user.name=touchline",
                "-c",
                "user.email=plan@touchline.example",
            ])
            .args(args)
            .current_dir(root)
            .output()
            .expect("git runs");
        assert!(
            status.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    std::fs::write(
        root.join(".gitignore"),
        "demo.db*\ndemo-outbox/\nedited/\nsample/\n",
    )
    .expect("write");
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "live"]);
    git(&["checkout", "-qb", "higher-threshold"]);
    edit_threshold(root);
    git(&["commit", "-qam", "rescue below 60"]);
    git(&["checkout", "-q", "main"]);
    let at_revision = [
        "--database",
        "sqlite://demo.db",
        "plan",
        "--now",
        "2026-11-20T09:00:00Z",
        "--days",
        "7",
        "--against",
        "higher-threshold",
        "--format",
        "json",
    ];
    let (code, json) = touchline(root, &at_revision);
    assert_eq!(code, 0, "{json}");
    let view: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(rescue_entries(&view), (live, with_edit));
    assert_eq!(
        database_files(root),
        before,
        "the plan changed the database"
    );
}

#[test]
fn a_plan_against_definitions_that_do_not_validate_shows_their_errors() {
    let dir = bundled_example();
    let root = dir.path();
    let (code, output) = touchline(root, &["demo", "--days", "1"]);
    assert_eq!(code, 0, "{output}");
    let broken = root.join("broken");
    copy_definitions(root, &broken);
    let journey = broken.join("journeys/utilization-rescue.yaml");
    let text = std::fs::read_to_string(&journey).expect("read");
    std::fs::write(
        &journey,
        text.replace(LIVE, "condition: 'account.scores.utilisation < 40'"),
    )
    .expect("write");
    let (code, output) = touchline(
        root,
        &[
            "--database",
            "sqlite://demo.db",
            "plan",
            "--against",
            "broken",
        ],
    );
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("broken/journeys/utilization-rescue.yaml:"),
        "{output}"
    );
    assert!(output.contains("utilisation"), "{output}");
    assert!(
        output.contains("a plan needs definitions that validate"),
        "{output}"
    );
}
