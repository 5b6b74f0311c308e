//! The ingest stage: the HTTP API, the NATS service, the bucket event
//! consumer and (optionally) the prefix watcher, side by side until shutdown.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use pagefleet_stagekit::running::Running;
use pagefleet_stagekit::store::Store;
use pagefleet_stagekit::topology::{self, TopologyConfig};
use tracing::{info, warn};

use crate::bucket;
use crate::http::{self, ApiConfig};
use crate::intake::{Intake, JobDefaults, Limits};
use crate::service;

/// How long open HTTP connections may keep a stopping ingest stage up.
pub const HTTP_DRAIN: Duration = Duration::from_secs(2);

/// Settings of the ingest stage.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// Streams and consumer settings.
    pub topology: TopologyConfig,
    /// What is accepted.
    pub limits: Limits,
    /// Job defaults.
    pub defaults: JobDefaults,
    /// The HTTP API's settings.
    pub api: ApiConfig,
    /// Bucket triggers: consume the bucket event stream (and take webhooks).
    pub bucket_events: bool,
    /// Poll the input prefix this often (a watcher for stores without
    /// notifications); `None` for no watcher.
    pub watch_interval: Option<Duration>,
    /// How long an ended job is kept; zero keeps everything.
    pub retention: Duration,
}

impl Default for StageConfig {
    fn default() -> Self {
        Self {
            topology: TopologyConfig::default(),
            limits: Limits::default(),
            defaults: JobDefaults::default(),
            api: ApiConfig::default(),
            bucket_events: true,
            watch_interval: None,
            retention: crate::retention::DEFAULT_RETENTION,
        }
    }
}

/// Starts the stage on its own task; [`Running::stop`] stops it.
pub fn start(config: StageConfig, deps: Deps) -> Running {
    Running::spawn("ingest", |stop| run(config, deps, stop))
}

/// What the stage works with.
pub struct Deps {
    /// The NATS connection.
    pub client: async_nats::Client,
    /// Object storage.
    pub store: Store,
    /// Where the HTTP API listens (bound by the caller, so tests can use
    /// port 0); `None` for no HTTP API.
    pub listener: Option<tokio::net::TcpListener>,
    /// More routes on the HTTP API, answered without its token (serve's
    /// `/metrics`).
    pub routes: Option<axum::Router>,
}

/// Errors that stop the stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The topology could not be set up.
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    /// The HTTP API stopped serving.
    #[error("ingest: HTTP API: {0}")]
    Http(#[source] std::io::Error),
    /// The NATS service failed.
    #[error("ingest: {0}")]
    Service(#[from] crate::service::ServiceError),
    /// Jobs waiting for a worker can no longer be followed.
    #[error("ingest: {0}")]
    Waiting(#[from] crate::waiting::WaitingError),
    /// The bucket event consumer could not be set up.
    #[error("ingest: bucket events: {0}")]
    BucketEvents(#[from] pagefleet_stagekit::queue::DriverError),
    /// A part of the stage panicked.
    #[error("ingest: a part of the stage panicked: {0}")]
    Panicked(#[from] tokio::task::JoinError),
}

/// Runs the stage until `shutdown` completes.
pub async fn run(
    config: StageConfig,
    deps: Deps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StageError> {
    let js = async_nats::jetstream::new(deps.client.clone());
    topology::ensure(&js, &config.topology).await?;
    let intake = Intake {
        js: js.clone(),
        store: deps.store.clone(),
        limits: config.limits.clone(),
        defaults: config.defaults.clone(),
    };
    let shutdown = shutdown.boxed().shared();
    let mut parts = tokio::task::JoinSet::new();
    if let Some(listener) = deps.listener {
        let mut router = http::router(intake.clone(), deps.client.clone(), config.api.clone());
        if let Some(routes) = deps.routes {
            router = router.merge(routes);
        }
        let stop = shutdown.clone();
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "HTTP API listening");
        }
        parts.spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(stop.clone());
            // Requests in progress get a moment to finish; connections that
            // stay open (event streams, idle clients) do not hold the stop.
            let drained = async {
                stop.await;
                tokio::time::sleep(HTTP_DRAIN).await;
            };
            tokio::select! {
                served = serve => served.map_err(StageError::Http),
                () = drained => {
                    info!("HTTP connections still open after {HTTP_DRAIN:?} are closed");
                    Ok(())
                }
            }
        });
    }
    {
        let client = deps.client.clone();
        let intake = intake.clone();
        let bucket = config.api.bucket.clone();
        let stop = shutdown.clone();
        parts.spawn(async move { Ok(service::serve(client, intake, bucket, stop).await?) });
    }
    {
        let intake = intake.clone();
        let client = deps.client.clone();
        let stop = shutdown.clone();
        parts.spawn(async move { Ok(crate::waiting::watch(intake, client, stop).await?) });
    }
    if let (true, Some(bucket_config)) = (config.bucket_events, config.api.bucket.clone()) {
        let intake = intake.clone();
        let topology = config.topology.clone();
        let stop = shutdown.clone();
        parts.spawn(async move {
            Ok(bucket::consume_events(intake, bucket_config, topology, stop).await?)
        });
    }
    if let (Some(interval), Some(bucket_config)) =
        (config.watch_interval, config.api.bucket.clone())
    {
        let intake = intake.clone();
        let store = deps.store.clone();
        let stop = shutdown.clone();
        parts.spawn(async move {
            bucket::watch(intake, bucket_config, store, interval, stop).await;
            Ok(())
        });
    }
    {
        let (js, store) = (js.clone(), deps.store.clone());
        let holder = format!("ingest-{}", std::process::id());
        let (keep, stop) = (config.retention, shutdown.clone());
        parts.spawn(async move {
            crate::retention::sweep_forever(js, store, keep, holder, stop).await;
            Ok(())
        });
    }
    info!("ingest ready");
    let mut failure = None;
    while let Some(joined) = parts.join_next().await {
        let outcome = joined.map_err(StageError::from).and_then(|r| r);
        if let Err(e) = outcome {
            warn!("{e}");
            failure.get_or_insert(e);
            // One part failing stops the stage: a half-working ingest would
            // look healthy while losing a way in.
            parts.abort_all();
        }
    }
    info!("ingest stopped");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
