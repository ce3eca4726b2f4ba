//! Engine scenarios with an injected clock, on every database.

use touchline::clock::{from_millis, to_millis};
use touchline::engine::Engine;
use touchline::store::{Enrollment, Payload, RuleFields, Store, WebhookPayload};

use crate::fixture::{
    Project, RESCUE, SWEEP, WELCOME, account, customer, days, send_event, set_usage, t0, usage,
};

async fn enrollments<S: Store>(store: &S, account: &str) -> Vec<Enrollment> {
    store
        .enrollments_of(&[account.to_string()])
        .await
        .expect("enrollments")
}

/// `journey/step kind` of every outbox record, oldest first.
async fn outbox<S: Store>(store: &S) -> Vec<String> {
    let mut records = store.recent_outbox(1000).await.expect("outbox");
    records.reverse();
    records
        .iter()
        .map(|r| {
            format!(
                "{}/{} {} {}",
                r.journey_id,
                r.step_id,
                r.kind(),
                r.contact_id
            )
        })
        .collect()
}

async fn log<S: Store>(store: &S, enrollment: &Enrollment) -> Vec<String> {
    let entries = store.enrollment_log(enrollment.id).await.expect("log");
    entries
        .iter()
        .map(|(_, e)| match &e.step_id {
            Some(step) => format!("{step} {}: {}", e.event, e.detail),
            None => format!("{}: {}", e.event, e.detail),
        })
        .collect()
}

