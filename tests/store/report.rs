//! `touchline report` over a small history whose numbers are known by hand.

use chrono::Duration;
use touchline::delivery::Deliverer;
use touchline::engine::Engine;
use touchline::store::Store;
use touchline::views::report::{self, Scope};

use crate::fixture::{Project, WELCOME, customer, days, send_event, set_usage, t0};

/// Four new tech-touch accounts enter the welcome journey; two reach its goal (usage ≥ 90)
/// a day later, the other two get the second mail on day two.
pub async fn the_report_counts_a_known_history<S: Store>(store: S) {
    let project = Project::new(&[("welcome", WELCOME)]);
    let definitions = project.definitions();
    for id in ["a1", "a2", "a3", "a4"] {
        customer(&store, id, 5000.0, 50.0, t0()).await;
        send_event(&store, id, "account_created", t0()).await;
    }
    let engine = Engine::new(definitions.clone(), store.clone());
    let deliverer = Deliverer::simulated(definitions.clone(), store.clone());
    engine.tick(t0()).await.expect("tick");
    deliverer.deliver_due(t0()).await.expect("deliver");
    for id in ["a1", "a2"] {
        set_usage(&store, id, 95.0, t0() + days(1)).await;
    }
    engine.tick(t0() + days(1)).await.expect("tick");
    engine.tick(t0() + days(3)).await.expect("tick");
    deliverer
        .deliver_due(t0() + days(3))
        .await
        .expect("deliver");

    let scope = Scope {
        from: t0() - Duration::hours(1),
        to: t0() + days(10),
        journey: None,
        tier: None,
        goal: None,
        value_limit_days: 60,
    };
    let view = report::build(&store, &definitions, scope.clone())
        .await
        .expect("report");
    assert!(view.has_activity);
    let welcome = &view.journeys[0];
    assert_eq!(welcome.journey_id, "welcome");
    assert_eq!(
        (welcome.entered, welcome.goal_reached, welcome.completed),
        (4, 2, 2)
    );
    assert_eq!(welcome.conversion_percent, Some(50.0));
    assert_eq!(welcome.median_days_to_goal, Some(1.0));
    let funnel: Vec<(&str, u64, u64)> = welcome
        .steps
        .iter()
        .filter(|s| s.kind == "email")
        .map(|s| (s.step_id.as_str(), s.reached, s.sent))
        .collect();
    assert_eq!(funnel, [("hello", 4, 4), ("tips", 2, 2)]);
    let by_tier: Vec<(&str, u64, u64)> = welcome
        .by_tier
        .iter()
        .map(|b| (b.key.as_str(), b.entered, b.goal_reached))
        .collect();
    assert_eq!(by_tier, [("tech", 4, 2)]);
    let email = view
        .delivery
        .iter()
        .find(|c| c.kind == "email")
        .expect("email health");
    assert_eq!((email.sent, email.failed, email.dead), (6, 0, 0));

    // What /metrics shows from the same history.
    assert_eq!(
        store.delivery_latency(&[0, 1000]).await.expect("latency"),
        [touchline::store::Latency {
            kind: "email".into(),
            at_most: vec![6, 6],
            count: 6,
            sum_ms: 0
        }]
    );
    let metrics = touchline::metrics::render(&Default::default(), &store, &definitions)
        .await
        .expect("metrics");
    for line in [
        "touchline_outbox_records{channel=\"email\",state=\"sent\"} 6",
        "touchline_delivery_latency_seconds_count{channel=\"email\"} 6",
        "touchline_enrollments{journey=\"welcome\",status=\"goal_reached\",step=\"step-2\"} 2",
    ] {
        assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");
    }

    // A period before anything happened says so.
    let before = Scope {
        from: t0() - days(30),
        to: t0() - days(1),
        ..scope.clone()
    };
    let empty = report::build(&store, &definitions, before)
        .await
        .expect("report");
    assert!(!empty.has_activity);
    assert!(report::text(&empty).contains("Nothing happened in this period"));

    // Filters name what the project has.
    let typo = Scope {
        journey: Some("welcom".into()),
        ..scope
    };
    let error = report::build(&store, &definitions, typo)
        .await
        .expect_err("unknown journey");
    assert_eq!(
        error.to_string(),
        "unknown journey `welcom`; did you mean `welcome`?"
    );
}
