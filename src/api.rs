//! The HTTP API of `touchline run`: upsert accounts and contacts (one or many), post events
//! and metric values. Bearer-token protected; bodies are size-limited; a bad request gets a
//! 4xx with the reason, and nothing of it is stored.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::ingest::{self, Kind};
use crate::store::Store;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState<S: Store> {
    /// Where data goes.
    pub store: S,
    /// The bearer token clients must send.
    pub token: String,
    /// Woken after every write, so the engine runs a pass soon.
    pub wake: Arc<Notify>,
}

/// The API's routes.
pub fn router<S: Store>(state: Arc<ApiState<S>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/accounts", post(bulk::<S, AccountsKind>))
        .route("/v1/accounts/{id}", put(single::<S, AccountsKind>))
        .route("/v1/contacts", post(bulk::<S, ContactsKind>))
        .route("/v1/contacts/{id}", put(single::<S, ContactsKind>))
        .route("/v1/events", post(bulk::<S, EventsKind>))
        .route("/v1/metrics", post(bulk::<S, MetricsKind>))
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

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ") else {
        return false;
    };
    // Compare without an early exit, so timing does not reveal the token.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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
    let parsed = ingest::parse_objects(kind, objects);
    if !parsed.bad.is_empty() {
        let problems = parsed.bad.iter().map(ToString::to_string).collect();
        let message = format!(
            "{} of {} records are bad; nothing was stored",
            parsed.bad.len(),
            parsed.rows
        );
        return error(StatusCode::UNPROCESSABLE_ENTITY, message, problems);
    }
    match state.store.import(&parsed.import).await {
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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers, &state.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
            Vec::new(),
        );
    }
    match objects(&body) {
        Ok(objects) => store_objects(&state, K::KIND, objects).await,
        Err(reason) => error(StatusCode::BAD_REQUEST, reason, Vec::new()),
    }
}

async fn single<S: Store, K: RecordKind>(
    State(state): State<Arc<ApiState<S>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers, &state.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
            Vec::new(),
        );
    }
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
