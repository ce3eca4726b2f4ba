//! `touchline run`: the engine as a service. Runs passes continuously (at least every
//! `interval`, and soon after data arrives), serves the HTTP API, reloads the definitions
//! when their files change (a broken edit is logged and the previous version keeps
//! running), and stops cleanly when asked.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, oneshot};

use crate::api::{self, ApiState};
use crate::clock::Clock;
use crate::definitions::{self, Definitions};
use crate::delivery::Deliverer;
use crate::diagnostic;
use crate::engine::Engine;
use crate::store::Store;

/// How `run` behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The project's `touchline.yaml`.
    pub config_path: PathBuf,
    /// Longest time between passes.
    pub interval: Duration,
    /// Address for the HTTP API (`None`: the one in `touchline.yaml`).
    pub listen: Option<String>,
    /// The API token (`None`: read from the environment variable the settings name).
    pub token: Option<String>,
}

/// Files whose change means the definitions must be reloaded — every file they were read
/// from, and the files in the folders they were listed from — with sizes and modification
/// times.
fn stamp(watched: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files: Vec<PathBuf> = Vec::new();
    for path in watched {
        match std::fs::read_dir(path) {
            Ok(entries) => files.extend(entries.filter_map(|e| e.ok().map(|e| e.path()))),
            Err(_) => files.push(path.clone()),
        }
    }
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let (size, modified) = meta.map_or((0, None), |m| (m.len(), m.modified().ok()));
            (path, size, modified)
        })
        .collect()
}

fn reload(config_path: &Path) -> Result<Definitions, String> {
    let loaded = definitions::load(config_path, Path::new(""));
    match loaded.definitions {
        Some(definitions) => Ok(definitions),
        None => Err(diagnostic::render_all(&loaded.diagnostics, &loaded.sources)),
    }
}

/// Delivers whatever is due, each time a pass has queued something (`now`), at least every
/// `interval` (retries and held mail come due by the clock), until `stop`. The deliverer is
/// the one for the definitions currently loaded.
async fn deliver_continuously<S: Store>(
    deliverer: tokio::sync::watch::Receiver<Arc<Deliverer<S>>>,
    clock: Arc<dyn Clock>,
    now: Arc<Notify>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut caught_up = false;
    loop {
        let at = clock.now();
        let current = deliverer.borrow().clone();
        match current.deliver_due(at).await {
            Ok(report) if !report.is_idle() => tracing::info!("{}", report.describe()),
            Ok(_) => {}
            Err(e) => tracing::error!("delivery at {at} failed: {e}"),
        }
        if !caught_up {
            caught_up = true;
            tracing::info!("caught up: the first pass and its deliveries are done");
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(interval) => {}
            _ = now.notified() => {}
        }
    }
}

/// Runs until `shutdown` completes. `ready` receives the API's address once it listens.
pub async fn run<S: Store>(
    definitions: Arc<Definitions>,
    store: S,
    clock: Arc<dyn Clock>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), String> {
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let http = &definitions.config.http;
    let token_env = http
        .token_env
        .clone()
        .unwrap_or_else(|| "TOUCHLINE_API_TOKEN".into());
    let token = options
        .token
        .clone()
        .or_else(|| std::env::var(&token_env).ok())
        .filter(|t| !t.is_empty());
    if token.is_none() {
        tracing::warn!(
            "HTTP API data routes off (only unsubscribe links work): set {token_env} to the bearer token clients must send"
        );
    }
    let metrics = Arc::new(crate::metrics::ServiceMetrics::default());
    let shared_definitions = Arc::new(std::sync::RwLock::new(definitions.clone()));
    // The server always runs: the unsubscribe links in sent mail must keep working.
    let server = {
        let listen = options
            .listen
            .clone()
            .or_else(|| http.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!("HTTP API listening on http://{address}");
        if let Some(ready) = ready {
            let _ = ready.send(address);
        }
        let unsubscribe =
            crate::delivery::unsubscribe::UnsubscribeKey::load(&definitions.config, &store)
                .await
                .map_err(|e| e.to_string())?;
        let state = Arc::new(ApiState {
            store: store.clone(),
            imports: crate::store::group_commit::ImportQueue::start(store.clone()),
            token,
            wake: wake.clone(),
            pages: crate::delivery::signin::PageKeys::new(&unsubscribe),
            unsubscribe,
            config: Arc::new(definitions.config.clone()),
            clock: clock.clone(),
            definitions: shared_definitions.clone(),
            metrics: metrics.clone(),
        });
        let mut stop = stop_rx.clone();
        let serve = axum::serve(listener, api::router(state)).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        tokio::spawn(async move { serve.await })
    };

    let mut watched = definitions.watched.clone();
    let mut files = stamp(&watched);
    let outbox_dir = crate::delivery::outbox_dir(&definitions);
    let mut engine = Engine::new(definitions.clone(), store.clone());
    let (deliverers, current_deliverer) = tokio::sync::watch::channel(Arc::new(Deliverer::new(
        definitions,
        store.clone(),
        outbox_dir,
    )));
    let deliver_now = Arc::new(Notify::new());
    let mut deliveries = None;
    let mut stop = stop_rx.clone();
    loop {
        let now = clock.now();
        let started = std::time::Instant::now();
        let pass = engine.tick(now).await;
        if let Ok(report) = &pass {
            metrics.record_pass(report, started.elapsed());
        }
        match pass {
            Ok(report) if !report.is_idle() => {
                tracing::info!("{}", report.describe(now))
            }
            Ok(_) => tracing::debug!("pass at {now}: nothing to do"),
            Err(e) => tracing::error!("pass at {now} failed: {e}"),
        }
        // Deliveries run beside the passes: what this pass queued goes out while the next
        // pass already handles newer data.
        deliver_now.notify_one();
        if deliveries.is_none() {
            deliveries = Some(tokio::spawn(deliver_continuously(
                current_deliverer.clone(),
                clock.clone(),
                deliver_now.clone(),
                options.interval,
                stop_rx.clone(),
            )));
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(options.interval) => {}
            _ = wake.notified() => {}
        }
        let current = stamp(&watched);
        if current != files {
            files = current;
            match reload(&options.config_path) {
                Ok(definitions) => {
                    // A new script or template folder is watched from now on.
                    watched = definitions.watched.clone();
                    files = stamp(&watched);
                    tracing::info!(
                        "definitions changed: reloaded {}",
                        crate::text::count(
                            definitions.journeys.len() as u64,
                            "journey",
                            "journeys"
                        )
                    );
                    let definitions = Arc::new(definitions);
                    if let Ok(mut shared) = shared_definitions.write() {
                        *shared = definitions.clone();
                    }
                    let outbox_dir = crate::delivery::outbox_dir(&definitions);
                    engine = Engine::new(definitions.clone(), store.clone());
                    let _ = deliverers.send(Arc::new(Deliverer::new(
                        definitions,
                        store.clone(),
                        outbox_dir,
                    )));
                }
                Err(problems) => tracing::error!(
                    "definitions changed but do not validate; the previous version keeps running:\n{problems}"
                ),
            }
        }
    }
    if let Some(deliveries) = deliveries {
        let _ = deliveries.await;
    }
    tracing::info!("stopping");
    let _ = server.await;
    Ok(())
}
