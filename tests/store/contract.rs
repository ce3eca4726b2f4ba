//! The store contract: what every database implementation must do.

use std::collections::BTreeMap;

use touchline::clock::to_millis;
use touchline::store::{
    Changes, CursorMove, Enrollment, EnrollmentUpdate, Evaluation, Import, LogEntry, NewEnrollment,
    OutboxRecord, RecipientFacts, RuleFields, Store, SubjectKey,
};

use crate::fixture::{account, contact, days, event, t0, usage};

fn sample() -> Import {
    Import {
        accounts: vec![account("a1", 5000.0), account("a2", 250000.0)],
        contacts: vec![
            contact("a1", "c1", "admin"),
            contact("a2", "c2", "decision_maker"),
        ],
        metrics: vec![usage("a1", 40.0, t0()), usage("a2", 90.0, t0())],
        events: vec![event("a1", "account_created", t0())],
    }
}

pub async fn import_is_idempotent<S: Store>(store: S) {
    let first = store.import(&sample()).await.expect("import");
    assert_eq!(first.changed, 7);
    let again = store.import(&sample()).await.expect("import");
    assert_eq!(
        (again.changed, again.unchanged),
        (0, 7),
        "re-importing the same data changes nothing"
    );
    let states = store
        .load_accounts(&["a1".into(), "a2".into()], true)
        .await
        .expect("load");
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].account, account("a1", 5000.0));
    assert_eq!(states[0].contacts, vec![contact("a1", "c1", "admin")]);
    assert_eq!(states[0].metrics.get("usage"), Some(&40.0));
}

/// The HTTP API's group commit: many callers at once, each told what its own records
/// changed, everything stored.
pub async fn imports_written_together_answer_each_caller<S: Store>(store: S) {
    store.import(&sample()).await.expect("import");
    let queue = touchline::store::group_commit::ImportQueue::start(store.clone());
    let callers: Vec<_> = (0..40)
        .map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move {
                // Even callers send the stored sample again (nothing changes), odd callers
                // a new account with a metric.
                let import = if i % 2 == 0 {
                    sample()
                } else {
                    let id = format!("new{i:02}");
                    Import {
                        accounts: vec![account(&id, 1000.0 * i as f64)],
                        metrics: vec![usage(&id, i as f64, t0())],
                        ..Import::default()
                    }
                };
                (i, queue.import(import).await.expect("import"))
            })
        })
        .collect();
    for caller in callers {
        let (i, outcome) = caller.await.expect("caller");
        let expected = if i % 2 == 0 { (0, 7) } else { (2, 0) };
        assert_eq!(
            (outcome.changed, outcome.unchanged),
            expected,
            "caller {i} hears about its own records"
        );
    }
    let ids: Vec<String> = (0..40)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("new{i:02}"))
        .collect();
    let states = store.load_accounts(&ids, false).await.expect("load");
    assert_eq!(states.len(), 20, "every caller's account is stored");
    for state in states {
        let i: f64 = state.account.id[3..].parse().expect("number");
        assert_eq!(state.account.arr, Some(1000.0 * i));
        assert_eq!(state.metrics.get("usage"), Some(&i));
    }
}

