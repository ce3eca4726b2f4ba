//! Hostile rules and hostile files end in an error, quickly, never in a hang or a crash.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use touchline::definitions::JourneyFile;
use touchline::rules::{Context, EvalError, Form, RuleEngine, Variables};

use crate::common::{Project, summary};

const BUDGET: Duration = Duration::from_millis(100);

fn context() -> Context {
    let account = serde_json::json!({ "id": "acme", "arr": 12000, "metrics": { "logins": 3 } });
    Context::from_json(
        account,
        None,
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
    )
    .expect("context")
}

/// Compiles and runs a score script, returning its error and how long it took.
fn run_script(source: &str) -> (EvalError, Duration) {
    let engine = RuleEngine::new();
    let rule = engine
        .compile(
            "scripts/hostile.rhai (score hostile)",
            source,
            Form::Script,
            Variables::Account,
            None,
        )
        .expect("compiles");
    let started = Instant::now();
    let result = engine.eval(&rule, &context());
    (
        result.expect_err("hostile rule must fail"),
        started.elapsed(),
    )
}

#[test]
fn infinite_loop_is_stopped() {
    let (error, took) = run_script("let x = 0;\nloop { x += 1; }\nx");
    assert_eq!(error.rule, "scripts/hostile.rhai (score hostile)");
    // Whichever limit trips first (the operation count, or the time budget in a debug build).
    assert!(
        error.reason == "stopped after 200000 operations (does it loop forever?)"
            || error.reason == "stopped after its time budget of 50 ms",
        "{}",
        error.reason
    );
    assert!(took < BUDGET, "took {took:?}");
}

#[test]
fn runaway_recursion_is_stopped() {
    let (error, took) = run_script("fn deeper(n) { deeper(n + 1) }\ndeeper(0)");
    assert_eq!(
        error.reason,
        "stopped at 24 nested function calls (does it recurse forever?)"
    );
    assert!(took < BUDGET, "took {took:?}");
}

#[test]
fn string_doubling_is_stopped() {
    let (error, took) = run_script("let s = \"ab\";\nloop { s += s; }\ns");
    assert!(
        error
            .reason
            .starts_with("stopped: Length of string grew past the limit"),
        "{}",
        error.reason
    );
    assert!(took < BUDGET, "took {took:?}");
}

#[test]
fn slow_rule_is_stopped_by_its_time_budget() {
    // Each operation copies 60 kB, so the operation limit alone would allow seconds of work.
    let (error, took) = run_script("let s = \"\";\nloop { s = \"x\".pad(60000, \"y\"); }\ns");
    assert_eq!(error.reason, "stopped after its time budget of 50 ms");
    assert!(took < BUDGET, "took {took:?}");
}

#[test]
fn ten_thousand_nested_parentheses_are_rejected_at_compile_time() {
    let expression = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let engine = RuleEngine::new();
    let started = Instant::now();
    let problems = engine
        .compile(
            "deep",
            &expression,
            Form::Expression,
            Variables::Account,
            None,
        )
        .expect_err("too deep");
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
    assert_eq!(
        problems[0].message,
        "expression is nested too deeply (more than 64 levels)"
    );
}

#[test]
fn nested_parentheses_in_a_journey_are_reported_at_their_position() {
    let expression = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let text = format!(
        "name: Deep\naudience: accounts\nentry:\n  condition: '{expression}'\nsteps:\n  - exit: done\n"
    );
    let project = Project::new().journey("deep", &text);
    let started = Instant::now();
    let lines = summary(&project.load());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("journeys/deep.yaml:4:"), "{lines:?}");
    assert!(
        lines[0].ends_with("error: expression is nested too deeply (more than 64 levels)"),
        "{lines:?}"
    );
}

#[test]
fn loops_are_not_allowed_in_conditions() {
    let engine = RuleEngine::new();
    let problems = engine
        .compile(
            "cond",
            "loop { }",
            Form::Expression,
            Variables::Account,
            None,
        )
        .expect_err("statements are not expressions");
    assert!(
        problems[0].message.starts_with("rule syntax error"),
        "{problems:?}"
    );
}

#[test]
fn rules_cannot_reach_outside() {
    let engine = RuleEngine::new();
    for source in ["import \"os\" as os; 1", "eval(\"1\")", "timestamp()"] {
        let compiled = engine.compile("io", source, Form::Script, Variables::Account, None);
        let outcome = compiled.map(|rule| engine.eval(&rule, &context()));
        assert!(!matches!(outcome, Ok(Ok(_))), "`{source}` ran: {outcome:?}");
    }
}

#[test]
fn missing_map_property_is_an_error_not_false() {
    let engine = RuleEngine::new();
    let rule = engine
        .compile(
            "cond",
            "account.metrics.logins_30d > 5",
            Form::Expression,
            Variables::Account,
            None,
        )
        .expect("compiles");
    let error = engine
        .eval_bool(&rule, &context())
        .expect_err("missing property");
    assert!(error.reason.contains("logins_30d"), "{}", error.reason);
}

#[test]
fn deeply_nested_yaml_is_an_error() {
    // Past touchline's own limit…
    let text = format!("name: {}x{}\n", "[".repeat(100), "]".repeat(100));
    let (value, errors) = touchline::yaml::from_str::<JourneyFile>(&text);
    assert!(value.is_none());
    assert_eq!(errors[0].message, "nested more than 64 levels deep");
    assert_eq!(
        errors[0].location.map(|l| (l.line, l.column)),
        Some((1, 70))
    );
    // …and far past the parser's.
    let text = format!("name: {}x{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let started = Instant::now();
    let (value, errors) = touchline::yaml::from_str::<JourneyFile>(&text);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(value.is_none());
    assert_eq!(errors[0].message, "invalid YAML: recursion limit exceeded");
}

#[test]
fn alias_bomb_is_an_error() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let started = Instant::now();
    let (_, errors) = touchline::yaml::from_str::<serde_json::Value>(&text);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        errors[0].message.starts_with("document is too large"),
        "{errors:?}"
    );
}

#[test]
fn huge_file_is_an_error() {
    let text = format!(
        "name: x\ndescription: \"{}\"\n",
        "y".repeat(3 * 1024 * 1024)
    );
    let project = Project::new().journey("huge", &text);
    let lines = summary(&project.load());
    assert_eq!(
        lines,
        [
            "journeys/huge.yaml: error: file is too large (3145752 bytes; definitions files may be at most 2097152 bytes)"
        ]
    );
}

#[test]
fn mangled_journeys_never_panic() {
    let original = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/journeys/churn-risk.yaml"
    ))
    .expect("example");
    let bytes = original.as_bytes();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let noise = b"{}[]:-'\"|>&*!%@`#\n \t,?";
    for _ in 0..1500 {
        let mut mangled = bytes.to_vec();
        for _ in 0..(1 + next() % 6) {
            let at = (next() as usize) % mangled.len();
            match next() % 3 {
                0 => mangled[at] = noise[(next() as usize) % noise.len()],
                1 => {
                    mangled.remove(at);
                }
                _ => mangled.insert(at, noise[(next() as usize) % noise.len()]),
            }
        }
        let text = String::from_utf8_lossy(&mangled);
        let _ = touchline::yaml::from_str::<JourneyFile>(&text);
    }
}
