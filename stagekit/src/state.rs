//! A job's state in the jobs bucket, changed only by compare-and-set so that
//! several aggregators (and ingest, which records submissions and
//! cancellations) can write it side by side.

use std::time::Duration;

use async_nats::jetstream::{self, kv};

use crate::queue::{Fault, FaultKind};
use pagefleet_schemas::messages::{DecodeError, JobState, Message, PageRecord, now_ms};
use pagefleet_schemas::names;

/// Why a job's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The jobs bucket did not answer.
    #[error("jobs bucket: {0}")]
    Unavailable(String),
    /// The stored state cannot be read.
    #[error("job {job_id}: stored state: {source}")]
    Corrupt {
        /// The job.
        job_id: String,
        /// Why.
        source: DecodeError,
    },
    /// Other writers kept winning the compare-and-set.
    #[error("job {0}: state kept changing under 100 attempts")]
    Contended(String),
}

impl Fault for StateError {
    fn kind(&self) -> FaultKind {
        match self {
            Self::Unavailable(_) | Self::Contended(_) => FaultKind::Transient {
                retry_after: Duration::from_millis(200),
            },
            Self::Corrupt { .. } => FaultKind::Permanent,
        }
    }
}

/// Read-modify-write of a job's state with compare-and-set, retried on conflict.
pub async fn update(
    kv: &kv::Store,
    job_id: &str,
    mut change: impl FnMut(&mut JobState) -> bool,
) -> Result<JobState, StateError> {
    for _ in 0..100 {
        let (mut state, revision) = read(kv, job_id).await?;
        if !change(&mut state) {
            return Ok(state);
        }
        let bytes: bytes::Bytes = state.encode().into();
        metrics::counter!("pagefleet_state_bytes_written_total").increment(bytes.len() as u64);
        let written = match revision {
            Some(rev) => kv
                .update(job_id, bytes, rev)
                .await
                .map(|_| ())
                .map_err(|e| {
                    (
                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        e.to_string(),
                    )
                }),
            None => kv.create(job_id, bytes).await.map(|_| ()).map_err(|e| {
                (
                    e.kind() == kv::CreateErrorKind::AlreadyExists,
                    e.to_string(),
                )
            }),
        };
        match written {
            Ok(()) => return Ok(state),
            // Another aggregator wrote first: read again.
            Err((true, _)) => {
                metrics::counter!("pagefleet_state_conflicts_total").increment(1);
                continue;
            }
            Err((false, e)) => return Err(StateError::Unavailable(e)),
        }
    }
    Err(StateError::Contended(job_id.to_owned()))
}

/// Whether a job has ended (finished or cancelled): its pages need no more
/// reading. A state that cannot be read counts as open: the work goes on,
/// and the aggregator drops late results of an ended job anyway.
pub async fn has_ended(kv: &kv::Store, job_id: &str) -> bool {
    match kv.get(job_id).await {
        Ok(Some(bytes)) => JobState::decode(&bytes)
            .is_ok_and(|s| s.status != pagefleet_schemas::messages::JobStatus::Running),
        _ => false,
    }
}

/// What recording a page's outcome found.
#[derive(Debug)]
pub enum PageRecorded {
    /// The page is new: its record and the job's counters were written
    /// together; the job's state as written.
    New(JobState),
    /// The page had been recorded before (a result delivered again): its
    /// record as it stands, and the job's state.
    Before(PageRecord, JobState),
    /// `change` turned the page down (the job was cancelled or removed):
    /// nothing was written.
    Refused(JobState),
}

/// Records one page's outcome exactly once: its record under
/// [`names::page_record_key`] and the job's state changed by `change`
/// (its counters) are written in one atomic batch, each write conditional
/// on the key's revision, so that several aggregators (and deliveries of
/// one result) count every page once. Bytes written per page stay the
/// same whatever the document's length.
pub async fn record_page(
    js: &jetstream::Context,
    kv: &kv::Store,
    job_id: &str,
    page: u32,
    record: &PageRecord,
    mut change: impl FnMut(&mut JobState) -> bool,
) -> Result<PageRecorded, StateError> {
    let unavailable = |e: &dyn std::fmt::Display| StateError::Unavailable(e.to_string());
    let page_key = names::page_record_key(job_id, page);
    for _ in 0..100 {
        let (mut state, revision) = read(kv, job_id).await?;
        let original = state.clone();
        if !change(&mut state) {
            return Ok(PageRecorded::Refused(state));
        }
        let writes = [
            (page_key.as_str(), record.encode(), 0),
            (job_id, state.encode(), revision.unwrap_or(0)),
        ];
        match atomic_batch(&js.client(), kv, &writes).await {
            Ok(()) => return Ok(PageRecorded::New(state)),
            Err(BatchError::Conflict) => {}
            Err(BatchError::Failed(e)) => return Err(StateError::Unavailable(e)),
        }
        // Either the page was recorded before (a result delivered again),
        // which the batch, written whole or not at all, left as it was; or
        // another writer moved the job's state on: read again.
        if let Some(entry) = kv.entry(&page_key).await.map_err(|e| unavailable(&e))?
            && entry.operation == kv::Operation::Put
        {
            let before =
                PageRecord::decode(&entry.value).map_err(|source| StateError::Corrupt {
                    job_id: job_id.to_owned(),
                    source,
                })?;
            return Ok(PageRecorded::Before(before, original));
        }
        metrics::counter!("pagefleet_state_conflicts_total").increment(1);
    }
    Err(StateError::Contended(job_id.to_owned()))
}