/// A batch of rule inputs, read as one JSON text, holds exactly what reading the accounts
/// row by row does: every bit of each double, escaped and non-ASCII text, nested attributes.
pub async fn rule_inputs_read_in_one_go_are_exact<S: Store>(store: S) {
    let doubles = [
        0.1 + 0.2,
        1e-300,
        123_456_789.123_456_79,
        -0.0,
        f64::MAX,
        5e-324,
        2.0f64.sqrt(),
    ];
    let mut import = Import::default();
    for (i, x) in doubles.iter().enumerate() {
        let id = format!("x{i}");
        let mut a = account(&id, *x);
        a.name = format!("Quote \" backslash \\ tab \t é 😀 {i}");
        a.mrr = (i % 2 == 0).then_some(x / 3.0);
        a.plan = (i % 3 == 0).then(|| "pro".to_string());
        a.goals = vec!["fleet".into(), format!("goal \"{i}\"")];
        a.contract_start = Some(t0() - days(i as i64));
        a.attributes = serde_json::json!({"nested": {"list": [1, 2.5, "three", null]}, "n": *x})
            .as_object()
            .cloned()
            .expect("object");
        import.accounts.push(a);
        import.metrics.push(usage(&id, x / 7.0, t0()));
        let mut logins = usage(&id, i as f64, t0());
        logins.name = "logins".into();
        import.metrics.push(logins);
    }
    store.import(&import).await.expect("import");
    let ids: Vec<String> = (0..doubles.len()).map(|i| format!("x{i}")).collect();
    let everything = RuleFields {
        facts: touchline::model::ACCOUNT_FACTS
            .iter()
            .map(|f| f.to_string())
            .collect(),
        metrics: None,
        attributes: true,
    };
    let read = store
        .load_rule_inputs(&ids, &everything)
        .await
        .expect("batch read");
    let rows = store.load_accounts(&ids, false).await.expect("row read");
    assert_eq!(read.len(), doubles.len());
    let bits = |x: Option<&f64>| x.map(|x| x.to_bits());
    for (read, row) in read.iter().zip(&rows) {
        assert_eq!(read, row);
        let id = &read.account.id;
        let expected = doubles[id[1..].parse::<usize>().expect("index")];
        assert_eq!(read.account.arr, Some(expected), "{id}: arr as imported");
        // Equal is not enough for doubles (0.0 == -0.0): the same bits as the row read.
        assert_eq!(
            bits(read.account.arr.as_ref()),
            bits(row.account.arr.as_ref()),
            "{id}"
        );
        assert_eq!(
            bits(read.account.mrr.as_ref()),
            bits(row.account.mrr.as_ref()),
            "{id}"
        );
        assert_eq!(
            bits(read.metrics.get("usage")),
            bits(row.metrics.get("usage")),
            "{id}"
        );
    }
    // Rules that name their metrics get those alone, picked out by the database, as exact;
    // a metric an account lacks stays unknown.
    let named = RuleFields {
        metrics: Some(["usage".to_string(), "seats".to_string()].into()),
        ..everything
    };
    let picked = store
        .load_rule_inputs(&ids, &named)
        .await
        .expect("batch read of named metrics");
    for (picked, row) in picked.iter().zip(&rows) {
        let id = &picked.account.id;
        assert_eq!(
            picked.metrics.keys().collect::<Vec<_>>(),
            ["usage"],
            "{id}: only the named metrics it has"
        );
        assert_eq!(
            bits(picked.metrics.get("usage")),
            bits(row.metrics.get("usage")),
            "{id}"
        );
    }
}

/// A full pass reads its batches as ranges of ids: where each batch ends, the accounts in
/// it (as the read by ids gives them) and which of them have running enrollments (an ended
/// enrollment does not count).
pub async fn a_full_pass_reads_ranges_of_accounts<S: Store>(store: S) {
    let ids: Vec<String> = (1..=5).map(|i| format!("a{i}")).collect();
    let import = Import {
        accounts: ids.iter().map(|id| account(id, 1000.0)).collect(),
        metrics: ids.iter().map(|id| usage(id, 3.0, t0())).collect(),
        ..Import::default()
    };
    store.import(&import).await.expect("import");
    enroll(&store, "onboarding", "a2").await;
    let ended = enroll(&store, "onboarding", "a4").await;
    end_enrollment(
        &store,
        &ended,
        touchline::store::EnrollmentStatus::Completed,
    )
    .await;

    let mut bounds = Vec::new();
    let mut after = String::new();
    while let Some(through) = store.sweep_bound(&after, 2).await.expect("bound") {
        bounds.push(through.clone());
        after = through;
    }
    assert_eq!(
        bounds,
        ["a2", "a4", "a5"],
        "batches of two, the last shorter"
    );

    let fields = RuleFields {
        facts: ["arr".to_string()].into(),
        metrics: Some(["usage".to_string()].into()),
        attributes: false,
    };
    let batch = store
        .sweep_inputs("a1", "a4", &fields)
        .await
        .expect("range read");
    let by_id = store
        .load_rule_inputs(&ids[1..4], &fields)
        .await
        .expect("read by ids");
    assert_eq!(
        batch.states, by_id,
        "a2 to a4, as the read by ids gives them"
    );
    assert_eq!(batch.states[0].metrics.get("usage"), Some(&3.0));
    assert_eq!(batch.running, ["a2"], "a4's enrollment has ended");
    let empty = store
        .sweep_inputs("a5", "a9", &fields)
        .await
        .expect("read past the end");
    assert!(empty.states.is_empty() && empty.running.is_empty());
}

