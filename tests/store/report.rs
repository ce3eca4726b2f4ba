//! `touchline report` over a small history whose numbers are known by hand.

use chrono::Duration;
use touchline::delivery::Deliverer;
use touchline::engine::Engine;
use touchline::store::Store;
use touchline::views::report::{self, Scope};

use crate::fixture::{Project, WELCOME, account, customer, days, send_event, set_usage, t0};

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

/// A rescue journey with a 30% holdout: 60 accounts enter; the nudge lifts recipients'
/// utilization by 15 points and nothing else; the tips mail a day later changes nothing.
/// The five accounts with the lowest utilization churn (four by the churn event, one by
/// its status and contract end).
const RESCUE_WITH_HOLDOUT: &str = r#"name: Rescue with a holdout
audience: accounts
entry: { condition: 'account.scores.utilization < 40' }
goal: { when: 'account.scores.utilization >= 80' }
holdout: { share: 30%, window: 7d }
steps:
  - id: nudge
    email: { template: tips, to: [admin] }
  - wait: 1d
  - id: tips
    email: { template: tips, to: [admin] }
  - wait: 30d
"#;

pub async fn holdouts_show_which_steps_move_the_scores<S: Store>(store: S) {
    use touchline::store::DeliveryStatus;
    use touchline::views::step_effects::{Method, Verdict};

    let project = Project::new(&[("rescue", RESCUE_WITH_HOLDOUT)]);
    let definitions = project.definitions();
    let journey = &definitions.journeys["rescue"];
    let ids: Vec<String> = (0..60).map(|i| format!("r{i:02}")).collect();
    let start = |i: usize| 10.0 + (i % 30) as f64;
    for (i, id) in ids.iter().enumerate() {
        customer(&store, id, 5000.0, start(i), t0()).await;
    }
    let held: Vec<bool> = ids.iter().map(|id| journey.holds_out(id)).collect();
    let held_count = held.iter().filter(|h| **h).count();
    assert!(
        (10..=26).contains(&held_count),
        "30% of 60 by hash, got {held_count}"
    );
    let engine = Engine::new(definitions.clone(), store.clone());
    let deliverer = Deliverer::simulated(definitions.clone(), store.clone());
    engine.tick(t0()).await.expect("tick");
    deliverer.deliver_due(t0()).await.expect("deliver");
    // The holdout's nudges are stored as held out and never sent.
    let held_out = store
        .deliveries(&[DeliveryStatus::HeldOut], 1000)
        .await
        .expect("held out");
    assert_eq!(held_out.len(), held_count);
    assert!(
        held_out
            .iter()
            .all(|r| { journey.holds_out(&r.record.account_id) })
    );
    let sent = store
        .deliveries(&[DeliveryStatus::Sent], 1000)
        .await
        .expect("sent");
    assert_eq!(sent.len(), 60 - held_count);

    // A day on: the nudge worked for those who got it.
    for (i, id) in ids.iter().enumerate() {
        let lift = if held[i] { 0.0 } else { 15.0 };
        set_usage(&store, id, start(i) + lift + (i % 3) as f64, t0() + days(1)).await;
    }
    engine.tick(t0() + days(1)).await.expect("tick");
    deliverer
        .deliver_due(t0() + days(1))
        .await
        .expect("deliver");
    // The five least used accounts churn on day five.
    let mut lowest: Vec<usize> = (0..60).collect();
    lowest.sort_by(|a, b| start(*a).total_cmp(&start(*b)).then(a.cmp(b)));
    for &i in &lowest[..4] {
        send_event(&store, &ids[i], "account_churned", t0() + days(5)).await;
    }
    let mut gone = account(&ids[lowest[4]], 5000.0);
    gone.status = "churned".into();
    gone.contract_end = Some(t0() + days(5));
    store
        .import(&touchline::store::Import {
            accounts: vec![gone],
            ..Default::default()
        })
        .await
        .expect("import");
    engine.tick(t0() + days(8)).await.expect("tick");

    let scope = Scope {
        from: t0() - Duration::hours(1),
        to: t0() + days(10),
        journey: None,
        tier: None,
        goal: None,
        value_limit_days: 60,
    };
    let view = report::build(&store, &definitions, scope)
        .await
        .expect("report");
    let nudge = &view.journeys[0].steps[0];
    assert_eq!(
        (nudge.sent, nudge.held_out),
        ((60 - held_count) as u64, held_count as u64)
    );

    let effect = |step: &str| {
        view.step_effects
            .iter()
            .find(|e| e.step_id == step)
            .unwrap_or_else(|| panic!("no effect for {step}: {:?}", view.step_effects))
    };
    let nudge = effect("nudge");
    assert_eq!(
        (nudge.method, nudge.verdict),
        (Method::Holdout, Verdict::Moves)
    );
    let utilization = &nudge.scores[0];
    assert_eq!(utilization.score, "utilization");
    assert_eq!(
        (utilization.recipients, utilization.held_out),
        ((60 - held_count) as u64, held_count as u64)
    );
    let lift = utilization.lift.expect("lift");
    assert!((lift.value - 15.0).abs() < 1.0, "{lift:?}");
    assert!(lift.low > 13.0 && lift.high < 17.0, "{lift:?}");
    let tips = effect("tips");
    assert_eq!(tips.verdict, Verdict::Ineffective, "{tips:?}");
    assert_eq!(tips.scores[0].lift.expect("lift").value, 0.0);
    let text = report::text(&view);
    assert!(
        text.contains("!!rescue/tips (email, 7 days): ineffective"),
        "{text}"
    );
    assert!(
        text.contains("  rescue/nudge (email, 7 days): works"),
        "{text}"
    );

    // Utilization at the start predicted who churned.
    let utilization = view
        .score_validation
        .iter()
        .find(|v| v.score == "utilization")
        .expect("utilization checked");
    assert_eq!((utilization.accounts, utilization.churned), (60, 5));
    assert!(utilization.auc.expect("auc") > 0.95, "{utilization:?}");
    let lowest_band = &utilization.bands[0];
    assert_eq!(lowest_band.churned, 5, "{utilization:?}");
    assert!(
        utilization.verdict.starts_with("predicts churn"),
        "{utilization:?}"
    );
    let html = report::html(&view).expect("html");
    assert!(html.contains("Do the steps work?") && html.contains("Do the scores predict churn?"));
}
