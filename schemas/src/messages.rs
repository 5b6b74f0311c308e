//! Messages that cross NATS, encoded with MessagePack (named fields, so a
//! reader tolerates fields it does not know). Each carries the schema version
//! it was written with.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::PageOcr;

/// Version of the message schema written by this build.
pub const SCHEMA_VERSION: u16 = 1;

/// Milliseconds since the Unix epoch, the time unit of every message.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not MessagePack of the expected shape.
    #[error("undecodable message: {0}")]
    Format(#[from] rmp_serde::decode::Error),
    /// Not JSON of the expected shape (job events).
    #[error("undecodable event: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a newer, incompatible schema.
    #[error("message schema version {0} is newer than {SCHEMA_VERSION}")]
    Version(u16),
}

/// A message type of the pipeline.
pub trait Message: Serialize + DeserializeOwned {
    /// The schema version the message was written with.
    fn version(&self) -> u16;

    /// MessagePack bytes.
    fn encode(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes and checks the schema version.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let msg: Self = rmp_serde::from_slice(bytes)?;
        if msg.version() > SCHEMA_VERSION {
            return Err(DecodeError::Version(msg.version()));
        }
        Ok(msg)
    }
}

macro_rules! message {
    ($($t:ty),*) => {$(
        impl Message for $t {
            fn version(&self) -> u16 {
                self.v
            }
        }
    )*};
}

/// A document to rasterize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentJob {
    /// Schema version.
    pub v: u16,
    /// The job's id.
    pub job_id: String,
    /// The document's file name as submitted.
    pub filename: String,
    /// Object-store key of the document.
    pub source_key: String,
    /// Size of the document.
    pub file_size_bytes: u64,
    /// Resolution PDF pages are rendered at, and images that declare none
    /// are taken at.
    pub dpi: f32,
    /// Model profile the pages are read with.
    pub profile: String,
    /// Pixel budget per page.
    pub max_pixels: u64,
    /// Submission time, milliseconds since the Unix epoch.
    pub submitted_at_ms: u64,
    /// Most pages this job may have; 0 leaves the rasterizer's own limit.
    #[serde(default)]
    pub max_pages: u32,
    /// What to do with PDF pages that already carry text.
    #[serde(default)]
    pub text_layer: crate::TextLayer,
    /// The document's language as the job names it (`auto`, or codes such
    /// as `en,de`: [`crate::language::Language`]'s form).
    #[serde(default = "crate::language::auto")]
    pub language: String,
}

/// A page to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageJob {
    /// Schema version.
    pub v: u16,
    /// The job's id.
    pub job_id: String,
    /// Page number, counted from 1.
    pub page: u32,
    /// Pages in the document.
    pub page_count: u32,
    /// Object-store key of the page image.
    pub image_key: String,
    /// Model profile.
    pub profile: String,
    /// Factor the page was scaled by to fit the pixel budget.
    pub scale: f64,
    /// The page image's resolution, pixels per inch of the page as printed,
    /// when it is the page's own: a PDF page's, or one its image declares
    /// (0 when not known: an image that declares none, older rasterizers).
    #[serde(default)]
    pub dpi: f32,
    /// When the page job was published, milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// The job's language, which decides what reads the page.
    #[serde(default = "crate::language::auto")]
    pub language: String,
    /// Object-store key of the page's own text ([`crate::TextLayerLines`],
    /// MessagePack), for a PDF page with a text layer under text layer
    /// `auto`: the worker takes the page's text from it when it agrees with
    /// the pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_key: Option<String>,
}

/// A page read successfully.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageResult {
    /// Schema version.
    pub v: u16,
    /// The job's id.
    pub job_id: String,
    /// Page number, counted from 1.
    pub page: u32,
    /// The worker that read it.
    pub worker: String,
    /// Milliseconds between the page job's publication and its pickup.
    pub queue_wait_ms: u64,
    /// How many times the page job was delivered.
    pub deliveries: u64,
    /// Factor the page was scaled by to fit the pixel budget.
    #[serde(default = "one")]
    pub scale: f64,
    /// What was read.
    pub ocr: PageOcr,
}

