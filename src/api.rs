//! The HTTP API of `touchline run`: upsert accounts and contacts (one or many), post events
//! and metric values, list, complete and reassign CSM tasks, keep the suppression list.
//! Bearer-token protected; bodies are size-limited; a bad request gets a 4xx with the
//! reason, and nothing of it is stored.
//!
//! `/unsubscribe` is the one public route: the one-click link every step email carries
//! (RFC 8058). Its signed token is its authorization.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::Html;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::delivery::unsubscribe::TokenError;
use crate::ingest::{self, Kind};
use crate::store::{Store, Suppression, TaskStatus};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub use crate::http_state::ApiState;
use crate::http_state::authorized;

/// The API's routes.
pub fn router<S: Store>(state: Arc<ApiState<S>>) -> Router {
    let protected = Router::new()
        .route("/v1/accounts", post(bulk::<S, AccountsKind>))
        .route("/v1/accounts/{id}", put(single::<S, AccountsKind>))
        .route("/v1/contacts", post(bulk::<S, ContactsKind>))
        .route("/v1/contacts/{id}", put(single::<S, ContactsKind>))
        .route("/v1/events", post(bulk::<S, EventsKind>))
        .route("/v1/metrics", post(bulk::<S, MetricsKind>))
        .route("/v1/tasks", get(list_tasks::<S>))
        .route("/v1/tasks/{id}/done", post(complete_task::<S>))
        .route("/v1/tasks/{id}/reassign", post(reassign_task::<S>))
        .route("/v1/tasks/{id}/snooze", post(snooze_task::<S>))
        .route("/v1/suppressions", get(list_suppressions::<S>))
        .route("/v1/holds", get(list_holds::<S>))
        .route("/report", get(report_page::<S>))
        .route("/metrics", get(metrics::<S>))
        .route(
            "/v1/suppressions/{email}",
            put(add_suppression::<S>).delete(remove_suppression::<S>),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_token::<S>,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/unsubscribe",
            get(unsubscribe_page::<S>).post(unsubscribe::<S>),
        )
        .merge(protected)
        .merge(crate::pages::router::<S>())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Which kind of record a route takes (a type, so one generic handler serves all).
trait RecordKind: Send + Sync + 'static {
    const KIND: Kind;
}

struct AccountsKind;
struct ContactsKind;
struct EventsKind;
struct MetricsKind;

impl RecordKind for AccountsKind {
    const KIND: Kind = Kind::Accounts;
}
impl RecordKind for ContactsKind {
    const KIND: Kind = Kind::Contacts;
}
impl RecordKind for EventsKind {
    const KIND: Kind = Kind::Events;
}
impl RecordKind for MetricsKind {
    const KIND: Kind = Kind::Metrics;
}

fn error(status: StatusCode, message: impl Into<String>, problems: Vec<String>) -> Response {
    let mut body = json!({ "error": message.into() });
    if !problems.is_empty() {
        body["problems"] = json!(problems);
    }
    (status, Json(body)).into_response()
}

/// The JSON objects in a body (one object, or an array of them), or why there are none.
fn objects(body: &Bytes) -> Result<Vec<Map<String, Value>>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(object) => vec![Value::Object(object)],
        _ => return Err("the body must be a JSON object or an array of objects".into()),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(object) => Ok(object),
            _ => Err(format!("item {i} is not a JSON object")),
        })
        .collect()
}

async fn store_objects<S: Store>(
    state: &ApiState<S>,
    kind: Kind,
    objects: Vec<Map<String, Value>>,
) -> Response {
    let parsed = ingest::parse_objects(kind, objects, state.clock.now());
    if !parsed.bad.is_empty() {
        let problems = parsed.bad.iter().map(ToString::to_string).collect();
        let message = format!(
            "{} of {} records are bad; nothing was stored",
            parsed.bad.len(),
            parsed.rows
        );
        return error(StatusCode::UNPROCESSABLE_ENTITY, message, problems);
    }
    match state.imports.import(parsed.import).await {
        Ok(outcome) => {
            state.wake.notify_one();
            Json(json!({ "received": parsed.rows, "changed": outcome.changed, "unchanged": outcome.unchanged })).into_response()
        }
        Err(e) => {
            tracing::error!("storing API records failed: {e}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; retry later",
                Vec::new(),
            )
        }
    }
}

async fn bulk<S: Store, K: RecordKind>(
    State(state): State<Arc<ApiState<S>>>,
    body: Bytes,
) -> Response {
    match objects(&body) {
        Ok(objects) => store_objects(&state, K::KIND, objects).await,
        Err(reason) => error(StatusCode::BAD_REQUEST, reason, Vec::new()),
    }
}

async fn single<S: Store, K: RecordKind>(
    State(state): State<Arc<ApiState<S>>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut objects = match objects(&body) {
        Ok(objects) if objects.len() == 1 => objects,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "send one JSON object to this address",
                Vec::new(),
            );
        }
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason, Vec::new()),
    };
    match objects[0].get("id") {
        Some(Value::String(given)) if *given != id => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body's id `{given}` does not match the address's `{id}`"),
                Vec::new(),
            );
        }
        _ => {
            objects[0].insert("id".into(), Value::String(id));
        }
    }
    store_objects(&state, K::KIND, objects).await
}

