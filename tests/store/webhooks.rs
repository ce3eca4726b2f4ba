//! Webhook delivery against a real HTTP listener that verifies Standard Webhooks signatures
//! with an independent implementation.

use touchline::clock::to_millis;
use touchline::delivery::Deliverer;
use touchline::engine::Engine;
use touchline::store::DeliveryStatus;
use touchline::store::Store;

use crate::fixture::{CONFIG, Project, customer, send_event, t0};
use crate::webhook_sink::{Reply, WebhookSink};

const OLD_SECRET: &str = "whsec_c2VjcmV0LWJlaW5nLXJldGlyZWQtc29vbg==";
const NEW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Account journey on `account_created` that calls the `crm` endpoint.
const NOTIFY: &str = r#"name: Notify CRM
audience: accounts
entry: { event: account_created }
steps:
  - id: crm
    webhook: { endpoint: crm, body: { account: '{{ account.id }}', arr: '{{ account.arr }}' } }
"#;

/// A project whose `crm` endpoint is `endpoint` (YAML flow-map body), with `accounts`
/// entered into the NOTIFY journey.
async fn setup<S: Store>(store: &S, endpoint: &str, accounts: &[&str]) -> (Project, Deliverer<S>) {
    let project = Project::new(&[("notify", NOTIFY)]);
    let config = CONFIG.replace(
        r#"crm: { url: "http://127.0.0.1:9/hook", allow_private: true }"#,
        &format!("crm: {{ {endpoint} }}"),
    );
    std::fs::write(project.dir.path().join("touchline.yaml"), config).expect("config");
    for id in accounts {
        customer(store, id, 5000.0, 50.0, t0()).await;
        send_event(store, id, "account_created", t0()).await;
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
    )
    .with_secrets(|name| match name {
        "CRM_OLD" => Some(OLD_SECRET.into()),
        "CRM_NEW" => Some(NEW_SECRET.into()),
        "CRM_AUTH" => Some("Bearer crm-token".into()),
        _ => None,
    });
    (project, deliverer)
}

fn allowed(url: &str) -> String {
    format!(
        "url: \"{url}\", allow_private: true, secret_env: [CRM_OLD, CRM_NEW], headers_env: {{ Authorization: CRM_AUTH }}"
    )
}

pub async fn webhooks_are_signed_and_retried_with_the_same_id<S: Store>(store: S) {
    // The receiver knows only the new secret: during a rotation either one must verify.
    let sink = WebhookSink::start(
        NEW_SECRET,
        vec![
            Reply::status(503).header("retry-after", "3600"),
            Reply::status(429),
        ],
    )
    .await;
    let (_project, deliverer) = setup(&store, &allowed(&sink.url), &["a1"]).await;

    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!((report.webhooks, report.retried), (0, 1), "{report:?}");
    let pending = store
        .deliveries(&[DeliveryStatus::Pending], 10)
        .await
        .expect("list");
    assert_eq!(
        pending[0].next_attempt_at,
        Some(to_millis(t0()) + 3_600_000),
        "Retry-After: 3600 is honoured"
    );
    assert!(
        pending[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("503"),
        "{:?}",
        pending[0].last_error
    );
    assert!(
        deliverer
            .deliver_due(t0() + chrono::Duration::seconds(3599))
            .await
            .expect("deliver")
            .is_idle(),
        "not before the receiver asked"
    );
    let later = t0() + chrono::Duration::seconds(3600);
    let report = deliverer.deliver_due(later).await.expect("deliver");
    assert_eq!(report.retried, 1, "429 is temporary: {report:?}");
    let pending = store
        .deliveries(&[DeliveryStatus::Pending], 10)
        .await
        .expect("list");
    let next = pending[0].next_attempt_at.expect("next");
    let report = deliverer
        .deliver_due(crate::fixture::from_ms(next))
        .await
        .expect("deliver");
    assert_eq!(report.webhooks, 1, "{report:?}");

    let received = sink.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.verified), "{received:?}");
    assert!(
        received
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer crm-token")),
        "the endpoint's own header goes with every request"
    );
    assert!(
        received.iter().all(|r| r.id == received[0].id),
        "webhook-id stays the same across retries"
    );
    assert_eq!(
        received[0].body,
        serde_json::json!({ "account": "a1", "arr": "5000" })
    );
    assert_eq!(sink.accepted_ids().len(), 1);
    assert!(
        deliverer
            .deliver_due(later + chrono::Duration::days(1))
            .await
            .expect("deliver")
            .is_idle()
    );
}

