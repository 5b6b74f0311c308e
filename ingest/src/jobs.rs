//! What clients ask of a job once it is submitted: its status and progress,
//! its results, its events, its cancellation and its deletion. The HTTP API
//! and the NATS service both answer from here.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use object_store::ObjectStoreExt;
use pagefleet_schemas::messages::{
    EventKind, JobEvent, JobState, JobStatus, Message, Removal, now_ms,
};
use pagefleet_schemas::{Format, names};
use pagefleet_stagekit::bus::publish_acked;
use pagefleet_stagekit::state;
use pagefleet_stagekit::store::{self, Store, StoreError};
use serde::Serialize;

use crate::intake::Intake;

pub use pagefleet_schemas::view::{FailedPage, JobView, Progress};

/// Why a job could not be looked at or changed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No such job.
    #[error("job {0} not found")]
    NotFound(String),
    /// The job is not finished: it has no results yet.
    #[error("job {0} is not finished")]
    NotFinished(String),
    /// The job has no output in that format.
    #[error("job {job_id} has no {format} output: it asked for {asked}")]
    NotAsked {
        /// The job.
        job_id: String,
        /// The format.
        format: Format,
        /// What it has.
        asked: String,
    },
    /// The job already ended.
    #[error("job {job_id} already ended: {status}")]
    Ended {
        /// The job.
        job_id: String,
        /// How.
        status: &'static str,
    },
    /// The job was removed: deleted, or expired.
    #[error("job {job_id} {}", gone(*how, *at_ms))]
    Gone {
        /// The job.
        job_id: String,
        /// How.
        how: Removal,
        /// When, milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// The job is still running: it cannot be removed.
    #[error("job {0} is running: cancel it first (DELETE with ?purge=true does both)")]
    Running(String),
    /// NATS or the store failed.
    #[error("{0}")]
    Unavailable(String),
}

/// Where a removed job went, in words.
fn gone(how: Removal, at_ms: u64) -> String {
    match how {
        Removal::Deleted => format!("was deleted at {}", rfc3339(at_ms)),
        Removal::Expired => format!(
            "expired at {}: its retention had passed, and its results were removed",
            rfc3339(at_ms)
        ),
    }
}

/// A time as RFC 3339, to the second.
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn unavailable(e: impl std::fmt::Display) -> JobError {
    JobError::Unavailable(e.to_string())
}

/// The jobs bucket.
pub async fn jobs_bucket(js: &jetstream::Context) -> Result<kv::Store, JobError> {
    js.get_key_value(names::JOBS_BUCKET)
        .await
        .map_err(unavailable)
}

/// The job's state, if it exists.
pub async fn load(js: &jetstream::Context, job_id: &str) -> Result<JobState, JobError> {
    if !names::valid_job_id(job_id) {
        return Err(JobError::NotFound(job_id.to_owned()));
    }
    let bytes = jobs_bucket(js)
        .await?
        .get(job_id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| JobError::NotFound(job_id.to_owned()))?;
    let state = JobState::decode(&bytes).map_err(unavailable)?;
    match state.removed {
        Some(removed) => Err(JobError::Gone {
            job_id: job_id.to_owned(),
            how: removed.how,
            at_ms: removed.at_ms,
        }),
        None => Ok(state),
    }
}

/// Removes an ended job: its state becomes a tombstone first (so that a
/// late result of it changes nothing and its routes answer 410), then every
/// object under `jobs/<id>/` and its events go. A running job is refused.
pub async fn remove(
    js: &jetstream::Context,
    store: &Store,
    job_id: &str,
    how: Removal,
) -> Result<JobState, JobError> {
    let before = load(js, job_id).await?;
    if before.status == JobStatus::Running {
        return Err(JobError::Running(job_id.to_owned()));
    }
    let kv = jobs_bucket(js).await?;
    let at_ms = now_ms();
    let tombstone = state::update(&kv, job_id, |s| {
        if s.status == JobStatus::Running || s.removed.is_some() {
            return false;
        }
        *s = s.tombstone(how, at_ms);
        true
    })
    .await
    .map_err(|e| JobError::Unavailable(e.to_string()))?;
    match tombstone.removed {
        Some(removed) if removed.at_ms != at_ms => {
            return Err(JobError::Gone {
                job_id: job_id.to_owned(),
                how: removed.how,
                at_ms: removed.at_ms,
            });
        }
        None => return Err(JobError::Running(job_id.to_owned())),
        Some(_) => {}
    }
    purge(js, store, job_id).await?;
    Ok(tombstone)
}

