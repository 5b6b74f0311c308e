//! The one way stages are started. A [`Launch`] names the stages to run,
//! each with its own settings, and what they share: NATS (a server list with
//! its authentication, or a private nats-server), the store, the topology
//! and the probe address. [`Launch::start`] connects, sets up the topology (once, for several stages),
//! serves probes and metrics, and starts the stages on tasks of this
//! process. The stage commands start one stage this way; `serve` all four;
//! `run` and the tests all but ingest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use object_store::local::LocalFileSystem;
use pagefleet_ocr_worker::{ModelSet, PoolConfig, Profile};
use pagefleet_stagekit::running::Running;
use pagefleet_stagekit::store::Store;
use pagefleet_stagekit::topology::TopologyConfig;
use tracing::{info, warn};

use crate::connect;
use crate::home::Home;
use crate::nats_server::NatsServer;
use crate::probes;
use crate::settings::NatsArgs;

/// The OCR worker stage: its settings and its models and slots.
#[derive(Debug, Clone)]
pub struct WorkerLaunch {
    /// The stage's settings (its topology is [`Launch::topology`]).
    pub config: pagefleet_ocr_worker::stage::StageConfig,
    /// The models and inference slots.
    pub pool: PoolConfig,
}

/// The ingest stage: its settings and where its HTTP API listens.
#[derive(Debug)]
pub struct IngestLaunch {
    /// The stage's settings (its topology is [`Launch::topology`]).
    pub config: pagefleet_ingest::stage::StageConfig,
    /// The HTTP API's socket, bound by the caller so that a taken port fails
    /// before anything starts; `None` for no HTTP API.
    pub listener: Option<tokio::net::TcpListener>,
    /// Serve `/metrics` on the HTTP API too (serve has no other port).
    pub metrics: bool,
}

/// What to start, and what the stages share.
#[derive(Debug)]
pub struct Launch {
    /// The name of the NATS connection and of the process in probes
    /// (`pagefleet-serve`, `pagefleet-ocr-worker`, ...).
    pub name: String,
    /// NATS servers and authentication. Without a URL a private nats-server
    /// is started, storing under `data/nats`, and ended with the launch.
    pub nats: NatsArgs,
    /// The single-machine data folder: the private server's store and the
    /// default object store.
    pub data: PathBuf,
    /// Object storage; `None`: the folder `data/objects`.
    pub store: Option<Store>,
    /// Streams and consumer settings, the same for every stage.
    pub topology: TopologyConfig,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; none when unset.
    pub probes: Option<SocketAddr>,
    /// The rasterizer, when it runs here.
    pub rasterizer: Option<pagefleet_rasterizer::stage::StageConfig>,
    /// The OCR worker, when it runs here.
    pub worker: Option<WorkerLaunch>,
    /// The aggregator, when it runs here.
    pub aggregator: Option<pagefleet_aggregator::stage::StageConfig>,
    /// Ingest, when it runs here.
    pub ingest: Option<IngestLaunch>,
}

