//! `touchline report` on the demo: the sample customers were built with one step that does
//! nothing (the utilization nudge) and a score that predicts churn; the report must find
//! exactly that, and say the same in text and JSON.

use crate::bundled::bundled_example;
use crate::common::touchline_ok as touchline;

#[test]
fn the_demo_report_finds_the_one_ineffective_step_and_the_score_that_predicts_churn() {
    let dir = bundled_example();
    let demo = touchline(dir.path(), &["demo"]);
    assert!(demo.contains("demo-report.html"), "{demo}");
    assert!(dir.path().join("demo-report.html").exists());
    let report = [
        "--database",
        "sqlite://demo.db",
        "report",
        "--from",
        "2026-10-17",
        "--to",
        "2026-12-01",
    ];
    let json: serde_json::Value = serde_json::from_str(&touchline(
        dir.path(),
        &[&report[..], &["--format", "json"]].concat(),
    ))
    .expect("json");
    let text = touchline(dir.path(), &report);

    // Every bundled journey has its funnel, every adoption goal its time to value.
    let journeys: Vec<&str> = json["journeys"]
        .as_array()
        .expect("journeys")
        .iter()
        .filter(|j| j["entered"].as_u64() > Some(0))
        .filter_map(|j| j["journey_id"].as_str())
        .collect();
    for journey in std::fs::read_dir(dir.path().join("journeys")).expect("journeys") {
        let path = journey.expect("entry").path();
        let id = path.file_stem().and_then(|s| s.to_str()).expect("id");
        assert!(journeys.contains(&id), "{id} has no entries: {journeys:?}");
    }
    let goals: Vec<&str> = json["time_to_value"]
        .as_array()
        .expect("time to value")
        .iter()
        .filter_map(|g| g["goal"].as_str())
        .collect();
    assert_eq!(goals, ["compliance", "cost_reduction", "safe_driving"]);

    // Exactly the step the sample data was built to contain is flagged; others work.
    let effects = json["step_effects"].as_array().expect("step effects");
    let verdict = |wanted: &str| -> Vec<String> {
        effects
            .iter()
            .filter(|e| e["verdict"] == wanted)
            .map(|e| {
                format!(
                    "{}/{}",
                    e["journey_id"].as_str().unwrap_or(""),
                    e["step_id"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert_eq!(
        verdict("ineffective"),
        ["utilization-rescue/nudge"],
        "{text}"
    );
    let works = verdict("moves");
    assert!(
        works.contains(&"utilization-rescue/csm-call".to_string())
            && works.contains(&"onboarding-compliance/welcome".to_string()),
        "{works:?}"
    );
    let nudge = effects
        .iter()
        .find(|e| e["step_id"] == "nudge")
        .expect("nudge");
    let utilization = &nudge["scores"][0];
    assert_eq!(nudge["method"], "holdout");
    assert!(utilization["held_out"].as_u64() >= Some(8), "{nudge}");
    // The text says the same: the flag, and the same group sizes.
    let line = format!(
        "recipients {:+.1}",
        utilization["recipients_change"]["value"]
            .as_f64()
            .expect("change")
    );
    assert!(
        text.contains("!!utilization-rescue/nudge (email, 7 days): ineffective"),
        "{text}"
    );
    assert!(text.contains(&line), "no `{line}` in:\n{text}");

    // Utilization predicts churn: its lowest band churns far more than its highest.
    let utilization = json["score_validation"]
        .as_array()
        .expect("score validation")
        .iter()
        .find(|v| v["score"] == "utilization")
        .expect("utilization");
    assert!(utilization["auc"].as_f64() > Some(0.7), "{utilization}");
    let bands = utilization["bands"].as_array().expect("bands");
    let churn = |band: &serde_json::Value| band["churn_percent"].as_f64().unwrap_or(0.0);
    assert!(
        churn(&bands[0]) > 3.0 * churn(bands.last().expect("band")),
        "{utilization}"
    );
    assert!(text.contains("utilization      400 accounts"), "{text}");
}