/// Lets a request through only with the right bearer token.
async fn require_token<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if authorized(request.headers(), &state.token) {
        next.run(request).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
            Vec::new(),
        )
    }
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!("API request failed: {e}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is unavailable; retry later",
        Vec::new(),
    )
}

impl<S: Store> ApiState<S> {
    fn now_ms(&self) -> i64 {
        crate::clock::to_millis(self.clock.now())
    }
}

/// Filters for `GET /v1/tasks`.
#[derive(Debug, serde::Deserialize)]
struct TaskFilter {
    csm: Option<String>,
    status: Option<String>,
}

async fn list_tasks<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Query(filter): Query<TaskFilter>,
) -> Response {
    let status = match filter.status.as_deref() {
        None => Some(TaskStatus::Open),
        Some("all") => None,
        Some(other) => match TaskStatus::parse(other) {
            Ok(status) => Some(status),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown status `{other}`; use open, done or all"),
                    Vec::new(),
                );
            }
        },
    };
    match crate::views::tasks::build(&state.store, &state.config, filter.csm.as_deref(), status)
        .await
    {
        Ok(tasks) => Json(tasks).into_response(),
        Err(e) => unavailable(e),
    }
}

/// Who changes tasks through the API, in a task's history.
const API_ACTOR: &str = "api";

/// A refused task change as an HTTP answer.
fn desk_error(e: crate::task_desk::DeskError) -> Response {
    use crate::task_desk::DeskError;
    let status = match &e {
        DeskError::NoSuchTask(_) => StatusCode::NOT_FOUND,
        DeskError::Closed(_) | DeskError::Full { .. } => StatusCode::CONFLICT,
        DeskError::UnknownCsm(_) | DeskError::PastSnooze => StatusCode::UNPROCESSABLE_ENTITY,
        DeskError::Store(e) => return unavailable(e),
    };
    error(status, e.to_string(), Vec::new())
}

/// An optional JSON body of `T` (an empty body is `T::default()`), or why it is bad.
fn optional_body<T: serde::de::DeserializeOwned + Default>(
    body: &Bytes,
    shape: &str,
) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("send {shape}: {e}"))
}

/// Body of `POST /v1/tasks/{id}/done`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DoneBody {
    note: Option<String>,
}

async fn complete_task<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let body: DoneBody = match optional_body(&body, "nothing, or {\"note\": \"...\"}") {
        Ok(body) => body,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason, Vec::new()),
    };
    let now = state.clock.now();
    match crate::task_desk::done(&state.store, id, body.note, API_ACTOR, now).await {
        Ok(done) => {
            Json(json!({ "id": id, "status": "done", "changed": done.changed })).into_response()
        }
        Err(e) => desk_error(e),
    }
}

/// Body of `POST /v1/tasks/{id}/snooze`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SnoozeBody {
    until: String,
}

async fn snooze_task<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let shape = "{\"until\": \"2026-12-07T09:00:00Z\"}";
    let body: SnoozeBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("send {shape}: {e}"),
                Vec::new(),
            );
        }
    };
    let until = match crate::clock::parse_time(&body.until) {
        Ok(until) => until,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e, Vec::new()),
    };
    let now = state.clock.now();
    match crate::task_desk::snooze(&state.store, id, until, API_ACTOR, now).await {
        Ok(done) => Json(json!({ "id": id, "snoozed_until": until, "changed": done.changed }))
            .into_response(),
        Err(e) => desk_error(e),
    }
}

/// Body of `POST /v1/tasks/{id}/reassign`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Reassign {
    csm: String,
}

async fn reassign_task<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let reassign: Reassign = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("send {{\"csm\": \"<id>\"}}: {e}"),
                Vec::new(),
            );
        }
    };
    let definitions = state.definitions();
    let now = state.clock.now();
    match crate::task_desk::reassign(
        &state.store,
        &definitions,
        id,
        &reassign.csm,
        API_ACTOR,
        now,
    )
    .await
    {
        Ok(done) => Json(json!({ "id": id, "assignee": reassign.csm, "changed": done.changed }))
            .into_response(),
        Err(e) => desk_error(e),
    }
}

/// Query of `GET /report`: the period and filters of `touchline report`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    journey: Option<String>,
    tier: Option<String>,
    goal: Option<String>,
}

