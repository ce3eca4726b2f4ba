//! A webhook receiver for tests: a real HTTP listener on loopback that checks every request's
//! Standard Webhooks signature with the `standardwebhooks` crate (not touchline's signing
//! code), answers from a script, and keeps what it received.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// The JSON body.
    pub body: serde_json::Value,
    /// Whether the signature verified against the sink's secret.
    pub verified: bool,
    /// The status the sink answered.
    pub status: u16,
    /// The `authorization` header, if any.
    pub authorization: Option<String>,
}

/// A scripted answer: status and extra headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<Reply>,
}

/// The running sink.
#[derive(Clone)]
pub struct WebhookSink {
    pub url: String,
    secret: String,
    inner: Arc<Mutex<Inner>>,
}

impl WebhookSink {
    /// Starts a sink that verifies with `secret` (`whsec_…`) and answers `script` in
    /// order, then 200.
    pub async fn start(secret: &str, script: Vec<Reply>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let sink = Self {
            url,
            secret: secret.to_string(),
            inner: Arc::new(Mutex::new(Inner {
                received: Vec::new(),
                script: script.into(),
            })),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(sink.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sink
    }

    /// A sink standing in for a third-party API (Slack, a CRM), which checks no webhook
    /// signature: it answers 200 to every request and keeps it.
    pub async fn start_unsigned() -> Self {
        Self::start("", vec![]).await
    }

    /// Every request, in order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("sink").received.clone()
    }

    /// The distinct `webhook-id`s accepted with a 2xx and a valid signature.
    pub fn accepted_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .received()
            .into_iter()
            .filter(|r| r.verified && (200..300).contains(&r.status))
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

async fn receive(State(sink): State<WebhookSink>, headers: HeaderMap, body: Bytes) -> Response {
    let verified = standardwebhooks::Webhook::new(&sink.secret)
        .map(|hook| hook.verify(&body, &headers).is_ok())
        .unwrap_or(false);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut inner = sink.inner.lock().expect("sink");
    let reply = if verified || sink.secret.is_empty() {
        inner.script.pop_front().unwrap_or(Reply::status(200))
    } else {
        Reply::status(401)
    };
    inner.received.push(Received {
        id,
        body: serde_json::from_slice(&body).unwrap_or_default(),
        verified,
        status: reply.status,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let mut response = StatusCode::from_u16(reply.status)
        .expect("status")
        .into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}
