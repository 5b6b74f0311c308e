//! The OCR worker stage: pulls page jobs of one profile, reads each page on the
//! inference pool, publishes the result and only then acknowledges the job.
//!
//! Reads: [`PageJob`] from `pagefleet.pages.<profile>.>`, page images.
//! Writes: [`PageResult`] or [`PageFailure`] on `pagefleet.results.<job_id>.<page>`.
//!
//! Nothing here retries in a loop: a page that could not be finished is handed
//! back to JetStream (nak with a delay, or an expired ack) and redelivered,
//! possibly to another worker; after `max_deliver` deliveries the aggregator
//! records it as failed.

use std::future::Future;
use std::io::Cursor;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, kv};
use futures::{FutureExt, StreamExt};
use image::{ImageReader, Limits};
use pagefleet_schemas::bus::publish_acked;
use pagefleet_schemas::messages::{
    Message, PageFailure, PageJob, PageResult, ResultMessage, SCHEMA_VERSION, now_ms,
};
use pagefleet_schemas::state;
use pagefleet_schemas::store::{self, Store};
use pagefleet_schemas::topology::{self, TopologyConfig};
use pagefleet_schemas::{PageOcr, names};
use tokio::sync::{Semaphore, oneshot};
use tracing::{Instrument, error, info, info_span, warn};

use crate::heartbeat::{self, Identity, WorkerCounters};
use crate::{EngineError, ErrorKind, JobHandle, Pool};

/// Settings of the worker stage.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// Streams and consumer settings.
    pub topology: TopologyConfig,
    /// The model profile this worker serves.
    pub profile: String,
    /// This worker's name in results and logs.
    pub name: String,
    /// Pages in hand at once (queued or being read).
    pub in_flight: usize,
    /// Longest a page may take; past it the worker stops extending the page's
    /// ack and lets it go (it is redelivered, and fails after `max_deliver`).
    pub page_deadline: Duration,
    /// Most pixels a page image may declare.
    pub max_decode_pixels: u64,
    /// `cpu` or `cuda`, for heartbeats.
    pub execution_provider: String,
    /// How often a heartbeat is put in the workers bucket.
    pub heartbeat_interval: Duration,
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
    /// The consumer failed.
    #[error("page consumer: {0}")]
    Consumer(String),
}

