//! Liveness and readiness probes of a stage, and its Prometheus metrics,
//! served over HTTP.
//!
//! `/healthz` answers from the async side, so it keeps answering while every
//! inference slot is busy; `/readyz` answers 200 only when the stage's models
//! are warmed (where it has any), NATS is connected and the object store
//! answers, and 503 with the failing checks otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pagefleet_schemas::store::Store;

/// What `/readyz` checks.
pub struct Readiness {
    /// Models warmed (true from the start for stages without models).
    pub warm: Arc<AtomicBool>,
    /// The stage's NATS connection.
    pub client: async_nats::Client,
    /// The stage's object store.
    pub store: Store,
}

impl Readiness {
    async fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if !self.warm.load(Ordering::SeqCst) {
            failures.push("models: not warmed up yet".to_owned());
        }
        failures.extend(
            pagefleet_schemas::health::connection_failures(&self.client, self.store.as_ref()).await,
        );
        failures
    }
}

/// Installs the Prometheus recorder for this process's metrics. Latencies
/// are histograms with buckets from 5 ms to 10 minutes.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    const BUCKETS: &[f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        600.0,
    ];
    PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .context("metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")
}

async fn metrics_text(State(state): State<Arc<ProbeState>>) -> String {
    state.metrics.render()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<ProbeState>>) -> (StatusCode, String) {
    let failures = state.readiness.failures().await;
    if failures.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, failures.join("\n") + "\n")
    }
}

struct ProbeState {
    readiness: Readiness,
    metrics: PrometheusHandle,
}

/// Serves the probes and `/metrics` on `addr` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    metrics: PrometheusHandle,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Arc::new(ProbeState { readiness, metrics }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for probes on {addr}"))?;
    tracing::info!(%addr, "probes on /healthz and /readyz, metrics on /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("probe server stopped: {e}");
        }
    });
    Ok(())
}