fn one() -> f64 {
    1.0
}

/// A page that will not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageFailure {
    /// Schema version.
    pub v: u16,
    /// The job's id.
    pub job_id: String,
    /// Page number, counted from 1.
    pub page: u32,
    /// The worker or stage that gave up on it.
    pub worker: String,
    /// Why.
    pub error: String,
    /// How many times the page job was delivered.
    pub deliveries: u64,
}

/// What the rasterizer learned about a document: how many pages to expect, or
/// why there are none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobManifest {
    /// Schema version.
    pub v: u16,
    /// The job's id.
    pub job_id: String,
    /// The document's file name.
    pub filename: String,
    /// Size of the document.
    pub file_size_bytes: u64,
    /// Submission time, milliseconds since the Unix epoch.
    pub submitted_at_ms: u64,
    /// Pages in the document (0 when it could not be opened).
    pub total_pages: u32,
    /// Why the document could not be opened, if it could not.
    pub error: Option<String>,
    /// Resolution the pages were rendered at, or that image pages are taken
    /// to have (0 in manifests of older rasterizers).
    #[serde(default)]
    pub dpi: f32,
}

/// A worker's heartbeat in the workers bucket. JSON rather than MessagePack:
/// operators read it with `nats kv get pagefleet-workers <worker>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    /// Schema version.
    pub v: u16,
    /// The worker's name.
    pub name: String,
    /// Model profile it serves.
    pub profile: String,
    /// `cpu` or `cuda`.
    pub execution_provider: String,
    /// Inference slots.
    pub slots: u32,
    /// `ready`, `starting` or `draining`.
    pub status: String,
    /// CPU use of the process since the last heartbeat, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory as a share of the machine's memory, percent.
    pub memory_percent: f64,
    /// Resident memory, MiB.
    pub memory_mb: f64,
    /// Seconds since the worker started.
    pub uptime_seconds: u64,
    /// Pages read since start.
    pub pages_done: u64,
    /// Pages failed since start.
    pub pages_failed: u64,
    /// Pages in hand now.
    pub pages_in_flight: u32,
    /// When it was sent, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

message!(
    DocumentJob,
    PageJob,
    PageResult,
    PageFailure,
    JobManifest,
    JobState,
    crate::TextLayerLines
);

/// Job events are for people and tools outside the pipeline (`nats sub`,
/// server-sent events): JSON, not MessagePack.
impl Message for JobEvent {
    fn version(&self) -> u16 {
        self.v
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let event: Self = serde_json::from_slice(bytes)?;
        if event.v > SCHEMA_VERSION {
            return Err(DecodeError::Version(event.v));
        }
        Ok(event)
    }
}

/// Anything on the result stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ResultMessage {
    /// A page was read.
    Page(PageResult),
    /// A page will not be read.
    Failure(PageFailure),
    /// The page count of a job.
    Manifest(JobManifest),
}

impl ResultMessage {
    /// MessagePack bytes.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes and checks the schema version.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let msg: Self = rmp_serde::from_slice(bytes)?;
        let v = match &msg {
            Self::Page(m) => m.v,
            Self::Failure(m) => m.v,
            Self::Manifest(m) => m.v,
        };
        if v > SCHEMA_VERSION {
            return Err(DecodeError::Version(v));
        }
        Ok(msg)
    }

    /// The job the message belongs to.
    pub fn job_id(&self) -> &str {
        match self {
            Self::Page(m) => &m.job_id,
            Self::Failure(m) => &m.job_id,
            Self::Manifest(m) => &m.job_id,
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Still running.
    Running,
    /// Every page was read.
    Success,
    /// Some pages were read, some failed.
    PartialSuccess,
    /// No page was read.
    Failed,
    /// Stopped on request before every page was read.
    Cancelled,
}

impl JobStatus {
    /// The status a job ends with: cancelled if it was; else failed with no
    /// page read, success with none failed, partial success otherwise.
    pub fn ended(cancelled: bool, ok: u32, failed: u32) -> Self {
        match (cancelled, ok, failed) {
            (true, _, _) => Self::Cancelled,
            (false, 0, _) => Self::Failed,
            (false, _, 0) => Self::Success,
            _ => Self::PartialSuccess,
        }
    }

    /// The status as it is spelled in JSON and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Success => "success",
            Self::PartialSuccess => "partial_success",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Kinds of job events; each is the last token of its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The document was accepted.
    Submitted,
    /// The page count is known.
    Rasterized,
    /// A page was read or failed.
    Progress,
    /// No worker has taken a page of the job for a while, and none serves
    /// its profile (the event's `waiting` says so).
    Waiting,
    /// The job is finished and its results are written.
    Completed,
}

impl EventKind {
    /// The subject token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Rasterized => "rasterized",
            Self::Progress => "progress",
            Self::Waiting => "waiting",
            Self::Completed => "completed",
        }
    }
}