pub async fn a_wrong_secret_redirects_and_gone_endpoints_fail_for_good<S: Store>(store: S) {
    // A receiver with another secret answers 401: a permanent failure, reason kept.
    let strangers =
        WebhookSink::start("whsec_b3RoZXItc2VjcmV0LW9mLXRoZS1yZWNlaXZlcg==", vec![]).await;
    let (_project, deliverer) = setup(&store, &allowed(&strangers.url), &["a1"]).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!(report.failed, 1, "{report:?}");
    let failed = store
        .deliveries(&[DeliveryStatus::Failed], 10)
        .await
        .expect("list");
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("401"),
        "{:?}",
        failed[0].last_error
    );
    assert!(!strangers.received()[0].verified);

    // A redirect is not followed.
    let moved = WebhookSink::start(
        NEW_SECRET,
        vec![Reply::status(302).header("location", "http://127.0.0.1:9/elsewhere")],
    )
    .await;
    let (_project, deliverer) = setup(&store, &allowed(&moved.url), &["a2"]).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!(report.failed, 1, "{report:?}");
    let failed = store
        .deliveries(&[DeliveryStatus::Failed], 10)
        .await
        .expect("list");
    let error = failed[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("302") && error.contains("not followed"),
        "{error}"
    );

    // 410 Gone fails the record and disables the endpoint: a record sent to it later fails
    // without a request, until the endpoint is enabled again.
    let gone = WebhookSink::start(NEW_SECRET, vec![Reply::status(410), Reply::status(410)]).await;
    let (_project, deliverer) = setup(&store, &allowed(&gone.url), &["a3", "a4"]).await;
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!((report.failed, report.webhooks), (2, 0), "{report:?}");
    let asked = gone.received().len();
    let failed = store
        .deliveries(&[DeliveryStatus::Failed], 10)
        .await
        .expect("list");
    let record = failed
        .iter()
        .find(|d| d.last_error.as_deref().unwrap_or_default().contains("410"))
        .expect("a record refused with 410");
    assert!(
        store
            .requeue(record.id, &[DeliveryStatus::Failed], to_millis(t0()))
            .await
            .expect("requeue")
    );
    assert_eq!(
        deliverer.deliver_due(t0()).await.expect("deliver").failed,
        1
    );
    assert_eq!(
        gone.received().len(),
        asked,
        "no request to a disabled endpoint"
    );
    let error = store
        .deliveries(&[DeliveryStatus::Failed], 10)
        .await
        .expect("list")
        .into_iter()
        .find(|d| d.id == record.id)
        .and_then(|d| d.last_error)
        .unwrap_or_default();
    assert!(error.contains("is disabled"), "{error}");

    assert!(
        touchline::delivery::enable_endpoint(&store, "crm")
            .await
            .expect("enable")
    );
    assert!(
        store
            .requeue(record.id, &[DeliveryStatus::Failed], to_millis(t0()))
            .await
            .expect("requeue")
    );
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!(report.webhooks, 1, "{report:?}");
}

pub async fn private_addresses_are_refused_unless_allowed<S: Store>(store: S) {
    let sink = WebhookSink::start(NEW_SECRET, vec![]).await;
    // By IP literal, and by names that are loopback (with the root's trailing dot too):
    // refused for good at once, never retried.
    let by_name = sink.url.replace("127.0.0.1", "localhost");
    let rooted = sink.url.replace("127.0.0.1", "localhost.");
    for (account, url) in [("a1", sink.url.clone()), ("a2", by_name), ("a3", rooted)] {
        let endpoint = format!("url: \"{url}\", secret_env: [CRM_NEW]");
        let (_project, deliverer) = setup(&store, &endpoint, &[account]).await;
        let report = deliverer.deliver_due(t0()).await.expect("deliver");
        assert_eq!(report.failed, 1, "{url}: {report:?}");
    }
    let failed = store
        .deliveries(&[DeliveryStatus::Failed], 10)
        .await
        .expect("list");
    assert_eq!(failed.len(), 3);
    for record in &failed {
        let error = record.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("private address"), "{error}");
    }
    assert!(
        sink.received().is_empty(),
        "no request reached the listener"
    );
}

