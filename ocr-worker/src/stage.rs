//! The OCR worker stage: pulls page jobs of one profile, reads each page on the
//! inference pool, publishes the result and only then acknowledges the job.
//!
//! Reads: [`PageJob`] from `pagefleet.pages.<profile>.>`, page images.
//! Writes: [`PageResult`] or [`PageFailure`] on `pagefleet.results.<job_id>.<page>`.
//!
//! The queue driver of `pagefleet_stagekit::queue` decides what happens to a
//! page that could not be finished: an outage of the store or of NATS is
//! waited out with the page in hand; a page that can never be read (a bad
//! image, past its deadline) is recorded as failed; a crash or a fault of the
//! engine hands it back to JetStream, to be redelivered, possibly to another
//! worker, and after `max_deliver` deliveries the aggregator records it as
//! failed.

use std::future::Future;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures::FutureExt;
use image::{ImageReader, Limits};
use pagefleet_schemas::language::{Language, Reading};
use pagefleet_schemas::messages::{
    DecodeError, Message, PageFailure, PageJob, PageResult, ResultMessage, SCHEMA_VERSION, now_ms,
};
use pagefleet_schemas::{PageOcr, TextLayerLines, names};
use pagefleet_stagekit::bus::{PublishFailed, publish_acked};
use pagefleet_stagekit::queue::{self, Delivery, Fault, FaultKind, Handled, Handler};
use pagefleet_stagekit::running::Running;
use pagefleet_stagekit::state;
use pagefleet_stagekit::store::{self, Store, StoreError};
use pagefleet_stagekit::topology::{self, TopologyConfig};
use tokio::sync::oneshot;
use tracing::{Instrument, error, info, info_span};

use crate::engine::PageIn;
use crate::heartbeat::{self, Identity, WorkerCounters};
use crate::{EngineError, ErrorKind, Pool, PoolConfig};

/// Settings of the worker stage.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// Streams and consumer settings.
    pub topology: TopologyConfig,
    /// The model profile this worker serves.
    pub profile: String,
    /// This worker's name in results and logs.
    pub name: String,
    /// Pages in hand at once (queued or being read); `None`: twice the
    /// pool's slots.
    pub in_flight: Option<usize>,
    /// Longest a page's inference may run, from when a slot starts reading
    /// it; past it the run is stopped, the slot takes the next page, and the
    /// page is recorded as failed.
    pub page_deadline: Duration,
    /// Most pixels a page image may declare.
    pub max_decode_pixels: u64,
    /// `cpu` or `cuda`, for heartbeats.
    pub execution_provider: String,
    /// How often a heartbeat is put in the workers bucket.
    pub heartbeat_interval: Duration,
    /// Longest an idle worker waits before asking its consumers again. A
    /// page job published to either lane wakes it at once; this bounds how
    /// soon it notices a page delivered again (after a nak's delay or an
    /// ack wait), which nothing publishes.
    pub pull_wait: Duration,
}

/// The default page deadline.
pub const DEFAULT_PAGE_DEADLINE: Duration = Duration::from_secs(120);

/// The default time between heartbeats.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// The default [`StageConfig::pull_wait`].
pub const DEFAULT_PULL_WAIT: Duration = Duration::from_secs(1);

impl Default for StageConfig {
    fn default() -> Self {
        Self {
            topology: TopologyConfig::default(),
            profile: crate::Profile::Fast.name().to_owned(),
            name: names::instance_name("ocr-worker"),
            in_flight: None,
            page_deadline: DEFAULT_PAGE_DEADLINE,
            max_decode_pixels: pagefleet_schemas::DEFAULT_MAX_PIXELS.saturating_mul(2),
            execution_provider: crate::engine::Provider::Cpu.name().to_owned(),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            pull_wait: DEFAULT_PULL_WAIT,
        }
    }
}

