//! The whole pipeline in one process: a private nats-server (unless one is
//! named), the store, and the rasterizer, OCR worker and aggregator stages
//! on tasks, with ingest added on request. `pagefleet run`, `pagefleet
//! serve` and the tests that need no process boundary start it this one way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use object_store::local::LocalFileSystem;
use pagefleet_ocr_worker::{ModelSet, PoolConfig, Profile};
use pagefleet_schemas::running::Running;
use pagefleet_schemas::store::Store;
use pagefleet_schemas::topology::TopologyConfig;
use tracing::{info, warn};

use crate::home::Home;
use crate::nats_server::NatsServer;

/// What the in-process pipeline runs, each stage's settings with their
/// defaults.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The NATS server to use; `None` starts a private nats-server storing
    /// under `data/nats`.
    pub nats: Option<String>,
    /// Folder of the private nats-server's store and of the default store.
    pub data: PathBuf,
    /// Object storage; `None`: the folder `data/objects`.
    pub store: Option<Store>,
    /// Streams and consumer settings, the same for every stage.
    pub topology: TopologyConfig,
    /// The rasterizer's settings (its topology is [`LocalConfig::topology`]).
    pub rasterizer: pagefleet_rasterizer::stage::StageConfig,
    /// The OCR worker's settings (likewise).
    pub worker: pagefleet_ocr_worker::stage::StageConfig,
    /// The OCR worker's models and slots.
    pub pool: PoolConfig,
    /// The aggregator's settings (likewise).
    pub aggregator: pagefleet_aggregator::stage::StageConfig,
}

impl LocalConfig {
    /// The defaults, with the runtime, the fast models and the data folder of
    /// `home`.
    pub fn new(home: &Home) -> Self {
        Self {
            nats: None,
            data: home.data(),
            store: None,
            topology: TopologyConfig::default(),
            rasterizer: pagefleet_rasterizer::stage::StageConfig::default(),
            worker: pagefleet_ocr_worker::stage::StageConfig::default(),
            pool: PoolConfig::new(
                home.onnxruntime(),
                ModelSet::profile(&home.models(), Profile::Fast),
            ),
            aggregator: pagefleet_aggregator::stage::StageConfig::default(),
        }
    }
}

/// The running pipeline; [`Local::stop`] stops it.
pub struct Local {
    server: Option<NatsServer>,
    /// The NATS connection the stages share.
    pub client: async_nats::Client,
    /// JetStream over it.
    pub js: async_nats::jetstream::Context,
    /// The store.
    pub store: Store,
    /// The NATS URL.
    pub url: String,
    /// Streams and consumer settings.
    pub topology: TopologyConfig,
    /// Set once the OCR worker's warm-up inference succeeded.
    pub worker_ready: Arc<AtomicBool>,
    stages: Vec<Running>,
}