/// Raises a recorded page's delivery count (a result delivered again after
/// its record was written): the job's redeliveries say how often pages
/// were read twice. Conditional on the record's revision; a lost race
/// leaves the other writer's count.
pub async fn raise_deliveries(
    kv: &kv::Store,
    job_id: &str,
    page: u32,
    deliveries: u64,
) -> Result<(), StateError> {
    let key = names::page_record_key(job_id, page);
    let unavailable = |e: &dyn std::fmt::Display| StateError::Unavailable(e.to_string());
    let Some(entry) = kv.entry(&key).await.map_err(|e| unavailable(&e))? else {
        return Ok(());
    };
    let Ok(mut record) = PageRecord::decode(&entry.value) else {
        return Ok(());
    };
    if record.deliveries >= deliveries {
        return Ok(());
    }
    record.deliveries = deliveries;
    match kv
        .update(&key, record.encode().into(), entry.revision)
        .await
    {
        Err(e) if e.kind() != kv::UpdateErrorKind::WrongLastRevision => Err(unavailable(&e)),
        _ => Ok(()),
    }
}

/// A job's state and its revision (none for a job not yet in the bucket).
async fn read(kv: &kv::Store, job_id: &str) -> Result<(JobState, Option<u64>), StateError> {
    let entry = kv
        .entry(job_id)
        .await
        .map_err(|e| StateError::Unavailable(e.to_string()))?;
    Ok(match entry {
        Some(e) if e.operation == kv::Operation::Put => (
            JobState::decode(&e.value).map_err(|source| StateError::Corrupt {
                job_id: job_id.to_owned(),
                source,
            })?,
            Some(e.revision),
        ),
        _ => (JobState::new(job_id, now_ms()), None),
    })
}

/// Why an atomic batch was not stored.
enum BatchError {
    /// A key's revision was not the one expected: read again.
    Conflict,
    /// No answer, or another refusal.
    Failed(String),
}

/// The error code JetStream answers a write whose expected last subject
/// sequence is not the key's.
const WRONG_LAST_SEQUENCE: u64 = 10071;

/// Writes `(key, value, expected revision)`s of a bucket as one atomic
/// batch (JetStream's atomic batch publish, nats-server 2.12+): all are
/// stored, or none. A revision of 0 expects the key to be new.
async fn atomic_batch(
    client: &async_nats::Client,
    kv: &kv::Store,
    writes: &[(&str, Vec<u8>, u64)],
) -> Result<(), BatchError> {
    use async_nats::jetstream::response::Response;
    let batch_id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = kv.put_prefix.as_ref().unwrap_or(&kv.prefix);
    let failed = |e: &dyn std::fmt::Display| BatchError::Failed(e.to_string());
    let last = writes.len();
    let bytes: usize = writes.iter().map(|(_, value, _)| value.len()).sum();
    metrics::counter!("pagefleet_state_bytes_written_total").increment(bytes as u64);
    for (n, (key, value, revision)) in writes.iter().enumerate() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Batch-Id", batch_id.as_str());
        headers.insert("Nats-Batch-Sequence", (n + 1).to_string().as_str());
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            revision.to_string().as_str(),
        );
        let subject = format!("{prefix}{key}");
        let payload = bytes::Bytes::from(value.clone());
        if n + 1 < last {
            client
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| failed(&e))?;
            continue;
        }
        headers.insert("Nats-Batch-Commit", "1");
        let answer = tokio::time::timeout(
            crate::bus::ACK_WAIT,
            client.request_with_headers(subject, headers, payload),
        )
        .await
        .map_err(|_| failed(&"no acknowledgement of the batch"))?
        .map_err(|e| failed(&e))?;
        let answer: Response<serde_json::Value> =
            serde_json::from_slice(&answer.payload).map_err(|e| failed(&e))?;
        return match answer {
            Response::Ok(_) => Ok(()),
            Response::Err { error } if error.error_code().0 == WRONG_LAST_SEQUENCE => {
                Err(BatchError::Conflict)
            }
            Response::Err { error } => Err(failed(&error)),
        };
    }
    Ok(())
}