pub async fn event_entry_runs_steps_and_waits<S: Store>(store: S) {
    let project = Project::new(&[("welcome", WELCOME)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let engine = Engine::new(project.definitions(), store);
    let report = engine.tick(t0()).await.expect("tick");
    assert_eq!(
        (report.events, report.enrolled, report.outbox),
        (1, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        outbox(engine.store()).await,
        ["welcome/hello email a1-admin"],
        "only the admin is in the segment"
    );
    let enrollment = &enrollments(engine.store(), "a1").await[0];
    assert_eq!(
        (enrollment.status.as_str(), enrollment.step_index),
        ("active", 1)
    );
    assert_eq!(enrollment.next_due_at, Some(to_millis(t0() + days(2))));

    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!(report.outbox, 0, "still waiting");
    engine.tick(t0() + days(2)).await.expect("tick");
    assert_eq!(
        outbox(engine.store()).await,
        [
            "welcome/hello email a1-admin",
            "welcome/tips email a1-admin"
        ]
    );
    let enrollment = &enrollments(engine.store(), "a1").await[0];
    assert_eq!(enrollment.status, "completed");
    assert_eq!(
        log(engine.store(), enrollment).await,
        [
            "entered: event `account_created` at 2026-11-02 09:00 UTC",
            "hello queued: email queued",
            "step-2 waiting: 2days",
            "step-2 waited: 2days",
            "tips queued: email queued",
            "completed: ran out of steps",
        ]
    );
    let records = engine.store().recent_outbox(1).await.expect("outbox");
    let Payload::Email(mail) = &records[0].payload else {
        panic!("a mail: {:?}", records[0].payload);
    };
    assert_eq!(mail.subject, "Tips for a1 Inc");
    assert_eq!(mail.to, "a1-admin@example.com");
    assert_eq!(
        records[0].idempotency_key,
        format!("{}:tips", enrollment.id)
    );
}

pub async fn rerunning_a_pass_at_the_same_time_does_nothing<S: Store>(store: S) {
    let project = Project::new(&[("welcome", WELCOME), ("rescue", RESCUE), ("sweep", SWEEP)]);
    customer(&store, "a1", 5000.0, 20.0, t0()).await;
    customer(&store, "a2", 50000.0, 80.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let engine = Engine::new(project.definitions(), store);
    engine.tick(t0() - days(7)).await.expect("tick");
    let first = engine.tick(t0()).await.expect("tick");
    assert!(first.outbox > 0, "{first:?}");
    let before = outbox(engine.store()).await;
    let again = engine.tick(t0()).await.expect("tick");
    assert!(again.is_idle(), "{again:?}");
    assert_eq!(again.outbox, 0);
    assert_eq!(outbox(engine.store()).await, before);
}

pub async fn condition_entry_fires_once_on_the_edge<S: Store>(store: S) {
    let project = Project::new(&[("rescue", RESCUE)]);
    customer(&store, "a1", 5000.0, 20.0, t0()).await;
    let engine = Engine::new(project.definitions(), store);
    let report = engine.tick(t0()).await.expect("tick");
    assert_eq!(report.enrolled, 1);
    // Utilization 20 puts a 5k account in low touch: the tech-only mail is skipped, the task is made.
    assert_eq!(outbox(engine.store()).await, ["rescue/call task "]);
    let first = enrollments(engine.store(), "a1").await.remove(0);
    assert_eq!(
        log(engine.store(), &first).await[..4],
        [
            "entered: entry condition became true: account.scores.utilization < 40",
            "nudge skipped: tier `low` is not one of tech",
            "call queued: task queued",
            "recovered waiting: until account.scores.utilization >= 60",
        ]
    );
    // Data changes while the condition stays true: no second entry.
    set_usage(engine.store(), "a1", 25.0, t0() + days(1)).await;
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!((report.evaluated, report.enrolled), (1, 0));
    // Recovery wakes the wait at once, and the journey finishes.
    set_usage(engine.store(), "a1", 70.0, t0() + days(2)).await;
    engine.tick(t0() + days(2)).await.expect("tick");
    let ended = enrollments(engine.store(), "a1").await.remove(0);
    assert_eq!(
        (ended.status.as_str(), ended.end_reason.as_deref()),
        ("exited", Some("finished"))
    );
    assert!(
        log(engine.store(), &ended)
            .await
            .contains(&"recovered condition_met: account.scores.utilization >= 60".to_string())
    );
    // Falling again re-enters, once the re-entry period (30 days) has passed.
    set_usage(engine.store(), "a1", 10.0, t0() + days(3)).await;
    let report = engine.tick(t0() + days(3)).await.expect("tick");
    assert_eq!(
        report.enrolled, 0,
        "re-entry is allowed only 30 days after the last enrollment ended"
    );
    set_usage(engine.store(), "a1", 80.0, t0() + days(10)).await;
    engine.tick(t0() + days(10)).await.expect("tick");
    set_usage(engine.store(), "a1", 15.0, t0() + days(40)).await;
    let report = engine.tick(t0() + days(40)).await.expect("tick");
    assert_eq!(report.enrolled, 1);
    assert_eq!(enrollments(engine.store(), "a1").await.len(), 2);
}

pub async fn explain_gives_the_engines_own_entry_verdict<S: Store>(store: S) {
    let project = Project::new(&[("rescue", RESCUE)]);
    customer(&store, "a1", 5000.0, 20.0, t0()).await;
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store);
    engine.tick(t0()).await.expect("tick");
    set_usage(engine.store(), "a1", 70.0, t0() + days(2)).await;
    engine.tick(t0() + days(2)).await.expect("tick");
    // Utilization falls again within the re-entry period: the condition's edge is taken
    // while re-entry is still blocked, so the engine waits for it to turn false, then true.
    set_usage(engine.store(), "a1", 10.0, t0() + days(3)).await;
    engine.tick(t0() + days(3)).await.expect("tick");
    let later = t0() + days(35);
    let explained = touchline::views::explain::build(engine.store(), &definitions, "a1", later)
        .await
        .expect("explain")
        .expect("account");
    let line = &explained.journeys[0].subjects[0].verdict;
    assert_eq!(
        line,
        "in segment and the entry condition holds, but it already held at the last evaluation: \
         enters only when it turns false, then true again"
    );
    let report = engine.tick(later).await.expect("tick");
    assert_eq!(report.enrolled, 0, "the engine does what explain said");
}

pub async fn preview_renders_what_the_engine_sends<S: Store>(store: S) {
    let project = Project::new(&[("welcome", WELCOME)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store);
    engine.tick(t0()).await.expect("tick");
    let records = engine.store().recent_outbox(10).await.expect("outbox");
    let Payload::Email(sent) = &records[0].payload else {
        panic!("a mail: {:?}", records[0].payload);
    };
    let preview = touchline::preview::preview(
        &definitions,
        engine.store(),
        "welcome",
        "hello",
        "a1",
        Some("a1-admin"),
        t0(),
    )
    .await
    .expect("preview");
    assert_eq!(preview.to, sent.to);
    let parts: Vec<(&str, &str)> = preview
        .parts
        .iter()
        .map(|(label, text)| (*label, text.as_str()))
        .collect();
    assert_eq!(
        parts,
        [
            ("subject", sent.subject.as_str()),
            ("text", sent.text.as_str()),
        ]
    );
    assert_eq!(parts[0], ("subject", "Welcome, A1-ADMIN"));
}

pub async fn an_unknown_score_decides_nothing<S: Store>(store: S) {
    // A new account whose usage has not arrived: its utilization is unknown, not 0, so the
    // `utilization < 30` tier rule and the rescue journey's entry decide nothing.
    let project = Project::new(&[("rescue", RESCUE)]);
    let import = touchline::store::Import {
        accounts: vec![crate::fixture::account("a1", 5000.0)],
        contacts: vec![crate::fixture::contact("a1", "a1-admin", "admin")],
        ..Default::default()
    };
    store.import(&import).await.expect("import");
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store);
    let report = engine.tick(t0()).await.expect("tick");
    assert_eq!(
        (
            report.evaluated,
            report.enrolled,
            report.outbox,
            report.tiers_kept
        ),
        (1, 0, 0, 1),
        "{report:?}"
    );
    assert_eq!(
        report.unknown_scores,
        [("utilization".to_string(), 1)].into(),
        "the pass report counts it"
    );
    assert!(outbox(engine.store()).await.is_empty(), "no mail, no task");
    let state = engine
        .store()
        .load_accounts(&["a1".to_string()], false)
        .await
        .expect("load")
        .remove(0);
    assert_eq!(state.tier, None, "no tier decided on missing data");
    assert!(state.scores.is_empty(), "never stored as a number");
    assert!(
        state.unknown_scores["utilization"].contains("usage"),
        "{:?}",
        state.unknown_scores
    );

    let view = touchline::views::explain::build(engine.store(), &definitions, "a1", t0())
        .await
        .expect("explain")
        .expect("account");
    let utilization = &view.scores[0];
    assert_eq!(utilization.value, None);
    assert!(
        utilization
            .unknown
            .as_deref()
            .unwrap_or("")
            .contains("usage")
    );
    let kept = view.tier_kept.as_deref().unwrap_or_default();
    assert!(
        kept.starts_with("tier rule 2 failed: score `utilization` is unknown for this account"),
        "{kept}"
    );
    let verdict = &view.journeys[0].subjects[0].verdict;
    assert!(verdict.starts_with("undecided: a rule failed"), "{verdict}");

    // The data arrives: the score is known and the rules decide.
    set_usage(engine.store(), "a1", 20.0, t0() + days(1)).await;
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!((report.enrolled, report.tiers_kept), (1, 0), "{report:?}");
    assert_eq!(outbox(engine.store()).await, ["rescue/call task "]);
}

pub async fn wait_until_times_out<S: Store>(store: S) {
    let project = Project::new(&[("rescue", RESCUE)]);
    customer(&store, "a1", 5000.0, 35.0, t0()).await;
    let engine = Engine::new(project.definitions(), store);
    engine.tick(t0()).await.expect("tick");
    // 35 is below 40 but not below 30: the account stays tech, so it gets the mail, not the task.
    assert_eq!(
        outbox(engine.store()).await,
        ["rescue/nudge email a1-admin"]
    );
    let waiting = enrollments(engine.store(), "a1").await.remove(0);
    assert_eq!(
        waiting.next_due_at,
        Some(to_millis(t0() + days(7))),
        "due when the wait times out"
    );
    engine.tick(t0() + days(6)).await.expect("tick");
    assert_eq!(enrollments(engine.store(), "a1").await[0].status, "active");
    engine.tick(t0() + days(7)).await.expect("tick");
    let ended = enrollments(engine.store(), "a1").await.remove(0);
    assert_eq!(ended.status, "exited");
    assert!(
        log(engine.store(), &ended)
            .await
            .contains(&"recovered timed_out: timed out after 7days".to_string())
    );
    assert_eq!(ended.ended_at.map(from_millis), Some(t0() + days(7)));
}

pub async fn goal_ends_the_journey_mid_way<S: Store>(store: S) {
    let project = Project::new(&[("welcome", WELCOME)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let engine = Engine::new(project.definitions(), store);
    engine.tick(t0()).await.expect("tick");
    set_usage(engine.store(), "a1", 95.0, t0() + days(1)).await;
    engine.tick(t0() + days(1)).await.expect("tick");
    let ended = enrollments(engine.store(), "a1").await.remove(0);
    assert_eq!(
        (ended.status.as_str(), ended.step_index),
        ("goal_reached", 1)
    );
    engine.tick(t0() + days(3)).await.expect("tick");
    assert_eq!(
        outbox(engine.store()).await,
        ["welcome/hello email a1-admin"],
        "no mail after the goal"
    );
}

pub async fn tier_changes_after_a_utilization_drop<S: Store>(store: S) {
    let project = Project::new(&[]);
    customer(&store, "a1", 5000.0, 80.0, t0()).await;
    let engine = Engine::new(project.definitions(), store);
    engine.tick(t0()).await.expect("tick");
    set_usage(engine.store(), "a1", 10.0, t0() + days(1)).await;
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!(report.tier_changes, 1);
    let history = engine.store().tier_history("a1").await.expect("history");
    let changes: Vec<_> = history
        .iter()
        .map(|c| {
            (
                c.from.as_deref(),
                c.to.as_str(),
                c.rule.as_str(),
                from_millis(c.at),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (None, "tech", "tier rule 3 (tech): everyone else", t0()),
            (
                Some("tech"),
                "low",
                "tier rule 2 (low): account.arr >= 10000 || account.scores.utilization < 30",
                t0() + days(1)
            ),
        ]
    );
    let state = &engine
        .store()
        .load_accounts(&["a1".into()], true)
        .await
        .expect("load")[0];
    assert_eq!(state.scores["utilization"], 10.0);
    // What a plan counts: the flows since a time.
    let since = |at| engine.store().tier_flows(to_millis(at), i64::MAX);
    let flows: Vec<_> = since(t0() + days(1))
        .await
        .expect("flows")
        .into_iter()
        .map(|(c, n)| (c.from, c.to, n))
        .collect();
    assert_eq!(flows, [(Some("tech".to_string()), "low".to_string(), 1)]);
    assert_eq!(since(t0()).await.expect("flows").len(), 2);
}

pub async fn edited_journey_keeps_running_enrollments_on_their_version<S: Store>(store: S) {
    let project = Project::new(&[("welcome", WELCOME)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let store = {
        let engine = Engine::new(project.definitions(), store);
        engine.tick(t0()).await.expect("tick");
        engine.store().clone()
    };
    // The journey is edited mid-flight: a new first step, and the last step renamed.
    let edited = WELCOME
        .replace(
            "  - id: hello\n",
            "  - id: intro\n    email: { template: tips }\n  - id: hello\n",
        )
        .replace("id: tips", "id: tips-v2");
    project.write_journey("welcome", &edited);
    let engine = Engine::new(project.definitions(), store);
    let report = engine.tick(t0() + days(2)).await.expect("tick");
    assert!(report.full_reevaluation, "definitions changed");
    // The running enrollment finishes its own version: no `intro`, no repeated `hello`.
    assert_eq!(
        outbox(engine.store()).await,
        [
            "welcome/hello email a1-admin",
            "welcome/tips email a1-admin"
        ]
    );
    // A new customer enters the new version.
    customer(engine.store(), "a2", 5000.0, 50.0, t0()).await;
    send_event(engine.store(), "a2", "account_created", t0() + days(2)).await;
    engine.tick(t0() + days(2)).await.expect("tick");
    let all = outbox(engine.store()).await;
    assert_eq!(
        all[2..],
        [
            "welcome/intro email a2-admin",
            "welcome/hello email a2-admin"
        ]
    );
    let versions: Vec<String> = [
        enrollments(engine.store(), "a1").await,
        enrollments(engine.store(), "a2").await,
    ]
    .concat()
    .into_iter()
    .map(|e| e.version_hash)
    .collect();
    assert_ne!(versions[0], versions[1]);
}

pub async fn removed_journey_lets_running_enrollments_finish<S: Store>(store: S) {
    let project = Project::new(&[("welcome", WELCOME)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let store = {
        let engine = Engine::new(project.definitions(), store);
        engine.tick(t0()).await.expect("tick");
        engine.store().clone()
    };
    project.remove_journey("welcome");
    let engine = Engine::new(project.definitions(), store);
    customer(engine.store(), "a2", 5000.0, 50.0, t0()).await;
    send_event(engine.store(), "a2", "account_created", t0() + days(1)).await;
    engine.tick(t0() + days(2)).await.expect("tick");
    assert_eq!(
        outbox(engine.store()).await,
        [
            "welcome/hello email a1-admin",
            "welcome/tips email a1-admin"
        ]
    );
    assert_eq!(
        enrollments(engine.store(), "a1").await[0].status,
        "completed"
    );
    assert!(
        enrollments(engine.store(), "a2").await.is_empty(),
        "a removed journey takes no new entries"
    );
}

pub async fn schedule_entry_fires_at_its_time<S: Store>(store: S) {
    let project = Project::new(&[("sweep", SWEEP)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    customer(&store, "a2", 0.0, 50.0, t0()).await;
    let engine = Engine::new(project.definitions(), store);
    // First seen on Monday 08:00: the 09:00 run is the first.
    let report = engine
        .tick(t0() - chrono::Duration::hours(1))
        .await
        .expect("tick");
    assert_eq!(report.schedule_fires, 0);
    let report = engine
        .tick(t0() + chrono::Duration::minutes(30))
        .await
        .expect("tick");
    assert_eq!(
        (report.schedule_fires, report.enrolled),
        (1, 1),
        "only a1 has ARR"
    );
    assert_eq!(outbox(engine.store()).await, ["sweep/ping webhook "]);
    let records = engine.store().recent_outbox(1).await.expect("outbox");
    assert_eq!(
        records[0].payload,
        Payload::Webhook(WebhookPayload {
            endpoint: "crm".into(),
            body: Some(serde_json::json!({ "account": "a1" })),
        })
    );
    let report = engine
        .tick(t0() + chrono::Duration::hours(3))
        .await
        .expect("tick");
    assert_eq!(report.schedule_fires, 0, "each run fires once");
    let report = engine
        .tick(t0() + days(7) + chrono::Duration::minutes(1))
        .await
        .expect("tick");
    assert_eq!(
        (report.schedule_fires, report.enrolled),
        (1, 0),
        "re-entry is `never`"
    );
}

pub async fn crontab_weekdays_fire_on_their_days<S: Store>(store: S) {
    // `1` is Monday in crontab; `1-5` Monday to Friday.
    let monday = SWEEP.replace("0 9 * * MON", "0 9 * * 1");
    let weekdays = SWEEP.replace("0 9 * * MON", "0 9 * * 1-5");
    let project = Project::new(&[("monday", &monday), ("weekdays", &weekdays)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    let engine = Engine::new(project.definitions(), store);
    // t0 is Monday 2026-11-02 09:00; first seen on the Saturday before.
    let saturday = t0() - days(2) - chrono::Duration::hours(1);
    engine.tick(saturday).await.expect("tick");
    let mut fired = Vec::new();
    for day in 0..8 {
        let at = saturday + days(day) + chrono::Duration::hours(1) + chrono::Duration::minutes(30);
        let report = engine.tick(at).await.expect("tick");
        fired.push((at.format("%a").to_string(), report.schedule_fires));
    }
    let expected: Vec<(String, u64)> = [
        ("Sat", 0),
        ("Sun", 0),
        ("Mon", 2),
        ("Tue", 1),
        ("Wed", 1),
        ("Thu", 1),
        ("Fri", 1),
        ("Sat", 0),
    ]
    .iter()
    .map(|(d, n)| (d.to_string(), *n))
    .collect();
    assert_eq!(fired, expected);
}

pub async fn time_based_conditions_are_rechecked_within_the_hour<S: Store>(store: S) {
    let lapsed = "name: Lapsed\naudience: accounts\nentry: { condition: 'days_since(account.last_login_at) > 14' }\nsteps:\n  - id: ping\n    webhook: { endpoint: crm }\n";
    let project = Project::new(&[("lapsed", lapsed)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    // The last login turns 14 days old 20 minutes after t0.
    let minutes = chrono::Duration::minutes;
    send_event(&store, "a1", "login", t0() - days(14) + minutes(20)).await;
    let engine = Engine::new(project.definitions(), store);
    let report = engine.tick(t0()).await.expect("tick");
    assert_eq!(report.enrolled, 0, "last login not quite 14 days ago");
    let report = engine.tick(t0() + minutes(30)).await.expect("tick");
    assert_eq!(
        report.evaluated, 0,
        "nothing changed, and the hour is not over"
    );
    // No data changes, but within the hour (the default recheck interval) it is noticed.
    let report = engine.tick(t0() + minutes(60)).await.expect("tick");
    assert_eq!((report.evaluated, report.enrolled), (1, 1), "{report:?}");
    assert_eq!(outbox(engine.store()).await, ["lapsed/ping webhook "]);
    let report = engine.tick(t0() + minutes(90)).await.expect("tick");
    assert_eq!(
        report.evaluated, 0,
        "the next check is an hour after the last"
    );
}

pub async fn a_pass_sees_only_data_dated_at_or_before_it<S: Store>(store: S) {
    let project = Project::new(&[("welcome", WELCOME)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    // Usage 50 now, 10 in ten days; the account is created (an event) in twenty days.
    set_usage(&store, "a1", 10.0, t0() + days(10)).await;
    send_event(&store, "a1", "account_created", t0() + days(20)).await;
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store);
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!(report.enrolled, 0, "the event has not happened yet");
    let utilization = |at| {
        let definitions = definitions.clone();
        let store = engine.store().clone();
        async move {
            let view = touchline::views::explain::build(&store, &definitions, "a1", at)
                .await
                .expect("explain")
                .expect("account");
            let score = view.scores.iter().find(|s| s.name == "utilization");
            score.map(|s| (s.value, s.inputs.clone()))
        }
    };
    let usage = |value: &str| Some(vec![("metrics.usage".to_string(), value.to_string())]);
    let (value, inputs) = utilization(t0() + days(5)).await.expect("score");
    assert_eq!((value, Some(inputs)), (Some(50.0), usage("50")));
    let (value, inputs) = utilization(t0() + days(11)).await.expect("score");
    assert_eq!((value, Some(inputs)), (Some(10.0), usage("10")));
    // The later value comes due without any new import: the account is evaluated again.
    let report = engine.tick(t0() + days(10)).await.expect("tick");
    assert_eq!(
        (report.evaluated, report.tier_changes),
        (1, 1),
        "{report:?}"
    );
    let report = engine.tick(t0() + days(20)).await.expect("tick");
    assert_eq!((report.events, report.enrolled), (1, 1), "{report:?}");
    assert_eq!(
        outbox(engine.store()).await,
        ["welcome/hello email a1-admin"]
    );
    let report = engine.tick(t0() + days(21)).await.expect("tick");
    assert_eq!((report.events, report.enrolled), (0, 0), "{report:?}");
}

/// A full pass reads accounts with running enrollments whole, with their contacts: a goal
/// met by data that changed is seen by the pass (which then counts the account evaluated).
pub async fn a_full_pass_checks_the_goals_of_running_enrollments<S: Store>(store: S) {
    let project = Project::new(&[("welcome", WELCOME)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    customer(&store, "a2", 6000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let engine = Engine::new(project.definitions(), store);
    engine.tick(t0()).await.expect("tick");
    engine.request_full_reevaluation().await.expect("full");
    set_usage(engine.store(), "a1", 95.0, t0() + days(1)).await;
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!(report.evaluated, 2, "{report:?}");
    let ended = enrollments(engine.store(), "a1").await.remove(0);
    assert_eq!(
        (ended.status.as_str(), ended.step_index),
        ("goal_reached", 1)
    );
}

/// A full pass over more accounts than one batch of ranges holds: every account is evaluated
/// once, and changes in each batch are written.
pub async fn a_full_pass_over_several_batches_evaluates_every_account_once<S: Store>(store: S) {
    let count = 2 * touchline::engine::RANGE_BATCH + 100;
    let id = |n: usize| format!("a{n:05}");
    let import = touchline::store::Import {
        accounts: (0..count).map(|n| account(&id(n), 5000.0)).collect(),
        metrics: (0..count).map(|n| usage(&id(n), 80.0, t0())).collect(),
        ..Default::default()
    };
    store.import(&import).await.expect("import");
    let project = Project::new(&[]);
    let engine = Engine::new(project.definitions(), store);
    assert_eq!(
        engine.tick(t0()).await.expect("tick").evaluated,
        count as u64
    );
    assert_eq!(
        engine.request_full_reevaluation().await.expect("full"),
        count as u64
    );
    // One account in each batch, and the last one, change tier.
    let dropped = [id(0), id(RANGE_BATCH_MID), id(count - 1)];
    for account in &dropped {
        set_usage(engine.store(), account, 10.0, t0() + days(1)).await;
    }
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!(report.evaluated, count as u64, "{report:?}");
    assert_eq!(report.tier_changes, 3, "{report:?}");
    for account in &dropped {
        let state = engine
            .store()
            .load_accounts(std::slice::from_ref(account), false)
            .await
            .expect("load")
            .remove(0);
        assert_eq!(state.scores.get("utilization"), Some(&10.0), "{account}");
    }
    let done = engine.store().meta("full_sweep").await.expect("meta");
    assert_eq!(done.as_deref(), Some("done"));
    let again = engine.tick(t0() + days(1)).await.expect("tick");
    assert!(again.is_idle(), "{again:?}");
}

/// An account in the middle of the second batch of a full pass.
const RANGE_BATCH_MID: usize = touchline::engine::RANGE_BATCH * 3 / 2;

pub async fn a_full_reevaluation_evaluates_every_account_and_writes_only_changes<S: Store>(
    store: S,
) {
    let project = Project::new(&[]);
    customer(&store, "a1", 5000.0, 80.0, t0()).await;
    customer(&store, "a2", 50000.0, 20.0, t0()).await;
    customer(&store, "a3", 6000.0, 70.0, t0()).await;
    let engine = Engine::new(project.definitions(), store);
    assert_eq!(engine.tick(t0()).await.expect("tick").evaluated, 3);
    let history = |id: &'static str| engine.store().score_history(id);
    let before = history("a2").await.expect("history");
    assert!(!before.is_empty());
    assert_eq!(engine.request_full_reevaluation().await.expect("full"), 3);
    // One account's data changes as well: the sweep evaluates it, once.
    set_usage(engine.store(), "a1", 10.0, t0() + days(1)).await;
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!(report.evaluated, 3, "{report:?}");
    assert_eq!(report.tier_changes, 1, "{report:?}");
    assert!(history("a1").await.expect("history").len() > before.len());
    // Unchanged scores are not written again.
    assert_eq!(history("a2").await.expect("history"), before);
    let again = engine.tick(t0() + days(1)).await.expect("tick");
    assert!(again.is_idle(), "{again:?}");
    // What rules read of an account is read alone.
    let fields = RuleFields {
        facts: ["arr".to_string()].into(),
        metrics: Some(["usage".to_string()].into()),
        attributes: false,
    };
    let ids = ["a1".to_string(), "a2".to_string()];
    let narrow = engine
        .store()
        .load_rule_inputs(&ids, &fields)
        .await
        .expect("load");
    let whole = engine
        .store()
        .load_accounts(&ids, false)
        .await
        .expect("load");
    assert_eq!(narrow.len(), 2);
    for (narrow, whole) in narrow.iter().zip(&whole) {
        assert_eq!(narrow.account.id, whole.account.id);
        assert_eq!(narrow.account.arr, whole.account.arr);
        assert_eq!(narrow.account.plan, None);
        assert_eq!(narrow.metrics, whole.metrics);
        assert_eq!(narrow.scores, whole.scores);
        assert_eq!(narrow.tier, whole.tier);
        assert_eq!(narrow.tier_rule, whole.tier_rule);
        assert_eq!(narrow.data_version, whole.data_version);
        assert_eq!(narrow.evaluated_version, whole.evaluated_version);
        assert_eq!(narrow.account.last_login_at, whole.account.last_login_at);
    }
    // A sweep another process left part way through is taken up where it stands.
    engine
        .store()
        .set_meta("full_sweep", "at:a1")
        .await
        .expect("meta");
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!(report.evaluated, 2, "{report:?}");
    assert_eq!(
        engine
            .store()
            .meta("full_sweep")
            .await
            .expect("meta")
            .as_deref(),
        Some("done")
    );
    let again = engine.tick(t0() + days(1)).await.expect("tick");
    assert!(again.is_idle(), "{again:?}");
}
