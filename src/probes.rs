//! Liveness and readiness probes of a stage, served over HTTP.
//!
//! `/healthz` answers from the async side, so it keeps answering while every
//! inference slot is busy; `/readyz` answers 200 only when the stage's models
//! are warmed (where it has any), NATS is connected and the object store
//! answers, and 503 with the failing checks otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use object_store::GetOptions;
use pagefleet_schemas::store::Store;

/// What `/readyz` checks.
pub(crate) struct Readiness {
    /// Models warmed (true from the start for stages without models).
    pub(crate) warm: Arc<AtomicBool>,
    /// The stage's NATS connection.
    pub(crate) client: async_nats::Client,
    /// The stage's object store.
    pub(crate) store: Store,
}

impl Readiness {
    async fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if !self.warm.load(Ordering::SeqCst) {
            failures.push("models: not warmed up yet".to_owned());
        }
        let state = self.client.connection_state();
        if state != async_nats::connection::State::Connected {
            failures.push(format!("nats: {state}"));
        }
        // Any answer from the store, "not found" included, shows it is reachable.
        let probe = object_store::path::Path::from("pagefleet/readiness-probe");
        let head = GetOptions::new().with_head(true);
        match tokio::time::timeout(Duration::from_secs(2), self.store.get_opts(&probe, head)).await
        {
            Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => {}
            Ok(Err(e)) => failures.push(format!("object store: {e}")),
            Err(_) => failures.push("object store: no answer within 2 s".to_owned()),
        }
        failures
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> (StatusCode, String) {
    let failures = readiness.failures().await;
    if failures.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, failures.join("\n") + "\n")
    }
}

/// Serves the probes on `addr` until the process ends.
pub(crate) async fn serve(addr: SocketAddr, readiness: Readiness) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(readiness));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for probes on {addr}"))?;
    tracing::info!(%addr, "probes on /healthz and /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("probe server stopped: {e}");
        }
    });
    Ok(())
}
