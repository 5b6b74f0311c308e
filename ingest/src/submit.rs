//! Submission: the one path every way in ends in. It records the job's state,
//! stores an uploaded document, and publishes the document job.

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use pagefleet_schemas::TextLayer;
use pagefleet_schemas::language::Language;
use pagefleet_schemas::messages::{
    DocumentJob, EventKind, JobEvent, JobState, JobStatus, Message, SCHEMA_VERSION, Submission,
    now_ms,
};
use pagefleet_schemas::names;
use pagefleet_stagekit::bus::publish_acked;
use pagefleet_stagekit::state;
use pagefleet_stagekit::store::{self, Store, StoreError};
use sha2::{Digest, Sha256};
use tracing::{Instrument, info_span};

/// What to do with a submitted document.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitOptions {
    /// Resolution PDF pages are rendered at, and images that declare none
    /// are taken at.
    pub dpi: f32,
    /// Model profile.
    pub profile: String,
    /// Pixel budget per page.
    pub max_pixels: u64,
    /// Job id to use; a new one when `None`.
    pub job_id: Option<String>,
    /// Submissions with the same key make one job, however often and however
    /// far apart they are repeated.
    pub idempotency_key: Option<String>,
    /// Most pages the document may have; 0 leaves the rasterizer's limit.
    pub max_pages: u32,
    /// Object key the outputs are also written to (with each format's
    /// extension appended).
    pub output_base: Option<String>,
    /// Output formats to write (empty: the default ones); `json` is always
    /// written.
    pub formats: Vec<pagefleet_schemas::Format>,
    /// What PDF pages that already carry text become.
    pub text_layer: TextLayer,
    /// The document's language, which decides what reads its pages.
    pub language: Language,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            dpi: 200.0,
            profile: "fast".to_owned(),
            max_pixels: pagefleet_schemas::DEFAULT_MAX_PIXELS,
            job_id: None,
            idempotency_key: None,
            max_pages: 0,
            output_base: None,
            formats: Vec::new(),
            text_layer: TextLayer::Auto,
            language: Language::AUTO,
        }
    }
}

/// The document of a submission.
#[derive(Debug, Clone)]
pub enum Document {
    /// Bytes to store first.
    Upload {
        /// The file name as given.
        filename: String,
        /// The document.
        bytes: Bytes,
    },
    /// An object already in the store, read in place.
    Stored {
        /// Its key in the store.
        key: String,
        /// Its size.
        size: u64,
        /// Where it came from, for the job's record (`s3://bucket/key`).
        source: String,
    },
}

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The job id cannot be a subject token.
    #[error("invalid job id {0:?}: use 1-64 letters, digits, '-' or '_'")]
    InvalidJobId(String),
    /// The document could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS did not take the job (or its record).
    #[error("publishing the document job: {0}")]
    Publish(String),
}

impl SubmitError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::InvalidJobId(_) => false,
            Self::Store(e) => e.is_transient(),
            Self::Publish(_) => true,
        }
    }
}

/// A job as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The job's id.
    pub job_id: String,
    /// False when the idempotency key named an earlier job: nothing new runs.
    pub created: bool,
}

/// Stores `bytes` and publishes the document job. Returns the job id.
/// Submitting the same job id twice stores the same object and publishes one
/// job (the document job's `Nats-Msg-Id` is derived from the id).
pub async fn submit(
    js: &jetstream::Context,
    store: &Store,
    filename: &str,
    bytes: Bytes,
    options: &SubmitOptions,
) -> Result<String, SubmitError> {
    let document = Document::Upload {
        filename: filename.to_owned(),
        bytes,
    };
    Ok(submit_document(js, store, document, options).await?.job_id)
}