/// Drops a removed job's tombstone from the jobs bucket, leaving no
/// marker: its routes answer 404 from then on.
pub async fn forget(js: &jetstream::Context, job_id: &str) -> Result<(), JobError> {
    let stream = js
        .get_stream(format!("KV_{}", names::JOBS_BUCKET))
        .await
        .map_err(unavailable)?;
    stream
        .purge()
        .filter(format!("$KV.{}.{job_id}", names::JOBS_BUCKET))
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Deletes what a removed job left: its objects, its events and its pages'
/// records. Deleting again is harmless.
pub async fn purge(js: &jetstream::Context, store: &Store, job_id: &str) -> Result<(), JobError> {
    pagefleet_stagekit::store::delete_prefix(store, &format!("jobs/{job_id}"))
        .await
        .map_err(unavailable)?;
    for (stream, filter) in [
        (
            names::EVENTS_STREAM.to_owned(),
            names::events_of_job(job_id),
        ),
        (
            format!("KV_{}", names::JOBS_BUCKET),
            names::page_records_subject(job_id),
        ),
    ] {
        let stream = js.get_stream(stream).await.map_err(unavailable)?;
        stream.purge().filter(filter).await.map_err(unavailable)?;
    }
    Ok(())
}

/// The job as clients see it, with its metrics once finished; a job whose
/// pages no worker has taken for `intake.limits.waiting_after` says why.
pub async fn view(intake: &Intake, job_id: &str) -> Result<JobView, JobError> {
    let state = load(&intake.js, job_id).await?;
    // From the state alone: the view costs the same whatever the job's
    // length (result.json is never read for it).
    let mut view = view_of(&state, state.metrics.clone());
    view.failed_pages = state.failures.clone();
    let now = now_ms();
    let rasterized_at = state
        .manifest
        .as_ref()
        .filter(|m| m.total_pages > 0)
        .map(|_| state.first_seen_ms);
    if let (JobStatus::Running, true, Some(since)) =
        (state.status, state.pages_recorded() == 0, rasterized_at)
        && now.saturating_sub(since) >= intake.limits.waiting_after.as_millis() as u64
        && crate::fleet::serves(&intake.js, &view.profile, now).await == Some(false)
    {
        view.status = "waiting".to_owned();
        view.waiting = Some(format!("no worker serves profile {}", view.profile));
    }
    Ok(view)
}

/// The view of a state.
pub fn view_of(state: &JobState, metrics: Option<serde_json::Value>) -> JobView {
    let (pages_done, pages_failed) = state.counts();
    let submission = state.submission.clone().unwrap_or_default();
    let manifest = state.manifest.as_ref();
    let status = match state.status {
        JobStatus::Running if manifest.is_none() && state.pages_recorded() == 0 => "queued",
        other => other.as_str(),
    };
    JobView {
        job_id: state.job_id.clone(),
        status: status.to_owned(),
        waiting: None,
        filename: manifest.map_or(submission.filename, |m| m.filename.clone()),
        source: submission.source,
        profile: submission.profile,
        // A job submitted before jobs named a language was read as `auto`.
        language: if submission.language.is_empty() {
            pagefleet_schemas::language::auto()
        } else {
            submission.language
        },
        formats: Format::written(&submission.formats),
        progress: Progress {
            pages_done,
            pages_failed,
            total_pages: manifest.map(|m| m.total_pages),
        },
        submitted_at_ms: manifest.map_or(state.first_seen_ms, |m| m.submitted_at_ms),
        finished_at_ms: state.finished_at_ms,
        error: manifest.and_then(|m| m.error.clone()),
        metrics,
        failed_pages: Vec::new(),
    }
}

fn page_status(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
}

/// The most recently changed jobs, newest submission first, at most
/// `limit`: the jobs bucket's job keys in the order of their last change,
/// loaded from the newest back until `limit` jobs that are not removed are
/// found.
pub async fn recent(js: &jetstream::Context, limit: usize) -> Result<Vec<JobView>, JobError> {
    let kv = jobs_bucket(js).await?;
    let mut views = Vec::with_capacity(limit);
    for key in job_keys(js).await?.iter().rev() {
        if views.len() >= limit {
            break;
        }
        if let Some(bytes) = kv.get(key).await.map_err(unavailable)? {
            let state = JobState::decode(&bytes).map_err(unavailable)?;
            // A removed job leaves the list.
            if state.removed.is_none() {
                views.push(view_of(&state, None));
            }
        }
    }
    views.sort_by_key(|v| std::cmp::Reverse(v.submitted_at_ms));
    Ok(views)
}

/// Every job's key in the jobs bucket, in the order of their last change
/// (oldest first). It reads the bucket's stream once, headers only, job
/// states only (not their pages' records).
pub async fn job_keys(js: &jetstream::Context) -> Result<Vec<String>, JobError> {
    use futures::StreamExt;
    let mut stream = js
        .get_stream(format!("KV_{}", names::JOBS_BUCKET))
        .await
        .map_err(unavailable)?;
    let held = stream.info().await.map_err(unavailable)?.state.messages;
    let mut keys: Vec<String> = Vec::new();
    if held == 0 {
        return Ok(keys);
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            headers_only: true,
            filter_subject: names::job_states_subject(),
            deliver_policy: jetstream::consumer::DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    let mut messages = consumer.messages().await.map_err(unavailable)?;
    let prefix = format!("$KV.{}.", names::JOBS_BUCKET);
    // To the stream's end; jobs that change meanwhile move to its end, so a
    // bound (twice what it held when asked) ends the pass under any load.
    let most = held.saturating_mul(2).saturating_add(100);
    let mut seen = 0;
    while seen < most
        && let Some(message) = messages.next().await
    {
        seen += 1;
        let message = message.map_err(unavailable)?;
        let pending = message.info().map_err(unavailable)?.pending;
        let removed = message
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some_and(|op| op.as_str() != "PUT");
        if let Some(key) = message.subject.strip_prefix(prefix.as_str())
            && !removed
        {
            keys.push(key.to_owned());
        }
        if pending == 0 {
            break;
        }
    }
    // A job changed during the pass came again, later: its last place
    // stands.
    let mut seen = std::collections::HashSet::new();
    keys.reverse();
    keys.retain(|k| seen.insert(k.clone()));
    keys.reverse();
    Ok(keys)
}

/// One output of a finished job.
pub async fn output(store: &Store, job_id: &str, format: Format) -> Result<bytes::Bytes, JobError> {
    match store::get(store.as_ref(), &names::keys::output(job_id, format)).await {
        Ok(b) => Ok(b),
        Err(StoreError::NotFound(_)) => Err(JobError::NotFinished(job_id.to_owned())),
        Err(e) => Err(unavailable(e)),
    }
}

/// One output of a job, once it is finished.
pub async fn result(
    js: &jetstream::Context,
    store: &Store,
    job_id: &str,
    format: Format,
) -> Result<bytes::Bytes, JobError> {
    asked(js, job_id, format).await?;
    output(store, job_id, format).await
}

/// The object key of one output of a job, once it is finished and stored.
pub async fn result_key(
    js: &jetstream::Context,
    store: &Store,
    job_id: &str,
    format: Format,
) -> Result<String, JobError> {
    asked(js, job_id, format).await?;
    let key = names::keys::output(job_id, format);
    match store
        .head(&object_store::path::Path::from(key.as_str()))
        .await
    {
        Ok(_) => Ok(key),
        Err(object_store::Error::NotFound { .. }) => Err(JobError::NotFinished(job_id.to_owned())),
        Err(e) => Err(unavailable(format!("{key}: {e}"))),
    }
}

/// `Ok` when the job has ended with `format` among its outputs.
async fn asked(js: &jetstream::Context, job_id: &str, format: Format) -> Result<(), JobError> {
    let state = load(js, job_id).await?;
    match state.status {
        JobStatus::Running => Err(JobError::NotFinished(job_id.to_owned())),
        JobStatus::Cancelled => Err(JobError::Ended {
            job_id: job_id.to_owned(),
            status: "cancelled",
        }),
        _ => {
            let requested = state.submission.map(|s| s.formats).unwrap_or_default();
            let written = Format::written(&requested);
            if !written.contains(&format) {
                return Err(JobError::NotAsked {
                    job_id: job_id.to_owned(),
                    format,
                    asked: written
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Ok(())
        }
    }
}

/// Waits until the job has ended, or `timeout` passed; returns its last state.
pub async fn wait(
    js: &jetstream::Context,
    job_id: &str,
    timeout: Duration,
) -> Result<JobState, JobError> {
    let kv = jobs_bucket(js).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    // The watch sees every change; the first read covers a job that ended
    // before it began.
    let mut changes = kv.watch(job_id).await.map_err(unavailable)?;
    loop {
        if let Some(bytes) = kv.get(job_id).await.map_err(unavailable)? {
            let state = JobState::decode(&bytes).map_err(unavailable)?;
            if state.status != JobStatus::Running {
                return Ok(state);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(state);
            }
        }
        use futures::StreamExt;
        // A change, or a periodic look in case the watch missed one.
        let _ = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_secs(2)),
            changes.next(),
        )
        .await;
        if tokio::time::Instant::now() >= deadline {
            return load(js, job_id).await;
        }
    }
}

/// Cancels a running job: marks it cancelled, drops its waiting page jobs
/// (and its document job, if the rasterizer has not taken it), and publishes
/// its completion event.
pub async fn cancel(js: &jetstream::Context, job_id: &str) -> Result<JobState, JobError> {
    let before = load(js, job_id).await?;
    if before.status != JobStatus::Running {
        return Err(JobError::Ended {
            job_id: job_id.to_owned(),
            status: before.status.as_str(),
        });
    }
    let kv = jobs_bucket(js).await?;
    let state = state::update(&kv, job_id, |s| {
        if s.status != JobStatus::Running {
            return false;
        }
        s.status = JobStatus::Cancelled;
        s.finished_at_ms = Some(now_ms());
        true
    })
    .await
    .map_err(|e| JobError::Unavailable(e.to_string()))?;
    if state.status != JobStatus::Cancelled {
        return Err(JobError::Ended {
            job_id: job_id.to_owned(),
            status: state.status.as_str(),
        });
    }
    for (stream, filter) in [
        (names::PAGES_STREAM, names::pages_of_job(job_id)),
        (names::DOCS_STREAM, names::doc_subject(job_id)),
    ] {
        let stream = js.get_stream(stream).await.map_err(unavailable)?;
        stream.purge().filter(filter).await.map_err(unavailable)?;
    }
    let event = JobEvent::of_state(&state, EventKind::Completed, JobStatus::Cancelled, now_ms());
    publish_acked(
        js,
        names::event_subject(job_id, EventKind::Completed.token()),
        names::completed_msg_id(job_id),
        event.encode(),
    )
    .await
    .map_err(unavailable)?;
    Ok(state)
}

/// A job event as clients see it (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// The job.
    pub job_id: String,
    /// `submitted`, `rasterized`, `progress`, `waiting` or `completed`.
    pub kind: &'static str,
    /// Pages read so far.
    pub pages_done: u32,
    /// Pages failed so far.
    pub pages_failed: u32,
    /// Pages in the document, once known.
    pub total_pages: Option<u32>,
    /// The job's status (final on `completed`).
    pub status: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// On `waiting`: why no page is being read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// On `progress`: the page it is about, when it is one page's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// With `page`: `ok` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_status: Option<&'static str>,
}

impl From<&JobEvent> for EventView {
    fn from(e: &JobEvent) -> Self {
        Self {
            job_id: e.job_id.clone(),
            kind: e.kind.token(),
            pages_done: e.pages_done,
            pages_failed: e.pages_failed,
            total_pages: e.total_pages,
            status: e.status.as_str().to_owned(),
            at_ms: e.at_ms,
            waiting: e.waiting.clone(),
            page: e.page,
            page_status: e.page_ok.map(page_status),
        }
    }
}

/// The job's events from its first, as they come: an ordered consumer on the
/// event stream, filtered to the job.
pub async fn events(
    js: &jetstream::Context,
    job_id: &str,
) -> Result<impl futures::Stream<Item = JobEvent> + Send + use<>, JobError> {
    use futures::StreamExt;
    let stream = js
        .get_stream(names::EVENTS_STREAM)
        .await
        .map_err(unavailable)?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: names::events_of_job(job_id),
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    let messages = consumer.messages().await.map_err(unavailable)?;
    Ok(messages.filter_map(|m| async move { JobEvent::decode(&m.ok()?.payload).ok() }))
}