/// Why a worker did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The models could not be loaded.
    #[error("loading the models: {0}")]
    Models(#[from] EngineError),
    /// The loading thread failed.
    #[error("loading the models: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Describes the worker's metrics and shows its counters at zero from the
/// start, so that rates and ratios over them exist before the first event.
fn register_metrics(profile: &str) {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    pagefleet_stagekit::metrics::describe_shared();
    describe_counter!("pagefleet_pages_processed_total", "Pages read, by profile");
    describe_counter!(
        "pagefleet_page_redeliveries_total",
        "Pages read again after a delivery that did not finish, by profile"
    );
    describe_counter!(
        "pagefleet_page_deadlines_total",
        "Page runs stopped at their deadline"
    );
    describe_counter!(
        "pagefleet_layer_checks_total",
        "PDF text layers checked against their pages' pixels, by where the page's text came from"
    );
    describe_counter!(
        "pagefleet_pages_dropped_total",
        "Pages of ended jobs dropped unread, by reason"
    );
    describe_gauge!(
        "pagefleet_pages_in_flight",
        "Pages being read now, by profile"
    );
    describe_histogram!(
        "pagefleet_step_seconds",
        metrics::Unit::Seconds,
        "Time of each OCR step of a page"
    );
    let profile = profile.to_owned();
    metrics::counter!("pagefleet_pages_processed_total", "profile" => profile.clone()).increment(0);
    metrics::counter!("pagefleet_page_redeliveries_total", "profile" => profile.clone())
        .increment(0);
    metrics::counter!("pagefleet_pages_failed_total", "stage" => "ocr-worker").increment(0);
    metrics::counter!("pagefleet_page_deadlines_total").increment(0);
    for source in ["text_layer", "ocr"] {
        metrics::counter!("pagefleet_layer_checks_total", "source" => source).increment(0);
    }
    metrics::counter!("pagefleet_pages_dropped_total", "reason" => "job ended").increment(0);
    metrics::gauge!("pagefleet_pages_in_flight", "profile" => profile).set(0.0);
}

/// Loads the models `pool` names (on a blocking thread), then starts the
/// stage on its own task; [`Running::stop`] stops it. `ready` is set once
/// the warm-up inference succeeded. The execution provider heartbeats name
/// is `pool`'s.
pub async fn start(
    mut config: StageConfig,
    pool: &PoolConfig,
    js: jetstream::Context,
    store: Store,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> Result<Running, StartError> {
    register_metrics(&config.profile);
    let settings = pool.clone();
    let pool_started = tokio::task::spawn_blocking(move || settings.start()).await??;
    config.execution_provider = pool.provider.name().to_owned();
    let deps = Deps {
        js,
        store,
        pool: Arc::new(pool_started),
        ready,
        counters: Default::default(),
    };
    Ok(Running::spawn("ocr-worker", |stop| run(config, deps, stop)))
}

/// What the stage works with.
pub struct Deps {
    /// JetStream.
    pub js: jetstream::Context,
    /// Object storage.
    pub store: Store,
    /// Loaded engines.
    pub pool: Arc<Pool>,
    /// Set once the warm-up inference succeeded: the worker is ready.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// Pages done, failed and in hand, for heartbeats.
    pub counters: Arc<WorkerCounters>,
}

/// Errors that stop the stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The topology could not be set up.
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    /// The consumer could not be set up.
    #[error("page consumer: {0}")]
    Consumer(#[from] queue::DriverError),
}

/// Why a page was not read.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The page job cannot be read.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The page image could not be read from the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The page image is not an image this worker reads.
    #[error("page image: {0}")]
    Image(#[from] ImageError),
    /// The engine refused or failed the page.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Inference ran past the page deadline and was stopped.
    #[error(
        "page inference ran past its deadline of {:.0} s and was stopped",
        .0.as_secs_f64()
    )]
    Deadline(Duration),
    /// The result could not be published.
    #[error(transparent)]
    Publish(#[from] PublishFailed),
    /// A blocking task of the worker failed.
    #[error("worker task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Fault for PageError {
    fn kind(&self) -> FaultKind {
        match self {
            Self::Decode(_) | Self::Image(_) | Self::Deadline(_) => FaultKind::Permanent,
            Self::Store(e) if e.is_transient() => FaultKind::Transient {
                retry_after: queue::RETRY_AFTER,
            },
            Self::Store(_) => FaultKind::Permanent,
            Self::Engine(e) if e.kind() == ErrorKind::BadInput => FaultKind::Permanent,
            Self::Engine(_) | Self::Task(_) => FaultKind::Bug,
            Self::Publish(_) => FaultKind::Transient {
                retry_after: queue::RETRY_AFTER,
            },
        }
    }
}

/// Runs the stage until `shutdown` completes; then stops pulling and finishes
/// the pages in hand before returning.
pub async fn run(
    config: StageConfig,
    deps: Deps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StageError> {
    topology::ensure(&deps.js, &config.topology).await?;
    // Shared: it is awaited in several places and may be polled again after
    // it fired.
    let shutdown = shutdown.boxed().shared();
    let (stop_beats, beats_stopped) = oneshot::channel::<()>();
    let beats = tokio::spawn(heartbeat::beat(
        deps.js.clone(),
        config.topology.clone(),
        Identity {
            name: config.name.clone(),
            profile: config.profile.clone(),
            execution_provider: config.execution_provider.clone(),
            slots: deps.pool.slots() as u32,
        },
        Arc::clone(&deps.counters),
        Arc::clone(&deps.ready),
        config.heartbeat_interval,
        async move {
            let _ = beats_stopped.await;
        },
    ));
    let jobs = deps.js.get_key_value(names::JOBS_BUCKET).await.ok();
    warm_up(&deps.pool).await;
    deps.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    info!(name = %config.name, profile = %config.profile, slots = deps.pool.slots(), "ocr worker ready");
    let in_flight = config.in_flight.unwrap_or(deps.pool.slots() * 2).max(1);
    let driver = queue::Driver {
        what: "page job",
        concurrency: in_flight,
        batch: in_flight,
        // Two lanes: no pull waits, and an idle worker wakes on a publish
        // or after this.
        expires: config.pull_wait,
        backoff: queue::Backoff::default(),
        // A page may wait for a slot while another runs to its deadline,
        // then run to its own; an attempt still going after a third
        // deadline's worth hangs outside inference (a store read that never
        // returns, say).
        attempt_limit: Some(config.page_deadline.saturating_mul(3)),
    };
    // Small jobs first, three pulls in four while both lanes have pages; long
    // jobs keep the fourth (README, "Fair sharing between jobs").
    let lanes: Vec<queue::Lane> = names::Lane::ALL
        .into_iter()
        .map(|lane| queue::Lane {
            spec: queue::ConsumerSpec {
                stream: names::PAGES_STREAM.to_owned(),
                name: names::worker_consumer(&config.profile, lane),
                filter: names::pages_of_lane(&config.profile, lane),
                settings: config.topology.pages.clone(),
            },
            weight: match lane {
                names::Lane::Small => 3,
                names::Lane::Bulk => 1,
            },
        })
        .collect();
    let topology = config.topology.clone();
    let counters = Arc::clone(&deps.counters);
    let js = deps.js.clone();
    let handler = Arc::new(Pages { config, deps, jobs });
    let driven = driver
        .run_lanes(&js, &topology, &lanes, handler, shutdown.clone())
        .await;
    counters.draining.store(true, Ordering::SeqCst);
    // The last heartbeat goes: the worker leaves the fleet's status at once.
    let _ = stop_beats.send(());
    let _ = beats.await;
    driven?;
    info!("ocr worker stopped");
    Ok(())
}

/// One inference on a blank page before taking work. A failure is logged and
/// tried again; the worker takes no page until it succeeds.
async fn warm_up(pool: &Arc<Pool>) {
    let mut delay = Duration::from_millis(500);
    loop {
        let blank = image::RgbImage::from_pixel(640, 480, image::Rgb([255, 255, 255]));
        let page = PageIn::image(blank);
        match infer(pool, page, DEFAULT_PAGE_DEADLINE).await {
            Ok(_) => return,
            Err(e) => {
                error!("warm-up inference failed, retrying in {delay:?}: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Runs one page on the pool without blocking the async threads. The
/// deadline starts when a slot starts reading the page, not while it waits
/// for one; when it passes, the run is stopped through ONNX Runtime's run
/// options and the slot is free for the next page at once.
async fn infer(pool: &Arc<Pool>, page: PageIn, deadline: Duration) -> Result<PageOcr, PageError> {
    let (tx, mut rx) = oneshot::channel();
    let pool = Arc::clone(pool);
    // Submitting blocks while the pool's queue is full: off the async threads.
    let span = tracing::Span::current();
    let handle = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let reply = Box::new(move |r| drop(tx.send(r)));
            pool.submit_page(page, reply)
        })
    })
    .await??;
    let dropped = || EngineError::Runtime("the inference thread dropped the page".into());
    tokio::select! {
        _ = handle.started() => {}
        reply = &mut rx => return Ok(reply.map_err(|_| dropped())??),
    }
    match tokio::time::timeout(deadline, &mut rx).await {
        Ok(reply) => Ok(reply.map_err(|_| dropped())??),
        Err(_) => {
            handle.cancel();
            // The slot answers as soon as ONNX Runtime stops, at its next
            // operator.
            let _ = rx.await;
            metrics::counter!("pagefleet_page_deadlines_total").increment(1);
            Err(PageError::Deadline(deadline))
        }
    }
}

/// The worker's handling of page jobs.
struct Pages {
    config: StageConfig,
    deps: Deps,
    jobs: Option<kv::Store>,
}

impl Handler for Pages {
    type Job = PageJob;
    type Error = PageError;

    fn decode(&self, payload: &[u8]) -> Result<PageJob, PageError> {
        Ok(PageJob::decode(payload)?)
    }

    fn span(&self, job: &PageJob, delivery: &Delivery) -> tracing::Span {
        let span = info_span!(
            "ocr",
            job_id = %job.job_id,
            page = job.page,
            worker = %self.config.name,
            profile = %self.config.profile,
            deliveries = delivery.deliveries,
            trace_id = tracing::field::Empty,
        );
        pagefleet_stagekit::trace::follow(&span, delivery.headers.as_ref());
        // The page's wait in the queue, beside its reading in the job's trace.
        pagefleet_stagekit::trace::record(
            "queue_wait",
            &pagefleet_stagekit::trace::extract(delivery.headers.as_ref()),
            pagefleet_stagekit::trace::from_ms(job.published_at_ms),
            std::time::SystemTime::now(),
            vec![
                opentelemetry::KeyValue::new("job_id", job.job_id.clone()),
                opentelemetry::KeyValue::new("page", i64::from(job.page)),
                opentelemetry::KeyValue::new("worker", self.config.name.clone()),
            ],
        );
        span
    }

    async fn handle(&self, job: &PageJob, delivery: &Delivery) -> Result<Handled, PageError> {
        let _in_hand = InHand::new(&self.deps.counters, &self.config.profile);
        // A cancelled job's pages still in the queue were purged; those
        // already delivered are dropped here, unread, and so is a page
        // delivered again after its job finished (its ack was lost).
        if let Some(kv) = &self.jobs
            && state::has_ended(kv, &job.job_id).await
        {
            info!("job ended, page dropped unread");
            metrics::counter!("pagefleet_pages_dropped_total", "reason" => "job ended")
                .increment(1);
            return Ok(Handled::Dropped);
        }
        let started = Instant::now();
        let queue_wait_ms = now_ms().saturating_sub(job.published_at_ms);
        // The page image and its own text (if it has a layer to check), read
        // from the store side by side.
        let store = self.deps.store.as_ref();
        let layer = async {
            match &job.layer_key {
                Some(key) => Ok::<_, PageError>(Some(store::get(store, key).await?)),
                None => Ok(None),
            }
        };
        let (bytes, layer) = tokio::try_join!(
            async { Ok::<_, PageError>(store::get(store, &job.image_key).await?) },
            layer
        )?;
        let max_pixels = self.config.max_decode_pixels;
        let image = tokio::task::spawn_blocking(move || decode(&bytes, max_pixels)).await??;
        let layer = layer
            .map(|bytes| TextLayerLines::decode(&bytes))
            .transpose()?;
        // Ingest checked the language; a page job from elsewhere naming one
        // it does not know is read as `auto`.
        let reading = Language::parse(&job.language).map_or(Reading::Auto, |l| l.reading());
        let page = PageIn {
            image,
            reading,
            layer,
            dpi: (job.dpi > 0.0).then_some(job.dpi),
        };
        let ocr = infer(&self.deps.pool, page, self.config.page_deadline).await?;
        if let Some(check) = &ocr.layer_check {
            let source = if check.trusted { "text_layer" } else { "ocr" };
            metrics::counter!("pagefleet_layer_checks_total", "source" => source).increment(1);
            metrics::histogram!("pagefleet_step_seconds", "step" => "check")
                .record(ocr.timings.check_ms / 1000.0);
        }
        let t = &ocr.timings;
        for (step, ms) in [
            ("detect", t.detect_ms),
            ("crop", t.crop_ms),
            ("classify", t.classify_ms),
            ("recognize", t.recognize_ms),
            ("total", t.total_ms),
        ] {
            metrics::histogram!("pagefleet_step_seconds", "step" => step).record(ms / 1000.0);
        }
        let result = PageResult {
            v: SCHEMA_VERSION,
            job_id: job.job_id.clone(),
            page: job.page,
            worker: self.config.name.clone(),
            queue_wait_ms,
            deliveries: delivery.deliveries,
            scale: job.scale,
            ocr,
        };
        self.publish(job, delivery, ResultMessage::Page(result))
            .await?;
        if delivery.deliveries > 1 {
            // Counted where the job counts it: a page read again, its
            // result published.
            metrics::counter!("pagefleet_page_redeliveries_total", "profile" => self.config.profile.clone())
                .increment(1);
        }
        metrics::counter!("pagefleet_pages_processed_total", "profile" => self.config.profile.clone())
            .increment(1);
        self.deps
            .counters
            .pages_done
            .fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("pagefleet_stage_seconds", "stage" => "ocr_page")
            .record(started.elapsed().as_secs_f64());
        info!(ms = started.elapsed().as_millis() as u64, "page done");
        Ok(Handled::Done)
    }

    async fn give_up(
        &self,
        job: &PageJob,
        delivery: &Delivery,
        error: &PageError,
    ) -> Result<(), PageError> {
        let failure = PageFailure {
            v: SCHEMA_VERSION,
            job_id: job.job_id.clone(),
            page: job.page,
            worker: self.config.name.clone(),
            error: error.to_string(),
            deliveries: delivery.deliveries,
        };
        self.publish(job, delivery, ResultMessage::Failure(failure))
            .await?;
        metrics::counter!("pagefleet_pages_failed_total", "stage" => "ocr-worker").increment(1);
        self.deps
            .counters
            .pages_failed
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Pages {
    /// Publishes on the result stream and waits for JetStream's
    /// acknowledgement. Each delivery publishes under its own id, so that
    /// the aggregator learns of a page read twice.
    async fn publish(
        &self,
        job: &PageJob,
        delivery: &Delivery,
        message: ResultMessage,
    ) -> Result<(), PublishFailed> {
        publish_acked(
            &self.deps.js,
            names::result_subject(&job.job_id, job.page),
            names::result_msg_id(&job.job_id, job.page, delivery.deliveries),
            message.encode(),
        )
        .instrument(info_span!("result_publish", page = job.page))
        .await
    }
}

/// A page in hand, counted for heartbeats and metrics while it lives.
struct InHand<'a> {
    counters: &'a WorkerCounters,
    gauge: metrics::Gauge,
}

impl<'a> InHand<'a> {
    fn new(counters: &'a WorkerCounters, profile: &str) -> Self {
        let gauge = metrics::gauge!("pagefleet_pages_in_flight", "profile" => profile.to_owned());
        gauge.increment(1.0);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        Self { counters, gauge }
    }
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a page image could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Its format could not be told or read.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// The decoder refused it (an unknown or damaged image, or over the
    /// decoder's limits).
    #[error(transparent)]
    Decode(#[from] image::ImageError),
    /// It declares more pixels than the worker decodes.
    #[error("{width}x{height} is over the decode limit of {limit} pixels")]
    TooLarge {
        /// Its declared width.
        width: u32,
        /// Its declared height.
        height: u32,
        /// The decode limit.
        limit: u64,
    },
}

/// Decodes a page image with the same limits as any upload.
fn decode(bytes: &[u8], max_pixels: u64) -> Result<image::RgbImage, ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = Limits::default();
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits.clone());
    let (width, height) = reader.into_dimensions()?;
    if width as u64 * height as u64 > max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    reader.limits(limits);
    Ok(reader.decode()?.into_rgb8())
}
