//! Delivery scenarios: tasks and `.eml` mails produced once per step, on every database.

use touchline::clock::to_millis;
use touchline::delivery::Deliverer;
use touchline::engine::Engine;
use touchline::store::{DeliveryOutcome, DeliveryStatus, Store, TaskStatus};

use crate::fixture::{HANDOFF, Project, customer, days, send_event, t0};

pub async fn tasks_are_assigned_round_robin_with_capacity<S: Store>(store: S) {
    let project = Project::new(&[("handoff", HANDOFF)]);
    for id in ["a1", "a2", "a3"] {
        customer(&store, id, 5000.0, 50.0, t0()).await;
        send_event(&store, id, "account_created", t0()).await;
    }
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store.clone());
    engine.tick(t0()).await.expect("tick");
    let outbox = project.dir.path().join("outbox");
    let deliverer = Deliverer::new(definitions, store.clone(), outbox.clone());
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    // Three step mails, and a notice to the CSM of each new task.
    assert_eq!((report.tasks_created, report.emails), (3, 6), "{report:?}");
    let tasks = store
        .tasks(None, Some(TaskStatus::Open))
        .await
        .expect("tasks");
    // Ana holds at most one open task, so the rotation passes her over once she has one
    // (the three accounts are delivered side by side, so who came first varies).
    let mut assigned: Vec<&str> = tasks
        .iter()
        .map(|t| t.task.assignee.as_deref().unwrap_or("nobody"))
        .collect();
    assigned.sort();
    assert_eq!(assigned, ["ana", "ben", "ben"]);
    assert_eq!(tasks[0].task.title, "Kickoff call with a1 Inc");
    assert_eq!(tasks[0].task.priority, "high");
    assert_eq!(
        tasks[0].task.due_at,
        Some(to_millis(t0() + days(2))),
        "Monday + 2 working days"
    );
    assert_eq!(tasks[0].task.reason["journey"], "handoff");

    // Nothing is delivered twice: a second round finds nothing (the webhooks, whose endpoint
    // is down, wait for their retry).
    let again = deliverer.deliver_due(t0()).await.expect("deliver");
    assert!(again.is_idle(), "{again:?}");
    let counts = store.outbox_counts().await.expect("counts");
    let counts: Vec<(&str, i64)> = counts.iter().map(|c| (c.label.as_str(), c.count)).collect();
    assert_eq!(
        counts,
        [("email sent", 6), ("task sent", 3), ("webhook pending", 3)]
    );

    let mut files: Vec<String> = std::fs::read_dir(&outbox)
        .expect("outbox")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "{files:?}");
    let notice = std::fs::read_to_string(outbox.join(&files[0])).expect("notice");
    assert!(files[0].ends_with("_notice.eml"), "{files:?}");
    assert!(
        notice.contains("To: \"Ana Ortiz\" <ana@example.com>\r\n")
            || notice.contains("To: \"Ben Okafor\" <ben@example.com>\r\n"),
        "{notice}"
    );
    assert!(notice.contains("Kickoff call with a1 Inc"), "{notice}");
    assert!(!notice.contains("List-Unsubscribe"), "{notice}");
    files.retain(|f| !f.ends_with("_notice.eml"));
    let mail = std::fs::read_to_string(outbox.join(&files[0])).expect("mail");
    assert!(mail.contains("To: a1-admin@example.com\r\n"), "{mail}");
    assert!(
        mail.contains("List-Unsubscribe: <http://127.0.0.1:8080/unsubscribe?token="),
        "{mail}"
    );
    assert!(
        mail.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{mail}"
    );
    assert!(mail.contains("Subject: Welcome, A1-ADMIN\r\n"), "{mail}");
    // The Message-ID is the record's key and this installation's random id, at the sender's
    // domain: the same on a retry, never the same in another installation.
    let key = files[0].trim_end_matches(".eml").replace('_', ".");
    let installation = deliverer.installation_id().await.expect("id").to_string();
    assert_eq!(installation.len(), 16, "{installation}");
    assert!(
        mail.contains(&format!("Message-ID: <{key}.{installation}@localhost>\r\n")),
        "{mail}"
    );
    let (other_store, _dir) = crate::sqlite().await;
    let other = Deliverer::new(project.definitions(), other_store, outbox.clone());
    assert_ne!(other.installation_id().await.expect("id"), installation);
    let again = Deliverer::new(project.definitions(), store.clone(), outbox.clone());
    assert_eq!(again.installation_id().await.expect("id"), installation);
}

pub async fn an_open_task_is_updated_not_duplicated<S: Store>(store: S) {
    let project = Project::new(&[(
        "handoff",
        &HANDOFF.replace(
            "entry: { event: account_created }",
            "entry: { event: account_created }\nreentry: { after: 1d }",
        ),
    )]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store.clone());
    let deliverer = Deliverer::new(
        definitions,
        store.clone(),
        project.dir.path().join("outbox"),
    );
    engine.tick(t0()).await.expect("tick");
    deliverer.deliver_due(t0()).await.expect("deliver");
    let first_due = store.tasks(None, None).await.expect("tasks")[0].task.due_at;
    assert!(first_due.is_some());
    // The same account re-enters two days later while its first task is still open.
    send_event(&store, "a1", "account_created", t0() + days(2)).await;
    engine.tick(t0() + days(2)).await.expect("tick");
    let report = deliverer
        .deliver_due(t0() + days(2))
        .await
        .expect("deliver");
    assert_eq!(
        (report.tasks_created, report.tasks_updated),
        (0, 1),
        "{report:?}"
    );
    let tasks = store.tasks(None, None).await.expect("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].task.due_at, first_due,
        "an ignored task keeps its first due date, so it becomes overdue"
    );
    // Once done, the next one is a new task.
    let id = store.tasks(None, None).await.expect("tasks")[0].id;
    let done = touchline::task_desk::done(&store, id, None, "ana", t0())
        .await
        .expect("done");
    assert!(done.changed, "{done:?}");
    send_event(&store, "a1", "account_created", t0() + days(4)).await;
    engine.tick(t0() + days(4)).await.expect("tick");
    let report = deliverer
        .deliver_due(t0() + days(4))
        .await
        .expect("deliver");
    assert_eq!(report.tasks_created, 1);
    assert_eq!(
        store
            .tasks(None, Some(TaskStatus::Open))
            .await
            .expect("tasks")
            .len(),
        1
    );
}

