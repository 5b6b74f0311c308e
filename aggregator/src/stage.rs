//! The aggregator stage: records every page outcome in the job's state and
//! finishes each job exactly once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::{FutureExt, StreamExt, TryStreamExt};
use pagefleet_schemas::Format;
use pagefleet_schemas::messages::{
    DecodeError, EventKind, JobEvent, JobState, JobStatus, Message, PageFailure, PageRecord,
    PageResult, ResultMessage, SCHEMA_VERSION, now_ms,
};
use pagefleet_schemas::names;
use pagefleet_stagekit::bus::{PublishFailed, publish_acked};
use pagefleet_stagekit::queue::{self, Delivery, Fault, FaultKind, Handled, Handler};
use pagefleet_stagekit::running::Running;
use pagefleet_stagekit::state::{PageRecorded, StateError, raise_deliveries, record_page, update};
use pagefleet_stagekit::store::{self, Store, StoreError};
use pagefleet_stagekit::topology::{self, TopologyConfig};
use serde::Deserialize;
use tracing::{Instrument, info, info_span, warn};

use crate::report;

/// Settings of the aggregator stage.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// Streams and consumer settings.
    pub topology: TopologyConfig,
    /// This aggregator's name in logs and failures it records.
    pub name: String,
}

impl Default for StageConfig {
    fn default() -> Self {
        Self {
            topology: TopologyConfig::default(),
            name: pagefleet_schemas::names::instance_name("aggregator"),
        }
    }
}

/// Describes the aggregator's metrics and shows its counters at zero.
fn register_metrics() {
    use metrics::{describe_counter, describe_histogram};
    pagefleet_stagekit::metrics::describe_shared();
    describe_counter!("pagefleet_jobs_finished_total", "Jobs finished, by status");
    describe_histogram!(
        "pagefleet_job_duration_seconds",
        metrics::Unit::Seconds,
        "Time from submission to completion, by status"
    );
    for status in [
        JobStatus::Success,
        JobStatus::PartialSuccess,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ] {
        metrics::counter!("pagefleet_jobs_finished_total", "status" => status.as_str())
            .increment(0);
    }
    metrics::counter!("pagefleet_pages_failed_total", "stage" => "max-deliveries").increment(0);
    metrics::counter!("pagefleet_state_bytes_written_total").increment(0);
    metrics::counter!("pagefleet_state_conflicts_total").increment(0);
}

/// Starts the stage on its own task; [`Running::stop`] stops it.
pub fn start(config: StageConfig, deps: Deps) -> Running {
    register_metrics();
    Running::spawn("aggregator", |stop| run(config, deps, stop))
}

/// What the stage works with.
pub struct Deps {
    /// JetStream.
    pub js: jetstream::Context,
    /// Object storage.
    pub store: Store,
    /// The PDFium library, for searchable PDFs.
    pub pdfium: std::path::PathBuf,
}

/// Errors that stop the stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The topology could not be set up.
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    /// A consumer could not be set up.
    #[error("aggregator: {0}")]
    Consumer(#[from] queue::DriverError),
    /// The jobs bucket is missing.
    #[error("aggregator: jobs bucket: {0}")]
    Bucket(String),
}

