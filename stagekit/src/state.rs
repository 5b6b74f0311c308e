//! A job's state in the jobs bucket, changed only by compare-and-set so that
//! several aggregators (and ingest, which records submissions and
//! cancellations) can write it side by side.

use std::time::Duration;

use async_nats::jetstream::kv;

use crate::queue::{Fault, FaultKind};
use pagefleet_schemas::messages::{DecodeError, JobState, Message, now_ms};

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
    let unavailable = |e: &dyn std::fmt::Display| StateError::Unavailable(e.to_string());
    for _ in 0..100 {
        let entry = kv.entry(job_id).await.map_err(|e| unavailable(&e))?;
        let (mut state, revision) = match entry {
            Some(e) if e.operation == kv::Operation::Put => (
                JobState::decode(&e.value).map_err(|source| StateError::Corrupt {
                    job_id: job_id.to_owned(),
                    source,
                })?,
                Some(e.revision),
            ),
            _ => (JobState::new(job_id, now_ms()), None),
        };
        if !change(&mut state) {
            return Ok(state);
        }
        let bytes = state.encode().into();
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
            Err((true, _)) => continue,
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