pub async fn a_lost_lease_is_taken_over_and_delivered_once<S: Store>(store: S) {
    let project = Project::new(&[("handoff", HANDOFF)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let engine = Engine::new(project.definitions(), store.clone());
    engine.tick(t0()).await.expect("tick");
    // A worker claims the task and dies before finishing it.
    let claimed = store
        .claim_outbox(&["task"], to_millis(t0()), "dead-worker", 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(
        store
            .claim_outbox(&["task"], to_millis(t0()), "other", 60_000, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    // After the lease, another worker delivers it; the first one's late report is refused.
    let later = t0() + chrono::Duration::minutes(2);
    let deliverer = Deliverer::new(
        project.definitions(),
        store.clone(),
        project.dir.path().join("outbox"),
    );
    let report = deliverer.deliver_due(later).await.expect("deliver");
    assert_eq!(report.tasks_created, 1);
    let late = store
        .finish_outbox(
            claimed[0].id,
            "dead-worker",
            to_millis(later),
            &DeliveryOutcome::Sent("late".into()),
        )
        .await
        .expect("finish");
    assert!(!late, "a worker that lost its lease cannot report");
    assert_eq!(store.tasks(None, None).await.expect("tasks").len(), 1);
}

pub async fn failed_deliveries_are_listed_and_can_be_retried<S: Store>(store: S) {
    let project = Project::new(&[("handoff", HANDOFF)]);
    let mut bad = crate::fixture::contact("a1", "a1-admin", "admin");
    bad.email = "not an address@example.com".into();
    let import = touchline::store::Import {
        accounts: vec![crate::fixture::account("a1", 5000.0)],
        contacts: vec![bad],
        events: vec![crate::fixture::event("a1", "account_created", t0())],
        ..Default::default()
    };
    let deliverer = first_pass(&store, &project, &import).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    // The step mail fails; the task and its notice to the CSM go out.
    assert_eq!(
        (report.tasks_created, report.emails, report.failed),
        (1, 1, 1),
        "{report:?}"
    );

    let failed = store
        .deliveries(&[DeliveryStatus::Failed], 10)
        .await
        .expect("list");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].record.kind(), "email");
    let error = failed[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("bad recipient `not an address@example.com`"),
        "{error}"
    );
    assert!(
        !store
            .requeue(failed[0].id, &[DeliveryStatus::Sent], to_millis(t0()))
            .await
            .expect("requeue"),
        "it was not sent"
    );
    assert!(
        store
            .requeue(
                failed[0].id,
                &[DeliveryStatus::Failed, DeliveryStatus::Dead],
                to_millis(t0())
            )
            .await
            .expect("requeue")
    );
    let pending = store
        .deliveries(&[DeliveryStatus::Pending], 10)
        .await
        .expect("list");
    assert!(
        pending
            .iter()
            .any(|d| d.id == failed[0].id && d.attempts == 0)
    );

    // A sent task can be replayed: the open task is updated, not duplicated.
    let sent = store
        .deliveries(&[DeliveryStatus::Sent], 10)
        .await
        .expect("list");
    let sent: Vec<_> = sent.iter().filter(|d| d.record.kind() == "task").collect();
    assert_eq!(sent.len(), 1);
    assert!(
        store
            .requeue(sent[0].id, &[DeliveryStatus::Sent], to_millis(t0()))
            .await
            .expect("replay")
    );
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!((report.tasks_updated, report.failed), (1, 1), "{report:?}");
    assert_eq!(store.tasks(None, None).await.expect("tasks").len(), 1);
}

/// Imports `import`, runs a pass at `t0` and returns a worker delivering into the project's
/// outbox folder.
async fn first_pass<S: Store>(
    store: &S,
    project: &Project,
    import: &touchline::store::Import,
) -> Deliverer<S> {
    store.import(import).await.expect("import");
    ticked(store, project).await
}

/// A pass at `t0()` over what is stored; the deliverer for its outbox.
async fn ticked<S: Store>(store: &S, project: &Project) -> Deliverer<S> {
    let definitions = project.definitions();
    Engine::new(definitions.clone(), store.clone())
        .tick(t0())
        .await
        .expect("tick");
    Deliverer::new(
        definitions,
        store.clone(),
        project.dir.path().join("outbox"),
    )
}

/// The handoff journey without its webhook step.
fn handoff_without_webhook() -> String {
    HANDOFF.replace("  - id: crm\n    webhook: { endpoint: crm }\n", "")
}

pub async fn emails_go_over_smtp_and_failures_are_classified<S: Store>(store: S) {
    let (port, inbox) = crate::smtp_sink::start().await;
    let project = Project::new(&[("handoff", &handoff_without_webhook())]);
    let config = format!(
        "{}email:\n  from: Success <success@example.com>\n  reply_to: help@example.com\n  smtp: {{ host: 127.0.0.1, port: {port}, tls: none }}\n",
        crate::fixture::CONFIG
    );
    std::fs::write(project.dir.path().join("touchline.yaml"), config).expect("config");
    for (account, mailbox) in [("a1", "ok"), ("a2", "reject"), ("a3", "later")] {
        let mut admin = crate::fixture::contact(account, &format!("{account}-admin"), "admin");
        admin.email = format!("{mailbox}@example.com");
        let import = touchline::store::Import {
            accounts: vec![crate::fixture::account(account, 5000.0)],
            contacts: vec![admin],
            events: vec![crate::fixture::event(account, "account_created", t0())],
            ..Default::default()
        };
        store.import(&import).await.expect("import");
    }
    let definitions = project.definitions();
    Engine::new(definitions.clone(), store.clone())
        .tick(t0())
        .await
        .expect("tick");
    let deliverer = Deliverer::new(
        definitions,
        store.clone(),
        project.dir.path().join("outbox"),
    );
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    // One step mail accepted (plus a notice to the CSM of each of the three tasks), one
    // refused for good, one deferred by the server.
    assert_eq!(
        (report.emails, report.failed, report.retried),
        (4, 1, 1),
        "{report:?}"
    );

    let received = inbox.lock().expect("inbox").clone();
    assert_eq!(received.len(), 4);
    let mail = received
        .iter()
        .find(|m| m.contains("To: ok@example.com"))
        .expect("the accepted step mail");
    assert!(mail.contains("Message-ID: <"), "{mail}");
    assert!(mail.contains("List-Unsubscribe-Post: "), "{mail}");
    // The sender from touchline.yaml, in the envelope and the headers.
    assert!(
        mail.starts_with("Return-Path: <success@example.com>\n"),
        "{mail}"
    );
    assert!(
        mail.contains("From: Success <success@example.com>"),
        "{mail}"
    );
    assert!(mail.contains("Reply-To: help@example.com"), "{mail}");
    assert!(
        received.iter().all(|m| m.contains("(pipelined)")),
        "the server offers PIPELINING, so every mail's commands went in one write: {received:?}"
    );
    assert!(
        !project.dir.path().join("outbox").exists(),
        "with SMTP set, no .eml files"
    );

    let failed = store
        .deliveries(&[DeliveryStatus::Failed], 10)
        .await
        .expect("list");
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("550"),
        "{:?}",
        failed[0].last_error
    );
    let pending = store
        .deliveries(&[DeliveryStatus::Pending], 10)
        .await
        .expect("list");
    let retry = pending
        .iter()
        .find(|d| d.record.kind() == "email")
        .expect("the 451 mail waits");
    assert!(
        retry
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("451"),
        "{:?}",
        retry.last_error
    );
    let next = retry.next_attempt_at.expect("next attempt");
    assert!(
        next >= to_millis(t0() + chrono::Duration::minutes(4))
            && next <= to_millis(t0() + chrono::Duration::minutes(6)),
        "about 5 minutes later"
    );
    assert_eq!(retry.attempts, 1);
}

pub async fn mail_waits_for_the_recipients_send_window<S: Store>(store: S) {
    let project = Project::new(&[("handoff", &handoff_without_webhook())]);
    let config = format!(
        "{}send_window: {{ days: [mon, tue, wed, thu, fri], hours: \"09:00-17:00\" }}\n",
        crate::fixture::CONFIG
    );
    std::fs::write(project.dir.path().join("touchline.yaml"), config).expect("config");
    let mut admin = crate::fixture::contact("a1", "a1-admin", "admin");
    admin.timezone = Some("America/New_York".into());
    let import = touchline::store::Import {
        accounts: vec![crate::fixture::account("a1", 5000.0)],
        contacts: vec![admin],
        events: vec![crate::fixture::event("a1", "account_created", t0())],
        ..Default::default()
    };
    store.import(&import).await.expect("import");
    let definitions = project.definitions();
    Engine::new(definitions.clone(), store.clone())
        .tick(t0())
        .await
        .expect("tick");
    let outbox = project.dir.path().join("outbox");
    let deliverer = Deliverer::new(definitions, store.clone(), outbox.clone());
    // Monday 09:00 UTC is 04:00 in New York: the task (and its notice to the CSM) goes
    // out, the mail waits.
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!(
        (report.tasks_created, report.emails, report.deferred),
        (1, 1, 1),
        "{report:?}"
    );
    let waiting = store
        .deliveries(&[DeliveryStatus::Pending], 10)
        .await
        .expect("list");
    let mail = waiting
        .iter()
        .find(|d| d.record.kind() == "email")
        .expect("held mail");
    assert_eq!(
        mail.next_attempt_at,
        Some(to_millis(t0() + chrono::Duration::hours(5))),
        "09:00 EST is 14:00 UTC"
    );
    assert_eq!(
        mail.attempts, 0,
        "waiting for the window is not a failed attempt"
    );
    assert!(
        deliverer
            .deliver_due(t0() + chrono::Duration::hours(4))
            .await
            .expect("deliver")
            .is_idle()
    );
    let report = deliverer
        .deliver_due(t0() + chrono::Duration::hours(5))
        .await
        .expect("deliver");
    assert_eq!(report.emails, 1);
    assert_eq!(std::fs::read_dir(&outbox).expect("outbox").count(), 2);
}

/// Writes `extra` after the fixture's `touchline.yaml`.
fn configure(project: &Project, extra: &str) {
    let config = format!("{}{extra}", crate::fixture::CONFIG);
    std::fs::write(project.dir.path().join("touchline.yaml"), config).expect("config");
}

pub async fn suppressed_and_unsubscribed_recipients_are_skipped<S: Store>(store: S) {
    let project = Project::new(&[("handoff", &handoff_without_webhook())]);
    let mut unsubscribed = crate::fixture::contact("a2", "a2-admin", "admin");
    unsubscribed.subscribed = false;
    let import = touchline::store::Import {
        accounts: vec![
            crate::fixture::account("a1", 5000.0),
            crate::fixture::account("a2", 5000.0),
        ],
        contacts: vec![
            crate::fixture::contact("a1", "a1-admin", "admin"),
            unsubscribed,
        ],
        events: vec![
            crate::fixture::event("a1", "account_created", t0()),
            crate::fixture::event("a2", "account_created", t0()),
        ],
        ..Default::default()
    };
    store.import(&import).await.expect("import");
    assert!(
        store
            .suppress(&touchline::store::Suppression {
                email: "A1-Admin@Example.com".into(),
                reason: "manual".into(),
                detail: "asked on the phone".into(),
                created_at: to_millis(t0()),
            })
            .await
            .expect("suppress")
    );
    let definitions = project.definitions();
    Engine::new(definitions.clone(), store.clone())
        .tick(t0())
        .await
        .expect("tick");
    let deliverer = Deliverer::new(
        definitions,
        store.clone(),
        project.dir.path().join("outbox"),
    );
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    // Both step mails are skipped; the tasks' notices to CSMs still go.
    assert_eq!((report.skipped, report.emails), (2, 2), "{report:?}");
    let skipped = store
        .deliveries(&[DeliveryStatus::Skipped], 10)
        .await
        .expect("list");
    let mut reasons: Vec<String> = skipped
        .iter()
        .map(|d| d.last_error.clone().unwrap_or_default())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "suppressed: manual (asked on the phone)",
            "suppressed: the contact is not subscribed"
        ]
    );
    assert!(
        deliverer
            .deliver_due(t0() + days(1))
            .await
            .expect("deliver")
            .is_idle(),
        "skipped mail stays skipped"
    );
}