/// Runs the stage until `shutdown` completes; then stops pulling and finishes
/// the pages in hand before returning.
pub async fn run(
    config: StageConfig,
    deps: Deps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StageError> {
    topology::ensure(&deps.js, &config.topology).await?;
    let consumer = topology::consumer(
        &deps.js,
        names::PAGES_STREAM,
        &names::worker_consumer(&config.profile),
        &names::pages_of_profile(&config.profile),
        &config.topology.pages,
    )
    .await?;
    // Shared: it is awaited in several places and may be polled again after
    // it fired.
    let shutdown = shutdown.boxed().shared();
    let (stop_beats, beats_stopped) = oneshot::channel::<()>();
    let beats = tokio::spawn(heartbeat::beat(
        deps.js.clone(),
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
    let config = Arc::new(config);
    let deps = Arc::new(deps);
    let permits = Arc::new(Semaphore::new(config.in_flight.max(1)));
    info!(name = %config.name, profile = %config.profile, slots = deps.pool.slots(), "ocr worker ready");
    loop {
        let permit = tokio::select! {
            _ = shutdown.clone() => break,
            p = Arc::clone(&permits).acquire_owned() => p.map_err(|e| StageError::Consumer(e.to_string()))?,
        };
        let want = permits.available_permits() + 1;
        let fetch = consumer
            .batch()
            .max_messages(want)
            .expires(Duration::from_secs(2))
            .messages();
        let mut batch = tokio::select! {
            _ = shutdown.clone() => break,
            b = fetch => b.map_err(|e| StageError::Consumer(e.to_string()))?,
        };
        let mut permit = Some(permit);
        // Waiting for the batch to fill is cut short by shutdown; a message
        // already received is still handled.
        while let Some(msg) = tokio::select! {
            _ = shutdown.clone() => None,
            m = batch.next() => m,
        } {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    warn!("fetching a page job: {e}");
                    continue;
                }
            };
            let permit = match permit.take() {
                Some(p) => p,
                None => match Arc::clone(&permits).acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (config, deps, jobs) = (Arc::clone(&config), Arc::clone(&deps), jobs.clone());
            tokio::spawn(async move {
                handle(&config, &deps, jobs.as_ref(), msg).await;
                drop(permit);
            });
        }
    }
    deps.counters.draining.store(true, Ordering::SeqCst);
    // Wait for the pages in hand: every permit back means every page answered.
    let _ = permits.acquire_many(config.in_flight.max(1) as u32).await;
    // The last heartbeat goes: the worker leaves the fleet's status at once.
    let _ = stop_beats.send(());
    let _ = beats.await;
    info!("ocr worker stopped");
    Ok(())
}

/// One inference on a blank page before taking work. A failure is logged and
/// tried again; the worker takes no page until it succeeds.
async fn warm_up(pool: &Arc<Pool>) {
    let mut delay = Duration::from_millis(500);
    loop {
        let blank = image::RgbImage::from_pixel(640, 480, image::Rgb([255, 255, 255]));
        match infer(pool, blank, &Mutex::new(None)).await {
            Ok(_) => return,
            Err(e) => {
                error!("warm-up inference failed, retrying in {delay:?}: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Runs one page on the pool without blocking the async threads. The page's
/// handle is left in `running` while it is read, for cancelling it.
async fn infer(
    pool: &Arc<Pool>,
    image: image::RgbImage,
    running: &Mutex<Option<JobHandle>>,
) -> Result<PageOcr, EngineError> {
    let (tx, rx) = oneshot::channel();
    let pool = Arc::clone(pool);
    // Submitting blocks while the pool's queue is full: off the async threads.
    let span = tracing::Span::current();
    let handle = tokio::task::spawn_blocking(move || {
        span.in_scope(|| pool.submit(image, Box::new(move |r| drop(tx.send(r)))))
    })
    .await
    .map_err(|e| EngineError::Runtime(e.to_string()))??;
    if let Ok(mut slot) = running.lock() {
        *slot = Some(handle);
    }
    rx.await
        .map_err(|_| EngineError::Runtime("the inference thread dropped the page".into()))?
}

enum Outcome {
    /// Result published: acknowledge.
    Done,
    /// This page will never be read: failure published, terminate.
    Failed,
    /// Try again later, here or elsewhere.
    Retry(String),
    /// Past the deadline: let the ack expire.
    Abandon,
    /// The job was cancelled: the page is dropped unread.
    Cancelled,
}

async fn handle(
    config: &StageConfig,
    deps: &Deps,
    jobs: Option<&kv::Store>,
    msg: jetstream::Message,
) {
    let job = match PageJob::decode(&msg.payload) {
        Ok(job) => job,
        Err(e) => {
            error!(subject = %msg.subject, "dropping an undecodable page job: {e}");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let deliveries = msg.info().map_or(1, |i| i.delivered as u64);
    let span = info_span!(
        "ocr",
        job_id = %job.job_id,
        page = job.page,
        worker = %config.name,
        profile = %config.profile,
        deliveries,
        trace_id = tracing::field::Empty,
    );
    pagefleet_schemas::trace::follow(&span, msg.headers.as_ref());
    // The page's wait in the queue, beside its reading in the job's trace.
    pagefleet_schemas::trace::record(
        "queue_wait",
        &pagefleet_schemas::trace::extract(msg.headers.as_ref()),
        pagefleet_schemas::trace::from_ms(job.published_at_ms),
        std::time::SystemTime::now(),
        vec![
            opentelemetry::KeyValue::new("job_id", job.job_id.clone()),
            opentelemetry::KeyValue::new("page", i64::from(job.page)),
            opentelemetry::KeyValue::new("worker", config.name.clone()),
        ],
    );
    let profile = config.profile.clone();
    if deliveries > 1 {
        metrics::counter!("pagefleet_page_redeliveries_total", "profile" => profile.clone())
            .increment(1);
    }
    let in_flight = metrics::gauge!("pagefleet_pages_in_flight", "profile" => profile.clone());
    in_flight.increment(1.0);
    deps.counters.in_flight.fetch_add(1, Ordering::Relaxed);
    async {
        let started = Instant::now();
        let running = Mutex::new(None);
        let work = async {
            // A cancelled job's pages still in the queue were purged; those
            // already delivered are dropped here, unread.
            match jobs {
                Some(kv) if state::is_cancelled(kv, &job.job_id).await => Outcome::Cancelled,
                _ => process(config, deps, &job, deliveries, &running).await,
            }
        };
        tokio::pin!(work);
        let mut progress = tokio::time::interval(config.topology.pages.ack_wait / 3);
        progress.tick().await;
        let deadline = tokio::time::sleep(config.page_deadline);
        tokio::pin!(deadline);
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                _ = progress.tick() => { let _ = msg.ack_with(AckKind::Progress).await; }
                _ = &mut deadline => break Outcome::Abandon,
            }
        };
        match outcome {
            Outcome::Done => {
                metrics::counter!("pagefleet_pages_processed_total", "profile" => profile.clone())
                    .increment(1);
                deps.counters.pages_done.fetch_add(1, Ordering::Relaxed);
                metrics::histogram!("pagefleet_stage_seconds", "stage" => "ocr_page")
                    .record(started.elapsed().as_secs_f64());
                if let Err(e) = msg.double_ack().await {
                    warn!(
                        "ack after publishing the result failed (the page may be read again): {e}"
                    );
                }
                info!(ms = started.elapsed().as_millis() as u64, "page done");
            }
            Outcome::Failed => {
                metrics::counter!("pagefleet_pages_failed_total", "stage" => "ocr-worker")
                    .increment(1);
                deps.counters.pages_failed.fetch_add(1, Ordering::Relaxed);
                drop(msg.ack_with(AckKind::Term).await)
            }
            Outcome::Retry(reason) => {
                warn!("page handed back: {reason}");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
            }
            Outcome::Cancelled => {
                info!("job cancelled, page dropped unread");
                let _ = msg.ack_with(AckKind::Term).await;
            }
            Outcome::Abandon => {
                warn!(
                    deadline_s = config.page_deadline.as_secs_f64(),
                    "page over its deadline, letting it go"
                );
            }
        }
    }
    .instrument(span)
    .await;
    in_flight.decrement(1.0);
    deps.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
}

async fn process(
    config: &StageConfig,
    deps: &Deps,
    job: &PageJob,
    deliveries: u64,
    running: &Mutex<Option<JobHandle>>,
) -> Outcome {
    let queue_wait_ms = now_ms().saturating_sub(job.published_at_ms);
    let bytes = match store::get(deps.store.as_ref(), &job.image_key).await {
        Ok(b) => b,
        Err(e) if e.is_transient() => return Outcome::Retry(e.to_string()),
        Err(e) => return fail(config, deps, job, deliveries, &e.to_string()).await,
    };
    let max_pixels = config.max_decode_pixels;
    let decoded = tokio::task::spawn_blocking(move || decode(&bytes, max_pixels)).await;
    let image = match decoded {
        Ok(Ok(image)) => image,
        Ok(Err(e)) => return fail(config, deps, job, deliveries, &e).await,
        Err(e) => return Outcome::Retry(e.to_string()),
    };
    match infer(&deps.pool, image, running).await {
        Ok(ocr) => {
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
                worker: config.name.clone(),
                queue_wait_ms,
                deliveries,
                scale: job.scale,
                ocr,
            };
            match publish(deps, job, ResultMessage::Page(result)).await {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Retry(format!("publishing the result: {e}")),
            }
        }
        Err(e) if e.kind() == ErrorKind::BadInput => {
            fail(config, deps, job, deliveries, &e.to_string()).await
        }
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

/// Decodes a page image with the same limits as any upload.
fn decode(bytes: &[u8], max_pixels: u64) -> Result<image::RgbImage, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits.clone());
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("page image: {e}"))?;
    if w as u64 * h as u64 > max_pixels {
        return Err(format!(
            "page image {w}x{h} is over the decode limit of {max_pixels} pixels"
        ));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    reader.limits(limits);
    reader
        .decode()
        .map(|i| i.into_rgb8())
        .map_err(|e| format!("page image: {e}"))
}

async fn fail(
    config: &StageConfig,
    deps: &Deps,
    job: &PageJob,
    deliveries: u64,
    error: &str,
) -> Outcome {
    warn!("page failed: {error}");
    let failure = PageFailure {
        v: SCHEMA_VERSION,
        job_id: job.job_id.clone(),
        page: job.page,
        worker: config.name.clone(),
        error: error.to_owned(),
        deliveries,
    };
    match publish(deps, job, ResultMessage::Failure(failure)).await {
        Ok(()) => Outcome::Failed,
        Err(e) => Outcome::Retry(format!("publishing the failure: {e}")),
    }
}

/// Publishes on the result stream and waits for JetStream's acknowledgement.
async fn publish(deps: &Deps, job: &PageJob, message: ResultMessage) -> Result<(), String> {
    publish_acked(
        &deps.js,
        names::result_subject(&job.job_id, job.page),
        names::result_msg_id(&job.job_id, job.page),
        message.encode(),
    )
    .instrument(info_span!("result_publish", page = job.page))
    .await
    .map_err(|e| e.to_string())
}
