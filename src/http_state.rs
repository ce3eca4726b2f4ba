//! What the HTTP handlers of `touchline run` share: the API's and the pages'.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use tokio::sync::Notify;

use crate::delivery::unsubscribe::UnsubscribeKey;
use crate::store::Store;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState<S: Store> {
    /// Where data goes.
    pub store: S,
    /// Writes the API's records, many requests per transaction.
    pub imports: crate::store::group_commit::ImportQueue,
    /// The bearer token clients must send (`None`: only `/unsubscribe` and `/healthz` work).
    pub token: Option<String>,
    /// Woken after every write, so the engine runs a pass soon.
    pub wake: Arc<Notify>,
    /// Signs and checks sign-in links, sessions, form tokens and page messages.
    pub pages: crate::delivery::signin::PageKeys,
    /// Checks unsubscribe tokens.
    pub unsubscribe: UnsubscribeKey,
    /// The settings: the CSMs tasks can be reassigned to, and their names.
    pub config: Arc<crate::definitions::Config>,
    /// Where "now" comes from (times stored, link expiry).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// The definitions now running (replaced when they are reloaded), for `/report`.
    pub definitions: Arc<std::sync::RwLock<Arc<crate::definitions::Definitions>>>,
    /// What the service counted, for `/metrics`.
    pub metrics: Arc<crate::metrics::ServiceMetrics>,
}

/// Whether the request carries the API's bearer token.
pub fn authorized(headers: &HeaderMap, token: &Option<String>) -> bool {
    let Some(token) = token.as_deref() else {
        return false;
    };
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

impl<S: Store> ApiState<S> {
    /// The definitions now running.
    pub fn definitions(&self) -> Arc<crate::definitions::Definitions> {
        // A writer panicking mid-swap leaves the previous Arc whole.
        self.definitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