/// Why a result or an advisory was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The message cannot be read.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An advisory that is not JSON of the expected shape.
    #[error("unreadable advisory: {0}")]
    Advisory(#[from] serde_json::Error),
    /// A result names a job id that is not one.
    #[error("invalid job id {0:?}")]
    InvalidJobId(String),
    /// A page result or an output could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job's state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A failure or the completion event could not be published.
    #[error(transparent)]
    Publish(#[from] PublishFailed),
    /// The page stream could not be reached.
    #[error("page stream: {0}")]
    PageStream(String),
    /// An output could not be written to its temporary file.
    #[error("writing the outputs: {0}")]
    Output(#[from] std::io::Error),
}

impl Fault for RecordError {
    fn kind(&self) -> FaultKind {
        let transient = FaultKind::Transient {
            retry_after: queue::RETRY_AFTER,
        };
        match self {
            Self::Decode(_) | Self::Advisory(_) | Self::InvalidJobId(_) => FaultKind::Permanent,
            Self::Store(e) if e.is_transient() => transient,
            // A page result that was recorded but cannot be read back: a bug
            // or a store that lost data; another delivery may see it.
            Self::Store(_) => FaultKind::Bug,
            Self::State(e) => e.kind(),
            Self::Publish(_) | Self::PageStream(_) | Self::Output(_) => transient,
        }
    }
}

/// Runs the stage until `shutdown` completes.
pub async fn run(
    config: StageConfig,
    deps: Deps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StageError> {
    topology::ensure(&deps.js, &config.topology).await?;
    let kv = deps
        .js
        .get_key_value(names::JOBS_BUCKET)
        .await
        .map_err(|e| StageError::Bucket(e.to_string()))?;
    let shutdown = shutdown.boxed().shared();
    info!(name = %config.name, "aggregator ready");
    // Results of one job may be recorded side by side: the state is written
    // by compare-and-set, and a job is finished once.
    let results = queue::Driver {
        what: "result",
        concurrency: 8,
        batch: 64,
        expires: Duration::from_secs(1),
        backoff: queue::Backoff::default(),
        attempt_limit: None,
    };
    let results_spec = queue::ConsumerSpec {
        stream: names::RESULTS_STREAM.to_owned(),
        name: names::AGGREGATOR_CONSUMER.to_owned(),
        filter: names::RESULTS_SUBJECTS.to_owned(),
        settings: config.topology.results.clone(),
    };
    let advisories = queue::Driver {
        what: "max-deliveries advisory",
        concurrency: 1,
        batch: 16,
        expires: Duration::from_secs(5),
        backoff: queue::Backoff::default(),
        attempt_limit: None,
    };
    let advisories_spec = queue::ConsumerSpec {
        stream: names::ADVISORIES_STREAM.to_owned(),
        name: names::ADVISORY_CONSUMER.to_owned(),
        filter: names::PAGES_MAX_DELIVERIES_ADVISORIES.to_owned(),
        settings: config.topology.results.clone(),
    };
    let topology = config.topology.clone();
    let js = deps.js.clone();
    let handler = Arc::new(Aggregator {
        config,
        deps,
        kv,
        locks: JobLocks::new(),
    });
    let advisory_handler = Arc::new(Advisories(Arc::clone(&handler)));
    tokio::try_join!(
        results.run(&js, &topology, &results_spec, handler, shutdown.clone()),
        advisories.run(&js, &topology, &advisories_spec, advisory_handler, shutdown),
    )?;
    info!("aggregator stopped");
    Ok(())
}

/// The aggregator's handling of results.
struct Aggregator {
    config: StageConfig,
    deps: Deps,
    kv: kv::Store,
    locks: JobLocks,
}

/// Results of one job take turns at its state within this aggregator:
/// side by side they would only race for the state's revision (each lost
/// race costs a read and a write again; 8 at once cost 6 retries a page).
/// Aggregators in other processes still meet by compare-and-set. Jobs share
/// a lock only when their ids hash alike, so distinct jobs rarely wait.
struct JobLocks(Vec<tokio::sync::Mutex<()>>);

impl JobLocks {
    fn new() -> Self {
        Self((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    async fn lock(&self, job_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        job_id.hash(&mut hasher);
        self.0[hasher.finish() as usize % self.0.len()].lock().await
    }
}

/// The aggregator's handling of max-deliveries advisories.
struct Advisories(Arc<Aggregator>);

/// A max-deliveries advisory as JetStream publishes it.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

/// A page that exhausted its deliveries becomes a page failure, and its job
/// message is removed so that nothing stays stuck in the page stream.
impl Handler for Advisories {
    type Job = MaxDeliveries;
    type Error = RecordError;

    fn decode(&self, payload: &[u8]) -> Result<MaxDeliveries, RecordError> {
        Ok(serde_json::from_slice(payload)?)
    }

    fn span(&self, advisory: &MaxDeliveries, _delivery: &Delivery) -> tracing::Span {
        info_span!("max_deliveries", seq = advisory.stream_seq)
    }

    async fn handle(
        &self,
        advisory: &MaxDeliveries,
        _delivery: &Delivery,
    ) -> Result<Handled, RecordError> {
        let deps = &self.0.deps;
        let stream = deps
            .js
            .get_stream(names::PAGES_STREAM)
            .await
            .map_err(|e| RecordError::PageStream(e.to_string()))?;
        let page_msg = match stream.get_raw_message(advisory.stream_seq).await {
            Ok(m) => m,
            Err(e) => {
                // Already gone: it was acknowledged late, or handled before.
                info!(
                    seq = advisory.stream_seq,
                    "page job of an advisory is gone: {e}"
                );
                return Ok(Handled::Done);
            }
        };
        let Some((job_id, page)) = names::parse_page_subject(page_msg.subject.as_str()) else {
            warn!(subject = %page_msg.subject, "advisory for a subject that is not a page job");
            return Ok(Handled::Done);
        };
        let failure = PageFailure {
            v: SCHEMA_VERSION,
            job_id: job_id.clone(),
            page,
            worker: self.0.config.name.clone(),
            error: format!(
                "page was delivered {} times without finishing: the workers that took it crashed or hung",
                advisory.deliveries
            ),
            deliveries: advisory.deliveries,
        };
        warn!(%job_id, page, deliveries = advisory.deliveries, "page gave up after max deliveries");
        publish_acked(
            &deps.js,
            names::result_subject(&job_id, page),
            names::result_msg_id(&job_id, page, advisory.deliveries),
            ResultMessage::Failure(failure).encode(),
        )
        .await?;
        metrics::counter!("pagefleet_pages_failed_total", "stage" => "max-deliveries").increment(1);
        let _ = stream.delete_message(advisory.stream_seq).await;
        Ok(Handled::Done)
    }
}

impl Handler for Aggregator {
    type Job = ResultMessage;
    type Error = RecordError;

    fn decode(&self, payload: &[u8]) -> Result<ResultMessage, RecordError> {
        let result = ResultMessage::decode(payload)?;
        if !names::valid_job_id(result.job_id()) {
            return Err(RecordError::InvalidJobId(result.job_id().to_owned()));
        }
        Ok(result)
    }

    fn span(&self, result: &ResultMessage, delivery: &Delivery) -> tracing::Span {
        let page = match result {
            ResultMessage::Page(p) => Some(p.page),
            ResultMessage::Failure(f) => Some(f.page),
            ResultMessage::Manifest(_) => None,
        };
        let span = info_span!(
            "aggregate",
            job_id = %result.job_id(),
            page,
            worker = %self.config.name,
            trace_id = tracing::field::Empty,
        );
        pagefleet_stagekit::trace::follow(&span, delivery.headers.as_ref());
        span
    }

    async fn handle(
        &self,
        result: &ResultMessage,
        _delivery: &Delivery,
    ) -> Result<Handled, RecordError> {
        let started = std::time::Instant::now();
        let recorded = record(&self.deps, &self.kv, &self.locks, result).await;
        metrics::histogram!("pagefleet_stage_seconds", "stage" => "aggregate_result")
            .record(started.elapsed().as_secs_f64());
        recorded.map(|()| Handled::Done)
    }
}

/// Records one result in the job's state; finishes the job when it is complete.
async fn record(
    deps: &Deps,
    kv: &kv::Store,
    locks: &JobLocks,
    result: &ResultMessage,
) -> Result<(), RecordError> {
    let job_id = result.job_id();
    // A late result of a job that has ended (cancelled, or removed) is
    // dropped before it writes anything: a removed job's objects stay gone.
    let entry = kv
        .get(job_id)
        .await
        .map_err(|e| StateError::Unavailable(e.to_string()))?;
    if let Some(entry) = entry
        && let Ok(state) = JobState::decode(&entry)
        && ended(&state)
    {
        return Ok(());
    }
    // The page's full result goes to storage first: its record only says
    // it is there.
    if let ResultMessage::Page(page) = result {
        store::put(
            deps.store.as_ref(),
            &names::keys::page_result(job_id, page.page),
            page.encode(),
        )
        .await?;
    }
    let turn = locks.lock(job_id).await;
    let (state, page) = match result {
        ResultMessage::Manifest(m) => {
            let state = update(kv, job_id, |s| {
                if ended(s) || s.manifest.is_some() {
                    return false;
                }
                s.manifest = Some(m.clone());
                true
            })
            .await?;
            (state, None)
        }
        ResultMessage::Page(_) | ResultMessage::Failure(_) => {
            let Some((page, record)) = page_record(result) else {
                return Ok(());
            };
            let recorded = record_page(&deps.js, kv, job_id, page, &record, |s| {
                if ended(s) {
                    return false;
                }
                s.count_page(page, record.error.as_deref());
                true
            })
            .await?;
            match recorded {
                PageRecorded::New(state) => (state, Some((page, record.ok))),
                // A page read again after its result was recorded (an ack
                // lost to a NATS restart): the first result stays, the
                // extra delivery is counted.
                PageRecorded::Before(before, state) => {
                    if record.deliveries > before.deliveries {
                        raise_deliveries(kv, job_id, page, record.deliveries).await?;
                    }
                    (state, Some((page, before.ok)))
                }
                PageRecorded::Refused(_) => return Ok(()),
            }
        }
    };
    drop(turn);
    let mut event = JobEvent::of_state(&state, EventKind::Progress, state.status, now_ms());
    event.page = page.map(|(page, _)| page);
    event.page_ok = page.map(|(_, ok)| ok);
    let _ = deps
        .js
        .publish(
            names::event_subject(job_id, EventKind::Progress.token()),
            event.encode().into(),
        )
        .await;
    if state.is_complete() {
        finish(deps, kv, state).await?;
    }
    Ok(())
}

/// Whether a job takes no more results: cancelled, or removed.
fn ended(state: &JobState) -> bool {
    state.status == JobStatus::Cancelled || state.removed.is_some()
}

/// A page result's or failure's page and the record it leaves.
fn page_record(result: &ResultMessage) -> Option<(u32, PageRecord)> {
    Some(match result {
        ResultMessage::Page(p) => (
            p.page,
            PageRecord {
                ok: true,
                worker: p.worker.clone(),
                deliveries: p.deliveries,
                processing_ms: p.ocr.timings.total_ms,
                error: None,
            },
        ),
        ResultMessage::Failure(f) => (
            f.page,
            PageRecord {
                ok: false,
                worker: f.worker.clone(),
                deliveries: f.deliveries,
                processing_ms: 0.0,
                error: Some(f.error.clone()),
            },
        ),
        ResultMessage::Manifest(_) => return None,
    })
}

/// Every page's record of a complete job, in page order: a few dozen bytes
/// a page, read side by side.
async fn page_records(
    kv: &kv::Store,
    state: &JobState,
) -> Result<Vec<(u32, PageRecord)>, RecordError> {
    let pages = state.manifest.as_ref().map_or(0, |m| m.total_pages);
    let job_id = state.job_id.as_str();
    futures::stream::iter(1..=pages)
        .map(|page| async move {
            let unavailable = |e: &dyn std::fmt::Display| StateError::Unavailable(e.to_string());
            let bytes = kv
                .get(names::page_record_key(job_id, page))
                .await
                .map_err(|e| unavailable(&e))?
                .ok_or_else(|| {
                    unavailable(&format_args!("job {job_id}: page {page} has no record"))
                })?;
            let record = PageRecord::decode(&bytes).map_err(|source| StateError::Corrupt {
                job_id: job_id.to_owned(),
                source,
            })?;
            Ok::<_, RecordError>((page, record))
        })
        .buffered(32)
        .try_collect()
        .await
}

/// A job's outputs, each in a temporary file, and its final metrics.
struct Assembled {
    metrics: report::JobMetrics,
    files: Vec<(Format, tempfile::NamedTempFile)>,
}

/// Writes a job's outputs in two passes over its stored page results, one
/// page at a time: the first takes the metrics and what running headers
/// and heading levels are decided from, the second writes every format
/// (the searchable PDF among them) page by page into temporary files. The
/// memory this takes does not grow with the document's pages.
async fn assemble(
    deps: &Deps,
    state: &JobState,
    records: Vec<(u32, PageRecord)>,
    formats: Vec<Format>,
    end_ms: u64,
) -> Result<Assembled, RecordError> {
    use crate::pdf::{PageImage, PdfError, Searchable, Source};
    use std::io::Read;

    let job_id = state.job_id.clone();
    // The source document, for the searchable PDF: a PDF keeps its pages,
    // an image document gets its page images.
    let source = if formats.contains(&Format::Pdf) {
        let file = tempfile::NamedTempFile::new()?;
        match store::download(&deps.store, &names::keys::source(&job_id), file.path()).await {
            Ok(()) => {
                let mut head = vec![0; 1024];
                let n = std::fs::File::open(file.path())?.read(&mut head)?;
                head.truncate(n);
                let is_pdf =
                    pagefleet_schemas::sniff(&head) == Some(pagefleet_schemas::DocumentKind::Pdf);
                Some(Ok((file, is_pdf)))
            }
            Err(e) if e.is_transient() => return Err(e.into()),
            // A source that is gone is the PDF's error, like a document
            // PDFium cannot open.
            Err(e) => Some(Err(PdfError::from(e))),
        }
    } else {
        None
    };
    let (store, pdfium, state) = (deps.store.clone(), deps.pdfium.clone(), state.clone());
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let outcome =
            |page: u32, record: &PageRecord| -> Result<report::PageOutcome, RecordError> {
                let read = if record.ok {
                    let key = names::keys::page_result(&job_id, page);
                    let result =
                        PageResult::decode(&runtime.block_on(store::get(store.as_ref(), &key))?)?;
                    Some((result.ocr, result.scale))
                } else {
                    None
                };
                Ok(report::PageOutcome {
                    page,
                    record: record.clone(),
                    read,
                })
            };
        let head = report::JobHead {
            job_id: &state.job_id,
            manifest: state.manifest.as_ref(),
            first_seen_ms: state.first_seen_ms,
            cancelled: state.status == JobStatus::Cancelled,
            language: state
                .submission
                .as_ref()
                .map(|s| s.language.as_str())
                .filter(|l| !l.is_empty())
                .unwrap_or("auto"),
        };
        let mut survey = report::Survey::default();
        for (page, record) in &records {
            survey.add(&outcome(*page, record)?);
        }
        let mut plan = survey.plan(head, end_ms);

        let mut files = Vec::new();
        let mut writers = Vec::new();
        for format in formats.iter().copied() {
            let file = tempfile::NamedTempFile::new()?;
            let out = std::io::BufWriter::new(file.reopen()?);
            if let Some(writer) = report::writer(format, &plan, out)? {
                writers.push(writer);
                files.push((format, file));
            }
        }
        let mut pdf_error = None;
        let bound = match source {
            Some(Ok(source)) => match pagefleet_stagekit::pdfium::Pdf::bind(&pdfium) {
                Ok(pdf) => Some((pdf, source)),
                Err(e) => {
                    pdf_error = Some(PdfError::Pdfium(e.to_string()));
                    None
                }
            },
            Some(Err(e)) => {
                pdf_error = Some(e);
                None
            }
            None => None,
        };
        let mut searchable = match &bound {
            Some((pdf, (file, true))) => Some(Searchable::open(pdf, Source::Pdf(file.path()))),
            Some((pdf, (_, false))) => {
                let (store, runtime, job_id) = (store.clone(), runtime.clone(), job_id.clone());
                let image = move |page: u32| {
                    let key = names::keys::page_image(&job_id, page);
                    match runtime.block_on(store::get(store.as_ref(), &key)) {
                        Ok(bytes) => PageImage::from_file_bytes(&bytes)
                            .map(Some)
                            .map_err(|message| PdfError::Image { page, message }),
                        Err(StoreError::NotFound(_)) => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                };
                let dpi = state.manifest.as_ref().map_or(0.0, |m| m.dpi);
                Some(Searchable::open(
                    pdf,
                    Source::Images {
                        dpi,
                        image: Box::new(image),
                    },
                ))
            }
            None => None,
        }
        .and_then(|opened| opened.map_err(|e| pdf_error = Some(e)).ok());
        // A store that is down is waited for; any other PDF error is the
        // PDF's alone, which the other outputs report.
        let mut pdf_failed = |e: PdfError| match e {
            PdfError::Store(e) if e.is_transient() => Err(RecordError::Store(e)),
            e => {
                pdf_error = Some(e);
                Ok(())
            }
        };
        for (page, record) in &records {
            let entry = plan.entry(outcome(*page, record)?);
            if let Some(pdf) = searchable.as_mut()
                && let Err(e) = pdf.page(entry.page, entry.ocr.as_ref())
            {
                searchable = None;
                pdf_failed(e)?;
            }
            for writer in &mut writers {
                writer.page(&entry)?;
            }
        }
        if let Some(pdf) = searchable {
            let file = tempfile::NamedTempFile::new()?;
            let pages = state.manifest.as_ref().map_or(0, |m| m.total_pages);
            match pdf.save(pages, file.path()) {
                Ok(()) => files.push((Format::Pdf, file)),
                Err(e) => pdf_failed(e)?,
            }
        }
        if let Some(e) = pdf_error {
            warn!("{e}");
            plan.metrics.errors.push(e.to_string());
        }
        for writer in writers {
            writer.finish(&plan.metrics)?;
        }
        Ok(Assembled {
            metrics: plan.metrics,
            files,
        })
    })
    .await
    .map_err(|e| RecordError::Output(std::io::Error::other(format!("assembly task: {e}"))))?
}

/// Writes the outputs, marks the job finished (once, by compare-and-set) and
/// publishes its completion event (deduplicated by message id, so a finisher
/// that crashed halfway and its successor publish it once).
async fn finish(deps: &Deps, kv: &kv::Store, state: JobState) -> Result<(), RecordError> {
    let job_id = state.job_id.clone();
    let mut end_ms = state.finished_at_ms.unwrap_or_else(now_ms);
    if state.status == JobStatus::Running {
        let records = page_records(kv, &state).await?;
        let requested = state
            .submission
            .as_ref()
            .map(|s| s.formats.clone())
            .unwrap_or_default();
        let asked = Format::asked(&requested);
        // A bucket-triggered job also gets its outputs beside its input.
        let output_base = state
            .submission
            .as_ref()
            .and_then(|s| s.output_base.clone());
        let keys_of = |format: Format| {
            let mut keys = vec![names::keys::output(&job_id, format)];
            keys.extend(
                output_base
                    .as_ref()
                    .filter(|_| asked.contains(&format))
                    .map(|base| format!("{base}.{}", format.extension())),
            );
            keys
        };
        let pages = records.len();
        let assembled = async {
            let assembled =
                assemble(deps, &state, records, Format::written(&requested), end_ms).await?;
            for (format, file) in &assembled.files {
                for key in keys_of(*format) {
                    store::upload(&deps.store, &key, file.path()).await?;
                }
            }
            Ok::<_, RecordError>(assembled)
        }
        .instrument(info_span!("result_write", pages))
        .await?;
        let metrics = serde_json::to_value(&assembled.metrics).ok();
        let final_state = update(kv, &job_id, |s| {
            if s.status != JobStatus::Running {
                return false;
            }
            s.status = s.final_status();
            s.finished_at_ms = Some(end_ms);
            s.metrics = metrics.clone();
            true
        })
        .await?;
        end_ms = final_state.finished_at_ms.unwrap_or(end_ms);
        info!(status = ?final_state.status, pages, "job finished");
        let status = match final_state.status {
            JobStatus::Success => "success",
            JobStatus::PartialSuccess => "partial_success",
            JobStatus::Failed | JobStatus::Running => "failed",
            JobStatus::Cancelled => "cancelled",
        };
        let start_ms = final_state
            .manifest
            .as_ref()
            .map_or(final_state.first_seen_ms, |m| m.submitted_at_ms);
        metrics::counter!("pagefleet_jobs_finished_total", "status" => status).increment(1);
        metrics::histogram!("pagefleet_job_duration_seconds", "status" => status)
            .record(end_ms.saturating_sub(start_ms) as f64 / 1000.0);
    }
    let event = JobEvent::of_state(&state, EventKind::Completed, state.final_status(), end_ms);
    publish_acked(
        &deps.js,
        names::event_subject(&job_id, EventKind::Completed.token()),
        names::completed_msg_id(&job_id),
        event.encode(),
    )
    .await?;
    // The outputs hold every page now; the pages' results are not kept
    // (a job of text pages: 29 KB a page). A finish retried after a crash
    // here finds the job ended and only deletes them again.
    store::delete_prefix(&deps.store, &names::keys::page_results(&job_id)).await?;
    Ok(())
}