/// What the send checks read of a batch's recipients: each contact's subscription and time
/// zone with its account's, an account without contacts once, unknown accounts not at all.
pub async fn recipient_facts_hold_what_the_send_checks_need<S: Store>(store: S) {
    let mut berlin = account("a1", 1.0);
    berlin.timezone = Some("Europe/Berlin".into());
    let mut gone = contact("a1", "c2", "user");
    gone.subscribed = false;
    gone.timezone = Some("Asia/Tokyo".into());
    let import = Import {
        accounts: vec![berlin, account("a2", 2.0)],
        contacts: vec![contact("a1", "c1", "admin"), gone],
        ..Import::default()
    };
    store.import(&import).await.expect("import");
    let ids = ["a1", "a2", "nobody"].map(String::from);
    let mut facts = store.recipient_facts(&ids).await.expect("read");
    facts.sort_by(|a, b| (&a.account_id, &a.contact_id).cmp(&(&b.account_id, &b.contact_id)));
    let fact = |account: &str,
                contact: Option<&str>,
                subscribed,
                zone: Option<&str>,
                account_zone: Option<&str>| RecipientFacts {
        account_id: account.into(),
        contact_id: contact.map(String::from),
        subscribed,
        timezone: zone.map(String::from),
        account_timezone: account_zone.map(String::from),
    };
    assert_eq!(
        facts,
        vec![
            fact("a1", Some("c1"), true, None, Some("Europe/Berlin")),
            fact(
                "a1",
                Some("c2"),
                false,
                Some("Asia/Tokyo"),
                Some("Europe/Berlin")
            ),
            fact("a2", None, false, None, None),
        ]
    );
}

fn evaluation(id: &str, data_version: i64) -> Evaluation {
    Evaluation {
        account_id: id.into(),
        data_version,
        scores: BTreeMap::from([("utilization".to_string(), 40.0)]),
        unknown_scores: BTreeMap::new(),
        changed_scores: vec![("utilization".into(), 40.0)],
        tier: Some(("tech".into(), "tier rule 3 (tech): everyone else".into())),
        tier_changed_from: Some(None),
        recheck_at: None,
    }
}

pub async fn changes_mark_accounts_dirty_until_evaluated<S: Store>(store: S) {
    store.import(&sample()).await.expect("import");
    assert_eq!(
        store.dirty_accounts("", 10).await.expect("dirty"),
        ["a1", "a2"]
    );
    let version = store
        .load_accounts(&["a1".into()], true)
        .await
        .expect("load")[0]
        .data_version;
    let changes = Changes {
        now: to_millis(t0()),
        evaluations: vec![evaluation("a1", version)],
        ..Changes::default()
    };
    store.apply(&changes).await.expect("apply");
    assert_eq!(store.dirty_accounts("", 10).await.expect("dirty"), ["a2"]);
    let state = &store
        .load_accounts(&["a1".into()], true)
        .await
        .expect("load")[0];
    assert_eq!(state.tier.as_deref(), Some("tech"));
    assert_eq!(state.scores.get("utilization"), Some(&40.0));
    assert_eq!(
        store.tier_history("a1").await.expect("history")[0].to,
        "tech"
    );

    // A new metric value, a changed contact and a changed account each make it dirty again.
    store
        .import(&Import {
            metrics: vec![usage("a1", 10.0, t0() + days(1))],
            ..Import::default()
        })
        .await
        .expect("import");
    assert_eq!(
        store.dirty_accounts("", 10).await.expect("dirty"),
        ["a1", "a2"]
    );
    // An evaluation of data that has since changed leaves the account dirty.
    let stale = Changes {
        now: to_millis(t0()),
        evaluations: vec![evaluation("a1", version)],
        ..Changes::default()
    };
    store.apply(&stale).await.expect("apply");
    assert_eq!(
        store.dirty_accounts("", 10).await.expect("dirty"),
        ["a1", "a2"]
    );
    assert_eq!(
        store.mark_all_dirty().await.expect("mark"),
        0,
        "both are dirty already"
    );
}

pub async fn latest_metric_value_wins<S: Store>(store: S) {
    store.import(&sample()).await.expect("import");
    let older = Import {
        metrics: vec![usage("a1", 99.0, t0() - days(3))],
        ..Import::default()
    };
    store.import(&older).await.expect("import");
    assert_eq!(
        store
            .load_accounts(&["a1".into()], true)
            .await
            .expect("load")[0]
            .metrics["usage"],
        40.0
    );
    let newer = Import {
        metrics: vec![
            usage("a1", 12.5, t0() + days(1)),
            usage("a1", 13.5, t0() + days(2)),
        ],
        ..Import::default()
    };
    store.import(&newer).await.expect("import");
    assert_eq!(
        store
            .load_accounts(&["a1".into()], true)
            .await
            .expect("load")[0]
            .metrics["usage"],
        13.5
    );
}

