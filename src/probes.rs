//! Liveness and readiness probes of a stage, and its Prometheus metrics,
//! served over HTTP.
//!
//! `/healthz` answers from the async side, so it keeps answering while every
//! inference slot is busy; `/readyz` answers 200 only when the stage's models
//! are warmed (where it has any), NATS is connected and the object store
//! answers, and 503 with the failing checks otherwise.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pagefleet_stagekit::store::Store;

/// What `/readyz` checks.
#[derive(Clone)]
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
            pagefleet_stagekit::health::connection_failures(&self.client, self.store.as_ref())
                .await,
        );
        failures
    }
}

/// This process's Prometheus recorder: installed by the first launch, shared
/// by every later one (a process has one recorder; tests launch many times).
/// Latencies are histograms with buckets from 5 ms to 10 minutes.
pub fn metrics() -> anyhow::Result<PrometheusHandle> {
    const BUCKETS: &[f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        600.0,
    ];
    static RECORDER: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut recorder = RECORDER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = recorder.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .context("metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    *recorder = Some(handle.clone());
    Ok(handle)
}

/// The metrics, with `pagefleet_ready{stage}` (1 or 0) checked at the
/// scrape, as `/readyz` would answer it now: a stage that stops being ready
/// shows in the next scrape, without a probe of its own.
async fn metrics_text(State(state): State<Arc<ProbeState>>) -> String {
    let ready = tokio::time::timeout(READY_CHECK_LIMIT, state.readiness.failures())
        .await
        .is_ok_and(|failures| failures.is_empty());
    metrics::gauge!("pagefleet_ready", "stage" => state.stage.clone()).set(if ready {
        1.0
    } else {
        0.0
    });
    state.metrics.render()
}

/// How long a scrape waits for the readiness checks; longer counts as not
/// ready.
const READY_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

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
    stage: String,
    readiness: Readiness,
    metrics: PrometheusHandle,
}

/// `/metrics` alone, for a server that answers its own probes (serve's HTTP
/// API).
pub fn metrics_router(stage: &str, readiness: Readiness, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(probe_state(stage, readiness, metrics))
}

fn probe_state(stage: &str, readiness: Readiness, metrics: PrometheusHandle) -> Arc<ProbeState> {
    Arc::new(ProbeState {
        stage: stage.strip_prefix("pagefleet-").unwrap_or(stage).to_owned(),
        readiness,
        metrics,
    })
}

/// Serves the probes and `/metrics` of `stage` on `addr` until the process
/// ends.
pub async fn serve(
    addr: SocketAddr,
    stage: &str,
    readiness: Readiness,
    metrics: PrometheusHandle,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(probe_state(stage, readiness, metrics));
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