pub async fn a_hard_bounce_suppresses_the_address<S: Store>(store: S) {
    let (port, _inbox) = crate::smtp_sink::start().await;
    let project = Project::new(&[("handoff", &handoff_without_webhook())]);
    configure(
        &project,
        &format!("email:\n  smtp: {{ host: 127.0.0.1, port: {port}, tls: none }}\n"),
    );
    let mut admin = crate::fixture::contact("a1", "a1-admin", "admin");
    admin.email = "reject@example.com".into();
    let import = touchline::store::Import {
        accounts: vec![crate::fixture::account("a1", 5000.0)],
        contacts: vec![admin],
        events: vec![crate::fixture::event("a1", "account_created", t0())],
        ..Default::default()
    };
    let deliverer = first_pass(&store, &project, &import).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!(report.failed, 1, "{report:?}");
    let suppression = store
        .suppression("reject@example.com")
        .await
        .expect("read")
        .expect("suppressed");
    assert_eq!(suppression.reason, "hard_bounced");
    assert!(suppression.detail.contains("550"), "{}", suppression.detail);
}

pub async fn the_frequency_cap_holds_or_skips_mail<S: Store>(store: S) {
    // Welcome mails at once and two days later; at most one mail per contact in 7 days.
    for (policy, account) in [("wait", "a1"), ("skip", "a2")] {
        let project = Project::new(&[("welcome", crate::fixture::WELCOME)]);
        configure(
            &project,
            &format!("frequency_cap: {{ max_emails: 1, per: 7d, over_cap: {policy} }}\n"),
        );
        customer(&store, account, 5000.0, 50.0, t0()).await;
        send_event(&store, account, "account_created", t0()).await;
        let definitions = project.definitions();
        let engine = Engine::new(definitions.clone(), store.clone());
        let deliverer = Deliverer::new(
            definitions,
            store.clone(),
            project.dir.path().join("outbox"),
        );
        engine.tick(t0()).await.expect("tick");
        assert_eq!(
            deliverer.deliver_due(t0()).await.expect("deliver").emails,
            1
        );
        engine.tick(t0() + days(2)).await.expect("tick");
        let report = deliverer
            .deliver_due(t0() + days(2))
            .await
            .expect("deliver");
        let tips = |rows: Vec<touchline::store::DeliveryRow>| {
            rows.into_iter()
                .find(|d| d.record.step_id == "tips" && d.record.account_id == account)
        };
        match policy {
            "wait" => {
                assert_eq!((report.emails, report.deferred), (0, 1), "{report:?}");
                let held = tips(
                    store
                        .deliveries(&[DeliveryStatus::Pending], 10)
                        .await
                        .expect("list"),
                )
                .expect("held mail");
                assert_eq!(
                    held.next_attempt_at,
                    Some(to_millis(t0() + days(7)) + 1),
                    "it goes once the first mail is 7 days old"
                );
                assert_eq!(
                    held.held_reason.as_deref(),
                    Some("frequency cap: 1 mail in the last 7 days"),
                    "the wait says why"
                );
                let report = deliverer
                    .deliver_due(t0() + days(7) + chrono::Duration::minutes(1))
                    .await
                    .expect("deliver");
                assert_eq!(report.emails, 1, "{report:?}");
                let sent = tips(
                    store
                        .deliveries(&[DeliveryStatus::Sent], 10)
                        .await
                        .expect("list"),
                )
                .expect("sent mail");
                assert_eq!(sent.held_reason, None, "a sent mail no longer waits");
            }
            _ => {
                assert_eq!((report.emails, report.skipped), (0, 1), "{report:?}");
                let skipped = tips(
                    store
                        .deliveries(&[DeliveryStatus::Skipped], 10)
                        .await
                        .expect("list"),
                )
                .expect("skipped mail");
                assert_eq!(
                    skipped.last_error.as_deref(),
                    Some("frequency cap: 1 mail in the last 7 days")
                );
            }
        }
    }
}