pub async fn events_are_recorded_once_and_logins_move_last_login<S: Store>(store: S) {
    store.import(&sample()).await.expect("import");
    let mut login = event("a1", "login", t0() + days(1));
    login.contact_id = Some("c1".into());
    let import = Import {
        events: vec![login.clone(), login.clone()],
        ..Import::default()
    };
    let outcome = store.import(&import).await.expect("import");
    assert_eq!(outcome.changed, 1, "the same event key is recorded once");
    let events = store.events_after(0, 10).await.expect("events");
    assert_eq!(
        events
            .iter()
            .map(|(_, e)| e.name.as_str())
            .collect::<Vec<_>>(),
        ["account_created", "login"]
    );
    let state = &store
        .load_accounts(&["a1".into()], true)
        .await
        .expect("load")[0];
    assert_eq!(state.account.last_login_at, Some(t0() + days(1)));
    assert_eq!(state.contacts[0].last_login_at, Some(t0() + days(1)));
    let after_first = events[0].0;
    assert_eq!(
        store
            .events_after(after_first, 10)
            .await
            .expect("events")
            .len(),
        1
    );
}

fn key(journey: &str, account: &str, contact: &str) -> SubjectKey {
    SubjectKey {
        journey_id: journey.into(),
        account_id: account.into(),
        contact_id: contact.into(),
    }
}

async fn enroll<S: Store>(store: &S, journey: &str, account: &str) -> Enrollment {
    let new = NewEnrollment {
        key: key(journey, account, ""),
        version_hash: "v1".into(),
        entered_at: to_millis(t0()),
        reason: "test".into(),
    };
    store
        .apply(&Changes {
            now: to_millis(t0()),
            new_enrollments: vec![new],
            ..Changes::default()
        })
        .await
        .expect("apply");
    store
        .enrollments_of(&[account.to_string()])
        .await
        .expect("enrollments")
        .pop()
        .expect("one enrollment")
}

/// Ends `enrollment` with `status`, writing nothing.
async fn end_enrollment<S: Store>(
    store: &S,
    enrollment: &Enrollment,
    status: touchline::store::EnrollmentStatus,
) {
    let mut end = step_move(enrollment, "end");
    end.status = status;
    end.next_due_at = None;
    end.outbox.clear();
    store
        .apply(&Changes {
            now: to_millis(t0()),
            updates: vec![end],
            ..Changes::default()
        })
        .await
        .expect("end the enrollment");
}

fn step_move(before: &Enrollment, step: &str) -> EnrollmentUpdate {
    EnrollmentUpdate {
        before: before.clone(),
        status: touchline::store::EnrollmentStatus::Active,
        step_index: before.step_index + 1,
        wait_started_at: None,
        next_due_at: Some(to_millis(t0() + days(1))),
        end_reason: None,
        outbox: vec![OutboxRecord {
            idempotency_key: format!("{}:{step}", before.id),
            enrollment_id: before.id,
            journey_id: before.journey_id.clone(),
            step_id: step.into(),
            account_id: before.account_id.clone(),
            contact_id: String::new(),
            payload: touchline::store::Payload::Webhook(touchline::store::WebhookPayload {
                endpoint: "crm".into(),
                body: None,
            }),
            held_out: false,
        }],
        log: vec![LogEntry {
            step_id: Some(step.into()),
            event: "queued".into(),
            detail: "task queued".into(),
        }],
    }
}

pub async fn enrollment_moves_are_applied_once<S: Store>(store: S) {
    store.import(&sample()).await.expect("import");
    let enrollment = enroll(&store, "rescue", "a1").await;
    assert_eq!(
        (
            enrollment.status.as_str(),
            enrollment.step_index,
            enrollment.next_due_at
        ),
        ("active", 0, Some(to_millis(t0())))
    );
    // Two processes read the same enrollment and both try to move it.
    let first = store
        .apply(&Changes {
            now: to_millis(t0()),
            updates: vec![step_move(&enrollment, "call")],
            ..Changes::default()
        })
        .await
        .expect("apply");
    let second = store
        .apply(&Changes {
            now: to_millis(t0()),
            updates: vec![step_move(&enrollment, "call")],
            ..Changes::default()
        })
        .await
        .expect("apply");
    assert_eq!((first.moved, first.outbox, first.conflicts), (1, 1, 0));
    assert_eq!((second.moved, second.outbox, second.conflicts), (0, 0, 1));
    let counts = store.outbox_counts().await.expect("counts");
    assert_eq!(
        counts
            .iter()
            .map(|c| (c.label.as_str(), c.count))
            .collect::<Vec<_>>(),
        [("webhook pending", 1)]
    );
    let log = store.enrollment_log(enrollment.id).await.expect("log");
    assert_eq!(
        log.iter()
            .map(|(_, l)| l.event.as_str())
            .collect::<Vec<_>>(),
        ["entered", "queued"]
    );
    assert!(
        store
            .due_enrollments(to_millis(t0()), 10)
            .await
            .expect("due")
            .is_empty()
    );
    assert_eq!(
        store
            .due_enrollments(to_millis(t0() + days(1)), 10)
            .await
            .expect("due")
            .len(),
        1
    );
}