impl Launch {
    /// No stage yet, a private nats-server and the data folder of `home`.
    pub fn new(home: &Home, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            nats: NatsArgs::default(),
            data: home.data(),
            store: None,
            topology: TopologyConfig::default(),
            probes: None,
            rasterizer: None,
            worker: None,
            aggregator: None,
            ingest: None,
        }
    }

    /// The rasterizer, an OCR worker with the fast models and the
    /// aggregator, each with the library's defaults: what `run` starts.
    pub fn pipeline(home: &Home, name: &str) -> Self {
        Self {
            rasterizer: Some(Default::default()),
            worker: Some(WorkerLaunch {
                config: Default::default(),
                pool: PoolConfig::new(
                    home.onnxruntime(),
                    ModelSet::profile(&home.models(), Profile::Fast),
                ),
            }),
            aggregator: Some(Default::default()),
            ..Self::new(home, name)
        }
    }

    /// How many stages the launch starts.
    fn stage_count(&self) -> usize {
        usize::from(self.rasterizer.is_some())
            + usize::from(self.worker.is_some())
            + usize::from(self.aggregator.is_some())
            + usize::from(self.ingest.is_some())
    }

    /// The files the launch needs from the runtime home.
    fn needed(&self, home: &Home) -> Vec<PathBuf> {
        let mut needed = Vec::new();
        if self.rasterizer.is_some() {
            needed.push(home.pdfium());
        }
        if self.nats.url.is_none() {
            needed.push(home.nats_server());
        }
        if let Some(worker) = &self.worker {
            needed.extend(worker.pool.files().into_iter().map(Path::to_owned));
        }
        needed
    }

    /// Starts the launch; returns once every stage is started (the OCR
    /// worker's models loaded). Probes answer from before the models load.
    pub async fn start(self, home: &Home) -> anyhow::Result<Launched> {
        home.require(self.needed(home).iter().map(PathBuf::as_path))?;
        // The recorder first: the stages show their counters from their
        // start.
        let metrics = probes::metrics()?;
        let server = match &self.nats.url {
            Some(_) => None,
            None => {
                let server =
                    NatsServer::start(&home.nats_server(), &self.data.join("nats")).await?;
                info!(url = server.url(), "nats-server started");
                Some(server)
            }
        };
        let nats = match &server {
            Some(server) => self.nats.with_url(server.url()),
            None => self.nats.clone(),
        };
        let url = nats.url_or_default().to_owned();
        let client = connect::nats(&nats, &self.name).await?;
        let js = async_nats::jetstream::new(client.clone());
        // Each stage sets up the topology as it starts. Several started at
        // once would race to create it on a new server, and `run` submits
        // as soon as they are started: then it is set up once, first.
        if self.stage_count() > 1 {
            pagefleet_stagekit::topology::ensure(&js, &self.topology)
                .await
                .context("setting up JetStream")?;
        }
        let store = match self.store {
            Some(store) => store,
            None => folder_store(&self.data.join("objects"))?,
        };
        // Stages without models are ready from the start.
        let worker_ready = Arc::new(AtomicBool::new(self.worker.is_none()));
        let readiness = probes::Readiness {
            warm: Arc::clone(&worker_ready),
            client: client.clone(),
            store: store.clone(),
        };
        if let Some(addr) = self.probes {
            probes::serve(addr, &self.name, readiness.clone(), metrics.clone()).await?;
        }
        let mut launched = Launched {
            server,
            client,
            js,
            store,
            url,
            topology: self.topology.clone(),
            worker_ready: Arc::clone(&worker_ready),
            stages: Vec::new(),
        };
        let topology = self.topology;
        if let Some(config) = self.rasterizer {
            launched.stages.push(pagefleet_rasterizer::stage::start(
                pagefleet_rasterizer::stage::StageConfig {
                    topology: topology.clone(),
                    ..config
                },
                pagefleet_rasterizer::stage::Deps {
                    js: launched.js.clone(),
                    store: launched.store.clone(),
                    pdfium: home.pdfium(),
                },
            ));
        }
        if let Some(worker) = self.worker {
            let started = pagefleet_ocr_worker::stage::start(
                pagefleet_ocr_worker::stage::StageConfig {
                    topology: topology.clone(),
                    ..worker.config
                },
                &worker.pool,
                launched.js.clone(),
                launched.store.clone(),
                worker_ready,
            )
            .await;
            match started {
                Ok(stage) => launched.stages.push(stage),
                Err(e) => {
                    launched.stop().await;
                    return Err(e.into());
                }
            }
        }
        if let Some(config) = self.aggregator {
            // PDFium is needed for searchable PDFs only; a job that asks for
            // one without it gets the error in its result.
            launched.stages.push(pagefleet_aggregator::stage::start(
                pagefleet_aggregator::stage::StageConfig {
                    topology: topology.clone(),
                    ..config
                },
                pagefleet_aggregator::stage::Deps {
                    js: launched.js.clone(),
                    store: launched.store.clone(),
                    pdfium: home.pdfium(),
                },
            ));
        }
        if let Some(ingest) = self.ingest {
            let routes = ingest
                .metrics
                .then(|| probes::metrics_router(&self.name, readiness, metrics));
            launched.stages.push(pagefleet_ingest::stage::start(
                pagefleet_ingest::stage::StageConfig {
                    topology,
                    ..ingest.config
                },
                pagefleet_ingest::stage::Deps {
                    client: launched.client.clone(),
                    store: launched.store.clone(),
                    listener: ingest.listener,
                    routes,
                },
            ));
        }
        Ok(launched)
    }
}

/// The started stages; [`Launched::stop`] stops them.
pub struct Launched {
    server: Option<NatsServer>,
    /// The NATS connection the stages share.
    pub client: async_nats::Client,
    /// JetStream over it.
    pub js: async_nats::jetstream::Context,
    /// The store.
    pub store: Store,
    /// The NATS server list (the private server's URL when one was started).
    pub url: String,
    /// Streams and consumer settings.
    pub topology: TopologyConfig,
    /// Set once the OCR worker's warm-up inference succeeded (at once when
    /// no worker runs here).
    pub worker_ready: Arc<AtomicBool>,
    stages: Vec<Running>,
}

impl Launched {
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

    /// Runs until SIGINT or SIGTERM, then stops every stage (each finishes
    /// the work in hand); or until a stage fails, then stops the others and
    /// returns its error.
    pub async fn until_signal(mut self) -> anyhow::Result<()> {
        let outcome = tokio::select! {
            () = connect::shutdown_signal() => Ok(()),
            e = self.failed() => Err(e),
        };
        self.stop().await;
        outcome
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
    // Folders left empty by a deletion go with it: a removed job leaves
    // no trace in the folder.
    let fs = LocalFileSystem::new_with_prefix(dir)
        .with_context(|| format!("cannot open store folder {}", dir.display()))?
        .with_automatic_cleanup(true);
    Ok(Arc::new(fs))
}