pub async fn reaching_the_goal_closes_the_journeys_tasks<S: Store>(store: S) {
    const ASSIST: &str = r#"name: Assist
audience: accounts
entry: { event: account_created }
goal: { when: 'account.metrics.usage >= 90' }
steps:
  - id: call
    task: { title: 'Help {{ account.name }}', assign: owner }
  - wait: 7d
  - id: follow-up
    task: { title: 'Follow up', assign: owner }
"#;
    let project = Project::new(&[("assist", ASSIST)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store.clone());
    let deliverer = Deliverer::new(
        definitions,
        store.clone(),
        project.dir.path().join("outbox"),
    );
    engine.tick(t0()).await.expect("tick");
    deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!(
        store
            .tasks(None, Some(TaskStatus::Open))
            .await
            .expect("tasks")
            .len(),
        1
    );

    crate::fixture::set_usage(&store, "a1", 95.0, t0() + days(1)).await;
    engine.tick(t0() + days(1)).await.expect("tick");
    assert!(
        store
            .tasks(None, Some(TaskStatus::Open))
            .await
            .expect("tasks")
            .is_empty()
    );
    let done = store
        .tasks(None, Some(TaskStatus::Done))
        .await
        .expect("tasks");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].closed_reason.as_deref(), Some("goal reached"));
}

