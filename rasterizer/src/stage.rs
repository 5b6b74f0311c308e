//! The rasterizer stage: pulls document jobs, renders their pages on one
//! dedicated thread, stores each page image and publishes its page job at once.
//!
//! Reads: [`DocumentJob`] from `pagefleet.docs.*`, the source object.
//! Writes: page images, [`PageJob`]s, a [`JobManifest`] (and [`PageFailure`]s for
//! pages that cannot be rendered) on the result stream, a `rasterized` event.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use futures::FutureExt;
use opentelemetry::KeyValue;
use pagefleet_schemas::messages::{
    DecodeError, DocumentJob, EventKind, JobEvent, JobManifest, JobStatus, Message, PageFailure,
    PageJob, PageResult, ResultMessage, SCHEMA_VERSION, now_ms,
};
use pagefleet_schemas::{PageOcr, PixelBudget, TextLayerLines, names};
use pagefleet_stagekit::bus::{PublishFailed, publish_acked};
use pagefleet_stagekit::queue::{self, Delivery, Fault, FaultKind, Handled, Handler};
use pagefleet_stagekit::running::Running;
use pagefleet_stagekit::store::{self, Store, StoreError};
use pagefleet_stagekit::topology::{self, TopologyConfig};
use tokio::sync::mpsc;
use tracing::{info, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{RasterError, Rasterizer, RenderOptions};

/// Settings of the rasterizer stage.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// Streams and consumer settings.
    pub topology: TopologyConfig,
    /// Most pixels an image file may declare.
    pub max_decode_pixels: u64,
    /// Most pages per document.
    pub max_pages: usize,
    /// Name in page failures and logs.
    pub name: String,
}

/// The default of [`StageConfig::max_pages`].
pub const DEFAULT_MAX_PAGES: usize = 10_000;

impl Default for StageConfig {
    fn default() -> Self {
        Self {
            topology: TopologyConfig::default(),
            max_decode_pixels: crate::DEFAULT_MAX_DECODE_PIXELS,
            max_pages: DEFAULT_MAX_PAGES,
            name: names::instance_name("rasterizer"),
        }
    }
}

/// Describes the rasterizer's metrics and shows its counters at zero.
fn register_metrics() {
    use metrics::describe_counter;
    pagefleet_stagekit::metrics::describe_shared();
    describe_counter!(
        "pagefleet_pages_rasterized_total",
        "Pages rendered for reading"
    );
    describe_counter!(
        "pagefleet_pages_from_text_layer_total",
        "Pages taken from the PDF's own text layer"
    );
    metrics::counter!("pagefleet_pages_rasterized_total").increment(0);
    metrics::counter!("pagefleet_pages_from_text_layer_total").increment(0);
    metrics::counter!("pagefleet_pages_failed_total", "stage" => "rasterizer").increment(0);
}

/// Starts the stage on its own task; [`Running::stop`] stops it.
pub fn start(config: StageConfig, deps: Deps) -> Running {
    register_metrics();
    Running::spawn("rasterizer", |stop| run(config, deps, stop))
}

/// What the stage works with.
pub struct Deps {
    /// JetStream.
    pub js: jetstream::Context,
    /// Object storage.
    pub store: Store,
    /// The PDFium library.
    pub pdfium: PathBuf,
}