pub async fn one_active_enrollment_per_subject<S: Store>(store: S) {
    store.import(&sample()).await.expect("import");
    let first = enroll(&store, "rescue", "a1").await;
    let new = NewEnrollment {
        key: key("rescue", "a1", ""),
        version_hash: "v1".into(),
        entered_at: to_millis(t0()),
        reason: "again".into(),
    };
    let applied = store
        .apply(&Changes {
            now: to_millis(t0()),
            new_enrollments: vec![new.clone()],
            ..Changes::default()
        })
        .await
        .expect("apply");
    assert_eq!(
        applied.enrolled, 0,
        "a subject is in a journey at most once at a time"
    );
    end_enrollment(&store, &first, touchline::store::EnrollmentStatus::Exited).await;
    let applied = store
        .apply(&Changes {
            now: to_millis(t0()),
            new_enrollments: vec![new],
            ..Changes::default()
        })
        .await
        .expect("apply");
    assert_eq!(applied.enrolled, 1, "after it ended, it may enter again");
    let all = store
        .enrollments_of(&["a1".into()])
        .await
        .expect("enrollments");
    assert_eq!(
        all.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(),
        ["exited", "active"]
    );
    assert_eq!(all[0].ended_at, Some(to_millis(t0())));
}

pub async fn a_stale_cursor_drops_the_whole_batch<S: Store>(store: S) {
    store.import(&sample()).await.expect("import");
    let batch = |from: Option<&str>, to: &str| Changes {
        now: to_millis(t0()),
        new_enrollments: vec![NewEnrollment {
            key: key("welcome", "a1", "c1"),
            version_hash: "v1".into(),
            entered_at: to_millis(t0()),
            reason: "event".into(),
        }],
        cursor: Some(CursorMove {
            key: "events_cursor".into(),
            from: from.map(String::from),
            to: to.into(),
        }),
        ..Changes::default()
    };
    let first = store.apply(&batch(None, "1")).await.expect("apply");
    assert!(!first.cursor_lost);
    assert_eq!(first.enrolled, 1);
    let stale = store.apply(&batch(None, "1")).await.expect("apply");
    assert!(
        stale.cursor_lost,
        "another process already moved the cursor"
    );
    assert_eq!(stale.enrolled, 0);
    assert_eq!(
        store.meta("events_cursor").await.expect("meta").as_deref(),
        Some("1")
    );
    let next = store.apply(&batch(Some("1"), "2")).await.expect("apply");
    assert!(!next.cursor_lost);
    assert_eq!(
        store.meta("events_cursor").await.expect("meta").as_deref(),
        Some("2")
    );
}

pub async fn schedule_firings_are_claimed_once<S: Store>(store: S) {
    let at = to_millis(t0());
    assert!(store.claim_cron_fire("sweep", at).await.expect("claim"));
    assert!(
        !store.claim_cron_fire("sweep", at).await.expect("claim"),
        "a second process does not fire it again"
    );
    assert!(store.claim_cron_fire("other", at).await.expect("claim"));
    assert_eq!(store.last_cron_fire("sweep").await.expect("last"), Some(at));
    assert_eq!(store.last_cron_fire("never").await.expect("last"), None);
}

pub async fn journey_versions_are_kept<S: Store>(store: S) {
    store
        .save_journey_version("welcome", "abc", "name: One", 1)
        .await
        .expect("save");
    store
        .save_journey_version("welcome", "abc", "name: Changed", 2)
        .await
        .expect("save");
    store
        .save_journey_version("welcome", "def", "name: Two", 3)
        .await
        .expect("save");
    assert_eq!(
        store
            .journey_version("welcome", "abc")
            .await
            .expect("read")
            .as_deref(),
        Some("name: One")
    );
    assert_eq!(
        store
            .journey_version("welcome", "def")
            .await
            .expect("read")
            .as_deref(),
        Some("name: Two")
    );
    assert_eq!(
        store.journey_version("welcome", "zzz").await.expect("read"),
        None
    );
}