impl Local {
    /// Starts the pipeline; returns once the models are loaded and every
    /// stage is started.
    pub async fn start(home: &Home, config: LocalConfig) -> anyhow::Result<Self> {
        let mut needed = vec![home.pdfium()];
        if config.nats.is_none() {
            needed.push(home.nats_server());
        }
        needed.extend(config.pool.files().into_iter().map(Path::to_owned));
        home.require(needed.iter().map(PathBuf::as_path))?;
        let server = match &config.nats {
            Some(_) => None,
            None => {
                let server =
                    NatsServer::start(&home.nats_server(), &config.data.join("nats")).await?;
                info!(url = server.url(), "nats-server started");
                Some(server)
            }
        };
        let url = config
            .nats
            .clone()
            .or_else(|| server.as_ref().map(|s| s.url().to_owned()))
            .unwrap_or_default();
        let client = async_nats::ConnectOptions::new()
            .name("pagefleet-local")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url.as_str())
            .await
            .with_context(|| format!("cannot connect to NATS at {url}"))?;
        let js = async_nats::jetstream::new(client.clone());
        pagefleet_schemas::topology::ensure(&js, &config.topology)
            .await
            .context("setting up JetStream")?;
        let store = match config.store {
            Some(store) => store,
            None => folder_store(&config.data.join("objects"))?,
        };
        let worker_ready = Arc::new(AtomicBool::new(false));
        let mut local = Self {
            server,
            client,
            js,
            store,
            url,
            topology: config.topology.clone(),
            worker_ready: Arc::clone(&worker_ready),
            stages: Vec::new(),
        };
        let rasterizer = pagefleet_rasterizer::stage::StageConfig {
            topology: config.topology.clone(),
            ..config.rasterizer
        };
        local.stages.push(pagefleet_rasterizer::stage::start(
            rasterizer,
            pagefleet_rasterizer::stage::Deps {
                js: local.js.clone(),
                store: local.store.clone(),
                pdfium: home.pdfium(),
            },
        ));
        let worker = pagefleet_ocr_worker::stage::StageConfig {
            topology: config.topology.clone(),
            ..config.worker
        };
        let started = pagefleet_ocr_worker::stage::start(
            worker,
            &config.pool,
            local.js.clone(),
            local.store.clone(),
            worker_ready,
        )
        .await;
        match started {
            Ok(stage) => local.stages.push(stage),
            Err(e) => {
                local.stop().await;
                return Err(e.into());
            }
        }
        let aggregator = pagefleet_aggregator::stage::StageConfig {
            topology: config.topology,
            ..config.aggregator
        };
        local.stages.push(pagefleet_aggregator::stage::start(
            aggregator,
            pagefleet_aggregator::stage::Deps {
                js: local.js.clone(),
                store: local.store.clone(),
                pdfium: home.pdfium(),
            },
        ));
        Ok(local)
    }

    /// Adds the ingest stage (HTTP API on `listener`, when given; NATS
    /// submission; bucket triggers) on the pipeline's connection and store.
    pub fn start_ingest(
        &mut self,
        config: pagefleet_ingest::stage::StageConfig,
        listener: Option<tokio::net::TcpListener>,
    ) {
        let config = pagefleet_ingest::stage::StageConfig {
            topology: self.topology.clone(),
            ..config
        };
        self.stages.push(pagefleet_ingest::stage::start(
            config,
            pagefleet_ingest::stage::Deps {
                client: self.client.clone(),
                store: self.store.clone(),
                listener,
            },
        ));
    }

    /// Completes when a stage ends on its own, which is a failure: with its
    /// error.
    pub async fn failed(&mut self) -> anyhow::Error {
        if self.stages.is_empty() {
            return std::future::pending().await;
        }
        let ended =
            futures::future::select_all(self.stages.iter_mut().map(|s| Box::pin(s.ended())));
        match ended.await.0 {
            Ok(()) => anyhow::anyhow!("a stage stopped by itself"),
            Err(e) => anyhow::anyhow!("{e}"),
        }
    }

    /// Stops every stage (each finishes the work in hand), then the
    /// connection, then the nats-server.
    pub async fn stop(self) {
        // Ingest first, then along the pipeline, the aggregator last: the
        // pages the worker finishes at its stop are still recorded.
        let (ingest, stages): (Vec<_>, Vec<_>) =
            self.stages.into_iter().partition(|s| s.what() == "ingest");
        for stage in ingest.into_iter().chain(stages) {
            if let Err(e) = stage.stop().await {
                warn!("stage ended with an error: {e}");
            }
        }
        // Close the connection before the server goes, rather than have the
        // client report the server's disappearance as an error.
        drop(self.js);
        let _ = self.client.drain().await;
        if let Some(server) = self.server {
            server.stop().await;
        }
    }
}

/// A store in a local folder, created if missing.
pub fn folder_store(dir: &Path) -> anyhow::Result<Store> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create store folder {}", dir.display()))?;
    let fs = LocalFileSystem::new_with_prefix(dir)
        .with_context(|| format!("cannot open store folder {}", dir.display()))?;
    Ok(Arc::new(fs))
}