/// Errors that stop the stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The topology could not be set up.
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    /// PDFium could not be loaded.
    #[error(transparent)]
    Raster(#[from] RasterError),
    /// The consumer could not be set up.
    #[error("document consumer: {0}")]
    Consumer(#[from] queue::DriverError),
}

/// Why a document was not rasterized.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The document job cannot be read.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The source could not be read, or a page image not written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The document cannot be rendered.
    #[error(transparent)]
    Raster(#[from] RasterError),
    /// A page job, failure or manifest could not be published.
    #[error(transparent)]
    Publish(#[from] PublishFailed),
    /// The render thread is gone.
    #[error("the render thread has stopped")]
    RenderThread,
    /// A blocking task of the stage failed.
    #[error("rasterizer task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Fault for DocumentError {
    fn kind(&self) -> FaultKind {
        let transient = FaultKind::Transient {
            retry_after: queue::RETRY_AFTER,
        };
        match self {
            Self::Store(e) if e.is_transient() => transient,
            Self::Publish(_) => transient,
            Self::Decode(_) | Self::Store(_) => FaultKind::Permanent,
            Self::Raster(RasterError::Library(_)) => FaultKind::Bug,
            Self::Raster(_) => FaultKind::Permanent,
            Self::RenderThread | Self::Task(_) => FaultKind::Bug,
        }
    }
}

/// A page from the render thread: number, page count, scale, what it holds,
/// and when its rendering began and ended.
type Rendered = Result<(u32, u32, f64, Content, RenderTime), RasterError>;

/// A page's image, or its text taken from the PDF instead.
enum Content {
    /// The image, encoded as PNG, with the page's own text when it has
    /// some and the job's mode is `auto`.
    Png {
        /// The image.
        png: Vec<u8>,
        /// Its resolution, pixels per inch of the page, when it is the
        /// page's own.
        dpi: Option<f32>,
        /// The page's own text.
        layer: Option<TextLayerLines>,
    },
    /// The page's result, from its own text.
    Text(PageOcr),
}

/// When a page's rendering and encoding began and ended.
type RenderTime = (SystemTime, SystemTime);

struct RenderRequest {
    bytes: bytes::Bytes,
    options: RenderOptions,
    pages: mpsc::Sender<Rendered>,
    done: tokio::sync::oneshot::Sender<Result<usize, RasterError>>,
}

/// Runs the stage until `shutdown` completes. A document in hand is finished
/// or handed back (it is redelivered) before returning.
pub async fn run(
    config: StageConfig,
    deps: Deps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StageError> {
    topology::ensure(&deps.js, &config.topology).await?;
    let renderer = spawn_renderer(deps.pdfium.clone())?;
    let shutdown = shutdown.boxed().shared();
    info!(name = %config.name, "rasterizer ready");
    // One document at a time: the render thread is one, and a document's
    // pages are published as they render.
    let driver = queue::Driver {
        what: "document job",
        concurrency: 1,
        batch: 1,
        expires: Duration::from_secs(2),
        backoff: queue::Backoff::default(),
        attempt_limit: None,
    };
    let spec = queue::ConsumerSpec {
        stream: names::DOCS_STREAM.to_owned(),
        name: names::RASTERIZER_CONSUMER.to_owned(),
        filter: names::DOCS_SUBJECTS.to_owned(),
        settings: config.topology.docs.clone(),
    };
    let topology = config.topology.clone();
    let js = deps.js.clone();
    let jobs = deps.js.get_key_value(names::JOBS_BUCKET).await.ok();
    let handler = Arc::new(Documents {
        config,
        deps,
        renderer,
        jobs,
    });
    driver.run(&js, &topology, &spec, handler, shutdown).await?;
    info!("rasterizer stopped");
    Ok(())
}

fn spawn_renderer(
    pdfium: PathBuf,
) -> Result<std::sync::mpsc::SyncSender<RenderRequest>, StageError> {
    // Bind on the calling thread so that a missing library fails the start.
    let rasterizer = Rasterizer::new(&pdfium)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<RenderRequest>(1);
    std::thread::Builder::new()
        .name("pdfium".into())
        .spawn(move || {
            for req in rx {
                // A page renders between the previous page's hand-over and
                // its own.
                let mut began = SystemTime::now();
                let result = rasterizer.pages(&req.bytes, &req.options, |page| {
                    let rendered = page.and_then(|p| {
                        let dpi = p.own_dpi();
                        let content = match p.text {
                            Some(text) => Content::Text(text),
                            None => Content::Png {
                                png: crate::encode_png(&p.image, p.dpi).map_err(|e| {
                                    RasterError::PageRefused {
                                        page: p.number,
                                        message: format!("png: {e}"),
                                    }
                                })?,
                                dpi,
                                layer: p.layer,
                            },
                        };
                        let time = (began, SystemTime::now());
                        Ok((p.number as u32, p.count as u32, p.scale, content, time))
                    });
                    let sent = req
                        .pages
                        .blocking_send(rendered)
                        .map_err(|_| "the stage stopped listening".to_owned());
                    began = SystemTime::now();
                    sent
                });
                let _ = req.done.send(result);
            }
        })
        .map_err(|e| {
            StageError::Raster(RasterError::Library(format!(
                "cannot start the render thread: {e}"
            )))
        })?;
    Ok(tx)
}

/// The rasterizer's handling of document jobs.
struct Documents {
    config: StageConfig,
    deps: Deps,
    renderer: std::sync::mpsc::SyncSender<RenderRequest>,
    jobs: Option<kv::Store>,
}

impl Handler for Documents {
    type Job = DocumentJob;
    type Error = DocumentError;

    fn decode(&self, payload: &[u8]) -> Result<DocumentJob, DocumentError> {
        Ok(DocumentJob::decode(payload)?)
    }

    fn span(&self, job: &DocumentJob, delivery: &Delivery) -> tracing::Span {
        let span = info_span!(
            "rasterize",
            job_id = %job.job_id,
            filename = %job.filename,
            worker = %self.config.name,
            trace_id = tracing::field::Empty,
        );
        pagefleet_stagekit::trace::follow(&span, delivery.headers.as_ref());
        span
    }

    async fn handle(
        &self,
        job: &DocumentJob,
        _delivery: &Delivery,
    ) -> Result<Handled, DocumentError> {
        let started = std::time::Instant::now();
        let outcome = self.rasterize(job).await;
        metrics::histogram!("pagefleet_stage_seconds", "stage" => "rasterize_document")
            .record(started.elapsed().as_secs_f64());
        outcome.map(|()| Handled::Done)
    }

    async fn give_up(
        &self,
        job: &DocumentJob,
        _delivery: &Delivery,
        error: &DocumentError,
    ) -> Result<(), DocumentError> {
        publish_manifest(&self.deps, job, 0, Some(error.to_string())).await
    }
}

impl Documents {
    async fn rasterize(&self, job: &DocumentJob) -> Result<(), DocumentError> {
        let (config, deps) = (&self.config, &self.deps);
        let bytes = store::get(deps.store.as_ref(), &job.source_key).await?;
        let options = RenderOptions {
            dpi: job.dpi,
            budget: PixelBudget::new(job.max_pixels),
            max_decode_pixels: config.max_decode_pixels,
            // A job may ask for a tighter page limit than the stage's.
            max_pages: match job.max_pages as usize {
                0 => config.max_pages,
                n => n.min(config.max_pages),
            },
            text_layer: job.text_layer,
        };
        let (pages_tx, mut pages_rx) = mpsc::channel::<Rendered>(2);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let request = RenderRequest {
            bytes,
            options,
            pages: pages_tx,
            done: done_tx,
        };
        let renderer = self.renderer.clone();
        tokio::task::spawn_blocking(move || renderer.send(request))
            .await?
            .map_err(|_| DocumentError::RenderThread)?;
        let mut published = 0u32;
        while let Some(page) = pages_rx.recv().await {
            match page {
                Ok((number, count, scale, content, (began, ended))) => {
                    if let Some(kv) = &self.jobs
                        && pagefleet_stagekit::state::has_ended(kv, &job.job_id).await
                    {
                        // Dropping the receiver stops the render thread.
                        info!(page = number, "job ended, rendering stopped");
                        return Ok(());
                    }
                    pagefleet_stagekit::trace::record(
                        "render_page",
                        &tracing::Span::current().context(),
                        began,
                        ended,
                        vec![
                            KeyValue::new("job_id", job.job_id.clone()),
                            KeyValue::new("page", i64::from(number)),
                        ],
                    );
                    match content {
                        Content::Png { png, dpi, layer } => {
                            let page = RenderedPage {
                                number,
                                count,
                                scale,
                                dpi,
                                png,
                                layer,
                            };
                            publish_page(deps, job, page).await?;
                            metrics::counter!("pagefleet_pages_rasterized_total").increment(1);
                        }
                        Content::Text(ocr) => {
                            publish_text(deps, job, &config.name, number, scale, ocr).await?;
                            metrics::counter!("pagefleet_pages_from_text_layer_total").increment(1);
                        }
                    }
                    published += 1;
                }
                Err(RasterError::PageRefused { page, message }) => {
                    metrics::counter!("pagefleet_pages_failed_total", "stage" => "rasterizer")
                        .increment(1);
                    publish_failure(deps, job, page as u32, &config.name, &message).await?;
                }
                Err(other) => return Err(other.into()),
            }
        }
        let count = done_rx.await.map_err(|_| DocumentError::RenderThread)?? as u32;
        publish_manifest(deps, job, count, None).await?;
        info!(pages = count, published, "document rasterized");
        Ok(())
    }
}

/// A rendered page on its way to the workers.
struct RenderedPage {
    number: u32,
    count: u32,
    scale: f64,
    dpi: Option<f32>,
    png: Vec<u8>,
    layer: Option<TextLayerLines>,
}

async fn publish_page(
    deps: &Deps,
    job: &DocumentJob,
    rendered: RenderedPage,
) -> Result<(), DocumentError> {
    let RenderedPage {
        number: page,
        count,
        scale,
        dpi,
        png,
        layer,
    } = rendered;
    let image_key = names::keys::page_image(&job.job_id, page);
    store::put(deps.store.as_ref(), &image_key, png).await?;
    // The page's own text goes beside its image, for the worker to check.
    let layer_key = match layer {
        Some(layer) => {
            let key = names::keys::page_layer(&job.job_id, page);
            store::put(deps.store.as_ref(), &key, layer.encode()).await?;
            Some(key)
        }
        None => None,
    };
    let page_job = PageJob {
        layer_key,
        v: SCHEMA_VERSION,
        job_id: job.job_id.clone(),
        page,
        page_count: count,
        image_key,
        profile: job.profile.clone(),
        scale,
        dpi: dpi.unwrap_or(0.0),
        published_at_ms: now_ms(),
        language: job.language.clone(),
    };
    publish_acked(
        &deps.js,
        names::page_subject(&job.profile, names::Lane::of_job(count), &job.job_id, page),
        names::page_msg_id(&job.job_id, page),
        page_job.encode(),
    )
    .await?;
    Ok(())
}

/// A page whose text came from the PDF: its result goes straight to the
/// aggregator, as a worker's would.
async fn publish_text(
    deps: &Deps,
    job: &DocumentJob,
    name: &str,
    page: u32,
    scale: f64,
    ocr: PageOcr,
) -> Result<(), DocumentError> {
    let result = PageResult {
        v: SCHEMA_VERSION,
        job_id: job.job_id.clone(),
        page,
        worker: name.to_owned(),
        queue_wait_ms: 0,
        deliveries: 1,
        scale,
        ocr,
    };
    publish_acked(
        &deps.js,
        names::result_subject(&job.job_id, page),
        names::result_msg_id(&job.job_id, page, 1),
        ResultMessage::Page(result).encode(),
    )
    .await?;
    Ok(())
}

async fn publish_failure(
    deps: &Deps,
    job: &DocumentJob,
    page: u32,
    worker: &str,
    error: &str,
) -> Result<(), DocumentError> {
    let failure = PageFailure {
        v: SCHEMA_VERSION,
        job_id: job.job_id.clone(),
        page,
        worker: worker.to_owned(),
        error: error.to_owned(),
        deliveries: 1,
    };
    publish_acked(
        &deps.js,
        names::result_subject(&job.job_id, page),
        names::result_msg_id(&job.job_id, page, 1),
        ResultMessage::Failure(failure).encode(),
    )
    .await?;
    Ok(())
}

async fn publish_manifest(
    deps: &Deps,
    job: &DocumentJob,
    total_pages: u32,
    error: Option<String>,
) -> Result<(), DocumentError> {
    let manifest = JobManifest {
        v: SCHEMA_VERSION,
        job_id: job.job_id.clone(),
        filename: job.filename.clone(),
        file_size_bytes: job.file_size_bytes,
        submitted_at_ms: job.submitted_at_ms,
        total_pages,
        error,
        dpi: job.dpi,
    };
    publish_acked(
        &deps.js,
        names::manifest_subject(&job.job_id),
        names::manifest_msg_id(&job.job_id),
        ResultMessage::Manifest(manifest).encode(),
    )
    .await?;
    let event = JobEvent {
        v: SCHEMA_VERSION,
        job_id: job.job_id.clone(),
        kind: EventKind::Rasterized,
        total_pages: Some(total_pages),
        pages_done: 0,
        pages_failed: 0,
        status: JobStatus::Running,
        at_ms: now_ms(),
        waiting: None,
        page: None,
        page_ok: None,
    };
    let _ = deps
        .js
        .publish(
            names::event_subject(&job.job_id, EventKind::Rasterized.token()),
            event.encode().into(),
        )
        .await;
    Ok(())
}