/// An event of a job, for watchers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Schema version.
    pub v: u16,
    /// The job's id.
    pub job_id: String,
    /// What happened.
    pub kind: EventKind,
    /// Pages in the document, once known.
    pub total_pages: Option<u32>,
    /// Pages read so far.
    pub pages_done: u32,
    /// Pages failed so far.
    pub pages_failed: u32,
    /// Status (final on `Completed`).
    pub status: JobStatus,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// On `Waiting`: why no page is being read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// On `Progress`: the page this event is about, when it is one page's
    /// result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// On `Progress` with a page: whether it was read (true) or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_ok: Option<bool>,
}

impl JobEvent {
    /// An event of `kind` saying where `state` stands, with `status`.
    pub fn of_state(state: &JobState, kind: EventKind, status: JobStatus, at_ms: u64) -> Self {
        let (pages_done, pages_failed) = state.counts();
        Self {
            v: SCHEMA_VERSION,
            job_id: state.job_id.clone(),
            kind,
            total_pages: state.manifest.as_ref().map(|m| m.total_pages),
            pages_done,
            pages_failed,
            status,
            at_ms,
            waiting: None,
            page: None,
            page_ok: None,
        }
    }
}

/// What the aggregator records of one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageRecord {
    /// Read (true) or failed.
    pub ok: bool,
    /// Who read it or gave up on it.
    pub worker: String,
    /// Deliveries it took.
    pub deliveries: u64,
    /// Milliseconds of processing (0 for failures).
    pub processing_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
}

impl PageRecord {
    /// MessagePack bytes, as the page's key in the jobs bucket holds them.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Reads a page's record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// A job's state in the jobs bucket, updated with compare-and-set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// Schema version.
    pub v: u16,
    /// The job's id.
    pub job_id: String,
    /// From the manifest, once it arrived.
    pub manifest: Option<JobManifest>,
    /// Pages read so far. Each page's own record is a key of its own in
    /// the jobs bucket ([`crate::names::page_record_key`]), written with
    /// these counters in one atomic batch: a page result writes its own
    /// record and a state of constant size, never every page's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pages_done: u32,
    /// Pages failed so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pages_failed: u32,
    /// The first failed pages with why they failed (at most
    /// [`JobState::FAILURES_KEPT`]; every failure is in its page's record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<crate::view::FailedPage>,
    /// Running until the job is finished.
    pub status: JobStatus,
    /// When the aggregator first saw the job, milliseconds since the Unix epoch.
    pub first_seen_ms: u64,
    /// When it finished.
    pub finished_at_ms: Option<u64>,
    /// What ingest recorded when the job was submitted (absent for jobs
    /// whose document job was published by other means).
    #[serde(default)]
    pub submission: Option<Submission>,
    /// Set when the job was removed (deleted, or expired): what is left of
    /// the state is a tombstone, which keeps a late result from bringing the
    /// job back and lets its routes say where it went.
    #[serde(default)]
    pub removed: Option<Removed>,
    /// The job's metrics as `result.json` holds them, set when it finishes,
    /// so that its view never reads `result.json`.
    #[serde(default)]
    pub metrics: Option<serde_json::Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How and when a job was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Deleted on request, or expired.
    pub how: Removal,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Why a job's state, objects and events were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// `DELETE /v1/jobs/{id}`, `pagefleet delete`.
    Deleted,
    /// Its retention passed.
    Expired,
}