/// Submits a document: claims its idempotency key (if any), records the
/// job's state, stores an upload, publishes the document job and a
/// `submitted` event.
pub async fn submit_document(
    js: &jetstream::Context,
    store: &Store,
    document: Document,
    options: &SubmitOptions,
) -> Result<Submitted, SubmitError> {
    // The root of the job's trace: the document job carries it onwards.
    let span = info_span!(
        "submit",
        job_id = tracing::field::Empty,
        profile = %options.profile,
        trace_id = tracing::field::Empty,
    );
    pagefleet_stagekit::trace::record_trace_id(&span);
    submit_in_span(js, store, document, options)
        .instrument(span)
        .await
}

async fn submit_in_span(
    js: &jetstream::Context,
    store: &Store,
    document: Document,
    options: &SubmitOptions,
) -> Result<Submitted, SubmitError> {
    let candidate = match &options.job_id {
        Some(id) if names::valid_job_id(id) => id.clone(),
        Some(id) => return Err(SubmitError::InvalidJobId(id.clone())),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let publish = |e: &dyn std::fmt::Display| SubmitError::Publish(e.to_string());
    let jobs = js
        .get_key_value(names::JOBS_BUCKET)
        .await
        .map_err(|e| publish(&e))?;
    let job_id = match &options.idempotency_key {
        None => candidate,
        Some(key) => {
            let claim = Claim::of(js, key).await?;
            let (mut job_id, mut fresh) = claim.take(&candidate).await?;
            let mut state = None;
            if !fresh {
                state = state_of(&jobs, &job_id).await?;
                // A key whose job was deleted or expired names a new job.
                if state.as_ref().is_some_and(|s| s.removed.is_some()) {
                    (job_id, fresh) = claim.take_from(&job_id, &candidate).await?;
                    state = if fresh {
                        None
                    } else {
                        state_of(&jobs, &job_id).await?
                    };
                }
            }
            // A repeat runs nothing, unless the first attempt stopped between
            // its claim and its document job.
            if !fresh && !interrupted(js, state.as_ref(), &job_id).await? {
                return Ok(Submitted {
                    job_id,
                    created: false,
                });
            }
            job_id
        }
    };
    tracing::Span::current().record("job_id", job_id.as_str());
    let (filename, source, source_key, size) = match document {
        Document::Upload { filename, bytes } => {
            let key = names::keys::source(&job_id);
            let size = bytes.len() as u64;
            store::put(store.as_ref(), &key, bytes)
                .instrument(info_span!("source_upload", bytes = size))
                .await?;
            (filename, "upload".to_owned(), key, size)
        }
        Document::Stored { key, size, source } => {
            let filename = key.rsplit('/').next().unwrap_or(&key).to_owned();
            (filename, source, key, size)
        }
    };
    let submitted_at_ms = now_ms();
    let submission = Submission {
        filename: filename.clone(),
        source,
        file_size_bytes: size,
        profile: options.profile.clone(),
        submitted_at_ms,
        output_base: options.output_base.clone(),
        formats: options.formats.clone(),
        language: options.language.to_string(),
    };
    // The record comes first, so that the aggregator knows where the outputs
    // go however fast the job finishes.
    state::update(&jobs, &job_id, |s: &mut JobState| {
        if s.submission.is_some() {
            return false;
        }
        s.submission = Some(submission.clone());
        s.first_seen_ms = s.first_seen_ms.min(submitted_at_ms);
        true
    })
    .await
    .map_err(|e| SubmitError::Publish(e.to_string()))?;
    let job = DocumentJob {
        v: SCHEMA_VERSION,
        job_id: job_id.clone(),
        filename,
        source_key,
        file_size_bytes: size,
        dpi: options.dpi,
        profile: options.profile.clone(),
        max_pixels: options.max_pixels,
        submitted_at_ms,
        max_pages: options.max_pages,
        text_layer: options.text_layer,
        language: options.language.to_string(),
    };
    publish_acked(
        js,
        names::doc_subject(&job_id),
        names::doc_msg_id(&job_id),
        job.encode(),
    )
    .await
    .map_err(|e| publish(&e))?;
    let event = JobEvent {
        v: SCHEMA_VERSION,
        job_id: job_id.clone(),
        kind: EventKind::Submitted,
        total_pages: None,
        pages_done: 0,
        pages_failed: 0,
        status: JobStatus::Running,
        at_ms: now_ms(),
        waiting: None,
        page: None,
        page_ok: None,
    };
    // Events are for watchers; a lost one delays nobody.
    let _ = js
        .publish(
            names::event_subject(&job_id, EventKind::Submitted.token()),
            event.encode().into(),
        )
        .await;
    Ok(Submitted {
        job_id,
        created: true,
    })
}

/// An idempotency key's claim in the submissions bucket: which job the key
/// names.
struct Claim {
    bucket: kv::Store,
    /// The key's digest (KV keys allow few characters; a digest fits any key).
    digest: String,
}

impl Claim {
    async fn of(js: &jetstream::Context, key: &str) -> Result<Self, SubmitError> {
        let bucket = js
            .get_key_value(names::SUBMISSIONS_BUCKET)
            .await
            .map_err(|e| SubmitError::Publish(e.to_string()))?;
        Ok(Self {
            bucket,
            digest: hex(&Sha256::digest(key.as_bytes())),
        })
    }

    /// The claim as it stands: the job it names, and its revision.
    async fn current(&self) -> Result<(String, u64), SubmitError> {
        let entry = self
            .bucket
            .entry(&self.digest)
            .await
            .map_err(|e| SubmitError::Publish(e.to_string()))?
            .ok_or_else(|| SubmitError::Publish(format!("claim {} vanished", self.digest)))?;
        Ok((
            String::from_utf8_lossy(&entry.value).into_owned(),
            entry.revision,
        ))
    }

    /// Claims the key for `candidate`: the job it names, and whether this
    /// call made the claim.
    async fn take(&self, candidate: &str) -> Result<(String, bool), SubmitError> {
        match self
            .bucket
            .create(&self.digest, Bytes::from(candidate.to_owned()))
            .await
        {
            Ok(_) => Ok((candidate.to_owned(), true)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                Ok((self.current().await?.0, false))
            }
            Err(e) => Err(SubmitError::Publish(e.to_string())),
        }
    }

    /// Moves the claim from the removed job `old` to `candidate`, by
    /// compare-and-set: the job it names now, and whether this call moved it
    /// (a concurrent repeat may have moved it first).
    async fn take_from(&self, old: &str, candidate: &str) -> Result<(String, bool), SubmitError> {
        let (named, revision) = self.current().await?;
        if named != old {
            return Ok((named, false));
        }
        match self
            .bucket
            .update(&self.digest, Bytes::from(candidate.to_owned()), revision)
            .await
        {
            Ok(_) => Ok((candidate.to_owned(), true)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Ok((self.current().await?.0, false))
            }
            Err(e) => Err(SubmitError::Publish(e.to_string())),
        }
    }
}

/// A job's state, if it has one.
async fn state_of(jobs: &kv::Store, job_id: &str) -> Result<Option<JobState>, SubmitError> {
    let publish = |e: &dyn std::fmt::Display| SubmitError::Publish(e.to_string());
    match jobs.get(job_id).await.map_err(|e| publish(&e))? {
        Some(bytes) => Ok(Some(JobState::decode(&bytes).map_err(|e| publish(&e))?)),
        None => Ok(None),
    }
}

/// Whether a claimed job never got as far as its document job: no state, or
/// a state that nobody has worked on and no document job waiting.
async fn interrupted(
    js: &jetstream::Context,
    state: Option<&JobState>,
    job_id: &str,
) -> Result<bool, SubmitError> {
    let publish = |e: &dyn std::fmt::Display| SubmitError::Publish(e.to_string());
    let Some(state) = state else {
        return Ok(true);
    };
    if state.status != JobStatus::Running || state.manifest.is_some() || state.pages_recorded() > 0
    {
        return Ok(false);
    }
    let docs = js
        .get_stream(names::DOCS_STREAM)
        .await
        .map_err(|e| publish(&e))?;
    let waiting = docs
        .get_last_raw_message_by_subject(&names::doc_subject(job_id))
        .await
        .is_ok();
    Ok(!waiting)
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