pub async fn an_explicit_key_merges_tasks_and_the_csm_hears_on_slack<S: Store>(store: S) {
    const TWO_CALLS: &str = r#"name: Two calls
audience: accounts
entry: { event: account_created }
steps:
  - id: first
    task: { title: 'Call {{ account.name }}', assign: owner, key: 'call-{{ account.id }}' }
  - id: second
    task: { title: 'Call {{ account.name }} again', assign: owner, key: 'call-{{ account.id }}' }
"#;
    let sink =
        crate::webhook_sink::WebhookSink::start("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", vec![])
            .await;
    let project = Project::new(&[("calls", TWO_CALLS)]);
    let config = crate::fixture::CONFIG
        .replace(
            "{ id: ana, name: Ana Ortiz, email: ana@example.com, capacity: 1 }",
            "{ id: ana, name: Ana Ortiz, email: ana@example.com, notify_webhook: slack, notify_email: false }",
        )
        .replace(
            "webhooks:\n",
            &format!(
                "webhooks:\n  slack: {{ url: \"{}\", allow_private: true, secret_env: [SLACK] }}\n",
                sink.url
            ),
        );
    std::fs::write(project.dir.path().join("touchline.yaml"), config).expect("config");
    let mut account = crate::fixture::account("a1", 5000.0);
    account.owner = Some("ana".into());
    let import = touchline::store::Import {
        accounts: vec![account],
        events: vec![crate::fixture::event("a1", "account_created", t0())],
        ..Default::default()
    };
    let deliverer = first_pass(&store, &project, &import)
        .await
        .with_secrets(|_| Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()));
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!(
        (
            report.tasks_created,
            report.tasks_updated,
            report.webhooks,
            report.emails
        ),
        (1, 1, 1, 0),
        "{report:?}"
    );
    let tasks = store.tasks(None, None).await.expect("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].task.dedupe_key, "a1/call-a1");
    assert_eq!(tasks[0].task.title, "Call a1 Inc again");
    let received = sink.received();
    assert_eq!(received.len(), 1, "one notice for one new task");
    let text = received[0].body["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("Ana Ortiz: New normal task for account a1: Call a1 Inc"),
        "{text}"
    );
    assert!(
        text.ends_with("<http://127.0.0.1:8080/accounts/a1|Open the account>"),
        "the Slack notice links the account's page: {text}"
    );
}

pub async fn an_unreachable_mail_server_is_retried_and_reported<S: Store>(store: S) {
    let project = Project::new(&[("handoff", &handoff_without_webhook())]);
    // Nothing listens on port 9.
    configure(
        &project,
        "email:\n  smtp: { host: 127.0.0.1, port: 9, tls: none }\n",
    );
    let import = touchline::store::Import {
        accounts: vec![crate::fixture::account("a1", 5000.0)],
        contacts: vec![crate::fixture::contact("a1", "a1-admin", "admin")],
        events: vec![crate::fixture::event("a1", "account_created", t0())],
        ..Default::default()
    };
    let deliverer = first_pass(&store, &project, &import).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    // The step mail and the CSM's notice both wait for another attempt.
    assert_eq!((report.emails, report.retried), (0, 2), "{report:?}");
    let pending = store
        .deliveries(&[DeliveryStatus::Pending], 10)
        .await
        .expect("list");
    assert_eq!(pending.len(), 2);
    for record in &pending {
        assert_eq!(record.attempts, 1);
        let error = record.last_error.as_deref().unwrap_or_default();
        assert!(error.starts_with("127.0.0.1:9: "), "{error}");
    }
}