impl Removal {
    /// The word for it: `deleted`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Expired => "expired",
        }
    }
}

/// A job as ingest accepted it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The document's file name.
    pub filename: String,
    /// Where the document came from: `upload`, `s3://bucket/key`, ...
    pub source: String,
    /// Size of the document.
    pub file_size_bytes: u64,
    /// Model profile.
    pub profile: String,
    /// When, milliseconds since the Unix epoch.
    pub submitted_at_ms: u64,
    /// Object key the outputs are also written to, with each format's
    /// extension appended (bucket triggers write results beside the input).
    pub output_base: Option<String>,
    /// Output formats asked for (none: the default ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<crate::Format>,
    /// The document's language as the job names it.
    #[serde(default = "crate::language::auto")]
    pub language: String,
}

impl JobState {
    /// A job the aggregator has just heard of.
    pub fn new(job_id: &str, now_ms: u64) -> Self {
        Self {
            v: SCHEMA_VERSION,
            job_id: job_id.to_owned(),
            manifest: None,
            pages_done: 0,
            pages_failed: 0,
            failures: Vec::new(),
            status: JobStatus::Running,
            first_seen_ms: now_ms,
            finished_at_ms: None,
            submission: None,
            removed: None,
            metrics: None,
        }
    }

    /// The tombstone of this job once removed: its id, status and times,
    /// nothing of its pages or its document.
    pub fn tombstone(&self, how: Removal, at_ms: u64) -> Self {
        Self {
            removed: Some(Removed { how, at_ms }),
            status: self.status,
            finished_at_ms: self.finished_at_ms,
            ..Self::new(&self.job_id, self.first_seen_ms)
        }
    }

    /// Failed pages the state names, at most: the view shows them, the
    /// rest are counted (and in `result.json`).
    pub const FAILURES_KEPT: usize = 20;

    /// Pages read and pages failed.
    pub fn counts(&self) -> (u32, u32) {
        (self.pages_done, self.pages_failed)
    }

    /// Pages accounted for, read or failed.
    pub fn pages_recorded(&self) -> u32 {
        self.pages_done.saturating_add(self.pages_failed)
    }

    /// Counts one newly recorded page: read, or failed for `error`.
    pub fn count_page(&mut self, page: u32, error: Option<&str>) {
        match error {
            None => self.pages_done += 1,
            Some(error) => {
                self.pages_failed += 1;
                if self.failures.len() < Self::FAILURES_KEPT {
                    self.failures.push(crate::view::FailedPage {
                        page,
                        error: error.to_owned(),
                    });
                    self.failures.sort_by_key(|f| f.page);
                }
            }
        }
    }

    /// Whether every page of the manifest is accounted for.
    pub fn is_complete(&self) -> bool {
        self.manifest
            .as_ref()
            .is_some_and(|m| self.pages_recorded() >= m.total_pages)
    }

