//! A local webhook receiver: keeps every webhook it receives as `<dir>/<webhook-id>.json`
//! (a repeat of the same id overwrites, as a deduplicating receiver would). `touchline demo`
//! points the project's endpoints at it, so the example runs without reaching the network.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use crate::definitions::Definitions;

/// Starts the receiver on a free loopback port.
pub async fn start(dir: PathBuf) -> std::io::Result<SocketAddr> {
    std::fs::create_dir_all(&dir)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/{endpoint}", axum::routing::post(receive))
        .with_state(dir);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(address)
}

async fn receive(
    State(dir): State<PathBuf>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = header("webhook-id");
    let name = super::email_file::safe_file_name(&format!("{endpoint}-{id}"));
    let record = serde_json::json!({
        "endpoint": endpoint,
        "webhook-id": id,
        "webhook-timestamp": header("webhook-timestamp"),
        "webhook-signature": header("webhook-signature"),
        "body": serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
    });
    let text = serde_json::to_string_pretty(&record).unwrap_or_default();
    match std::fs::write(dir.join(format!("{name}.json")), text) {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The definitions with every webhook endpoint pointed at the receiver at `address`.
pub fn redirect_endpoints(definitions: &Definitions, address: SocketAddr) -> Definitions {
    let mut local = definitions.clone();
    for (name, endpoint) in &mut local.config.webhooks {
        endpoint.url = format!("http://{address}/{name}");
        endpoint.allow_private = true;
    }
    local
}