/// `GET /report`: the report of `touchline report --format html`, for the last 30 days
/// unless `from` / `to` say otherwise.
async fn report_page<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let bad = |message: String| (StatusCode::BAD_REQUEST, message).into_response();
    let Ok(Query(query)) = query else {
        return bad("unknown query parameter; use from, to, journey, tier, goal".into());
    };
    let time = |text: &Option<String>| text.as_deref().map(crate::clock::parse_time).transpose();
    let (from, to) = match (time(&query.from), time(&query.to)) {
        (Ok(from), Ok(to)) => (from, to.unwrap_or_else(|| state.clock.now())),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    let from = from.unwrap_or(to - chrono::Duration::days(30));
    if from >= to {
        return bad("the period is empty: `from` must be before `to`".into());
    }
    let scope = crate::views::report::Scope {
        from,
        to,
        journey: query.journey,
        tier: query.tier,
        goal: query.goal,
        value_limit_days: crate::views::report::VALUE_LIMIT_DAYS,
    };
    let definitions = state.definitions();
    match crate::views::report::build(&state.store, &definitions, scope).await {
        Ok(view) => match crate::views::report::html(&view) {
            Ok(page) => Html(page).into_response(),
            Err(e) => unavailable(e),
        },
        Err(crate::views::report::ReportError::Filter(message)) => bad(message),
        Err(e) => unavailable(e),
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics<S: Store>(State(state): State<Arc<ApiState<S>>>) -> Response {
    let definitions = state.definitions();
    match crate::metrics::render(&state.metrics, &state.store, &definitions).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn list_holds<S: Store>(State(state): State<Arc<ApiState<S>>>) -> Response {
    match crate::views::holds::build(&state.store).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn list_suppressions<S: Store>(State(state): State<Arc<ApiState<S>>>) -> Response {
    match crate::views::suppressions::build(&state.store).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => unavailable(e),
    }
}

/// Body of `PUT /v1/suppressions/{email}` (optional).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionBody {
    reason: Option<String>,
    detail: Option<String>,
}

async fn add_suppression<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Path(email): Path<String>,
    body: Bytes,
) -> Response {
    let body: SuppressionBody = if body.is_empty() {
        SuppressionBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string(), Vec::new()),
        }
    };
    let reason = body.reason.unwrap_or_else(|| "manual".into());
    if let Err(problem) = crate::delivery::check_suppression_reason(&reason) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, problem, Vec::new());
    }
    if !email.contains('@') {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{email}` is not an email address"),
            Vec::new(),
        );
    }
    let suppression = Suppression {
        email: email.trim().to_lowercase(),
        reason,
        detail: body
            .detail
            .unwrap_or_else(|| "added through the API".into()),
        created_at: state.now_ms(),
    };
    match state.store.suppress(&suppression).await {
        Ok(added) => Json(json!({ "email": suppression.email, "added": added })).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn remove_suppression<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Path(email): Path<String>,
) -> Response {
    match state.store.unsuppress(&email).await {
        Ok(true) => {
            Json(json!({ "email": email.trim().to_lowercase(), "removed": true })).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("`{email}` is not suppressed"),
            Vec::new(),
        ),
        Err(e) => unavailable(e),
    }
}

/// `?token=` of the unsubscribe link.
#[derive(Debug, serde::Deserialize)]
struct UnsubscribeQuery {
    token: Option<String>,
}

fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head><body>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The address a link unsubscribes.
fn check_token<S: Store>(
    state: &ApiState<S>,
    query: &UnsubscribeQuery,
) -> Result<String, TokenError> {
    let token = query.token.as_deref().unwrap_or_default();
    state
        .unsubscribe
        .verify(token, state.clock.now().timestamp())
}

/// The page saying why a link does not work: 400 for a missing or mangled token, 403 for a
/// forged one, 410 for an expired one.
fn refused(e: TokenError) -> Response {
    let status = match e {
        TokenError::Malformed => StatusCode::BAD_REQUEST,
        TokenError::Forged => StatusCode::FORBIDDEN,
        TokenError::Expired => StatusCode::GONE,
    };
    page(status, &format!("<p>{e}.</p>"))
}

/// `GET /unsubscribe`: a confirmation button (a GET never unsubscribes: link scanners
/// follow links in mail).
async fn unsubscribe_page<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Query(query): Query<UnsubscribeQuery>,
) -> Response {
    match check_token(&state, &query) {
        Err(e) => refused(e),
        Ok(email) => page(
            StatusCode::OK,
            &format!(
                "<form method=\"post\"><p>Stop customer success emails to {}?</p>\
                 <button type=\"submit\">Unsubscribe</button></form>",
                escape(&email)
            ),
        ),
    }
}

/// `POST /unsubscribe`: the one-click unsubscribe (RFC 8058). Idempotent: a repeat answers
/// the same.
async fn unsubscribe<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    Query(query): Query<UnsubscribeQuery>,
) -> Response {
    let email = match check_token(&state, &query) {
        Err(e) => return refused(e),
        Ok(email) => email,
    };
    let suppression = Suppression {
        email: email.clone(),
        reason: "unsubscribed".into(),
        detail: "unsubscribe link".into(),
        created_at: state.now_ms(),
    };
    match state.store.suppress(&suppression).await {
        Ok(_) => page(
            StatusCode::OK,
            &format!("<p>{} is unsubscribed.</p>", escape(&email)),
        ),
        Err(e) => unavailable(e),
    }
}