    /// The final status once complete.
    pub fn final_status(&self) -> JobStatus {
        let (ok, failed) = self.counts();
        JobStatus::ended(self.status == JobStatus::Cancelled, ok, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StepTimings, TextCounts};

    #[test]
    fn a_tombstone_keeps_the_id_status_and_times_in_under_200_bytes() {
        let mut state = JobState::new("0123456789abcdef0123456789abcdef", 1_795_400_404_751);
        state.status = JobStatus::Success;
        state.finished_at_ms = Some(1_795_400_405_347);
        state.metrics = Some(serde_json::json!({"total_pages": 1000, "errors": []}));
        state.submission = Some(Submission {
            filename: "long report.pdf".into(),
            ..Default::default()
        });
        let tombstone = state.tombstone(Removal::Expired, 1_796_000_000_000);
        let bytes = tombstone.encode();
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        let back = JobState::decode(&bytes).unwrap();
        assert_eq!(back.job_id, state.job_id);
        assert_eq!(back.status, JobStatus::Success);
        assert_eq!(back.finished_at_ms, state.finished_at_ms);
        assert_eq!(
            back.removed,
            Some(Removed {
                how: Removal::Expired,
                at_ms: 1_796_000_000_000
            })
        );
        assert!(back.metrics.is_none() && back.submission.is_none());
    }

    fn page_result() -> PageResult {
        PageResult {
            v: SCHEMA_VERSION,
            job_id: "j1".into(),
            page: 2,
            worker: "w-1".into(),
            queue_wait_ms: 5,
            deliveries: 1,
            scale: 1.0,
            ocr: PageOcr {
                width: 10,
                height: 20,
                rotation: 0,
                lines: vec![crate::OcrLine {
                    text: "zażółć".into(),
                    confidence: 0.9,
                    polygon: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
                    column: 0,
                    block: 0,
                    block_kind: crate::BlockKind::Heading,
                    cell: None,
                    words: Vec::new(),
                }],
                blocks: Vec::new(),
                counts: TextCounts {
                    lines: 1,
                    words: 1,
                    chars: 6,
                },
                avg_confidence: 0.9,
                timings: StepTimings::default(),
                text_source: Default::default(),
                layer_check: None,
            },
        }
    }

    #[test]
    fn messages_round_trip() {
        let job = DocumentJob {
            v: SCHEMA_VERSION,
            job_id: "j1".into(),
            filename: "a b.pdf".into(),
            source_key: "jobs/j1/source".into(),
            file_size_bytes: 3,
            dpi: 200.0,
            profile: "fast".into(),
            max_pixels: 8_000_000,
            submitted_at_ms: 1,
            max_pages: 0,
            text_layer: Default::default(),
            language: "fr,de".into(),
        };
        assert_eq!(DocumentJob::decode(&job.encode()).unwrap(), job);
        let result = ResultMessage::Page(page_result());
        assert_eq!(ResultMessage::decode(&result.encode()).unwrap(), result);
        let mut state = JobState::new("j1", 7);
        state.count_page(1, None);
        state.count_page(2, Some("unreadable"));
        assert_eq!(JobState::decode(&state.encode()).unwrap(), state);
        let record = PageRecord {
            ok: true,
            worker: "w".into(),
            deliveries: 1,
            processing_ms: 1.0,
            error: None,
        };
        assert_eq!(PageRecord::decode(&record.encode()).unwrap(), record);
    }

    #[test]
    fn newer_schemas_and_garbage_are_refused() {
        let mut r = page_result();
        r.v = SCHEMA_VERSION + 1;
        assert!(matches!(
            PageResult::decode(&r.encode()),
            Err(DecodeError::Version(_))
        ));
        assert!(matches!(
            PageJob::decode(b"\xc1garbage"),
            Err(DecodeError::Format(_))
        ));
    }

    #[test]
    fn job_state_completion_and_status() {
        let mut s = JobState::new("j", 0);
        assert!(!s.is_complete());
        s.manifest = Some(JobManifest {
            v: SCHEMA_VERSION,
            job_id: "j".into(),
            filename: "f".into(),
            file_size_bytes: 0,
            submitted_at_ms: 0,
            total_pages: 2,
            error: None,
            dpi: 200.0,
        });
        s.count_page(1, None);
        assert!(!s.is_complete());
        s.count_page(2, Some("unreadable"));
        assert!(s.is_complete());
        assert_eq!(s.final_status(), JobStatus::PartialSuccess);
        assert_eq!(s.counts(), (1, 1));
        assert_eq!(s.failures[0].page, 2);
        for page in 3..100 {
            s.count_page(page, Some("unreadable"));
        }
        assert_eq!(s.failures.len(), JobState::FAILURES_KEPT);
        assert_eq!(s.pages_failed, 98);
    }
}
