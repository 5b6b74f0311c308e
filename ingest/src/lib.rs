//! The ingest stage of pagefleet: the ways documents enter the pipeline.
//!
//! [`submit`] stores a document in object storage and publishes its document
//! job (and a `submitted` event). The HTTP API, NATS submission and bucket
//! triggers, still to come, all end in it.
//!
//! Writes: the source object, [`DocumentJob`] on `pagefleet.docs.<job_id>`,
//! [`JobEvent`] on `pagefleet.events.<job_id>.submitted`.

#![deny(unreachable_pub)]

use async_nats::jetstream;
use bytes::Bytes;
use pagefleet_schemas::bus::publish_acked;
use pagefleet_schemas::messages::{
    DocumentJob, EventKind, JobEvent, JobStatus, Message, SCHEMA_VERSION, now_ms,
};
use pagefleet_schemas::names;
use pagefleet_schemas::store::{self, Store, StoreError};

/// What to do with a submitted document.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitOptions {
    /// Resolution PDF pages are rendered at.
    pub dpi: f32,
    /// Model profile.
    pub profile: String,
    /// Pixel budget per page.
    pub max_pixels: u64,
    /// Job id to use (for idempotent submission); a new one when `None`.
    pub job_id: Option<String>,
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
    /// The job could not be published.
    #[error("publishing the document job: {0}")]
    Publish(String),
}

/// Stores `bytes` and publishes the document job. Returns the job id. Submitting
/// the same job id twice stores the same object and publishes one job (the
/// document job's `Nats-Msg-Id` is derived from the id).
pub async fn submit(
    js: &jetstream::Context,
    store: &Store,
    filename: &str,
    bytes: Bytes,
    options: &SubmitOptions,
) -> Result<String, SubmitError> {
    let job_id = match &options.job_id {
        Some(id) if names::valid_job_id(id) => id.clone(),
        Some(id) => return Err(SubmitError::InvalidJobId(id.clone())),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let source_key = names::keys::source(&job_id);
    let size = bytes.len() as u64;
    store::put(store.as_ref(), &source_key, bytes).await?;
    let job = DocumentJob {
        v: SCHEMA_VERSION,
        job_id: job_id.clone(),
        filename: filename.to_owned(),
        source_key,
        file_size_bytes: size,
        dpi: options.dpi,
        profile: options.profile.clone(),
        max_pixels: options.max_pixels,
        submitted_at_ms: now_ms(),
    };
    publish_acked(
        js,
        names::doc_subject(&job_id),
        names::doc_msg_id(&job_id),
        job.encode(),
    )
    .await
    .map_err(|e| SubmitError::Publish(e.to_string()))?;
    let event = JobEvent {
        v: SCHEMA_VERSION,
        job_id: job_id.clone(),
        kind: EventKind::Submitted,
        total_pages: None,
        pages_done: 0,
        pages_failed: 0,
        status: JobStatus::Running,
        at_ms: now_ms(),
    };
    // Events are for watchers; a lost one delays nobody.
    let _ = js
        .publish(
            names::event_subject(&job_id, EventKind::Submitted.token()),
            event.encode().into(),
        )
        .await;
    Ok(job_id)
}