pub async fn a_slot_taken_meanwhile_is_not_given_twice<S: Store>(store: S) {
    let project = Project::new(&[("handoff", &handoff_without_webhook())]);
    for id in ["a1", "a2"] {
        customer(&store, id, 5000.0, 50.0, t0()).await;
        send_event(&store, id, "account_created", t0()).await;
    }
    Engine::new(project.definitions(), store.clone())
        .tick(t0())
        .await
        .expect("tick");
    // Two engines each claim one task and both planned it for Ana (capacity 1).
    let claimed = store
        .claim_outbox(&["task"], to_millis(t0()), "engine-1", 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let for_ana = |item: &touchline::store::OutboxItem| touchline::store::NewTask {
        dedupe_key: format!("{}/handoff/kickoff", item.record.account_id),
        account_id: item.record.account_id.clone(),
        journey_id: "handoff".into(),
        step_id: "kickoff".into(),
        title: "Kickoff".into(),
        description: String::new(),
        assignee: Some("ana".into()),
        priority: "high".into(),
        due_at: None,
        reason: serde_json::json!({}),
        capacity: Some(1),
    };
    let at = to_millis(t0());
    let first = store
        .deliver_task(claimed[0].id, "engine-1", at, &for_ana(&claimed[0]), &[])
        .await
        .expect("deliver");
    assert!(matches!(
        first,
        Some(touchline::store::TaskWrite::Created(_))
    ));
    let second = store
        .deliver_task(claimed[1].id, "engine-1", at, &for_ana(&claimed[1]), &[])
        .await
        .expect("deliver");
    assert_eq!(second, Some(touchline::store::TaskWrite::AssigneeFull));
    assert_eq!(store.tasks(None, None).await.expect("tasks").len(), 1);
    // Nothing was written for the second: the record is still held, to be planned again.
    let mut replanned = for_ana(&claimed[1]);
    replanned.assignee = Some("ben".into());
    replanned.capacity = None;
    let again = store
        .deliver_task(claimed[1].id, "engine-1", at, &replanned, &[])
        .await
        .expect("deliver");
    assert!(matches!(
        again,
        Some(touchline::store::TaskWrite::Created(_))
    ));
    let mut assignees: Vec<String> = store
        .tasks(None, None)
        .await
        .expect("tasks")
        .into_iter()
        .filter_map(|t| t.task.assignee)
        .collect();
    assignees.sort();
    assert_eq!(assignees, ["ana", "ben"]);
}

/// A CA of the test's own, and a TLS server configuration for `localhost` signed by it.
fn private_ca() -> (String, std::sync::Arc<tokio_rustls::rustls::ServerConfig>) {
    use tokio_rustls::rustls;
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let server_key = rcgen::KeyPair::generate().expect("key");
    let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("certificate");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(server_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![server.der().clone()], key.into())
    .expect("server config");
    (ca.pem(), std::sync::Arc::new(config))
}

pub async fn mail_goes_over_starttls_to_a_relay_with_a_private_ca<S: Store>(store: S) {
    let (ca_pem, tls) = private_ca();
    let (port, inbox) = crate::smtp_sink::start_starttls(tls).await;
    let import = touchline::store::Import {
        accounts: vec![crate::fixture::account("a1", 5000.0)],
        contacts: vec![crate::fixture::contact("a1", "a1-admin", "admin")],
        events: vec![crate::fixture::event("a1", "account_created", t0())],
        ..Default::default()
    };
    let project = Project::new(&[("handoff", &handoff_without_webhook())]);
    std::fs::write(project.dir.path().join("relay-ca.pem"), &ca_pem).expect("ca");
    configure(
        &project,
        &format!(
            "email:\n  smtp: {{ host: localhost, port: {port}, tls: starttls, ca_file: relay-ca.pem }}\n"
        ),
    );
    let deliverer = first_pass(&store, &project, &import).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!((report.emails, report.retried), (2, 0), "{report:?}");
    let received = inbox.lock().expect("inbox").clone();
    assert_eq!(received.len(), 2, "both mails taken after STARTTLS");
    assert!(
        received
            .iter()
            .any(|m| m.contains("To: a1-admin@example.com")),
        "{received:?}"
    );
}

pub async fn mail_goes_over_tls_to_a_relay_with_a_private_ca<S: Store>(store: S) {
    let (ca_pem, tls) = private_ca();
    let (port, inbox) = crate::smtp_sink::start_tls(tls).await;
    let import = |account: &str| touchline::store::Import {
        accounts: vec![crate::fixture::account(account, 5000.0)],
        contacts: vec![crate::fixture::contact(
            account,
            &format!("{account}-admin"),
            "admin",
        )],
        events: vec![crate::fixture::event(account, "account_created", t0())],
        ..Default::default()
    };

    // Trusting the relay's CA: mail goes over TLS from the first byte.
    let project = Project::new(&[("handoff", &handoff_without_webhook())]);
    std::fs::write(project.dir.path().join("relay-ca.pem"), &ca_pem).expect("ca");
    configure(
        &project,
        &format!(
            "email:\n  smtp: {{ host: localhost, port: {port}, tls: tls, ca_file: relay-ca.pem }}\n"
        ),
    );
    let deliverer = first_pass(&store, &project, &import("a1")).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!((report.emails, report.retried), (2, 0), "{report:?}");
    let received = inbox.lock().expect("inbox").clone();
    assert!(
        received
            .iter()
            .any(|m| m.contains("To: a1-admin@example.com")),
        "{received:?}"
    );
    assert!(
        received
            .iter()
            .all(|m| m.contains("\nReceived: by sink with ESMTP\n")),
        "this server does not offer PIPELINING: one command at a time: {received:?}"
    );

    // Without the CA the relay's certificate is not trusted: nothing is sent, it is retried.
    let untrusting = Project::new(&[("handoff", &handoff_without_webhook())]);
    configure(
        &untrusting,
        &format!("email:\n  smtp: {{ host: localhost, port: {port}, tls: tls }}\n"),
    );
    let deliverer = first_pass(&store, &untrusting, &import("a2")).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!((report.emails, report.retried), (0, 2), "{report:?}");
    assert_eq!(
        inbox.lock().expect("inbox").len(),
        2,
        "nothing more arrived"
    );
    let pending = store
        .deliveries(&[DeliveryStatus::Pending], 10)
        .await
        .expect("list");
    let error = pending[0].last_error.clone().unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

pub async fn delivery_times_are_the_pass_time<S: Store>(store: S) {
    // More mail than one claim takes, so the round runs long enough for the wall clock to
    // move on; every time stored is still the pass's own.
    let project = Project::new(&[("welcome", crate::fixture::WELCOME)]);
    let mut import = touchline::store::Import::default();
    for n in 0..450 {
        let id = format!("a{n:03}");
        import.accounts.push(crate::fixture::account(&id, 5000.0));
        import.contacts.push(crate::fixture::contact(
            &id,
            &format!("{id}-admin"),
            "admin",
        ));
        import
            .events
            .push(crate::fixture::event(&id, "account_created", t0()));
    }
    let deliverer = first_pass(&store, &project, &import).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!(report.emails, 450, "{report:?}");
    let sent = store
        .deliveries(&[DeliveryStatus::Sent], 1000)
        .await
        .expect("list");
    let times: std::collections::BTreeSet<Option<i64>> =
        sent.iter().map(|d| d.delivered_at).collect();
    assert_eq!(
        times,
        [Some(to_millis(t0()))].into(),
        "{} records",
        sent.len()
    );
}

pub async fn a_pass_that_enrolls_far_more_than_usual_is_held_for_a_person<S: Store>(store: S) {
    // Sixty healthy accounts; then a broken feed reports every account's usage as 0, and the
    // rescue journey would mail or task all of them at once.
    let project = Project::new(&[("rescue", crate::fixture::RESCUE)]);
    let ids: Vec<String> = (0..60).map(|n| format!("a{n:02}")).collect();
    for id in &ids {
        customer(&store, id, 5000.0, 50.0, t0()).await;
    }
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store.clone());
    let deliverer = Deliverer::new(
        definitions,
        store.clone(),
        project.dir.path().join("outbox"),
    );
    engine.tick(t0()).await.expect("tick");
    let import = touchline::store::Import {
        metrics: ids
            .iter()
            .map(|id| crate::fixture::usage(id, 0.0, t0() + days(1)))
            .collect(),
        ..Default::default()
    };
    store.import(&import).await.expect("import");
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!(report.enrolled, 60, "{report:?}");
    assert_eq!(report.held.len(), 1, "{report:?}");
    let (journey, records, reason) = &report.held[0];
    assert_eq!((journey.as_str(), *records), ("rescue", 60));
    assert!(
        reason.starts_with("60 new enrollments in one pass, more than 25"),
        "{reason}"
    );

    // Nothing goes out while it is held, and nothing is lost.
    let delivered = deliverer
        .deliver_due(t0() + days(1))
        .await
        .expect("deliver");
    assert!(delivered.is_idle(), "{delivered:?}");
    let holds = store.holds().await.expect("holds");
    assert_eq!(holds.len(), 1);
    assert_eq!(
        (holds[0].journey_id.as_str(), holds[0].records),
        ("rescue", 60)
    );
    // Steps due later are held too while the hold lasts.
    assert_eq!(
        store
            .deliveries(&[DeliveryStatus::Held], 1000)
            .await
            .expect("list")
            .len(),
        60
    );

    // A person releases it: every record goes out, once.
    let released = store
        .end_hold("rescue", true, to_millis(t0() + days(1)))
        .await
        .expect("release");
    assert_eq!(released, Some(60));
    let delivered = deliverer
        .deliver_due(t0() + days(1))
        .await
        .expect("deliver");
    // Usage 0 puts the accounts in low touch: a call task each, and its notice to the CSM.
    assert_eq!(
        (delivered.tasks_created, delivered.emails),
        (60, 60),
        "{delivered:?}"
    );
    let again = deliverer
        .deliver_due(t0() + days(1))
        .await
        .expect("deliver");
    assert!(again.is_idle(), "{again:?}");
    assert!(store.holds().await.expect("holds").is_empty());
    assert_eq!(store.end_hold("rescue", true, 0).await.expect("none"), None);
}

pub async fn many_rule_errors_in_one_pass_hold_what_it_wrote<S: Store>(store: S) {
    // The welcome journey allows large passes, but sixty accounts arrive without the usage
    // metric their score needs: a broken feed, so what the pass wrote is held.
    let welcome = crate::fixture::WELCOME.replace(
        "entry: { event: account_created }",
        "entry: { event: account_created }\nguard: { min_enrollments: 1000 }",
    );
    let project = Project::new(&[("welcome", &welcome)]);
    customer(&store, "a00", 5000.0, 50.0, t0()).await;
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store.clone());
    engine.tick(t0()).await.expect("tick");
    let mut import = touchline::store::Import::default();
    for n in 1..=60 {
        let id = format!("a{n:02}");
        import.accounts.push(crate::fixture::account(&id, 5000.0));
        import.contacts.push(crate::fixture::contact(
            &id,
            &format!("{id}-admin"),
            "admin",
        ));
        import.events.push(crate::fixture::event(
            &id,
            "account_created",
            t0() + days(1),
        ));
    }
    store.import(&import).await.expect("import");
    let report = engine.tick(t0() + days(1)).await.expect("tick");
    assert_eq!(
        (report.rule_errors, report.enrolled),
        (60, 60),
        "{report:?}"
    );
    assert_eq!(report.held.len(), 1, "{report:?}");
    let (journey, records, reason) = &report.held[0];
    assert_eq!((journey.as_str(), *records), ("welcome", 60));
    assert!(
        reason.starts_with("60 rule errors in one pass over 60 accounts"),
        "{reason}"
    );
    let deliverer = Deliverer::new(
        definitions,
        store.clone(),
        project.dir.path().join("outbox"),
    );
    let delivered = deliverer
        .deliver_due(t0() + days(1))
        .await
        .expect("deliver");
    assert!(delivered.is_idle(), "nothing goes out: {delivered:?}");
}