/// A fenced YAML block of the README, found by its first line (`# recipe: …`).
fn readme_recipe(name: &str) -> String {
    let readme = include_str!("../../README.md");
    let marker = format!("```yaml\n# recipe: {name}\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("no recipe `{name}` in the README"))
        + marker.len();
    let end = readme[start..].find("```").expect("the block ends") + start;
    readme[start..end].to_string()
}

/// The README's Slack, HubSpot and Salesforce recipes, as written there, reach a real HTTP
/// listener in each API's shape, with each endpoint's own Authorization header.
pub async fn the_slack_hubspot_and_salesforce_recipes_send_what_their_apis_take<S: Store>(
    store: S,
) {
    let (slack, hubspot, salesforce) = (
        WebhookSink::start_unsigned().await,
        WebhookSink::start_unsigned().await,
        WebhookSink::start_unsigned().await,
    );
    let endpoints = readme_recipe("touchline.yaml")
        .replace(
            "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
            &slack.url,
        )
        .replace("https://api.hubapi.com/crm/v3/objects/tasks", &hubspot.url)
        .replace(
            "https://yourorg.my.salesforce.com/services/data/v60.0/sobjects/Task",
            &salesforce.url,
        )
        .replace("    url: ", "    allow_private: true\n    url: ");
    let config = CONFIG.replace(
        "webhooks:\n  # Nothing listens on port 9: webhook records fail for now and are retried.\n  crm: { url: \"http://127.0.0.1:9/hook\", allow_private: true }\n",
        &endpoints,
    );
    assert!(
        config.contains("hubspot:"),
        "the recipe replaced the endpoints:\n{config}"
    );
    let journey = format!(
        "name: Rescue\naudience: accounts\nentry: {{ event: account_created }}\nsteps:\n{}",
        readme_recipe("journey steps")
    );
    let project = Project::new(&[("rescue", &journey)]);
    std::fs::write(project.dir.path().join("touchline.yaml"), config).expect("config");
    let mut account = crate::fixture::account("a1", 5000.0);
    account
        .attributes
        .insert("hubspot_owner_id".into(), "51234".into());
    account
        .attributes
        .insert("salesforce_id".into(), "001Dn00000abcDE".into());
    store
        .import(&touchline::store::Import {
            accounts: vec![account],
            metrics: vec![crate::fixture::usage("a1", 23.0, t0())],
            ..Default::default()
        })
        .await
        .expect("import");
    send_event(&store, "a1", "account_created", t0()).await;
    let definitions = project.definitions();
    Engine::new(definitions.clone(), store.clone())
        .tick(t0())
        .await
        .expect("tick");
    let deliverer = Deliverer::new(definitions, store.clone(), project.dir.path().join("out"))
        .with_secrets(|name| match name {
            "HUBSPOT_AUTHORIZATION" => Some("Bearer pat-na1-test".into()),
            "SALESFORCE_AUTHORIZATION" => Some("Bearer 00Dtest".into()),
            _ => None,
        });
    let report = deliverer.deliver_due(t0()).await.expect("deliver");
    assert_eq!(report.webhooks, 3, "{report:?}");

    let one = |sink: &WebhookSink| {
        let received = sink.received();
        assert_eq!(received.len(), 1, "{received:?}");
        received[0].clone()
    };
    let message = one(&slack);
    assert_eq!(
        message.body["text"],
        "Usage dropped at a1 Inc (utilization 23). <http://127.0.0.1:8080/accounts/a1|Open the account>"
    );
    let task = one(&hubspot);
    assert_eq!(task.authorization.as_deref(), Some("Bearer pat-na1-test"));
    let properties = &task.body["properties"];
    assert_eq!(properties["hs_task_subject"], "Usage dropped at a1 Inc");
    assert_eq!(properties["hs_task_status"], "NOT_STARTED");
    assert_eq!(properties["hubspot_owner_id"], "51234");
    assert_eq!(properties["hs_timestamp"], "2026-11-02T09:00:00Z");
    let task = one(&salesforce);
    assert_eq!(task.authorization.as_deref(), Some("Bearer 00Dtest"));
    assert_eq!(task.body["Subject"], "Usage dropped at a1 Inc");
    assert_eq!(task.body["Status"], "Not Started");
    assert_eq!(task.body["ActivityDate"], "2026-11-02");
    assert_eq!(task.body["WhatId"], "001Dn00000abcDE");
}
