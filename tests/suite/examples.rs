//! The bundled examples and the published JSON Schemas agree.

use crate::bundled::bundled_example;
use std::path::{Path, PathBuf};

use touchline::schema::SchemaKind;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(folder))
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read");
    let (value, errors) = touchline::yaml::from_str::<serde_json::Value>(&text);
    assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    value.expect("value")
}

fn validator(kind: SchemaKind) -> jsonschema::Validator {
    jsonschema::validator_for(&kind.schema().to_value()).expect("schema compiles")
}

fn assert_valid(kind: SchemaKind, files: &[PathBuf]) {
    let validator = validator(kind);
    for file in files {
        let instance = as_json(file);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not match {}: {errors:#?}",
            file.display(),
            kind.file_name()
        );
    }
}

#[test]
fn committed_schemas_are_current() {
    for kind in SchemaKind::ALL {
        let committed = std::fs::read_to_string(repo().join("schemas").join(kind.file_name()))
            .expect("committed schema");
        assert_eq!(
            committed,
            kind.to_json(),
            "schemas/{} is stale: run `touchline schema --out schemas`",
            kind.file_name()
        );
    }
}

#[test]
fn every_example_journey_matches_the_journey_schema() {
    let files = yaml_files("journeys");
    assert!(files.len() >= 7, "{files:?}");
    assert_valid(SchemaKind::Journey, &files);
}

#[test]
fn the_example_config_matches_its_schema() {
    assert_valid(SchemaKind::Config, &[repo().join("touchline.yaml")]);
}

#[test]
fn every_example_template_matches_the_template_schema() {
    assert_valid(SchemaKind::Template, &yaml_files("templates"));
}

#[test]
fn every_bundled_journey_test_matches_the_journey_test_schema() {
    let files = yaml_files("journey-tests");
    assert!(files.len() >= 7, "{files:?}");
    assert_valid(SchemaKind::JourneyTest, &files);
}

#[test]
fn the_schema_rejects_what_validate_rejects() {
    let validator = validator(SchemaKind::Journey);
    let broken = serde_json::json!({
        "name": "x",
        "audience": "acounts",
        "entry": { "event": "signed_up" },
        "steps": [{ "emial": { "template": "welcome" } }]
    });
    let errors: Vec<String> = validator
        .iter_errors(&broken)
        .map(|e| e.instance_path().to_string())
        .collect();
    assert!(errors.contains(&"/audience".to_string()), "{errors:?}");
    assert!(errors.contains(&"/steps/0".to_string()), "{errors:?}");
}

#[test]
fn example_files_start_with_a_schema_modeline() {
    let mut files = yaml_files("journeys");
    files.extend(yaml_files("templates"));
    files.extend(yaml_files("journey-tests"));
    files.push(repo().join("touchline.yaml"));
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# yaml-language-server: $schema="),
            "{} lacks the modeline",
            file.display()
        );
        let target = first.trim_start_matches("# yaml-language-server: $schema=");
        let resolved = file.parent().expect("parent").join(target);
        assert!(
            resolved.is_file(),
            "{}: modeline points at missing {}",
            file.display(),
            resolved.display()
        );
    }
}

#[test]
fn a_feed_that_zeroes_every_account_is_held_until_a_person_releases_it() {
    let dir = bundled_example();
    let run = |args: &[&str]| crate::common::touchline_ok(dir.path(), args);
    run(&["demo", "--days", "3"]);
    let db = ["--database", "sqlite://demo.db"];
    // A broken usage feed: every account's activity reads 0.
    let mut zeroes = String::from("account_id,name,value,at\n");
    for n in 1..=400 {
        for metric in ["logins_30d", "active_users_30d"] {
            zeroes.push_str(&format!("acc-{n:06},{metric},0,2026-11-20T00:00:00Z\n"));
        }
    }
    std::fs::write(dir.path().join("zeroes.csv"), zeroes).expect("write");
    run(&[&db[..], &["import", "metrics", "zeroes.csv"]].concat());
    let tick = run(&[&db[..], &["tick", "--now", "2026-11-20T09:00:00Z"]].concat());
    assert!(tick.contains("HELD utilization-rescue"), "{tick}");
    let holds: serde_json::Value =
        serde_json::from_str(&run(
            &[&db[..], &["hold", "list", "--format", "json"]].concat()
        ))
        .expect("json");
    let rescue = holds
        .as_array()
        .expect("list")
        .iter()
        .find(|h| h["journey_id"] == "utilization-rescue")
        .expect("the rescue journey is held");
    let held = rescue["records"].as_i64().expect("records");
    assert!(held > 100, "{holds}");
    let still_held: serde_json::Value = serde_json::from_str(&run(&[
        &db[..],
        &[
            "deliveries",
            "list",
            "--status",
            "held",
            "--limit",
            "10000",
            "--format",
            "json",
        ],
    ]
    .concat()))
    .expect("json");
    let rescue_held = still_held
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| d["journey_id"] == "utilization-rescue")
        .count();
    assert_eq!(rescue_held, held as usize, "nothing of it was sent");

    let released = run(&[&db[..], &["hold", "release", "utilization-rescue"]].concat());
    assert!(
        released.starts_with(&format!("utilization-rescue: {held} records released")),
        "{released}"
    );
    run(&[&db[..], &["tick", "--now", "2026-11-20T15:00:00Z"]].concat());
    let sent: serde_json::Value = serde_json::from_str(&run(&[
        &db[..],
        &[
            "deliveries",
            "list",
            "--status",
            "all",
            "--limit",
            "100000",
            "--format",
            "json",
        ],
    ]
    .concat()))
    .expect("json");
    let rescue: Vec<&serde_json::Value> = sent
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| d["journey_id"] == "utilization-rescue")
        .collect();
    assert!(
        rescue.iter().all(|d| d["status"] != "held"),
        "every released record went on"
    );
}