/// A CSM's actions on tasks: done with a note, snooze, reassign — each refused with a
/// reason where it must be, recorded once, and a form sent twice changes nothing more.
pub async fn a_csm_works_tasks_done_snoozed_and_reassigned_once<S: Store>(store: S) {
    use touchline::task_desk::{self, DeskError};

    let project = Project::new(&[("handoff", HANDOFF)]);
    for id in ["a1", "a2", "a3"] {
        customer(&store, id, 5000.0, 50.0, t0()).await;
        send_event(&store, id, "account_created", t0()).await;
    }
    let definitions = project.definitions();
    let engine = Engine::new(definitions.clone(), store.clone());
    engine.tick(t0()).await.expect("tick");
    let deliverer = Deliverer::new(
        definitions.clone(),
        store.clone(),
        project.dir.path().join("outbox"),
    );
    deliverer.deliver_due(t0()).await.expect("deliver");
    let open = store
        .tasks(None, Some(TaskStatus::Open))
        .await
        .expect("tasks");
    let of = |csm: &str| {
        open.iter()
            .filter(|t| t.task.assignee.as_deref() == Some(csm))
            .map(|t| t.id)
            .collect::<Vec<i64>>()
    };
    let (anas, bens) = (of("ana"), of("ben"));
    assert_eq!((anas.len(), bens.len()), (1, 2));
    let now = t0() + chrono::Duration::hours(2);

    // Ana (capacity 1) has no room; an unknown CSM gets a did-you-mean.
    let full = task_desk::reassign(&store, &definitions, bens[0], "ana", "ben", now)
        .await
        .expect_err("ana is full");
    assert_eq!(
        full.to_string(),
        "Ana Ortiz has no room: 1 open tasks of a capacity of 1"
    );
    let unknown = task_desk::reassign(&store, &definitions, bens[0], "anna", "ben", now)
        .await
        .expect_err("unknown");
    assert!(matches!(unknown, DeskError::UnknownCsm(_)), "{unknown}");
    assert!(
        unknown.to_string().contains("did you mean `ana`?"),
        "{unknown}"
    );

    // Done with a note, twice: recorded once.
    for changed in [true, false] {
        let done = task_desk::done(
            &store,
            anas[0],
            Some(" called, kickoff booked ".into()),
            "ana",
            now,
        )
        .await
        .expect("done");
        assert_eq!(done.changed, changed, "{done:?}");
    }
    let task = store.task(anas[0]).await.expect("task").expect("exists");
    assert_eq!(
        (task.status, task.note.as_deref()),
        (TaskStatus::Done, Some("called, kickoff booked"))
    );
    let refused = task_desk::snooze(&store, anas[0], now + days(1), "ana", now)
        .await
        .expect_err("done tasks stay done");
    assert!(matches!(refused, DeskError::Closed(_)), "{refused}");

    // Now Ana has room: the handover happens once, and she hears about it once.
    for changed in [true, false] {
        let handed = task_desk::reassign(&store, &definitions, bens[0], "ana", "ben", now)
            .await
            .expect("reassign");
        assert_eq!(handed.changed, changed, "{handed:?}");
    }
    let notices: Vec<_> = store
        .deliveries(&[DeliveryStatus::Pending], 100)
        .await
        .expect("pending")
        .into_iter()
        .filter(|r| r.record.idempotency_key.contains(":reassigned:ana:"))
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let report = deliverer.deliver_due(now).await.expect("deliver");
    assert_eq!(report.emails, 1, "{report:?}");

    // Snooze: into the future once; the past is refused.
    for changed in [true, false] {
        let snoozed = task_desk::snooze(&store, bens[1], now + days(3), "ben", now)
            .await
            .expect("snooze");
        assert_eq!(snoozed.changed, changed);
    }
    let past = task_desk::snooze(&store, bens[1], now - days(1), "ben", now)
        .await
        .expect_err("past");
    assert!(matches!(past, DeskError::PastSnooze));
    let snoozed = store.task(bens[1]).await.expect("task").expect("exists");
    assert_eq!(snoozed.snoozed_until, Some(to_millis(now + days(3))));

    // Each change is in the task's history, with who made it.
    let history = |id: i64| {
        let store = store.clone();
        async move {
            store
                .task_log(id)
                .await
                .expect("log")
                .into_iter()
                .map(|e| format!("{} {} {}", e.actor, e.action, e.detail))
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(history(anas[0]).await, ["ana done called, kickoff booked"]);
    assert_eq!(history(bens[0]).await, ["ben reassigned ben → ana"]);
    assert_eq!(
        history(bens[1]).await,
        ["ben snoozed until 2026-11-05 11:00 UTC"]
    );
}

/// A CSM marks a task done from the command line while the engine, another process, writes
/// to the same SQLite file: the change waits for the engine's write, and is stored.
pub async fn a_task_change_waits_for_another_process_writing(
    store: touchline::store::SqliteStore,
    file: std::path::PathBuf,
) {
    let project = Project::new(&[("handoff", HANDOFF)]);
    customer(&store, "a1", 5000.0, 50.0, t0()).await;
    send_event(&store, "a1", "account_created", t0()).await;
    ticked(&store, &project)
        .await
        .deliver_due(t0())
        .await
        .expect("deliver");
    let open = store
        .tasks(None, Some(TaskStatus::Open))
        .await
        .expect("tasks");
    let [task] = open.as_slice() else {
        panic!("one open task: {open:?}")
    };

    // The other process holds SQLite's write lock until 300 ms after the change starts.
    let (locked, wait_for_lock) = std::sync::mpsc::channel();
    let (go, wait_for_change) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        let mut connection = rusqlite::Connection::open(&file).expect("open the file");
        let write = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("take the write lock");
        locked.send(()).expect("signal");
        wait_for_change.recv().expect("the change starts");
        std::thread::sleep(std::time::Duration::from_millis(300));
        write.commit().expect("commit");
    });
    wait_for_lock.recv().expect("the lock is held");
    go.send(()).expect("signal");
    let done = touchline::task_desk::done(&store, task.id, None, "ana", t0())
        .await
        .expect("the change waits for the other writer");
    assert!(done.changed, "{done:?}");
    other.join().expect("the other writer");
    let stored = store.task(task.id).await.expect("task").expect("exists");
    assert_eq!(stored.status, TaskStatus::Done);
}

/// An engine is killed right after the mail server accepted a mail, before its mark is
/// stored: the next engine on the file takes the mail as sent, from the journal of accepted
/// mails the first left beside it, and takes over only the records it had not sent.
pub async fn an_accepted_mail_outlives_its_engine(dir: tempfile::TempDir) {
    let url = format!("sqlite://{}", dir.path().join("touchline.db").display());
    let open = || async {
        match touchline::store::open(&url, dir.path())
            .await
            .expect("open")
        {
            touchline::store::AnyStore::Sqlite(store) => store,
            touchline::store::AnyStore::Postgres(_) => unreachable!("a sqlite URL opens SQLite"),
        }
    };
    let project = Project::new(&[("handoff", HANDOFF)]);
    let first = open().await;
    for id in ["a1", "a2"] {
        customer(&first, id, 5000.0, 50.0, t0()).await;
        send_event(&first, id, "account_created", t0()).await;
    }
    Engine::new(project.definitions(), first.clone())
        .tick(t0())
        .await
        .expect("tick");
    let at = to_millis(t0());
    let claimed = first
        .claim_outbox(&["email"], at, "first", 1_000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    let accepted = claimed[0].id;
    assert!(
        first
            .note_accepted(accepted, "first", at, "250 2.0.0 queued")
            .expect("noted"),
        "an SQLite file keeps a journal"
    );
    let journals = || {
        std::fs::read_dir(dir.path())
            .expect("list")
            .filter(|e| {
                let name = e.as_ref().expect("entry").file_name();
                name.to_string_lossy().contains("-accepted-")
            })
            .count()
    };
    // A line about a record its engine no longer holds (it was handed back and claimed
    // again, say) marks nothing.
    assert!(
        first
            .note_accepted(claimed[1].id, "an-earlier-engine", at, "250 2.0.0 queued")
            .expect("noted")
    );
    assert_eq!(journals(), 1);
    // The engine dies: its store goes without marking anything.
    drop(first);

    // After the lease, the next engine takes over what was not sent, and only that.
    let next = open().await;
    let taken = next
        .claim_outbox(&["email"], at + 2_000, "next", 1_000, 10)
        .await
        .expect("claim");
    let taken: Vec<i64> = taken.iter().map(|item| item.id).collect();
    assert_eq!(taken, [claimed[1].id]);
    let sent = next
        .deliveries(&[DeliveryStatus::Sent], 10)
        .await
        .expect("sent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].id, sent[0].delivered_at),
        (accepted, Some(at)),
        "{sent:?}"
    );
    assert_eq!(journals(), 0, "the gone engine's journal is cleared");
}
